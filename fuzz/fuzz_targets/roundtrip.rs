//! parse(write(v)) == v: arbitrary keys and values, written with each of the writer's
//! value encoders into one file, read back equal (and with a valid checksum).
#![no_main]

mod common;

use arbitrary::Arbitrary;
use common::{Bytes, Model};
use libfuzzer_sys::fuzz_target;
use rdb_parser::format::type_id;
use rdb_parser::{Checksum, Item, ParserBuilder, Version};
use rdb_writer::{value, Compression, Writer};

#[derive(Debug, Arbitrary)]
struct Input {
    /// Raises the file version above the lowest one that has every written type.
    newer: u8,
    compress: bool,
    aux: Vec<(Bytes, Bytes)>,
    keys: Vec<KeyIn>,
}

#[derive(Debug, Arbitrary)]
struct KeyIn {
    db: u8,
    key: Bytes,
    expire_ms: Option<i64>,
    value: ValueIn,
}

#[derive(Debug, Arbitrary)]
enum ValueIn {
    String(Bytes),
    ListPlain(Vec<Bytes>),
    ListQuicklist(Vec<Bytes>),
    ListQuicklist2(Vec<Bytes>),
    SetPlain(Vec<Bytes>),
    SetIntset(Vec<i64>),
    SetListpack(Vec<Bytes>),
    ZSetPlain(Vec<(Bytes, f64)>),
    ZSet2(Vec<(Bytes, f64)>),
    ZSetZiplist(Vec<(Bytes, f64)>),
    ZSetListpack(Vec<(Bytes, f64)>),
    HashPlain(Vec<(Bytes, Bytes)>),
    HashZiplist(Vec<(Bytes, Bytes)>),
    HashListpack(Vec<(Bytes, Bytes)>),
}

/// Type byte, encoded value, the lowest RDB version with that type, and what it holds.
fn encode(v: &ValueIn, c: Compression) -> Option<(u8, Vec<u8>, u32, Model)> {
    let set = |m: &[Bytes]| {
        let mut m = m.to_vec();
        m.sort();
        Model::Set(m)
    };
    let zset = |m: &[(Bytes, f64)]| {
        let mut m: Vec<(Bytes, common::Score)> = m
            .iter()
            .map(|(k, s)| (k.clone(), common::Score(*s)))
            .collect();
        m.sort_by(|a, b| a.0.cmp(&b.0).then(a.1 .0.total_cmp(&b.1 .0)));
        Model::ZSet(m)
    };
    let hash = |m: &[(Bytes, Bytes)]| {
        let mut m: Vec<_> = m
            .iter()
            .map(|(f, v)| (f.clone(), v.clone(), None))
            .collect();
        m.sort();
        Model::Hash(m)
    };
    // NaN is no score a server stores.
    if let ValueIn::ZSetPlain(m)
    | ValueIn::ZSet2(m)
    | ValueIn::ZSetZiplist(m)
    | ValueIn::ZSetListpack(m) = v
    {
        if m.iter().any(|(_, s)| s.is_nan()) {
            return None;
        }
    }
    Some(match v {
        ValueIn::String(s) => (
            type_id::STRING,
            value::string(s, c),
            1,
            Model::String(s.clone()),
        ),
        ValueIn::ListPlain(l) => (
            type_id::LIST,
            value::list_plain(l, c),
            1,
            Model::List(l.clone()),
        ),
        ValueIn::ListQuicklist(l) => (
            type_id::LIST_QUICKLIST,
            value::list_quicklist(l, c).ok()?,
            7,
            Model::List(l.clone()),
        ),
        ValueIn::ListQuicklist2(l) => (
            type_id::LIST_QUICKLIST_2,
            value::list_quicklist2(l, c).ok()?,
            10,
            Model::List(l.clone()),
        ),
        ValueIn::SetPlain(m) => (type_id::SET, value::set_plain(m, c), 1, set(m)),
        ValueIn::SetIntset(m) => {
            let mut ints = m.clone();
            ints.sort_unstable();
            ints.dedup();
            let members: Vec<Bytes> = ints.iter().map(|i| i.to_string().into_bytes()).collect();
            (
                type_id::SET_INTSET,
                value::set_intset(m, c).ok()?,
                2,
                set(&members),
            )
        }
        ValueIn::SetListpack(m) => (
            type_id::SET_LISTPACK,
            value::set_listpack(m, c).ok()?,
            11,
            set(m),
        ),
        ValueIn::ZSetPlain(m) => (type_id::ZSET, value::zset_plain(m, c), 1, zset(m)),
        ValueIn::ZSet2(m) => (type_id::ZSET_2, value::zset_2(m, c), 8, zset(m)),
        ValueIn::ZSetZiplist(m) => (
            type_id::ZSET_ZIPLIST,
            value::zset_ziplist(m, c).ok()?,
            2,
            zset(m),
        ),
        ValueIn::ZSetListpack(m) => (
            type_id::ZSET_LISTPACK,
            value::zset_listpack(m, c).ok()?,
            10,
            zset(m),
        ),
        ValueIn::HashPlain(m) => (type_id::HASH, value::hash_plain(m, c), 1, hash(m)),
        ValueIn::HashZiplist(m) => (
            type_id::HASH_ZIPLIST,
            value::hash_ziplist(m, c).ok()?,
            2,
            hash(m),
        ),
        ValueIn::HashListpack(m) => (
            type_id::HASH_LISTPACK,
            value::hash_listpack(m, c).ok()?,
            10,
            hash(m),
        ),
    })
}

