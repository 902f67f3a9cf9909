//! Every committed fixture from every real server version exports to exactly what a client
//! read back from that server (fixtures/servers/<server>/<name>.jsonl, written by
//! fixtures/generate.py). No server is needed to run this.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::BTreeMap;

use common::{canonical, export, fixtures_dir, keys, matches_truth, rdb_files};
use serde_json::Value;

#[test]
fn exports_equal_server_ground_truth() {
    let root = fixtures_dir();
    let mut servers: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    servers.sort();
    assert_eq!(servers.len(), 10, "one fixture folder per server version");
    let (mut files, mut compared) = (0, 0);
    for dir in servers {
        for rdb in rdb_files(&dir) {
            let name = rdb
                .strip_prefix(&root)
                .unwrap_or(&rdb)
                .display()
                .to_string();
            let data = std::fs::read(&rdb).unwrap_or_default();
            let lines = export(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
            let truth_text = std::fs::read_to_string(rdb.with_extension("jsonl"))
                .unwrap_or_else(|e| panic!("{name}: ground truth: {e}"));
            let truth: BTreeMap<String, Value> = truth_text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{name}: {e}")))
                .map(|v| (format!("{}/{}", v["db"], v["key"]), v))
                .collect();
            let got: BTreeMap<String, &Value> = keys(&lines)
                .into_iter()
                .map(|v| (format!("{}/{}", v["db"], v["key"]), v))
                .collect();
            let want_keys: Vec<_> = truth.keys().collect();
            let got_keys: Vec<_> = got.keys().collect();
            assert_eq!(got_keys, want_keys, "{name}: key sets differ");
            for (id, want) in &truth {
                let have = got[id];
                let ty = want["type"].as_str().unwrap_or_default();
                assert_eq!(have["type"], want["type"], "{name} {id}");
                assert_eq!(
                    have["expire_ms"], want["expire_ms"],
                    "{name} {id}: expire_ms"
                );
                let (w, g) = (canonical(ty, &want["value"]), canonical(ty, &have["value"]));
                if let Err(diff) = matches_truth(&w, &g, "value", &[]) {
                    panic!("{name} {id}: {diff}");
                }
                compared += 1;
            }
            files += 1;
        }
    }
    eprintln!("{files} fixture files, {compared} keys equal their ground truth");
    assert!(compared > 500, "{compared} keys compared");
}
