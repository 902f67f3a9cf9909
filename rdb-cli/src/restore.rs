//! `rdbkit restore`: send a snapshot's keys to a live server as `RESTORE` commands.
//!
//! Each key becomes `RESTORE key ttl payload [ABSTTL] [REPLACE] [IDLETIME|FREQ]` with a DUMP
//! payload for the server's own RDB version (read from `INFO server`), built by
//! `rdb_writer::convert::dump_body` on all cores. A payload above the server's
//! `proto-max-bulk-len` is sent as plain commands instead (RPUSH, SADD, HSET, ... in
//! batches, then PEXPIREAT; see `resp.rs`).
//!
//! Why these crates, and not the `redis` client itself: the client's pipelines are
//! all-or-nothing batches, while a restore needs a window of commands in flight per node
//! and a decision per reply (BUSYKEY, MOVED, ASK, TRYAGAIN) while more commands are queued.
//! So the connection is our own `TcpStream` (or `rustls::StreamOwned` over it), commands
//! are framed in place (`resp.rs`), and replies are parsed by the `redis` crate's
//! incremental `Parser`, which handles every RESP2/RESP3 reply shape. TLS is rustls (pure
//! Rust, with the `ring` provider, which builds quickly and needs no cmake), with the
//! Mozilla roots from `webpki-roots` so that a managed service's certificate verifies
//! without a system store, plus `--tls-ca` PEM files read by `rustls-pki-types`
//! (`rustls-pemfile` is unmaintained; its code moved there). `url` parses the target URL.
//!
//! Cluster mode: the slot map comes from `CLUSTER SLOTS`, one connection per master.
//! `MOVED` updates the slot's owner, re-sends the command there and refreshes the map;
//! `ASK` re-sends it once after `ASKING`.
//!
//! Resuming: keys are numbered in file order. The checkpoint holds the number of the last
//! key whose every command was acknowledged, and a bound on the keys that may have been
//! sent after it. `--resume` skips the former and restores the keys up to the bound with
//! REPLACE (their copy from the interrupted run may or may not be there), so that each key
//! ends up on the target exactly once. A key counts as acknowledged only when every reply
//! of it came back without an error. The checkpoint also holds digests of the file and of
//! the options that select keys, and `--resume` refuses others.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdb_parser::{Entry, Function, Item, ParserBuilder};
use rdb_writer::convert::{dump_body, ConvertError, ConvertOptions, FunctionPolicy};
use rdb_writer::TargetProfile;
use redis::Value;

use crate::output::AtomicFile;
use crate::resp::{self, NativeOptions};
use crate::Failure;

/// Cluster hash slots.
const SLOTS: usize = 16384;
/// Unflushed bytes per connection before they are written out.
const FLUSH_BYTES: usize = 256 << 10;
/// proto-max-bulk-len when the server does not say (its default).
const DEFAULT_MAX_BULK: u64 = 512 << 20;

// ---------------------------------------------------------------------------------------
// The target URL

/// `redis://[user:pass@]host:port[/db]` or `rediss://...` (TLS).
#[derive(Clone)]
pub struct TargetUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    pub db: u64,
}

impl std::fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl TargetUrl {
    /// Parses a target URL. A URL without a password takes `$RDBKIT_REDIS_PASSWORD`, so
    /// the secret need not appear in a process list.
    pub fn parse(text: &str) -> Result<TargetUrl, String> {
        // `host:port` (as redis-cli -h/-p users write it) means redis://host:port.
        let with_scheme;
        let text = if text.contains("://") {
            text
        } else {
            with_scheme = format!("redis://{text}");
            &with_scheme
        };
        // Never echo `text`: it may hold the password.
        let url = url::Url::parse(text)
            .map_err(|e| format!("--to: not a URL like redis://host:6379/0 ({e})"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(format!("--to: scheme {other:?}: use redis:// or rediss://")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("--to: the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "--to: the user or password is not UTF-8 after %-decoding".to_owned())
        };
        let user = Some(decode(url.username())?).filter(|u| !u.is_empty());
        let password = match url.password() {
            Some(p) => Some(decode(p)?),
            None => std::env::var("RDBKIT_REDIS_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty()),
        };
        if user.is_some() && password.is_none() {
            // Not echoed: `redis://SECRET@host` is a common slip for `redis://:SECRET@host`.
            return Err("--to: the URL names a user but no password; use \
                 redis://USER:PASSWORD@host (or the password in $RDBKIT_REDIS_PASSWORD), or \
                 redis://:PASSWORD@host for the default user. Without a password rdbkit would \
                 connect as the default user, not the one named"
                .to_owned());
        }
        let path = url.path().trim_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            path.parse::<u64>()
                .map_err(|_| format!("--to: the path /{path} is not a db number"))?
        };
        Ok(TargetUrl {
            tls,
            host,
            port: url.port().unwrap_or(6379),
            user,
            password,
            db,
        })
    }
}

/// The URL with the password replaced by `***`: the only form ever printed.
impl std::fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (Some(u), None) => write!(f, "{u}@")?,
            (None, None) => {}
        }
        write!(f, "{}:{}/{}", self.host, self.port, self.db)
    }
}

/// TLS settings for `rediss://`.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM certificates to trust besides the Mozilla roots.
    pub ca: Option<PathBuf>,
    /// Accept any certificate (self-signed test servers only).
    pub insecure: bool,
}

/// What happens when a key already exists on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExists {
    /// Stop with an error naming the key.
    Error,
    /// Leave the target's key alone, and count it.
    Skip,
    /// Overwrite it (RESTORE ... REPLACE).
    Replace,
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub url: TargetUrl,
    pub tls: TlsOptions,
    pub on_exists: OnExists,
    /// Most commands in flight per connection.
    pub window_commands: usize,
    /// Most bytes in flight per connection.
    pub window_bytes: usize,
    pub cluster: bool,
    /// The target's proto-max-bulk-len when CONFIG GET is refused (managed services).
    pub max_bulk: Option<u64>,
    pub checkpoint: Option<PathBuf>,
    /// Write the checkpoint after every this many acknowledged keys.
    pub checkpoint_every: u64,
    pub resume: bool,
    /// Payload encoding, filters, db map and loss policies; its `target` is replaced by
    /// the profile the server's version maps to unless `target_override` is set.
    pub convert: ConvertOptions,
    pub target_override: Option<TargetProfile>,
    pub timeout: Duration,
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RestoreSummary {
    /// `redis 7.0.15`, `valkey 8.1.1`.
    pub server: String,
    /// The profile (RDB version) payloads were built for.
    pub profile: String,
    pub rdb_version: u32,
    pub keys_read: u64,
    /// Keys restored with RESTORE.
    pub restored: u64,
    /// Keys sent as plain commands (their payload exceeded proto-max-bulk-len).
    pub chunked: u64,
    pub skipped_existing: u64,
    pub skipped_expired: u64,
    pub filtered: u64,
    /// Keys the target cannot hold that a flag allowed to leave out.
    pub dropped: u64,
    /// Keys skipped because the checkpoint says they were acknowledged before.
    pub resumed_past: u64,
    pub functions: u64,
    /// Function libraries left out (--functions drop, on a target without functions).
    pub functions_dropped: u64,
    pub commands: u64,
    pub bytes_sent: u64,
    pub seconds: f64,
    /// Cluster redirects followed.
    pub moved: u64,
    pub asked: u64,
}

