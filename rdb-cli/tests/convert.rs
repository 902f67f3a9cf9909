//! Conversion without servers: passthrough is byte-identical, every fixture converted to
//! every target version reads back equal to its source minus the declared losses, and a
//! failed conversion leaves no file.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::process::Command;

use common::{canonical, export, fixtures_dir, keys, temp_dir};
use rdb_parser::{Item, Parser, ParserBuilder};
use rdb_writer::convert::{
    convert, ConvertOptions, DbPolicy, FieldTtlPolicy, FunctionPolicy, Loss, ModulePolicy,
    StreamIdmpPolicy,
};
use rdb_writer::TargetProfile;
use serde_json::Value;

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for server in std::fs::read_dir(fixtures_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        for f in std::fs::read_dir(server.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let p = f.path();
            if p.extension().is_some_and(|e| e == "rdb") {
                let name = format!(
                    "{}/{}",
                    server.file_name().to_string_lossy(),
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                );
                out.push((name, std::fs::read(&p).unwrap_or_default()));
            }
        }
    }
    out.sort();
    assert!(out.len() >= 40, "committed fixtures");
    out
}

fn lossy_options(version: u32) -> ConvertOptions {
    let mut opts = ConvertOptions::new(
        TargetProfile::for_version(version).unwrap_or_else(|| panic!("{version}")),
    );
    opts.field_ttls = FieldTtlPolicy::Drop;
    opts.stream_idmp = StreamIdmpPolicy::Drop;
    opts.functions = FunctionPolicy::Drop;
    opts.modules = ModulePolicy::Keep;
    opts.dbs = DbPolicy::Keep;
    opts
}

#[test]
fn passthrough_to_the_same_version_is_byte_identical() {
    let mut checked = 0;
    for (name, data) in fixtures() {
        let version = Parser::new(&data).map(|p| p.version().number).unwrap_or(0);
        let opts = lossy_options(version);
        let mut losses = 0;
        let (out, summary) = convert(
            &data,
            &ParserBuilder::new(),
            &opts,
            Vec::new(),
            &mut |_| {
                losses += 1;
                Ok(())
            },
            &mut |_| {},
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(losses, 0, "{name}");
        assert_eq!(summary.transcoded, 0, "{name}");
        assert!(out == data, "{name}: output differs from input");
        checked += 1;
    }
    eprintln!("{checked} fixtures reproduced byte for byte");
}

/// Drops, per the loss report, what the target could not hold from a source key line.
fn expected(source: &Value, dropped_ttls: bool, lower_stream: bool) -> Value {
    let mut v = source.clone();
    if dropped_ttls {
        if let Some(fields) = v["value"].as_array_mut() {
            for f in fields {
                if let Some(pair) = f.as_array_mut() {
                    pair.truncate(2);
                }
            }
        }
    }
    if lower_stream {
        // Metadata an older stream type does not store; its server derives it.
        let obj = &mut v["value"];
        for k in ["first_id", "max_deleted_id", "entries_added"] {
            obj[k] = Value::Null;
        }
        if let Some(groups) = obj["groups"].as_array_mut() {
            for g in groups {
                g["entries_read"] = Value::Null;
                if let Some(cs) = g["consumers"].as_array_mut() {
                    for c in cs {
                        c["active_time_ms"] = Value::Null;
                    }
                }
            }
        }
    }
    v
}

fn stream_fields_missing_ok(want: &Value, got: &Value) -> bool {
    // Fields the lower type lacks come back null; fields it keeps must match.
    match (want, got) {
        (Value::Null, _) => true,
        (Value::Object(w), Value::Object(g)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| stream_fields_missing_ok(wv, gv))),
        (Value::Array(w), Value::Array(g)) => {
            w.len() == g.len() && w.iter().zip(g).all(|(a, b)| stream_fields_missing_ok(a, b))
        }
        (w, g) => w == g,
    }
}

