//! Real Redis / Valkey servers for the CLI integration tests.
//!
//! The servers are the ones `scripts/install-servers.sh` installs and describes in
//! `.tools/servers.json` (or `$RDBKIT_TOOLS/servers.json`). A test starts one on a free
//! 127.0.0.1 port with an RDB file as its `dump.rdb`, reads every key back through
//! `fixtures/readback.py` (the same reading code as `fixtures/generate.py`, so the
//! output has the shape of the committed ground truth) and stops it again.
//!
//! Environment:
//! - `RDBKIT_TOOLS`: where the servers are installed (default `<repo>/.tools`).
//! - `RDBKIT_SERVERS`: comma-separated manifest names to restrict a run to.
//! - `RDBKIT_KEEP_TMP`: keep the temporary directories (dumps, logs) for inspection.
//! - `CI`: a missing manifest fails instead of skipping.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::common::{canonical, matches_truth};

/// How long a server may take to start and load its dump.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a server may take to exit after `SHUTDOWN NOSAVE` before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(3);

// ---------------------------------------------------------------------------------------
// Paths and the manifest

/// The repository root.
pub fn repo_root() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    dir.canonicalize().unwrap_or(dir)
}

/// `$RDBKIT_TOOLS`, or `<repo>/.tools`.
pub fn tools_dir() -> PathBuf {
    match std::env::var_os("RDBKIT_TOOLS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => repo_root().join(".tools"),
    }
}

/// The Python interpreter of the tools venv (it has the `redis` client).
pub fn python() -> PathBuf {
    tools_dir().join("venv/bin/python")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// One server of `servers.json`.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `redis-5.0` ... `valkey-9.0`; also the `rdbkit convert --target` profile name.
    pub name: String,
    /// The product version, e.g. `7.4.1`.
    pub version: String,
    /// The number in the RDB header the server writes (9, 10, 11, 12, 13, 80).
    pub rdb_version: u64,
    /// `REDIS` or `VALKEY`.
    pub magic: String,
    /// Argv prefix that runs the server.
    pub server: Vec<String>,
    /// Argv prefix that runs its redis-check-rdb; the file path is appended.
    pub check: Vec<String>,
    /// Extra environment for both.
    pub env: Vec<(String, String)>,
    /// Module `.so` files to `--loadmodule`.
    pub modules: Vec<String>,
}

impl Entry {
    fn from_json(v: &Value) -> Result<Entry, String> {
        let text = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| format!("servers.json: entry without a string {k:?}: {v}"))
        };
        let list = |k: &str| -> Result<Vec<String>, String> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|s| {
                        s.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| format!("servers.json: {k} holds a non-string: {s}"))
                    })
                    .collect(),
                Some(other) => Err(format!("servers.json: {k} is not a list: {other}")),
            }
        };
        let env = match v.get("env") {
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, val)| (k.clone(), val.as_str().unwrap_or_default().to_owned()))
                .collect(),
            _ => Vec::new(),
        };
        let entry = Entry {
            name: text("name")?,
            version: text("version")?,
            rdb_version: v
                .get("rdb_version")
                .and_then(Value::as_u64)
                .ok_or_else(|| format!("servers.json: entry without rdb_version: {v}"))?,
            magic: text("magic")?,
            server: list("server")?,
            check: list("check")?,
            env,
            modules: list("modules")?,
        };
        if entry.server.is_empty() || entry.check.is_empty() {
            return Err(format!(
                "servers.json: {}: empty server or check argv",
                entry.name
            ));
        }
        Ok(entry)
    }

    /// `REDIS0011`, `VALKEY080`: the 9 header bytes this server writes.
    pub fn header(&self) -> String {
        let width = if self.magic == "REDIS" { 4 } else { 3 };
        format!("{}{:0width$}", self.magic, self.rdb_version)
    }

    pub fn is_valkey(&self) -> bool {
        self.name.starts_with("valkey")
    }

    /// (major, minor, patch) of the product version.
    pub fn version_tuple(&self) -> (u32, u32, u32) {
        let mut parts = self
            .version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap_or(0));
        (
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        )
    }

    /// `sanitize-dump-payload` exists from Redis 6.2 (and in every Valkey). With it the
    /// server checks every ziplist / listpack / intset it loads in depth.
    pub fn has_deep_sanitization(&self) -> bool {
        self.is_valkey() || self.version_tuple() >= (6, 2, 0)
    }

    fn command(&self, argv: &[String]) -> Command {
        let (program, args) = match argv.split_first() {
            Some((p, a)) => (p.as_str(), a),
            None => ("false", &[][..]),
        };
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }
}

