//! `parse(write(v)) == v` for every value encoder: each value is written into a whole file
//! with `Writer`, read back with `rdb_parser::Parser` (which verifies the CRC64 trailer)
//! and decoded element by element through the parser's public API.

#![allow(clippy::indexing_slicing, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use proptest::collection::{btree_map, btree_set, vec};
use proptest::prelude::*;
use rdb_parser::format::type_id;
use rdb_parser::{Checksum, Item, Parser, Value, Version};
use rdb_writer::{value, Compression, Writer};

type Bytes = Vec<u8>;

/// A value as the parser hands it back, fully decoded.
#[derive(Debug, Clone, PartialEq)]
enum Decoded {
    String(Bytes),
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    ZSet(Vec<(Bytes, f64)>),
    Hash(Vec<(Bytes, Bytes)>),
}

/// One parsed key: its type byte, key, expiry and decoded value.
#[derive(Debug, Clone, PartialEq)]
struct Key {
    type_id: u8,
    key: Bytes,
    expire_ms: Option<i64>,
    value: Decoded,
}

fn decode(value: &Value<'_>) -> Result<Decoded, rdb_parser::Error> {
    Ok(match value {
        Value::String(s) => Decoded::String(s.to_bytes()?.into_owned()),
        Value::List(l) => Decoded::List(
            l.iter()
                .map(|e| e.map(|e| e.to_bytes().into_owned()))
                .collect::<Result<_, _>>()?,
        ),
        Value::Set(s) => Decoded::Set(
            s.iter()
                .map(|e| e.map(|e| e.to_bytes().into_owned()))
                .collect::<Result<_, _>>()?,
        ),
        Value::ZSet(z) => Decoded::ZSet(
            z.iter()
                .map(|e| e.map(|(m, s)| (m.to_bytes().into_owned(), s)))
                .collect::<Result<_, _>>()?,
        ),
        Value::Hash(h) => Decoded::Hash(
            h.iter()
                .map(|f| {
                    f.map(|f| {
                        (
                            f.field.to_bytes().into_owned(),
                            f.value.to_bytes().into_owned(),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        ),
        other => panic!("unexpected {} value", other.type_name()),
    })
}

/// Parses a whole file, requiring EOF with the checksum the version calls for.
fn parse_all(file: &[u8]) -> Vec<Key> {
    let parser = Parser::new(file).unwrap_or_else(|e| panic!("header: {e}"));
    let version = parser.version();
    let mut keys = Vec::new();
    let mut eof = None;
    for item in parser {
        match item.unwrap_or_else(|e| panic!("parse: {e}")) {
            Item::Key(e) => keys.push(Key {
                type_id: e.type_id,
                key: e.key.to_vec(),
                expire_ms: e.expire_ms,
                value: decode(&e.value).unwrap_or_else(|err| panic!("decode: {err}")),
            }),
            Item::Eof(e) => eof = Some(e),
            _ => {}
        }
    }
    let eof = eof.unwrap_or_else(|| panic!("no EOF"));
    assert_eq!(eof.trailing, 0);
    if version.has_checksum() {
        assert!(
            matches!(eof.checksum, Checksum::Verified(_)),
            "{:?}",
            eof.checksum
        );
    } else {
        assert_eq!(eof.checksum, Checksum::Absent);
    }
    keys
}

/// Writes one key into a file of `version` and reads it back.
fn roundtrip(version: Version, type_id: u8, key: &[u8], encoded: &[u8]) -> Decoded {
    let file = (|| -> std::io::Result<Vec<u8>> {
        let mut w = Writer::new(Vec::new(), version)?;
        if version.number >= 7 {
            w.aux(b"redis-ver", b"7.2.4")?;
            w.aux(b"redis-bits", b"64")?;
        }
        w.select_db(0)?;
        if version.number >= 7 {
            w.resize_db(1, 0)?;
        }
        w.key_value(type_id, key, encoded)?;
        w.finish()
    })()
    .unwrap_or_else(|e| panic!("write: {e}"));
    let mut keys = parse_all(&file);
    assert_eq!(keys.len(), 1);
    let k = keys.remove(0);
    assert_eq!(k.type_id, type_id);
    assert_eq!(k.key, key);
    k.value
}

fn sorted(mut v: Vec<Bytes>) -> Vec<Bytes> {
    v.sort();
    v
}

fn by_member(mut v: Vec<(Bytes, f64)>) -> Vec<(Bytes, f64)> {
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Asserts two zsets hold the same members with equal scores (NaN is never generated).
fn assert_zset_eq(got: Decoded, want: &BTreeMap<Bytes, f64>) {
    let Decoded::ZSet(got) = got else {
        panic!("not a zset: {got:?}")
    };
    let want: Vec<(Bytes, f64)> = want.iter().map(|(m, s)| (m.clone(), *s)).collect();
    let got = by_member(got);
    assert_eq!(got.len(), want.len());
    for ((gm, gs), (wm, ws)) in got.iter().zip(&want) {
        assert_eq!(gm, wm);
        assert!(gs == ws, "score of {wm:?}: got {gs}, wrote {ws}");
    }
}

const EDGE_STRINGS: &[&str] = &[
    "0",
    "12",
    "13",
    "-1",
    "63",
    "64",
    "127",
    "128",
    "4095",
    "4096",
    "-4096",
    "-4097",
    "32767",
    "32768",
    "-32768",
    "-32769",
    "8388607",
    "8388608",
    "-8388608",
    "-8388609",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "01",
    "-0",
    "+1",
    "00",
    "1 ",
    " 1",
    "1.5",
    "",
    "-",
    "12345678901234567890",
    "123456789012345678901",
    "-1234567890123456789",
];

fn edge_elements() -> Vec<Bytes> {
    EDGE_STRINGS.iter().map(|s| s.as_bytes().to_vec()).collect()
}

/// Element bytes: random, canonical integers, edge cases, compressible and mid-sized.
fn element() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..24),
        3 => any::<i64>().prop_map(|v| v.to_string().into_bytes()),
        3 => (-10_000i64..10_000).prop_map(|v| v.to_string().into_bytes()),
        2 => prop::sample::select(EDGE_STRINGS).prop_map(|s| s.as_bytes().to_vec()),
        2 => ("[a-c]{1,4}", 6usize..100).prop_map(|(unit, n)| unit.repeat(n).into_bytes()),
        1 => vec(any::<u8>(), 60..5000),
    ]
}

/// Elements for lists, including an occasional one above the 8 KiB node limit.
fn list_element() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        30 => element(),
        1 => (8180usize..8200, any::<u8>()).prop_map(|(n, b)| {
            (0..n).map(|i| b.wrapping_add((i % 7) as u8)).collect()
        }),
    ]
}

fn score() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("NaN is not a score", |s| !s.is_nan()),
        (-1_000_000i64..1_000_000).prop_map(|v| v as f64),
        (-1000i64..1000).prop_map(|v| v as f64 / 8.0),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
    ]
}

