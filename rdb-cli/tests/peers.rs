//! Every RDB file from other projects' test suites (shared/fixtures/peers) is read in
//! place; contents are checked against that folder's README and Redis' own expectations.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{canonical, export, export_with, keys, peers_dir};
use rdb_parser::ParserBuilder;
use serde_json::{json, Value};

const CORRUPT: [&str; 2] = ["corrupt_ziplist.rdb", "corrupt_empty_keys.rdb"];

#[test]
fn every_peer_file_parses_and_the_corrupt_ones_fail_clearly() {
    let Some(dir) = peers_dir() else { return };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rdb"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 36, "the peers folder holds 36 RDB files");
    for path in files {
        let data = std::fs::read(&path).unwrap_or_default();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let result = export(&data);
        if CORRUPT.contains(&name.as_str()) {
            let err = result.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                err.contains(" at byte "),
                "{name}: error must name the offset: {err:?}"
            );
            assert!(
                err.contains("in key \""),
                "{name}: error must name the key: {err:?}"
            );
        } else {
            let lines = result.unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(lines[0]["kind"], "header", "{name}");
        }
    }
}

fn load(name: &str) -> Option<Vec<Value>> {
    let dir = peers_dir()?;
    let sub = if name.starts_with("redis-redis/") {
        ""
    } else {
        "sripathikrishnan-redis-rdb-tools/"
    };
    let path = dir.join(format!("{sub}{name}"));
    let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Some(export(&data).unwrap_or_else(|e| panic!("{name}: {e}")))
}

fn key<'a>(lines: &'a [Value], name: &str) -> &'a Value {
    keys(lines)
        .into_iter()
        .find(|k| k["key"] == name)
        .unwrap_or_else(|| panic!("no key {name}"))
}

fn strs(items: &[&str]) -> Value {
    json!(items)
}

/// The contents Redis' `tests/integration/rdb.tcl` expects after loading encodings.rdb.
#[test]
fn encodings_rdb_matches_redis_expectations() {
    let Some(lines) = load("redis-redis/encodings.rdb") else {
        return;
    };
    assert_eq!(keys(&lines).len(), 13);
    let mixed = ["1", "2", "3", "a", "b", "c", "100000", "6000000000"];
    let list: Vec<&str> = mixed.iter().chain(&mixed).chain(&mixed).copied().collect();
    let expect: Vec<(&str, &str, Value)> = vec![
        ("compressible", "string", json!("a".repeat(137))),
        (
            "hash",
            "hash",
            json!([
                ["a", "1"],
                ["aa", "10"],
                ["aaa", "100"],
                ["b", "2"],
                ["bb", "20"],
                ["bbb", "200"],
                ["c", "3"],
                ["cc", "30"],
                ["ccc", "300"],
                ["ddd", "400"],
                ["eee", "5000000000"]
            ]),
        ),
        (
            "hash_zipped",
            "hash",
            json!([["a", "1"], ["b", "2"], ["c", "3"]]),
        ),
        ("list", "list", strs(&list)),
        ("list_zipped", "list", strs(&mixed)),
        ("number", "string", json!("10")),
        (
            "set",
            "set",
            strs(&["1", "100000", "2", "3", "6000000000", "a", "b", "c"]),
        ),
        ("set_zipped_1", "set", strs(&["1", "2", "3", "4"])),
        (
            "set_zipped_2",
            "set",
            strs(&["100000", "200000", "300000", "400000"]),
        ),
        (
            "set_zipped_3",
            "set",
            strs(&[
                "1000000000",
                "2000000000",
                "3000000000",
                "4000000000",
                "5000000000",
                "6000000000",
            ]),
        ),
        ("string", "string", json!("Hello World")),
        (
            "zset",
            "zset",
            json!([
                ["a", 1],
                ["b", 2],
                ["c", 3],
                ["aa", 10],
                ["bb", 20],
                ["cc", 30],
                ["aaa", 100],
                ["bbb", 200],
                ["ccc", 300],
                ["aaaa", 1000],
                ["cccc", 123456789],
                ["bbbb", 5000000000u64]
            ]),
        ),
        ("zset_zipped", "zset", json!([["a", 1], ["b", 2], ["c", 3]])),
    ];
    for (name, ty, want) in expect {
        let k = key(&lines, name);
        assert_eq!(k["type"], ty, "{name}");
        assert_eq!(k["db"], 0, "{name}");
        assert_eq!(canonical(ty, &k["value"]), canonical(ty, &want), "{name}");
    }
}

