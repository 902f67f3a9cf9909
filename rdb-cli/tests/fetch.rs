//! `rdbkit fetch` against real servers.
//!
//! - `fetches_from_every_server_disk_and_diskless`: each server of the manifest loads its
//!   own `types` fixture; `rdbkit fetch` takes a snapshot with `repl-diskless-sync no`
//!   (a `$<length>` payload) and `yes` (`$EOF:<mark>`), and each fetched file's export
//!   equals, key for key, the export of the dump the server writes on `SAVE` (the header's
//!   aux fields, which a re-save changes, are left out).
//! - `fetches_over_tls_with_a_password`: Redis 7.0 with a certificate from a CA made here,
//!   `rediss://` + `--tls-ca` + `--password-file`; a wrong password, no password, and an
//!   ACL user without +psync/+sync each fail with a clear message and leave no file; the
//!   password is never printed.
//! - `a_server_that_refuses_replication_leaves_no_file`: SYNC and PSYNC renamed away: the
//!   message names the service's own export as the alternative; with PSYNC alone renamed,
//!   the snapshot comes through SYNC.
//! - `a_slow_disk_snapshot_waits_through_keep_alives`: a BGSAVE slowed to ~3 s (the
//!   server sends `\n` keep-alives meanwhile) arrives whole, with `--timeout 2`.
//! - `a_dropped_connection_leaves_no_file`: rdbkit interrupted (SIGINT), then the server
//!   killed (SIGKILL), while it streams a slow snapshot: exit 130, then an error naming how
//!   far it got, and neither the file nor a temporary one either time.
//!
//! - `fetches_every_master_of_a_real_cluster`: a 3-node Redis 7.0 cluster (CLUSTER
//!   SHARDS), then a Redis 6.2 one (CLUSTER SLOTS only), loaded by
//!   `restore --cluster`; `fetch --cluster` writes one file per master (one diskless),
//!   each file's keys lie in its manifest slots, which are the cluster's; the manifest's
//!   keys, bytes and SHA-256 match the files; the union equals the masters' own dumps. A
//!   non-empty directory is refused; a master refusing replication leaves no directory.
//!
//! - `fetches_a_tls_cluster_with_a_password`: the same over TLS: three Redis 7.0 nodes with
//!   `tls-cluster yes`, announcing the hostname `localhost` (the name their certificate
//!   holds, as managed TLS clusters announce DNS names), and `requirepass`;
//!   `fetch rediss://... --cluster` finds each master's TLS port, verifies the CA, and the
//!   union of the files equals the masters' own dumps; the password is never printed.
//!
//! Servers come from `scripts/install-servers.sh` (`$RDBKIT_TOOLS/servers.json`); without
//! them the tests print a note and pass, except under `CI`.

// Test code: serde_json's `v["k"]` gives Null for a missing key, and a panic is a failure.
#![allow(clippy::indexing_slicing)]

mod common;
mod servers;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use servers::{Entry, Reply, Resp, Server, StartOptions, TempDir};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn rdbkit(args: &[&str]) -> Output {
    Command::new(servers::rdbkit_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run rdbkit: {e}"))
}

fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The manifest entry called `name`, or `None` (with a note) when it is not installed.
fn entry(name: &str) -> Option<Entry> {
    let all = servers::manifest_all()?;
    let found = all.into_iter().find(|e| e.name == name);
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is not in the manifest"
        );
        eprintln!("{name} is not in the manifest; skipping");
    }
    found
}

fn command(port: u16, args: &[&[u8]]) -> Reply {
    let mut c = Resp::connect(port, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
    c.command(args).unwrap_or_else(|e| panic!("{e}"))
}

fn ok(port: u16, args: &[&[u8]]) {
    let r = command(port, args);
    assert!(
        !matches!(r, Reply::Error(_)),
        "{:?} -> {r:?}",
        args.iter()
            .map(|a| String::from_utf8_lossy(a))
            .collect::<Vec<_>>()
    );
}

/// SAVE, once the fork that served the fetch has exited (a diskless one may still be
/// finishing when the fetch returns).
fn save(port: u16, password: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut c = Resp::connect(port, Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
        if let Some(p) = password {
            let auth = c
                .command(&[b"AUTH", p.as_bytes()])
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(auth, Reply::Status("OK".into()));
        }
        match c.command(&[b"SAVE"]).unwrap_or_else(|e| panic!("{e}")) {
            Reply::Error(e) if e.contains("in progress") && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Reply::Error(e) => panic!("SAVE: {e}"),
            _ => return,
        }
    }
}

/// The key and function lines of the file's export, sorted: what the snapshot holds,
/// without the header (aux fields differ between a SAVE and a replication snapshot).
fn data_lines(file: &Path) -> Result<Vec<String>, String> {
    let data = std::fs::read(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut out = Vec::new();
    rdb_cli::export::jsonl(&data, &rdb_parser::ParserBuilder::new(), &mut out, |_| ())
        .map_err(|e| format!("{}: export: {e}", file.display()))?;
    let mut lines = Vec::new();
    for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("export line: {e}"))?;
        if v["kind"] != "header" {
            lines.push(String::from_utf8_lossy(line).into_owned());
        }
    }
    lines.sort();
    Ok(lines)
}

