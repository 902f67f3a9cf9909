//! Real Redis / Valkey servers load RDB files and a client reads every key back.
//!
//! - `committed_fixtures_load_identically`: every committed fixture, loaded by the server
//!   that wrote it, reads back as its committed ground truth. This proves the harness
//!   (tests/servers/mod.rs, fixtures/readback.py).
//! - `conversion_matrix`: every committed fixture converted with `rdbkit convert` for every
//!   server of the manifest passes that server's checker, loads, and reads back as the
//!   source's ground truth minus the losses the conversion report declares.
//!
//! The servers come from `scripts/install-servers.sh` (`.tools/servers.json`); without it
//! these tests print a note and pass, except under `CI`. `RDBKIT_SERVERS=a,b` restricts
//! the fixtures' servers, `RDBKIT_TARGETS=a,b` the conversion targets, `RDBKIT_BIN` runs
//! the matrix with another rdbkit binary, `RDBKIT_KEEP_TMP=1` keeps the work folders.

mod common;
mod servers;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;
use servers::{check_rdb, compare, key_id, rdb_header, read_jsonl, Entry, Expect, Server, TempDir};

/// Stream metadata an older RDB format cannot store: `first_id`, `max_deleted_id`,
/// `entries_added` and groups' `entries_read` need type 19 (Redis 7.0), consumers'
/// `active_time_ms` type 21 (Redis 7.2). A server that loads an older type derives or
/// omits them, so after a downgrade they are compared only where the target reports them.
const STREAM_METADATA: [&str; 6] = [
    "first_id",
    "max_deleted_id",
    "entries_added",
    "entries_read",
    "active_time_ms",
    // Redis 8.6 IDMP state (type 26), which older targets do not store.
    "idmp",
];

/// The committed fixtures of one server: `<fixtures>/<server>/*.rdb`, sorted.
fn fixtures_of(entry: &Entry) -> Vec<PathBuf> {
    common::rdb_files(&common::fixtures_dir().join(&entry.name))
}

fn fixture_name(entry: &Entry, rdb: &Path) -> String {
    let stem = rdb
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("{}/{stem}", entry.name)
}

fn report_failures(what: &str, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let mut text = String::new();
    for f in failures {
        text.push_str("\n---- ");
        text.push_str(f);
        text.push('\n');
    }
    panic!("{what}: {} failure(s):{text}", failures.len());
}

// ---------------------------------------------------------------------------------------
// Test A

/// Checks one committed fixture with its own server's checker, loads it on that server
/// and compares the read-back with the ground truth. A checker failure does not stop the
/// load: both are reported.
fn load_fixture(entry: &Entry, rdb: &Path) -> Result<servers::Compared, String> {
    let checked = check_rdb(entry, rdb);
    let loaded = load_and_compare(entry, rdb);
    match (checked, loaded) {
        (Ok(()), loaded) => loaded,
        (Err(c), Ok(_)) => Err(c),
        (Err(c), Err(l)) => Err(format!("{c}\n{l}")),
    }
}

fn load_and_compare(entry: &Entry, rdb: &Path) -> Result<servers::Compared, String> {
    let truth = read_jsonl(&rdb.with_extension("jsonl"))?;
    let dir = TempDir::new(&format!("load-{}", fixture_name(entry, rdb)));
    std::fs::copy(rdb, dir.path().join("dump.rdb"))
        .map_err(|e| format!("{}: {e}", rdb.display()))?;
    let loaded_at_ms = servers::now_ms();
    let server = Server::start(entry, dir.path())?;
    let got = server.try_readback()?;
    drop(server);
    compare(
        &truth,
        &got,
        &Expect {
            loaded_at_ms,
            ..Expect::default()
        },
    )
}

/// The two tests take turns, so that each has the machine's cores to itself (and its
/// timing means something); a failed test does not block the other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