#[test]
fn every_fixture_converts_to_every_version_and_reads_back_equal() {
    let mut pairs = 0;
    for (name, data) in fixtures() {
        let source_lines = export(&data).unwrap_or_else(|e| panic!("{name}: {e}"));
        let source_version = Parser::new(&data)
            .map(|p| p.version())
            .unwrap_or(rdb_parser::Version::redis(0));
        for target in [9u32, 10, 11, 12, 13, 80] {
            let opts = lossy_options(target);
            let mut ttl_dropped: HashSet<String> = HashSet::new();
            let mut dropped: HashSet<String> = HashSet::new();
            let (out, _) = convert(
                &data,
                &ParserBuilder::new(),
                &opts,
                Vec::new(),
                &mut |l: &Loss<'_>| {
                    let id = format!(
                        "{}/{}",
                        l.db.unwrap_or(0),
                        String::from_utf8_lossy(l.key.unwrap_or_default())
                    );
                    match l.action {
                        "field_ttls_dropped" => {
                            ttl_dropped.insert(id);
                        }
                        "dropped" => {
                            dropped.insert(id);
                        }
                        _ => {}
                    }
                    Ok(())
                },
                &mut |_| {},
            )
            .unwrap_or_else(|e| panic!("{name} -> {target}: {e}"));
            let lines = export(&out)
                .unwrap_or_else(|e| panic!("{name} -> {target}: output does not parse: {e}"));
            assert_eq!(lines[0]["rdb_version"], target, "{name}");
            let got: BTreeMap<String, &Value> = keys(&lines)
                .into_iter()
                .map(|k| {
                    (
                        format!(
                            "{}/{}",
                            k["db"],
                            k["key"]
                                .as_str()
                                .map(str::to_owned)
                                .unwrap_or_else(|| k["key"].to_string())
                        ),
                        k,
                    )
                })
                .collect();
            let lower = target != 80
                && (source_version.magic == rdb_parser::Magic::Valkey
                    || target < source_version.number);
            for k in keys(&source_lines) {
                let id = format!(
                    "{}/{}",
                    k["db"],
                    k["key"]
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| k["key"].to_string())
                );
                if dropped.contains(&id) {
                    assert!(
                        !got.contains_key(&id),
                        "{name} -> {target}: {id} reported dropped but present"
                    );
                    continue;
                }
                let have = got
                    .get(&id)
                    .unwrap_or_else(|| panic!("{name} -> {target}: {id} missing"));
                let ty = k["type"].as_str().unwrap_or_default();
                let mut want = expected(k, ttl_dropped.contains(&id), lower && ty == "stream");
                if target != 13 {
                    // Only RDB 13 stores IDMP state (dropped under StreamIdmpPolicy::Drop).
                    if let Some(obj) = want["value"].as_object_mut() {
                        obj.remove("idmp");
                    }
                }
                assert_eq!(
                    have["expire_ms"], want["expire_ms"],
                    "{name} -> {target}: {id}"
                );
                let (w, g) = (canonical(ty, &want["value"]), canonical(ty, &have["value"]));
                let same = if ty == "stream" {
                    stream_fields_missing_ok(&w, &g)
                } else {
                    w == g
                };
                assert!(same, "{name} -> {target}: {id}\n want {w}\n got  {g}");
            }
            assert_eq!(
                got.len() + dropped.len(),
                keys(&source_lines).len(),
                "{name} -> {target}"
            );
            pairs += 1;
        }
    }
    eprintln!("{pairs} fixture x version conversions read back equal");
}

#[test]
fn hash_field_ttls_survive_between_redis_and_valkey() {
    for (name, data) in fixtures()
        .into_iter()
        .filter(|(n, _)| n.ends_with("/types.rdb"))
    {
        let source = export(&data).unwrap_or_default();
        let with_ttls: Vec<&Value> = keys(&source)
            .into_iter()
            .filter(|k| {
                k["value"].as_array().is_some_and(|fs| {
                    fs.iter()
                        .any(|f| f.as_array().is_some_and(|p| p.len() == 3))
                })
            })
            .collect();
        if with_ttls.is_empty() {
            continue;
        }
        for target in [12u32, 80] {
            let mut opts = lossy_options(target);
            opts.field_ttls = FieldTtlPolicy::Error;
            let (out, _) = convert(
                &data,
                &ParserBuilder::new(),
                &opts,
                Vec::new(),
                &mut |_| Ok(()),
                &mut |_| {},
            )
            .unwrap_or_else(|e| panic!("{name} -> {target}: {e}"));
            let back = export(&out).unwrap_or_default();
            for k in &with_ttls {
                let b = keys(&back)
                    .into_iter()
                    .find(|x| x["key"] == k["key"] && x["db"] == k["db"])
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(
                    canonical("hash", &b["value"]),
                    canonical("hash", &k["value"]),
                    "{name} -> {target}: {}",
                    k["key"]
                );
            }
        }
    }
}

