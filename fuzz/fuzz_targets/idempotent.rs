//! write(parse(write(parse(x)))) == write(parse(x)): converting a converted file again to
//! the same target changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdb_parser::ParserBuilder;
use rdb_writer::convert::{convert, ConvertOptions, FieldTtlPolicy, FunctionPolicy, ModulePolicy};
use rdb_writer::TargetProfile;

fuzz_target!(|data: &[u8]| {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false).allow_empty_keys(true);
    for version in [9, 12] {
        let Some(profile) = TargetProfile::for_version(version) else {
            continue;
        };
        let mut opts = ConvertOptions::new(profile);
        opts.field_ttls = FieldTtlPolicy::Drop;
        opts.functions = FunctionPolicy::Drop;
        opts.modules = ModulePolicy::Keep;
        let run = |input: &[u8]| {
            convert(
                input,
                &builder,
                &opts,
                Vec::new(),
                &mut |_| Ok(()),
                &mut |_| {},
            )
        };
        let Ok((once, _)) = run(data) else { continue };
        let (twice, _) = run(&once)
            .unwrap_or_else(|e| panic!("a file converted to {version} converts again: {e}"));
        assert!(
            once == twice,
            "a second conversion to {version} changed the file"
        );
    }
});
