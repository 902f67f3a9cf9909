//! The resume window: keys after the checkpoint's last acknowledged one that the
//! interrupted run may have sent. Such a key on the target is either the interrupted
//! run's copy or a key that was there before (which `--on-exists skip` or the default stop
//! must keep). rdbkit writes its own value under a temporary name in the same slot, and
//! compares the two on the target (DUMP, and PTTL): only an exact copy counts as already
//! restored; any other value is left to `--on-exists`, never replaced.

use rdb_parser::Entry;
use redis::Value;

use super::conn::{error_text, int, server_error, Conn};
use super::run::{show_key, Run};
use crate::resp;
use crate::Failure;

/// Two expiries within this many ms count as the same: they are read one after the
/// other from a clock that moves.
const TTL_SLACK_MS: i64 = 1000;

impl Run<'_> {
    /// Whether `entry`'s key exists on connection `target` (its db selected), asked with
    /// nothing else in flight there.
    pub(super) fn present(&mut self, target: usize, entry: &Entry<'_>) -> Result<bool, Failure> {
        self.drain(target)?;
        let c = self.conn(target)?;
        let reply = c.call(&resp::Cmd::new("EXISTS").arg(&entry.key).finish_ref())?;
        // Anything but a count (NOPERM, MOVED...) leaves the question open, and plain
        // commands or a comparison would go wrong: stop.
        let Some(n) = int(&reply).filter(|_| server_error(&reply).is_none()) else {
            let why = server_error(&reply)
                .map(|e| error_text(&e))
                .unwrap_or_else(|| format!("{reply:?}"));
            return Err(Failure::Refused(format!(
                "{}: key \"{}\" (db {}): EXISTS, which tells whether the key is there \
                 already (plain commands would add to it; a resumed key is compared, not \
                 replaced), answered: {why}; --replace rebuilds the key without asking",
                c.addr,
                show_key(&entry.key),
                entry.db
            )));
        };
        Ok(n > 0)
    }

    /// A temporary key name of this run for key number `i`, in `key`'s cluster slot.
    pub(super) fn temp_key(&self, key: &[u8], i: u64) -> Vec<u8> {
        let name = format!("rdbkit-tmp:{}:{i}", self.nonce);
        if !self.o.cluster {
            return name.into_bytes();
        }
        // RENAME needs both names in one slot: a hash tag that hashes there.
        let slot = rdb_writer::slot::key_slot(key);
        let tag = (0u32..)
            .map(|n| n.to_string())
            .find(|t| rdb_writer::slot::key_slot(t.as_bytes()) == slot)
            .unwrap_or_default();
        format!("{{{tag}}}{name}").into_bytes()
    }

    /// `entry`'s key exists on the target, in the resume window. `tmp` holds this
    /// restore's value (built by plain commands already queued, or by `restore`, a
    /// RESTORE sent here); the two are compared and `tmp` deleted.
    pub(super) fn settle_existing(
        &mut self,
        i: u64,
        target: usize,
        entry: &Entry<'_>,
        tmp: &[u8],
        restore: Option<Vec<u8>>,
        chunked: bool,
    ) -> Result<(), Failure> {
        let db = self.conn(target)?.db.unwrap_or(0);
        self.temps.insert(i, (target, db, tmp.to_vec()));
        // Every command building `tmp` answered (a refusal stops the run here).
        self.drain_all()?;
        let c = self.conn(target)?;
        if let Some(cmd) = restore {
            let reply = c.call(&cmd)?;
            if let Some(e) = server_error(&reply) {
                return Err(Failure::Refused(format!(
                    "{}: the target refused key \"{}\" (db {}), restored under a temporary \
                     name to compare it with the key there: {}",
                    c.addr,
                    show_key(&entry.key),
                    entry.db,
                    error_text(&e)
                )));
            }
        }
        let same = same_value(c, tmp, &entry.key).map_err(|why| {
            Failure::Refused(format!(
                "{}: key \"{}\" (db {}) is on the target and the resumed run must compare it \
                 with the snapshot's value, but {why}; --on-exists replace overwrites it \
                 without comparing",
                c.addr,
                show_key(&entry.key),
                entry.db
            ))
        })?;
        let reply = c.call(&resp::Cmd::new("DEL").arg(tmp).finish_ref())?;
        if let Some(e) = server_error(&reply) {
            return Err(Failure::Refused(format!(
                "{}: DEL of the temporary key {}: {}",
                c.addr,
                show_key(tmp),
                error_text(&e)
            )));
        }
        self.temps.remove(&i);
        if !same {
            // Plain stream commands give consumers the current time as their seen time:
            // such a copy never equals the interrupted run's.
            let hint = if chunked && matches!(entry.value, rdb_parser::Value::Stream(_)) {
                " (a stream sent as plain commands gets new consumer times, so the \
                 interrupted run's copy cannot compare equal either)"
            } else {
                ""
            };
            return self.exists_differs(entry.db, &entry.key, hint);
        }
        self.s.already_restored += 1;
        if entry.expire_ms.is_none() {
            self.writing.insert(i);
        }
        if chunked {
            // Counted as chunked by the caller's summary of how keys were written.
            self.s.chunked += 1;
        } else {
            self.s.restored += 1;
        }
        Ok(())
    }

    /// After a failure: deletes the temporary keys not yet renamed into place (their TTL
    /// removes them too, within the hour, if this cannot reach the server). On the key's
    /// own connection first, after its replies, so that no queued command recreates the
    /// key after the DEL.
    pub(super) fn drop_temps(&mut self) {
        let temps = std::mem::take(&mut self.temps);
        for (target, db, tmp) in temps.into_values() {
            let cluster = self.o.cluster;
            let Ok(c) = self.conn(target) else { continue };
            let mut healthy = true;
            while healthy && !c.inflight.is_empty() {
                healthy = c.read_reply().is_ok();
                if let Some(p) = c.inflight.pop_front() {
                    c.inflight_bytes -= p.bytes;
                }
            }
            if healthy {
                let _ = delete_in(c, cluster, db, &tmp);
                continue;
            }
            // The connection broke: a new one.
            let Some((host, port)) = c
                .addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_owned(), p.parse::<u16>().ok()?)))
            else {
                continue;
            };
            if let Ok(mut fresh) =
                Conn::open(&host, port, &self.o.url, self.tls.as_ref(), self.o.timeout)
            {
                let _ = delete_in(&mut fresh, cluster, db, &tmp);
            }
        }
    }
}

