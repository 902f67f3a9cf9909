//! write(parse(write(parse(x)))) == write(parse(x)): converting a converted file to the
//! same version changes nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdb_parser::ParserBuilder;
use rdb_writer::convert::{convert, ConvertOptions, FieldTtlPolicy, FunctionPolicy, ModulePolicy};
use rdb_writer::TargetProfile;

fuzz_target!(|data: &[u8]| {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false);
    let Some(profile) = TargetProfile::for_version(9) else { return };
    let mut opts = ConvertOptions::new(profile);
    opts.field_ttls = FieldTtlPolicy::Drop;
    opts.functions = FunctionPolicy::Drop;
    opts.modules = ModulePolicy::Keep;
    let run = |input: &[u8]| convert(input, &builder, &opts, Vec::new(), &mut |_| Ok(()), &mut |_| {});
    let Ok((once, _)) = run(data) else { return };
    let (twice, _) = run(&once).expect("a converted file converts again");
    assert!(once == twice, "a second conversion changed the file");
});
