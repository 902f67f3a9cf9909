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