#[test]
fn committed_fixtures_load_identically() {
    let Some(manifest) = servers::manifest() else {
        return;
    };
    let _turn = one_at_a_time();
    let t0 = Instant::now();
    let (mut loads, mut keys, mut expired) = (0, 0, 0);
    let mut failures = Vec::new();
    for entry in &manifest {
        let rdbs = fixtures_of(entry);
        if rdbs.is_empty() {
            failures.push(format!(
                "{}: no committed fixtures in {}",
                entry.name,
                common::fixtures_dir().display()
            ));
        }
        for rdb in rdbs {
            let name = fixture_name(entry, &rdb);
            match load_fixture(entry, &rdb) {
                Ok(stats) => {
                    loads += 1;
                    keys += stats.keys;
                    expired += stats.expired;
                }
                Err(e) => failures.push(format!("{name}: {e}")),
            }
        }
    }
    eprintln!(
        "real servers: {loads} fixtures loaded by their own server and passed its checker, \
         {keys} keys equal their ground truth ({expired} expired keys dropped on load), {:.1}s",
        t0.elapsed().as_secs_f64()
    );
    report_failures("committed fixtures on their own server", &failures);
    if std::env::var_os("RDBKIT_SERVERS").is_none() {
        assert!(keys > 500, "only {keys} keys compared");
    }
}

// ---------------------------------------------------------------------------------------
// Test B

/// Declared losses from a `--report` file.
#[derive(Default)]
struct Losses {
    /// Keys (by [`key_id`]) the conversion left out.
    dropped: BTreeSet<String>,
    /// Hashes whose field TTLs the conversion removed.
    field_ttls_dropped: BTreeSet<String>,
    /// Report lines with other actions.
    other: usize,
}

fn read_report(path: &Path) -> Result<Losses, String> {
    let mut losses = Losses::default();
    if !path.exists() {
        return Ok(losses); // nothing to declare
    }
    for line in read_jsonl(path)? {
        let id = key_id(&line);
        match line.get("action").and_then(Value::as_str) {
            Some("dropped") => {
                losses.dropped.insert(id);
            }
            Some("field_ttls_dropped") => {
                losses.field_ttls_dropped.insert(id);
            }
            Some(_) => losses.other += 1,
            None => {
                return Err(format!(
                    "{}: a line without an action: {line}",
                    path.display()
                ))
            }
        }
    }
    Ok(losses)
}

/// Removes the third element (the TTL) of every `[field, value, expire_ms]` of a hash.
fn strip_field_ttls(line: &mut Value) {
    if let Some(Value::Array(items)) = line.get_mut("value") {
        for item in items {
            if let Value::Array(parts) = item {
                parts.truncate(2);
            }
        }
    }
}

/// Field TTLs exist in RDB 12 (Redis 7.4) and in Valkey 9's format.
fn stores_field_ttls(entry: &Entry) -> bool {
    entry.rdb_version >= 12
}

#[derive(Default)]
struct Tally {
    conversions: usize,
    keys: usize,
    expired: usize,
    dropped: usize,
    field_ttls_dropped: usize,
    other_report_lines: usize,
}

