//! `rdbkit keys` read back by DuckDB (the `duckdb` package of PyPI, in the venv that
//! scripts/install-servers.sh makes): every key of every committed fixture, from every
//! server version, against the ground truth a client read back from that server
//! (fixtures/servers/<server>/<name>.jsonl); the CSV and rdbtools formats; the example
//! queries of docs/keys.md. The slots are computed here with a CRC16 of our own.
//!
//! Without DuckDB these tests fail under CI and skip with a message elsewhere.
// A test that indexes past the end fails, as it should.
#![allow(clippy::indexing_slicing)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use common::{fixtures_dir, rdb_files, temp_dir};
use serde_json::Value;

fn rdbkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("rdbkit: {e}"))
}

fn ok(args: &[&str]) -> Output {
    let out = rdbkit(args);
    assert!(
        out.status.success(),
        "rdbkit {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The venv's Python when it has `duckdb`; `None` (skip) outside CI, a failure in CI.
fn duckdb() -> Option<PathBuf> {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools/venv/bin/python");
    let found = Command::new(&py)
        .args(["-c", "import duckdb"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some(py);
    }
    let msg = format!(
        "DuckDB not found: `{} -c 'import duckdb'` failed (scripts/install-servers.sh \
         installs it)",
        py.display()
    );
    assert!(!in_ci(), "{msg}");
    eprintln!("{msg}; skipping");
    None
}

/// Runs one SQL statement in DuckDB; rows of JSON cells, BLOBs as {"hex": ...}.
fn sql(py: &Path, query: &str) -> Vec<Vec<Value>> {
    const RUN: &str = r#"
import duckdb, json, sys
rows = duckdb.sql(sys.stdin.read()).fetchall()
def cell(v):
    if isinstance(v, (bytes, bytearray)):
        return {"hex": bytes(v).hex()}
    return v
json.dump([[cell(v) for v in r] for r in rows], sys.stdout, default=str)
"#;
    let mut child = Command::new(py)
        .args(["-c", RUN])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", py.display()));
    child
        .stdin
        .take()
        .map(|mut s| s.write_all(query.as_bytes()))
        .transpose()
        .unwrap_or_else(|e| panic!("writing the query: {e}"));
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("duckdb: {e}"));
    assert!(
        out.status.success(),
        "DuckDB failed on\n{query}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("duckdb output: {e}"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn cell_hex(v: &Value) -> String {
    v["hex"].as_str().unwrap_or_default().to_string()
}

fn int(v: &Value) -> Option<i64> {
    v.as_i64()
}

/// A ground-truth byte string: a JSON string, or {"base64": ...}.
fn bytes_of(v: &Value) -> Vec<u8> {
    match v {
        Value::String(s) => s.as_bytes().to_vec(),
        Value::Object(o) => o
            .get("base64")
            .and_then(Value::as_str)
            .map(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .unwrap_or_else(|e| panic!("base64 {b}: {e}"))
            })
            .unwrap_or_else(|| panic!("not a byte string: {v}")),
        Value::Number(n) => n.to_string().into_bytes(),
        other => panic!("not a byte string: {other}"),
    }
}

/// CRC16-XMODEM bit by bit, as the cluster specification gives it.
fn crc16(data: &[u8]) -> u16 {
    let mut crc = 0u16;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The hash tag as the cluster specification defines it, when the key has one.
fn tag(key: &[u8]) -> Option<&[u8]> {
    let open = key.iter().position(|&b| b == b'{')?;
    let rest = &key[open + 1..];
    let close = rest.iter().position(|&b| b == b'}')?;
    (close > 0).then(|| &rest[..close])
}

fn slot(key: &[u8]) -> i64 {
    i64::from(crc16(tag(key).unwrap_or(key)) % 16384)
}

/// One key of the ground truth.
#[derive(Debug, Clone)]
struct Truth {
    ty: String,
    members: i64,
    /// `None`: not checked (streams: the truth lists entries, not their sizes).
    largest: Option<Option<i64>>,
    expire: Option<i64>,
    slot: i64,
    tag: Option<String>,
}

/// (file as given to rdbkit, db, key hex) -> truth.
type TruthMap = BTreeMap<(String, i64, String), Truth>;

fn truth_of(rdb: &Path, into: &mut TruthMap) {
    let text = std::fs::read_to_string(rdb.with_extension("jsonl"))
        .unwrap_or_else(|e| panic!("{}: ground truth: {e}", rdb.display()));
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}"));
        let key = bytes_of(&v["key"]);
        let ty = v["type"].as_str().unwrap_or_default().to_string();
        let value = &v["value"];
        let items = || value.as_array().cloned().unwrap_or_default();
        let longest = |it: Vec<Vec<u8>>| it.iter().map(|b| b.len() as i64).max().unwrap_or(0);
        let (members, largest) = match ty.as_str() {
            "string" => (1, Some(Some(bytes_of(value).len() as i64))),
            "list" | "set" => {
                let all: Vec<Vec<u8>> = items().iter().map(bytes_of).collect();
                (all.len() as i64, Some(Some(longest(all))))
            }
            "zset" => {
                let all: Vec<Vec<u8>> = items().iter().map(|p| bytes_of(&p[0])).collect();
                (all.len() as i64, Some(Some(longest(all))))
            }
            "hash" => {
                let pairs = items();
                let all: Vec<Vec<u8>> = pairs
                    .iter()
                    .flat_map(|p| [bytes_of(&p[0]), bytes_of(&p[1])])
                    .collect();
                (pairs.len() as i64, Some(Some(longest(all))))
            }
            "stream" => (value["length"].as_i64().unwrap_or(-1), None),
            "module" => (1, Some(None)),
            other => panic!("{}: unknown type {other}", rdb.display()),
        };
        let t = Truth {
            ty,
            members,
            largest,
            expire: v["expire_ms"].as_i64(),
            slot: slot(&key),
            tag: tag(&key).map(hex),
        };
        let id = (
            rdb.display().to_string(),
            v["db"].as_i64().unwrap_or(-1),
            hex(&key),
        );
        assert!(into.insert(id.clone(), t).is_none(), "{id:?} twice");
    }
}

/// Every fixture file of every server, and their ground truth.
fn all_fixtures() -> (Vec<String>, TruthMap) {
    let root = fixtures_dir();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut files = Vec::new();
    let mut truth = TruthMap::new();
    for dir in dirs {
        for rdb in rdb_files(&dir) {
            truth_of(&rdb, &mut truth);
            files.push(rdb.display().to_string());
        }
    }
    assert!(files.len() >= 40, "{} fixture files", files.len());
    (files, truth)
}

fn per_type(truth: &TruthMap) -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    for t in truth.values() {
        *m.entry(t.ty.clone()).or_insert(0) += 1;
    }
    m
}

