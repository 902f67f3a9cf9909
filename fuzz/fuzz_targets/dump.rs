//! The DUMP payload of every key, for several target versions, ends with the target's
//! version and a valid CRC64, and its value reads back equal to the key's value (field
//! TTLs aside, which the fuzzed options drop).
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use rdb_parser::{Item, ParserBuilder, Version};
use rdb_writer::convert::{dump_payload, ConvertOptions, FieldTtlPolicy, ModulePolicy};
use rdb_writer::TargetProfile;

fuzz_target!(|data: &[u8]| {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false).allow_empty_keys(true);
    let Ok(parser) = builder.parse(data) else {
        return;
    };
    let source = parser.version();
    for item in parser {
        let e = match item {
            Ok(Item::Key(e)) => e,
            Ok(_) => continue,
            Err(_) => return,
        };
        let Ok(mut want) = common::model(&e.value) else {
            return;
        };
        if let common::Model::Hash(fields) = &mut want {
            fields.iter_mut().for_each(|f| f.2 = None);
        }
        for version in [9u32, 11, 12] {
            let Some(profile) = TargetProfile::for_version(version) else {
                continue;
            };
            let mut opts = ConvertOptions::new(profile);
            opts.field_ttls = FieldTtlPolicy::Drop;
            opts.modules = ModulePolicy::Keep;
            let Ok(Some(payload)) = dump_payload(&e, source, &opts) else {
                continue;
            };
            let Some((body, crc)) = payload.split_last_chunk::<8>() else {
                panic!("short payload")
            };
            assert_eq!(*crc, rdb_parser::crc64(0, body).to_le_bytes());
            let Some((typed_value, target)) = body.split_last_chunk::<2>() else {
                panic!("short payload")
            };
            assert_eq!(*target, (version as u16).to_le_bytes());
            let Some((&type_byte, value)) = typed_value.split_first() else {
                panic!("no type byte")
            };
            // The value, wrapped as a one-key file of the target version.
            let mut file = Version::redis(version).header().to_vec();
            file.push(type_byte);
            file.extend_from_slice(e.raw_key);
            file.extend_from_slice(value);
            file.extend_from_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
            let keys = common::keys(&file, &builder)
                .unwrap_or_else(|err| panic!("payload for {version} reads back: {err}"));
            let [got] = &keys[..] else {
                panic!("{} keys in a one-key payload", keys.len())
            };
            let mut got = got.value.clone();
            if let common::Model::Hash(fields) = &mut got {
                fields.iter_mut().for_each(|f| f.2 = None);
            }
            assert_eq!(got, want, "payload for {version}");
        }
    }
});