/// The servers of the manifest, restricted to `$RDBKIT_SERVERS` when that is set. `None`
/// (with a message) when the servers are not installed; under `CI` that is a failure.
pub fn manifest() -> Option<Vec<Entry>> {
    manifest_all().map(|all| only(all, "RDBKIT_SERVERS"))
}

/// Every server of the manifest, as [`manifest`] but without `$RDBKIT_SERVERS`.
pub fn manifest_all() -> Option<Vec<Entry>> {
    let path = tools_dir().join("servers.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            let msg = format!(
                "no server manifest at {} ({e}): run scripts/install-servers.sh to install \
                 the real Redis / Valkey servers these tests start",
                path.display()
            );
            assert!(std::env::var_os("CI").is_none(), "{msg} (CI requires them)");
            eprintln!("{msg}; skipping");
            return None;
        }
    };
    let json: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
    let entries: Vec<Entry> = json
        .as_array()
        .unwrap_or_else(|| panic!("{}: not a JSON list", path.display()))
        .iter()
        .map(|v| Entry::from_json(v).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect();
    assert!(!entries.is_empty(), "{}: no servers", path.display());
    Some(entries)
}

/// `entries` restricted to the comma-separated names in the environment variable `var`.
pub fn only(entries: Vec<Entry>, var: &str) -> Vec<Entry> {
    let Ok(names) = std::env::var(var) else {
        return entries;
    };
    let names: Vec<&str> = names
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    for n in &names {
        assert!(
            entries.iter().any(|e| e.name == *n),
            "{var}: {n} is not in the manifest"
        );
    }
    eprintln!("{var}={}: only these servers", names.join(","));
    entries
        .into_iter()
        .filter(|e| names.contains(&e.name.as_str()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// Temporary directories

/// A fresh directory under the system temp dir, removed on drop (unless
/// `$RDBKIT_KEEP_TMP` is set).
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let dir = std::env::temp_dir().join(format!(
            "rdbkit-{label}-{}-{n}-{}",
            std::process::id(),
            now_ms()
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os("RDBKIT_KEEP_TMP").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

// ---------------------------------------------------------------------------------------
// A minimal RESP2 client

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The text of a status or bulk reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// One connection speaking RESP2.
#[derive(Debug)]
pub struct Resp {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Resp {
    pub fn connect(port: u16, timeout: Duration) -> std::io::Result<Resp> {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Resp {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends one command and reads its reply. An error reply is `Ok(Reply::Error)`.
    pub fn command(&mut self, args: &[&[u8]]) -> std::io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.stream.write_all(&out)?;
        self.reply()
    }

    fn fill(&mut self) -> std::io::Result<()> {
        let mut chunk = [0u8; 16384];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "connection closed",
            ));
        }
        self.buf
            .extend_from_slice(chunk.get(..n).unwrap_or_default());
        Ok(())
    }

    fn line(&mut self) -> std::io::Result<Vec<u8>> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..pos + 2).take(pos).collect();
                return Ok(line);
            }
            self.fill()?;
        }
    }

    fn exact(&mut self, n: usize) -> std::io::Result<Vec<u8>> {
        while self.buf.len() < n + 2 {
            self.fill()?;
        }
        let data: Vec<u8> = self.buf.drain(..n + 2).take(n).collect();
        Ok(data)
    }

    fn reply(&mut self) -> std::io::Result<Reply> {
        let bad = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
        let line = self.line()?;
        let (kind, rest) = match line.split_first() {
            Some((k, r)) => (*k, String::from_utf8_lossy(r).into_owned()),
            None => return Err(bad("empty reply line".into())),
        };
        let number = |s: &str| {
            s.parse::<i64>()
                .map_err(|_| bad(format!("bad length or integer {s:?}")))
        };
        Ok(match kind {
            b'+' => Reply::Status(rest),
            b'-' => Reply::Error(rest),
            b':' => Reply::Int(number(&rest)?),
            b'$' => match usize::try_from(number(&rest)?) {
                Ok(n) => Reply::Bulk(Some(self.exact(n)?)),
                Err(_) => Reply::Bulk(None),
            },
            b'*' => match usize::try_from(number(&rest)?) {
                Ok(n) => {
                    let mut items = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        items.push(self.reply()?);
                    }
                    Reply::Array(Some(items))
                }
                Err(_) => Reply::Array(None),
            },
            other => return Err(bad(format!("unexpected reply type byte {other:#04x}"))),
        })
    }
}