#[test]
fn peer_readme_facts() {
    let count = |name: &str| load(name).map(|l| keys(&l).len());
    let first = |name: &str| load(name).map(|l| keys(&l)[0].clone());
    // One hashtable hash of 1000 fields with 50-byte values.
    if let Some(k) = first("dictionary.rdb") {
        assert_eq!(k["encoding"], "hashtable");
        let fields = k["value"].as_array().map(Vec::len);
        assert_eq!(fields, Some(1000));
        assert!(k["value"]
            .as_array()
            .into_iter()
            .flatten()
            .all(|p| p[1].as_str().map(str::len) == Some(50)));
    }
    if let Some(k) = first("easily_compressible_string_key.rdb") {
        let key = k["key"].as_str().unwrap_or_default();
        assert!(key.len() > 20 && key.bytes().all(|b| b == b'a'), "{key}");
    }
    if let Some(lines) = load("empty_database.rdb") {
        assert_eq!(lines.len(), 1, "header only");
    }
    // Six integer-encoded keys, INT8/16/32, positive and negative.
    if let Some(lines) = load("integer_keys.rdb") {
        let ks: Vec<i64> = keys(&lines)
            .iter()
            .filter_map(|k| k["key"].as_str()?.parse().ok())
            .collect();
        assert_eq!(ks.len(), 6);
        assert!(ks.iter().any(|&k| k < 0) && ks.iter().any(|&k| k > 65535));
    }
    for (name, width_max) in [
        ("intset_16.rdb", 1i64 << 15),
        ("intset_32.rdb", 1 << 31),
        ("intset_64.rdb", i64::MAX),
    ] {
        if let Some(k) = first(name) {
            assert_eq!(k["encoding"], "intset", "{name}");
            let max = k["value"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str()?.parse::<i64>().ok())
                .max();
            assert!(
                max.is_some_and(|m| m <= width_max
                    && (name == "intset_16.rdb" || m > width_max >> 16 || name == "intset_64.rdb")),
                "{name}: {max:?}"
            );
        }
    }
    if let Some(k) = first("keys_with_expiry.rdb") {
        assert_eq!(k["expire_ms"], 1671963072573i64);
    }
    if let Some(k) = first("linkedlist.rdb") {
        assert_eq!(k["encoding"], "linkedlist");
        assert_eq!(k["value"].as_array().map(Vec::len), Some(1000));
    }
    if let Some(lines) = load("multiple_databases.rdb") {
        let dbs: Vec<u64> = keys(&lines)
            .iter()
            .filter_map(|k| k["db"].as_u64())
            .collect();
        assert_eq!(dbs, vec![0, 2]);
    }
    assert_eq!(count("parser_filters.rdb").unwrap_or(43), 43);
    assert_eq!(count("redis_50_with_streams.rdb").unwrap_or(14), 14);
    if let Some(lines) = load("redis_50_with_streams.rdb") {
        let stream = keys(&lines)
            .into_iter()
            .find(|k| k["type"] == "stream")
            .cloned()
            .unwrap_or_default();
        assert!(
            !stream["value"]["groups"]
                .as_array()
                .map(Vec::is_empty)
                .unwrap_or(true),
            "consumer groups"
        );
        let live = stream["value"]["entries"]
            .as_array()
            .map(Vec::len)
            .unwrap_or(0) as u64;
        assert_eq!(Some(live), stream["value"]["length"].as_u64());
    }
    if let Some(lines) = load("redis_40_with_module.rdb") {
        let m = keys(&lines)
            .into_iter()
            .find(|k| k["type"] == "module")
            .cloned()
            .unwrap_or_default();
        assert_eq!(m["encoding"], "module2");
        assert_eq!(keys(&lines).len(), 2);
    }
    if let Some(lines) = load("redis_60_with_module_aux.rdb") {
        assert!(lines.iter().any(|l| l["kind"] == "module_aux"));
        assert_eq!(keys(&lines).len(), 0);
    }
    if let Some(k) = first("rdb_version_8_with_64b_length_and_scores.rdb") {
        assert!(k.is_object());
    }
    if let Some(k) = first("regular_sorted_set.rdb") {
        assert_eq!(k["encoding"], "skiplist");
        assert_eq!(k["value"].as_array().map(Vec::len), Some(500));
    }
    // Despite its name (and the README), this file stores type 13, a hash ziplist.
    if let Some(k) = first("zipmap_with_big_values.rdb") {
        assert_eq!(k["encoding"], "ziplist");
        let mut lens: Vec<usize> = k["value"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p[1].as_str().map(str::len))
            .collect();
        lens.sort();
        assert_eq!(lens, vec![253, 254, 255, 300, 20000]);
    }
    if let Some(lines) = load("redis-redis/list-quicklist.rdb") {
        assert_eq!(key(&lines, "x")["value"], "7");
    }
    if let Some(lines) = load("redis-redis/scriptbackup.rdb") {
        let header = &lines[0];
        assert!(header["aux"].get("repl-id").is_some(), "{header}");
        assert!(
            lines
                .iter()
                .any(|l| l["kind"] == "aux" && l["key"] == "lua")
                || header["aux"].get("lua").is_some()
        );
    }
}

/// Redis loads corrupt_empty_keys.rdb by skipping its nine empty keys; rdbkit refuses them
/// by default and reads them when asked.
#[test]
fn empty_keys_are_read_on_request() {
    let Some(dir) = peers_dir() else { return };
    let data = std::fs::read(dir.join("redis-redis/corrupt_empty_keys.rdb")).unwrap_or_default();
    let mut builder = ParserBuilder::new();
    builder.allow_empty_keys(true);
    let lines = export_with(&data, &builder).unwrap_or_else(|e| panic!("{e}"));
    let ks = keys(&lines);
    assert_eq!(ks.len(), 9);
    assert!(ks
        .iter()
        .all(|k| k["value"].as_array().is_some_and(Vec::is_empty)));
}
