//! A real Azurite blob emulator for the upload tests and a test-only fault-injecting
//! proxy in front of it.
//!
//! Azurite is the one `scripts/install-azurite.sh` installs into
//! `$RDBKIT_TOOLS/azurite` (default `<repo>/.tools`). Each [`Azurite`] runs
//! `azurite-blob` on a free 127.0.0.1 port with in-memory storage and is stopped by pid
//! when the last test holding it drops it. SAS tokens are signed here with the emulator's
//! well-known devstoreaccount1 key (test code only).
#![allow(dead_code)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // a test fails by panicking

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const ACCOUNT: &str = "devstoreaccount1";
/// Azurite's documented development key (public, not a secret).
pub const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
pub const SV: &str = "2022-11-02";

pub fn tools_dir() -> PathBuf {
    match std::env::var_os("RDBKIT_TOOLS") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.tools"),
    }
}

/// The installed `azurite-blob`, or None (a failure under CI) with a message.
pub fn azurite_bin() -> Option<PathBuf> {
    let bin = tools_dir().join("azurite/node_modules/.bin/azurite-blob");
    if bin.exists() {
        return Some(bin);
    }
    let msg = format!(
        "Azurite is not installed at {}: run scripts/install-azurite.sh",
        bin.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("SKIPPED: {msg}");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A running azurite-blob.
pub struct Azurite {
    child: Mutex<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Ok(mut c) = self.child.lock() {
            let _ = c.kill(); // by pid: this child only
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

static SHARED: Mutex<Weak<Azurite>> = Mutex::new(Weak::new());
static CONTAINERS: AtomicUsize = AtomicUsize::new(0);

impl Azurite {
    /// The emulator the running tests share (started if none runs).
    pub fn shared() -> Option<Arc<Azurite>> {
        let bin = azurite_bin()?;
        let mut slot = SHARED.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = slot.upgrade() {
            return Some(a);
        }
        let a = Arc::new(Azurite::start(&bin));
        *slot = Arc::downgrade(&a);
        Some(a)
    }

    fn start(bin: &PathBuf) -> Azurite {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("rdbkit-azurite-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let log = std::fs::File::create(dir.join("azurite.log")).expect("log file");
        let child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--silent",
            ])
            // Azurite refuses --location together with --inMemoryPersistence; the
            // working directory catches anything it writes anyway.
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start azurite-blob");
        let a = Azurite {
            child: Mutex::new(child),
            port,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "azurite did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        a
    }

    pub fn account_url(&self) -> String {
        format!("http://127.0.0.1:{}/{ACCOUNT}", self.port)
    }

    /// Creates a fresh container and returns its name.
    pub fn new_container(&self) -> String {
        let name = format!(
            "c{}-{}",
            std::process::id(),
            CONTAINERS.fetch_add(1, Ordering::Relaxed)
        );
        let sas = account_sas("rwdlacup", 3600);
        let url = format!("{}/{name}?restype=container&{sas}", self.account_url());
        let resp = ureq::put(&url)
            .header("x-ms-version", SV)
            .send_empty()
            .expect("create container");
        assert_eq!(resp.status().as_u16(), 201, "create container {name}");
        name
    }

    /// A container SAS URL (an account SAS on the container path).
    pub fn container_sas(&self, container: &str, perms: &str, lifetime_secs: i64) -> String {
        format!(
            "{}/{container}?{}",
            self.account_url(),
            account_sas(perms, lifetime_secs)
        )
    }

    /// Downloads a blob whole.
    pub fn download(&self, container: &str, blob: &str) -> Vec<u8> {
        let url = format!(
            "{}/{container}/{blob}?{}",
            self.account_url(),
            account_sas("r", 3600)
        );
        let resp = ureq::get(&url)
            .header("x-ms-version", SV)
            .call()
            .expect("download");
        assert_eq!(resp.status().as_u16(), 200);
        resp.into_body()
            .with_config()
            .limit(1 << 34)
            .read_to_vec()
            .expect("blob body")
    }

    /// The committed block count of a blob.
    pub fn committed_blocks(&self, container: &str, blob: &str) -> usize {
        let url = format!(
            "{}/{container}/{blob}?comp=blocklist&blocklisttype=committed&{}",
            self.account_url(),
            account_sas("r", 3600)
        );
        let text = ureq::get(&url)
            .header("x-ms-version", SV)
            .call()
            .expect("block list")
            .into_body()
            .read_to_string()
            .expect("text");
        text.matches("<Block>").count()
    }
}

fn iso(t: i64) -> String {
    rdb_cli::azure::sas::format_time(t)
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// An account SAS (blob service, all resource types) signed with `key`, expiring
/// `lifetime_secs` from now (negative: already expired).
pub fn account_sas_with_key(perms: &str, lifetime_secs: i64, key: &str) -> String {
    let se = iso(now() + lifetime_secs);
    // sv >= 2020-12-06: account, sp, ss, srt, st, se, sip, spr, sv, ses, each + "\n".
    let to_sign = format!("{ACCOUNT}\n{perms}\nb\nsco\n\n{se}\n\n\n{SV}\n\n");
    let key = base64::engine::general_purpose::STANDARD
        .decode(key)
        .expect("key");
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("hmac");
    mac.update(to_sign.as_bytes());
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let sig = sig
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    format!(
        "sv={SV}&ss=b&srt=sco&sp={perms}&se={}&sig={sig}",
        se.replace(':', "%3A")
    )
}

pub fn account_sas(perms: &str, lifetime_secs: i64) -> String {
    account_sas_with_key(perms, lifetime_secs, KEY)
}

/// The `sig` value of a SAS URL or query, raw and URL-decoded: what output must not hold.
pub fn signature_forms(sas: &str) -> Vec<String> {
    let sig = sas
        .split("sig=")
        .nth(1)
        .unwrap_or_default()
        .split('&')
        .next()
        .unwrap_or_default();
    let decoded = sig
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    // A prefix long enough to be unmistakable catches truncated copies too.
    vec![
        sig.to_string(),
        decoded.clone(),
        decoded.chars().take(16).collect(),
    ]
}

/// What the proxy does to Put Block requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Forward the first N Put Blocks, answer 500 to the rest.
    FailBlocksAfter(usize),
    /// Answer 503 to the first N Put Blocks, then forward.
    ServerBusyFirst(usize),
    /// Close the connection without an answer on the first N Put Blocks.
    DropFirst(usize),
    /// Forward the first N Put Block Lists to Azurite (they commit), then close the
    /// connection without relaying the answer: a commit whose success was lost.
    LoseBlockListAnswers(usize),
    /// Hold every Put Block this many milliseconds, then forward it: a slow link.
    SlowBlocks(u64),
}

/// A test-only HTTP proxy on 127.0.0.1 in front of Azurite that can fail Put Block
/// requests, and counts the ones it forwarded.
pub struct Proxy {
    pub port: u16,
    pub fault: Arc<Mutex<Fault>>,
    /// Put Block requests that reached Azurite.
    pub blocks_forwarded: Arc<AtomicUsize>,
    /// Put Block requests seen (forwarded or failed).
    pub blocks_seen: Arc<AtomicUsize>,
    /// Put Block List requests seen.
    pub block_lists_seen: Arc<AtomicUsize>,
}

impl Proxy {
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let fault = Arc::new(Mutex::new(Fault::None));
        let forwarded = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(AtomicUsize::new(0));
        let lists = Arc::new(AtomicUsize::new(0));
        let (f, fw, sn, bl) = (
            fault.clone(),
            forwarded.clone(),
            seen.clone(),
            lists.clone(),
        );
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (f, fw, sn, bl) = (f.clone(), fw.clone(), sn.clone(), bl.clone());
                std::thread::spawn(move || {
                    let _ = handle(conn, upstream, &f, &fw, &sn, &bl);
                });
            }
        });
        Proxy {
            port,
            fault,
            blocks_forwarded: forwarded,
            blocks_seen: seen,
            block_lists_seen: lists,
        }
    }

    pub fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        self.blocks_forwarded.store(0, Ordering::SeqCst);
        self.blocks_seen.store(0, Ordering::SeqCst);
        self.block_lists_seen.store(0, Ordering::SeqCst);
    }

    /// `url` (an Azurite URL) rewritten to go through the proxy.
    pub fn via(&self, url: &str, azurite: &Azurite) -> String {
        url.replace(
            &format!("127.0.0.1:{}", azurite.port),
            &format!("127.0.0.1:{}", self.port),
        )
    }
}