/// `INFO` text as a map.
fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

// ---------------------------------------------------------------------------------------
// A server process

/// A port that was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("({}: {e})", path.display()));
    let lines: Vec<&str> = text.lines().collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

/// Two free ports `p` and `p + 10000` (a cluster node's client and bus ports), both below
/// the usual ephemeral range (32768 and up) so that no outgoing connection takes them
/// between this check and the server's bind. Picked pseudo-randomly in 10000..22000.
pub fn free_cluster_port() -> std::io::Result<u16> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let seed = u64::from(std::process::id())
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(
            u64::try_from(now_ms())
                .unwrap_or(0)
                .wrapping_mul(0xBF58_476D_1CE4_E5B9),
        );
    let mut last = None;
    for _ in 0..200 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed) as u64;
        let mut x = seed ^ n.wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
        x = x.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        x ^= x >> 32;
        let port = 10000 + u16::try_from(x % 12000).unwrap_or(0);
        let both = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .and_then(|_a| TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10000)).map(|_b| ()));
        match both {
            Ok(()) => return Ok(port),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free port pair")))
}

/// How to start a server, beyond what [`Server::start`] does.
#[derive(Debug, Clone, Default)]
pub struct StartOptions {
    /// Listen on this port, with no retry on another one when it is taken (default: a free
    /// port, retried when another process takes it first).
    pub port: Option<u16>,
    /// More arguments after the usual ones, e.g. `["--cluster-enabled", "yes"]`.
    pub args: Vec<String>,
    /// The log's file name in the directory (default `server.log`); it is truncated.
    pub log: Option<String>,
}