/// Files in `dir` other than `keep`: a fetch that failed must leave none.
fn stray_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// Fetches from `server` with `diskless` on or off; `Err` names what went wrong.
fn fetch_and_compare(server: &Server, diskless: bool, out_dir: &Path) -> Result<u64, String> {
    let mode: &[u8] = if diskless { b"yes" } else { b"no" };
    ok(
        server.port(),
        &[b"CONFIG", b"SET", b"repl-diskless-sync", mode],
    );
    ok(
        server.port(),
        &[b"CONFIG", b"SET", b"repl-diskless-sync-delay", b"0"],
    );
    let file = out_dir.join(format!(
        "fetched-{}.rdb",
        if diskless { "diskless" } else { "disk" }
    ));
    let out = rdbkit(&[
        "fetch",
        &format!("redis://127.0.0.1:{}", server.port()),
        "-o",
        &file.to_string_lossy(),
        "--json",
    ]);
    if !out.status.success() {
        return Err(format!(
            "rdbkit fetch failed ({}): {}\n--- server log ---\n{}",
            out.status,
            all_output(&out),
            server.log_tail(15)
        ));
    }
    let s: Value = serde_json::from_slice(&out.stdout)
        .map_err(|e| format!("--json printed no JSON ({e}): {}", all_output(&out)))?;
    let want = if diskless { "diskless" } else { "disk" };
    if s["transfer"] != want || s["checksum"] != "verified" {
        return Err(format!("expected a {want} transfer, verified: {s}"));
    }
    let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
    if s["bytes"].as_u64() != Some(size) {
        return Err(format!("{s} but the file has {size} bytes"));
    }
    let fetched = data_lines(&file)?;
    save(server.port(), None);
    let saved = data_lines(&server.dir().join("dump.rdb"))?;
    if fetched.is_empty() {
        return Err("the fetched file holds no keys".into());
    }
    if fetched != saved {
        let only_fetched: Vec<_> = fetched
            .iter()
            .filter(|l| !saved.contains(l))
            .take(3)
            .collect();
        let only_saved: Vec<_> = saved
            .iter()
            .filter(|l| !fetched.contains(l))
            .take(3)
            .collect();
        return Err(format!(
            "{want}: {} lines fetched, {} saved; only fetched: {only_fetched:?}; only saved: \
             {only_saved:?}",
            fetched.len(),
            saved.len()
        ));
    }
    Ok(fetched.len() as u64)
}

