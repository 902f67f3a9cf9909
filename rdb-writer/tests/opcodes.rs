//! Constructs that no installable server writes (release-candidate forms, cluster-only
//! opcodes), built byte by byte, read back by the parser, and carried through convert.

use rdb_parser::format::{opcode, type_id, Version};
use rdb_parser::{ErrorKind, Function, Item, Parser, Value};
use rdb_writer::convert::{convert, ConvertOptions, FieldTtlPolicy};
use rdb_writer::encode::{self, Compression};
use rdb_writer::{ListpackBuilder, TargetProfile, Writer};

fn file(version: Version, body: impl FnOnce(&mut Writer<Vec<u8>>)) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), version).unwrap_or_else(|e| panic!("{e}"));
    body(&mut w);
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn raw(w: &mut Writer<Vec<u8>>, bytes: &[u8]) {
    w.raw(bytes).unwrap_or_else(|e| panic!("{e}"));
}

fn items(data: &[u8]) -> Vec<Item<'_>> {
    Parser::new(data)
        .unwrap_or_else(|e| panic!("{e}"))
        .collect::<Result<Vec<_>, _>>()
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn function_pre_ga_slot_info_and_seconds_expiry() {
    let data = file(Version::redis(12), |w| {
        let mut b = vec![opcode::FUNCTION_PRE_GA];
        for s in [&b"mylib"[..], b"LUA"] {
            encode::raw_string(&mut b, s);
        }
        encode::length(&mut b, 1);
        encode::raw_string(&mut b, b"a description");
        encode::raw_string(
            &mut b,
            b"redis.register_function('f', function() return 1 end)",
        );
        raw(w, &b);
        let _ = w.select_db(0);
        let mut s = vec![opcode::SLOT_INFO];
        for n in [866u64, 1, 1] {
            encode::length(&mut s, n);
        }
        raw(w, &s);
        let mut e = vec![opcode::EXPIRETIME];
        e.extend_from_slice(&2_000_000_000i32.to_le_bytes());
        e.push(type_id::STRING);
        encode::raw_string(&mut e, b"k");
        encode::raw_string(&mut e, b"v");
        raw(w, &e);
    });
    let items = items(&data);
    assert!(items.iter().any(|i| matches!(i, Item::Function(Function::PreGa { name, description: Some(_), .. }) if name.as_ref() == b"mylib")));
    assert!(items.iter().any(|i| matches!(
        i,
        Item::SlotInfo {
            slot: 866,
            keys: 1,
            expires: 1
        }
    )));
    let key = items.iter().find_map(|i| match i {
        Item::Key(e) => Some(e),
        _ => None,
    });
    assert_eq!(key.and_then(|e| e.expire_ms), Some(2_000_000_000_000));

    // To RDB 10: the RC function becomes a FUNCTION2 library; SLOT_INFO is left out.
    let opts = ConvertOptions::new(TargetProfile::for_version(10).unwrap_or_else(|| panic!()));
    let (out, summary) = convert(
        &data,
        &Default::default(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.hints_dropped, 1);
    let back = self::items(&out);
    let code = back.iter().find_map(|i| match i {
        Item::Function(Function::Library { code }) => Some(code.to_vec()),
        _ => None,
    });
    assert!(code.is_some_and(|c| c.starts_with(b"#!lua name=mylib\n")));
    assert!(!back.iter().any(|i| matches!(i, Item::SlotInfo { .. })));
}

#[test]
fn valkey_slot_import_and_hash2() {
    let data = file(Version::valkey(80), |w| {
        let mut b = vec![opcode::SLOT_IMPORT];
        encode::raw_string(&mut b, &[b'a'; 40]);
        encode::length(&mut b, 2);
        for n in [0u64, 100, 200, 300] {
            encode::length(&mut b, n);
        }
        raw(w, &b);
        let _ = w.select_db(0);
        let mut h = vec![type_id::HASH_2];
        encode::raw_string(&mut h, b"h");
        encode::length(&mut h, 2);
        for (f, v, t) in [
            (&b"a"[..], &b"1"[..], 1_900_000_000_000i64),
            (b"b", b"2", -1),
        ] {
            encode::raw_string(&mut h, f);
            encode::raw_string(&mut h, v);
            encode::ms_time(&mut h, t);
        }
        raw(w, &h);
    });
    let items = items(&data);
    assert!(items
        .iter()
        .any(|i| matches!(i, Item::SlotImport(s) if s.ranges == vec![(0, 100), (200, 300)])));
    let fields: Vec<(Vec<u8>, Option<i64>)> = items
        .iter()
        .find_map(|i| match i {
            Item::Key(e) => match &e.value {
                Value::Hash(h) => Some(
                    h.iter()
                        .map(|f| f.map(|f| (f.field.to_bytes().into_owned(), f.expire_ms)))
                        .collect::<Result<Vec<_>, _>>()
                        .unwrap_or_default(),
                ),
                _ => None,
            },
            _ => None,
        })
        .unwrap_or_default();
    assert_eq!(
        fields,
        vec![
            (b"a".to_vec(), Some(1_900_000_000_000)),
            (b"b".to_vec(), None)
        ]
    );
}

#[test]
fn redis_74_release_candidate_hash_types() {
    // 22 under REDIS magic: len n, n x (len absolute expire (0 = none), field, value).
    // 23: a listpack of (field, value, expire) triples without the min-expire prefix.
    let data = file(Version::redis(12), |w| {
        let _ = w.select_db(0);
        let mut h = vec![22u8];
        encode::raw_string(&mut h, b"meta");
        encode::length(&mut h, 2);
        for (t, f, v) in [
            (1_900_000_000_000u64, &b"a"[..], &b"1"[..]),
            (0, b"b", b"2"),
        ] {
            encode::length(&mut h, t);
            encode::raw_string(&mut h, f);
            encode::raw_string(&mut h, v);
        }
        raw(w, &h);
        let mut lp = ListpackBuilder::new();
        for e in [&b"x"[..], b"9", b"1900000000001", b"y", b"8", b"0"] {
            lp.push(e);
        }
        let mut h = vec![23u8];
        encode::raw_string(&mut h, b"lpex");
        encode::string(&mut h, &lp.finish().unwrap_or_default(), Compression::None);
        raw(w, &h);
    });
    let mut seen = Vec::new();
    for item in items(&data) {
        if let Item::Key(e) = item {
            if let Value::Hash(h) = &e.value {
                let ttls: Vec<Option<i64>> = h
                    .iter()
                    .map(|f| f.map(|f| f.expire_ms))
                    .collect::<Result<_, _>>()
                    .unwrap_or_default();
                seen.push((h.encoding_name(), ttls));
            }
        }
    }
    assert_eq!(
        seen,
        vec![
            ("metadata_pre_ga", vec![Some(1_900_000_000_000), None]),
            ("listpack_ex_pre_ga", vec![Some(1_900_000_000_001), None]),
        ]
    );
    // Redis 7.4 GA refuses the RC types: convert re-encodes them as type 24.
    let mut opts = ConvertOptions::new(
        TargetProfile::named("redis-7.4")
            .cloned()
            .unwrap_or_else(|| panic!()),
    );
    opts.field_ttls = FieldTtlPolicy::Error;
    let (out, summary) = convert(
        &data,
        &Default::default(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.transcoded, 2);
    let types: Vec<u8> = items(&out)
        .iter()
        .filter_map(|i| match i {
            Item::Key(e) => Some(e.type_id),
            _ => None,
        })
        .collect();
    assert_eq!(types, vec![type_id::HASH_METADATA, type_id::HASH_METADATA]);
}

#[test]
fn versions_beyond_the_known_ones_are_refused_clearly() {
    for (header, kind) in [
        (&b"REDIS0014"[..], ErrorKind::UnsupportedVersion),
        (b"VALKEY081", ErrorKind::UnsupportedVersion),
        (b"REDIS0000", ErrorKind::UnsupportedVersion),
        (b"VALKEY011", ErrorKind::UnsupportedVersion),
        (b"RADIS0009", ErrorKind::BadMagic),
        (b"REDIS00x9", ErrorKind::BadMagic),
    ] {
        let mut data = header.to_vec();
        data.extend_from_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 0]);
        let err = Parser::new(&data)
            .err()
            .unwrap_or_else(|| panic!("{header:?} accepted"));
        assert_eq!(err.kind(), &kind, "{header:?}: {err}");
        assert!(err.to_string().contains("at byte"), "{err}");
    }
}

