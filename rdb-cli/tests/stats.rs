//! `rdbkit stats`.
//!
//! - `json_counts_match_ground_truth`: on every committed fixture, the JSON report's keys
//!   per db and type, expiries and elements equal the counts of its ground-truth JSONL.
//! - `memory_estimate_matches_real_servers`: every key of `big.rdb` and `types.rdb`, loaded
//!   into the server that wrote it, is asked `MEMORY USAGE key SAMPLES 0`; the estimate is
//!   within the bound docs/memory-model.md states for its type and encoding.
//! - `html_report_renders_in_chromium`: the HTML report, opened by real headless
//!   Chromium, logs no console error, dumps a DOM with every chart, and screenshots to a
//!   non-blank PNG.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod servers;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rdb_cli::parts::Part;
use rdb_cli::stats::memory::{Allocator, Model};
use rdb_cli::stats::{Options, Report, Source};
use rdb_parser::{Item, Parser, ParserBuilder};
use serde_json::Value;
use servers::{Reply, Resp, Server, TempDir};

/// The report of one file as the library is asked for it: its path (for the HTML title)
/// and the options, JSON by default (`a.json`, `a.html`... reach the options).
struct Args {
    file: PathBuf,
    options: Options,
}

impl std::ops::Deref for Args {
    type Target = Options;
    fn deref(&self) -> &Options {
        &self.options
    }
}

impl std::ops::DerefMut for Args {
    fn deref_mut(&mut self) -> &mut Options {
        &mut self.options
    }
}

fn args(file: &Path) -> Args {
    Args {
        file: file.to_owned(),
        options: Options {
            json: true,
            ..Options::default()
        },
    }
}

/// `rdb_cli::stats::run` on one snapshot.
fn run_stats(data: &[u8], a: &Args, out: &mut Vec<u8>) -> Result<Report, rdb_cli::Failure> {
    let part = Part::file(&a.file);
    let sources = [Source { part: &part, data }];
    rdb_cli::stats::run(&sources, &ParserBuilder::new(), a, out, |_| {})
}

fn stats_json(file: &Path) -> Value {
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let mut out = Vec::new();
    run_stats(&data, &args(file), &mut out).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", file.display()))
}

/// Elements as the ground truth shows them: array lengths, a stream's length, 1 else.
fn truth_elements(line: &Value) -> u64 {
    match (&line["type"], &line["value"]) {
        (t, Value::Array(items)) if t != "string" => items.len() as u64,
        (t, v) if t == "stream" => v["length"].as_u64().unwrap_or(0),
        _ => 1,
    }
}

#[test]
fn json_counts_match_ground_truth() {
    let mut files = 0;
    for dir in std::fs::read_dir(common::fixtures_dir())
        .expect("fixtures dir")
        .flatten()
    {
        for rdb in common::rdb_files(&dir.path()) {
            let truth = servers::read_jsonl(&rdb.with_extension("jsonl"))
                .unwrap_or_else(|e| panic!("{}: {e}", rdb.display()));
            let got = stats_json(&rdb);
            let name = rdb.display();
            // db -> (keys, expires); type -> (keys, elements)
            let mut dbs: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            let mut types: BTreeMap<String, (u64, u64)> = BTreeMap::new();
            for line in &truth {
                let db = dbs.entry(line["db"].to_string()).or_default();
                db.0 += 1;
                db.1 += u64::from(!line["expire_ms"].is_null());
                let t = types
                    .entry(line["type"].as_str().unwrap_or("?").to_owned())
                    .or_default();
                t.0 += 1;
                t.1 += truth_elements(line);
            }
            assert_eq!(
                got["keys"].as_u64(),
                Some(truth.len() as u64),
                "{name}: keys"
            );
            let got_dbs = got["dbs"].as_object().expect("dbs");
            assert_eq!(got_dbs.len(), dbs.len(), "{name}: databases");
            for (db, (keys, expires)) in &dbs {
                let g = &got_dbs[db];
                assert_eq!(g["keys"].as_u64(), Some(*keys), "{name}: db {db} keys");
                assert_eq!(
                    g["expires"].as_u64(),
                    Some(*expires),
                    "{name}: db {db} expires"
                );
            }
            let got_types = got["types"].as_object().expect("types");
            assert_eq!(got_types.len(), types.len(), "{name}: types {got_types:?}");
            for (t, (keys, elements)) in &types {
                let g = &got_types[t];
                assert_eq!(g["keys"].as_u64(), Some(*keys), "{name}: {t} keys");
                assert_eq!(
                    g["elements"].as_u64(),
                    Some(*elements),
                    "{name}: {t} elements"
                );
                let by_encoding: u64 = g["encodings"]
                    .as_object()
                    .expect("encodings")
                    .values()
                    .map(|e| e["keys"].as_u64().unwrap_or(0))
                    .sum();
                assert_eq!(by_encoding, *keys, "{name}: {t} keys over encodings");
            }
            // Every key lands in exactly one slot, one TTL bucket and one shard.
            let slot_keys: u64 = got["slots"]["keys"]
                .as_array()
                .expect("slots")
                .iter()
                .map(|s| s[1].as_u64().unwrap_or(0))
                .sum();
            assert_eq!(slot_keys, truth.len() as u64, "{name}: slot keys");
            let ttl: u64 = got["ttl"]
                .as_object()
                .expect("ttl")
                .values()
                .filter_map(Value::as_u64)
                .sum();
            assert_eq!(ttl, truth.len() as u64, "{name}: ttl buckets");
            let none = got["ttl"]["none"].as_u64().unwrap_or(0);
            let with_expiry: u64 = dbs.values().map(|d| d.1).sum();
            assert_eq!(
                none,
                truth.len() as u64 - with_expiry,
                "{name}: keys without TTL"
            );
            if !truth.is_empty() {
                let shard_keys: u64 = got["shards"]["keys"]
                    .as_array()
                    .expect("shards")
                    .iter()
                    .filter_map(Value::as_u64)
                    .sum();
                assert_eq!(shard_keys, truth.len() as u64, "{name}: shard keys");
            }
            files += 1;
        }
    }
    assert!(files >= 40, "only {files} fixtures found");
}

/// The bound the estimate must meet for one key: `max(absolute, relative * actual)`.
/// docs/memory-model.md states these.
fn bound(type_name: &str, actual: u64) -> u64 {
    let (abs, rel) = match type_name {
        // Module values report their own sizes; no fixture is checked here.
        "module" => (u64::MAX / 4, 0.0),
        // Fitted constants (docs/memory-model.md): a looser bound.
        "stream" => (64, 0.15),
        _ => (16, 0.10),
    };
    abs.max((actual as f64 * rel) as u64)
}