/// Converts one fixture for one target, checks, loads and reads it back.
fn convert_one(bin: &Path, source: &Entry, rdb: &Path, target: &Entry) -> Result<Tally, String> {
    let truth = read_jsonl(&rdb.with_extension("jsonl"))?;
    let dir = TempDir::new(&format!(
        "convert-{}-to-{}",
        fixture_name(source, rdb),
        target.name
    ));
    let out = dir.path().join("dump.rdb");
    let report = dir.path().join("report.jsonl");
    let run = Command::new(bin)
        .arg("convert")
        .arg(rdb)
        .arg("-o")
        .arg(&out)
        .args(["--target", &target.name])
        .arg("--report")
        .arg(&report)
        .args([
            "--field-ttls",
            "drop",
            "--functions",
            "drop",
            "--modules",
            "drop",
            "--dbs",
            "keep",
            "--stream-idmp",
            "drop",
        ])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bin.display()))?;
    if !run.status.success() {
        return Err(format!(
            "rdbkit convert failed ({}):\n{}",
            run.status,
            String::from_utf8_lossy(&run.stderr).trim()
        ));
    }
    let header = rdb_header(&out);
    if header != target.header() {
        return Err(format!(
            "the output starts {header:?}, not {:?}",
            target.header()
        ));
    }
    check_rdb(target, &out)?;
    let losses = read_report(&report)?;

    // Only module keys may be dropped (`--modules drop`), and only targets that cannot
    // store field TTLs may lose them; a declared loss of anything else is a failure.
    let by_id: std::collections::BTreeMap<String, &Value> =
        truth.iter().map(|l| (key_id(l), l)).collect();
    let mut bad = Vec::new();
    for id in &losses.dropped {
        if let Some(line) = by_id.get(id) {
            if line.get("type").and_then(Value::as_str) != Some("module") {
                bad.push(format!(
                    "{id}: reported dropped, but it is a {} key",
                    line["type"]
                ));
            }
        }
    }
    if stores_field_ttls(target) && !losses.field_ttls_dropped.is_empty() {
        bad.push(format!(
            "{} stores field TTLs, but the report drops them from {:?}",
            target.name, losses.field_ttls_dropped
        ));
    }
    if !bad.is_empty() {
        return Err(format!("undue losses in the report:\n{}", bad.join("\n")));
    }

    let loaded_at_ms = servers::now_ms();
    let server = Server::start(target, dir.path())?;
    let got = server.try_readback()?;
    drop(server);
    let optional: &[&str] = if target.rdb_version < source.rdb_version {
        &STREAM_METADATA
    } else if source.rdb_version >= 13 && target.is_valkey() {
        &["idmp"] // VALKEY080 is numbered higher but has no IDMP
    } else {
        &[]
    };
    let stats = compare(
        &truth,
        &got,
        &Expect {
            loaded_at_ms,
            ignore: &|id| losses.dropped.contains(id),
            transform: &|line| {
                if losses.field_ttls_dropped.contains(&key_id(line)) {
                    strip_field_ttls(line);
                }
            },
            optional,
        },
    )?;
    Ok(Tally {
        conversions: 1,
        keys: stats.keys,
        expired: stats.expired,
        dropped: stats.ignored,
        field_ttls_dropped: losses.field_ttls_dropped.len(),
        other_report_lines: losses.other,
    })
}