/// A running server that loaded `<dir>/dump.rdb`. Dropping it stops it.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts `entry`'s server on `<dir>/dump.rdb` (a missing file means an empty
    /// dataset) and waits until it has loaded it. A server that exits instead (it refused
    /// the file) or does not get ready in time is an `Err` with the end of its log.
    pub fn start(entry: &Entry, dir: &Path) -> Result<Server, String> {
        Server::start_with(entry, dir, &StartOptions::default())
    }

    /// [`Server::start`] with a given port, more arguments or another log file.
    pub fn start_with(entry: &Entry, dir: &Path, opts: &StartOptions) -> Result<Server, String> {
        let log = dir.join(opts.log.as_deref().unwrap_or("server.log"));
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = match opts.port {
                Some(port) => port,
                None => free_port().map_err(|e| format!("no free port: {e}"))?,
            };
            let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
            let err = out
                .try_clone()
                .map_err(|e| format!("{}: {e}", log.display()))?;
            let mut cmd = entry.command(&entry.server);
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .arg("--dir")
                .arg(dir)
                .args([
                    "--dbfilename",
                    "dump.rdb",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .args(["--daemonize", "no"])
                .current_dir(dir)
                .stdout(out)
                .stderr(err);
            if entry.has_deep_sanitization() {
                cmd.args(["--sanitize-dump-payload", "yes"]);
            }
            for module in &entry.modules {
                cmd.args(["--loadmodule", module]);
            }
            cmd.args(&opts.args);
            let child = cmd
                .spawn()
                .map_err(|e| format!("{}: cannot run {:?}: {e}", entry.name, entry.server))?;
            let mut server = Server {
                name: entry.name.clone(),
                child,
                port,
                dir: dir.to_path_buf(),
                log: log.clone(),
            };
            match server.wait_ready() {
                Ok(()) => return Ok(server),
                Err(e) => {
                    drop(server); // stops it if it is still running
                    last = format!(
                        "{}: {e}\n--- {} ---\n{}",
                        entry.name,
                        log.display(),
                        tail(&log, 25)
                    );
                    // Another process took the port between free_port() and the bind.
                    if opts.port.is_some() || !last.contains("Address already in use") {
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let pid = self.child.id().to_string();
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited ({status}) instead of loading its dump"));
            }
            match self.probe(&pid) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "not ready after {}s ({last})",
            START_TIMEOUT.as_secs()
        ))
    }

    /// Whether our server (the one with our pid, not another one that happens to listen
    /// on the port) answers PING and has finished loading.
    fn probe(&self, pid: &str) -> Result<bool, String> {
        let mut c = Resp::connect(self.port, Duration::from_secs(2)).map_err(|e| e.to_string())?;
        match c.command(&[b"PING"]).map_err(|e| e.to_string())? {
            Reply::Status(s) if s == "PONG" => {}
            other => return Err(format!("PING: {other:?}")),
        }
        let info = |c: &mut Resp, section: &[u8]| -> Result<BTreeMap<String, String>, String> {
            let reply = c.command(&[b"INFO", section]).map_err(|e| e.to_string())?;
            reply
                .text()
                .map(|t| parse_info(&t))
                .ok_or_else(|| format!("INFO: {reply:?}"))
        };
        let server = info(&mut c, b"server")?;
        if server.get("process_id").map(String::as_str) != Some(pid) {
            return Err(format!(
                "port {} answers from process {:?}, not {pid}",
                self.port,
                server.get("process_id")
            ));
        }
        Ok(info(&mut c, b"persistence")?
            .get("loading")
            .map(String::as_str)
            == Some("0"))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory it runs in (and loads `dump.rdb` from).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The end of the server's log.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log, lines)
    }

    /// Every key, read back through `fixtures/readback.py`: ground-truth lines sorted by
    /// (db, key bytes).
    pub fn try_readback(&self) -> Result<Vec<Value>, String> {
        let script = repo_root().join("fixtures/readback.py");
        let out = Command::new(python())
            .arg(&script)
            .args(["--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run {} {}: {e}",
                    python().display(),
                    script.display()
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "readback.py on {} ({}) failed: {}\n--- server log ---\n{}",
                self.name,
                out.status,
                String::from_utf8_lossy(&out.stderr).trim(),
                self.log_tail(10)
            ));
        }
        out.stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                serde_json::from_slice(l).map_err(|e| {
                    format!(
                        "readback.py printed a bad line ({e}): {}",
                        String::from_utf8_lossy(l)
                    )
                })
            })
            .collect()
    }

    /// [`Server::try_readback`], panicking on failure.
    pub fn readback(&self) -> Vec<Value> {
        self.try_readback().unwrap_or_else(|e| panic!("{e}"))
    }

    /// `SHUTDOWN NOSAVE`, then SIGKILL by pid if it is still running; reaps the child.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        if let Ok(mut c) = Resp::connect(self.port, Duration::from_secs(2)) {
            // The server closes the connection as it exits: no reply is expected.
            let _ = c.command(&[b"SHUTDOWN", b"NOSAVE"]);
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `entry`'s redis-check-rdb / valkey-check-rdb on `file`.
pub fn check_rdb(entry: &Entry, file: &Path) -> Result<(), String> {
    let out = entry
        .command(&entry.check)
        .arg(file)
        .output()
        .map_err(|e| format!("{}: cannot run {:?}: {e}", entry.name, entry.check))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && text.contains("RDB looks OK") {
        return Ok(());
    }
    let lines: Vec<&str> = text.lines().collect();
    Err(format!(
        "{}'s checker rejects {} ({}):\n{}",
        entry.name,
        file.display(),
        out.status,
        lines
            .get(lines.len().saturating_sub(15)..)
            .unwrap_or_default()
            .join("\n")
    ))
}

/// The 9-byte header of an RDB file, as text.
pub fn rdb_header(file: &Path) -> String {
    let mut head = [0u8; 9];
    match File::open(file).and_then(|mut f| f.read_exact(&mut head)) {
        Ok(()) => String::from_utf8_lossy(&head).into_owned(),
        Err(e) => format!("({}: {e})", file.display()),
    }
}

// ---------------------------------------------------------------------------------------
// Comparing with ground truth

/// Ground-truth lines of a `.jsonl` file.
pub fn read_jsonl(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| format!("{}: {e}: {l}", path.display())))
        .collect()
}

/// `db/key` as the tests name a key (the key as its JSON form).
pub fn key_id(line: &Value) -> String {
    format!(
        "{}/{}",
        line.get("db").unwrap_or(&Value::Null),
        line.get("key").unwrap_or(&Value::Null)
    )
}

/// What to expect of a read-back compared with a ground truth.
pub struct Expect<'a> {
    /// Keys whose `expire_ms` is at or before this were dropped by the server on load.
    pub loaded_at_ms: i64,
    /// Keys (by [`key_id`]) not expected at all: declared losses.
    pub ignore: &'a dyn Fn(&str) -> bool,
    /// Applied to every expected line before comparing: declared partial losses.
    pub transform: &'a dyn Fn(&mut Value),
    /// Object fields compared only when the read-back has them too.
    pub optional: &'a [&'a str],
}

