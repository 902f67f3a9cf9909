//! Commands in flight: the window, queueing, replies and what each reply means.

use std::time::Duration;

use super::conn::{error_text, int, io_err, server_error};
use super::run::{show_key, Run};
use super::{OnExists, FLUSH_BYTES};
use crate::resp;
use crate::Failure;

/// The most commands and bytes in flight on one connection.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) commands: usize,
    pub(super) bytes: usize,
}

impl Window {
    /// Whether a command of `next` bytes must wait for replies first.
    pub(super) fn full(&self, inflight: usize, inflight_bytes: usize, next: usize) -> bool {
        inflight >= self.commands || (inflight > 0 && inflight_bytes + next > self.bytes)
    }

    /// Whether to read another reply before sending `next`, once the window was full:
    /// down to half the window, and always until `next` fits in it (or nothing is in
    /// flight: a command larger than the window goes alone).
    pub(super) fn must_read(&self, inflight: usize, inflight_bytes: usize, next: usize) -> bool {
        inflight > 0
            && (inflight > self.commands / 2
                || inflight_bytes > self.bytes / 2
                || inflight_bytes + next > self.bytes)
    }
}

/// A reply we wait for, in send order.
pub(super) struct Pending {
    /// The key (file-order number) the command belongs to.
    pub(super) key: Option<u64>,
    pub(super) bytes: usize,
    /// The command, kept in cluster mode to re-send it after MOVED / ASK.
    pub(super) command: Option<Vec<u8>>,
    pub(super) kind: Kind,
    /// How often this command was redirected or asked to try again: a cluster that keeps
    /// bouncing a key must end the run, not loop forever.
    pub(super) redirects: u32,
}

/// Redirects (MOVED / ASK / TRYAGAIN / LOADING) one command may take before the run stops.
pub(super) const MAX_REDIRECTS: u32 = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Restore,
    Native,
    /// SELECT of this database.
    Select(u64),
    Asking,
    Function,
    /// `RENAMENX tmp key` ending a value built under a temporary key: a 0 reply means
    /// the key appeared meanwhile.
    RenameNx,
}

impl Run<'_> {
    /// Before key `i` is sent, the checkpoint must promise no key beyond what it reserves.
    pub(super) fn reserve(&mut self, i: u64) -> Result<(), Failure> {
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
        self.save_checkpoint(path)
    }

    pub(super) fn maybe_checkpoint(&mut self) -> Result<(), Failure> {
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
            self.save_checkpoint(path)?;
        }
        Ok(())
    }

    pub(super) fn release(&mut self, i: u64) {
        if let Some(entry) = self.outstanding.get_mut(&i) {
            entry.0 -= 1;
            if entry.0 == 0 {
                self.outstanding.remove(&i);
                // Renamed into place (or deleted): nothing to clean up.
                self.temps.remove(&i);
                if self.writing.remove(&i) {
                    self.written_beyond.insert(i);
                }
            }
        }
    }

    /// Queues a command on connection `target`, first reading replies while its window is
    /// full.
    pub(super) fn enqueue(
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
    pub(super) fn push(&mut self, target: usize, mut p: Pending) -> Result<(), Failure> {
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

    pub(super) fn run_retries(&mut self) -> Result<(), Failure> {
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

    pub(super) fn drain_all_but_retries(&mut self) -> Result<(), Failure> {
        for i in 0..self.conns.len() {
            self.drain(i)?;
        }
        Ok(())
    }

    /// Reads every reply of connection `i`.
    pub(super) fn drain(&mut self, i: usize) -> Result<(), Failure> {
        while !self.conn(i)?.inflight.is_empty() {
            self.read_one(i)?;
        }
        Ok(())
    }

    pub(super) fn drain_all(&mut self) -> Result<(), Failure> {
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
    pub(super) fn read_one(&mut self, i: usize) -> Result<(), Failure> {
        let c = self.conn(i)?;
        let reply = c.read_reply()?;
        let addr = c.addr.clone();
        let Some(p) = c.inflight.pop_front() else {
            return Err(io_err(&addr, "protocol", "a reply to no command"));
        };
        c.inflight_bytes -= p.bytes;
        if p.kind == Kind::RenameNx && int(&reply) == Some(0) {
            return self.renamenx_refused(i, p.key);
        }
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
                if let Some(k) = p.key {
                    self.writing.remove(&k);
                }
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
}