fn rows_per_type(py: &Path, from: &str) -> BTreeMap<String, i64> {
    sql(
        py,
        &format!("SELECT type, count(*) FROM {from} GROUP BY type"),
    )
    .into_iter()
    .map(|r| {
        (
            r[0].as_str().unwrap_or_default().to_string(),
            int(&r[1]).unwrap_or(-1),
        )
    })
    .collect()
}

/// The stats pass over the same file: its totals of memory and entry bytes.
fn stats_totals(file: &str) -> (i64, i64) {
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let s = rdb_cli::stats::collect(
        &data,
        &rdb_parser::ParserBuilder::new(),
        &rdb_cli::stats::Options::default(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{file}: {e}"));
    (s.memory() as i64, s.bytes() as i64)
}

#[test]
fn parquet_read_by_duckdb_equals_the_ground_truth_of_every_fixture() {
    let Some(py) = duckdb() else { return };
    let (files, truth) = all_fixtures();
    let dir = temp_dir("keys-parquet");
    let out = dir.join("all.parquet");
    let mut args: Vec<&str> = vec!["keys", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["-o", out.to_str().unwrap_or_default()]);
    ok(&args);
    let from = format!("'{}'", out.display());

    let count = sql(&py, &format!("SELECT count(*) FROM {from}"));
    assert_eq!(int(&count[0][0]), Some(truth.len() as i64), "row count");
    assert_eq!(rows_per_type(&py, &from), per_type(&truth), "rows per type");

    let rows = sql(
        &py,
        &format!(
            "SELECT file, db, key, type, member_count, largest_element, expire_at, slot, \
             hash_tag FROM {from}"
        ),
    );
    let mut seen = BTreeSet::new();
    for r in &rows {
        let id = (
            r[0].as_str().unwrap_or_default().to_string(),
            int(&r[1]).unwrap_or(-1),
            cell_hex(&r[2]),
        );
        let want = truth
            .get(&id)
            .unwrap_or_else(|| panic!("{id:?}: not in the ground truth"));
        assert!(seen.insert(id.clone()), "{id:?}: two records");
        assert_eq!(r[3].as_str(), Some(want.ty.as_str()), "{id:?} type");
        assert_eq!(int(&r[4]), Some(want.members), "{id:?} member_count");
        if let Some(largest) = want.largest {
            assert_eq!(int(&r[5]), largest, "{id:?} largest_element");
        }
        assert_eq!(int(&r[6]), want.expire, "{id:?} expire_at");
        assert_eq!(int(&r[7]), Some(want.slot), "{id:?} slot");
        let tag = (!r[8].is_null()).then(|| cell_hex(&r[8]));
        assert_eq!(tag, want.tag, "{id:?} hash_tag");
    }
    assert_eq!(seen.len(), truth.len());

    // Memory and entry sizes are the stats pass's, key for key summed per file.
    let sums = sql(
        &py,
        &format!("SELECT file, sum(memory), sum(rdb_size) FROM {from} GROUP BY file"),
    );
    let sums: BTreeMap<String, (i64, i64)> = sums
        .iter()
        .map(|r| {
            let f = r[0].as_str().unwrap_or_default().to_string();
            let n = |v: &Value| {
                v.as_i64()
                    .or_else(|| v.as_str()?.parse().ok())
                    .unwrap_or(-1)
            };
            (f, (n(&r[1]), n(&r[2])))
        })
        .collect();
    for (file, got) in &sums {
        assert_eq!(*got, stats_totals(file), "{file}: memory and rdb_size sums");
    }
    eprintln!(
        "{} keys of {} files equal their ground truth",
        rows.len(),
        files.len()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The CSV columns with their types, as docs/keys.md gives them to `read_csv`.
const CSV_COLUMNS: &str = "{'file': 'VARCHAR', 'cluster': 'VARCHAR', 'instance': 'VARCHAR', \
    'db': 'BIGINT', 'key': 'VARCHAR', 'type': 'VARCHAR', 'encoding': 'VARCHAR', \
    'rdb_size': 'BIGINT', 'memory': 'BIGINT', 'member_count': 'BIGINT', \
    'largest_element': 'BIGINT', 'expire_at': 'BIGINT', 'idle_s': 'BIGINT', 'freq': 'INTEGER', \
    'slot': 'INTEGER', 'hash_tag': 'VARCHAR'}";

#[test]
fn csv_loads_in_duckdb_with_keys_escaped_binary_safe() {
    let Some(py) = duckdb() else { return };
    let (files, truth) = all_fixtures();
    let dir = temp_dir("keys-csv");
    let out = dir.join("all.csv");
    let mut args: Vec<&str> = vec!["keys", "--quiet"];
    args.extend(files.iter().map(String::as_str));
    args.extend(["-o", out.to_str().unwrap_or_default()]);
    ok(&args);
    let from = format!(
        "read_csv('{}', header = true, columns = {CSV_COLUMNS})",
        out.display()
    );
    assert_eq!(rows_per_type(&py, &from), per_type(&truth), "rows per type");
    let rows = sql(
        &py,
        &format!("SELECT file, db, key, type, member_count, slot, expire_at FROM {from}"),
    );
    assert_eq!(rows.len(), truth.len(), "row count");
    let mut seen = BTreeSet::new();
    for r in &rows {
        let text = r[2]
            .as_str()
            .unwrap_or_else(|| panic!("{r:?}: key is null"));
        let key = rdb_cli::keys::text::unescape(text)
            .unwrap_or_else(|| panic!("{text:?}: not a valid escape"));
        let id = (
            r[0].as_str().unwrap_or_default().to_string(),
            int(&r[1]).unwrap_or(-1),
            hex(&key),
        );
        let want = truth
            .get(&id)
            .unwrap_or_else(|| panic!("{id:?} ({text:?}): not in the ground truth"));
        assert!(seen.insert(id.clone()), "{id:?}: two records");
        assert_eq!(r[3].as_str(), Some(want.ty.as_str()), "{id:?} type");
        assert_eq!(int(&r[4]), Some(want.members), "{id:?} member_count");
        assert_eq!(int(&r[5]), Some(want.slot), "{id:?} slot");
        assert_eq!(int(&r[6]), want.expire, "{id:?} expire_at");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rdbtools_format_has_the_memory_report_header_and_loads() {
    let rdb = fixtures_dir().join("redis-7.4/types.rdb");
    let out = ok(&[
        "keys",
        rdb.to_str().unwrap_or_default(),
        "--format",
        "rdbtools",
        "-o",
        "-",
    ]);
    let text = String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("database,type,key,size_in_bytes,encoding,num_elements,len_largest_element,expiry")
    );
    let mut truth = TruthMap::new();
    truth_of(&rdb, &mut truth);
    assert_eq!(lines.clone().count(), truth.len());
    // Sorted sets are `sortedset` there; expiries ISO 8601 in UTC.
    assert!(text.contains("\n0,sortedset,zset:small,"));
    assert!(text
        .lines()
        .any(|l| l.starts_with("0,string,ttl:str,") && l.ends_with(",2100-01-01T00:00:00")));
    let Some(py) = duckdb() else { return };
    let dir = temp_dir("keys-rdbtools");
    let path = dir.join("memory.csv");
    std::fs::write(&path, &text).unwrap_or_else(|e| panic!("{e}"));
    let by_type = sql(
        &py,
        &format!(
            "SELECT type, count(*), sum(size_in_bytes) > 0 FROM read_csv('{}', header = true, \
             types = {{'key': 'VARCHAR', 'expiry': 'VARCHAR'}}) GROUP BY type",
            path.display()
        ),
    );
    let got: BTreeMap<String, i64> = by_type
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                int(&r[1]).unwrap_or(-1),
            )
        })
        .collect();
    let want: BTreeMap<String, i64> = per_type(&truth)
        .into_iter()
        .map(|(t, n)| (if t == "zset" { "sortedset".into() } else { t }, n))
        .collect();
    assert_eq!(got, want);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The ```sql block that follows `<!-- query: NAME -->` in docs/keys.md, reading `path`.
fn doc_query(name: &str, path: &Path) -> String {
    let doc = include_str!("../../docs/keys.md");
    let marker = format!("<!-- query: {name} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("docs/keys.md has no {marker}"));
    let rest = &doc[at..];
    let start = rest
        .find("```sql\n")
        .unwrap_or_else(|| panic!("{name}: no sql block"))
        + 7;
    let end = rest[start..]
        .find("```")
        .unwrap_or_else(|| panic!("{name}: unclosed"))
        + start;
    let query = &rest[start..end];
    assert!(
        query.contains("'keys.parquet'"),
        "{name}: reads 'keys.parquet'"
    );
    query.replace("'keys.parquet'", &format!("'{}'", path.display()))
}

/// The fixture the doc queries run on: tags, TTLs, binary keys.
fn doc_fixture(tag: &str) -> (PathBuf, PathBuf, TruthMap) {
    let rdb = fixtures_dir().join("redis-7.4/types.rdb");
    let dir = temp_dir(tag);
    let out = dir.join("keys.parquet");
    ok(&[
        "keys",
        "--quiet",
        rdb.to_str().unwrap_or_default(),
        "-o",
        out.to_str().unwrap_or_default(),
    ]);
    let mut truth = TruthMap::new();
    truth_of(&rdb, &mut truth);
    (dir, out, truth)
}

#[test]
fn doc_query_keys_outside_a_prefix_whitelist() {
    let Some(py) = duckdb() else { return };
    let (dir, parquet, truth) = doc_fixture("keys-doc-whitelist");
    // The whitelist the query in docs/keys.md names.
    const ALLOWED: [&[u8]; 4] = [b"str:", b"hash:", b"list:", b"set:"];
    let rows = sql(&py, &doc_query("outside-whitelist", &parquet));
    let got: BTreeSet<String> = rows.iter().map(|r| cell_hex(&r[1])).collect();
    let want: BTreeSet<String> = truth
        .keys()
        .filter(|(_, _, k)| {
            let key = (0..k.len())
                .step_by(2)
                .filter_map(|i| u8::from_str_radix(k.get(i..i + 2)?, 16).ok())
                .collect::<Vec<u8>>();
            !ALLOWED.iter().any(|p| key.starts_with(p))
        })
        .map(|(_, _, k)| k.clone())
        .collect();
    assert_eq!(rows.len(), want.len(), "one row per key");
    assert_eq!(got, want);
    assert!(want.len() >= 10, "the fixture has keys outside the list");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn doc_query_keys_without_ttl_per_prefix() {
    let Some(py) = duckdb() else { return };
    let (dir, parquet, truth) = doc_fixture("keys-doc-ttl");
    let rows = sql(&py, &doc_query("no-ttl-per-prefix", &parquet));
    // prefix -> (keys, keys without TTL)
    let got: BTreeMap<String, (i64, i64)> = rows
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap_or_default().to_string(),
                (int(&r[1]).unwrap_or(-1), int(&r[2]).unwrap_or(-1)),
            )
        })
        .collect();
    let mut want: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for ((_, _, k), t) in &truth {
        let key: Vec<u8> = (0..k.len())
            .step_by(2)
            .filter_map(|i| u8::from_str_radix(k.get(i..i + 2)?, 16).ok())
            .collect();
        let prefix = match key.iter().position(|&b| b == b':') {
            Some(at) => {
                let p = &key[..at];
                assert!(
                    p.iter().all(|b| b.is_ascii_graphic()),
                    "this check expects printable prefixes: {p:?}"
                );
                String::from_utf8_lossy(p).into_owned()
            }
            None => "(no prefix)".into(),
        };
        let e = want.entry(prefix).or_default();
        e.0 += 1;
        e.1 += i64::from(t.expire.is_none());
    }
    assert_eq!(got, want);
    // Sorted by keys without TTL, most first.
    let order: Vec<i64> = rows.iter().map(|r| int(&r[2]).unwrap_or(-1)).collect();
    assert!(order.windows(2).all(|w| w[0] >= w[1]), "{order:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn doc_query_bytes_per_slot_range() {
    let Some(py) = duckdb() else { return };
    let (dir, parquet, truth) = doc_fixture("keys-doc-slots");
    let rows = sql(&py, &doc_query("bytes-per-slot-range", &parquet));
    // The three ranges `redis-cli --cluster create` gives three masters.
    const RANGES: [(i64, i64); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];
    assert_eq!(rows.len(), 3);
    let (mut memory, mut bytes) = (0, 0);
    for (r, (first, last)) in rows.iter().zip(RANGES) {
        assert_eq!((int(&r[1]), int(&r[2])), (Some(first), Some(last)));
        let want = truth
            .values()
            .filter(|t| (first..=last).contains(&t.slot))
            .count();
        assert_eq!(int(&r[3]), Some(want as i64), "keys in {first}-{last}");
        bytes += int(&r[4]).unwrap_or(-1);
        memory += int(&r[5]).unwrap_or(-1);
    }
    let file = fixtures_dir().join("redis-7.4/types.rdb");
    assert_eq!((memory, bytes), stats_totals(&file.display().to_string()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn labels_filters_and_db_map_apply_to_every_record() {
    let rdb = fixtures_dir().join("redis-7.4/types.rdb");
    let out = ok(&[
        "keys",
        rdb.to_str().unwrap_or_default(),
        "--format",
        "jsonl",
        "-o",
        "-",
        "--cluster",
        "prod-eu",
        "--instance",
        "node-1",
        "--include",
        "str:*",
        "--db-map",
        "0:5",
    ]);
    let lines: Vec<Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let mut truth = TruthMap::new();
    truth_of(&rdb, &mut truth);
    let want = truth
        .keys()
        .filter(|(_, _, k)| k.starts_with(&hex(b"str:")))
        .count();
    assert_eq!(lines.len(), want);
    for l in &lines {
        assert_eq!(l["cluster"], "prod-eu");
        assert_eq!(l["instance"], "node-1");
        assert_eq!(l["db"], 5);
        assert_eq!(l["file"], rdb.display().to_string());
        assert!(
            l["key"].as_str().is_some_and(|k| k.starts_with("str:")),
            "{l}"
        );
    }
}

#[test]
fn a_manifest_directory_reads_its_files_in_order() {
    let dir = temp_dir("keys-manifest");
    let shards = dir.join("fetched");
    std::fs::create_dir_all(&shards).unwrap_or_else(|e| panic!("{e}"));
    let a = fixtures_dir().join("redis-7.4/types.rdb");
    let b = fixtures_dir().join("valkey-9.0/types.rdb");
    std::fs::copy(&a, shards.join("shard-0.rdb")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(&b, shards.join("shard-1.rdb")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        shards.join("manifest.json"),
        r#"{"shards": [{"file": "shard-0.rdb", "slots": [[0, 8191]]}, {"file": "shard-1.rdb", "slots": [[8192, 16383]]}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = dir.join("keys.jsonl");
    let summary = ok(&[
        "keys",
        shards.to_str().unwrap_or_default(),
        "-o",
        out.to_str().unwrap_or_default(),
        "--json",
    ]);
    let summary: Value = serde_json::from_slice(&summary.stdout).unwrap_or_else(|e| panic!("{e}"));
    let mut truth = TruthMap::new();
    truth_of(&a, &mut truth);
    let first = truth.len();
    truth_of(&b, &mut truth);
    assert_eq!(summary["files"], 2);
    assert_eq!(summary["keys"], truth.len() as u64);
    let text = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}"));
    let files: Vec<String> = text
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}"));
            v["file"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    let shard0 = shards.join("shard-0.rdb").display().to_string();
    let shard1 = shards.join("shard-1.rdb").display().to_string();
    assert!(files[..first].iter().all(|f| *f == shard0));
    assert!(files[first..].iter().all(|f| *f == shard1));
    // A manifest naming a file outside its directory is refused.
    std::fs::write(
        shards.join("manifest.json"),
        r#"{"shards": [{"file": "../x.rdb"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let refused = rdbkit(&[
        "keys",
        shards.to_str().unwrap_or_default(),
        "-o",
        out.to_str().unwrap_or_default(),
    ]);
    assert_eq!(refused.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parquet_is_refused_on_standard_output_and_a_format_is_required() {
    let rdb = fixtures_dir().join("redis-7.4/types.rdb");
    let rdb = rdb.to_str().unwrap_or_default();
    let out = rdbkit(&["keys", rdb, "-o", "-", "--format", "parquet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Parquet is not written to standard output")
    );
    assert!(out.stdout.is_empty());
    let out = rdbkit(&["keys", rdb, "-o", "-"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--format"));
}

#[test]
fn a_malformed_input_is_named_and_leaves_no_output() {
    let dir = temp_dir("keys-malformed");
    let good = fixtures_dir().join("redis-7.4/types.rdb");
    let data = std::fs::read(&good).unwrap_or_else(|e| panic!("{e}"));
    let cut = dir.join("cut.rdb");
    std::fs::write(&cut, &data[..data.len() / 2]).unwrap_or_else(|e| panic!("{e}"));
    let out_path = dir.join("keys.parquet");
    let out = rdbkit(&[
        "keys",
        good.to_str().unwrap_or_default(),
        cut.to_str().unwrap_or_default(),
        "-o",
        out_path.to_str().unwrap_or_default(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.rdb"), "{err}");
    assert!(err.contains("at byte"), "{err}");
    assert!(!out_path.exists(), "a failed run leaves no file");
    let left: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["cut.rdb"], "no temporary file is left either");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Many row groups (7 rows each) read back as one table, rows in file order.
#[test]
fn row_groups_are_written_as_the_file_is_read() {
    let Some(py) = duckdb() else { return };
    let rdb = fixtures_dir().join("redis-7.4/types.rdb");
    let data = std::fs::read(&rdb).unwrap_or_else(|e| panic!("{e}"));
    let mut options = rdb_cli::keys::Options::new(rdb_cli::keys::Format::Parquet);
    options.row_group_rows = 7;
    let sources = [rdb_cli::keys::Source {
        name: "types.rdb",
        data: &data,
    }];
    let (summary, bytes) = rdb_cli::keys::write(
        &sources,
        &rdb_parser::ParserBuilder::new(),
        &options,
        Vec::new(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut truth = TruthMap::new();
    truth_of(&rdb, &mut truth);
    let n = truth.len() as u64;
    assert_eq!(summary.keys, n);
    assert_eq!(summary.row_groups, n.div_ceil(7));
    let dir = temp_dir("keys-groups");
    let path = dir.join("k.parquet");
    std::fs::write(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let groups = sql(
        &py,
        &format!(
            "SELECT count(DISTINCT row_group_id), max(row_group_num_rows) FROM parquet_metadata('{}')",
            path.display()
        ),
    );
    assert_eq!(int(&groups[0][0]), Some(n.div_ceil(7) as i64));
    assert_eq!(int(&groups[0][1]), Some(7));
    // The same keys in the same order as the JSON Lines output.
    let keys = sql(&py, &format!("SELECT key FROM '{}'", path.display()));
    options.format = rdb_cli::keys::Format::Jsonl;
    let (_, lines) = rdb_cli::keys::write(
        &sources,
        &rdb_parser::ParserBuilder::new(),
        &options,
        Vec::new(),
        |_| {},
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let jsonl_keys: Vec<String> = lines
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            let v: Value = serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}"));
            hex(&bytes_of(&v["key"]))
        })
        .collect();
    let parquet_keys: Vec<String> = keys.iter().map(|r| cell_hex(&r[0])).collect();
    assert_eq!(parquet_keys, jsonl_keys);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Standard input (here gzip-compressed) reads as the file does; its records name `-`.
#[test]
fn standard_input_and_gzip_read_as_the_file() {
    use std::io::Write as _;
    let rdb = fixtures_dir().join("redis-7.4/types.rdb");
    let data = std::fs::read(&rdb).unwrap_or_else(|e| panic!("{e}"));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&data).unwrap_or_else(|e| panic!("{e}"));
    let gz = gz.finish().unwrap_or_else(|e| panic!("{e}"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(["keys", "-", "--format", "csv", "-o", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&gz).unwrap_or_else(|e| panic!("{e}"));
    }
    let piped = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    let path = rdb.to_str().unwrap_or_default();
    let direct = ok(&["keys", path, "--format", "csv", "-o", "-"]);
    let piped = String::from_utf8_lossy(&piped.stdout).replace("\n-,", "\nFILE,");
    let direct = String::from_utf8_lossy(&direct.stdout).replace(&format!("\n{path},"), "\nFILE,");
    assert_eq!(piped, direct);
    assert!(piped.lines().count() > 60);
}

/// The output policy of every writing command: an input is never the output.
#[test]
fn the_input_is_never_the_output() {
    let dir = temp_dir("keys-same");
    let rdb = dir.join("dump.csv");
    std::fs::copy(fixtures_dir().join("redis-7.4/types.rdb"), &rdb)
        .unwrap_or_else(|e| panic!("{e}"));
    let before = std::fs::read(&rdb).unwrap_or_else(|e| panic!("{e}"));
    let path = rdb.to_str().unwrap_or_default();
    let out = rdbkit(&["keys", path, "-o", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is an input"));
    assert_eq!(std::fs::read(&rdb).unwrap_or_default(), before);
    let _ = std::fs::remove_dir_all(&dir);
}