impl RestoreSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "server": self.server,
            "profile": self.profile,
            "rdb_version": self.rdb_version,
            "keys_read": self.keys_read,
            "restored": self.restored,
            "chunked": self.chunked,
            "skipped_existing": self.skipped_existing,
            "skipped_expired": self.skipped_expired,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "resumed_past": self.resumed_past,
            "functions": self.functions,
            "functions_dropped": self.functions_dropped,
            "commands": self.commands,
            "bytes_sent": self.bytes_sent,
            "seconds": self.seconds,
            "moved": self.moved,
            "asked": self.asked,
        })
    }

    pub fn write_text(&self, out: &mut dyn Write, url: &TargetUrl) -> std::io::Result<()> {
        let rate = if self.seconds > 0.0 {
            self.bytes_sent as f64 / self.seconds / 1e6
        } else {
            0.0
        };
        writeln!(
            out,
            "restored into {url} ({}, payloads for {} / RDB {}): {} keys with RESTORE, {} as \
             plain commands, {} skipped (already there), {} skipped (expired), {} left out by \
             filters, {} dropped; {} functions ({} dropped); {} commands, {} bytes in {:.2}s ({rate:.1} MB/s)",
            self.server,
            self.profile,
            self.rdb_version,
            self.restored,
            self.chunked,
            self.skipped_existing,
            self.skipped_expired,
            self.filtered,
            self.dropped,
            self.functions,
            self.functions_dropped,
            self.commands,
            self.bytes_sent,
            self.seconds
        )?;
        if self.resumed_past > 0 {
            writeln!(
                out,
                "resumed: {} keys acknowledged by the earlier run were not sent again",
                self.resumed_past
            )?;
        }
        if self.moved + self.asked > 0 {
            writeln!(
                out,
                "cluster redirects followed: {} MOVED, {} ASK",
                self.moved, self.asked
            )?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Connections

enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// Accepts any server certificate (`--tls-insecure`), still checking the handshake's
/// signatures so that the connection is at least encrypted to whoever answered.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(o: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, Failure> {
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Usage(format!("TLS: {e}")))?;
    let config = if o.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &o.ca {
            let bad = |e: String| Failure::Usage(format!("--tls-ca {}: {e}", path.display()));
            let mut added = 0;
            for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
            {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad("no PEM certificate in the file".into()));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The most commands and bytes in flight on one connection.
#[derive(Debug, Clone, Copy)]
struct Window {
    commands: usize,
    bytes: usize,
}

impl Window {
    /// Whether a command of `next` bytes must wait for replies first.
    fn full(&self, inflight: usize, inflight_bytes: usize, next: usize) -> bool {
        inflight >= self.commands || (inflight > 0 && inflight_bytes + next > self.bytes)
    }

    /// Whether to read another reply before sending `next`, once the window was full:
    /// down to half the window, and always until `next` fits in it (or nothing is in
    /// flight: a command larger than the window goes alone).
    fn must_read(&self, inflight: usize, inflight_bytes: usize, next: usize) -> bool {
        inflight > 0
            && (inflight > self.commands / 2
                || inflight_bytes > self.bytes / 2
                || inflight_bytes + next > self.bytes)
    }
}

/// A reply we wait for, in send order.
struct Pending {
    /// The key (file-order number) the command belongs to.
    key: Option<u64>,
    bytes: usize,
    /// The command, kept in cluster mode to re-send it after MOVED / ASK.
    command: Option<Vec<u8>>,
    kind: Kind,
    /// How often this command was redirected or asked to try again: a cluster that keeps
    /// bouncing a key must end the run, not loop forever.
    redirects: u32,
}

/// Redirects (MOVED / ASK / TRYAGAIN / LOADING) one command may take before the run stops.
const MAX_REDIRECTS: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Restore,
    Native,
    /// SELECT of this database.
    Select(u64),
    Asking,
    Function,
}

struct Conn {
    /// host:port, for messages.
    addr: String,
    io: Transport,
    parser: redis::Parser,
    out: Vec<u8>,
    inflight: VecDeque<Pending>,
    inflight_bytes: usize,
    db: Option<u64>,
}

/// Connects to the first of `socks` that answers: a name often resolves to an IPv6
/// address first that the network does not route, and the IPv4 one works.
fn connect_any(
    addr: &str,
    socks: &[std::net::SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, Failure> {
    let mut errors = Vec::new();
    for sock in socks {
        match TcpStream::connect_timeout(sock, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => errors.push(format!("{sock}: {e}")),
        }
    }
    if errors.is_empty() {
        return Err(io_err(addr, "cannot resolve", "no address"));
    }
    Err(io_err(addr, "cannot connect", errors.join("; ")))
}

fn io_err(addr: &str, what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Io(std::io::Error::other(format!("{addr}: {what}: {e}")))
}

impl Conn {
    fn open(
        host: &str,
        port: u16,
        url: &TargetUrl,
        tls: Option<&Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Conn, Failure> {
        let addr = format!("{host}:{port}");
        let socks: Vec<std::net::SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| io_err(&addr, "cannot resolve", e))?
            .collect();
        let tcp = connect_any(&addr, &socks, timeout)?;
        tcp.set_read_timeout(Some(timeout))
            .and_then(|()| tcp.set_write_timeout(Some(timeout)))
            .and_then(|()| tcp.set_nodelay(true))
            .map_err(|e| io_err(&addr, "socket", e))?;
        let io = match tls {
            None => Transport::Plain(tcp),
            Some(config) => {
                // SNI and verification use the URL's host name when a cluster node is
                // announced by IP (managed services' certificates name the endpoint).
                let name_host = if host.parse::<std::net::IpAddr>().is_ok() {
                    url.host.as_str()
                } else {
                    host
                };
                let name = rustls_pki_types::ServerName::try_from(name_host.to_owned())
                    .map_err(|e| io_err(&addr, "TLS server name", e))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| io_err(&addr, "TLS", e))?;
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                // Handshake now, so a certificate problem is reported as one.
                while stream.conn.is_handshaking() {
                    stream
                        .conn
                        .complete_io(&mut stream.sock)
                        .map_err(|e| io_err(&addr, "TLS handshake", e))?;
                }
                Transport::Tls(Box::new(stream))
            }
        };
        let mut c = Conn {
            addr,
            io,
            parser: redis::Parser::new(),
            out: Vec::new(),
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            db: None,
        };
        if let Some(pass) = &url.password {
            let mut cmd = resp::Cmd::new("AUTH");
            if let Some(user) = &url.user {
                cmd.arg(user.as_bytes());
            }
            cmd.arg(pass.as_bytes());
            if let Some(e) = server_error(&c.call(&cmd.finish())?) {
                return Err(Failure::Refused(format!(
                    "{}: AUTH refused: {} (the password is not shown)",
                    c.addr,
                    error_text(&e)
                )));
            }
        }
        Ok(c)
    }

    fn flush(&mut self) -> Result<(), Failure> {
        if !self.out.is_empty() {
            self.io
                .write_all(&self.out)
                .and_then(|()| self.io.flush())
                .map_err(|e| io_err(&self.addr, "write", e))?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes `bytes` now, after whatever `out` holds.
    fn write_now(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.flush()?;
        self.io
            .write_all(bytes)
            .and_then(|()| self.io.flush())
            .map_err(|e| io_err(&self.addr, "write", e))
    }

    fn read_reply(&mut self) -> Result<Value, Failure> {
        self.flush()?;
        self.parser
            .parse_value(&mut self.io)
            .map_err(|e| io_err(&self.addr, "reading a reply", e))
    }

    /// One command, waited for; only with nothing else in flight.
    fn call(&mut self, command: &[u8]) -> Result<Value, Failure> {
        self.out.extend_from_slice(command);
        self.read_reply()
    }
}

/// (code, details) of an error reply. (The crate does not export its error type's name.)
fn server_error(v: &Value) -> Option<(String, String)> {
    match v {
        Value::ServerError(e) => Some((
            e.code().to_owned(),
            e.details().unwrap_or_default().to_owned(),
        )),
        _ => None,
    }
}

fn error_text((code, details): &(String, String)) -> String {
    if details.is_empty() {
        code.clone()
    } else {
        format!("{code} {details}")
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

/// The profile for what `INFO server` says.
pub fn profile_for_server(info: &str) -> Result<(&'static TargetProfile, String), String> {
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
            .map(|v| v.trim().to_owned())
    };
    let version = |v: &str| -> (u32, u32) {
        let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        (it.next().unwrap_or(0), it.next().unwrap_or(0))
    };
    let valkey = field("valkey_version").or_else(|| {
        (field("server_name").as_deref() == Some("valkey"))
            .then(|| field("redis_version"))
            .flatten()
    });
    let (name, shown) = if let Some(v) = valkey {
        let name = match version(&v) {
            (9.., _) => "valkey-9.0",
            (8, 1..) => "valkey-8.1",
            (8, _) => "valkey-8.0",
            _ => "valkey-7.2",
        };
        (name, format!("valkey {v}"))
    } else {
        let v = field("redis_version").ok_or("INFO server has no redis_version")?;
        let name = match version(&v) {
            (8.., _) => "redis-8.0",
            (7, 4..) => "redis-7.4",
            (7, 2..) => "redis-7.2",
            (7, _) => "redis-7.0",
            (6, 2..) => "redis-6.2",
            (6, _) => "redis-6.0",
            (5, _) => "redis-5.0",
            _ => {
                return Err(format!(
                    "the target runs Redis {v}; RESTORE with ABSTTL needs Redis 5.0 or newer"
                ))
            }
        };
        (name, format!("redis {v}"))
    };
    let profile = TargetProfile::named(name).ok_or_else(|| format!("no profile {name}"))?;
    Ok((profile, shown))
}

// ---------------------------------------------------------------------------------------
// The checkpoint

/// What `--checkpoint FILE` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkpoint {
    /// The snapshot's size, to refuse a checkpoint of another file.
    pub source_bytes: u64,
    /// [`source_digest`] of the snapshot: another file of the same size is refused too.
    pub source_digest: u64,
    /// [`selection_digest`] of the options that decide which keys go where: a resume
    /// with other filters, db map or target would skip keys the first run never sent.
    pub selection_digest: u64,
    /// Every key numbered up to this one (file order, from 0) was acknowledged.
    pub last_acked: Option<u64>,
    /// No key numbered above this was sent.
    pub reserved: Option<u64>,
    pub complete: bool,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Checkpoint, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a checkpoint ({e})", path.display()))?;
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let required =
            |k: &str| n(k).ok_or_else(|| format!("{}: not a checkpoint (no {k})", path.display()));
        Ok(Checkpoint {
            source_bytes: required("source_bytes")?,
            source_digest: required("source_digest")?,
            selection_digest: required("selection_digest")?,
            last_acked: n("last_acked"),
            reserved: n("reserved"),
            complete: v.get("complete").and_then(serde_json::Value::as_bool) == Some(true),
        })
    }

    fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = AtomicFile::create(path)?;
        let v = serde_json::json!({
            "source_bytes": self.source_bytes,
            "source_digest": self.source_digest,
            "selection_digest": self.selection_digest,
            "last_acked": self.last_acked,
            "reserved": self.reserved,
            "complete": self.complete,
        });
        writeln!(f, "{v}")?;
        f.commit()
    }
}

/// xxh3 of the snapshot's size, its first and its last MiB (the last 8 bytes are its
/// CRC64 when the server computed one): cheap on a 50 GB file, and a different file of
/// the same size differs in its header, AUX fields or checksum.
pub fn source_digest(data: &[u8]) -> u64 {
    const EDGE: usize = 1 << 20;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(data.len() as u64).to_le_bytes());
    h.update(data.get(..EDGE).unwrap_or(data));
    h.update(data.get(data.len().saturating_sub(EDGE)..).unwrap_or(data));
    h.digest()
}

/// xxh3 of the options that decide which key is sent and into which database: the
/// filters (without their "now"), the db map, the target db and, outside a cluster (where
/// any node may seed the map), the target host and port.
pub fn selection_digest(o: &RestoreOptions) -> u64 {
    fn sorted<T: std::fmt::Debug + Ord>(set: &Option<std::collections::HashSet<T>>) -> String {
        let mut v: Vec<&T> = set.iter().flatten().collect();
        v.sort();
        format!("{v:?}")
    }
    let f = &o.convert.filter;
    let mut modules: Vec<&String> = f.exclude_modules.iter().collect();
    modules.sort();
    let target = if o.cluster {
        format!("cluster db {}", o.url.db)
    } else {
        format!("{}:{}/{}", o.url.host, o.url.port, o.url.db)
    };
    let text = format!(
        "include {:?}\nexclude {:?}\ndbs {}\ntypes {}\nencodings {}\ndrop_expired {}\n\
         ttl {:?} {:?} {:?}\nbytes {:?} {:?}\nelements {:?} {:?}\nmodules {} {modules:?}\n\
         db_map {:?}\ntarget {target}",
        f.include,
        f.exclude,
        sorted(&f.dbs),
        sorted(&f.types),
        sorted(&f.encodings),
        f.drop_expired,
        f.ttl,
        f.min_ttl_ms,
        f.max_ttl_ms,
        f.min_bytes,
        f.max_bytes,
        f.min_elements,
        f.max_elements,
        sorted(&f.include_modules),
        o.convert.db_map,
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

// ---------------------------------------------------------------------------------------
// The restore

/// A key's outcome, decided on any core.
enum Prepared<'d> {
    NotKey,
    Filtered,
    Expired,
    Dropped,
    /// The DUMP payload; a value the target loads as stored is borrowed from the input.
    Payload(rdb_writer::convert::DumpBody<'d>),
}

struct Run<'o> {
    o: &'o RestoreOptions,
    tls: Option<Arc<rustls::ClientConfig>>,
    conns: Vec<Conn>,
    by_addr: HashMap<String, usize>,
    /// Cluster: slot -> connection.
    slots: Vec<usize>,
    map_stale: bool,
    /// Commands to send again (after MOVED / ASK / TRYAGAIN): target, command, pending.
    retries: VecDeque<(usize, Pending)>,
    /// Keys with commands not yet acknowledged: number -> (commands, key name, db).
    outstanding: BTreeMap<u64, (u32, Vec<u8>, u64)>,
    /// The last key handled (sent, skipped or filtered).
    last_issued: Option<u64>,
    checkpoint: Checkpoint,
    written_acked: Option<u64>,
    max_bulk: u64,
    native: NativeOptions,
    /// `--resume`: the interrupted run sent the function libraries already.
    resuming: bool,
    s: RestoreSummary,
}

fn show_key(key: &[u8]) -> String {
    let cut = key.get(..64).unwrap_or(key);
    let mut s = String::new();
    let _ = rdb_parser::error::write_escaped(&mut s, cut);
    if key.len() > 64 {
        s.push_str("...");
    }
    s
}

/// Restores the snapshot `data` as `o` says. `progress` gets the input offset of each key.
pub fn restore(
    data: &[u8],
    parser: &ParserBuilder,
    o: &RestoreOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<RestoreSummary, Failure> {
    let started = Instant::now();
    let tls = if o.url.tls {
        Some(tls_config(&o.tls)?)
    } else {
        None
    };
    let first = Conn::open(&o.url.host, o.url.port, &o.url, tls.as_ref(), o.timeout)?;
    let mut run = Run {
        o,
        tls,
        conns: vec![first],
        by_addr: HashMap::new(),
        slots: Vec::new(),
        map_stale: false,
        retries: VecDeque::new(),
        outstanding: BTreeMap::new(),
        last_issued: None,
        checkpoint: Checkpoint {
            source_bytes: data.len() as u64,
            source_digest: source_digest(data),
            selection_digest: selection_digest(o),
            last_acked: None,
            reserved: None,
            complete: false,
        },
        written_acked: None,
        max_bulk: DEFAULT_MAX_BULK,
        native: NativeOptions::default(),
        resuming: o.resume,
        s: RestoreSummary::default(),
    };
    let addr0 = run
        .conns
        .first()
        .map(|c| c.addr.clone())
        .unwrap_or_default();
    run.by_addr.insert(addr0, 0);
    let mut copts = o.convert.clone();
    run.probe(&mut copts)?;
    let resume_from = if o.resume {
        let path = o
            .checkpoint
            .as_deref()
            .ok_or_else(|| Failure::Usage("--resume needs --checkpoint FILE".into()))?;
        let c = Checkpoint::read(path).map_err(Failure::Usage)?;
        if c.source_bytes != data.len() as u64 || c.source_digest != run.checkpoint.source_digest {
            return Err(Failure::Usage(format!(
                "{}: the checkpoint is of another file ({} bytes, digest {:016x}; this one has \
                 {} bytes, digest {:016x}); --resume continues the same snapshot only",
                path.display(),
                c.source_bytes,
                c.source_digest,
                data.len(),
                run.checkpoint.source_digest
            )));
        }
        if c.selection_digest != run.checkpoint.selection_digest {
            return Err(Failure::Usage(format!(
                "{}: the checkpoint was made with other filters, --db-map, target db or \
                 target server; keys the first run left out would never be sent. Resume with \
                 the first run's options, or start again without --resume",
                path.display()
            )));
        }
        Some(c)
    } else {
        None
    };
    if o.cluster {
        run.load_slot_map()?;
    }
    let result = run.send_all(data, parser, &copts, resume_from, progress);
    // Whatever happened, record how far the target acknowledged.
    let finish = result.and_then(|()| run.drain_all());
    let acked = run.acked();
    run.checkpoint.last_acked = acked;
    run.checkpoint.complete = finish.is_ok();
    if let Some(path) = &o.checkpoint {
        let written = run.checkpoint.write(path);
        if finish.is_ok() {
            written.map_err(|e| io_err(&path.display().to_string(), "checkpoint", e))?;
        }
    }
    finish?;
    run.s.seconds = started.elapsed().as_secs_f64();
    Ok(run.s)
}

impl<'o> Run<'o> {
    /// Reads the server's version and limits; sets the payload profile.
    fn probe(&mut self, copts: &mut ConvertOptions) -> Result<(), Failure> {
        let o = self.o;
        let c = self.conn(0)?;
        let info = c.call(&resp::Cmd::new("INFO").arg(b"server").finish_ref())?;
        if let Some(e) = server_error(&info) {
            return Err(Failure::Refused(format!(
                "{}: INFO server: {}",
                c.addr,
                error_text(&e)
            )));
        }
        let info = text(&info).unwrap_or_default();
        let reply = c.call(
            &resp::Cmd::new("CONFIG")
                .arg(b"GET")
                .arg(b"proto-max-bulk-len")
                .finish_ref(),
        )?;
        let (profile, shown) = profile_for_server(&info).map_err(Failure::Refused)?;
        copts.target = o.target_override.clone().unwrap_or_else(|| profile.clone());
        self.s.server = shown;
        self.s.profile = copts.target.name.to_owned();
        self.s.rdb_version = copts.target.version.number;
        let from_config = match &reply {
            Value::Array(items) => items.get(1).and_then(int),
            Value::Map(pairs) => pairs.first().and_then(|(_, v)| int(v)),
            _ => None,
        };
        self.max_bulk = match (from_config, o.max_bulk) {
            (Some(n), Some(flag)) => (n as u64).min(flag),
            (Some(n), None) => n as u64,
            (None, Some(flag)) => flag,
            (None, None) => DEFAULT_MAX_BULK,
        };
        self.native = NativeOptions {
            batch_bytes: usize::try_from(self.max_bulk / 2)
                .unwrap_or(usize::MAX)
                .clamp(1, 1 << 20),
            field_ttl_policy: copts.field_ttls,
            now_ms: copts.now_ms,
            ..NativeOptions::for_target(&copts.target)
        };
        Ok(())
    }

    fn conn(&mut self, i: usize) -> Result<&mut Conn, Failure> {
        self.conns
            .get_mut(i)
            .ok_or_else(|| Failure::Io(std::io::Error::other(format!("no connection {i}"))))
    }

    /// The connection to `host:port`, opened on first use.
    fn conn_to(&mut self, host: &str, port: u16) -> Result<usize, Failure> {
        let host = if host.is_empty() {
            self.o.url.host.clone()
        } else {
            host.to_owned()
        };
        let addr = format!("{host}:{port}");
        if let Some(&i) = self.by_addr.get(&addr) {
            return Ok(i);
        }
        let c = Conn::open(&host, port, &self.o.url, self.tls.as_ref(), self.o.timeout)?;
        self.conns.push(c);
        let i = self.conns.len() - 1;
        self.by_addr.insert(addr, i);
        Ok(i)
    }

    /// `CLUSTER SLOTS` from the first connection; waits for nothing in flight there.
    fn load_slot_map(&mut self) -> Result<(), Failure> {
        self.drain(0)?;
        let c = self.conn(0)?;
        let addr = c.addr.clone();
        let reply = c.call(&resp::Cmd::new("CLUSTER").arg(b"SLOTS").finish_ref())?;
        let ranges = match reply {
            Value::Array(r) => r,
            e @ Value::ServerError(_) => {
                return Err(Failure::Refused(format!(
                    "{addr}: CLUSTER SLOTS: {} (is the target a cluster? without --cluster \
                     rdbkit restores into one server)",
                    server_error(&e).map(|e| error_text(&e)).unwrap_or_default()
                )))
            }
            other => {
                return Err(Failure::Refused(format!(
                    "{addr}: CLUSTER SLOTS: unexpected reply {other:?}"
                )))
            }
        };
        let mut slots = vec![usize::MAX; SLOTS];
        for r in &ranges {
            let Value::Array(parts) = r else { continue };
            let (Some(a), Some(b), Some(Value::Array(node))) = (
                parts.first().and_then(int),
                parts.get(1).and_then(int),
                parts.get(2),
            ) else {
                continue;
            };
            let host = node.first().and_then(text).unwrap_or_default();
            let port = node.get(1).and_then(int).unwrap_or(0);
            let port = u16::try_from(port).map_err(|_| {
                Failure::Refused(format!("{addr}: CLUSTER SLOTS names port {port}"))
            })?;
            let i = self.conn_to(&host, port)?;
            for s in a.max(0)..=b.min(SLOTS as i64 - 1) {
                if let Some(slot) = slots.get_mut(s as usize) {
                    *slot = i;
                }
            }
        }
        if let Some(s) = slots.iter().position(|&i| i == usize::MAX) {
            return Err(Failure::Refused(format!(
                "{addr}: CLUSTER SLOTS: slot {s} has no master; the cluster is not complete"
            )));
        }
        self.slots = slots;
        self.map_stale = false;
        Ok(())
    }

    fn route(&self, key: &[u8]) -> usize {
        if self.o.cluster {
            let slot = rdb_writer::slot::key_slot(key) as usize;
            self.slots.get(slot).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// Every key up to the returned number is acknowledged.
    fn acked(&self) -> Option<u64> {
        match self.outstanding.keys().next() {
            Some(&first) => first.checked_sub(1),
            None => self.last_issued,
        }
    }

    fn send_all<'d>(
        &mut self,
        data: &'d [u8],
        parser: &ParserBuilder,
        copts: &ConvertOptions,
        resume: Option<Checkpoint>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Failure> {
        let source = parser.parse(data)?.version();
        let now = copts.now_ms;
        let work =
            |s: rdb_writer::pipeline::Spanned<'d>| -> Result<(Item<'d>, Prepared<'d>), Failure> {
                let prepared = match &s.item {
                    Item::Key(e) => {
                        if !copts.filter.keeps(e) {
                            Prepared::Filtered
                        } else if e.expire_ms.is_some_and(|t| t <= now) {
                            Prepared::Expired
                        } else {
                            match dump_body(e, source, copts) {
                                Ok(Some(p)) => Prepared::Payload(p),
                                Ok(None) => Prepared::Dropped,
                                Err(ConvertError::Parse(p)) => return Err(Failure::Data(p)),
                                Err(ConvertError::Io(io)) => return Err(Failure::Io(io)),
                                Err(other) => return Err(crate::convert::failure(other)),
                            }
                        }
                    }
                    _ => Prepared::NotKey,
                };
                Ok((s.item, prepared))
            };
        let mut index = 0u64;
        let last_acked = resume.and_then(|c| c.last_acked);
        let reserved = resume.and_then(|c| c.reserved.or(c.last_acked));
        let done = resume.is_some_and(|c| c.complete);
        let sink = |(item, prepared): (Item<'d>, Prepared<'d>)| -> Result<(), Failure> {
            match item {
                Item::Key(entry) => {
                    let i = index;
                    index += 1;
                    self.s.keys_read += 1;
                    progress(entry.offset);
                    if done || last_acked.is_some_and(|a| i <= a) {
                        self.s.resumed_past += 1;
                        self.last_issued = Some(i);
                        return Ok(());
                    }
                    let uncertain = reserved.is_some_and(|r| i <= r);
                    self.key(i, &entry, prepared, copts, uncertain)
                }
                Item::Function(f) if !done => self.function(&f, copts),
                _ => Ok(()),
            }
        };
        rdb_writer::pipeline::ordered(parser.parse(data)?, work, sink)
    }

    fn function(&mut self, f: &Function<'_>, copts: &ConvertOptions) -> Result<(), Failure> {
        let code = match f {
            Function::Library { code } => code,
            Function::PreGa { name, .. } => {
                return Err(Failure::Refused(format!(
                    "function \"{}\" is in the Redis 7.0 release-candidate form, which no \
                     released server loads",
                    show_key(name)
                )))
            }
        };
        if !copts.target.functions() {
            if copts.functions == FunctionPolicy::Drop {
                self.s.functions_dropped += 1;
                return Ok(());
            }
            return Err(Failure::Refused(format!(
                "the snapshot holds function libraries and {} has no functions; \
                 --functions drop leaves them out",
                self.s.server
            )));
        }
        let mut cmd = resp::Cmd::new("FUNCTION");
        cmd.arg(b"LOAD");
        if self.o.on_exists == OnExists::Replace {
            cmd.arg(b"REPLACE");
        }
        cmd.arg(code);
        let cmd = cmd.finish();
        // Every master holds every library.
        let targets: Vec<usize> = if self.o.cluster {
            let mut t: Vec<usize> = self.slots.clone();
            t.sort_unstable();
            t.dedup();
            t
        } else {
            vec![0]
        };
        for t in targets {
            self.enqueue(t, cmd.clone(), None, Kind::Function)?;
        }
        self.s.functions += 1;
        Ok(())
    }

    fn key(
        &mut self,
        i: u64,
        entry: &Entry<'_>,
        prepared: Prepared<'_>,
        copts: &ConvertOptions,
        uncertain: bool,
    ) -> Result<(), Failure> {
        self.last_issued = Some(i);
        let payload = match prepared {
            Prepared::NotKey => return Ok(()),
            Prepared::Filtered => {
                self.s.filtered += 1;
                return Ok(());
            }
            Prepared::Expired => {
                self.s.skipped_expired += 1;
                return Ok(());
            }
            Prepared::Dropped => {
                self.s.dropped += 1;
                return Ok(());
            }
            Prepared::Payload(p) => p,
        };
        // Hold the key open while its commands are queued, and before `reserve`, which
        // writes the checkpoint: key `i` must not count as acknowledged before it is even
        // sent (nor when it is refused below).
        self.outstanding
            .insert(i, (1, entry.key.to_vec(), entry.db));
        let mapped = copts.db_map.get(&entry.db).copied().unwrap_or(entry.db);
        let db = if mapped == 0 { self.o.url.db } else { mapped };
        if self.o.cluster && db != 0 {
            return Err(Failure::Refused(format!(
                "key \"{}\" is in db {} and a cluster has db 0 only; --db-map {}:0 moves \
                 the db, --db 0 restores db 0 alone",
                show_key(&entry.key),
                entry.db,
                entry.db
            )));
        }
        self.reserve(i)?;
        let replace = self.o.on_exists == OnExists::Replace || uncertain;
        let target = self.route(&entry.key);
        if payload.len() as u64 <= self.max_bulk {
            let mut cmd = Vec::with_capacity(payload.len() + entry.key.len() + 96);
            resp::restore_head(&mut cmd, entry, payload.len(), replace);
            cmd.push(payload.type_id);
            cmd.extend_from_slice(&payload.value);
            cmd.extend_from_slice(&payload.trailer);
            resp::restore_tail(&mut cmd, entry, replace);
            drop(payload);
            self.select(target, db)?;
            self.enqueue(target, cmd, Some(i), Kind::Restore)?;
            self.s.restored += 1;
        } else {
            self.chunked(i, entry, target, db, replace)?;
        }
        self.release(i);
        self.maybe_checkpoint()
    }

    /// The value as plain commands, because its payload exceeds proto-max-bulk-len.
    fn chunked(
        &mut self,
        i: u64,
        entry: &Entry<'_>,
        target: usize,
        db: u64,
        replace: bool,
    ) -> Result<(), Failure> {
        self.select(target, db)?;
        if !replace {
            // RESTORE refuses an existing key by itself; plain commands would add to it.
            self.drain(target)?;
            let c = self.conn(target)?;
            let reply = c.call(&resp::Cmd::new("EXISTS").arg(&entry.key).finish_ref())?;
            // Anything but a count (NOPERM, MOVED...) leaves the question open, and
            // plain commands would add to an existing key: stop.
            let Some(n) = int(&reply).filter(|_| server_error(&reply).is_none()) else {
                let why = server_error(&reply)
                    .map(|e| error_text(&e))
                    .unwrap_or_else(|| format!("{reply:?}"));
                return Err(Failure::Refused(format!(
                    "{}: key \"{}\" (db {}) goes as plain commands (its payload exceeds \
                     proto-max-bulk-len), and EXISTS, which tells whether it is there \
                     already, answered: {why}; --replace rebuilds the key without asking",
                    c.addr,
                    show_key(&entry.key),
                    entry.db
                )));
            };
            if n > 0 {
                return self.exists(entry.db, &entry.key);
            }
        }
        let mut native = self.native;
        native.delete_first = replace;
        let mut failed = None;
        let mut emit = |cmd: Vec<u8>| {
            if failed.is_none() {
                if let Err(e) = self.enqueue(target, cmd, Some(i), Kind::Native) {
                    failed = Some(e);
                }
            }
        };
        let result = resp::native_commands(entry, &native, &mut emit);
        if let Some(e) = failed {
            return Err(e);
        }
        match result {
            Ok(_) => {
                self.s.chunked += 1;
                Ok(())
            }
            Err(resp::NativeError::Parse(p)) => Err(Failure::Data(p.in_key(entry.db, &entry.key))),
            Err(resp::NativeError::Refused(why)) => Err(Failure::Refused(format!(
                "key \"{}\" (db {}): {why}",
                show_key(&entry.key),
                entry.db
            ))),
            Err(resp::NativeError::Unsupported(why)) => Err(Failure::Refused(format!(
                "key \"{}\" (db {}): its payload ({} bytes) exceeds the target's \
                 proto-max-bulk-len ({}), and {why}",
                show_key(&entry.key),
                entry.db,
                entry.raw_value.len(),
                self.max_bulk
            ))),
        }
    }

    /// A key that exists on the target, under the --on-exists policy.
    fn exists(&mut self, db: u64, key: &[u8]) -> Result<(), Failure> {
        match self.o.on_exists {
            OnExists::Skip => {
                self.s.skipped_existing += 1;
                Ok(())
            }
            _ => Err(Failure::Refused(format!(
                "key \"{}\" (db {db}) already exists on the target; --on-exists skip leaves \
                 it, --on-exists replace (or --replace) overwrites it",
                show_key(key)
            ))),
        }
    }

    fn select(&mut self, target: usize, db: u64) -> Result<(), Failure> {
        if self.o.cluster {
            return Ok(());
        }
        let c = self.conn(target)?;
        if c.db == Some(db) {
            return Ok(());
        }
        c.db = Some(db);
        self.enqueue(target, resp::select(db), None, Kind::Select(db))?;
        // Wait for it: after a refused SELECT the next keys would land in the previous
        // database. A database changes a few times per file, so the stall is negligible.
        self.drain(target)
    }

    /// Before key `i` is sent, the checkpoint must promise no key beyond what it reserves.
    fn reserve(&mut self, i: u64) -> Result<(), Failure> {
        let Some(path) = &self.o.checkpoint else {
            return Ok(());
        };
        if self.checkpoint.reserved.is_some_and(|r| i <= r) {
            return Ok(());
        }
        self.checkpoint.last_acked = self.acked();
        self.checkpoint.reserved =
            Some(i + self.o.checkpoint_every.max(1) + self.o.window_commands as u64);
        self.written_acked = self.checkpoint.last_acked;
        self.checkpoint
            .write(path)
            .map_err(|e| io_err(&path.display().to_string(), "checkpoint", e))
    }

    fn maybe_checkpoint(&mut self) -> Result<(), Failure> {
        let Some(path) = &self.o.checkpoint else {
            return Ok(());
        };
        let acked = self.acked();
        let since = match (acked, self.written_acked) {
            (Some(a), Some(w)) => a.saturating_sub(w),
            (Some(a), None) => a + 1,
            _ => 0,
        };
        if since >= self.o.checkpoint_every.max(1) {
            self.checkpoint.last_acked = acked;
            self.written_acked = acked;
            self.checkpoint
                .write(path)
                .map_err(|e| io_err(&path.display().to_string(), "checkpoint", e))?;
        }
        Ok(())
    }

    fn release(&mut self, i: u64) {
        if let Some(entry) = self.outstanding.get_mut(&i) {
            entry.0 -= 1;
            if entry.0 == 0 {
                self.outstanding.remove(&i);
            }
        }
    }

    /// Queues a command on connection `target`, first reading replies while its window is
    /// full.
    fn enqueue(
        &mut self,
        target: usize,
        cmd: Vec<u8>,
        key: Option<u64>,
        kind: Kind,
    ) -> Result<(), Failure> {
        if let Some(k) = key {
            if let Some(e) = self.outstanding.get_mut(&k) {
                e.0 += 1;
            }
        }
        self.push(
            target,
            Pending {
                key,
                bytes: cmd.len(),
                command: Some(cmd),
                kind,
                redirects: 0,
            },
        )?;
        self.run_retries()
    }

    /// Sends a pending command (its `command` moved into the output buffer).
    fn push(&mut self, target: usize, mut p: Pending) -> Result<(), Failure> {
        let window = Window {
            commands: self.o.window_commands.max(1),
            bytes: self.o.window_bytes.max(1),
        };
        let c = self.conn(target)?;
        if window.full(c.inflight.len(), c.inflight_bytes, p.bytes) {
            // Read down to half the window, so that writes and reads go in batches
            // rather than one command per system call.
            loop {
                let c = self.conn(target)?;
                if !window.must_read(c.inflight.len(), c.inflight_bytes, p.bytes) {
                    break;
                }
                self.read_one(target)?;
            }
        }
        let cluster = self.o.cluster;
        let c = self.conn(target)?;
        let cmd = p.command.take().unwrap_or_default();
        if cmd.len() >= FLUSH_BYTES {
            // A large command (a big RESTORE payload) goes out from its own buffer: a copy
            // into `out` would cost its size again, and `out` would keep that capacity.
            c.flush()?;
            c.write_now(&cmd)?;
        } else {
            c.out.extend_from_slice(&cmd);
        }
        if cluster {
            p.command = Some(cmd);
        }
        c.inflight_bytes += p.bytes;
        let bytes = p.bytes as u64;
        c.inflight.push_back(p);
        if c.out.len() >= FLUSH_BYTES {
            c.flush()?;
        }
        self.s.commands += 1;
        self.s.bytes_sent += bytes;
        Ok(())
    }

    fn run_retries(&mut self) -> Result<(), Failure> {
        while let Some((target, p)) = self.retries.pop_front() {
            self.push(target, p)?;
        }
        if self.map_stale && self.o.cluster && self.retries.is_empty() {
            // Refresh after the redirected commands are on their way.
            self.drain_all_but_retries()?;
            self.load_slot_map()?;
        }
        Ok(())
    }

    fn drain_all_but_retries(&mut self) -> Result<(), Failure> {
        for i in 0..self.conns.len() {
            self.drain(i)?;
        }
        Ok(())
    }

    /// Reads every reply of connection `i`.
    fn drain(&mut self, i: usize) -> Result<(), Failure> {
        while !self.conn(i)?.inflight.is_empty() {
            self.read_one(i)?;
        }
        Ok(())
    }

    fn drain_all(&mut self) -> Result<(), Failure> {
        loop {
            self.run_retries()?;
            let mut busy = false;
            for i in 0..self.conns.len() {
                if !self.conn(i)?.inflight.is_empty() {
                    busy = true;
                    self.drain(i)?;
                }
            }
            if !busy && self.retries.is_empty() {
                return Ok(());
            }
        }
    }

    /// Reads one reply on connection `i` and acts on it.
    fn read_one(&mut self, i: usize) -> Result<(), Failure> {
        let c = self.conn(i)?;
        let reply = c.read_reply()?;
        let addr = c.addr.clone();
        let Some(p) = c.inflight.pop_front() else {
            return Err(io_err(&addr, "protocol", "a reply to no command"));
        };
        c.inflight_bytes -= p.bytes;
        let Some(err) = server_error(&reply) else {
            if let Some(k) = p.key {
                self.release(k);
            }
            return Ok(());
        };
        let (code, details) = err.clone();
        let mut p = p;
        if matches!(code.as_str(), "MOVED" | "ASK" | "TRYAGAIN" | "LOADING") {
            p.redirects += 1;
            if p.redirects > MAX_REDIRECTS {
                let what = p
                    .key
                    .and_then(|k| self.outstanding.get(&k))
                    .map(|(_, name, db)| format!("key \"{}\" (db {db})", show_key(name)))
                    .unwrap_or_else(|| format!("a {:?} command", p.kind));
                return Err(Failure::Io(std::io::Error::other(format!(
                    "{addr}: {what} was redirected {MAX_REDIRECTS} times (last: {code} {details}); \
                     is the cluster resharding or failing over? Re-run with --resume once it is stable"
                ))));
            }
        }
        let key_name = p
            .key
            .and_then(|k| self.outstanding.get(&k))
            .map(|(_, name, db)| (name.clone(), *db));
        match (code.as_str(), p.kind) {
            ("BUSYKEY", _) => {
                let (name, db) = key_name.unwrap_or_default();
                self.s.restored = self.s.restored.saturating_sub(1);
                // Acknowledged only when skipped: a refused key stays unacknowledged, so
                // that the checkpoint does not move past it.
                self.exists(db, &name)?;
                if let Some(k) = p.key {
                    self.release(k);
                }
                Ok(())
            }
            ("MOVED" | "ASK", _) if self.o.cluster => {
                // "<slot> <host>:<port>"
                let mut parts = details.split_whitespace();
                let slot = parts.next().and_then(|s| s.parse::<usize>().ok());
                let to = parts.next().and_then(|a| {
                    let (h, port) = a.rsplit_once(':')?;
                    Some((h.to_owned(), port.parse::<u16>().ok()?))
                });
                let (Some(slot), Some((host, port))) = (slot, to) else {
                    return Err(io_err(&addr, "cluster", format!("{code} {details}")));
                };
                let t = self.conn_to(&host, port)?;
                if code == "MOVED" {
                    self.s.moved += 1;
                    if let Some(s) = self.slots.get_mut(slot) {
                        *s = t;
                    }
                    self.map_stale = true;
                } else {
                    self.s.asked += 1;
                    let asking = resp::Cmd::new("ASKING").finish();
                    self.retries.push_back((
                        t,
                        Pending {
                            key: None,
                            bytes: asking.len(),
                            command: Some(asking),
                            kind: Kind::Asking,
                            redirects: 0,
                        },
                    ));
                }
                self.retries.push_back((t, p));
                Ok(())
            }
            ("TRYAGAIN" | "LOADING", _) if p.command.is_some() => {
                std::thread::sleep(Duration::from_millis(100));
                self.retries.push_back((i, p));
                Ok(())
            }
            // A resumed run sends the libraries again; the first run loaded them (a
            // library the target had before stopped that run, unless skipped).
            (_, Kind::Function)
                if (self.o.on_exists == OnExists::Skip || self.resuming)
                    && details.contains("already exists") =>
            {
                self.s.skipped_existing += 1;
                Ok(())
            }
            _ => {
                let what = match (key_name, p.kind) {
                    (Some((name, db)), _) => format!("key \"{}\" (db {db})", show_key(&name)),
                    (None, Kind::Function) => "FUNCTION LOAD (--on-exists skip leaves an \
                        existing library, --replace overwrites it)"
                        .to_owned(),
                    (None, Kind::Select(db)) => format!(
                        "SELECT {db} (fewer databases on the target? --db-map FROM:TO moves \
                         the keys of a source db)"
                    ),
                    (None, kind) => format!("a {kind:?} command"),
                };
                Err(Failure::Refused(format!(
                    "{addr}: the target refused {what}: {}",
                    error_text(&err)
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let u = TargetUrl::parse("rediss://app:s%40cret@cache.example.net:6380/2")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(u.tls);
        assert_eq!(u.host, "cache.example.net");
        assert_eq!(u.port, 6380);
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.db, 2);
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("cret"), "{shown}");
        assert_eq!(u.to_string(), "rediss://app:***@cache.example.net:6380/2");
        let e = TargetUrl::parse("http://:hunter2@h/x")
            .err()
            .unwrap_or_default();
        assert!(!e.contains("hunter2"), "{e}");
        let e = TargetUrl::parse("redis://:hunter2@h/x")
            .err()
            .unwrap_or_default();
        assert!(!e.contains("hunter2") && e.contains("db number"), "{e}");
        // A user without a password would connect as the default user, and the "user" is
        // often the password written without its colon.
        if std::env::var_os("RDBKIT_REDIS_PASSWORD").is_none() {
            let e = TargetUrl::parse("redis://hunter2@h:6379")
                .err()
                .unwrap_or_default();
            assert!(!e.contains("hunter2") && e.contains("no password"), "{e}");
        }
    }

    #[test]
    fn the_window_bounds_bytes_in_flight() {
        let w = Window {
            commands: 8,
            bytes: 1000,
        };
        // 4 commands, 400 bytes in flight; a 700-byte command does not fit.
        assert!(w.full(4, 400, 700));
        // Half the window is reached, but 400 + 700 would still exceed it.
        assert!(w.must_read(4, 400, 700));
        assert!(!w.must_read(1, 300, 700));
        // Every state the send loop may leave keeps the bytes within the window.
        for inflight_bytes in (0..=1000).step_by(50) {
            for next in (1..=1200).step_by(50) {
                let mut n = 4;
                let mut b = inflight_bytes;
                if w.full(n, b, next) {
                    while w.must_read(n, b, next) {
                        n -= 1;
                        b = b * n / (n + 1);
                    }
                }
                assert!(
                    n == 0 || b + next <= w.bytes,
                    "{inflight_bytes} + {next}: {b} left in flight"
                );
            }
        }
        // A command larger than the window goes alone.
        assert!(!w.full(0, 0, 5000));
        assert!(!w.must_read(0, 0, 5000));
        // The count: full at 8, read down to 4.
        assert!(w.full(8, 10, 10));
        assert!(w.must_read(5, 10, 10));
        assert!(!w.must_read(4, 10, 10));
    }

    #[test]
    fn connecting_tries_every_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let open = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        // A port just freed: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        let t = Duration::from_secs(5);
        let tcp = connect_any("h:1", &[closed, open], t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tcp.peer_addr().ok(), Some(open));
        let e = connect_any("h:1", &[closed], t)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(
                |e| e.contains("h:1: cannot connect") && e.contains(&closed.to_string())
            ),
            "{e:?}"
        );
    }

    #[test]
    fn server_versions_map_to_profiles() {
        let p = |info: &str| {
            profile_for_server(info)
                .map(|(p, _)| p.name)
                .unwrap_or("error")
        };
        assert_eq!(p("redis_version:5.0.7\r\n"), "redis-5.0");
        assert_eq!(p("redis_version:6.2.5\r\n"), "redis-6.2");
        assert_eq!(p("redis_version:7.0.15\r\n"), "redis-7.0");
        assert_eq!(p("redis_version:7.4.1\r\n"), "redis-7.4");
        assert_eq!(p("redis_version:8.0.2\r\n"), "redis-8.0");
        assert_eq!(
            p("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"),
            "valkey-8.0"
        );
        assert_eq!(
            p("redis_version:7.2.4\r\nvalkey_version:9.1.2\r\n"),
            "valkey-9.0"
        );
        assert_eq!(
            p("redis_version:7.2.4\r\nserver_name:valkey\r\n"),
            "valkey-7.2"
        );
        assert_eq!(p("redis_version:4.0.9\r\n"), "error");
    }
}
