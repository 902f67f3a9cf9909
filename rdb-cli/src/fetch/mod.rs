//! `rdbkit fetch`: take a snapshot from a live server the way a replica does.
//!
//! The handshake is a replica's: AUTH (through the restore module's connection, which
//! also does TLS), `REPLCONF listening-port`, `REPLCONF capa eof`, `REPLCONF capa psync2`,
//! `REPLCONF rdb-only 1` (Redis 7+: the server sends the snapshot and no replication
//! stream), `REPLCONF version` (Valkey 9 writes its own format only to replicas that
//! say they are new enough); older servers refuse these options, which is ignored. Then `PSYNC ? -1`, or
//! `SYNC` where PSYNC is refused. The payload is either disk-based (`$<length>\r\n` and
//! that many bytes) or diskless (`$EOF:<40-byte mark>\r\n`, the bytes, the same mark).
//! While the server prepares it, it sends `\n` keep-alives, which are skipped.
//!
//! The payload goes straight to the output as it arrives (memory stays bounded by one
//! read buffer), and its CRC64 is computed on the way: the file is good only when the
//! whole payload arrived and its trailer matches. The caller commits the output then, and
//! only then; the connection is closed on return, as the server would otherwise go on
//! with the replication feed.

pub mod cluster;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::restore::conn::{io_err, tls_config, Conn, Transport};
use crate::restore::{TargetUrl, TlsOptions};
use crate::Failure;

/// Bytes read from the socket at a time.
const READ_BUFFER: usize = 256 << 10;
/// The longest status or error line accepted before the payload.
const MAX_LINE: usize = 64 << 10;
/// The diskless end mark's length.
const MARK_LEN: usize = 40;

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    pub url: TargetUrl,
    pub tls: TlsOptions,
    /// Socket timeout: connect, each reply, and silence during the transfer (the server
    /// sends a keep-alive every second while it prepares the snapshot).
    pub timeout: Duration,
}

/// How the server sent the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transfer {
    /// Written to the server's disk first, sent with its length.
    Disk,
    /// Streamed as written, ended by a mark.
    Diskless,
}

/// What the trailer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// The trailer matches the CRC64 of the bytes.
    Verified(u64),
    /// The server writes a zero trailer (`rdbchecksum no`): nothing to compare.
    Disabled,
    /// The format has no trailer (RDB 4 and older).
    Absent,
}

/// What a fetch did.
#[derive(Debug, Clone)]
pub struct FetchSummary {
    /// host:port.
    pub node: String,
    pub bytes: u64,
    /// The snapshot's format (shown as `RDB 11`, `VALKEY 80`).
    pub version: rdb_parser::Version,
    pub checksum: ChecksumStatus,
    pub transfer: Transfer,
    /// `PSYNC` or `SYNC`.
    pub command: &'static str,
    pub seconds: f64,
}

impl FetchSummary {
    pub fn to_json(&self) -> serde_json::Value {
        let (checksum, crc) = match self.checksum {
            ChecksumStatus::Verified(c) => ("verified", Some(format!("{c:016x}"))),
            ChecksumStatus::Disabled => ("disabled", None),
            ChecksumStatus::Absent => ("absent", None),
        };
        serde_json::json!({
            "node": self.node,
            "bytes": self.bytes,
            "rdb_version": self.version.to_string(),
            "checksum": checksum,
            "crc64": crc,
            "transfer": match self.transfer { Transfer::Disk => "disk", Transfer::Diskless => "diskless" },
            "command": self.command,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
        })
    }