#[test]
fn fetches_from_every_server_disk_and_diskless() {
    let Some(manifest) = servers::manifest() else {
        return;
    };
    let _turn = one_at_a_time();
    let mut failures = Vec::new();
    let mut lines = 0;
    for entry in &manifest {
        let source = common::fixtures_dir().join(&entry.name).join("types.rdb");
        let dir = TempDir::new(&format!("fetch-{}", entry.name));
        let out_dir = TempDir::new(&format!("fetch-out-{}", entry.name));
        if let Err(e) = std::fs::copy(&source, dir.path().join("dump.rdb")) {
            failures.push(format!("{}: {}: {e}", entry.name, source.display()));
            continue;
        }
        let server = match Server::start(entry, dir.path()) {
            Ok(s) => s,
            Err(e) => {
                failures.push(e);
                continue;
            }
        };
        for diskless in [false, true] {
            match fetch_and_compare(&server, diskless, out_dir.path()) {
                Ok(n) => lines += n,
                Err(e) => failures.push(format!("{} (diskless {diskless}): {e}", entry.name)),
            }
        }
    }
    eprintln!(
        "fetch: {lines} key lines equal across {} servers, disk-based and diskless",
        manifest.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n---- "));
}

// ---------------------------------------------------------------------------------------

#[test]
fn fetches_over_tls_with_a_password() {
    let Some(entry) = entry("redis-7.0") else {
        return;
    };
    let _turn = one_at_a_time();
    let dir = TempDir::new("fetch-tls");
    let out_dir = TempDir::new("fetch-tls-out");
    let secrets = TempDir::new("fetch-tls-secrets");
    let (ca, cert, key) = servers::make_certificates(secrets.path());
    std::fs::copy(
        common::fixtures_dir().join("redis-7.0/types.rdb"),
        dir.path().join("dump.rdb"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tls_port = servers::free_port().unwrap_or_else(|e| panic!("{e}"));
    let opts = StartOptions {
        args: vec![
            "--tls-port".into(),
            tls_port.to_string(),
            "--tls-cert-file".into(),
            cert.to_string_lossy().into_owned(),
            "--tls-key-file".into(),
            key.to_string_lossy().into_owned(),
            "--tls-ca-cert-file".into(),
            ca.to_string_lossy().into_owned(),
            "--tls-auth-clients".into(),
            "no".into(),
            "--tls-replication".into(),
            "yes".into(),
        ],
        ..StartOptions::default()
    };
    let server = Server::start_with(&entry, dir.path(), &opts).unwrap_or_else(|e| panic!("{e}"));
    const PASSWORD: &str = "Tr0ub4dor&3-fetch-secret";
    ok(
        server.port(),
        &[b"CONFIG", b"SET", b"requirepass", PASSWORD.as_bytes()],
    );
    let password_file = secrets.path().join("pw.txt");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap_or_else(|e| panic!("{e}"));
    let admin = |args: &[&[u8]]| {
        let mut c =
            Resp::connect(server.port(), Duration::from_secs(10)).unwrap_or_else(|e| panic!("{e}"));
        let auth = c
            .command(&[b"AUTH", PASSWORD.as_bytes()])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(auth, Reply::Status("OK".into()));
        let r = c.command(args).unwrap_or_else(|e| panic!("{e}"));
        assert!(!matches!(r, Reply::Error(_)), "{r:?}");
    };
    for (name, value) in [
        ("repl-diskless-sync", "yes"),
        ("repl-diskless-sync-delay", "0"),
    ] {
        admin(&[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()]);
    }
    let file = out_dir.path().join("tls.rdb");
    let file_arg = file.to_string_lossy().into_owned();
    let ca_arg = ca.to_string_lossy().into_owned();
    let pw_arg = password_file.to_string_lossy().into_owned();
    let tls_url = format!("rediss://localhost:{tls_port}");
    let mut outputs = Vec::new();

    let out = rdbkit(&[
        "fetch",
        &tls_url,
        "-o",
        &file_arg,
        "--tls-ca",
        &ca_arg,
        "--password-file",
        &pw_arg,
        "--json",
    ]);
    assert!(out.status.success(), "{}", all_output(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["checksum"], "verified", "{s}");
    save(server.port(), Some(PASSWORD));
    let fetched = data_lines(&file).unwrap_or_else(|e| panic!("{e}"));
    assert!(!fetched.is_empty());
    assert_eq!(
        fetched,
        data_lines(&dir.path().join("dump.rdb")).unwrap_or_else(|e| panic!("{e}"))
    );
    outputs.push(out);
    std::fs::remove_file(&file).unwrap_or_else(|e| panic!("{e}"));

    // A wrong password, no password, and a user who may not replicate: exit 1, no file.
    let wrong = secrets.path().join("wrong.txt");
    std::fs::write(&wrong, "not-the-password\n").unwrap_or_else(|e| panic!("{e}"));
    let wrong_arg = wrong.to_string_lossy().into_owned();
    admin(&[
        b"ACL",
        b"SETUSER",
        b"nosync",
        b"on",
        b">nosync-pw-secret",
        b"~*",
        b"+@all",
        b"-psync",
        b"-sync",
    ]);
    let nosync_url = format!("rediss://nosync:nosync-pw-secret@localhost:{tls_port}");
    for (args, expect) in [
        (
            vec!["--tls-ca", &ca_arg, "--password-file", &wrong_arg],
            "AUTH refused",
        ),
        (vec!["--tls-ca", &ca_arg], "needs a password"),
    ] {
        let mut argv = vec!["fetch", &tls_url, "-o", &file_arg];
        argv.extend(args);
        let out = Command::new(servers::rdbkit_bin())
            .args(&argv)
            .env_remove("RDBKIT_REDIS_PASSWORD")
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
        assert!(all_output(&out).contains(expect), "{}", all_output(&out));
        outputs.push(out);
    }
    let out = rdbkit(&["fetch", &nosync_url, "-o", &file_arg, "--tls-ca", &ca_arg]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    let text = all_output(&out);
    assert!(
        text.contains("refuses replication") && text.contains("NOPERM") && text.contains("export"),
        "{text}"
    );
    outputs.push(out);
    assert!(
        stray_files(out_dir.path()).is_empty(),
        "{:?}",
        stray_files(out_dir.path())
    );
    for out in &outputs {
        let text = all_output(out);
        assert!(
            !text.contains(PASSWORD) && !text.contains("nosync-pw-secret"),
            "a password was printed: {text}"
        );
    }
}

#[test]
fn a_server_that_refuses_replication_leaves_no_file() {
    let Some(entry) = entry("redis-7.0") else {
        return;
    };
    let _turn = one_at_a_time();
    let dir = TempDir::new("fetch-refused");
    let out_dir = TempDir::new("fetch-refused-out");
    let opts = StartOptions {
        args: [
            "--rename-command",
            "SYNC",
            "",
            "--rename-command",
            "PSYNC",
            "",
        ]
        .map(String::from)
        .to_vec(),
        ..StartOptions::default()
    };
    let server = Server::start_with(&entry, dir.path(), &opts).unwrap_or_else(|e| panic!("{e}"));
    ok(server.port(), &[b"SET", b"k", b"v"]);
    let file = out_dir.path().join("refused.rdb");
    let out = rdbkit(&[
        "fetch",
        &format!("127.0.0.1:{}", server.port()),
        "-o",
        &file.to_string_lossy(),
    ]);
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("refuses replication")
            && text.contains("PSYNC: ERR unknown command")
            && text.contains("SYNC: ERR unknown command")
            && text.contains("own export"),
        "{text}"
    );
    assert!(
        stray_files(out_dir.path()).is_empty(),
        "{:?}",
        stray_files(out_dir.path())
    );
    drop(server);

    // PSYNC alone refused: SYNC gives the snapshot.
    let dir = TempDir::new("fetch-sync-only");
    let opts = StartOptions {
        args: ["--rename-command", "PSYNC", ""].map(String::from).to_vec(),
        ..StartOptions::default()
    };
    let server = Server::start_with(&entry, dir.path(), &opts).unwrap_or_else(|e| panic!("{e}"));
    ok(server.port(), &[b"SET", b"k", b"v"]);
    ok(
        server.port(),
        &[b"CONFIG", b"SET", b"repl-diskless-sync-delay", b"0"],
    );
    let file = out_dir.path().join("sync.rdb");
    let out = rdbkit(&[
        "fetch",
        &format!("127.0.0.1:{}", server.port()),
        "-o",
        &file.to_string_lossy(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", all_output(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["command"], "SYNC", "{s}");
    assert_eq!(s["checksum"], "verified", "{s}");
    let lines = data_lines(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lines.len(), 1, "{lines:?}");
}

#[test]
fn a_dropped_connection_leaves_no_file() {
    let Some(entry) = entry("redis-7.0") else {
        return;
    };
    let _turn = one_at_a_time();
    let dir = TempDir::new("fetch-dropped");
    let out_dir = TempDir::new("fetch-dropped-out");
    let opts = StartOptions {
        args: vec!["--enable-debug-command".into(), "yes".into()],
        ..StartOptions::default()
    };
    let mut server =
        Server::start_with(&entry, dir.path(), &opts).unwrap_or_else(|e| panic!("{e}"));
    let port = server.port();
    ok(port, &[b"DEBUG", b"POPULATE", b"20000", b"key", b"100"]);
    // The fork sleeps 200 µs per key: a diskless transfer of about 4 s, killed part way.
    for (name, value) in [
        ("repl-diskless-sync", "yes"),
        ("repl-diskless-sync-delay", "0"),
        ("rdb-key-save-delay", "200"),
    ] {
        ok(
            port,
            &[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()],
        );
    }
    let file = out_dir.path().join("dropped.rdb");
    let start_fetch = || {
        Command::new(servers::rdbkit_bin())
            .args(["fetch", &format!("127.0.0.1:{port}"), "-o"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let snapshot_running = |running: bool| {
        let want = if running {
            "rdb_bgsave_in_progress:1"
        } else {
            "rdb_bgsave_in_progress:0"
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let info = command(port, &[b"INFO", b"persistence"])
                .text()
                .unwrap_or_default();
            if info.contains(want) {
                return;
            }
            assert!(Instant::now() < deadline, "never {want}: {info}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };

    // rdbkit interrupted (SIGINT) part way: exit 130, no file.
    let child = start_fetch();
    snapshot_running(true);
    std::thread::sleep(Duration::from_millis(1000));
    let signalled = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(signalled.success());
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(130), "{}", all_output(&out));
    assert!(
        stray_files(out_dir.path()).is_empty(),
        "{:?}",
        stray_files(out_dir.path())
    );
    // The server's fork ends once it notices its replica is gone.
    snapshot_running(false);

    // The server killed (SIGKILL) part way: exit 2, no file.
    let child = start_fetch();
    snapshot_running(true);
    std::thread::sleep(Duration::from_millis(1000));
    let killed = Command::new("kill")
        .args(["-KILL", &server.pid().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(killed.success());
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    server.stop();
    let text = all_output(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("closed the connection") && text.contains("no file written"),
        "{text}"
    );
    assert!(
        stray_files(out_dir.path()).is_empty(),
        "{:?}",
        stray_files(out_dir.path())
    );
    // The error says how far it got: part of the snapshot, not all of it.
    assert!(!text.contains(" 0 bytes received"), "{text}");
    eprintln!("killed part way: {}", text.trim());
}

#[test]
fn a_slow_disk_snapshot_waits_through_keep_alives() {
    let Some(entry) = entry("redis-7.0") else {
        return;
    };
    let _turn = one_at_a_time();
    let dir = TempDir::new("fetch-slow");
    let out_dir = TempDir::new("fetch-slow-out");
    let opts = StartOptions {
        args: vec!["--enable-debug-command".into(), "yes".into()],
        ..StartOptions::default()
    };
    let server = Server::start_with(&entry, dir.path(), &opts).unwrap_or_else(|e| panic!("{e}"));
    let port = server.port();
    ok(port, &[b"DEBUG", b"POPULATE", b"15000", b"key", b"100"]);
    // 200 µs per key: a BGSAVE of about 3 s, during which only keep-alives arrive; with
    // --timeout 2 the fetch would fail if it did not take them as signs of life.
    for (name, value) in [("repl-diskless-sync", "no"), ("rdb-key-save-delay", "200")] {
        ok(
            port,
            &[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()],
        );
    }
    let file = out_dir.path().join("slow.rdb");
    let started = Instant::now();
    let out = rdbkit(&[
        "fetch",
        &format!("127.0.0.1:{port}"),
        "-o",
        &file.to_string_lossy(),
        "--timeout",
        "2",
        "--json",
    ]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", all_output(&out));
    assert!(took > Duration::from_millis(2500), "took only {took:?}");
    let s: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["transfer"], "disk", "{s}");
    let lines = data_lines(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(lines.len(), 15_000);
}

// ---------------------------------------------------------------------------------------
// A real cluster

/// The ranges `redis-cli --cluster create` gives three masters.
const RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// Three masters on 127.0.0.1 with [`RANGES`], joined with CLUSTER MEET; returns once
/// every node sees the whole cluster healthy.
fn form_cluster(entry: &Entry, dirs: &[TempDir]) -> Vec<Server> {
    form_cluster_with(entry, dirs, &[])
}

/// [`form_cluster`] with `extra` server arguments for every node.
fn form_cluster_with(entry: &Entry, dirs: &[TempDir], extra: &[Vec<String>]) -> Vec<Server> {
    let mut nodes: Vec<Server> = Vec::new();
    // Ports the extra arguments take (TLS ports, and their bus ports) are not picked again.
    let reserved: Vec<u16> = extra
        .iter()
        .flat_map(|args| args.windows(2))
        .filter(|w| w[0] == "--tls-port")
        .filter_map(|w| w[1].parse().ok())
        .collect();
    for (i, (dir, (a, b))) in dirs.iter().zip(RANGES).enumerate() {
        let port = loop {
            let p = servers::free_cluster_port().unwrap_or_else(|e| panic!("{e}"));
            if nodes
                .iter()
                .map(Server::port)
                .chain(reserved.iter().copied())
                .all(|q| q != p && q.abs_diff(p) != 10000)
            {
                break p;
            }
        };
        let opts = StartOptions {
            port: Some(port),
            args: [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "5000",
            ]
            .map(String::from)
            .into_iter()
            .chain(extra.get(i).into_iter().flatten().cloned())
            .collect(),
            ..StartOptions::default()
        };
        let server = Server::start_with(entry, dir.path(), &opts)
            .unwrap_or_else(|e| panic!("node {i}: {e}"));
        let epoch = (i + 1).to_string();
        ok(port, &[b"CLUSTER", b"SET-CONFIG-EPOCH", epoch.as_bytes()]);
        // ADDSLOTSRANGE is Redis 7.0's; older nodes take slots one by one.
        let all: Vec<String> = (a..=b).map(|s| s.to_string()).collect();
        for batch in all.chunks(1000) {
            let mut args: Vec<&[u8]> = vec![b"CLUSTER", b"ADDSLOTS"];
            args.extend(batch.iter().map(|s| s.as_bytes()));
            ok(port, &args);
        }
        nodes.push(server);
    }
    // With `tls-cluster yes` a node's bus is its TLS port + 10000, and MEET names that port.
    let bus_base = |i: usize, n: &Server| {
        let args = extra.get(i).map(Vec::as_slice).unwrap_or_default();
        let tls_cluster = args
            .windows(2)
            .any(|w| w[0] == "--tls-cluster" && w[1] == "yes");
        let tls_port = args
            .windows(2)
            .find(|w| w[0] == "--tls-port")
            .and_then(|w| w[1].parse().ok());
        match tls_port {
            Some(p) if tls_cluster => p,
            _ => n.port(),
        }
    };
    let first = nodes.first().map(|n| n.port()).unwrap_or_default();
    for (i, n) in nodes.iter().enumerate().skip(1) {
        let port = bus_base(i, n).to_string();
        ok(first, &[b"CLUSTER", b"MEET", b"127.0.0.1", port.as_bytes()]);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for n in &nodes {
        loop {
            let info = command(n.port(), &[b"CLUSTER", b"INFO"])
                .text()
                .unwrap_or_default();
            let slots = match command(n.port(), &[b"CLUSTER", b"SLOTS"]) {
                Reply::Array(Some(r)) => r.len(),
                _ => 0,
            };
            if info.contains("cluster_state:ok") && slots == 3 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster never formed: {info}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    nodes
}

/// The file's keys, and those whose slot is outside `ranges`.
fn keys_outside(file: &Path, ranges: &[(u16, u16)]) -> (usize, Vec<String>) {
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let parser = rdb_parser::ParserBuilder::new()
        .parse(&data)
        .unwrap_or_else(|e| panic!("{e}"));
    let (mut keys, mut outside) = (0, Vec::new());
    for item in parser {
        if let rdb_parser::Item::Key(e) = item.unwrap_or_else(|e| panic!("{e}")) {
            keys += 1;
            let slot = rdb_writer::slot::key_slot(&e.key);
            if !ranges.iter().any(|&(a, b)| (a..=b).contains(&slot)) {
                outside.push(format!("{} (slot {slot})", String::from_utf8_lossy(&e.key)));
            }
        }
    }
    (keys, outside)
}

fn sha256_hex(file: &Path) -> String {
    use sha2::Digest;
    let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The data of the cluster tests: the fixture's db 0, routed to the masters by
/// `rdbkit restore --cluster`.
fn load_types_fixture(url: &str) {
    let source = common::fixtures_dir().join("redis-7.0/types.rdb");
    let out = rdbkit(&[
        "restore",
        &source.to_string_lossy(),
        "--to",
        url,
        "--cluster",
        "--db",
        "0",
        "--functions",
        "drop",
    ]);
    assert!(out.status.success(), "{}", all_output(&out));
}

#[test]
fn fetches_every_master_of_a_real_cluster() {
    // Redis 7.0 answers CLUSTER SHARDS; Redis 6.2 only CLUSTER SLOTS.
    for (name, discovery) in [
        ("redis-7.0", "CLUSTER SHARDS"),
        ("redis-6.2", "CLUSTER SLOTS"),
    ] {
        if let Some(entry) = entry(name) {
            let _turn = one_at_a_time();
            fetch_a_cluster(&entry, discovery);
        }
    }
}

fn fetch_a_cluster(entry: &Entry, discovery: &str) {
    let dirs: Vec<TempDir> = (0..3)
        .map(|i| TempDir::new(&format!("fetch-cluster-node{i}")))
        .collect();
    let nodes = form_cluster(entry, &dirs);
    let url = format!("redis://127.0.0.1:{}", nodes[0].port());
    load_types_fixture(&url);
    // One master diskless, the others disk-based: both framings in one run.
    for (i, n) in nodes.iter().enumerate() {
        let mode: &[u8] = if i == 1 { b"yes" } else { b"no" };
        ok(n.port(), &[b"CONFIG", b"SET", b"repl-diskless-sync", mode]);
        ok(
            n.port(),
            &[b"CONFIG", b"SET", b"repl-diskless-sync-delay", b"0"],
        );
    }
    let out_dir = TempDir::new("fetch-cluster-out");
    let shards_dir = out_dir.path().join("shards");
    let shards_arg = shards_dir.to_string_lossy().into_owned();
    let out = rdbkit(&[
        "fetch",
        &url,
        "--cluster",
        "-o",
        &shards_arg,
        "--jobs",
        "2",
        "--json",
    ]);
    assert!(out.status.success(), "{}", all_output(&out));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s["discovery"], discovery, "{s}");
    let transfers: Vec<&str> = s["shards"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["transfer"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(transfers, ["disk", "diskless", "disk"], "{s}");

    let manifest: Value = serde_json::from_slice(
        &std::fs::read(shards_dir.join("manifest.json")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let shards = manifest["shards"].as_array().cloned().unwrap_or_default();
    assert_eq!(shards.len(), 3, "{manifest}");
    assert_eq!(manifest["target"], entry.name.as_str(), "{manifest}");
    let (mut fetched_lines, mut saved_lines, mut total_keys) = (Vec::new(), Vec::new(), 0);
    for (i, ((shard, node), (a, b))) in shards.iter().zip(&nodes).zip(RANGES).enumerate() {
        let file = shards_dir.join(shard["file"].as_str().unwrap_or_default());
        assert_eq!(shard["file"], format!("shard-{i}.rdb").as_str());
        assert_eq!(shard["node"], format!("127.0.0.1:{}", node.port()).as_str());
        // The manifest's slots are the cluster's.
        assert_eq!(shard["slots"], serde_json::json!([[a, b]]), "{shard}");
        assert_eq!(shard["sha256"], sha256_hex(&file).as_str());
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert_eq!(shard["bytes"].as_u64(), Some(size));
        let (keys, outside) = keys_outside(&file, &[(a, b)]);
        assert_eq!(shard["keys"].as_u64(), Some(keys as u64));
        assert!(
            outside.is_empty(),
            "shard {i}: keys outside its slots: {outside:?}"
        );
        assert!(keys > 0, "shard {i} holds no key");
        total_keys += keys;
        fetched_lines.extend(data_lines(&file).unwrap_or_else(|e| panic!("{e}")));
        save(node.port(), None);
        saved_lines
            .extend(data_lines(&node.dir().join("dump.rdb")).unwrap_or_else(|e| panic!("{e}")));
    }
    // The union of the files is the cluster's data.
    fetched_lines.sort();
    saved_lines.sort();
    assert_eq!(fetched_lines.len(), saved_lines.len());
    assert!(
        fetched_lines == saved_lines,
        "the union differs from the masters' own dumps"
    );
    let mut names: Vec<String> = std::fs::read_dir(&shards_dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["manifest.json", "shard-0.rdb", "shard-1.rdb", "shard-2.rdb"]
    );

    // A directory that is not empty is refused before anything is fetched; a master that
    // refuses replication leaves no directory at all.
    let out = rdbkit(&["fetch", &url, "--cluster", "-o", &shards_arg]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("not empty"),
        "{}",
        all_output(&out)
    );
    ok(
        nodes[2].port(),
        &[b"ACL", b"SETUSER", b"default", b"-psync", b"-sync"],
    );
    let other = out_dir.path().join("refused");
    let out = rdbkit(&["fetch", &url, "--cluster", "-o", &other.to_string_lossy()]);
    assert_eq!(out.status.code(), Some(1), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("refuses replication"),
        "{}",
        all_output(&out)
    );
    assert_eq!(
        stray_files(out_dir.path()),
        vec![shards_dir.clone()],
        "a failed cluster fetch left files"
    );
    eprintln!(
        "{} cluster ({discovery}): {total_keys} keys in 3 shard files",
        entry.name
    );
}

#[test]
fn fetches_a_tls_cluster_with_a_password() {
    // Hostname endpoints (cluster-preferred-endpoint-type) are Redis 7.0's.
    let Some(entry) = entry("redis-7.0") else {
        return;
    };
    let _turn = one_at_a_time();
    let secrets = TempDir::new("fetch-tls-cluster-secrets");
    let (ca, cert, key) = servers::make_certificates(secrets.path());
    const PASSWORD: &str = "cluster-Tr0ub4dor&3-secret";
    let password_file = secrets.path().join("pw.txt");
    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap_or_else(|e| panic!("{e}"));
    let dirs: Vec<TempDir> = (0..3)
        .map(|i| TempDir::new(&format!("fetch-tls-cluster-node{i}")))
        .collect();
    // The cluster bus listens on each TLS port + 10000: pairs that are free, and apart
    // from one another.
    let mut tls_ports: Vec<u16> = Vec::new();
    while tls_ports.len() < 3 {
        let p = servers::free_cluster_port().unwrap_or_else(|e| panic!("{e}"));
        if tls_ports.iter().all(|&q| q != p && q.abs_diff(p) != 10000) {
            tls_ports.push(p);
        }
    }
    let extra: Vec<Vec<String>> = tls_ports
        .iter()
        .map(|p| {
            [
                "--tls-port",
                &p.to_string(),
                "--tls-cert-file",
                &cert.to_string_lossy(),
                "--tls-key-file",
                &key.to_string_lossy(),
                "--tls-ca-cert-file",
                &ca.to_string_lossy(),
                "--tls-auth-clients",
                "no",
                "--tls-replication",
                "yes",
                "--tls-cluster",
                "yes",
                "--cluster-announce-hostname",
                "localhost",
                "--cluster-preferred-endpoint-type",
                "hostname",
            ]
            .map(String::from)
            .to_vec()
        })
        .collect();
    let nodes = form_cluster_with(&entry, &dirs, &extra);
    // The data goes in through the plain port before the password is set.
    load_types_fixture(&format!("redis://127.0.0.1:{}", nodes[0].port()));
    for n in &nodes {
        for (name, value) in [
            ("repl-diskless-sync", "no"),
            ("masterauth", PASSWORD),
            ("requirepass", PASSWORD),
        ] {
            ok(
                n.port(),
                &[b"CONFIG", b"SET", name.as_bytes(), value.as_bytes()],
            );
        }
    }

    let out_dir = TempDir::new("fetch-tls-cluster-out");
    let shards_dir = out_dir.path().join("shards");
    let tls_url = format!("rediss://localhost:{}", tls_ports[0]);
    let out = rdbkit(&[
        "fetch",
        &tls_url,
        "--cluster",
        "-o",
        &shards_dir.to_string_lossy(),
        "--tls-ca",
        &ca.to_string_lossy(),
        "--password-file",
        &password_file.to_string_lossy(),
        "--json",
    ]);
    let text = all_output(&out);
    assert!(out.status.success(), "{text}");
    assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(shards_dir.join("manifest.json")).unwrap_or_else(|e| panic!("{e}")),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let shards = manifest["shards"].as_array().cloned().unwrap_or_default();
    assert_eq!(shards.len(), 3, "{manifest}");
    let (mut fetched_lines, mut saved_lines) = (Vec::new(), Vec::new());
    for (i, ((shard, node), (a, b))) in shards.iter().zip(&nodes).zip(RANGES).enumerate() {
        // Each master was reached on its TLS port, by the name it announces.
        assert_eq!(
            shard["node"],
            format!("localhost:{}", tls_ports[i]).as_str(),
            "{shard}"
        );
        assert_eq!(shard["slots"], serde_json::json!([[a, b]]), "{shard}");
        let file = shards_dir.join(shard["file"].as_str().unwrap_or_default());
        let (keys, outside) = keys_outside(&file, &[(a, b)]);
        assert!(keys > 0 && outside.is_empty(), "shard {i}: {outside:?}");
        fetched_lines.extend(data_lines(&file).unwrap_or_else(|e| panic!("{e}")));
        save(node.port(), Some(PASSWORD));
        saved_lines
            .extend(data_lines(&node.dir().join("dump.rdb")).unwrap_or_else(|e| panic!("{e}")));
    }
    fetched_lines.sort();
    saved_lines.sort();
    assert!(
        !fetched_lines.is_empty() && fetched_lines == saved_lines,
        "the union differs from the masters' own dumps"
    );
}

/// A URL naming a user but no password, typed at a terminal: rdbkit asks for the password
/// without echo, sends it to the server, and never prints it. The terminal is a pty made
/// by util-linux `script`; the server is a socket here that records what arrives.
#[test]
fn a_missing_password_is_asked_on_the_terminal_without_echo() {
    use std::io::{Read, Write};
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("note: no `script` (util-linux) to make a terminal: skipped");
        return;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
        let _ = conn.set_read_timeout(Some(Duration::from_secs(20)));
        let mut got = Vec::new();
        let mut buf = [0u8; 512];
        while !got.windows(6).any(|w| w == b"s3cret") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
        let _ = conn.write_all(b"-WRONGPASS invalid username-password pair\r\n");
        got
    });
    let dir = TempDir::new("fetch-prompt");
    let out = dir.path().join("dump.rdb");
    let command = format!(
        "{} fetch redis://app@127.0.0.1:{port} -o {} --timeout 20",
        env!("CARGO_BIN_EXE_rdbkit"),
        out.display()
    );
    // The password is typed once the prompt has turned echo off.
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("RDBKIT_REDIS_PASSWORD")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("script: {e}"));
    std::thread::sleep(Duration::from_secs(2));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"s3cret\n");
    }
    let done = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
    let received = server.join().unwrap_or_default();
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&done.stdout),
        String::from_utf8_lossy(&done.stderr)
    );
    assert!(
        shown.contains(&format!("Password for app on 127.0.0.1:{port}")),
        "{shown}"
    );
    assert!(
        received.windows(3).any(|w| w == b"app") && received.windows(6).any(|w| w == b"s3cret"),
        "the server got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert!(!shown.contains("s3cret"), "the password was shown: {shown}");
    assert!(!done.status.success() && !out.exists(), "{shown}");
}
