//! DUMP payloads of every key, for two target versions, carry a valid CRC and the target's
//! version, and their value decodes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rdb_parser::{Item, ParserBuilder, Version};
use rdb_writer::convert::{dump_payload, ConvertOptions, FieldTtlPolicy, ModulePolicy};
use rdb_writer::TargetProfile;

fuzz_target!(|data: &[u8]| {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false);
    let Ok(parser) = builder.parse(data) else { return };
    let source = parser.version();
    for item in parser {
        let Ok(Item::Key(e)) = item else { return };
        if e.value.decode_all().is_err() {
            return;
        }
        for version in [9u32, 12] {
            let Some(profile) = TargetProfile::for_version(version) else { return };
            let mut opts = ConvertOptions::new(profile);
            opts.field_ttls = FieldTtlPolicy::Drop;
            opts.modules = ModulePolicy::Keep;
            let Ok(Some(payload)) = dump_payload(&e, source, &opts) else { continue };
            let n = payload.len();
            let (body, crc) = payload.split_at(n - 8);
            assert_eq!(crc, rdb_parser::crc64(0, body).to_le_bytes());
            assert_eq!(&body[n - 10..], &(version as u16).to_le_bytes());
            // The value, wrapped as a one-key file of the target version, decodes.
            let mut file = Version::redis(version).header().to_vec();
            file.push(body[0]);
            file.extend_from_slice(e.raw_key);
            file.extend_from_slice(&body[1..n - 10]);
            file.extend_from_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
            for item in ParserBuilder::new().allow_empty_keys(true).parse(&file).expect("header") {
                if let Item::Key(k) = item.expect("payload value parses") {
                    k.value.decode_all().expect("payload value decodes");
                }
            }
        }
    }
});
