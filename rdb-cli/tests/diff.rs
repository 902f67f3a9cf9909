//! `rdbkit diff`: converted copies compare equal, each injected change is reported
//! exactly, and bucketed comparison (temporary files, re-split buckets) gives the same
//! answer as an in-memory one. Vector sets compare by content: against their conversion
//! for Redis 8.0, edited copies, and copies real 8.0 and 8.6 servers saved again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod servers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use common::{fixtures_dir, rdb_files};
use proptest::prelude::*;
use rdb_cli::diff::{diff, DiffOptions, DiffSummary, Difference};
use rdb_parser::format::type_id;
use rdb_parser::{ParserBuilder, Version};
use rdb_writer::convert::{
    convert, ConvertOptions, FieldTtlPolicy, FunctionPolicy, ModulePolicy, StreamIdmpPolicy,
};
use rdb_writer::{value, Compression, TargetProfile, Writer};

fn run(a: &[u8], b: &[u8], opts: &DiffOptions) -> (DiffSummary, Vec<Difference>) {
    let mut found = Vec::new();
    let summary = diff(
        a,
        b,
        opts,
        &mut |d| {
            found.push(d.clone());
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("diff: {e}"));
    (summary, found)
}

fn all_fixtures() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures_dir())
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.iter().flat_map(|d| rdb_files(d)).collect()
}

/// Every fixture converted to each version rdbkit writes compares equal to its source,
/// wherever the conversion needs no loss; where it drops field TTLs or a stream's IDMP
/// state, exactly those keys differ (in value), and where it drops function libraries or
/// module aux data, exactly those are reported only in A.
#[test]
fn converted_copies_are_equal() {
    let mut compared = 0;
    let mut lossy = 0;
    for path in all_fixtures() {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
        for version in [9, 10, 11, 12, 13, 80] {
            let Some(profile) = TargetProfile::for_version(version) else {
                panic!("no profile for {version}");
            };
            let mut opts = ConvertOptions::new(profile);
            opts.functions = FunctionPolicy::Drop;
            opts.stream_idmp = StreamIdmpPolicy::Drop;
            opts.modules = ModulePolicy::Keep;
            let mut changed_keys = Vec::new();
            let mut lost_items = Vec::new();
            let mut attempt = |opts: &ConvertOptions| {
                changed_keys.clear();
                lost_items.clear();
                convert(
                    &data,
                    &ParserBuilder::new(),
                    opts,
                    Vec::new(),
                    &mut |l| {
                        match l.action {
                            "field_ttls_dropped" | "stream_idmp_dropped" => changed_keys
                                .push((l.db.unwrap_or(0), l.key.unwrap_or_default().to_vec())),
                            "function_dropped" => lost_items.push("function"),
                            "module_aux_dropped" => lost_items.push("module_aux"),
                            _ => {}
                        }
                        Ok(())
                    },
                    &mut |_| {},
                )
            };
            let out = match attempt(&opts) {
                Ok((out, _)) => out,
                Err(_) => {
                    // Field TTLs for a version without them: convert again with the loss
                    // allowed.
                    opts.field_ttls = FieldTtlPolicy::Drop;
                    attempt(&opts)
                        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                        .0
                }
            };
            let (summary, found) = run(&data, &out, &DiffOptions::default());
            let mut keys = Vec::new();
            let mut items = Vec::new();
            for d in &found {
                match d.item {
                    None => {
                        assert_eq!(d.kind(), "changed", "{d:?}");
                        assert!(d.value_changed && !d.type_changed && !d.ttl_changed);
                        keys.push((d.db, d.key.clone()));
                    }
                    Some(kind) => {
                        assert_eq!(d.kind(), "only_in_a", "{d:?}");
                        items.push(kind.name());
                    }
                }
            }
            keys.sort();
            items.sort();
            changed_keys.sort();
            changed_keys.dedup();
            lost_items.sort();
            let what = format!("{} to RDB {version}", path.display());
            assert_eq!(keys, changed_keys, "{what}");
            assert_eq!(items, lost_items, "{what}");
            assert_eq!(summary.keys_a, summary.keys_b, "{what}");
            if found.is_empty() {
                assert!(summary.equal_snapshots(), "{what}");
                compared += 1;
            } else {
                lossy += 1;
            }
        }
    }
    eprintln!(
        "{compared} conversions compared equal; {lossy} lost field TTLs, IDMP state, \
         functions or module aux data and differ in exactly those"
    );
    assert!(compared >= 150, "only {compared} conversions compared");
    assert!(lossy > 0, "no conversion lost anything");
}

// ---------------------------------------------------------------------------------------
// Injected changes

#[derive(Clone, Debug)]
enum Val {
    Str(Vec<u8>),
    List(Vec<Vec<u8>>),
    Set(Vec<Vec<u8>>),
    Hash(Vec<(Vec<u8>, Vec<u8>)>),
    ZSet(Vec<(Vec<u8>, f64)>),
}

#[derive(Clone, Debug)]
struct Key {
    db: u64,
    name: Vec<u8>,
    ttl: Option<i64>,
    val: Val,
}

