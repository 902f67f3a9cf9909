//! `info`, `verify` and `check` over several files: a directory written by `convert
//! --shards` (with its manifest.json) and the same files given one by one report the sum
//! of the single-file runs and each part as its own run reports it; a key planted in the
//! wrong shard is reported; a corrupt part fails the whole and is named.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{fixtures_dir, temp_dir};
use rdb_parser::format::type_id;
use rdb_writer::slot::key_slot;
use rdb_writer::{value, Compression, Writer};
use serde_json::Value;

fn rdbkit(args: &[&str], paths: &[PathBuf]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .args(paths)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `fixture` split into 3 shards in a fresh directory under `tag`: the directory and its
/// three files, in the manifest's order.
fn split(tag: &str, fixture: &str, target: &str) -> (PathBuf, Vec<PathBuf>) {
    let dir = temp_dir(tag).join("shards");
    let src = fixtures_dir().join(fixture);
    let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .arg("convert")
        .arg(&src)
        .arg("-o")
        .arg(&dir)
        .args(["--target", target, "--dbs", "merge-into-0", "--shards", "3"])
        .args(["--functions", "drop", "--quiet"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{fixture}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let files = (0..3).map(|i| dir.join(format!("shard-{i}.rdb"))).collect();
    (dir, files)
}

/// `v` without the fields a part adds to a single-file report.
fn without(mut v: Value, fields: &[&str]) -> Value {
    if let Some(map) = v.as_object_mut() {
        for f in fields {
            map.remove(*f);
        }
    }
    v
}

fn sum(values: &[Value], field: &str) -> u64 {
    values.iter().map(|v| v[field].as_u64().unwrap()).sum()
}

const SPLITS: &[(&str, &str)] = &[
    ("redis-7.4/types.rdb", "redis-7.4"),
    ("redis-6.2/big.rdb", "redis-6.2"),
    ("valkey-9.0/types.rdb", "valkey-9.0"),
];

#[test]
fn info_of_the_whole_is_the_sum_of_the_parts() {
    for (n, (fixture, target)) in SPLITS.iter().enumerate() {
        let (dir, files) = split(&format!("parts-info-{n}"), fixture, target);
        let singles: Vec<Value> = files
            .iter()
            .map(|f| json_of(&rdbkit(&["info", "--json"], std::slice::from_ref(f))))
            .collect();
        let by_dir = rdbkit(&["info", "--json"], std::slice::from_ref(&dir));
        let by_files = rdbkit(&["info", "--json"], &files);
        for (how, out) in [("directory", &by_dir), ("files", &by_files)] {
            assert_eq!(out.status.code(), Some(0), "{fixture} {how}");
            let whole = json_of(out);
            for field in ["keys", "file_bytes", "functions", "slot_info_records"] {
                assert_eq!(
                    whole[field],
                    sum(&singles, field),
                    "{fixture} {how}: {field}"
                );
            }
            assert!(whole["keys"].as_u64().unwrap() > 0, "{fixture}");
            // Per db and type and encoding, the sum of the parts.
            let mut dbs = serde_json::Map::new();
            for single in &singles {
                for (db, counts) in single["dbs"].as_object().unwrap() {
                    add_counts(dbs.entry(db.clone()).or_insert(Value::Null), counts);
                }
            }
            assert_eq!(whole["dbs"], Value::Object(dbs), "{fixture} {how}");
            let parts = whole["parts"].as_array().unwrap();
            assert_eq!(parts.len(), 3);
            for (i, part) in parts.iter().enumerate() {
                let part_fields = ["file", "slots", "slots_held", "keys_outside_slots"];
                assert_eq!(without(part.clone(), &part_fields), singles[i], "{how} {i}");
                assert_eq!(part["file"], files[i].display().to_string().as_str());
                let held = part["slots_held"].as_array().unwrap();
                assert_eq!(held.is_empty(), singles[i]["keys"] == 0);
            }
            if how == "directory" {
                assert_eq!(whole["keys_outside_slots"], 0);
                assert_eq!(parts[0]["keys_outside_slots"]["count"], 0);
                assert_eq!(parts[2]["slots"], serde_json::json!([[10923, 16383]]));
            } else {
                assert_eq!(whole["keys_outside_slots"], Value::Null);
                assert_eq!(parts[0]["slots"], Value::Null);
            }
        }
        let text = rdbkit(&["info"], std::slice::from_ref(&dir));
        let text = String::from_utf8_lossy(&text.stdout);
        let keys = sum(&singles, "keys");
        assert!(text.contains(&format!("keys      {keys}\n")), "{text}");
        assert!(text.contains("(manifest): every key inside"), "{text}");
    }
}

/// Adds `counts` (a db's keys, expires and types) into `into`, field by field.
fn add_counts(into: &mut Value, counts: &Value) {
    match (into.clone(), counts) {
        (Value::Null, _) => *into = counts.clone(),
        (Value::Number(a), Value::Number(b)) => {
            *into = (a.as_u64().unwrap() + b.as_u64().unwrap()).into();
        }
        (Value::Object(_), Value::Object(b)) => {
            for (k, v) in b {
                let map = into.as_object_mut().unwrap();
                add_counts(map.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn verify_of_the_whole_is_the_sum_of_the_parts() {
    for (n, (fixture, target)) in SPLITS.iter().enumerate() {
        let (dir, files) = split(&format!("parts-verify-{n}"), fixture, target);
        let singles: Vec<Value> = files
            .iter()
            .map(|f| json_of(&rdbkit(&["verify", "--json"], std::slice::from_ref(f))))
            .collect();
        for (how, args) in [("directory", vec![dir.clone()]), ("files", files.clone())] {
            let out = rdbkit(&["verify", "--json"], &args);
            assert_eq!(out.status.code(), Some(0), "{fixture} {how}");
            let whole = json_of(&out);
            for field in ["keys", "file_bytes", "errors", "warnings", "omitted"] {
                assert_eq!(
                    whole[field],
                    sum(&singles, field),
                    "{fixture} {how}: {field}"
                );
            }
            assert_eq!(whole["ok"], true);
            let parts = whole["parts"].as_array().unwrap();
            for (i, part) in parts.iter().enumerate() {
                let part_fields = ["file", "slots", "keys_outside_slots"];
                assert_eq!(without(part.clone(), &part_fields), singles[i], "{how} {i}");
            }
            let outside = if how == "directory" {
                Value::from(0)
            } else {
                Value::Null
            };
            assert_eq!(whole["keys_outside_slots"], outside);
        }
        // The text: each part's own report under its name, then the whole's line.
        let out = rdbkit(&["verify"], std::slice::from_ref(&dir));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut want = String::new();
        for (i, f) in files.iter().enumerate() {
            let single = rdbkit(&["verify"], std::slice::from_ref(f));
            let slots = ["0-5460", "5461-10922", "10923-16383"][i];
            want.push_str(&format!("== {} (slots {slots})\n", f.display()));
            want.push_str(&String::from_utf8_lossy(&single.stdout));
        }
        assert!(text.starts_with(&want), "{text}\n---\n{want}");
        let last = text.lines().last().unwrap_or_default();
        let keys = sum(&singles, "keys");
        assert!(
            last.starts_with("OK: 3 parts, ") && last.contains(&format!(" {keys} keys")),
            "{last}"
        );
    }
}

#[test]
fn check_of_the_whole_is_the_worst_part() {
    let (dir, files) = split("parts-check", "redis-7.4/types.rdb", "redis-7.4");
    for target in ["redis-7.4", "redis-6.2", "azure-cache-premium"] {
        let singles: Vec<(Value, Option<i32>)> = files
            .iter()
            .map(|f| {
                let out = rdbkit(
                    &["check", "--json", "--target", target],
                    std::slice::from_ref(f),
                );
                (json_of(&out), out.status.code())
            })
            .collect();
        let out = rdbkit(
            &["check", "--json", "--target", target],
            std::slice::from_ref(&dir),
        );
        let whole = json_of(&out);
        let worst = singles.iter().map(|(_, c)| c.unwrap()).max().unwrap();
        assert_eq!(out.status.code(), Some(worst), "{target}");
        assert_eq!(whole["exit_code"], worst, "{target}");
        let parts = whole["parts"].as_array().unwrap();
        for (i, part) in parts.iter().enumerate() {
            assert_eq!(
                without(part.clone(), &["file", "slots"]),
                singles[i].0,
                "{target} {i}"
            );
        }
        let skipped: u64 = singles
            .iter()
            .map(|(v, _)| v["skipped_keys"].as_u64().unwrap())
            .sum();
        assert_eq!(whole["skipped_keys"], skipped);
        assert_eq!(whole["keys_outside_slots"], 0);
    }
    // redis-6.2 reads RDB 9 and no function: every part needs a conversion (with a
    // loss), the last line says so once.
    let out = rdbkit(&["check", "--target", "redis-6.2"], &files);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    let last = text.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        "3 parts, redis-6.2: loads after `rdbkit convert` with the flags below, which lose \
         data (every part)",
        "{text}"
    );
}

/// A directory of two shards whose manifest gives shard-0 slots 0-8191 and shard-1
/// 8192-16383; shard-0 holds `strays` besides keys it owns.
fn planted(tag: &str, strays: &[&[u8]]) -> PathBuf {
    let dir = temp_dir(tag).join("shards");
    std::fs::create_dir_all(&dir).unwrap();
    let owned: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("user:{i}").into_bytes())
        .filter(|k| key_slot(k) < 8192)
        .take(20)
        .collect();
    let others: Vec<Vec<u8>> = (0..200)
        .map(|i| format!("user:{i}").into_bytes())
        .filter(|k| key_slot(k) >= 8192)
        .take(20)
        .collect();
    let write = |name: &str, keys: Vec<&[u8]>| {
        let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(11)).unwrap();
        w.select_db(0).unwrap();
        for k in keys {
            let v = value::string(b"v", Compression::None);
            w.key_value(type_id::STRING, k, &v).unwrap();
        }
        std::fs::write(dir.join(name), w.finish().unwrap()).unwrap();
    };
    let mut first: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
    first.splice(5..5, strays.iter().copied());
    write("shard-0.rdb", first);
    write("shard-1.rdb", others.iter().map(Vec::as_slice).collect());
    let manifest = serde_json::json!({"shards": [
        {"file": "shard-0.rdb", "slots": [[0, 8191]]},
        {"file": "shard-1.rdb", "slots": [[8192, 16383]]},
    ]});
    std::fs::write(dir.join("manifest.json"), manifest.to_string()).unwrap();
    dir
}

#[test]
fn a_key_in_the_wrong_shard_is_reported() {
    let strays: [&[u8]; 2] = [b"foo", b"evil\x1b[2J:{x}"];
    for k in strays {
        assert!(key_slot(k) >= 8192, "{k:?} is meant for shard-1");
    }
    let dir = planted("parts-stray", &strays);
    let args = std::slice::from_ref(&dir);

    let info = rdbkit(&["info", "--json"], args);
    assert_eq!(info.status.code(), Some(0));
    let info = json_of(&info);
    assert_eq!(info["keys_outside_slots"], 2);
    assert_eq!(
        info["parts"][0]["keys_outside_slots"],
        serde_json::json!({"count": 2, "examples": ["foo", "evil\u{1b}[2J:{x}"]})
    );
    assert_eq!(info["parts"][1]["keys_outside_slots"]["count"], 0);
    let text = rdbkit(&["info"], args);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("0-8191 (manifest): 2 keys outside, e.g. \"foo\" (slot"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "a key's escape sequence reached the text: {text}"
    );

    // verify: one warning for the part, at its first stray key, with the count and
    // examples escaped; warnings leave the exit code 0.
    let out = rdbkit(&["verify"], args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(!text.contains('\u{1b}'), "{text}");
    let warning = text
        .lines()
        .find(|l| l.contains("[outside-slots]"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(warning.starts_with("warning at byte "), "{warning}");
    assert!(warning.contains(", key \"foo\" [outside-slots]: 2 keys hash to slots outside"));
    assert!(warning.contains("(0-8191)"), "{warning}");
    assert!(warning.contains("\"evil\\x1b[2J:{x}\" (slot "), "{warning}");
    assert!(
        text.ends_with(", 2 keys outside their part's slots\n"),
        "{text}"
    );
    let json = json_of(&rdbkit(&["verify", "--json"], args));
    assert_eq!(json["keys_outside_slots"], 2);
    assert_eq!(json["parts"][0]["keys_outside_slots"], 2);
    assert_eq!(json["parts"][0]["warnings"], 1);
    assert_eq!(json["parts"][0]["problems"][0]["check"], "outside-slots");
    assert_eq!(json["parts"][0]["problems"][0]["key"], "foo");
    assert_eq!(json["parts"][1]["problems"], serde_json::json!([]));

    // check: a finding that a re-split deals with, so the whole loads after convert.
    let out = rdbkit(&["check", "--json", "--target", "redis-7.2"], args);
    assert_eq!(out.status.code(), Some(1));
    let json = json_of(&out);
    let finding = &json["parts"][0]["findings"][0];
    assert_eq!(finding["kind"], "outside_slots");
    assert_eq!(finding["class"], "lossless");
    assert_eq!(finding["count"], 2);
    assert_eq!(finding["example_key"], "foo");
    assert_eq!(json["parts"][1]["verdict"], "loads");
    assert_eq!(
        json["deciding_parts"][0],
        dir.join("shard-0.rdb").display().to_string()
    );
    let text = rdbkit(&["check", "--target", "redis-7.2"], args);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(!text.contains('\u{1b}'), "{text}");
    assert!(text.contains("- outside_slots (lossless, 2): "), "{text}");

    // The same files given one by one have no manifest: nothing is outside.
    let files = [dir.join("shard-0.rdb"), dir.join("shard-1.rdb")];
    let json = json_of(&rdbkit(&["verify", "--json"], &files));
    assert_eq!(json["keys_outside_slots"], Value::Null);
    assert_eq!(json["warnings"], 0);
}

#[test]
fn a_corrupt_part_fails_the_whole_and_is_named() {
    let (dir, files) = split("parts-corrupt", "redis-7.4/types.rdb", "redis-7.4");
    // A flipped bit in shard-1's CRC64 trailer.
    let mut bytes = std::fs::read(&files[1]).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    std::fs::write(&files[1], bytes).unwrap();
    let named = |text: &str| text.contains(&files[1].display().to_string());
    let args = std::slice::from_ref(&dir);

    let out = rdbkit(&["verify"], args);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let last = text.lines().last().unwrap_or_default();
    assert!(last.starts_with("CORRUPT: 3 parts,"), "{last}");
    assert!(
        last.ends_with(&format!("; errors in {}", files[1].display())),
        "{last}"
    );
    let json = json_of(&rdbkit(&["verify", "--json"], args));
    assert_eq!(json["ok"], false);
    assert_eq!(json["parts"][1]["ok"], false);
    assert_eq!(json["parts"][1]["checksum"]["state"], "mismatch");
    assert_eq!(
        (
            json["parts"][0]["ok"].clone(),
            json["parts"][2]["ok"].clone()
        ),
        (true.into(), true.into())
    );

    let out = rdbkit(&["info"], args);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(named(&String::from_utf8_lossy(&out.stderr)), "{out:?}");

    let out = rdbkit(&["check", "--json", "--target", "redis-7.4"], args);
    assert_eq!(out.status.code(), Some(3));
    let json = json_of(&out);
    assert_eq!(json["verdict"], "cannot_load");
    assert_eq!(
        json["deciding_parts"],
        serde_json::json!([files[1].display().to_string()])
    );

    // A part that is not a snapshot at all: check judges it, unreadable, and goes on.
    std::fs::write(&files[2], b"not an RDB file").unwrap();
    let out = rdbkit(&["check", "--json", "--target", "redis-7.4"], args);
    assert_eq!(out.status.code(), Some(3));
    let json = json_of(&out);
    assert_eq!(json["parts"][2]["findings"][0]["kind"], "structure");
    assert_eq!(json["parts"][0]["verdict"], "loads");

    // A part missing: nothing is reported, the error names it.
    std::fs::remove_file(&files[0]).unwrap();
    for command in ["info", "verify"] {
        let out = rdbkit(&[command], args);
        assert_eq!(out.status.code(), Some(2), "{command}");
        assert!(out.stdout.is_empty(), "{command}");
        assert!(named_path(&out, &files[0]), "{command}: {out:?}");
    }
}

fn named_path(out: &Output, path: &Path) -> bool {
    String::from_utf8_lossy(&out.stderr).contains(&path.display().to_string())
}

/// A part swapped for another valid snapshot after the split (here shard-0's bytes under
/// shard-2's name) passes every check of its own, CRC64 included; only the manifest's
/// size and SHA-256 show it is not the file that was written.
#[test]
fn a_part_replaced_since_the_manifest_was_written_is_caught() {
    let (dir, files) = split("parts-replaced", "redis-7.4/types.rdb", "redis-7.4");
    std::fs::copy(&files[0], &files[2]).unwrap();
    let args = std::slice::from_ref(&dir);
    let out = rdbkit(&["verify", "--json"], args);
    assert_eq!(out.status.code(), Some(1));
    let json = json_of(&out);
    assert_eq!(json["parts"][2]["checksum"]["state"], "verified");
    let problems = json["parts"][2]["problems"].as_array().unwrap();
    let manifest: Vec<&Value> = problems
        .iter()
        .filter(|p| p["check"] == "manifest")
        .collect();
    assert_eq!(manifest.len(), 1, "{problems:?}");
    let message = manifest[0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("bytes") || message.contains("SHA-256"),
        "{message}"
    );
    for i in [0, 1] {
        assert_eq!(json["parts"][i]["ok"], true, "part {i}");
    }
    // Given one by one there is no manifest to compare with: each file is sound.
    let out = rdbkit(&["verify"], &files);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

/// The manifest is an input: no output may replace it. A file read twice, a manifest that
/// leaves slots to no shard or gives one to two, are refused before anything is counted.
#[test]
fn a_manifest_is_protected_and_must_be_exact() {
    let (dir, files) = split("parts-strict", "redis-7.4/types.rdb", "redis-7.4");
    let manifest = dir.join("manifest.json");
    let before = std::fs::read(&manifest).unwrap();
    let html = format!("--html={}", manifest.display());
    let csv = manifest.display().to_string();
    for args in [
        vec!["stats", html.as_str()],
        vec!["keys", "--format", "csv", "-o", csv.as_str()],
    ] {
        let out = rdbkit(&args, std::slice::from_ref(&dir));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert_eq!(std::fs::read(&manifest).unwrap(), before, "{args:?}");
    }
    for twice in [
        vec![files[0].clone(), files[0].clone()],
        vec![dir.clone(), files[1].clone()],
    ] {
        for command in ["verify", "info", "stats"] {
            let out = rdbkit(&[command], &twice);
            assert_eq!(out.status.code(), Some(2), "{command} {twice:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("same file"),
                "{out:?}"
            );
        }
    }
    let mut m: Value = serde_json::from_slice(&before).unwrap();
    // shard-2 left out: its slots belong to no part.
    m["shards"].as_array_mut().unwrap().pop();
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let out = rdbkit(&["verify"], std::slice::from_ref(&dir));
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("belongs to no shard"),
        "{out:?}"
    );
}
