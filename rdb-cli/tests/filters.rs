//! Each filter on the real-server fixtures: the kept keys are exactly those the predicate
//! names, computed independently from the export of the source.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::type_complexity
)]

mod common;

use common::{export, fixtures_dir, keys};
use rdb_parser::ParserBuilder;
use rdb_writer::convert::{
    convert, ConvertOptions, DbPolicy, FieldTtlPolicy, FunctionPolicy, ModulePolicy,
};
use rdb_writer::filter::{Filter, TtlPresence};
use rdb_writer::TargetProfile;
use serde_json::Value;

fn ids(lines: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = keys(lines)
        .iter()
        .map(|k| format!("{}/{}", k["db"], k["key"]))
        .collect();
    v.sort();
    v
}

/// The element count the export shows: array lengths, a stream's length, 1 otherwise.
fn elements(k: &Value) -> u64 {
    match (&k["value"], k["type"].as_str()) {
        (Value::Array(a), _) => a.len() as u64,
        (v, Some("stream")) => v["length"].as_u64().unwrap_or(0),
        _ => 1,
    }
}

fn run(data: &[u8], filter: Filter, db_map: &[(u64, u64)]) -> Vec<Value> {
    let mut o = ConvertOptions::new(TargetProfile::for_version(12).unwrap_or_else(|| panic!()));
    o.field_ttls = FieldTtlPolicy::Drop;
    o.functions = FunctionPolicy::Drop;
    o.modules = ModulePolicy::Keep;
    o.dbs = DbPolicy::Keep;
    o.db_map = db_map.iter().copied().collect();
    o.filter = filter;
    let (out, _) = convert(
        data,
        &ParserBuilder::new(),
        &o,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    export(&out).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn each_filter_keeps_exactly_its_keys() {
    let data = std::fs::read(fixtures_dir().join("redis-7.4/types.rdb")).unwrap_or_default();
    let modules = std::fs::read(fixtures_dir().join("redis-7.4/modules.rdb")).unwrap_or_default();
    let source = export(&data).unwrap_or_else(|e| panic!("{e}"));
    let now = 1_800_000_000_000i64;
    let sizes: std::collections::HashMap<String, u64> = rdb_parser::Parser::new(&data)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|i| match i {
            rdb_parser::Item::Key(e) => Some((
                format!(
                    "{}/{}",
                    e.db,
                    serde_json::to_string(&String::from_utf8_lossy(&e.key)).unwrap_or_default()
                ),
                e.raw_value.len() as u64,
            )),
            _ => None,
        })
        .collect();
    let expect = |pred: &dyn Fn(&Value) -> bool| -> Vec<String> {
        let kept: Vec<Value> = keys(&source)
            .into_iter()
            .filter(|k| pred(k))
            .cloned()
            .collect();
        ids(&kept)
    };
    let set = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect());
    let ttl = |k: &Value| k["expire_ms"].as_i64();
    let cases: Vec<(&str, Filter, Box<dyn Fn(&Value) -> bool>)> = vec![
        (
            "type",
            Filter {
                types: set(&["hash", "zset"]),
                ..Filter::default()
            },
            Box::new(|k| k["type"] == "hash" || k["type"] == "zset"),
        ),
        (
            "encoding",
            Filter {
                encodings: set(&["listpack"]),
                ..Filter::default()
            },
            Box::new(|k| k["encoding"] == "listpack"),
        ),
        (
            "db",
            Filter {
                dbs: Some([1, 5].into_iter().collect()),
                ..Filter::default()
            },
            Box::new(|k| k["db"] == 1 || k["db"] == 5),
        ),
        (
            "has-ttl",
            Filter {
                ttl: TtlPresence::With,
                ..Filter::default()
            },
            Box::new(move |k| ttl(k).is_some()),
        ),
        (
            "expired",
            Filter {
                drop_expired: true,
                now_ms: now,
                ..Filter::default()
            },
            Box::new(move |k| ttl(k).is_none_or(|t| t > now)),
        ),
        (
            "max-ttl",
            Filter {
                max_ttl_ms: Some(10_000_000),
                now_ms: now,
                ..Filter::default()
            },
            Box::new(move |k| ttl(k).is_some_and(|t| t - now <= 10_000_000)),
        ),
        (
            "min-bytes",
            Filter {
                min_bytes: Some(100),
                ..Filter::default()
            },
            Box::new(|k| {
                sizes
                    .get(&format!("{}/{}", k["db"], k["key"]))
                    .is_some_and(|s| *s >= 100)
            }),
        ),
        (
            "max-elements",
            Filter {
                max_elements: Some(3),
                ..Filter::default()
            },
            Box::new(|k| elements(k) <= 3),
        ),
    ];
    for (name, filter, pred) in cases {
        let got = ids(&run(&data, filter, &[]));
        let want = expect(&*pred);
        assert!(
            !want.is_empty() && want.len() < keys(&source).len(),
            "{name}: the case must split the keyspace"
        );
        assert_eq!(got, want, "{name}");
    }
    // Module types by name.
    let with_modules = export(&modules).unwrap_or_default();
    let names: Vec<String> = keys(&with_modules)
        .iter()
        .filter_map(|k| k["value"]["module"].as_str().map(str::to_owned))
        .collect();
    let first = names.first().cloned().unwrap_or_default();
    let kept = run(
        &modules,
        Filter {
            exclude_modules: [first.clone()].into_iter().collect(),
            ..Filter::default()
        },
        &[],
    );
    assert!(keys(&kept)
        .iter()
        .all(|k| k["value"]["module"] != first.as_str()));
    assert_eq!(
        keys(&kept).len(),
        keys(&with_modules).len() - names.iter().filter(|n| **n == first).count()
    );
    // --db-map moves a database.
    let moved = run(&data, Filter::default(), &[(5, 2)]);
    let from5 = keys(&source).iter().filter(|k| k["db"] == 5).count();
    assert!(from5 > 0);
    assert_eq!(keys(&moved).iter().filter(|k| k["db"] == 2).count(), from5);
    assert_eq!(keys(&moved).iter().filter(|k| k["db"] == 5).count(), 0);
}