/// Writes `keys` as an RDB `version` file; `compact` picks listpack/intset encodings
/// (where the version has them) instead of the plain ones.
fn write(keys: &[Key], version: u32, compact: bool) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), Version::redis(version)).unwrap_or_else(|e| panic!("{e}"));
    let mut dbs: Vec<u64> = keys.iter().map(|k| k.db).collect();
    dbs.sort();
    dbs.dedup();
    for db in dbs {
        w.select_db(db).unwrap_or_else(|e| panic!("{e}"));
        for k in keys.iter().filter(|k| k.db == db) {
            if let Some(t) = k.ttl {
                w.expire_ms(t).unwrap_or_else(|e| panic!("{e}"));
            }
            let c = Compression::None;
            let (t, v) = match &k.val {
                Val::Str(s) => (type_id::STRING, value::string(s, c)),
                Val::List(items) if compact && version >= 10 => (
                    type_id::LIST_QUICKLIST_2,
                    value::list_quicklist2(items, c).unwrap_or_else(|e| panic!("{e}")),
                ),
                Val::List(items) => (type_id::LIST, value::list_plain(items, c)),
                Val::Set(m) if compact && version >= 11 => (
                    type_id::SET_LISTPACK,
                    value::set_listpack(m, c).unwrap_or_else(|e| panic!("{e}")),
                ),
                Val::Set(m) => (type_id::SET, value::set_plain(m, c)),
                Val::Hash(f) if compact && version >= 10 => (
                    type_id::HASH_LISTPACK,
                    value::hash_listpack(f, c).unwrap_or_else(|e| panic!("{e}")),
                ),
                Val::Hash(f) => (type_id::HASH, value::hash_plain(f, c)),
                Val::ZSet(m) if compact && version >= 10 => (
                    type_id::ZSET_LISTPACK,
                    value::zset_listpack(m, c).unwrap_or_else(|e| panic!("{e}")),
                ),
                Val::ZSet(m) => (type_id::ZSET_2, value::zset_2(m, c)),
            };
            w.key_value(t, &k.name, &v)
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn b(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

const T0: i64 = 4_102_444_800_000;

fn base() -> Vec<Key> {
    vec![
        Key {
            db: 0,
            name: b("s"),
            ttl: None,
            val: Val::Str(b("hello")),
        },
        Key {
            db: 0,
            name: b("l"),
            ttl: None,
            val: Val::List(vec![b("a"), b("b"), b("a")]),
        },
        Key {
            db: 0,
            name: b("set"),
            ttl: None,
            val: Val::Set(vec![b("x"), b("y"), b("7")]),
        },
        Key {
            db: 0,
            name: b("h"),
            ttl: None,
            val: Val::Hash(vec![(b("f"), b("1")), (b("g"), b("2"))]),
        },
        Key {
            db: 0,
            name: b("z"),
            ttl: None,
            val: Val::ZSet(vec![(b("m"), 1.5), (b("n"), -2.0)]),
        },
        Key {
            db: 0,
            name: b("t"),
            ttl: Some(T0),
            val: Val::Str(b("ttl")),
        },
        Key {
            db: 3,
            name: b("moved"),
            ttl: None,
            val: Val::Str(b("m")),
        },
    ]
}

fn with(keys: &[Key], name: &str, f: impl FnOnce(&mut Key)) -> Vec<Key> {
    let mut out = keys.to_vec();
    if let Some(k) = out.iter_mut().find(|k| k.name == name.as_bytes()) {
        f(k);
    }
    out
}

/// The differences as (kind, db, key, changes) for exact comparison.
fn shape(found: &[Difference]) -> Vec<(String, u64, String, Vec<&'static str>)> {
    let mut v: Vec<_> = found
        .iter()
        .map(|d| {
            let mut changes = Vec::new();
            if d.type_changed {
                changes.push("type");
            }
            if d.value_changed {
                changes.push("value");
            }
            if d.ttl_changed {
                changes.push("ttl");
            }
            (
                d.kind().to_string(),
                d.db,
                String::from_utf8_lossy(&d.key).into_owned(),
                changes,
            )
        })
        .collect();
    v.sort();
    v
}

fn diff_shape(
    a: &[Key],
    bk: &[Key],
    opts: &DiffOptions,
) -> Vec<(String, u64, String, Vec<&'static str>)> {
    // A in plain encodings at RDB 9, B compact at RDB 11: encodings must not matter.
    let (_, found) = run(&write(a, 9, false), &write(bk, 11, true), opts);
    shape(&found)
}

fn one(
    kind: &str,
    db: u64,
    key: &str,
    changes: &[&'static str],
) -> Vec<(String, u64, String, Vec<&'static str>)> {
    vec![(kind.to_string(), db, key.to_string(), changes.to_vec())]
}

#[test]
fn same_data_in_other_encodings_is_equal() {
    let keys = base();
    let (summary, found) = run(
        &write(&keys, 9, false),
        &write(&keys, 11, true),
        &DiffOptions::default(),
    );
    assert!(summary.equal_snapshots(), "{found:?}");
    assert_eq!(summary.equal, keys.len() as u64);
    // Set members and hash fields in another order are the same value.
    let shuffled = with(&keys, "set", |k| {
        k.val = Val::Set(vec![b("7"), b("y"), b("x")])
    });
    let shuffled = with(&shuffled, "h", |k| {
        k.val = Val::Hash(vec![(b("g"), b("2")), (b("f"), b("1"))])
    });
    assert!(diff_shape(&keys, &shuffled, &DiffOptions::default()).is_empty());
}

#[test]
fn each_injected_change_is_reported_exactly() {
    let keys = base();
    let opts = DiffOptions::default();
    let removed: Vec<Key> = keys.iter().filter(|k| k.name != b"l").cloned().collect();
    assert_eq!(
        diff_shape(&keys, &removed, &opts),
        one("only_in_a", 0, "l", &[])
    );

    let mut added = keys.clone();
    added.push(Key {
        db: 0,
        name: b("new"),
        ttl: None,
        val: Val::Str(b("n")),
    });
    assert_eq!(
        diff_shape(&keys, &added, &opts),
        one("only_in_b", 0, "new", &[])
    );

    let changed = with(&keys, "h", |k| {
        k.val = Val::Hash(vec![(b("f"), b("1")), (b("g"), b("3"))])
    });
    assert_eq!(
        diff_shape(&keys, &changed, &opts),
        one("changed", 0, "h", &["value"])
    );
    // List order matters.
    let reordered = with(&keys, "l", |k| {
        k.val = Val::List(vec![b("b"), b("a"), b("a")])
    });
    assert_eq!(
        diff_shape(&keys, &reordered, &opts),
        one("changed", 0, "l", &["value"])
    );
    let rescored = with(&keys, "z", |k| {
        k.val = Val::ZSet(vec![(b("m"), 1.5), (b("n"), -2.5)])
    });
    assert_eq!(
        diff_shape(&keys, &rescored, &opts),
        one("changed", 0, "z", &["value"])
    );

    let retyped = with(&keys, "s", |k| k.val = Val::List(vec![b("hello")]));
    assert_eq!(
        diff_shape(&keys, &retyped, &opts),
        one("changed", 0, "s", &["type"])
    );
}

#[test]
fn ttl_changes_beyond_and_within_the_tolerance() {
    let keys = base();
    let far = with(&keys, "t", |k| k.ttl = Some(T0 + 10_000));
    let near = with(&keys, "t", |k| k.ttl = Some(T0 - 3_000));
    let gone = with(&keys, "t", |k| k.ttl = None);
    let exact = DiffOptions::default();
    let tolerant = DiffOptions {
        ttl_tolerance_ms: 5_000,
        ..DiffOptions::default()
    };
    let ignoring = DiffOptions {
        ignore_ttl: true,
        ..DiffOptions::default()
    };
    assert_eq!(
        diff_shape(&keys, &near, &exact),
        one("changed", 0, "t", &["ttl"])
    );
    assert!(diff_shape(&keys, &near, &tolerant).is_empty());
    assert_eq!(
        diff_shape(&keys, &far, &tolerant),
        one("changed", 0, "t", &["ttl"])
    );
    assert_eq!(
        diff_shape(&keys, &gone, &tolerant),
        one("changed", 0, "t", &["ttl"])
    );
    assert!(diff_shape(&keys, &far, &ignoring).is_empty());
    assert!(diff_shape(&keys, &gone, &ignoring).is_empty());
}

#[test]
fn a_key_moved_to_another_db_and_db_map() {
    let keys = base();
    let moved = with(&keys, "moved", |k| k.db = 0);
    let mut expected = one("only_in_a", 3, "moved", &[]);
    expected.extend(one("only_in_b", 0, "moved", &[]));
    expected.sort();
    assert_eq!(diff_shape(&keys, &moved, &DiffOptions::default()), expected);
    let mapped = DiffOptions {
        db_map: HashMap::from([(3, 0)]),
        ..DiffOptions::default()
    };
    assert!(diff_shape(&keys, &moved, &mapped).is_empty());
}

#[test]
fn filters_apply_to_both_sides() {
    let keys = base();
    let changed = with(&keys, "h", |k| k.val = Val::Hash(vec![(b("f"), b("9"))]));
    let mut opts = DiffOptions::default();
    opts.filter.exclude =
        vec![rdb_writer::filter::KeyPattern::glob("h").unwrap_or_else(|e| panic!("{e}"))];
    let (summary, found) = run(&write(&keys, 9, false), &write(&changed, 11, true), &opts);
    assert!(summary.equal_snapshots(), "{found:?}");
    assert_eq!(summary.keys_a, keys.len() as u64 - 1);
}

// ---------------------------------------------------------------------------------------
// Buckets

fn arb_key() -> impl Strategy<Value = Key> {
    let name = proptest::collection::vec(prop::sample::select(b"abcxyz:01".to_vec()), 1..6);
    let item = proptest::collection::vec(prop::sample::select(b"pqr12".to_vec()), 0..4);
    let val = prop_oneof![
        item.clone().prop_map(Val::Str),
        proptest::collection::vec(item.clone(), 1..4).prop_map(Val::List),
        proptest::collection::btree_set(item.clone(), 1..4)
            .prop_map(|s| Val::Set(s.into_iter().collect())),
        proptest::collection::btree_map(item.clone(), item.clone(), 1..4)
            .prop_map(|m| Val::Hash(m.into_iter().collect())),
        proptest::collection::btree_map(item, -3i32..3, 1..4)
            .prop_map(|m| Val::ZSet(m.into_iter().map(|(k, s)| (k, f64::from(s))).collect())),
    ];
    (0u64..3, name, proptest::option::of(0i64..5), val).prop_map(|(db, name, ttl, val)| Key {
        db,
        name,
        ttl: ttl.map(|t| T0 + t * 1000),
        val,
    })
}

/// Keys unique per (db, name): the later of two draws wins.
fn unique(keys: Vec<Key>) -> Vec<Key> {
    let mut seen = std::collections::BTreeMap::new();
    for k in keys {
        seen.insert((k.db, k.name.clone()), k);
    }
    seen.into_values().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Many buckets in temporary files, each re-split because the budget is tiny, give the
    /// same differences and counts as one bucket in memory.
    #[test]
    fn bucketed_diff_matches_in_memory_diff(
        a in proptest::collection::vec(arb_key(), 0..40),
        extra in proptest::collection::vec(arb_key(), 0..40),
        drop_mask in any::<u64>(),
    ) {
        let a = unique(a);
        // B: A without some keys, plus (or overwritten by) others.
        let mut bk: Vec<Key> = a
            .iter()
            .enumerate()
            .filter(|(i, _)| drop_mask >> (i % 64) & 1 == 0)
            .map(|(_, k)| k.clone())
            .collect();
        bk.extend(extra);
        let bk = unique(bk);
        let (da, db) = (write(&a, 9, false), write(&bk, 11, true));
        let memory = DiffOptions { buckets: Some(1), ..DiffOptions::default() };
        let tiny = DiffOptions { buckets: Some(5), memory_limit: 300, ..DiffOptions::default() };
        let (sm, fm) = run(&da, &db, &memory);
        let (st, ft) = run(&da, &db, &tiny);
        prop_assert_eq!(shape(&fm), shape(&ft));
        let mut fm_sorted = fm.clone();
        let mut ft_sorted = ft.clone();
        fm_sorted.sort_by(|x, y| (x.db, &x.key).cmp(&(y.db, &y.key)));
        ft_sorted.sort_by(|x, y| (x.db, &x.key).cmp(&(y.db, &y.key)));
        prop_assert_eq!(fm_sorted, ft_sorted);
        prop_assert_eq!(
            (sm.keys_a, sm.keys_b, sm.equal, sm.only_in_a, sm.only_in_b, sm.value_changed, sm.type_changed, sm.ttl_changed),
            (st.keys_a, st.keys_b, st.equal, st.only_in_a, st.only_in_b, st.value_changed, st.type_changed, st.ttl_changed)
        );
        prop_assert_eq!(sm.temp_bytes, 0);
        if a.len() > 20 {
            prop_assert!(st.temp_bytes > 0);
            prop_assert!(st.resplit_buckets > 0, "{:?}", st);
        }
        prop_assert_eq!(sm.keys_a, a.len() as u64);
    }
}

// ---------------------------------------------------------------------------------------
// The binary

#[test]
fn exit_codes_jsonl_and_no_temporary_files_left() {
    let dir = std::env::temp_dir().join(format!("rdbkit-diff-test-{}", std::process::id()));
    let tmp = dir.join("buckets");
    std::fs::create_dir_all(&tmp).unwrap_or_else(|e| panic!("{e}"));
    let keys = base();
    let a = dir.join("a.rdb");
    let same = dir.join("same.rdb");
    let other = dir.join("other.rdb");
    let corrupt = dir.join("corrupt.rdb");
    let jsonl = dir.join("diff.jsonl");
    let write_file =
        |p: &PathBuf, data: &[u8]| std::fs::write(p, data).unwrap_or_else(|e| panic!("{e}"));
    write_file(&a, &write(&keys, 9, false));
    write_file(&same, &write(&keys, 11, true));
    let changed = with(&keys, "t", |k| k.ttl = Some(T0 + 60_000));
    write_file(&other, &write(&changed, 10, true));
    let mut bad = write(&keys, 9, false);
    bad.truncate(bad.len() / 2);
    write_file(&corrupt, &bad);
    let rdbkit = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .arg("diff")
            .args(args)
            .arg("--temp-dir")
            .arg(&tmp)
            .args(["--buckets", "4"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let out = rdbkit(&[a.as_os_str(), same.as_os_str()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("peak RSS"));

    let out = rdbkit(&[
        a.as_os_str(),
        other.as_os_str(),
        "--jsonl".as_ref(),
        jsonl.as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = std::fs::read_to_string(&jsonl).unwrap_or_default();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1);
    let at = |path: &str| {
        lines
            .first()
            .and_then(|l| l.pointer(path))
            .cloned()
            .unwrap_or_default()
    };
    assert_eq!(at("/kind"), "changed");
    assert_eq!(at("/key"), "t");
    assert_eq!(at("/changes"), serde_json::json!(["ttl"]));
    assert_eq!(at("/b/expire_ms"), T0 + 60_000);

    let out = rdbkit(&[
        a.as_os_str(),
        other.as_os_str(),
        "--ttl-tolerance".as_ref(),
        "90s".as_ref(),
        "--json".as_ref(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let summary: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(summary.pointer("/equal"), Some(&serde_json::json!(true)));
    assert!(summary
        .pointer("/peak_rss_bytes")
        .and_then(|v| v.as_u64())
        .is_some_and(|b| b > 0));

    let out = rdbkit(&[a.as_os_str(), corrupt.as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("snapshot B"));
    let out = rdbkit(&[a.as_os_str(), dir.join("missing.rdb").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));

    let left: Vec<_> = std::fs::read_dir(&tmp)
        .into_iter()
        .flatten()
        .flatten()
        .collect();
    assert!(left.is_empty(), "temporary files left behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Review findings

fn try_run(a: &[u8], b: &[u8], opts: &DiffOptions) -> Result<DiffSummary, String> {
    diff(a, b, opts, &mut |_| Ok(()), &mut |_| {}).map_err(|e| e.to_string())
}

/// A key twice in one db (a server refuses the file) must not pass as a silent overwrite or
/// as a key "only in B": the comparison stops and names the side, db and key.
#[test]
fn a_key_twice_in_one_side_is_an_error_naming_it() {
    let keys = base();
    let mut twice = keys.clone();
    twice.push(Key {
        db: 0,
        name: b("s"),
        ttl: None,
        val: Val::Str(b("again")),
    });
    for buckets in [1, 4] {
        let opts = DiffOptions {
            buckets: Some(buckets),
            ..DiffOptions::default()
        };
        let e = try_run(&write(&twice, 9, false), &write(&keys, 9, false), &opts)
            .err()
            .unwrap_or_else(|| panic!("duplicate in A accepted"));
        assert!(
            e.contains("snapshot A") && e.contains("\"s\"") && e.contains("db 0"),
            "{e}"
        );
        let e = try_run(&write(&keys, 9, false), &write(&twice, 9, false), &opts)
            .err()
            .unwrap_or_else(|| panic!("duplicate in B accepted"));
        assert!(e.contains("snapshot B") && e.contains("\"s\""), "{e}");
    }
    // --db-map onto a db that already holds the key: two A keys land on one name.
    let mut collide = keys.clone();
    collide.push(Key {
        db: 0,
        name: b("moved"),
        ttl: None,
        val: Val::Str(b("m")),
    });
    let opts = DiffOptions {
        db_map: HashMap::from([(3, 0)]),
        ..DiffOptions::default()
    };
    let e = try_run(
        &write(&collide, 9, false),
        &write(&collide, 9, false),
        &opts,
    )
    .err()
    .unwrap_or_else(|| panic!("db-map collision accepted"));
    assert!(e.contains("--db-map") && e.contains("\"moved\""), "{e}");
}

/// The number of buckets must account for B too: a tiny A against a large B must not hold
/// all of B's records in memory.
#[test]
fn bucket_count_follows_the_larger_side() {
    let many: Vec<Key> = (0..3000)
        .map(|i| Key {
            db: 0,
            name: format!("key:{i:06}").into_bytes(),
            ttl: None,
            val: Val::Str(vec![b'v'; 100]),
        })
        .collect();
    let small = write(&[], 9, false);
    let large = write(&many, 9, false);
    let opts = DiffOptions {
        memory_limit: 64 << 10,
        ..DiffOptions::default()
    };
    for (a, b) in [(&small, &large), (&large, &small)] {
        let s = try_run(a, b, &opts).unwrap_or_else(|e| panic!("{e}"));
        assert!(s.buckets > 1 && s.temp_bytes > 0, "{s:?}");
        assert_eq!(s.only_in_a + s.only_in_b, 3000);
    }
}

/// `--db N` names a source (A) database; with `--db-map` B holds those keys under the
/// mapped number, so B is filtered on the mapped databases.
#[test]
fn db_filter_follows_the_db_map_on_b() {
    let keys = base();
    let moved = with(&keys, "moved", |k| k.db = 0);
    let mut opts = DiffOptions {
        db_map: HashMap::from([(3, 0)]),
        ..DiffOptions::default()
    };
    opts.filter.dbs = Some([3].into_iter().collect());
    let (a, bb) = (write(&keys, 9, false), write(&moved, 11, true));
    let s = try_run(&a, &bb, &opts).unwrap_or_else(|e| panic!("{e}"));
    // A keeps db 3 (one key, renumbered 0); B keeps db 0, which holds all seven.
    assert_eq!((s.keys_a, s.keys_b), (1, 7), "{s:?}");
    assert_eq!((s.equal, s.only_in_a, s.only_in_b), (1, 0, 6), "{s:?}");
    // Without a map, --db 0 keeps db 0 on both sides.
    let mut plain = DiffOptions::default();
    plain.filter.dbs = Some([0].into_iter().collect());
    let s = try_run(&a, &write(&keys, 11, true), &plain).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.equal_snapshots() && s.keys_a == 6, "{s:?}");
}

/// Filters on how a value is stored would keep different keys on each side of two copies
/// of the same data; a source db mapped twice is ambiguous. Both are usage errors (exit 2).
#[test]
fn storage_filters_and_an_ambiguous_db_map_are_refused() {
    let dir = std::env::temp_dir().join(format!("rdbkit-diff-usage-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let keys = base();
    let (a, bb) = (dir.join("a.rdb"), dir.join("b.rdb"));
    std::fs::write(&a, write(&keys, 9, false)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&bb, write(&keys, 11, true)).unwrap_or_else(|e| panic!("{e}"));
    for extra in [
        &["--encoding", "listpack"][..],
        &["--min-bytes", "4"],
        &["--max-bytes", "100"],
        &["--db-map", "3:0", "--db-map", "3:1"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .arg("diff")
            .arg(&a)
            .arg(&bb)
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(
            extra.first().is_some_and(|flag| stderr.contains(flag)),
            "{extra:?}: {stderr}"
        );
    }
    // The same mapping twice is not ambiguous.
    let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .arg("diff")
        .arg(&a)
        .arg(&bb)
        .args(["--db-map", "3:3", "--db-map", "3:3"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Tiny keys make records several times the bytes they describe, so the first guess can
/// pick one in-memory bucket for data far over the budget: the records must then go to
/// files and be split again, not all be held in memory.
#[test]
fn one_bucket_over_the_budget_spills_and_splits() {
    let many: Vec<Key> = (0..20_000)
        .map(|i| Key {
            db: 0,
            name: format!("k{i}").into_bytes(),
            ttl: None,
            val: Val::Str(b("v")),
        })
        .collect();
    let (a, bb) = (write(&many, 9, false), write(&many, 11, true));
    // The guess (6x A's size) fits the budget; the records and their map do not.
    let memory_limit = (a.len() as u64) * 8;
    let opts = DiffOptions {
        memory_limit,
        ..DiffOptions::default()
    };
    let s = try_run(&a, &bb, &opts).unwrap_or_else(|e| panic!("{e}"));
    assert!(s.equal_snapshots() && s.equal == 20_000, "{s:?}");
    assert!(s.temp_bytes > 0 && s.resplit_buckets > 0, "{s:?}");
}

/// The tolerance is inclusive; a TTL on one side only differs whatever the tolerance; an
/// expired key dropped with `--expired drop` is dropped on both sides.
#[test]
fn ttl_tolerance_edges_and_expired_keys() {
    let keys = base();
    let tolerant = |ms| DiffOptions {
        ttl_tolerance_ms: ms,
        ..DiffOptions::default()
    };
    let later = with(&keys, "t", |k| k.ttl = Some(T0 + 5_000));
    assert!(diff_shape(&keys, &later, &tolerant(5_000)).is_empty());
    assert_eq!(
        diff_shape(&keys, &later, &tolerant(4_999)),
        one("changed", 0, "t", &["ttl"])
    );
    let none = with(&keys, "t", |k| k.ttl = None);
    assert_eq!(
        diff_shape(&none, &keys, &tolerant(i64::MAX)),
        one("changed", 0, "t", &["ttl"])
    );
    // "t" expired at --now on A; B (loaded by a server) no longer has it.
    let gone: Vec<Key> = keys.iter().filter(|k| k.name != b"t").cloned().collect();
    let mut drop = DiffOptions::default();
    drop.filter.now_ms = T0 + 1;
    assert_eq!(
        diff_shape(&keys, &gone, &drop),
        one("only_in_a", 0, "t", &[])
    );
    drop.filter.drop_expired = true;
    assert!(diff_shape(&keys, &gone, &drop).is_empty());
    // Expired on both sides (at different times): dropped on both.
    drop.filter.now_ms = T0 + 10_000;
    assert!(diff_shape(&keys, &later, &drop).is_empty());
}

/// Keys are binary-safe in the lines: a non-UTF-8 name comes back as base64.
#[test]
fn binary_keys_in_difference_lines() {
    let keys = base();
    let mut other = keys.clone();
    other.push(Key {
        db: 2,
        name: vec![0xff, 0x00, b'k'],
        ttl: None,
        val: Val::Str(vec![0x80]),
    });
    let (_, found) = run(
        &write(&keys, 9, false),
        &write(&other, 11, true),
        &DiffOptions::default(),
    );
    let [d] = found.as_slice() else {
        panic!("{found:?}")
    };
    let mut line = Vec::new();
    d.write_json(&mut line);
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.pointer("/kind"), Some(&serde_json::json!("only_in_b")));
    assert_eq!(v.pointer("/db"), Some(&serde_json::json!(2)));
    assert_eq!(v.pointer("/key/base64"), Some(&serde_json::json!("/wBr")));
    assert_eq!(
        v.pointer("/b/value/base64"),
        Some(&serde_json::json!("gA=="))
    );
}

/// A bucket file that cannot be created says where and that --temp-dir chooses it.
#[test]
fn an_unusable_temp_dir_is_named() {
    let dir = std::env::temp_dir().join(format!("rdbkit-diff-tempdir-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let a = dir.join("a.rdb");
    std::fs::write(&a, write(&base(), 9, false)).unwrap_or_else(|e| panic!("{e}"));
    let missing = dir.join("no-such-dir");
    let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .arg("diff")
        .arg(&a)
        .arg(&a)
        .arg("--temp-dir")
        .arg(&missing)
        .args(["--buckets", "4"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&missing.display().to_string()) && stderr.contains("--temp-dir"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// Function libraries, module aux data, IDMP state

/// A version-10 file: `functions`, then `aux` as module aux data of `scdtype00` (when,
/// one UINT), then one string key.
fn with_items(functions: &[&[u8]], aux: Option<(u64, u64)>) -> Vec<u8> {
    use rdb_writer::encode;
    let mut w = Writer::new(Vec::new(), Version::redis(10)).unwrap_or_else(|e| panic!("{e}"));
    for f in functions {
        w.function(f).unwrap_or_else(|e| panic!("{e}"));
    }
    if let Some((when, v)) = aux {
        let id = rdb_parser::ModuleId::from_name("scdtype00", 1).unwrap_or_else(|| panic!("id"));
        let mut item = vec![rdb_parser::format::opcode::MODULE_AUX];
        for n in [id.0, 2, when, 2, v, 0] {
            encode::length(&mut item, n);
        }
        w.raw(&item).unwrap_or_else(|e| panic!("{e}"));
    }
    w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
    w.key_value(
        type_id::STRING,
        b"k",
        &value::string(b"v", Compression::None),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

const LIB_X: &[u8] = b"#!lua name=x\nredis.register_function('fx', function() return 1 end)";
const LIB_Y: &[u8] = b"#!lua name=y\nredis.register_function('fy', function() return 2 end)";
const LIB_Y2: &[u8] = b"#!lua name=y\nredis.register_function('fy', function() return 3 end)";

fn item_lines(found: &[Difference]) -> Vec<String> {
    found
        .iter()
        .map(|d| {
            let mut line = Vec::new();
            d.write_json(&mut line);
            let v: serde_json::Value =
                serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"));
            let mut text = Vec::new();
            d.write_text(&mut text).unwrap_or_else(|e| panic!("{e}"));
            format!(
                "{} {} {} {} {} | {}",
                v["kind"],
                v["item"],
                v["name"],
                v["when"],
                v["changes"],
                String::from_utf8_lossy(&text).trim_end()
            )
        })
        .collect()
}

#[test]
fn function_libraries_and_module_aux_data_are_compared() {
    let a = with_items(&[LIB_X, LIB_Y], Some((2, 5)));
    let opts = DiffOptions::default();
    let (summary, found) = run(&a, &with_items(&[LIB_Y, LIB_X], Some((2, 5))), &opts);
    assert!(summary.equal_snapshots(), "{found:?}");
    assert_eq!((summary.functions_a, summary.functions_b), (2, 2));
    assert_eq!((summary.module_aux_a, summary.module_aux_b), (1, 1));

    // What `convert --functions drop --modules drop` leaves: the keys, nothing else.
    let (summary, found) = run(&a, &with_items(&[], None), &opts);
    assert!(!summary.equal_snapshots());
    assert_eq!((summary.equal, summary.items_differing), (1, 3));
    assert_eq!(
        item_lines(&found),
        [
            "\"only_in_a\" \"function\" \"x\" null null | function library \"x\": only in A",
            "\"only_in_a\" \"function\" \"y\" null null | function library \"y\": only in A",
            "\"only_in_a\" \"module_aux\" \"scdtype00\" \"after_keys\" null | module aux data \
             of \"scdtype00\" (after_keys): only in A",
        ]
    );
    let mut line = Vec::new();
    found[0].write_json(&mut line);
    let v: serde_json::Value = serde_json::from_slice(&line).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["a"]["copies"], 1);
    assert_eq!(v["a"]["digest"].as_str().map(str::len), Some(32));
    assert!(v.get("b").is_none() && v.get("db").is_none());

    // A library's code changed, a module's aux data changed, a library only in B.
    let b = with_items(&[LIB_X, LIB_Y2, b"#!lua name=z\n"], Some((2, 6)));
    let (_, found) = run(&a, &b, &opts);
    assert_eq!(
        item_lines(&found),
        [
            "\"changed\" \"function\" \"y\" null [\"value\"] | function library \"y\": differs",
            "\"only_in_b\" \"function\" \"z\" null null | function library \"z\": only in B",
            "\"changed\" \"module_aux\" \"scdtype00\" \"after_keys\" [\"value\"] | module aux \
             data of \"scdtype00\" (after_keys): differs",
        ]
    );
    // The same data saved before the keys is another item.
    let (_, found) = run(&a, &with_items(&[LIB_X, LIB_Y], Some((1, 5))), &opts);
    assert_eq!(found.len(), 2, "{found:?}");

    // The command: exit 1, the libraries named on the terminal.
    let dir = common::temp_dir("diff-items");
    let (pa, pb) = (dir.join("a.rdb"), dir.join("b.rdb"));
    std::fs::write(&pa, &a).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&pb, with_items(&[LIB_X], Some((2, 5)))).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .arg("diff")
        .args([&pa, &pb])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("function library \"y\": only in A"), "{text}");
    assert!(
        text.starts_with("function library") && text.contains("DIFFERENT"),
        "{text}"
    );
    assert!(
        text.contains(
            "function libraries: A has 2, B has 1; module aux data: A has 1, B has 1; 1 differ"
        ),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A Redis 8.6 stream's IDMP state is part of its value when it is not the default: the
/// 8.6 fixture converted to 7.4 with `--stream-idmp drop` differs in exactly the streams
/// whose state was dropped.
#[test]
fn stream_idmp_state_is_compared() {
    let path = fixtures_dir().join("redis-8.6/idmp.rdb");
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let profile = TargetProfile::for_version(12).unwrap_or_else(|| panic!("no profile"));
    let mut opts = ConvertOptions::new(profile);
    opts.stream_idmp = StreamIdmpPolicy::Drop;
    let mut dropped = Vec::new();
    let (out, _) = convert(
        &data,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |l| {
            if l.action == "stream_idmp_dropped" {
                dropped.push(l.key.unwrap_or_default().to_vec());
            }
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (summary, found) = run(&data, &out, &DiffOptions::default());
    let mut changed: Vec<Vec<u8>> = found.iter().map(|d| d.key.clone()).collect();
    changed.sort();
    dropped.sort();
    assert!(dropped.contains(&b"stream:idmp".to_vec()), "{dropped:?}");
    assert_eq!(changed, dropped);
    assert!(found.iter().all(|d| d.value_changed));
    // Streams untouched by IDMP (stream:plain) compare equal to their 7.4 copies.
    assert!(summary.equal > 0);
}

// ---------------------------------------------------------------------------------------
// Vector sets: compared by content, not by their bytes

fn vectorset_fixture() -> Vec<u8> {
    let p = fixtures_dir().join("redis-8.6/vectorsets.rdb");
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A vector set's parts, decoded, to be re-encoded with changes.
#[derive(Clone)]
struct VsetParts {
    id: u64,
    head: Vec<u64>,
    projection: Option<(u64, Vec<u8>)>,
    elements: Vec<VsetElement>,
}

/// name, attributes (`None`: the flag is off; `Some(empty)`: none), vector, params.
type VsetElement = (Vec<u8>, Option<Vec<u8>>, Vec<u8>, Vec<u64>);

fn module_uint(out: &mut Vec<u8>, v: u64) {
    rdb_writer::encode::length(out, 2);
    rdb_writer::encode::length(out, v);
}

fn module_string(out: &mut Vec<u8>, s: &[u8]) {
    rdb_writer::encode::length(out, 5);
    rdb_writer::encode::length(out, s.len() as u64);
    out.extend_from_slice(s);
}

impl VsetParts {
    fn of(m: &rdb_parser::Module<'_>) -> VsetParts {
        let set = m.vector_set().expect("a vector set").expect("decodes");
        let has_attrs = set.has_attributes();
        let quant = match set.quantization() {
            rdb_parser::Quantization::NoQuant => 0,
            rdb_parser::Quantization::Q8 => 1,
            rdb_parser::Quantization::Bin => 2,
        };
        let flags = u64::from(set.projection().is_some()) | u64::from(has_attrs) << 1;
        let projection = set.projection().map(|p| {
            let m: Vec<u8> = p
                .matrix()
                .unwrap()
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            (u64::from(p.input_dim()), m)
        });
        let elements = set
            .elements()
            .map(|e| {
                let e = e.unwrap();
                let attrs = has_attrs.then(|| e.attributes().unwrap_or_default().to_vec());
                let params = e.hnsw_params(e.node_version()).unwrap();
                (
                    e.name().to_vec(),
                    attrs,
                    e.vector().stored().to_vec(),
                    params,
                )
            })
            .collect();
        VsetParts {
            id: m.id.0,
            head: vec![
                u64::from(set.dim()),
                set.len(),
                quant | u64::from(set.m()) << 8,
                flags,
            ],
            projection,
            elements,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        rdb_writer::encode::length(&mut out, self.id);
        for (i, v) in self.head.iter().enumerate() {
            // The count follows the elements actually written.
            module_uint(
                &mut out,
                if i == 1 {
                    self.elements.len() as u64
                } else {
                    *v
                },
            );
        }
        if let Some((input_dim, matrix)) = &self.projection {
            module_uint(&mut out, *input_dim);
            module_string(&mut out, matrix);
        }
        for (name, attrs, vector, params) in &self.elements {
            module_string(&mut out, name);
            if let Some(a) = attrs {
                module_string(&mut out, a);
            }
            module_string(&mut out, vector);
            module_uint(&mut out, params.len() as u64);
            for p in params {
                module_uint(&mut out, *p);
            }
        }
        rdb_writer::encode::length(&mut out, 0);
        out
    }
}

/// The vector sets of the 8.6 fixture, by key.
fn fixture_sets(data: &[u8]) -> Vec<(Vec<u8>, VsetParts)> {
    let mut out = Vec::new();
    for item in ParserBuilder::new().parse(data).unwrap() {
        if let rdb_parser::Item::Key(k) = item.unwrap() {
            if let rdb_parser::Value::Module(m) = &k.value {
                out.push((k.key.to_vec(), VsetParts::of(m)));
            }
        }
    }
    out
}

/// An RDB 13 file of module keys in db 0 (checksum 0: not computed).
fn module_file(keys: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = b"REDIS0013\xfe\x00".to_vec();
    for (key, value) in keys {
        out.push(type_id::MODULE_2);
        rdb_writer::encode::length(&mut out, key.len() as u64);
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    out.push(0xff);
    out.extend_from_slice(&[0; 8]);
    out
}

/// Converted for Redis 8.0, every node is rewritten in 8.0's format (the bytes differ),
/// and the sets compare equal.
#[test]
fn vector_sets_converted_for_redis_8_0_are_equal() {
    let data = vectorset_fixture();
    let profile = TargetProfile::named("redis-8.0").unwrap().clone();
    let opts = ConvertOptions::new(profile);
    let (out, _) = convert(
        &data,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .expect("convert");
    let (a, b) = (fixture_sets(&data), fixture_sets(&out));
    assert_eq!(a.len(), 7);
    let rewritten = a
        .iter()
        .zip(&b)
        .filter(|((_, x), (_, y))| x.encode() != y.encode())
        .count();
    assert_eq!(rewritten, 7, "every set's bytes differ after the rewrite");
    let (summary, found) = run(&data, &out, &DiffOptions::default());
    assert!(found.is_empty(), "{found:?}");
    assert!(summary.equal_snapshots());
    assert_eq!(summary.equal, 8);
}

/// The same elements in another order (a save after a load reverses them) are the same
/// set; a changed attribute, name, stored vector, norm, projection or a missing element
/// is a difference in value of exactly that key.
#[test]
fn vector_sets_compare_by_content() {
    let data = vectorset_fixture();
    let sets = fixture_sets(&data);
    let file = |edit: &dyn Fn(&[u8], &mut VsetParts)| {
        let keys: Vec<(Vec<u8>, Vec<u8>)> = sets
            .iter()
            .map(|(k, p)| {
                let mut p = p.clone();
                edit(k, &mut p);
                (k.clone(), p.encode())
            })
            .collect();
        module_file(&keys)
    };
    let original = file(&|_, _| {});
    let (summary, found) = run(
        &original,
        &file(&|_, p| p.elements.reverse()),
        &DiffOptions::default(),
    );
    assert!(found.is_empty() && summary.equal_snapshots(), "{found:?}");
    assert_eq!(summary.equal, 7);

    type Edit = Box<dyn Fn(&mut VsetParts)>;
    let edits: Vec<(&str, &[u8], Edit)> = vec![
        (
            "attribute",
            b"vset:attrs",
            Box::new(|p| p.elements[1].1 = Some(br#"{"n":99}"#.to_vec())),
        ),
        (
            "attribute removed",
            b"vset:attrs",
            Box::new(|p| {
                let e = p.elements.iter_mut();
                let mut with = e.filter(|e| e.1.as_ref().is_some_and(|a| !a.is_empty()));
                with.next().unwrap().1 = Some(Vec::new());
            }),
        ),
        (
            "element name",
            b"vset:q8",
            Box::new(|p| p.elements[2].0 = b"renamed".to_vec()),
        ),
        (
            "stored vector",
            b"vset:bin",
            Box::new(|p| p.elements[0].2[0] ^= 1),
        ),
        (
            "norm",
            b"vset:noquant",
            Box::new(|p| {
                let last = p.elements[0].3.len() - 1;
                p.elements[0].3[last] ^= 1 << 20;
            }),
        ),
        (
            "projection",
            b"vset:reduce",
            Box::new(|p| p.projection.as_mut().unwrap().1[0] ^= 1),
        ),
        (
            "element removed",
            b"vset:deleted",
            Box::new(|p| {
                p.elements.pop();
            }),
        ),
    ];
    for (what, key, edit) in &edits {
        let changed = file(&|k, p| {
            if k == *key {
                edit(p)
            }
        });
        let (summary, found) = run(&original, &changed, &DiffOptions::default());
        assert_eq!(found.len(), 1, "{what}: {found:?}");
        let d = &found[0];
        assert_eq!(&d.key[..], *key, "{what}");
        assert!(
            d.value_changed && !d.type_changed && !d.ttl_changed,
            "{what}"
        );
        assert_eq!(d.a.as_ref().unwrap().type_name, "module");
        assert!(!summary.equal_snapshots(), "{what}");
        let mut text = Vec::new();
        d.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(
            text.contains(&String::from_utf8_lossy(key).into_owned()) && text.contains("value"),
            "{what}: {text}"
        );
    }
}

/// Real servers: the fixture loaded by Redis 8.6 (and, converted, by 8.0) and saved again
/// (a load reverses the element order; 8.0 writes its own node format) is equal to the
/// fixture; after `VSETATTR` and `VREM` on the server, exactly those two keys differ.
#[test]
fn vector_sets_saved_again_by_real_servers() {
    let Some(entries) = servers::manifest() else {
        return;
    };
    let data = vectorset_fixture();
    let mut checked = 0;
    for entry in entries
        .iter()
        .filter(|e| e.name == "redis-8.0" || e.name == "redis-8.6")
    {
        let input = if entry.name == "redis-8.6" {
            data.clone()
        } else {
            let profile = TargetProfile::named(&entry.name).unwrap().clone();
            let opts = ConvertOptions::new(profile);
            let (out, _) = convert(
                &data,
                &ParserBuilder::new(),
                &opts,
                Vec::new(),
                &mut |_| Ok(()),
                &mut |_| {},
            )
            .expect("convert");
            out
        };
        let tmp = servers::TempDir::new("diff-vset");
        let dump = tmp.path().join("dump.rdb");
        std::fs::write(&dump, &input).unwrap();
        let mut server = servers::Server::start(entry, tmp.path()).unwrap();
        let mut c =
            servers::Resp::connect(server.port(), std::time::Duration::from_secs(5)).unwrap();
        let mut cmd = |args: &[&[u8]]| {
            let reply = c.command(args).unwrap();
            assert!(!matches!(reply, servers::Reply::Error(_)), "{reply:?}");
        };
        cmd(&[b"SAVE"]);
        let saved = std::fs::read(&dump).unwrap();
        let order = |file: &[u8]| {
            fixture_sets(file)
                .into_iter()
                .map(|(_, p)| p.elements.into_iter().map(|e| e.0).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        assert_ne!(order(&data), order(&saved), "{}: same order", entry.name);
        let (summary, found) = run(&data, &saved, &DiffOptions::default());
        assert!(
            found.is_empty() && summary.equal_snapshots(),
            "{}: {found:?}",
            entry.name
        );

        cmd(&[b"VSETATTR", b"vset:attrs", b"a1", br#"{"n":100}"#]);
        cmd(&[b"VREM", b"vset:q8", b"e3"]);
        cmd(&[b"SAVE"]);
        server.stop();
        let edited = std::fs::read(&dump).unwrap();
        let (_, found) = run(&data, &edited, &DiffOptions::default());
        let mut keys: Vec<&[u8]> = found.iter().map(|d| &d.key[..]).collect();
        keys.sort();
        assert_eq!(keys, [&b"vset:attrs"[..], b"vset:q8"], "{}", entry.name);
        assert!(found.iter().all(|d| d.value_changed && !d.type_changed));
        checked += 1;
    }
    eprintln!("{checked} servers re-saved the vector sets");
}