    pub fn write_text(&self, out: &mut dyn Write, to: &str) -> std::io::Result<()> {
        let check = match self.checksum {
            ChecksumStatus::Verified(c) => format!("CRC64 {c:016x} verified"),
            ChecksumStatus::Disabled => "no CRC64 (the server has rdbchecksum no)".to_owned(),
            ChecksumStatus::Absent => "no CRC64 (the format has none)".to_owned(),
        };
        let how = match self.transfer {
            Transfer::Disk => "disk-based",
            Transfer::Diskless => "diskless",
        };
        let secs = self.seconds.max(0.001);
        writeln!(
            out,
            "fetched {} bytes ({}, {how}, {}) from {} into {to} in {:.1} s ({:.1} MB/s); {check}",
            self.bytes,
            self.version,
            self.command,
            self.node,
            self.seconds,
            self.bytes as f64 / 1e6 / secs
        )
    }
}

/// Fetches one snapshot from `o.url` into `out`. `progress(done, total)` is called as
/// bytes arrive (`total` is `None` for a diskless transfer, whose length is not said).
/// On `Err` the output holds a partial payload: the caller discards it.
pub fn fetch(
    o: &FetchOptions,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<FetchSummary, Failure> {
    let url = &o.url;
    fetch_node(&url.host, url.port, o, out, progress)
}

/// As [`fetch`], from `host:port` with `o`'s credentials and TLS settings (a cluster's
/// nodes share them).
pub fn fetch_node(
    host: &str,
    port: u16,
    o: &FetchOptions,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<FetchSummary, Failure> {
    let started = Instant::now();
    let tls = if o.url.tls {
        Some(tls_config(&o.tls)?)
    } else {
        None
    };
    // Connects, and logs in with the password redacted from any error.
    let conn = Conn::open(host, port, &o.url, tls.as_ref(), o.timeout)?;
    let Conn { addr, io, .. } = conn;
    let mut r = Replica::new(addr, io, o.timeout);
    let (command, transfer) = r.handshake()?;
    let (bytes, check) = r.payload(transfer, out, progress)?;
    // Dropping the connection closes it: the server stops sending.
    let node = r.addr.clone();
    drop(r);
    let (version, checksum) = check.finish(&node)?;
    Ok(FetchSummary {
        node,
        bytes,
        version,
        checksum,
        transfer: transfer.kind(),
        command,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The two ways the payload is framed.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(u64),
    Mark([u8; MARK_LEN]),
}

impl Framing {
    fn kind(self) -> Transfer {
        match self {
            Framing::Length(_) => Transfer::Disk,
            Framing::Mark(_) => Transfer::Diskless,
        }
    }
}

/// The replica side of one connection, with its own read buffer: the payload follows the
/// PSYNC reply in the same reads, so no other reader may take bytes from the socket.
struct Replica {
    addr: String,
    io: Transport,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    timeout: Duration,
}

impl Replica {
    fn new(addr: String, io: Transport, timeout: Duration) -> Replica {
        Replica {
            addr,
            io,
            buf: vec![0; READ_BUFFER],
            start: 0,
            end: 0,
            timeout,
        }
    }

    fn local_port(&self) -> u16 {
        let sock = match &self.io {
            Transport::Plain(s) => s,
            Transport::Tls(s) => &s.sock,
        };
        sock.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    fn send(&mut self, args: &[&[u8]]) -> Result<(), Failure> {
        let mut cmd = crate::resp::Cmd::new(
            std::str::from_utf8(args.first().copied().unwrap_or_default()).unwrap_or_default(),
        );
        for a in args.iter().skip(1) {
            cmd.arg(a);
        }
        let bytes = cmd.finish();
        self.io
            .write_all(&bytes)
            .and_then(|()| self.io.flush())
            .map_err(|e| self.net_err("write", e))
    }

    fn net_err(&self, what: &str, e: std::io::Error) -> Failure {
        if matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ) {
            io_err(
                &self.addr,
                what,
                format!(
                    "the server sent nothing for {} s (--timeout SECONDS waits longer)",
                    self.timeout.as_secs_f64()
                ),
            )
        } else {
            io_err(&self.addr, what, e)
        }
    }

    /// Refills the buffer when it is empty; `Err` on a closed connection.
    fn fill(&mut self, what: &str) -> Result<(), Failure> {
        if self.start < self.end {
            return Ok(());
        }
        let n = loop {
            match self.io.read(&mut self.buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.net_err(what, e)),
            }
        };
        if n == 0 {
            return Err(io_err(
                &self.addr,
                what,
                "the server closed the connection (it was stopped, or its snapshot failed: \
                 see its log, or it dropped this replica for exceeding \
                 client-output-buffer-limit replica)",
            ));
        }
        self.start = 0;
        self.end = n;
        Ok(())
    }

    /// One line without its `\r\n` (or a bare `\n`: a keep-alive is an empty line).
    fn line(&mut self, what: &str) -> Result<Vec<u8>, Failure> {
        let mut line = Vec::new();
        loop {
            self.fill(what)?;
            let avail = self.buf.get(self.start..self.end).unwrap_or_default();
            if let Some(at) = avail.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(avail.get(..at).unwrap_or_default());
                self.start += at + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            line.extend_from_slice(avail);
            self.start = self.end;
            if line.len() > MAX_LINE {
                return Err(io_err(
                    &self.addr,
                    what,
                    format!("no line end in {MAX_LINE} bytes: not a Redis replication reply"),
                ));
            }
        }
    }

    /// A reply line, keep-alives skipped.
    fn reply(&mut self, what: &str) -> Result<String, Failure> {
        loop {
            let line = self.line(what)?;
            if !line.is_empty() {
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
        }
    }

    /// REPLCONF ..., then PSYNC or SYNC: which command was accepted, and the payload's
    /// framing.
    fn handshake(&mut self) -> Result<(&'static str, Framing), Failure> {
        let port = self.local_port().to_string();
        let mut refusals = Vec::new();
        for (args, required) in [
            (
                &[&b"REPLCONF"[..], b"listening-port", port.as_bytes()][..],
                true,
            ),
            (
                &[&b"REPLCONF"[..], b"capa", b"eof", b"capa", b"psync2"][..],
                false,
            ),
            (&[&b"REPLCONF"[..], b"rdb-only", b"1"][..], false),
            // Valkey 9 writes a replica that does not say its version an RDB 11 file, and
            // fails on keys that format cannot hold: claim the newest, as rdbkit reads
            // every format.
            (&[&b"REPLCONF"[..], b"version", b"255.255.255"][..], false),
        ] {
            self.send(args)?;
            let reply = self.reply("REPLCONF")?;
            if let Some(err) = reply.strip_prefix('-') {
                if err.starts_with("NOAUTH") {
                    return Err(Failure::Refused(format!(
                        "{}: the server needs a password ({err}); give it in the URL \
                         (redis://:PASSWORD@host:port), --password-file, \
                         $RDBKIT_REDIS_PASSWORD or --ask-password",
                        self.addr
                    )));
                }
                // An unknown option is refused by older servers; a refused REPLCONF
                // command (ACL, renamed) means no replication at all.
                if required || !err.contains("option") {
                    refusals.push(format!("REPLCONF: {err}"));
                    break;
                }
            }
        }
        if refusals.is_empty() {
            self.send(&[b"PSYNC", b"?", b"-1"])?;
            let reply = self.reply("PSYNC")?;
            if reply.starts_with("+FULLRESYNC") {
                return Ok(("PSYNC", self.framing("PSYNC")?));
            }
            if let Some(err) = reply.strip_prefix('-') {
                transient(&self.addr, err)?;
                refusals.push(format!("PSYNC: {err}"));
            } else {
                return Err(io_err(
                    &self.addr,
                    "PSYNC",
                    format!("unexpected reply {reply:?} to PSYNC ? -1"),
                ));
            }
        }
        // SYNC answers with the payload itself (or an error line).
        self.send(&[b"SYNC"])?;
        let line = self.reply("SYNC")?;
        if let Some(err) = line.strip_prefix('-') {
            transient(&self.addr, err)?;
            refusals.push(format!("SYNC: {err}"));
            return Err(refused_replication(&self.addr, &refusals));
        }
        Ok(("SYNC", self.parse_framing(&line, "SYNC")?))
    }

    /// The `$...` line after FULLRESYNC.
    fn framing(&mut self, what: &str) -> Result<Framing, Failure> {
        let line = self.reply(what)?;
        self.parse_framing(&line, what)
    }

    fn parse_framing(&self, line: &str, what: &str) -> Result<Framing, Failure> {
        let bad = || {
            io_err(
                &self.addr,
                what,
                format!("expected the snapshot's $<length> or $EOF:<mark> line, got {line:?}"),
            )
        };
        let rest = line.strip_prefix('$').ok_or_else(bad)?;
        if let Some(mark) = rest.strip_prefix("EOF:") {
            let mark: [u8; MARK_LEN] = mark.as_bytes().try_into().map_err(|_| bad())?;
            Ok(Framing::Mark(mark))
        } else {
            rest.parse::<u64>().map(Framing::Length).map_err(|_| bad())
        }
    }

    /// Streams the payload to `out`, checksumming it; (bytes, checker).
    fn payload(
        &mut self,
        framing: Framing,
        out: &mut dyn Write,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<(u64, Check), Failure> {
        let mut check = Check::default();
        let mut done = 0u64;
        let write_err = |e: std::io::Error| {
            Failure::Io(std::io::Error::new(
                e.kind(),
                format!("writing the snapshot: {e}"),
            ))
        };
        match framing {
            Framing::Length(total) => {
                progress(0, Some(total));
                while done < total {
                    self.fill("the snapshot")
                        .map_err(|e| short(e, format!("{done} of {total} bytes received")))?;
                    let avail = self.end - self.start;
                    let take = usize::try_from(total - done)
                        .unwrap_or(usize::MAX)
                        .min(avail);
                    let chunk = self
                        .buf
                        .get(self.start..self.start + take)
                        .unwrap_or_default();
                    out.write_all(chunk).map_err(write_err)?;
                    check.update(chunk);
                    self.start += take;
                    done += take as u64;
                    progress(done, Some(total));
                }
            }
            Framing::Mark(mark) => {
                progress(0, None);
                // The last MARK_LEN bytes seen are held back until more arrive: they may be
                // (the start of) the mark.
                let mut held: Vec<u8> = Vec::with_capacity(READ_BUFFER + MARK_LEN);
                loop {
                    self.fill("the snapshot")
                        .map_err(|e| short(e, format!("{done} bytes received, no end mark yet")))?;
                    held.extend_from_slice(self.buf.get(self.start..self.end).unwrap_or_default());
                    self.start = self.end;
                    // Anything after the mark is the replication feed: not ours.
                    let found = held
                        .windows(MARK_LEN)
                        .position(|w| w.first() == mark.first() && w == mark);
                    let keep = match found {
                        Some(at) => at,
                        None => held.len().saturating_sub(MARK_LEN),
                    };
                    let chunk = held.get(..keep).unwrap_or_default();
                    out.write_all(chunk).map_err(write_err)?;
                    check.update(chunk);
                    done += keep as u64;
                    progress(done, None);
                    if found.is_some() {
                        break;
                    }
                    held.drain(..keep);
                }
            }
        }
        Ok((done, check))
    }
}

/// A closed connection or timeout during the payload, with how far it got.
fn short(e: Failure, how_far: String) -> Failure {
    match e {
        Failure::Io(e) => Failure::Io(std::io::Error::new(
            e.kind(),
            format!("{e} ({how_far}; no file written)"),
        )),
        other => other,
    }
}

/// Errors that say "not now" rather than "never".
fn transient(addr: &str, err: &str) -> Result<(), Failure> {
    if err.starts_with("LOADING")
        || err.starts_with("NOMASTERLINK")
        || err.starts_with("MASTERDOWN")
    {
        return Err(Failure::Refused(format!(
            "{addr}: the server cannot give a snapshot now ({err}); try again when it has \
             loaded its data or reached its own master"
        )));
    }
    Ok(())
}

fn refused_replication(addr: &str, refusals: &[String]) -> Failure {
    Failure::Refused(format!(
        "{addr} refuses replication ({}). Managed services (ElastiCache, Azure Cache for \
         Redis, Memorystore, Redis Cloud, ...) disable SYNC/PSYNC: take the snapshot with \
         the service's own export or backup (e.g. an ElastiCache backup exported to S3, an \
         Azure Cache export to a storage account), then read that file with rdbkit. On a \
         self-hosted server, the user needs the psync/sync/replconf commands (ACL) and they \
         must not be renamed",
        refusals.join("; ")
    ))
}

/// The running CRC64 of a payload, holding back the last 9 bytes (the EOF opcode and
/// the 8-byte trailer, which the CRC does not cover), and its first 9 (the header).
#[derive(Default)]
struct Check {
    crc: u64,
    tail: Vec<u8>,
    head: Vec<u8>,
    total: u64,
}

const TAIL: usize = 9;

impl Check {
    fn update(&mut self, chunk: &[u8]) {
        if self.head.len() < 9 {
            let need = 9 - self.head.len();
            self.head
                .extend_from_slice(chunk.get(..need.min(chunk.len())).unwrap_or_default());
        }
        self.total += chunk.len() as u64;
        if chunk.len() >= TAIL {
            self.crc = rdb_parser::crc64(self.crc, &self.tail);
            let cut = chunk.len() - TAIL;
            self.crc = rdb_parser::crc64(self.crc, chunk.get(..cut).unwrap_or_default());
            self.tail.clear();
            self.tail
                .extend_from_slice(chunk.get(cut..).unwrap_or_default());
        } else {
            self.tail.extend_from_slice(chunk);
            let over = self.tail.len().saturating_sub(TAIL);
            self.crc = rdb_parser::crc64(self.crc, self.tail.get(..over).unwrap_or_default());
            self.tail.drain(..over);
        }
    }

    /// The version and what the trailer says, once the payload is whole.
    fn finish(&self, node: &str) -> Result<(rdb_parser::Version, ChecksumStatus), Failure> {
        let bad = |why: String| {
            Failure::Io(std::io::Error::other(format!(
                "{node}: the snapshot received is not a whole RDB file: {why}; no file written"
            )))
        };
        // A header this rdbkit does not know (a newer server) cannot be checked either.
        let version = rdb_parser::header(&self.head).map_err(|e| {
            Failure::Io(std::io::Error::other(format!(
                "{node}: the snapshot's header: {e}; no file written"
            )))
        })?;
        if self.total < (9 + TAIL) as u64 {
            return Err(bad(format!("{} bytes", self.total)));
        }
        if !version.has_checksum() {
            return Ok((version, ChecksumStatus::Absent));
        }
        let (Some(&eof), Some(trailer)) = (self.tail.first(), self.tail.get(1..TAIL)) else {
            return Err(bad("too short".into()));
        };
        if eof != 0xff {
            return Err(bad(format!(
                "byte {} is 0x{eof:02x}, not the EOF opcode 0xff",
                self.total - TAIL as u64
            )));
        }
        let mut stored = [0u8; 8];
        stored.copy_from_slice(trailer);
        let stored = u64::from_le_bytes(stored);
        if stored == 0 {
            return Ok((version, ChecksumStatus::Disabled));
        }
        let crc = rdb_parser::crc64(self.crc, &[eof]);
        if crc != stored {
            return Err(bad(format!(
                "CRC64 {crc:016x} of the bytes received, the trailer says {stored:016x}"
            )));
        }
        Ok((version, ChecksumStatus::Verified(crc)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checksum is the same whatever the chunking.
    #[test]
    fn the_checksum_holds_back_the_trailer_in_any_chunking() {
        let mut file = b"REDIS0009".to_vec();
        file.extend((0..1000u32).map(|i| (i * 7 % 251) as u8));
        file.push(0xff);
        let crc = rdb_parser::crc64(0, &file);
        file.extend_from_slice(&crc.to_le_bytes());
        for size in [1usize, 2, 5, 8, 9, 10, 64, 4096] {
            let mut c = Check::default();
            for chunk in file.chunks(size) {
                c.update(chunk);
            }
            let got = c.finish("n").map_err(|e| e.to_string());
            assert_eq!(
                got.as_ref().map(|g| g.1).ok(),
                Some(ChecksumStatus::Verified(crc)),
                "{size}: {got:?}"
            );
        }
        let mut broken = file.clone();
        if let Some(b) = broken.get_mut(500) {
            *b ^= 1;
        }
        let mut c = Check::default();
        c.update(&broken);
        assert!(c.finish("n").is_err());
        let mut c = Check::default();
        c.update(file.get(..file.len() - 3).unwrap_or_default());
        assert!(c.finish("n").is_err());
    }

    /// A scripted primary on a local socket: keep-alives before the `$` line, a mark
    /// split across writes, and replication feed bytes after the mark that must not reach
    /// the file.
    #[test]
    fn a_diskless_payload_ends_at_its_mark_whatever_follows() {
        use std::net::{TcpListener, TcpStream};
        let mut file = b"REDIS0011".to_vec();
        file.extend((0..300_000u32).map(|i| (i % 253) as u8));
        file.push(0xff);
        let crc = rdb_parser::crc64(0, &file);
        file.extend_from_slice(&crc.to_le_bytes());
        let mark = [b'm'; MARK_LEN];
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let sent = file.clone();
        let primary = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap_or_else(|e| panic!("{e}"));
            let mut r = std::io::BufReader::new(s.try_clone().unwrap_or_else(|e| panic!("{e}")));
            let mut answer = |reply: &[u8]| {
                // One command per reply: read its array header and arguments.
                let mut line = String::new();
                std::io::BufRead::read_line(&mut r, &mut line).unwrap_or_default();
                let n: usize = line.trim().trim_start_matches('*').parse().unwrap_or(0);
                for _ in 0..2 * n {
                    line.clear();
                    std::io::BufRead::read_line(&mut r, &mut line).unwrap_or_default();
                }
                s.write_all(reply).unwrap_or_else(|e| panic!("{e}"));
            };
            for _ in 0..4 {
                answer(b"+OK\r\n");
            }
            answer(b"+FULLRESYNC 0123 0\r\n\n\n");
            s.write_all(b"\n$EOF:").unwrap_or_default();
            s.write_all(&mark).unwrap_or_default();
            s.write_all(b"\r\n").unwrap_or_default();
            for chunk in sent.chunks(7919) {
                s.write_all(chunk).unwrap_or_default();
            }
            s.write_all(&mark[..17]).unwrap_or_default();
            s.flush().unwrap_or_default();
            std::thread::sleep(Duration::from_millis(50));
            s.write_all(&mark[17..]).unwrap_or_default();
            s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap_or_default();
            std::thread::sleep(Duration::from_millis(200));
        });
        let tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("{e}"));
        let mut r = Replica::new(
            "test".into(),
            Transport::Plain(tcp),
            Duration::from_secs(10),
        );
        let (command, framing) = r.handshake().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(command, "PSYNC");
        let mut out = Vec::new();
        let (n, check) = r
            .payload(framing, &mut out, &mut |_, _| ())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, file.len() as u64);
        assert!(out == file, "the payload differs");
        let (version, status) = check.finish("test").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(version.to_string(), "RDB 11");
        assert_eq!(status, ChecksumStatus::Verified(crc));
        primary
            .join()
            .unwrap_or_else(|_| panic!("the primary thread failed"));
    }
}