fn compression() -> impl Strategy<Value = Compression> {
    prop_oneof![Just(Compression::Lzf), Just(Compression::None)]
}

fn key() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        vec(any::<u8>(), 0..30),
        any::<i32>().prop_map(|v| v.to_string().into_bytes()),
        "[a-z:]{1,3}".prop_map(|s| s.repeat(20).into_bytes()),
    ]
}

const V9: Version = Version::redis(9);
const V11: Version = Version::redis(11);

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn strings(k in key(), v in prop_oneof![element(), list_element()], c in compression()) {
        for version in [Version::redis(4), V9, V11, Version::valkey(80)] {
            let got = roundtrip(version, type_id::STRING, &k, &value::string(&v, c));
            prop_assert_eq!(got, Decoded::String(v.clone()));
        }
    }

    /// Low-entropy bytes of every length LZF is tried at: each compressed form decodes back.
    #[test]
    fn lzf_strings(alphabet in 1u8..12, v in vec(any::<u8>(), 21..3000)) {
        let v: Bytes = v.into_iter().map(|b| b % alphabet).collect();
        let encoded = value::string(&v, Compression::Lzf);
        prop_assert_eq!(roundtrip(V11, type_id::STRING, b"k", &encoded), Decoded::String(v));
    }

    #[test]
    fn lists(k in key(), items in vec(list_element(), 1..60), c in compression()) {
        let encoded = value::list_quicklist2(&items, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(roundtrip(V11, type_id::LIST_QUICKLIST_2, &k, &encoded), Decoded::List(items.clone()));
        let encoded = value::list_quicklist(&items, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(roundtrip(V9, type_id::LIST_QUICKLIST, &k, &encoded), Decoded::List(items.clone()));
        let encoded = value::list_plain(&items, c);
        prop_assert_eq!(roundtrip(V9, type_id::LIST, &k, &encoded), Decoded::List(items));
    }

    #[test]
    fn sets(k in key(), members in btree_set(element(), 1..60), c in compression()) {
        let members: Vec<Bytes> = members.into_iter().collect();
        let encoded = value::set_listpack(&members, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Decoded::Set(got) = roundtrip(V11, type_id::SET_LISTPACK, &k, &encoded) else { panic!() };
        prop_assert_eq!(sorted(got), sorted(members.clone()));
        let encoded = value::set_plain(&members, c);
        let Decoded::Set(got) = roundtrip(V9, type_id::SET, &k, &encoded) else { panic!() };
        prop_assert_eq!(sorted(got), sorted(members));
    }

    #[test]
    fn intsets(k in key(), members in vec(prop_oneof![any::<i64>(), -70_000i64..70_000, -100i64..100], 1..80), c in compression()) {
        let encoded = value::set_intset(&members, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let Decoded::Set(got) = roundtrip(V11, type_id::SET_INTSET, &k, &encoded) else { panic!() };
        let want: BTreeSet<i64> = members.iter().copied().collect();
        let want: Vec<Bytes> = want.iter().map(|v| v.to_string().into_bytes()).collect();
        // An intset comes back in ascending order, not just as the same multiset.
        prop_assert_eq!(got, want);
    }

    #[test]
    fn zsets(k in key(), members in btree_map(element(), score(), 1..60), c in compression()) {
        let pairs: Vec<(Bytes, f64)> = members.iter().map(|(m, s)| (m.clone(), *s)).collect();
        for (tid, version, encoded) in [
            (type_id::ZSET_LISTPACK, V11, value::zset_listpack(&pairs, c).map_err(|e| TestCaseError::fail(e.to_string()))?),
            (type_id::ZSET_ZIPLIST, V9, value::zset_ziplist(&pairs, c).map_err(|e| TestCaseError::fail(e.to_string()))?),
            (type_id::ZSET_2, V9, value::zset_2(&pairs, c)),
            (type_id::ZSET, Version::redis(6), value::zset_plain(&pairs, c)),
        ] {
            let got = roundtrip(version, tid, &k, &encoded);
            if let Decoded::ZSet(z) = &got {
                // Blobs ascend by score, skiplist forms descend, as the server writes them.
                let scores: Vec<f64> = z.iter().map(|p| p.1).collect();
                let ascending = matches!(tid, type_id::ZSET_LISTPACK | type_id::ZSET_ZIPLIST);
                prop_assert!(scores.windows(2).all(|w| if ascending { w[0] <= w[1] } else { w[0] >= w[1] }), "{:?}", scores);
            }
            assert_zset_eq(got, &members);
        }
    }

    #[test]
    fn hashes(k in key(), fields in btree_map(element(), element(), 1..60), c in compression()) {
        let pairs: Vec<(Bytes, Bytes)> = fields.into_iter().collect();
        let lp = value::hash_listpack(&pairs, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(roundtrip(V11, type_id::HASH_LISTPACK, &k, &lp), Decoded::Hash(pairs.clone()));
        let zl = value::hash_ziplist(&pairs, c).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(roundtrip(V9, type_id::HASH_ZIPLIST, &k, &zl), Decoded::Hash(pairs.clone()));
        let plain = value::hash_plain(&pairs, c);
        prop_assert_eq!(roundtrip(V9, type_id::HASH, &k, &plain), Decoded::Hash(pairs));
    }
}

/// Integer edge values keep their exact bytes through every blob and plain form.
#[test]
fn integer_edge_strings_survive_every_encoding() -> Result<(), rdb_writer::Error> {
    let items = edge_elements();
    for c in [Compression::Lzf, Compression::None] {
        let want = Decoded::List(items.clone());
        assert_eq!(
            roundtrip(
                V11,
                type_id::LIST_QUICKLIST_2,
                b"l",
                &value::list_quicklist2(&items, c)?
            ),
            want
        );
        assert_eq!(
            roundtrip(
                V9,
                type_id::LIST_QUICKLIST,
                b"l",
                &value::list_quicklist(&items, c)?
            ),
            want
        );
        assert_eq!(
            roundtrip(V9, type_id::LIST, b"l", &value::list_plain(&items, c)),
            want
        );
        let Decoded::Set(got) = roundtrip(
            V11,
            type_id::SET_LISTPACK,
            b"s",
            &value::set_listpack(&items, c)?,
        ) else {
            panic!("not a set")
        };
        assert_eq!(got, items);
        for s in &items {
            assert_eq!(
                roundtrip(V11, type_id::STRING, s, &value::string(s, c)),
                Decoded::String(s.clone())
            );
        }
        // Each edge string as a field and as a value.
        let pairs: Vec<(Bytes, Bytes)> = items.iter().map(|s| (s.clone(), s.clone())).collect();
        let want = Decoded::Hash(pairs.clone());
        assert_eq!(
            roundtrip(
                V11,
                type_id::HASH_LISTPACK,
                b"h",
                &value::hash_listpack(&pairs, c)?
            ),
            want
        );
        assert_eq!(
            roundtrip(
                V9,
                type_id::HASH_ZIPLIST,
                b"h",
                &value::hash_ziplist(&pairs, c)?
            ),
            want
        );
    }
    Ok(())
}

/// Integral scores become integer entries; extreme ones keep their value.
#[test]
fn score_edges() -> Result<(), rdb_writer::Error> {
    let scores = [
        0.0,
        -0.0,
        12.0,
        13.0,
        -1.0,
        4096.0,
        -4097.0,
        8388608.0,
        2147483648.0,
        -2147483649.0,
        9007199254740993.0,
        1e20,
        1e21,
        1e300,
        -1e-300,
        5e-324,
        f64::MAX,
        f64::MIN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.1,
        1.0 / 3.0,
    ];
    let members: BTreeMap<Bytes, f64> = scores
        .iter()
        .enumerate()
        .map(|(i, s)| (format!("m{i}").into_bytes(), *s))
        .collect();
    let pairs: Vec<(Bytes, f64)> = members.iter().map(|(m, s)| (m.clone(), *s)).collect();
    let c = Compression::Lzf;
    assert_zset_eq(
        roundtrip(
            V11,
            type_id::ZSET_LISTPACK,
            b"z",
            &value::zset_listpack(&pairs, c)?,
        ),
        &members,
    );
    assert_zset_eq(
        roundtrip(
            V9,
            type_id::ZSET_ZIPLIST,
            b"z",
            &value::zset_ziplist(&pairs, c)?,
        ),
        &members,
    );
    assert_zset_eq(
        roundtrip(V9, type_id::ZSET_2, b"z", &value::zset_2(&pairs, c)),
        &members,
    );
    assert_zset_eq(
        roundtrip(V9, type_id::ZSET, b"z", &value::zset_plain(&pairs, c)),
        &members,
    );
    Ok(())
}

/// Large elements: PLAIN nodes in quicklist 2, lone ziplists in quicklist 1, wide
/// listpack and ziplist lengths, LZF-compressed blobs.
#[test]
fn large_elements() -> Result<(), rdb_writer::Error> {
    let mut items: Vec<Bytes> = Vec::new();
    for n in [8192usize, 8193, 16377, 16378, 16379, 70_000] {
        items.push((0..n).map(|i| (i % 251) as u8).collect());
        items.push(b"small".to_vec());
    }
    items.push(vec![b'z'; 100_000]);
    for c in [Compression::Lzf, Compression::None] {
        let want = Decoded::List(items.clone());
        assert_eq!(
            roundtrip(
                V11,
                type_id::LIST_QUICKLIST_2,
                b"l",
                &value::list_quicklist2(&items, c)?
            ),
            want
        );
        assert_eq!(
            roundtrip(
                V9,
                type_id::LIST_QUICKLIST,
                b"l",
                &value::list_quicklist(&items, c)?
            ),
            want
        );
        let pairs: Vec<(Bytes, Bytes)> = items
            .iter()
            .enumerate()
            .map(|(i, v)| (i.to_string().into_bytes(), v.clone()))
            .collect();
        let want = Decoded::Hash(pairs.clone());
        assert_eq!(
            roundtrip(
                V11,
                type_id::HASH_LISTPACK,
                b"h",
                &value::hash_listpack(&pairs, c)?
            ),
            want
        );
        assert_eq!(
            roundtrip(
                V9,
                type_id::HASH_ZIPLIST,
                b"h",
                &value::hash_ziplist(&pairs, c)?
            ),
            want
        );
    }
    Ok(())
}

/// String lengths at each boundary of the RDB length forms, as values and as keys.
#[test]
fn string_length_boundaries() {
    for n in [0usize, 1, 20, 21, 63, 64, 16383, 16384, 70_000] {
        let v: Bytes = (0..n).map(|i| (i * 7 % 256) as u8).collect();
        for c in [Compression::Lzf, Compression::None] {
            assert_eq!(
                roundtrip(V11, type_id::STRING, &v, &value::string(&v, c)),
                Decoded::String(v.clone()),
                "{n} bytes"
            );
        }
    }
}

/// A list long enough for many nodes, and a listpack past 65535 elements (count saturates).
#[test]
fn many_elements() -> Result<(), rdb_writer::Error> {
    let items: Vec<Bytes> = (0..70_000)
        .map(|i| format!("{}", i * 7 - 1000).into_bytes())
        .collect();
    let c = Compression::Lzf;
    assert_eq!(
        roundtrip(
            V11,
            type_id::LIST_QUICKLIST_2,
            b"l",
            &value::list_quicklist2(&items, c)?
        ),
        Decoded::List(items.clone())
    );
    assert_eq!(
        roundtrip(
            V9,
            type_id::LIST_QUICKLIST,
            b"l",
            &value::list_quicklist(&items, c)?
        ),
        Decoded::List(items.clone())
    );
    let Decoded::Set(got) = roundtrip(
        V11,
        type_id::SET_LISTPACK,
        b"s",
        &value::set_listpack(&items, c)?,
    ) else {
        panic!("not a set")
    };
    assert_eq!(got, items);
    Ok(())
}

/// Several databases, expiries and passthrough entries in one file.
#[test]
fn whole_file_with_passthrough() -> std::io::Result<()> {
    let mut w = Writer::new(Vec::new(), V11)?;
    w.aux(b"redis-ver", b"7.2.4")?;
    w.aux(b"ctime", b"1700000000")?;
    w.select_db(0)?;
    w.resize_db(2, 1)?;
    w.expire_ms(1_900_000_000_000)?;
    w.key_value(
        type_id::STRING,
        b"s",
        &value::string(b"12345", Compression::Lzf),
    )?;
    w.key_value(
        type_id::SET_INTSET,
        b"i",
        &value::set_intset(&[5, -5], Compression::Lzf)?,
    )?;
    w.select_db(5)?;
    w.key_value(
        type_id::HASH_LISTPACK,
        b"h",
        &value::hash_listpack(&[("f", "v")], Compression::Lzf)?,
    )?;
    let first = w.finish()?;

    // Copy every entry verbatim into a second file: same keys, same bytes after the header.
    let mut copy = Writer::new(Vec::new(), V11)?;
    for item in Parser::new(&first).map_err(std::io::Error::other)? {
        match item.map_err(std::io::Error::other)? {
            Item::Aux(a) => copy.aux(&a.key, &a.value)?,
            Item::SelectDb(db) => copy.select_db(db)?,
            Item::ResizeDb {
                db_size,
                expires_size,
            } => copy.resize_db(db_size, expires_size)?,
            Item::Key(e) => {
                if let Some(t) = e.expire_ms {
                    copy.expire_ms(t)?;
                }
                copy.raw_entry(e.type_id, e.raw_key, e.raw_value)?;
            }
            _ => {}
        }
    }
    let second = copy.finish()?;
    assert_eq!(first, second);

    let keys = parse_all(&second);
    assert_eq!(keys.len(), 3);
    assert_eq!(keys[0].expire_ms, Some(1_900_000_000_000));
    assert_eq!(keys[0].value, Decoded::String(b"12345".to_vec()));
    assert_eq!(
        keys[1].value,
        Decoded::Set(vec![b"-5".to_vec(), b"5".to_vec()])
    );
    assert_eq!(
        keys[2].value,
        Decoded::Hash(vec![(b"f".to_vec(), b"v".to_vec())])
    );
    Ok(())
}