/// An AUX between a key's EXPIRETIME_MS and its type byte: the expiry stays with that key,
/// and copying the AUX (to every shard of a split) does not carry the expiry along.
#[test]
fn key_opcodes_survive_an_item_in_between() {
    use rdb_writer::convert::convert_split;
    use rdb_writer::slot::SlotMap;
    let t = 4_102_444_800_000i64;
    let data = file(Version::redis(9), |w| {
        let _ = w.select_db(0);
        let _ = w.expire_ms(t);
        let _ = w.aux(b"note", b"x");
        for k in [&b"k1"[..], b"k2"] {
            let mut e = vec![type_id::STRING];
            encode::raw_string(&mut e, k);
            encode::raw_string(&mut e, b"v");
            raw(w, &e);
        }
    });
    let expiries = |d: &[u8]| -> Vec<(Vec<u8>, Option<i64>)> {
        items(d)
            .into_iter()
            .filter_map(|i| match i {
                Item::Key(e) => Some((e.key.to_vec(), e.expire_ms)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(
        expiries(&data),
        vec![(b"k1".to_vec(), Some(t)), (b"k2".to_vec(), None)]
    );
    let map = SlotMap::parse("0-8191,8192-16383").unwrap_or_else(|e| panic!("{e}"));
    let opts = ConvertOptions::new(
        TargetProfile::named("redis-6.2")
            .cloned()
            .unwrap_or_else(|| panic!()),
    );
    let (shards, _) = convert_split(
        &data,
        &Default::default(),
        &opts,
        vec![Vec::new(), Vec::new()],
        Some(&map),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut all: Vec<_> = shards.iter().flat_map(|s| expiries(s)).collect();
    all.sort();
    assert_eq!(all, vec![(b"k1".to_vec(), Some(t)), (b"k2".to_vec(), None)]);
    // And a plain conversion keeps it too.
    let (out, _) = convert(
        &data,
        &Default::default(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        expiries(&out),
        vec![(b"k1".to_vec(), Some(t)), (b"k2".to_vec(), None)]
    );
}