fn rdbkit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_rdbkit"))
}

#[test]
fn a_failed_conversion_leaves_no_file() {
    let dir = temp_dir("convert-fail");
    let src = fixtures_dir().join("redis-7.4/types.rdb");
    let data = std::fs::read(&src).unwrap_or_default();
    // Corrupt: cut in the middle.
    let cut = dir.join("cut.rdb");
    std::fs::write(&cut, data.get(..data.len() / 2).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("out.rdb");
    let report = dir.join("report.jsonl");
    let status = rdbkit()
        .args(["convert"])
        .arg(&cut)
        .arg("-o")
        .arg(&out)
        .args([
            "--target",
            "redis-6.2",
            "--field-ttls",
            "drop",
            "--functions",
            "drop",
            "--report",
        ])
        .arg(&report)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("at byte"), "{stderr}");
    // Refused: field TTLs with no flag.
    let status = rdbkit()
        .args(["convert"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--target", "redis-6.2", "--functions", "drop"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("--field-ttls"), "names the flag: {stderr}");
    assert!(stderr.contains("key \""), "names the key: {stderr}");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("cut.rdb")],
        "nothing but the input remains"
    );
    // And the source was not touched.
    assert_eq!(std::fs::read(&src).unwrap_or_default(), data);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn single_db_targets_refuse_other_dbs_unless_told() {
    let data = std::fs::read(fixtures_dir().join("redis-6.2/types.rdb")).unwrap_or_default();
    let dbs: HashSet<u64> = Parser::new(&data)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|i| match i {
            Item::Key(e) => Some(e.db),
            _ => None,
        })
        .collect();
    assert!(dbs.len() > 1, "fixture has several dbs");
    let profile = TargetProfile::named("azure-cache-premium-clustered")
        .cloned()
        .unwrap_or_else(|| panic!());
    let mut opts = ConvertOptions::new(profile);
    assert!(convert(
        &data,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {}
    )
    .is_err());
    opts.dbs = DbPolicy::MergeInto0;
    let (out, s) = convert(
        &data,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let lines = export(&out).unwrap_or_default();
    assert!(keys(&lines).iter().all(|k| k["db"] == 0));
    assert_eq!(s.keys_written, s.keys_read);
    opts.dbs = DbPolicy::DropOthers;
    let mut reported = 0;
    let (out, s) = convert(
        &data,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |l| {
            reported += u64::from(l.action == "dropped");
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reported, s.keys_dropped);
    assert!(s.keys_dropped > 0);
    assert!(keys(&export(&out).unwrap_or_default())
        .iter()
        .all(|k| k["db"] == 0));
}

/// DUMP payloads: type, value, target version (u16 LE), CRC64 of all that. The value bytes
/// must decode to the same value, and the footer must name the target's version.
#[test]
fn dump_payloads_carry_the_target_version_and_decode() {
    use rdb_writer::convert::dump_payload;
    let data = std::fs::read(fixtures_dir().join("redis-7.4/types.rdb")).unwrap_or_default();
    let source = Parser::new(&data)
        .map(|p| p.version())
        .unwrap_or(rdb_parser::Version::redis(0));
    let mut checked = 0;
    for target in [9u32, 11, 12] {
        let opts = lossy_options(target);
        for item in Parser::new(&data).into_iter().flatten() {
            let Ok(Item::Key(entry)) = item else { continue };
            let Some(payload) =
                dump_payload(&entry, source, &opts).unwrap_or_else(|e| panic!("{e}"))
            else {
                continue;
            };
            let n = payload.len();
            let (body, crc) = payload.split_at(n - 8);
            assert_eq!(crc, rdb_parser::crc64(0, body).to_le_bytes(), "CRC");
            assert_eq!(
                body[n - 10..],
                (target as u16).to_le_bytes(),
                "version footer"
            );
            // The same type and value bytes, wrapped as a one-key file of the target version.
            let mut file = rdb_parser::Version::redis(target).header().to_vec();
            file.push(body[0]);
            file.extend_from_slice(entry.raw_key);
            file.extend_from_slice(&body[1..n - 10]);
            file.push(0xFF);
            file.extend_from_slice(&[0; 8]);
            let lines = export(&file).unwrap_or_else(|e| panic!("{:?}: {e}", entry.key));
            let mut original = Vec::new();
            rdb_cli::export::write_value(&mut original, &entry.value)
                .unwrap_or_else(|e| panic!("{e}"));
            let original: Value = serde_json::from_slice(&original).unwrap_or_default();
            let ty = entry.value.type_name();
            let mut want = serde_json::json!({"type": ty, "value": original});
            want = expected(&want, target < 12, ty == "stream" && target < 12);
            let got = &keys(&lines)[0]["value"];
            let (w, g) = (canonical(ty, &want["value"]), canonical(ty, got));
            let same = if ty == "stream" {
                stream_fields_missing_ok(&w, &g)
            } else {
                w == g
            };
            assert!(same, "{:?} -> {target}\n want {w}\n got  {g}", entry.key);
            checked += 1;
        }
    }
    assert!(checked > 100, "{checked}");
}

#[test]
fn dropped_functions_can_be_kept_as_function_load_commands() {
    let dir = temp_dir("functions-file");
    let src = fixtures_dir().join("redis-7.0/types.rdb");
    let (out, funcs, report) = (dir.join("out.rdb"), dir.join("f.resp"), dir.join("r.jsonl"));
    let status = rdbkit()
        .args(["convert"])
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args([
            "--target",
            "redis-6.0",
            "--functions",
            "drop",
            "--functions-file",
        ])
        .arg(&funcs)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        status.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let resp = std::fs::read(&funcs).unwrap_or_default();
    assert!(
        resp.starts_with(b"*4\r\n$8\r\nFUNCTION\r\n$4\r\nLOAD\r\n$7\r\nREPLACE\r\n$"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert!(resp.windows(9).any(|w| w == b"#!lua nam"));
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    assert!(
        report.contains("\"action\":\"function_dropped\""),
        "{report}"
    );
    let stderr = String::from_utf8_lossy(&status.stderr);
    assert!(stderr.contains("function libraries dropped"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn merging_dbs_refuses_a_key_present_in_two() {
    use rdb_writer::Writer;
    let mut w =
        Writer::new(Vec::new(), rdb_parser::Version::redis(9)).unwrap_or_else(|e| panic!("{e}"));
    for db in [0u64, 3] {
        let _ = w.select_db(db);
        let _ = w.key_value(
            0,
            b"same",
            &rdb_writer::value::string(b"v", rdb_writer::Compression::None),
        );
    }
    let data = w.finish().unwrap_or_else(|e| panic!("{e}"));
    let mut opts = ConvertOptions::new(
        TargetProfile::named("azure-cache-premium-clustered")
            .cloned()
            .unwrap_or_else(|| panic!()),
    );
    opts.dbs = DbPolicy::MergeInto0;
    let err = convert(
        &data,
        &ParserBuilder::new(),
        &opts,
        Vec::new(),
        &mut |_| Ok(()),
        &mut |_| {},
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(
        err.contains("\"same\" (db 3)") && err.contains("more than one input or database"),
        "{err}"
    );
}

#[test]
fn shards_go_only_into_a_new_or_empty_directory() {
    let dir = temp_dir("split-dir");
    let out = dir.join("shards");
    let src = fixtures_dir().join("redis-6.2/big.rdb");
    let split = |n: &str| {
        rdbkit()
            .args(["convert"])
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args([
                "--target",
                "redis-7.0",
                "--dbs",
                "merge-into-0",
                "--shards",
                n,
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    assert_eq!(split("3").status.code(), Some(0));
    let listing = || {
        let mut v: Vec<_> = std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        v.sort();
        v
    };
    let first = listing();
    assert_eq!(first.len(), 4, "{first:?}");
    let again = split("2");
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(listing(), first, "the earlier split is untouched");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(
        leftovers,
        vec![std::ffi::OsString::from("shards")],
        "no staging directory left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn run(
    data: &[u8],
    opts: &ConvertOptions,
    parser: &ParserBuilder,
) -> Result<(Vec<u8>, rdb_writer::convert::ConvertSummary), String> {
    convert(data, parser, opts, Vec::new(), &mut |_| Ok(()), &mut |_| {}).map_err(|e| e.to_string())
}

/// Bytes appended after a wrong trailer must not let the fast checksum path accept it.
#[test]
fn a_wrong_checksum_is_caught_even_with_trailing_bytes() {
    let mut data = std::fs::read(fixtures_dir().join("redis-7.4/types.rdb")).unwrap_or_default();
    let i = data
        .windows(5)
        .position(|w| w == b"hello")
        .unwrap_or_else(|| panic!("fixture has hello"));
    data[i] = b'J';
    data.extend_from_slice(&[0; 8]);
    let err = run(&data, &lossy_options(12), &ParserBuilder::new())
        .err()
        .unwrap_or_default();
    assert!(err.contains("checksum mismatch"), "{err}");
    assert!(export(&data).is_err());
}

/// A filter that empties a high database must not leave its SELECTDB for a target with
/// fewer databases; without a filter, such a database is refused.
#[test]
fn databases_a_filter_empties_are_not_written() {
    let mut w = rdb_writer::Writer::new(Vec::new(), rdb_parser::Version::redis(9))
        .unwrap_or_else(|e| panic!("{e}"));
    for (db, key) in [(0u64, &b"app:1"[..]), (20, b"other")] {
        let _ = w.select_db(db);
        let _ = w.key_value(
            0,
            key,
            &rdb_writer::value::string(b"v", rdb_writer::Compression::None),
        );
    }
    let data = w.finish().unwrap_or_else(|e| panic!("{e}"));
    let mut opts = ConvertOptions::new(
        TargetProfile::named("redis-6.2")
            .cloned()
            .unwrap_or_else(|| panic!()),
    );
    assert!(run(&data, &opts, &ParserBuilder::new())
        .err()
        .unwrap_or_default()
        .contains("database 20"));
    opts.filter.dbs = Some([0].into_iter().collect());
    let (out, s) = run(&data, &opts, &ParserBuilder::new()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.keys_written, s.keys_filtered), (1, 1));
    assert!(
        !out.windows(2).any(|w| w == [0xFE, 20]),
        "no SELECTDB 20 in the output"
    );
}

/// Empty collections (read only on request) are dropped and reported, never written.
#[test]
fn empty_collections_are_dropped_and_reported() {
    let Some(dir) = common::peers_dir() else {
        return;
    };
    let data = std::fs::read(dir.join("redis-redis/corrupt_empty_keys.rdb")).unwrap_or_default();
    let mut parser = ParserBuilder::new();
    parser.allow_empty_keys(true);
    let mut dropped = 0;
    let (out, s) = convert(
        &data,
        &parser,
        &lossy_options(9),
        Vec::new(),
        &mut |l| {
            dropped += u64::from(l.action == "dropped");
            Ok(())
        },
        &mut |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s.keys_dropped, dropped, s.keys_written), (9, 9, 0));
    assert!(keys(&export(&out).unwrap_or_default()).is_empty());
}

/// With checksums off, a corrupt value is not copied under a fresh, valid checksum.
#[test]
fn values_are_validated_when_no_checksum_vouches_for_them() {
    let mut data = std::fs::read(fixtures_dir().join("redis-6.2/types.rdb")).unwrap_or_default();
    let n = data.len();
    data[n - 8..].fill(0);
    assert!(
        run(&data, &lossy_options(9), &ParserBuilder::new()).is_ok(),
        "intact with checksum off"
    );
    // Damage a listpack/ziplist end marker inside some value: find a blob ending FF and
    // flip it, then expect an error naming a key rather than a written file.
    let mut damaged = data.clone();
    let mut found = false;
    for item in rdb_parser::ParserBuilder::new()
        .verify_checksum(false)
        .parse(&data)
        .into_iter()
        .flatten()
        .flatten()
    {
        if let Item::Key(e) = item {
            if e.value.encoding_name() == "ziplist"
                && e.raw_value.last() == Some(&0xFF)
                && e.raw_value.first().is_some_and(|b| b >> 6 == 0)
            {
                let end = (e.offset as usize..data.len())
                    .find(|&i| data[i..].starts_with(e.raw_value))
                    .map(|i| i + e.raw_value.len() - 1);
                if let Some(at) = end {
                    damaged[at] = 0x00;
                    found = true;
                    break;
                }
            }
        }
    }
    assert!(found, "fixture has an uncompressed ziplist");
    let err = run(&damaged, &lossy_options(9), &ParserBuilder::new())
        .err()
        .unwrap_or_default();
    assert!(err.contains("in key \""), "{err}");
}

fn write_rdb(keys: &[(u8, &[u8], Vec<u8>)]) -> Vec<u8> {
    let mut w = rdb_writer::Writer::new(Vec::new(), rdb_parser::Version::redis(9))
        .unwrap_or_else(|e| panic!("{e}"));
    w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
    for (t, k, v) in keys {
        w.key_value(*t, k, v).unwrap_or_else(|e| panic!("{e}"));
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn plain_string(b: &[u8]) -> Vec<u8> {
    rdb_writer::value::string(b, rdb_writer::Compression::None)
}

/// A value a loader refuses, under a valid checksum, is never copied under a fresh one:
/// convert stops before writing, naming the key and its offset.
#[test]
fn a_corrupt_value_under_a_valid_checksum_stops_convert() {
    use rdb_parser::format::type_id;
    let dir = temp_dir("convert-corrupt");
    let cases: [(&str, Vec<u8>); 2] = [
        // An LZF back-reference before the output's start.
        ("s", vec![0xC3, 4, 4, 0x00, b'a', 0x20, 0x05]),
        // A zipmap declaring 2 pairs and holding 1.
        ("h", plain_string(&[2, 1, b'f', 1, 0, b'v', 0xFF])),
    ];
    for (key, value) in cases {
        let t = if key == "s" {
            type_id::STRING
        } else {
            type_id::HASH_ZIPMAP
        };
        let input = dir.join(format!("{key}.rdb"));
        let data = write_rdb(&[(0, b"ok", plain_string(b"v")), (t, key.as_bytes(), value)]);
        std::fs::write(&input, data).unwrap_or_else(|e| panic!("{e}"));
        let out = dir.join(format!("{key}-out.rdb"));
        let run = rdbkit()
            .arg("convert")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--target", "redis-7.0"])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{key}: {stderr}");
        assert!(
            stderr.contains(&format!("\"{key}\"")) && stderr.contains("byte"),
            "{key}: names the key and offset: {stderr}"
        );
        assert!(!out.exists(), "{key}: an output was written");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A compressed string declaring length 0 loads on Redis 6.2+ and Valkey and is refused by
/// 6.0 and older (`redis-check-rdb` of each, in verify's loader-agreement test): convert
/// for those targets stops before writing, to a file or to standard output, and converts
/// it for the others.
#[test]
fn an_lzf_string_of_length_0_is_refused_only_for_targets_that_refuse_it() {
    use rdb_parser::format::type_id;
    let dir = temp_dir("convert-lzf0");
    let input = dir.join("lzf0.rdb");
    let data = write_rdb(&[(type_id::STRING, b"k", vec![0xC3, 2, 0, 0x00, b'x'])]);
    std::fs::write(&input, data).unwrap_or_else(|e| panic!("{e}"));
    for (target, to, refused) in [
        ("redis-6.0", "file", true),
        ("azure-cache-premium", "-", true),
        ("redis-6.2", "file", false),
        ("valkey-8.0", "-", false),
    ] {
        let out = dir.join(format!("{target}.rdb"));
        let run = rdbkit()
            .arg("convert")
            .arg(&input)
            .arg("-o")
            .arg(if to == "-" {
                "-".as_ref()
            } else {
                out.as_os_str()
            })
            .args(["--target", target])
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let stderr = String::from_utf8_lossy(&run.stderr);
        if refused {
            assert_eq!(run.status.code(), Some(1), "{target}: {stderr}");
            assert!(
                stderr.contains("\"k\"") && stderr.contains("refuses it"),
                "{target}: {stderr}"
            );
            assert!(run.stdout.is_empty() && !out.exists(), "{target}: wrote");
        } else {
            assert_eq!(run.status.code(), Some(0), "{target}: {stderr}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A loss a flag allowed is counted in the summary, never "nothing lost": Redis 8.6
/// streams converted for 8.0 under `--stream-idmp drop` lose their producers' state.
#[test]
fn dropped_idmp_state_is_counted_in_the_summary() {
    let dir = temp_dir("convert-idmp");
    let input = fixtures_dir().join("redis-8.6/idmp.rdb");
    let run = |json: bool| {
        let mut c = rdbkit();
        c.arg("convert")
            .arg(&input)
            .arg("-o")
            .arg(dir.join(format!("out-{json}.rdb")))
            .args(["--target", "redis-8.0", "--stream-idmp", "drop"]);
        if json {
            c.arg("--json");
        }
        c.output().unwrap_or_else(|e| panic!("{e}"))
    };
    let text = run(false);
    assert_eq!(text.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(
        stderr.contains("streams lost their IDMP state") && !stderr.contains("nothing lost"),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&run(true).stdout).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        json["losses"]["streams_idmp_dropped"].as_u64() > Some(0),
        "{json}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Duplicate keys stop convert unless --on-conflict first|last, which keeps that copy.
#[test]
fn duplicate_keys_follow_on_conflict() {
    let dir = temp_dir("convert-dup");
    let input = dir.join("dup.rdb");
    let data = write_rdb(&[
        (0, b"k", plain_string(b"first")),
        (0, b"other", plain_string(b"x")),
        (0, b"k", plain_string(b"last")),
    ]);
    std::fs::write(&input, data).unwrap_or_else(|e| panic!("{e}"));
    let run = |extra: &[&str]| {
        let out = dir.join("out.rdb");
        let _ = std::fs::remove_file(&out);
        let o = rdbkit()
            .arg("convert")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--target", "redis-7.0"])
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let got = std::fs::read(&out).ok().map(|d| {
            let mut kv = Vec::new();
            for item in Parser::new(&d).unwrap_or_else(|e| panic!("{e}")) {
                if let Ok(Item::Key(e)) = item {
                    if let rdb_parser::Value::String(s) = &e.value {
                        kv.push((e.key.to_vec(), s.to_bytes().unwrap_or_default().to_vec()));
                    }
                }
            }
            kv
        });
        (o, got)
    };
    let (o, got) = run(&[]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--on-conflict") && stderr.contains("\"k\""),
        "{stderr}"
    );
    assert!(got.is_none());
    for (policy, kept) in [("first", &b"first"[..]), ("last", b"last")] {
        let (o, got) = run(&["--on-conflict", policy]);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let got = got.unwrap_or_default();
        let ks: Vec<&[u8]> = got.iter().map(|(k, _)| k.as_slice()).collect();
        assert_eq!(ks.iter().filter(|k| **k == b"k").count(), 1, "{policy}");
        assert!(
            got.iter().any(|(k, v)| k == b"k" && v == kept),
            "{policy}: {got:?}"
        );
        assert_eq!(got.len(), 2, "{policy}");
    }
    // The db-merge conflict error's advice is a flag convert accepts.
    let (o, _) = run(&["--dbs", "merge-into-0", "--on-conflict", "last"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// To standard output, which cannot be taken back, the damage is found before anything is
/// written (into a file, the check runs inside the conversion and the file never appears).
#[test]
fn a_corrupt_value_stops_convert_to_stdout_before_any_byte() {
    use rdb_parser::format::type_id;
    let dir = temp_dir("convert-corrupt-stdout");
    let input = dir.join("in.rdb");
    // A zipmap declaring 2 pairs and holding 1, after a good key.
    let data = write_rdb(&[
        (0, b"ok", plain_string(b"v")),
        (
            type_id::HASH_ZIPMAP,
            b"h",
            plain_string(&[2, 1, b'f', 1, 0, b'v', 0xFF]),
        ),
    ]);
    std::fs::write(&input, data).unwrap_or_else(|e| panic!("{e}"));
    let run = rdbkit()
        .arg("convert")
        .arg(&input)
        .args(["-o", "-", "--target", "redis-7.0"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("\"h\"") && stderr.contains("byte"),
        "{stderr}"
    );
    assert!(run.stdout.is_empty(), "{} bytes written", run.stdout.len());
    let _ = std::fs::remove_dir_all(&dir);
}