impl Default for Expect<'_> {
    fn default() -> Self {
        Expect {
            loaded_at_ms: now_ms(),
            ignore: &|_| false,
            transform: &|_| {},
            optional: &[],
        }
    }
}

/// What a comparison looked at.
#[derive(Debug, Default, Clone, Copy)]
pub struct Compared {
    /// Keys equal to their ground truth.
    pub keys: usize,
    /// Ground-truth keys left out because they had expired.
    pub expired: usize,
    /// Ground-truth keys left out by `ignore`.
    pub ignored: usize,
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() <= 400 {
        return s;
    }
    let mut end = 400;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}... ({} bytes)",
        s.get(..end).unwrap_or_default(),
        s.len()
    )
}

/// Compares a read-back (`got`) with a ground truth (`want`) as tests/fixtures.rs compares
/// an export with it: the same key set (after leaving out expired and ignored keys), the
/// same type and `expire_ms`, and values equal in canonical order with subset matching
/// for objects ([`matches_truth`]). The error lists every difference, one per line.
pub fn compare(want: &[Value], got: &[Value], expect: &Expect) -> Result<Compared, String> {
    let mut stats = Compared::default();
    let mut wanted: BTreeMap<String, Value> = BTreeMap::new();
    for line in want {
        let id = key_id(line);
        if line
            .get("expire_ms")
            .and_then(Value::as_i64)
            .is_some_and(|t| t <= expect.loaded_at_ms)
        {
            stats.expired += 1;
            continue;
        }
        if (expect.ignore)(&id) {
            stats.ignored += 1;
            continue;
        }
        let mut line = line.clone();
        (expect.transform)(&mut line);
        wanted.insert(id, line);
    }
    let have: BTreeMap<String, &Value> = got.iter().map(|l| (key_id(l), l)).collect();
    let mut diffs = Vec::new();
    for id in wanted.keys().filter(|id| !have.contains_key(*id)) {
        diffs.push(format!("{id}: missing after loading"));
    }
    for (id, line) in have.iter().filter(|(id, _)| !wanted.contains_key(*id)) {
        diffs.push(format!("{id}: not expected, found {}", short(line)));
    }
    for (id, w) in &wanted {
        let Some(g) = have.get(id) else { continue };
        let field = |v: &Value, k: &str| v.get(k).cloned().unwrap_or(Value::Null);
        let (wt, gt) = (field(w, "type"), field(g, "type"));
        if wt != gt {
            diffs.push(format!("{id}: type {wt} expected, {gt} found"));
            continue;
        }
        let (we, ge) = (field(w, "expire_ms"), field(g, "expire_ms"));
        if we != ge {
            diffs.push(format!("{id}: expire_ms {we} expected, {ge} found"));
            continue;
        }
        let ty = wt.as_str().unwrap_or_default();
        let (wv, gv) = (
            canonical(ty, &field(w, "value")),
            canonical(ty, &field(g, "value")),
        );
        match matches_truth(&wv, &gv, "value", expect.optional) {
            Ok(()) => stats.keys += 1,
            Err(e) => diffs.push(format!(
                "{id}: {e}\n      expected {}\n      found    {}",
                short(&wv),
                short(&gv)
            )),
        }
    }
    if diffs.is_empty() {
        Ok(stats)
    } else {
        Err(diffs.join("\n"))
    }
}

/// The rdbkit binary under test: cargo's build, or `$RDBKIT_BIN`.
pub fn rdbkit_bin() -> PathBuf {
    match std::env::var_os("RDBKIT_BIN") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_rdbkit")),
    }
}

/// A CA and a server certificate for `localhost` (only) signed by it, as PEM files.
pub fn make_certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let mut ca_params =
        rcgen::CertificateParams::new(Vec::<String>::new()).unwrap_or_else(|e| panic!("{e}"));
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "rdbkit test CA");
    let ca = ca_params
        .self_signed(&ca_key)
        .unwrap_or_else(|e| panic!("{e}"));
    let key = rcgen::KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap_or_else(|e| panic!("{e}"));
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .unwrap_or_else(|e| panic!("{e}"));
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    for (path, text) in [
        (&paths.0, ca.pem()),
        (&paths.1, cert.pem()),
        (&paths.2, key.serialize_pem()),
    ] {
        std::fs::write(path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    paths
}