/// One request per connection (answered with `Connection: close`).
fn handle(
    mut client: TcpStream,
    upstream: u16,
    fault: &Mutex<Fault>,
    forwarded: &AtomicUsize,
    seen: &AtomicUsize,
    block_lists: &AtomicUsize,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = client.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let request_line = head.lines().next().unwrap_or_default().to_string();
    let is_put_block = request_line.starts_with("PUT ") && request_line.contains("comp=block&");
    let is_put_block_list =
        request_line.starts_with("PUT ") && request_line.contains("comp=blocklist");
    let mut lose_answer = false;
    if is_put_block_list {
        let f = *fault.lock().unwrap_or_else(|e| e.into_inner());
        if let Fault::LoseBlockListAnswers(k) = f {
            lose_answer = block_lists.fetch_add(1, Ordering::SeqCst) < k;
        }
    }
    if is_put_block {
        let n = seen.fetch_add(1, Ordering::SeqCst);
        let f = *fault.lock().unwrap_or_else(|e| e.into_inner());
        let refuse = match f {
            Fault::None => None,
            Fault::FailBlocksAfter(k) => (forwarded.load(Ordering::SeqCst) >= k).then_some(500),
            Fault::ServerBusyFirst(k) => (n < k).then_some(503),
            Fault::DropFirst(k) => (n < k).then_some(0),
            Fault::LoseBlockListAnswers(_) => None,
            Fault::SlowBlocks(ms) => {
                std::thread::sleep(Duration::from_millis(ms));
                None
            }
        };
        match refuse {
            Some(0) => return Ok(()), // dropped: close without an answer
            Some(code) => {
                let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>ServerBusy</Code><Message>injected by the test proxy</Message></Error>";
                let reply = format!(
                    "HTTP/1.1 {code} Injected\r\nContent-Type: application/xml\r\nx-ms-error-code: ServerBusy\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                return client.write_all(reply.as_bytes());
            }
            None => {
                forwarded.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
    // Forward with Connection: close, then relay the answer until upstream closes.
    let mut rewritten = String::new();
    for line in head[..head_end - 4].split("\r\n") {
        if line.to_ascii_lowercase().starts_with("connection:") {
            continue;
        }
        rewritten.push_str(line);
        rewritten.push_str("\r\n");
    }
    rewritten.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    up.write_all(rewritten.as_bytes())?;
    up.write_all(&buf[head_end..head_end + len])?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    if lose_answer {
        return Ok(()); // committed upstream; the client hears nothing
    }
    client.write_all(&answer)
}