/// Calls `f` with each key of `data` and the memory model of the server that wrote it:
/// the layout comes from the `redis-ver` / `valkey-ver` AUX fields, which precede the keys.
fn priced_keys(
    data: &[u8],
    rdb_version: u32,
    allocator: Allocator,
    mut f: impl FnMut(&Model, &rdb_parser::Entry<'_>),
) {
    let mut aux = BTreeMap::new();
    let mut model = None;
    for item in Parser::new(data).expect("parse") {
        match item.expect("item") {
            Item::Aux(a) => {
                aux.insert(
                    a.key.to_vec(),
                    String::from_utf8_lossy(&a.value).into_owned(),
                );
            }
            Item::Key(e) => {
                let model = model.get_or_insert_with(|| {
                    let server = rdb_writer::server::ServerVersion::from_aux(
                        false,
                        aux.get(&b"valkey-ver"[..]).map(String::as_str),
                        aux.get(&b"redis-ver"[..]).map(String::as_str),
                    );
                    Model {
                        layout: Model::for_server(server, rdb_version),
                        allocator,
                    }
                });
                f(model, &e);
            }
            _ => {}
        }
    }
}

/// `None` for a key the server does not hold (it expired before or at load).
fn memory_usage(c: &mut Resp, db: u64, key: &[u8]) -> Option<u64> {
    let db = db.to_string();
    assert!(matches!(
        c.command(&[b"SELECT", db.as_bytes()]),
        Ok(Reply::Status(_))
    ));
    match c.command(&[b"MEMORY", b"USAGE", key, b"SAMPLES", b"0"]) {
        Ok(Reply::Int(n)) => Some(n as u64),
        Ok(Reply::Bulk(None)) => None,
        other => panic!("MEMORY USAGE {:?}: {other:?}", String::from_utf8_lossy(key)),
    }
}

fn allocator(c: &mut Resp) -> Allocator {
    let mut text = |args: &[&[u8]]| {
        c.command(args)
            .ok()
            .and_then(|r| r.text())
            .unwrap_or_default()
    };
    if text(&[b"INFO", b"memory"]).contains("mem_allocator:libc") {
        return Allocator::Libc;
    }
    // INFO names jemalloc's version only; its statistics name the quantum it was built with.
    let stats = text(&[b"MEMORY", b"MALLOC-STATS"]);
    if stats.contains("Quantum size: 16") {
        Allocator::JemallocQuantum16
    } else {
        assert!(
            stats.contains("Quantum size: 8"),
            "MEMORY MALLOC-STATS names no quantum: {stats:.200}"
        );
        Allocator::Jemalloc
    }
}

/// The servers the memory model is built for: all but Redis 5.0, which reports unrounded
/// lengths the model does not follow.
fn modelled(entry: &servers::Entry) -> bool {
    entry.name != "redis-5.0"
}

/// How many servers of the manifest (or of `RDBKIT_SERVERS`) the memory tests price.
fn modelled_servers(entries: &[servers::Entry]) -> usize {
    entries.iter().filter(|e| modelled(e)).count()
}

#[test]
fn memory_estimate_matches_real_servers() {
    let Some(entries) = servers::manifest() else {
        return;
    };
    let required = [
        "redis-6.2",
        "redis-7.0",
        "redis-7.4",
        "redis-8.0",
        "valkey-8.0",
        "valkey-9.0",
    ];
    if std::env::var_os("RDBKIT_SERVERS").is_none() {
        for r in required {
            assert!(
                entries.iter().any(|e| e.name == r),
                "{r} missing from the manifest"
            );
        }
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    // (server, type/encoding) -> (keys, sum |error|, max error)
    let mut table: BTreeMap<(String, String), (u64, u64, i64)> = BTreeMap::new();
    for entry in entries.iter().filter(|e| modelled(e)) {
        for fixture in ["big", "types"] {
            let file = common::fixtures_dir()
                .join(&entry.name)
                .join(format!("{fixture}.rdb"));
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let tmp = TempDir::new("stats-memory");
            std::fs::write(tmp.path().join("dump.rdb"), &data).expect("write dump");
            let server = Server::start(entry, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
            let mut c = Resp::connect(server.port(), Duration::from_secs(5)).expect("connect");
            let alloc = allocator(&mut c);
            priced_keys(&data, entry.rdb_version as u32, alloc, |model, e| {
                let est = model.estimate(e);
                let Some(actual) = memory_usage(&mut c, e.db, &e.key) else {
                    return;
                };
                let diff = est as i64 - actual as i64;
                let (t, enc) = (e.value.type_name(), e.value.encoding_name());
                let row = table
                    .entry((entry.name.clone(), format!("{t}/{enc}")))
                    .or_default();
                row.0 += 1;
                row.1 += diff.unsigned_abs();
                if diff.abs() > row.2.abs() {
                    row.2 = diff;
                }
                if diff.unsigned_abs() > bound(t, actual) {
                    failures.push(format!(
                        "{} {fixture} {:?} ({t}/{enc}): estimate {est}, server {actual}",
                        entry.name,
                        String::from_utf8_lossy(&e.key)
                    ));
                }
                checked += 1;
            });
        }
    }
    for ((server, enc), (n, sum, max)) in &table {
        eprintln!(
            "{server:<11} {enc:<24} {n:>4} keys  mean |err| {:>6.1}  worst {max:>6}",
            *sum as f64 / *n as f64
        );
    }
    assert!(
        checked > 60 * modelled_servers(&entries),
        "only {checked} keys checked"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} keys outside the bound:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Big collections (thousands of members, multi-node streams with groups and pending
/// entries) written by each server, reloaded, and priced key by key: the fixtures hold
/// only small ones, and the per-element parts of the model (skiplist levels, hash-table
/// buckets and chains, radix-tree nodes) show at this size.
#[test]
fn memory_estimate_of_big_collections_matches_real_servers() {
    let Some(entries) = servers::manifest() else {
        return;
    };
    let mut failures = Vec::new();
    let mut checked = 0;
    for entry in entries.iter().filter(|e| modelled(e)) {
        let tmp = TempDir::new("stats-memory-big");
        let mut server = Server::start(entry, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Resp::connect(server.port(), Duration::from_secs(5)).expect("connect");
        let mut run = |args: Vec<Vec<u8>>| {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let reply = c.command(&args).expect("command");
            assert!(!matches!(reply, Reply::Error(_)), "{reply:?}");
        };
        let b = |s: &str| s.as_bytes().to_vec();
        for chunk in (0..3000).collect::<Vec<u32>>().chunks(500) {
            let mut zadd = vec![b("ZADD"), b("z:short")];
            let mut zlong = vec![b("ZADD"), b("z:long")];
            let mut sadd = vec![b("SADD"), b("set:3000")];
            let mut hset = vec![b("HSET"), b("hash:3000")];
            for i in chunk {
                zadd.extend([b(&format!("{i}.5")), b(&format!("m{i}"))]);
                zlong.extend([b(&i.to_string()), b(&format!("member-{i:034}"))]);
                sadd.push(b(&format!("element:{i}")));
                hset.extend([b(&format!("field:{i}")), b(&format!("value-{i:08}"))]);
            }
            for cmd in [zadd, zlong, sadd, hset] {
                run(cmd);
            }
        }
        for i in 0..2000u64 {
            let id = format!("{}-{}", 1_700_000_000_000 + i * 7, i % 3);
            run(vec![
                b("XADD"),
                b("stream"),
                b(&id),
                b("f"),
                b(&format!("v{i}")),
            ]);
        }
        run(vec![b("XGROUP"), b("CREATE"), b("stream"), b("g1"), b("0")]);
        run(vec![b("XGROUP"), b("CREATE"), b("stream"), b("g2"), b("$")]);
        for consumer in ["alice", "bob", "carol"] {
            run(vec![
                b("XREADGROUP"),
                b("GROUP"),
                b("g1"),
                b(consumer),
                b("COUNT"),
                b("300"),
                b("STREAMS"),
                b("stream"),
                b(">"),
            ]);
        }
        run(vec![b("SAVE")]);
        server.stop();
        let data = std::fs::read(tmp.path().join("dump.rdb")).expect("dump.rdb");
        // Reloaded: what a server that loads the snapshot holds.
        let server = Server::start(entry, tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Resp::connect(server.port(), Duration::from_secs(5)).expect("connect");
        let alloc = allocator(&mut c);
        priced_keys(&data, entry.rdb_version as u32, alloc, |model, e| {
            let est = model.estimate(e);
            let actual = memory_usage(&mut c, e.db, &e.key).expect("key loaded");
            let diff = est as i64 - actual as i64;
            let line = format!(
                "{} {:?} ({}/{}): estimate {est}, server {actual} ({:+.1}%)",
                entry.name,
                String::from_utf8_lossy(&e.key),
                e.value.type_name(),
                e.value.encoding_name(),
                100.0 * diff as f64 / actual as f64
            );
            eprintln!("{line}");
            if diff.unsigned_abs() > bound(e.value.type_name(), actual) {
                failures.push(line);
            }
            checked += 1;
        });
    }
    assert!(
        checked >= 5 * modelled_servers(&entries),
        "only {checked} keys checked"
    );
    assert!(
        failures.is_empty(),
        "{} of {checked} keys outside the bound:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The HTML report in real headless Chromium

/// `$RDBKIT_CHROMIUM`, the path scripts/install-chromium.sh recorded, or `chromium` on
/// PATH. `None` (with a message) when there is none; under `CI` that is a failure.
fn chromium() -> Option<std::path::PathBuf> {
    let recorded = std::fs::read_to_string(servers::tools_dir().join("chromium.path"))
        .ok()
        .map(|s| std::path::PathBuf::from(s.trim()));
    let candidates = std::env::var_os("RDBKIT_CHROMIUM")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(recorded)
        .chain(["/usr/bin/chromium", "/usr/bin/chromium-browser"].map(std::path::PathBuf::from));
    for c in candidates {
        if c.is_file() {
            return Some(c);
        }
    }
    let msg = "no chromium found (RDBKIT_CHROMIUM, <tools>/chromium.path, /usr/bin/chromium): \
               run scripts/install-chromium.sh";
    assert!(std::env::var_os("CI").is_none(), "{msg} (CI requires it)");
    eprintln!("{msg}; skipping");
    None
}

/// Runs headless Chromium on `page` with `extra` flags; returns (stdout, stderr).
fn run_chromium(bin: &Path, page: &Path, extra: &[String]) -> (String, String) {
    let profile = TempDir::new("stats-chromium-profile");
    let out = std::process::Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Console messages Chromium logged at error level, or uncaught exceptions.
fn console_errors(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .filter(|l| {
            l.contains("CONSOLE") && (l.contains(":ERROR:") || l.contains("Uncaught"))
                || l.contains("Uncaught ")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn html_report_renders_in_chromium() {
    let Some(bin) = chromium() else { return };
    let tmp = TempDir::new("stats-html");
    // The control: a page with a deliberate console error must be caught, or the check
    // below could never fail.
    let control = tmp.path().join("control.html");
    std::fs::write(
        &control,
        "<!doctype html><script>console.error('rdbkit-control-error'); null.x();</script>",
    )
    .expect("write control");
    let (_, err) = run_chromium(&bin, &control, &["--dump-dom".into()]);
    assert!(
        !console_errors(&err).is_empty(),
        "the console-error check did not see the control page's errors:\n{err}"
    );

    let fixture = common::fixtures_dir().join("redis-7.4/types.rdb");
    let data = std::fs::read(&fixture).expect("fixture");
    let page = tmp.path().join("report.html");
    let mut a = args(&fixture);
    a.json = false;
    a.html = Some(page.clone());
    run_stats(&data, &a, &mut Vec::new()).expect("stats");
    let html = std::fs::read_to_string(&page).expect("report written");
    for banned in ["http://", "https://", "src=", "href=", "url(", "@import"] {
        assert!(
            !html.contains(banned),
            "the page refers to the network: {banned}"
        );
    }

    let (dom, err) = run_chromium(&bin, &page, &["--dump-dom".into()]);
    let errors = console_errors(&err);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    for id in [
        "chart-types",
        "chart-encodings",
        "chart-key-sizes",
        "chart-value-sizes",
        "chart-ttl",
        "chart-shards",
        "chart-slots",
        "chart-memory-sizes",
        "chart-prefixes",
        "table-top",
    ] {
        assert!(dom.contains(&format!("id=\"{id}\"")), "the DOM lacks #{id}");
    }
    // The inline script ran to its end: it marks the canvas it painted.
    assert!(
        dom.contains("data-painted=\"yes\""),
        "the slot heat map script did not run"
    );
    assert!(
        dom.contains("list:nodes"),
        "the top-keys table lacks the biggest key"
    );

    let shot = tmp.path().join("report.png");
    let (_, err) = run_chromium(
        &bin,
        &page,
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1400,3000".into(),
            "--hide-scrollbars".into(),
        ],
    );
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("no screenshot ({e}):\n{err}"));
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().expect("PNG header");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("PNG frame");
    assert_eq!((info.width, info.height), (1400, 3000), "screenshot size");
    let channels = info.color_type.samples();
    let mut colors = std::collections::HashSet::new();
    let mut non_white = 0u64;
    for px in pixels[..info.buffer_size()].chunks(channels) {
        let rgb = (
            px[0],
            px.get(1).copied().unwrap_or(0),
            px.get(2).copied().unwrap_or(0),
        );
        if rgb != (255, 255, 255) {
            non_white += 1;
        }
        if colors.len() < 5000 {
            colors.insert(rgb);
        }
    }
    let total = u64::from(info.width) * u64::from(info.height);
    assert!(
        colors.len() > 50,
        "only {} colours: a blank page?",
        colors.len()
    );
    assert!(
        non_white * 20 > total,
        "{non_white} of {total} pixels are not white: mostly blank"
    );
    if let Some(keep) = std::env::var_os("RDBKIT_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).expect("copy screenshot");
    }
}

#[test]
fn corrupt_input_is_a_clear_error_and_leaves_no_html() {
    let fixture = common::fixtures_dir().join("redis-7.4/types.rdb");
    let data = std::fs::read(&fixture).expect("fixture");
    let tmp = TempDir::new("stats-corrupt");
    let page = tmp.path().join("report.html");
    let mut a = args(&fixture);
    a.html = Some(page.clone());
    // Cut in the middle of the keys: the error names the offset, and nothing is written.
    let cut = data.get(..data.len() / 2).expect("half");
    let mut out = Vec::new();
    let err = run_stats(cut, &a, &mut out).expect_err("a truncated file must fail");
    assert_eq!(err.exit_code(), 1, "{err}");
    assert!(err.to_string().contains("byte"), "no offset in: {err}");
    assert!(out.is_empty(), "partial report written");
    assert!(!page.exists(), "an HTML file was left behind");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .flatten()
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // Usage errors exit 2.
    let mut bad = args(&fixture);
    bad.shards = 0;
    let err = run_stats(&data, &bad, &mut out).expect_err("--shards 0");
    assert_eq!(err.exit_code(), 2);
}

#[test]
fn cli_prints_text_json_and_html() {
    let fixture = common::fixtures_dir().join("valkey-9.0/types.rdb");
    let tmp = TempDir::new("stats-cli");
    let page = tmp.path().join("r.html");
    let out = std::process::Command::new(servers::rdbkit_bin())
        .args(["stats", "--top", "3", "--html"])
        .arg(&page)
        .arg("--json")
        .arg(&fixture)
        .output()
        .expect("run rdbkit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(v["top_by_bytes"].as_array().map(Vec::len), Some(3));
    assert_eq!(v["memory_model"]["layout"], "Valkey90");
    assert!(std::fs::read_to_string(&page)
        .expect("html")
        .contains("id=\"chart-slots\""));
    let text = std::process::Command::new(servers::rdbkit_bin())
        .args(["stats"])
        .arg(&fixture)
        .output()
        .expect("run rdbkit");
    let text = String::from_utf8_lossy(&text.stdout);
    for section in [
        "databases",
        "types and encodings",
        "biggest keys by bytes",
        "key prefixes",
        "TTL",
        "hash slots",
        "split into 3 shards",
        "functions: 1 libraries",
        "hash field TTLs",
        "streams:",
    ] {
        assert!(
            text.contains(section),
            "text report lacks {section:?}:\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Review tests: expiry at ctime, ties, the documented schema, binary keys and tags, the
// 80-column report, hostile input, HTML escaping.

/// A string key: (db, key, value, expire_ms).
type TestKey<'a> = (u64, &'a [u8], &'a [u8], Option<i64>);

/// A snapshot of string keys with these AUX fields.
fn snapshot(aux: &[(&[u8], &[u8])], keys: &[TestKey<'_>]) -> Vec<u8> {
    use rdb_parser::format::type_id;
    use rdb_writer::{value, Compression, Writer};
    let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(11)).expect("writer");
    for (k, v) in aux {
        w.aux(k, v).expect("aux");
    }
    let mut dbs: Vec<u64> = keys.iter().map(|k| k.0).collect();
    dbs.sort();
    dbs.dedup();
    for db in dbs {
        w.select_db(db).expect("select");
        for (_, key, val, ttl) in keys.iter().filter(|k| k.0 == db) {
            if let Some(t) = ttl {
                w.expire_ms(*t).expect("expire");
            }
            let v = value::string(val, Compression::None);
            w.key_value(type_id::STRING, key, &v).expect("key");
        }
    }
    w.finish().expect("finish")
}

/// `rdbkit stats` on `data` with its options changed by `edit`; the JSON report.
fn json_of(data: &[u8], edit: impl FnOnce(&mut Options)) -> Value {
    let mut a = args(Path::new("x.rdb"));
    edit(&mut a);
    let mut out = Vec::new();
    run_stats(data, &a, &mut out).expect("stats");
    serde_json::from_slice(&out).expect("JSON")
}

fn text_of(data: &[u8]) -> String {
    let mut a = args(Path::new("x.rdb"));
    a.json = false;
    let mut out = Vec::new();
    run_stats(data, &a, &mut out).expect("stats");
    String::from_utf8(out).expect("the text report is UTF-8")
}

/// fixtures/generate.py sets three keys to expire 2 s after they are written, waits
/// past that, then SAVEs: they are expired when the save begins, and the default "now"
/// (ctime) must say so, in the db each lives in. ctime counts whole seconds, and these
/// keys expire within the ctime second.
#[test]
fn keys_expired_before_the_save_count_as_expired_at_ctime() {
    let mut files = 0;
    for dir in std::fs::read_dir(common::fixtures_dir())
        .expect("fixtures dir")
        .flatten()
    {
        let rdb = dir.path().join("types.rdb");
        if !rdb.is_file() {
            continue;
        }
        let got = stats_json(&rdb);
        let name = rdb.display();
        assert_eq!(got["now_source"], "ctime", "{name}");
        assert_eq!(got["dbs"]["0"]["expired"], 2, "{name}: db 0 expired");
        assert_eq!(got["dbs"]["1"]["expired"], 1, "{name}: db 1 expired");
        assert_eq!(got["ttl"]["expired"], 3, "{name}: TTL bucket");
        files += 1;
    }
    assert!(files >= 8, "only {files} types.rdb fixtures");
}

#[test]
fn expiry_is_strict_and_now_comes_from_the_right_place() {
    let at = 1_800_000_000_123;
    let keys: &[TestKey<'_>] = &[(0, b"k", b"v", Some(at))];
    // The server keeps a key whose time is now, and drops it one millisecond later.
    let same = json_of(&snapshot(&[], keys), |o| o.now_ms = Some(at));
    assert_eq!(
        (same["dbs"]["0"]["expired"].as_u64(), &same["now_source"]),
        (Some(0), &Value::from("--now"))
    );
    assert_eq!(same["ttl"]["<1m"], 1);
    let after = json_of(&snapshot(&[], keys), |o| o.now_ms = Some(at + 1));
    assert_eq!(after["dbs"]["0"]["expired"], 1);
    assert_eq!(after["ttl"]["expired"], 1);
    // ctime 1800000000 s: the save began before 1800000001000 ms, so the key had expired.
    let with_ctime = json_of(&snapshot(&[(b"ctime", b"1800000000")], keys), |_| {});
    assert_eq!(with_ctime["now_source"], "ctime");
    assert_eq!(with_ctime["now_ms"], 1_800_000_001_000i64);
    assert_eq!(with_ctime["dbs"]["0"]["expired"], 1);
    // No ctime, or one that overflows milliseconds: the clock, and no panic.
    for aux in [
        &[][..],
        &[(&b"ctime"[..], &b"9223372036854775807"[..])][..],
        &[(&b"ctime"[..], &b"not a number"[..])][..],
    ] {
        let v = json_of(&snapshot(aux, keys), |_| {});
        assert_eq!(v["now_source"], "clock", "{aux:?}");
        assert!(v["now_ms"].as_i64().unwrap() > at - 400 * 86_400_000 * 365);
    }
}

#[test]
fn top_keys_ties_do_not_depend_on_file_order() {
    // Five keys of the same size, written in two orders.
    let names: [&[u8]; 5] = [b"kc", b"ka", b"ke", b"kb", b"kd"];
    let mut keys: Vec<TestKey<'_>> = names.iter().map(|k| (0, *k, &b"v"[..], None)).collect();
    let first = json_of(&snapshot(&[], &keys), |o| o.top = 3);
    keys.reverse();
    let second = json_of(&snapshot(&[], &keys), |o| o.top = 3);
    for list in ["top_by_bytes", "top_by_elements", "top_by_memory"] {
        let shown: Vec<&str> = first[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["key"].as_str().unwrap())
            .collect();
        assert_eq!(shown, ["ka", "kb", "kc"], "{list}");
        assert_eq!(first[list], second[list], "{list} depends on file order");
    }
}

/// Every field docs/stats-json.md documents is in the report, and nothing else is.
#[test]
fn json_fields_are_exactly_the_documented_ones() {
    let doc = std::fs::read_to_string(
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/stats-json.md"),
    )
    .expect("docs/stats-json.md");
    // Rows of the field table: `| names | meaning |`.
    let mut rows: Vec<(Vec<String>, String)> = Vec::new();
    for line in doc.lines().filter(|l| l.starts_with("| `")) {
        let mut cells = line.trim_matches('|').splitn(2, '|');
        let names = cells.next().unwrap_or_default();
        let meaning = cells.next().unwrap_or_default().to_owned();
        let names = names
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect();
        rows.push((names, meaning));
    }
    // Object keys that are data, not field names: db numbers, type, encoding and module
    // type names.
    let data_keyed = |path: &str| {
        path == "dbs" || path == "types" || path.ends_with(".encodings") || path == "modules.types"
    };
    fn keys_below(v: &Value, path: &str, data_keyed: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if data_keyed(path) {
                        keys_below(x, &format!("{path}.*"), data_keyed, out);
                    } else {
                        out.push(k.clone());
                        keys_below(x, &format!("{path}.{k}"), data_keyed, out);
                    }
                }
            }
            Value::Array(items) => {
                for x in items {
                    keys_below(x, path, data_keyed, out);
                }
            }
            _ => {}
        }
    }
    // A fixture with every section filled: types, streams, functions, field TTLs.
    let got = stats_json(&common::fixtures_dir().join("redis-7.4/types.rdb"));
    let top = got.as_object().unwrap();
    // Several files (a directory with its manifest) add `parts`; one file has none.
    let tmp = TempDir::new("stats-schema");
    let dir = shards_with_a_moved_key(&tmp);
    let several: Value = serde_json::from_str(&report_of(&[dir], true, &tmp).0).unwrap();
    let several = several.as_object().unwrap();
    assert!(!top.contains_key("parts"), "one file has parts");
    let documented_top: Vec<&String> = rows.iter().flat_map(|r| &r.0).collect();
    for k in top.keys().chain(several.keys()) {
        assert!(
            documented_top.contains(&k),
            "`{k}` is not in docs/stats-json.md"
        );
    }
    for (names, meaning) in &rows {
        // Field names in the meaning column: quoted lower-case words in code spans (not
        // values such as "Redis74"), and whole code spans (the TTL bucket names).
        let spans: Vec<&str> = meaning.split('`').skip(1).step_by(2).collect();
        let quoted: Vec<String> = spans
            .iter()
            .flat_map(|span| span.split('"').skip(1).step_by(2))
            .filter(|w| {
                !w.is_empty()
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            })
            .map(str::to_owned)
            .collect();
        let ticked: Vec<String> = spans.iter().map(|s| (*s).to_owned()).collect();
        for name in names {
            let report = if name == "parts" { several } else { top };
            let field = report
                .get(name)
                .unwrap_or_else(|| panic!("documented `{name}` is not in the report"));
            let mut present = Vec::new();
            keys_below(field, name, &data_keyed, &mut present);
            for k in &present {
                assert!(
                    quoted.contains(k) || ticked.contains(k),
                    "`{name}` has `{k}`, which docs/stats-json.md does not document"
                );
            }
            for q in &quoted {
                assert!(
                    present.contains(q),
                    "docs/stats-json.md documents `{q}` under `{name}`, the report lacks it"
                );
            }
        }
    }
}

/// Redis's rule (cluster.c keyHashSlot), written out here as the oracle: the bytes
/// between the first `{` and the first `}` after it, unless that is empty.
fn redis_hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

#[test]
fn binary_keys_tags_and_slots() {
    use base64::Engine as _;
    let long = vec![b'x'; 300];
    let names: Vec<&[u8]> = vec![
        b"\xff\xfe:bin",
        b"nosep",
        b"{}whole",
        b"a{tag}b",
        b"{tag}c",
        b"x{}{y}",
        b"p{q",
        b"{a}{b}",
        b"}{z}",
        b"user:\xc3\xa9:1",
        &long,
    ];
    let keys: Vec<TestKey<'_>> = names.iter().map(|k| (0, *k, &b"value"[..], None)).collect();
    let data = snapshot(&[], &keys);
    let v = json_of(&data, |o| o.top = 20);
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    // Keys: text when UTF-8, else base64 of the exact bytes.
    let shown: Vec<&Value> = v["top_by_bytes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| &k["key"])
        .collect();
    assert!(shown.contains(&&serde_json::json!({"base64": b64(b"\xff\xfe:bin")})));
    assert!(shown.contains(&&Value::from("user:é:1")));
    let prefixes: Vec<&Value> = v["prefixes"]["biggest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["prefix"])
        .collect();
    assert!(prefixes.contains(&&serde_json::json!({"base64": b64(b"\xff\xfe:")})));
    assert!(prefixes.contains(&&Value::from("user:")));
    // Slots: each key where rdb_writer::slot puts it, and that hashes Redis's tag.
    let mut want: BTreeMap<u64, u64> = BTreeMap::new();
    for k in &names {
        assert_eq!(rdb_writer::slot::hash_tag(k), redis_hash_tag(k), "{k:?}");
        *want
            .entry(u64::from(rdb_writer::slot::key_slot(k)))
            .or_default() += 1;
    }
    let got: BTreeMap<u64, u64> = v["slots"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s[0].as_u64().unwrap(), s[1].as_u64().unwrap()))
        .collect();
    assert_eq!(got, want);
    // Tags: a{tag}b, {tag}c, {a}{b}, }{z}; not {}whole, x{}{y}, p{q.
    assert_eq!(v["slots"]["tagged_keys"], 4);
    assert_eq!(v["slots"]["distinct_tags"], 3);
    assert_eq!(v["slots"]["top_tags"][0]["tag"], "tag");
    assert_eq!(v["slots"]["top_tags"][0]["keys"], 2);
    // The text report escapes what a terminal would misread.
    let text = text_of(&data);
    assert!(text.contains(r"\xff\xfe:bin"), "{text}");
    assert!(!text.contains('\u{fffd}'));
}

#[test]
fn text_report_fits_an_80_column_terminal() {
    let long = [b'k'; 200];
    let mut files: Vec<(String, Vec<u8>)> = vec![(
        "long keys".into(),
        snapshot(
            &[
                (b"redis-ver", b"7.2.4"),
                (b"a-long-aux-name-of-some-module", &long),
            ],
            &[
                (0, &long, b"v", Some(4_102_444_800_000)),
                (
                    12,
                    b"k\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09:yy",
                    b"v",
                    None,
                ),
            ],
        ),
    )];
    for server in ["redis-7.4", "valkey-9.0", "redis-6.2"] {
        for f in ["types", "big", "modules"] {
            let p = common::fixtures_dir().join(server).join(format!("{f}.rdb"));
            if let Ok(data) = std::fs::read(&p) {
                files.push((p.display().to_string(), data));
            }
        }
    }
    for (name, data) in files {
        let text = text_of(&data);
        for line in text.lines() {
            assert!(
                line.chars().count() <= 80,
                "{name}: {} columns:\n{line}",
                line.chars().count()
            );
        }
    }
}

#[test]
fn separators_must_be_ascii() {
    let data = snapshot(&[], &[(0, b"a:b", b"v", None)]);
    let mut a = args(Path::new("x.rdb"));
    a.separators = "·".into();
    match run_stats(&data, &a, &mut Vec::new()) {
        Ok(_) => panic!("a non-ASCII separator was accepted"),
        Err(err) => assert_eq!(err.exit_code(), 2, "{err}"),
    }
}

/// Many distinct prefixes and tags: the trie and the tag map stop at their caps.
#[test]
fn prefix_trie_and_tags_are_bounded() {
    // 10 first segments, 1000 second ones each, 12 third ones each: past the node cap.
    let names: Vec<Vec<u8>> = (0..120_000u32)
        .map(|i| format!("p{}:{}:{i}:x{{t{i}}}", i % 10, (i / 10) % 1000).into_bytes())
        .collect();
    let keys: Vec<TestKey<'_>> = names
        .iter()
        .map(|k| (0, k.as_slice(), &b""[..], None))
        .collect();
    let v = json_of(&snapshot(&[], &keys), |_| {});
    let nodes = v["prefixes"]["nodes"].as_u64().unwrap();
    assert!(nodes <= 50_000, "{nodes} trie nodes");
    assert!(v["prefixes"]["overflowed_keys"].as_u64().unwrap() > 0);
    assert_eq!(v["slots"]["distinct_tags"], 65_536);
    assert_eq!(v["slots"]["tagged_keys"], 120_000);
    assert_eq!(v["slots"]["untracked_tag_keys"], 120_000 - 65_536);
    let root_keys: u64 = v["prefixes"]["biggest"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["depth"] == 1)
        .map(|p| p["keys"].as_u64().unwrap())
        .sum();
    assert_eq!(root_keys, 120_000, "first-level prefixes lose keys");
}

/// Mutated fixtures: an error or a report, never a panic, and never a partial page.
#[test]
fn mutated_fixtures_fail_cleanly() {
    let tmp = TempDir::new("stats-mutations");
    let page = tmp.path().join("r.html");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rnd = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut runs = 0;
    for server in ["redis-7.4", "redis-6.2", "valkey-9.0", "redis-5.0"] {
        for f in ["types", "modules", "lfu"] {
            let p = common::fixtures_dir().join(server).join(format!("{f}.rdb"));
            let Ok(base) = std::fs::read(&p) else {
                continue; // only redis-7.4 has modules.rdb
            };
            for _ in 0..40 {
                let mut d = base.clone();
                match rnd() % 3 {
                    0 => {
                        let at = (rnd() as usize) % d.len();
                        d[at] ^= 1 << (rnd() % 8);
                    }
                    1 => d.truncate((rnd() as usize) % d.len()),
                    _ => {
                        for _ in 0..4 {
                            let at = (rnd() as usize) % d.len();
                            d[at] = rnd() as u8;
                        }
                    }
                }
                let mut a = args(&p);
                a.html = Some(page.clone());
                let result = run_stats(&d, &a, &mut Vec::new());
                match result {
                    Ok(_) => assert!(page.exists()),
                    Err(e) => {
                        assert!([1, 2].contains(&e.exit_code()), "{e}");
                        assert!(!page.exists(), "a page was left after: {e}");
                    }
                }
                let _ = std::fs::remove_file(&page);
                runs += 1;
            }
        }
    }
    assert_eq!(runs, 360);
}

/// The text of an element's markup: tags dropped, the entities the page writes decoded.
fn text_of_markup(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
        .trim()
        .to_owned()
}

/// The markup of the section (or figure) with `id` in `dom`, up to its end tag.
fn element<'a>(dom: &'a str, id: &str) -> &'a str {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("the DOM lacks #{id}"));
    let rest = &dom[start..];
    let end = ["</section>", "</figure>"]
        .iter()
        .filter_map(|t| rest.find(t))
        .min()
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The rows of the tables in the element with `id`: each row's cells (th and td) as text.
fn table_rows(dom: &str, id: &str) -> Vec<Vec<String>> {
    element(dom, id)
        .split("<tr")
        .skip(1)
        .map(|row| {
            let row = row.split("</tr>").next().unwrap_or("");
            row.split("<t")
                .skip(1)
                .filter(|c| c.starts_with('d') || c.starts_with('h'))
                .map(|c| text_of_markup(&format!("<t{}", c.split("</t").next().unwrap_or(""))))
                .collect()
        })
        .collect()
}

/// The value of the row labelled `label` in a panel of label/value rows.
fn panel_value(rows: &[Vec<String>], label: &str) -> Option<u64> {
    rows.iter()
        .find(|r| r.first().map(String::as_str) == Some(label))
        .and_then(|r| r.get(1))
        .and_then(|v| v.parse().ok())
}

/// Renders `fixture`'s HTML report and has Chromium dump its DOM (no console errors).
fn rendered_dom(bin: &Path, fixture: &Path, tmp: &TempDir) -> String {
    let data = std::fs::read(fixture).expect("fixture");
    let page = tmp.path().join(format!(
        "{}.html",
        fixture
            .with_extension("")
            .to_string_lossy()
            .replace('/', "_")
    ));
    let mut a = args(fixture);
    a.json = false;
    a.html = Some(page.clone());
    run_stats(&data, &a, &mut Vec::new()).expect("stats");
    let (dom, err) = run_chromium(bin, &page, &["--dump-dom".into()]);
    let errors = console_errors(&err);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    dom
}

/// The page's databases, modules, functions, streams, hash-field TTLs and top lists, as
/// Chromium renders them, hold the numbers of each fixture's ground truth (its JSONL,
/// and for what the JSONL does not hold, the fixtures README: one function library
/// "rdbkit" from 7.0 on); the size charts' axis labels never read "1K-1K".
#[test]
fn html_report_sections_match_ground_truth_in_chromium() {
    let Some(bin) = chromium() else { return };
    let tmp = TempDir::new("stats-html-sections");
    let mut module_keys_seen = 0;
    for name in [
        "redis-7.4/types.rdb",
        "redis-7.4/modules.rdb",
        "valkey-9.0/types.rdb",
        "redis-6.2/types.rdb",
    ] {
        let fixture = common::fixtures_dir().join(name);
        let truth = servers::read_jsonl(&fixture.with_extension("jsonl")).expect("truth");
        let report = stats_json(&fixture);
        let now = report["now_ms"].as_i64().expect("now_ms");
        let dom = rendered_dom(&bin, &fixture, &tmp);

        // Databases: one row per db, keys, expiries and expired keys per db.
        let mut dbs: BTreeMap<u64, (u64, u64, u64)> = BTreeMap::new();
        for line in &truth {
            let d = dbs.entry(line["db"].as_u64().expect("db")).or_default();
            d.0 += 1;
            if let Some(at) = line["expire_ms"].as_i64() {
                d.1 += 1;
                d.2 += u64::from(at <= now);
            }
        }
        let rows: Vec<Vec<String>> = table_rows(&dom, "table-dbs").into_iter().skip(1).collect();
        let shown: Vec<(String, String, String, String)> = rows
            .iter()
            .map(|r| (r[0].clone(), r[1].clone(), r[2].clone(), r[3].clone()))
            .collect();
        let want: Vec<(String, String, String, String)> = dbs
            .iter()
            .map(|(db, (k, e, x))| {
                (
                    format!("db{db}"),
                    k.to_string(),
                    e.to_string(),
                    x.to_string(),
                )
            })
            .collect();
        assert_eq!(
            shown, want,
            "{name}: databases (db, keys, expires, expired)"
        );

        // Modules: keys per module type, and the aux records the report found.
        let mut modules: BTreeMap<String, u64> = BTreeMap::new();
        for line in truth.iter().filter(|l| l["type"] == "module") {
            let m = line["value"]["module"].as_str().expect("module name");
            *modules.entry(m.to_owned()).or_default() += 1;
        }
        let rows = table_rows(&dom, "table-modules");
        let aux = report["modules"]["aux"].as_array().expect("aux").len() as u64;
        if modules.is_empty() && aux == 0 {
            assert!(rows.is_empty(), "{name}: module rows {rows:?}");
            assert!(element(&dom, "table-modules").contains("No module keys"));
        } else {
            let total: u64 = modules.values().sum();
            module_keys_seen += total;
            assert_eq!(panel_value(&rows, "module keys"), Some(total), "{name}");
            assert_eq!(
                panel_value(&rows, "module aux records"),
                Some(aux),
                "{name}"
            );
            for (m, n) in &modules {
                assert!(
                    rows.iter().any(|r| r == &vec![m.clone(), n.to_string()]),
                    "{name}: module {m} with {n} keys not in {rows:?}"
                );
            }
        }

        // Functions: the fixtures' one library from 7.0 on (Valkey too), none before.
        let rows = table_rows(&dom, "table-functions");
        let has_functions = !name.starts_with("redis-6") && !name.ends_with("modules.rdb");
        if has_functions {
            assert_eq!(panel_value(&rows, "libraries"), Some(1), "{name}: {rows:?}");
            assert!(
                rows.iter()
                    .any(|r| r.first().map(String::as_str) == Some("rdbkit")),
                "{name}: the library's name is missing: {rows:?}"
            );
        } else {
            assert!(rows.is_empty(), "{name}: function rows {rows:?}");
        }

        // Streams: keys, entries, groups, consumers, pending, from the ground truth.
        let (mut keys, mut entries, mut groups, mut consumers, mut pending) = (0, 0, 0, 0, 0);
        for line in truth.iter().filter(|l| l["type"] == "stream") {
            keys += 1;
            entries += line["value"]["length"].as_u64().expect("length");
            for g in line["value"]["groups"].as_array().expect("groups") {
                groups += 1;
                consumers += g["consumers"].as_array().expect("consumers").len() as u64;
                pending += g["pending"].as_array().expect("pending").len() as u64;
            }
        }
        let rows = table_rows(&dom, "table-streams");
        if keys == 0 {
            assert!(rows.is_empty(), "{name}: stream rows {rows:?}");
        } else {
            for (label, want) in [
                ("stream keys", keys),
                ("entries", entries),
                ("consumer groups", groups),
                ("consumers", consumers),
                ("pending entries", pending),
            ] {
                assert_eq!(
                    panel_value(&rows, label),
                    Some(want),
                    "{name}: streams {label}"
                );
            }
        }

        // Hash field TTLs: hashes with a field that has a TTL, and those fields.
        let (mut ttl_keys, mut ttl_fields) = (0, 0);
        for line in truth.iter().filter(|l| l["type"] == "hash") {
            let n = line["value"]
                .as_array()
                .expect("fields")
                .iter()
                .filter(|f| f.get(2).is_some_and(|t| !t.is_null()))
                .count() as u64;
            ttl_keys += u64::from(n > 0);
            ttl_fields += n;
        }
        let rows = table_rows(&dom, "table-field-ttls");
        if ttl_keys == 0 {
            assert!(
                element(&dom, "table-field-ttls").contains("No hash fields"),
                "{name}: {rows:?}"
            );
        } else {
            assert_eq!(
                panel_value(&rows, "hashes with field TTLs"),
                Some(ttl_keys),
                "{name}"
            );
            assert_eq!(
                panel_value(&rows, "fields with a TTL"),
                Some(ttl_fields),
                "{name}"
            );
        }

        // Top keys by memory: the report's list, in its order, biggest first.
        for (id, list) in [
            ("table-top", "top_by_bytes"),
            ("table-top-elements", "top_by_elements"),
            ("table-top-memory", "top_by_memory"),
        ] {
            let rows: Vec<Vec<String>> = table_rows(&dom, id).into_iter().skip(1).collect();
            let want: Vec<String> = report[list]
                .as_array()
                .expect("top list")
                .iter()
                .map(|k| k["key"].as_str().expect("text key").to_owned())
                .collect();
            let shown: Vec<String> = rows.iter().map(|r| r[2].clone()).collect();
            assert_eq!(shown, want, "{name}: #{id}");
        }
        let memory: Vec<u64> = report["top_by_memory"]
            .as_array()
            .expect("top")
            .iter()
            .map(|k| k["memory"].as_u64().expect("memory"))
            .collect();
        assert!(
            memory.windows(2).all(|w| w[0] >= w[1]),
            "{name}: not biggest first"
        );

        // Size axes: every label a single value or a range whose bounds differ.
        for id in ["chart-key-sizes", "chart-value-sizes", "chart-memory-sizes"] {
            let labels: Vec<String> = element(&dom, id)
                .split("class=\"lab\"")
                .skip(1)
                .map(|t| text_of_markup(&format!("<x{}", t.split("</text>").next().unwrap_or(""))))
                .collect();
            assert!(!labels.is_empty(), "{name}: #{id} has no labels");
            for l in &labels {
                let bounds: Vec<&str> = l.split(['–', '-']).collect();
                assert!(
                    bounds.len() == 1 || (bounds.len() == 2 && bounds[0] != bounds[1]),
                    "{name}: #{id} axis label {l:?}"
                );
            }
            let mut unique = labels.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                unique.len(),
                labels.len(),
                "{name}: #{id} repeats a label: {labels:?}"
            );
        }
    }
    assert!(
        module_keys_seen > 0,
        "no fixture with module keys was checked"
    );
}

/// Key names, AUX values and the file name that try to inject markup: real Chromium
/// runs the page, and none of them becomes an element, an attribute or a script.
#[test]
fn html_report_escapes_hostile_names_in_chromium() {
    let Some(bin) = chromium() else { return };
    const MARK: &str = "document.body.setAttribute('data-xss','1')";
    let payloads: Vec<String> = vec![
        format!("<script>{MARK}</script>"),
        format!("\"onload=\"{MARK}\" x=\""),
        format!("'><img src=x onerror=\"{MARK}\">:k"),
        format!("</title></svg><svg onload=\"{MARK}\">:k"),
        format!("{{<script>{MARK}</script>}}tagged"),
        format!("p:<b onmouseover={MARK}>:{{</style><script>{MARK}</script>}}"),
    ];
    let mut keys: Vec<TestKey<'_>> = Vec::new();
    let big = vec![b'v'; 4000];
    for p in &payloads {
        keys.push((0, p.as_bytes(), &big, None));
    }
    // Text in any script shows as itself; bytes that are not UTF-8 as \xNN.
    keys.push((0, "用户:42".as_bytes(), &big, None));
    keys.push((0, b"bin:\xff\x00", &big, None));
    // A name longer than a top list keeps (64 KiB at --top 20): shown cut, and marked.
    let long = format!("long:<i>{}", "L".repeat(70_000));
    keys.push((0, long.as_bytes(), &big, None));
    let ver = format!("<script>{MARK}</script>");
    let data = snapshot(&[(b"redis-ver", ver.as_bytes())], &keys);
    let tmp = TempDir::new("stats-xss");
    // The page title comes from the file name.
    let file = tmp.path().join("<img src=x onerror=alert(1)>.rdb");
    std::fs::write(&file, &data).expect("write");
    let page = tmp.path().join("xss.html");
    let mut a = args(&file);
    a.json = false;
    a.html = Some(page.clone());
    run_stats(&data, &a, &mut Vec::new()).expect("stats");
    let html = std::fs::read_to_string(&page).expect("page");
    // One script element: the page's own heat map.
    assert_eq!(
        html.matches("<script").count(),
        1,
        "raw <script in the page"
    );
    for raw in ["<img", "<b ", "<svg onload", "onerror=\"", "onload=\""] {
        assert!(!html.contains(raw), "raw {raw:?} in the page");
    }
    let (dom, err) = run_chromium(&bin, &page, &["--dump-dom".into()]);
    let errors = console_errors(&err);
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
    assert!(
        dom.contains("data-painted=\"yes\""),
        "the page's script did not run"
    );
    assert!(!dom.contains("data-xss=\"1\""), "an injected script ran");
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "an injected script element"
    );
    assert!(!dom.contains("<img"), "an injected img element");
    // The names are there, as text.
    assert!(
        dom.contains("&lt;script&gt;document.body"),
        "the key names are missing"
    );
    assert!(dom.contains("用户:42"), "a UTF-8 key is not shown as text");
    assert!(dom.contains(r"bin:\xff\x00"), "a binary key is not escaped");
    // The long name is the biggest key by bytes, in every top list, cut and marked.
    let want = format!("(shortened: {} bytes, xxh3 ", long.len());
    for id in ["table-top", "table-top-elements", "table-top-memory"] {
        let rows = table_rows(&dom, id);
        let cell = rows
            .iter()
            .filter_map(|r| r.get(2))
            .find(|k| k.starts_with("long:<i>"))
            .unwrap_or_else(|| panic!("#{id} lacks the long key: {rows:?}"));
        let (name, mark) = cell
            .split_once(" (shortened")
            .unwrap_or_else(|| panic!("#{id}: the long key is not marked shortened: {cell:?}"));
        assert!(name.ends_with('…') && name.len() < 1000, "#{id}: {name:?}");
        assert!(cell.contains(&want), "#{id}: {cell:?} lacks {want:?}");
        let digest = mark.trim_end_matches(')').rsplit(' ').next().unwrap_or("");
        assert_eq!(digest.len(), 32, "#{id}: digest in {mark:?}");
    }
}

/// `--top` as big as usize goes: every key, no capacity overflow.
#[test]
fn top_accepts_any_count() {
    let data = snapshot(&[], &[(0, b"a", b"v", None), (0, b"b", b"vv", None)]);
    let v = json_of(&data, |o| o.top = usize::MAX);
    assert_eq!(v["top_by_bytes"].as_array().map(Vec::len), Some(2));
    assert_eq!(v["top_by_bytes"][0]["key"], "b");
}

/// One key of 100,000 separators: the deepest --depth allowed walks it, a deeper one
/// is a usage error (an unbounded depth overflowed the stack: SIGABRT).
#[test]
fn deep_prefixes_do_not_overflow_the_stack() {
    let key = b"a:".repeat(100_000);
    let data = snapshot(&[], &[(0, &key, b"v", None)]);
    let v = json_of(&data, |o| o.depth = rdb_cli::stats::MAX_DEPTH);
    assert_eq!(v["prefixes"]["nodes"], rdb_cli::stats::MAX_DEPTH + 1);
    assert!(text_of(&data).contains("a:a:"));
    let mut a = args(Path::new("x.rdb"));
    a.depth = rdb_cli::stats::MAX_DEPTH + 1;
    match run_stats(&data, &a, &mut Vec::new()) {
        Ok(_) => panic!("--depth past the maximum was accepted"),
        Err(err) => assert_eq!(err.exit_code(), 2, "{err}"),
    }
}

// ---------------------------------------------------------------------------------------
// Several files as one (issue 19): a cluster's shards, given one by one or as the
// directory `convert --shards` writes.

/// `rdbkit` with these arguments; panics unless it succeeds.
fn rdbkit(args: &[&std::ffi::OsStr]) {
    let out = std::process::Command::new(servers::rdbkit_bin())
        .args(args)
        .output()
        .expect("run rdbkit");
    assert!(
        out.status.success(),
        "rdbkit {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The report of these paths (files, or directories with a manifest) as `rdbkit stats`
/// makes it: (text or JSON on standard output, the HTML page).
fn report_of(paths: &[PathBuf], json: bool, tmp: &TempDir) -> (String, String) {
    let parts = rdb_cli::parts::expand(paths).expect("parts");
    let data: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| std::fs::read(&p.path).expect("read part"))
        .collect();
    let sources: Vec<Source<'_>> = parts
        .iter()
        .zip(&data)
        .map(|(part, data)| Source { part, data })
        .collect();
    let page = tmp.path().join("page.html");
    let options = Options {
        json,
        html: Some(page.clone()),
        now_ms: Some(1_700_000_000_000),
        ..Options::default()
    };
    let mut out = Vec::new();
    rdb_cli::stats::run(&sources, &ParserBuilder::new(), &options, &mut out, |_| {})
        .expect("stats");
    let html = std::fs::read_to_string(&page).expect("page");
    (String::from_utf8(out).expect("UTF-8"), html)
}

/// The number after `label` on the text report's line that starts with it.
fn text_number(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"));
    line[label.len()..]
        .trim_start()
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number in {line:?}"))
}

/// The value of the HTML page's card labelled `label`.
fn card(html: &str, label: &str) -> String {
    let end = format!("</b><span>{label}</span>");
    let at = html.find(&end).unwrap_or_else(|| panic!("no {label} card"));
    let start = html[..at].rfind("<b>").expect("card value") + 3;
    html[start..at].to_owned()
}

/// A fixture split into 3 shards by `convert --shards 3`: the directory.
fn three_shards(tmp: &TempDir) -> PathBuf {
    let dir = tmp.path().join("shards");
    let fixture = common::fixtures_dir().join("redis-7.4/big.rdb");
    rdbkit(&[
        "convert".as_ref(),
        fixture.as_os_str(),
        "-o".as_ref(),
        dir.as_os_str(),
        "--shards".as_ref(),
        "3".as_ref(),
        "--rdb-version".as_ref(),
        "12".as_ref(),
        "--dbs".as_ref(),
        "merge-into-0".as_ref(),
    ]);
    dir
}

#[test]
fn several_files_total_the_sum_of_their_single_reports() {
    let tmp = TempDir::new("stats-parts");
    let dir = three_shards(&tmp);
    let files: Vec<PathBuf> = (0..3).map(|i| dir.join(format!("shard-{i}.rdb"))).collect();
    let singles: Vec<Value> = files
        .iter()
        .map(|f| {
            serde_json::from_str(&report_of(std::slice::from_ref(f), true, &tmp).0).expect("JSON")
        })
        .collect();
    let sum = |field: &str| -> u64 { singles.iter().map(|v| v[field].as_u64().unwrap()).sum() };
    assert!(
        singles.iter().all(|v| v["keys"].as_u64() > Some(0)),
        "an empty shard"
    );
    assert!(
        singles.iter().all(|v| v.get("parts").is_none()),
        "one file has no parts"
    );

    // JSON: the totals, per database and per type, and the biggest key of all.
    for whole in [files.clone(), vec![dir.clone()]] {
        let (json, _) = report_of(&whole, true, &tmp);
        let v: Value = serde_json::from_str(&json).expect("JSON");
        for field in ["keys", "bytes", "memory", "file_bytes"] {
            assert_eq!(v[field].as_u64(), Some(sum(field)), "{field} of {whole:?}");
        }
        for (db, d) in v["dbs"].as_object().unwrap() {
            let want: u64 = singles
                .iter()
                .filter_map(|s| s["dbs"][db]["keys"].as_u64())
                .sum();
            assert_eq!(d["keys"].as_u64(), Some(want), "db {db}");
        }
        for (t, x) in v["types"].as_object().unwrap() {
            for field in ["keys", "elements", "bytes", "memory"] {
                let want: u64 = singles
                    .iter()
                    .filter_map(|s| s["types"][t][field].as_u64())
                    .sum();
                assert_eq!(x[field].as_u64(), Some(want), "{t} {field}");
            }
        }
        let biggest = singles
            .iter()
            .map(|s| s["top_by_bytes"][0]["bytes"].as_u64().unwrap())
            .max();
        assert_eq!(v["top_by_bytes"][0]["bytes"].as_u64(), biggest);
        let slots: u64 = singles
            .iter()
            .map(|s| s["slots"]["used"].as_u64().unwrap())
            .sum();
        assert_eq!(v["slots"]["used"].as_u64(), Some(slots));
        let parts = v["parts"].as_array().expect("parts");
        assert_eq!(parts.len(), 3);
        for (p, s) in parts.iter().zip(&singles) {
            for field in ["keys", "bytes", "memory", "file_bytes"] {
                assert_eq!(p[field], s[field], "part {field}");
            }
            // The slots a part holds cover every slot its single report lists.
            let held: Vec<(u64, u64)> = p["slots"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| (r[0].as_u64().unwrap(), r[1].as_u64().unwrap()))
                .collect();
            for slot in s["slots"]["keys"].as_array().unwrap() {
                let slot = slot[0].as_u64().unwrap();
                assert!(
                    held.iter().any(|&(a, z)| (a..=z).contains(&slot)),
                    "slot {slot}"
                );
            }
        }
        assert_eq!(v["checksum"], "ok (3 files)");
    }
    // The directory knows each part's slots: every key sits in them.
    let (json, _) = report_of(std::slice::from_ref(&dir), true, &tmp);
    let v: Value = serde_json::from_str(&json).unwrap();
    for p in v["parts"].as_array().unwrap() {
        assert_eq!(p["outside_manifest"]["keys"], 0, "{p}");
        assert!(p["manifest_slots"].is_array());
    }

    // Text and HTML: the same totals.
    let (text, html) = report_of(&files, false, &tmp);
    assert_eq!(text_number(&text, "keys "), sum("keys"), "{text}");
    assert!(text.starts_with("parts      3 files"), "{text}");
    assert!(
        text.contains(&format!("({} bytes)", sum("file_bytes"))),
        "{text}"
    );
    let single_texts: Vec<String> = files
        .iter()
        .map(|f| report_of(std::slice::from_ref(f), false, &tmp).0)
        .collect();
    let text_sum: u64 = single_texts.iter().map(|t| text_number(t, "keys ")).sum();
    assert_eq!(text_number(&text, "keys "), text_sum);
    assert_eq!(card(&html, "keys"), sum("keys").to_string());
    assert!(html.contains("id=\"table-parts\""), "no parts table");
    for f in &files {
        assert!(
            html.contains(&*f.display().to_string()),
            "{} not on the page",
            f.display()
        );
    }
    let single_cards: u64 = files
        .iter()
        .map(|f| {
            card(&report_of(std::slice::from_ref(f), false, &tmp).1, "keys")
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(card(&html, "keys"), single_cards.to_string());

    // The command takes files and directories alike.
    let out = std::process::Command::new(servers::rdbkit_bin())
        .args(["stats", "--json", "--now", "1700000000000"])
        .args(&files)
        .output()
        .expect("run rdbkit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["keys"].as_u64(), Some(sum("keys")));
    assert_eq!(v["parts"].as_array().map(Vec::len), Some(3));

    // The page with its parts table renders without a console error.
    if let Some(bin) = chromium() {
        let page = tmp.path().join("parts.html");
        std::fs::write(&page, &html).unwrap();
        let (dom, err) = run_chromium(&bin, &page, &["--dump-dom".into()]);
        let errors = console_errors(&err);
        assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
        let rows = table_rows(&dom, "table-parts");
        let keys_row = rows
            .iter()
            .find(|r| r.first().map(String::as_str) == Some("keys"))
            .unwrap_or_else(|| panic!("no keys row in {rows:?}"));
        let shown: Vec<u64> = keys_row[1..].iter().map(|k| k.parse().unwrap()).collect();
        let want: Vec<u64> = singles
            .iter()
            .map(|s| s["keys"].as_u64().unwrap())
            .collect();
        assert_eq!(shown, want, "keys per part, side by side");
    }
}

/// [`three_shards`], with the key "foo" (slot 12182, which the manifest gives to shard
/// 2) added to shard 0.
fn shards_with_a_moved_key(tmp: &TempDir) -> PathBuf {
    let dir = three_shards(tmp);
    // "foo" hashes to slot 12182, which the manifest gives to shard 2: put it in shard 0.
    assert_eq!(rdb_writer::slot::key_slot(b"foo"), 12182);
    let extra = tmp.path().join("extra.rdb");
    std::fs::write(&extra, snapshot(&[], &[(0, b"foo", b"moved", None)])).unwrap();
    let moved = tmp.path().join("moved-shard-0.rdb");
    rdbkit(&[
        "merge".as_ref(),
        dir.join("shard-0.rdb").as_os_str(),
        extra.as_os_str(),
        "-o".as_ref(),
        moved.as_os_str(),
        "--rdb-version".as_ref(),
        "12".as_ref(),
    ]);
    std::fs::rename(&moved, dir.join("shard-0.rdb")).unwrap();
    dir
}

#[test]
fn a_key_in_the_wrong_shard_is_reported_outside_its_range() {
    let tmp = TempDir::new("stats-outside");
    let dir = shards_with_a_moved_key(&tmp);
    let (json, html) = report_of(std::slice::from_ref(&dir), true, &tmp);
    let v: Value = serde_json::from_str(&json).unwrap();
    let parts = v["parts"].as_array().unwrap();
    assert_eq!(parts[0]["manifest_slots"], serde_json::json!([[0, 5460]]));
    assert_eq!(parts[0]["outside_manifest"]["keys"], 1);
    assert_eq!(
        parts[0]["outside_manifest"]["examples"],
        serde_json::json!([{"db": 0, "key": "foo", "slot": 12182}])
    );
    for p in &parts[1..] {
        assert_eq!(p["outside_manifest"]["keys"], 0);
    }
    assert!(
        html.contains("db0 slot 12182: foo"),
        "the page lacks the key"
    );
    let (text, _) = report_of(std::slice::from_ref(&dir), false, &tmp);
    assert!(
        text.contains("1 keys outside its manifest's slots 0-5460"),
        "{text}"
    );
    assert!(text.contains("db0 slot 12182  foo"), "{text}");
}
