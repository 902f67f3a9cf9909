//! Splitting by cluster slot and filtering, without servers: the union of the shards is
//! the (filtered) input, every key sits in the shard that owns its slot, and values are
//! unchanged. tests/cluster.rs loads shards into a real cluster.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

mod common;

use std::collections::BTreeMap;

use common::{canonical, export, fixtures_dir, keys, rdb_files};
use proptest::prelude::*;
use rdb_parser::ParserBuilder;
use rdb_writer::convert::{
    convert, convert_split, ConvertOptions, DbPolicy, FieldTtlPolicy, FunctionPolicy,
};
use rdb_writer::filter::{Filter, KeyPattern, TtlPresence};
use rdb_writer::slot::{key_slot, SlotMap};
use rdb_writer::{value, Compression, TargetProfile, Writer};
use serde_json::Value;

fn key_bytes(k: &Value) -> Vec<u8> {
    match k {
        Value::String(s) => s.as_bytes().to_vec(),
        other => {
            use base64::Engine as _;
            let b64 = other["base64"].as_str().unwrap_or_default();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default()
        }
    }
}

fn opts(version: u32) -> ConvertOptions {
    let mut o =
        ConvertOptions::new(TargetProfile::for_version(version).unwrap_or_else(|| panic!()));
    o.field_ttls = FieldTtlPolicy::Drop;
    o.functions = FunctionPolicy::Drop;
    o.dbs = DbPolicy::DropOthers;
    o
}

/// Splits `data` and checks ownership and that the union equals the db-0 export.
fn split_and_check(data: &[u8], slots: &SlotMap, version: u32) -> Result<(), TestCaseError> {
    let source = export(data).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let outs = vec![Vec::new(); slots.len()];
    let (outs, summary) = convert_split(
        data,
        &ParserBuilder::new(),
        &opts(version),
        outs,
        Some(slots),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut union: BTreeMap<Vec<u8>, Value> = BTreeMap::new();
    for (i, out) in outs.iter().enumerate() {
        let lines = export(out).map_err(|e| TestCaseError::fail(format!("shard {i}: {e}")))?;
        prop_assert_eq!(summary.outputs[i].keys as usize, keys(&lines).len());
        prop_assert_eq!(summary.outputs[i].bytes as usize, out.len());
        for k in keys(&lines) {
            let kb = key_bytes(&k["key"]);
            prop_assert_eq!(
                slots.shard_of(&kb),
                i,
                "key {:?} (slot {}) in shard {}",
                kb,
                key_slot(&kb),
                i
            );
            prop_assert_eq!(&k["db"], &Value::from(0));
            prop_assert!(union.insert(kb, k.clone()).is_none(), "a key in two shards");
        }
    }
    let wanted: Vec<&Value> = keys(&source).into_iter().filter(|k| k["db"] == 0).collect();
    prop_assert_eq!(union.len(), wanted.len());
    for w in wanted {
        let got = union
            .get(&key_bytes(&w["key"]))
            .ok_or_else(|| TestCaseError::fail("missing key"))?;
        let ty = w["type"].as_str().unwrap_or_default();
        prop_assert_eq!(&got["expire_ms"], &w["expire_ms"]);
        if ty != "stream" && ty != "hash" {
            prop_assert_eq!(canonical(ty, &got["value"]), canonical(ty, &w["value"]));
        }
    }
    Ok(())
}

#[test]
fn every_fixture_splits_into_owned_shards() {
    for dir in std::fs::read_dir(fixtures_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        for rdb in rdb_files(&dir.path()) {
            let data = std::fs::read(&rdb).unwrap_or_default();
            let version = rdb_parser::Parser::new(&data)
                .map(|p| p.version().number)
                .unwrap_or(0);
            for shards in [1, 3, 7] {
                let map = SlotMap::even(shards).unwrap_or_else(|e| panic!("{e}"));
                split_and_check(&data, &map, version)
                    .unwrap_or_else(|e| panic!("{}: {e}", rdb.display()));
            }
        }
    }
}

/// A file of string keys: arbitrary bytes, some with hash tags, some with expiry.
fn keyspace() -> impl Strategy<Value = Vec<(Vec<u8>, Option<i64>)>> {
    let key = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..24),
        ("[a-z]{0,4}", "[a-z0-9]{0,3}", "[a-z]{0,4}")
            .prop_map(|(a, t, b)| format!("{a}{{{t}}}{b}").into_bytes()),
    ];
    proptest::collection::btree_map(key, proptest::option::of(1i64..4_000_000_000_000), 0..200)
        .prop_map(|m| m.into_iter().collect())
}

