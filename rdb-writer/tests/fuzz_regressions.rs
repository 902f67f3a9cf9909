//! Inputs the fuzz targets (fuzz/) found to break the writer, each as a named test.

#![allow(clippy::unwrap_used, clippy::panic)]

use rdb_parser::format::type_id;
use rdb_parser::{ParserBuilder, Version};
use rdb_writer::convert::{convert, ConvertError, ConvertOptions};
use rdb_writer::{encode, Compression, TargetProfile, Writer};

/// fuzz/artifacts/idempotent/crash-6165c51d (idempotent target): a hash whose field
/// expiries lie near both ends of i64 overflowed `expire - min` while writing RDB 12's
/// relative field TTLs (a panic in debug builds, a wrong TTL in release). Now the
/// conversion stops with an error naming the key.
#[test]
fn field_ttls_too_far_apart_for_relative_ttls_are_an_error() {
    let mut value = Vec::new();
    encode::length(&mut value, 2);
    for (field, expire) in [(&b"early"[..], i64::MIN + 2), (&b"late"[..], i64::MAX - 2)] {
        encode::string(&mut value, field, Compression::None);
        encode::string(&mut value, b"v", Compression::None);
        encode::ms_time(&mut value, expire);
    }
    let mut w = Writer::new(Vec::new(), Version::valkey(80)).unwrap();
    w.select_db(0).unwrap();
    w.key_value(type_id::HASH_2, b"hfe", &value).unwrap();
    let file = w.finish().unwrap();

    let opts = ConvertOptions::new(TargetProfile::for_version(12).unwrap());
    let result = convert(
        &file,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    );
    match result {
        Err(ConvertError::Unrepresentable { key, reason, .. }) => {
            assert_eq!(key.as_deref(), Some(&b"hfe"[..]));
            assert!(reason.contains("too far apart"), "{reason}");
        }
        Err(other) => panic!("expected an unrepresentable hash, got {other}"),
        Ok(_) => panic!("converted field TTLs that RDB 12 cannot hold"),
    }

    // Expiries a real server writes still convert.
    let mut value = Vec::new();
    encode::length(&mut value, 2);
    for (field, expire) in [(&b"a"[..], 1_700_000_000_000i64), (&b"b"[..], -1)] {
        encode::string(&mut value, field, Compression::None);
        encode::string(&mut value, b"v", Compression::None);
        encode::ms_time(&mut value, expire);
    }
    let mut w = Writer::new(Vec::new(), Version::valkey(80)).unwrap();
    w.select_db(0).unwrap();
    w.key_value(type_id::HASH_2, b"hfe", &value).unwrap();
    let file = w.finish().unwrap();
    assert!(convert(
        &file,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {}
    )
    .is_ok());
}

/// fuzz/artifacts/idempotent/crash-da528f32 (idempotent target): an empty listpack zset
/// whose header says "count unknown" (65535) was not seen as empty, so converting to RDB 9
/// wrote an empty ziplist zset, which a second conversion then dropped. Now the first
/// conversion drops it (as it does any empty collection) and converting again changes
/// nothing.
#[test]
fn empty_listpack_with_unknown_count_is_an_empty_collection() {
    // total bytes 7, element count 0xFFFF (unknown), end byte.
    let empty_listpack_unknown_count = [0x07, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF];
    for t in [
        type_id::ZSET_LISTPACK,
        type_id::SET_LISTPACK,
        type_id::HASH_LISTPACK,
    ] {
        let mut w = Writer::new(Vec::new(), Version::redis(11)).unwrap();
        w.select_db(0).unwrap();
        w.key_value(
            t,
            b"empty",
            &rdb_writer::value::string(&empty_listpack_unknown_count, Compression::None),
        )
        .unwrap();
        w.key_value(
            type_id::STRING,
            b"kept",
            &rdb_writer::value::string(b"v", Compression::None),
        )
        .unwrap();
        let file = w.finish().unwrap();
        let mut parser = ParserBuilder::new();
        parser.allow_empty_keys(true);
        let mut opts = ConvertOptions::new(TargetProfile::for_version(9).unwrap());
        opts.field_ttls = rdb_writer::convert::FieldTtlPolicy::Drop;
        let mut dropped = Vec::new();
        let (once, summary) = convert(
            &file,
            &parser,
            &opts,
            Vec::new(),
            &mut |l| {
                dropped.push((l.key.map(<[u8]>::to_vec), l.action));
                Ok(())
            },
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(summary.keys_written, 1, "type {t}");
        assert_eq!(dropped, [(Some(b"empty".to_vec()), "dropped")], "type {t}");
        let (twice, _) = convert(
            &once,
            &parser,
            &opts,
            Vec::new(),
            &mut |_| Ok(()),
            &mut |_| {},
        )
        .unwrap();
        assert!(
            once == twice,
            "type {t}: a second conversion changed the file"
        );
    }
}