fn delete_in(c: &mut Conn, cluster: bool, db: u64, key: &[u8]) -> Result<(), Failure> {
    if !cluster && c.db != Some(db) {
        c.call(&resp::select(db))?;
        c.db = Some(db);
    }
    c.call(&resp::Cmd::new("DEL").arg(key).finish_ref())
        .map(|_| ())
}

/// Whether keys `a` and `b` hold the same value (DUMP, the server's own serialisation of
/// both) and expiry (PTTL). Each DUMP is reduced to a digest as it arrives, so that one
/// value at a time is held.
fn same_value(c: &mut Conn, a: &[u8], b: &[u8]) -> Result<bool, String> {
    let commands = [
        resp::Cmd::new("DUMP").arg(a).finish_ref(),
        resp::Cmd::new("DUMP").arg(b).finish_ref(),
        resp::Cmd::new("PTTL").arg(a).finish_ref(),
        resp::Cmd::new("PTTL").arg(b).finish_ref(),
    ];
    for cmd in &commands {
        c.out.extend_from_slice(cmd);
    }
    // (length, digest) of a DUMP, the number of a PTTL.
    let mut answers: [Option<(i64, u64)>; 4] = [None; 4];
    let mut failure = None;
    for (answer, name) in answers.iter_mut().zip(["DUMP", "DUMP", "PTTL", "PTTL"]) {
        // Every reply is read, so that the connection stays in step.
        let reply = c.read_reply().map_err(|e| e.to_string())?;
        if let Some(e) = server_error(&reply) {
            failure.get_or_insert(format!("{name} answered {}", error_text(&e)));
        }
        *answer = match reply {
            Value::BulkString(bytes) => {
                Some((bytes.len() as i64, xxhash_rust::xxh3::xxh3_64(&bytes)))
            }
            other => int(&other).map(|n| (n, 0)),
        };
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let [dump_a, dump_b, ttl_a, ttl_b] = answers;
    let ttl = |x: Option<(i64, u64)>| x.map_or(-2, |(n, _)| n);
    let (ttl_a, ttl_b) = (ttl(ttl_a), ttl(ttl_b));
    let ttl_same = match (ttl_a, ttl_b) {
        (-1, -1) => true,
        (x, y) if x >= 0 && y >= 0 => (x - y).abs() <= TTL_SLACK_MS,
        _ => false,
    };
    Ok(dump_a.is_some() && dump_a == dump_b && ttl_same)
}