fn write_keys(keys: &[(Vec<u8>, Option<i64>)]) -> Vec<u8> {
    let mut w =
        Writer::new(Vec::new(), rdb_parser::Version::redis(11)).unwrap_or_else(|e| panic!("{e}"));
    let _ = w.select_db(0);
    for (k, t) in keys {
        if let Some(t) = t {
            let _ = w.expire_ms(*t);
        }
        let _ = w.key_value(0, k, &value::string(k, Compression::None));
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// Random cut points give random contiguous shards.
fn slot_maps() -> impl Strategy<Value = SlotMap> {
    proptest::collection::btree_set(1u16..16384, 0..6).prop_map(|cuts| {
        let mut shards = Vec::new();
        let mut start = 0u16;
        for c in cuts {
            shards.push(vec![(start, c - 1)]);
            start = c;
        }
        shards.push(vec![(start, 16383)]);
        SlotMap::new(shards).unwrap_or_else(|e| panic!("{e}"))
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn shards_partition_any_keyspace(keys in keyspace(), slots in slot_maps()) {
        let data = write_keys(&keys);
        split_and_check(&data, &slots, 11)?;
    }

    /// Each filter keeps exactly the keys its predicate names.
    #[test]
    fn filters_keep_exactly_what_they_say(space in keyspace(), now in 1i64..4_000_000_000_000) {
        let data = write_keys(&space);
        let cases: Vec<(Filter, Box<dyn Fn(&[u8], Option<i64>) -> bool>)> = vec![
            (Filter { include: vec![KeyPattern::glob("a*").unwrap_or_else(|e| panic!("{e}"))], ..Filter::default() },
             Box::new(|k, _| k.starts_with(b"a"))),
            (Filter { exclude: vec![KeyPattern::regex(r"\xff").unwrap_or_else(|e| panic!("{e}"))], ..Filter::default() },
             Box::new(|k, _| !k.contains(&0xff))),
            (Filter { drop_expired: true, now_ms: now, ..Filter::default() },
             Box::new(move |_, t| t.is_none_or(|t| t > now))),
            (Filter { ttl: TtlPresence::Without, ..Filter::default() }, Box::new(|_, t| t.is_none())),
            (Filter { min_ttl_ms: Some(1000), now_ms: now, ..Filter::default() },
             Box::new(move |_, t| t.is_some_and(|t| t - now >= 1000))),
        ];
        for (filter, predicate) in cases {
            let mut o = opts(11);
            o.filter = filter;
            let (out, summary) = convert(&data, &ParserBuilder::new(), &o, Vec::new(), &mut |_| Ok(()), &mut |_| {})
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            let lines = export(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let got: Vec<Vec<u8>> = keys(&lines).iter().map(|k| key_bytes(&k["key"])).collect();
            let want: Vec<Vec<u8>> = space.iter().filter(|(k, t)| predicate(k, *t)).map(|(k, _)| k.clone()).collect();
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(summary.keys_filtered as usize, space.len() - want.len());
        }
    }
}

#[test]
fn cluster_targets_need_db_0() {
    let data = std::fs::read(fixtures_dir().join("redis-6.2/types.rdb")).unwrap_or_default();
    let mut o = opts(9);
    o.dbs = DbPolicy::Keep;
    let map = SlotMap::even(3).unwrap_or_else(|e| panic!("{e}"));
    let r = convert_split(
        &data,
        &ParserBuilder::new(),
        &o,
        vec![Vec::new(); 3],
        Some(&map),
        &mut |_| Ok(()),
        &mut |_| {},
    );
    let err = r.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("cluster keeps only db 0"), "{err}");
    // --db-map 1:0 and 5:0 merge them in, with the merge check on.
    o.db_map = [(1, 0), (5, 0)].into_iter().collect();
    let r = convert_split(
        &data,
        &ParserBuilder::new(),
        &o,
        vec![Vec::new(); 3],
        Some(&map),
        &mut |_| Ok(()),
        &mut |_| {},
    );
    assert!(r.is_ok(), "{:?}", r.err().map(|e| e.to_string()));
}

fn string_values(data: &[u8]) -> BTreeMap<Vec<u8>, (Value, Value)> {
    let lines = export(data).unwrap_or_else(|e| panic!("{e}"));
    keys(&lines)
        .into_iter()
        .map(|k| {
            (
                key_bytes(&k["key"]),
                (k["value"].clone(), k["expire_ms"].clone()),
            )
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Joining the shards of a split gives back every key with its value and expiry.
    #[test]
    fn merge_of_split_is_identity(space in keyspace(), slots in slot_maps()) {
        use rdb_writer::convert::{merge, ConflictPolicy};
        let data = write_keys(&space);
        let (shards, _) = convert_split(&data, &ParserBuilder::new(), &opts(11), vec![Vec::new(); slots.len()], Some(&slots), &mut |_| Ok(()), &mut |_| {})
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let inputs: Vec<&[u8]> = shards.iter().map(Vec::as_slice).collect();
        let (merged, summary) = merge(&inputs, &ParserBuilder::new(), &opts(11), ConflictPolicy::Error, Vec::new(), &mut |_| Ok(()), &mut |_| {})
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(summary.keys_written as usize, space.len());
        prop_assert_eq!(string_values(&merged), string_values(&data));
    }
}

#[test]
fn merge_conflicts_follow_the_policy() {
    use rdb_writer::convert::{merge, ConflictPolicy};
    let file = |v: &[u8]| {
        let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(9))
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = w.select_db(0);
        let _ = w.key_value(0, b"shared", &value::string(v, Compression::None));
        let _ = w.key_value(0, v, &value::string(v, Compression::None));
        w.finish().unwrap_or_else(|e| panic!("{e}"))
    };
    let (a, b) = (file(b"first"), file(b"second"));
    let inputs: Vec<&[u8]> = vec![&a, &b];
    let run = |policy| {
        merge(
            &inputs,
            &ParserBuilder::new(),
            &opts(9),
            policy,
            Vec::new(),
            &mut |_| Ok(()),
            &mut |_| {},
        )
        .map(|(out, _)| string_values(&out))
        // The CLI's wording: the writer's error with the flags for its kind.
        .map_err(|e| rdb_cli::convert::failure(e, rdb_cli::convert::HintFor::Convert).to_string())
    };
    let err = run(ConflictPolicy::Error).err().unwrap_or_default();
    assert!(
        err.contains("\"shared\"") && err.contains("--on-conflict"),
        "{err}"
    );
    for (policy, kept) in [
        (ConflictPolicy::First, "first"),
        (ConflictPolicy::Last, "second"),
    ] {
        let got = run(policy).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.len(), 3);
        assert_eq!(
            got.get(&b"shared"[..]).map(|v| v.0.clone()),
            Some(Value::from(kept))
        );
    }
}
