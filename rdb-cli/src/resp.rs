//! RESP framing: requests, `RESTORE` around a DUMP payload, `SELECT`. The plain commands
//! that build a value (SET/APPEND, RPUSH, SADD, ZADD, HSET, XADD..., then PEXPIREAT) are
//! [`native_commands`], in `export/resp.rs`.
//!
//! Commands are framed here, straight into the output buffer: a RESP request is a count line
//! and length-prefixed arguments, and framing in place avoids a copy of every argument
//! (`redis::Cmd` keeps each argument in its own buffer first). Replies are parsed with the
//! `redis` crate (see `restore.rs`).

use rdb_parser::{Element, Entry};

pub use crate::export::resp::{native_commands, NativeError, NativeLosses, NativeOptions};

/// One RESP request being built: arguments go into `body`, the count is prefixed on
/// [`Cmd::finish`].
#[derive(Debug, Default)]
pub struct Cmd {
    body: Vec<u8>,
    args: usize,
}

impl Cmd {
    pub fn new(name: &str) -> Cmd {
        let mut c = Cmd::default();
        c.arg(name.as_bytes());
        c
    }

    pub fn arg(&mut self, a: &[u8]) -> &mut Cmd {
        bulk_header(&mut self.body, a.len());
        self.body.extend_from_slice(a);
        self.body.extend_from_slice(b"\r\n");
        self.args += 1;
        self
    }

    pub fn int(&mut self, n: i64) -> &mut Cmd {
        let mut b = itoa::Buffer::new();
        self.arg(b.format(n).as_bytes())
    }

    pub fn element(&mut self, e: &Element<'_>) -> &mut Cmd {
        match e {
            Element::Bytes(b) => self.arg(b),
            Element::Int(v) => self.int(*v),
        }
    }

    /// Arguments so far (including the command name).
    pub fn args(&self) -> usize {
        self.args
    }

    /// Bytes of the arguments so far.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.args == 0
    }

    /// The whole request.
    pub fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 16);
        out.push(b'*');
        out.extend_from_slice(itoa::Buffer::new().format(self.args).as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn bulk_header(out: &mut Vec<u8>, len: usize) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `RESTORE key ttl payload [ABSTTL] [REPLACE] [IDLETIME s | FREQ f]` is written as
/// [`restore_head`], the payload as it is, then [`restore_tail`].
/// The bytes of a RESTORE command before its payload (which then goes out as it is).
pub fn restore_head(out: &mut Vec<u8>, entry: &Entry<'_>, payload_len: usize, replace: bool) {
    let n = 4
        + usize::from(entry.expire_ms.is_some())
        + usize::from(replace)
        + if entry.freq.is_some() || entry.idle_s.is_some() {
            2
        } else {
            0
        };
    // With ABSTTL a ttl of 0 means "no expiry": an expiry at or before the epoch is sent
    // as 1 ms after it, so that the key stays expired rather than becoming persistent.
    let mut ttl = itoa::Buffer::new();
    let ttl = ttl
        .format(entry.expire_ms.map_or(0, |t| t.max(1)))
        .as_bytes();
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n$7\r\nRESTORE\r\n");
    arg(out, &entry.key);
    arg(out, ttl);
    bulk_header(out, payload_len);
}

/// The bytes of a RESTORE command after its payload.
pub fn restore_tail(out: &mut Vec<u8>, entry: &Entry<'_>, replace: bool) {
    out.extend_from_slice(b"\r\n");
    if entry.expire_ms.is_some() {
        arg(out, b"ABSTTL");
    }
    if replace {
        arg(out, b"REPLACE");
    }
    // RESTORE takes one of the two; a source stores the one its eviction policy keeps.
    match (entry.freq, entry.idle_s) {
        (Some(f), _) => {
            arg(out, b"FREQ");
            arg(out, itoa::Buffer::new().format(f).as_bytes());
        }
        (None, Some(s)) => {
            arg(out, b"IDLETIME");
            arg(out, itoa::Buffer::new().format(s).as_bytes());
        }
        (None, None) => {}
    }
}

fn arg(out: &mut Vec<u8>, a: &[u8]) {
    bulk_header(out, a.len());
    out.extend_from_slice(a);
    out.extend_from_slice(b"\r\n");
}

/// `SELECT db`.
pub fn select(db: u64) -> Vec<u8> {
    let mut c = Cmd::new("SELECT");
    c.arg(itoa::Buffer::new().format(db).as_bytes());
    c.finish()
}

impl Cmd {
    /// [`Cmd::finish`] through a `&mut` (for chained builders).
    pub fn finish_ref(&mut self) -> Vec<u8> {
        std::mem::take(self).finish()
    }
}

/// A score as Redis parses it back exactly: the shortest round-trip decimal, `inf`, `-inf`.
pub fn score_text(s: f64) -> String {
    if s.is_infinite() {
        if s > 0.0 { "inf" } else { "-inf" }.to_owned()
    } else {
        let mut b = ryu::Buffer::new();
        b.format(s).to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_framed_as_resp() {
        let mut c = Cmd::new("SET");
        c.arg(b"k").int(-12);
        assert_eq!(c.finish(), b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$3\r\n-12\r\n");
    }

    /// A string key "k" = "v" with the expiry `ms`, in an RDB 9 file without checksum.
    fn file_with_expiry(ms: i64) -> Vec<u8> {
        let mut f = b"REDIS0009".to_vec();
        f.push(0xFC);
        f.extend_from_slice(&ms.to_le_bytes());
        f.extend_from_slice(&[0, 1, b'k', 1, b'v', 0xFF]);
        f.extend_from_slice(&[0; 8]);
        f
    }

    #[test]
    fn an_expiry_at_the_epoch_stays_an_expiry() {
        for ms in [0i64, -5] {
            let file = file_with_expiry(ms);
            let entry = rdb_parser::Parser::new(&file)
                .ok()
                .and_then(|mut p| {
                    p.find_map(|i| match i {
                        Ok(rdb_parser::Item::Key(e)) => Some(e),
                        _ => None,
                    })
                })
                .unwrap_or_else(|| panic!("no key in the test file"));
            let mut cmd = Vec::new();
            restore_head(&mut cmd, &entry, 3, false);
            cmd.extend_from_slice(b"abc");
            restore_tail(&mut cmd, &entry, false);
            let text = String::from_utf8_lossy(&cmd);
            assert!(
                text.contains("$1\r\nk\r\n$1\r\n1\r\n") && text.contains("ABSTTL"),
                "{ms}: {text:?}"
            );
        }
    }

    #[test]
    fn scores_round_trip() {
        for s in [
            0.5,
            -3.0,
            1e300,
            5e-324,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1 + 0.2,
        ] {
            let t = score_text(s);
            let back: f64 = t.parse().unwrap_or(f64::NAN);
            assert_eq!(back.to_bits(), s.to_bits(), "{t}");
        }
    }
}
