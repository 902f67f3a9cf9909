//! A file that parses converts to every target version, and the output parses again with
//! the same number of keys as the conversion says it wrote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdb_parser::{Item, ParserBuilder};
use rdb_writer::convert::{convert, ConvertOptions, DbPolicy, FieldTtlPolicy, FunctionPolicy, ModulePolicy};
use rdb_writer::TargetProfile;

fuzz_target!(|data: &[u8]| {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false);
    for version in [9, 10, 11, 12, 80] {
        let Some(profile) = TargetProfile::for_version(version) else { return };
        let mut opts = ConvertOptions::new(profile);
        opts.field_ttls = FieldTtlPolicy::Drop;
        opts.functions = FunctionPolicy::Drop;
        opts.modules = ModulePolicy::Keep;
        opts.dbs = DbPolicy::Keep;
        let Ok((out, summary)) = convert(data, &builder, &opts, Vec::new(), &mut |_| Ok(()), &mut |_| {}) else {
            return;
        };
        let mut keys = 0u64;
        for item in ParserBuilder::new().allow_empty_keys(true).parse(&out).expect("output header") {
            match item.expect("converted output parses") {
                Item::Key(e) => {
                    e.value.decode_all().expect("converted values decode");
                    keys += 1;
                }
                _ => {}
            }
        }
        assert_eq!(keys, summary.keys_written);
    }
});