fuzz_target!(|input: Input| {
    let c = if input.compress {
        Compression::Lzf
    } else {
        Compression::None
    };
    let mut encoded = Vec::new();
    let mut lowest = 9;
    for k in &input.keys {
        let Some((t, bytes, since, model)) = encode(&k.value, c) else {
            return;
        };
        lowest = lowest.max(since);
        let want = common::Key {
            db: u64::from(k.db % 16),
            key: k.key.clone(),
            expire_ms: k.expire_ms,
            value: model,
        };
        encoded.push((t, bytes, want));
    }
    let version = Version::redis((lowest + u32::from(input.newer % 4)).min(12));
    let file = (|| -> std::io::Result<Vec<u8>> {
        let mut w = Writer::new(Vec::new(), version)?;
        for (key, value) in &input.aux {
            w.aux(key, value)?;
        }
        let mut db = None;
        for (t, bytes, want) in &encoded {
            if db != Some(want.db) {
                w.select_db(want.db)?;
                db = Some(want.db);
            }
            if let Some(ms) = want.expire_ms {
                w.expire_ms(ms)?;
            }
            w.key_value(*t, &want.key, bytes)?;
        }
        w.finish()
    })()
    .unwrap_or_else(|e| panic!("write: {e}"));

    let mut builder = ParserBuilder::new();
    builder.allow_empty_keys(true);
    let want: Vec<common::Key> = encoded.into_iter().map(|(_, _, k)| k).collect();
    let got =
        common::keys(&file, &builder).unwrap_or_else(|e| panic!("read back ({version}): {e}"));
    assert_eq!(got, want, "{version}");
    // AUX fields and the checksum come back too.
    let mut aux = Vec::new();
    let mut checksum = None;
    for item in builder.parse(&file).unwrap_or_else(|e| panic!("{e}")) {
        match item.unwrap_or_else(|e| panic!("{e}")) {
            Item::Aux(a) => aux.push((a.key.to_vec(), a.value.to_vec())),
            Item::Eof(e) => checksum = Some(e.checksum),
            _ => {}
        }
    }
    assert_eq!(aux, input.aux);
    assert!(
        matches!(checksum, Some(Checksum::Verified(_))),
        "{checksum:?}"
    );
});