#[test]
fn conversion_matrix() {
    let Some(all) = servers::manifest_all() else {
        return;
    };
    let manifest = servers::only(all.clone(), "RDBKIT_SERVERS");
    let bin = servers::rdbkit_bin();
    let _turn = one_at_a_time();
    let targets = servers::only(all, "RDBKIT_TARGETS");
    let mut jobs = Vec::new();
    for source in &manifest {
        for rdb in fixtures_of(source) {
            for target in &targets {
                jobs.push((source, rdb.clone(), target));
            }
        }
    }
    assert!(
        !jobs.is_empty(),
        "no fixtures to convert in {}",
        common::fixtures_dir().display()
    );
    let t0 = Instant::now();
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() + 1)
        .unwrap_or(2)
        .clamp(2, 8);
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((source, rdb, target)) = jobs.get(i) else {
                    break;
                };
                let name = format!("{} -> {}", fixture_name(source, rdb), target.name);
                let result =
                    convert_one(&bin, source, rdb, target).map_err(|e| format!("{name}: {e}"));
                if let Ok(mut r) = results.lock() {
                    r.push((i, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut total = Tally::default();
    let mut failures = Vec::new();
    for (_, result) in results {
        match result {
            Ok(t) => {
                total.conversions += t.conversions;
                total.keys += t.keys;
                total.expired += t.expired;
                total.dropped += t.dropped;
                total.field_ttls_dropped += t.field_ttls_dropped;
                total.other_report_lines += t.other_report_lines;
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "conversion matrix: {} of {} conversions passed the target's checker, loaded and read \
         back equal ({} keys compared; declared losses: {} keys dropped, {} hashes lost field \
         TTLs, {} other report lines; {} expired keys not expected) on {threads} threads in {:.1}s",
        total.conversions,
        jobs.len(),
        total.keys,
        total.dropped,
        total.field_ttls_dropped,
        total.other_report_lines,
        total.expired,
        t0.elapsed().as_secs_f64()
    );
    report_failures("conversion matrix", &failures);
}

// ---------------------------------------------------------------------------------------
// Test C

/// Every key of the richest fixture (Redis 7.4 `types.rdb`: every type, field TTLs, several
/// dbs), sent to each server as `RESTORE key ttl payload ABSTTL` with a DUMP payload built
/// for that server's version, reads back as the ground truth (minus field TTLs where the
/// server has none, and the stream metadata an older version derives).
#[test]
fn dump_payloads_restore_on_every_server() {
    use rdb_parser::{Item, Parser};
    use rdb_writer::convert::{dump_payload, ConvertOptions, FieldTtlPolicy, ModulePolicy};
    let Some(manifest) = servers::manifest() else {
        return;
    };
    let _turn = one_at_a_time();
    let source = common::fixtures_dir().join("redis-7.4/types.rdb");
    let data = std::fs::read(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    let truth = read_jsonl(&source.with_extension("jsonl")).unwrap_or_else(|e| panic!("{e}"));
    let parser = Parser::new(&data).unwrap_or_else(|e| panic!("{e}"));
    let version = parser.version();
    let entries: Vec<_> = parser
        .filter_map(|i| match i {
            Ok(Item::Key(e)) => Some(e),
            _ => None,
        })
        .collect();
    let now = servers::now_ms();
    let (mut restored, mut failures) = (0, Vec::new());
    for entry in &manifest {
        let profile = rdb_writer::TargetProfile::named(&entry.name)
            .cloned()
            .unwrap_or_else(|| panic!("no profile named {}", entry.name));
        let field_ttls = profile.field_ttls();
        let lower = entry.rdb_version < 12 && !entry.is_valkey();
        let mut opts = ConvertOptions::new(profile);
        opts.field_ttls = FieldTtlPolicy::Drop;
        opts.modules = ModulePolicy::Drop;
        let dir = TempDir::new(&format!("restore-{}", entry.name));
        let server = match Server::start(entry, dir.path()) {
            Ok(s) => s,
            Err(e) => {
                failures.push(format!("{}: {e}", entry.name));
                continue;
            }
        };
        let mut resp = servers::Resp::connect(server.port(), std::time::Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        for e in &entries {
            // A key already expired would be deleted by RESTORE at once; skip it.
            if e.expire_ms.is_some_and(|t| t <= now) {
                continue;
            }
            let payload = dump_payload(e, version, &opts).unwrap_or_else(|err| panic!("{err}"));
            let Some(payload) = payload else { continue };
            let db = e.db.to_string();
            let ttl = e.expire_ms.map_or("0".to_string(), |t| t.to_string());
            let _ = resp.command(&[b"SELECT", db.as_bytes()]);
            let mut args: Vec<&[u8]> = vec![b"RESTORE", &e.key, ttl.as_bytes(), &payload];
            if e.expire_ms.is_some() {
                args.push(b"ABSTTL");
            }
            match resp.command(&args) {
                Ok(r) if r.text().as_deref() == Some("OK") => restored += 1,
                other => failures.push(format!(
                    "{}: RESTORE {:?} -> {other:?}",
                    entry.name,
                    String::from_utf8_lossy(&e.key)
                )),
            }
        }
        let got = match server.try_readback() {
            Ok(g) => g,
            Err(e) => {
                failures.push(format!("{}: {e}", entry.name));
                continue;
            }
        };
        drop(server);
        let strip_ttls = |v: &mut Value| {
            if !field_ttls && v["type"] == "hash" {
                if let Some(fields) = v["value"].as_array_mut() {
                    for f in fields.iter_mut().filter_map(Value::as_array_mut) {
                        f.truncate(2);
                    }
                }
            }
        };
        let optional: &[&str] = if lower { &STREAM_METADATA } else { &[] };
        if let Err(e) = compare(
            &truth,
            &got,
            &Expect {
                loaded_at_ms: now,
                transform: &strip_ttls,
                optional,
                ..Expect::default()
            },
        ) {
            failures.push(format!("{}: {e}", entry.name));
        }
    }
    eprintln!("real servers: {restored} RESTOREs of target-versioned DUMP payloads accepted");
    report_failures("DUMP payloads restored on each server", &failures);
    assert!(restored > 100, "{restored}");
}

/// Redis 8.6's own keys (type-26 streams with IDMP state, vector sets, every other type)
/// sent back to an 8.6 server as `RESTORE` with RDB 13 payloads read back as the ground
/// truth, IDMP counts included.
#[test]
fn redis_8_6_payloads_restore_on_8_6() {
    use rdb_parser::{Item, Parser};
    use rdb_writer::convert::{dump_payload, ConvertOptions, ModulePolicy};
    let Some(manifest) = servers::manifest() else {
        return;
    };
    let Some(entry) = manifest.iter().find(|e| e.name == "redis-8.6") else {
        return;
    };
    let _turn = one_at_a_time();
    let mut opts = ConvertOptions::new(
        rdb_writer::TargetProfile::named("redis-8.6")
            .cloned()
            .unwrap_or_else(|| panic!("no redis-8.6 profile")),
    );
    opts.modules = ModulePolicy::Keep;
    let (mut restored, mut failures) = (0, Vec::new());
    for name in ["types", "idmp", "vectorsets"] {
        let source = common::fixtures_dir().join(format!("redis-8.6/{name}.rdb"));
        let data = std::fs::read(&source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let truth = read_jsonl(&source.with_extension("jsonl")).unwrap_or_else(|e| panic!("{e}"));
        let parser = Parser::new(&data).unwrap_or_else(|e| panic!("{e}"));
        let version = parser.version();
        let dir = TempDir::new(&format!("restore-8.6-{name}"));
        let server = Server::start(entry, dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut resp = servers::Resp::connect(server.port(), std::time::Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("{e}"));
        let now = servers::now_ms();
        for item in parser {
            let Ok(Item::Key(e)) = item else { continue };
            if e.expire_ms.is_some_and(|t| t <= now) {
                continue;
            }
            let payload = dump_payload(&e, version, &opts).unwrap_or_else(|err| panic!("{err}"));
            let Some(payload) = payload else {
                failures.push(format!("{name}: {:?} has no payload", e.key));
                continue;
            };
            assert_eq!(
                payload.get(payload.len() - 10),
                Some(&13),
                "RDB 13 payloads"
            );
            let db = e.db.to_string();
            let ttl = e.expire_ms.map_or("0".to_string(), |t| t.to_string());
            let _ = resp.command(&[b"SELECT", db.as_bytes()]);
            let mut args: Vec<&[u8]> = vec![b"RESTORE", &e.key, ttl.as_bytes(), &payload];
            if e.expire_ms.is_some() {
                args.push(b"ABSTTL");
            }
            match resp.command(&args) {
                Ok(r) if r.text().as_deref() == Some("OK") => restored += 1,
                other => failures.push(format!("{name}: RESTORE {:?} -> {other:?}", e.key)),
            }
        }
        match server.try_readback() {
            Ok(got) => {
                let expect = Expect {
                    loaded_at_ms: now,
                    ..Expect::default()
                };
                if let Err(e) = compare(&truth, &got, &expect) {
                    failures.push(format!("{name}: {e}"));
                }
            }
            Err(e) => failures.push(format!("{name}: {e}")),
        }
    }
    eprintln!("real servers: {restored} RESTOREs of Redis 8.6 keys with RDB 13 payloads");
    report_failures("8.6 payloads restored on 8.6", &failures);
    assert!(restored > 70, "{restored}");
}
