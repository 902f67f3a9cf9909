//! Values whose payload exceeds proto-max-bulk-len, sent as plain commands (RPUSH, SADD,
//! HSET, SET + APPEND, ... in batches). They are built under a temporary key in the
//! key's slot and renamed into place, so that a batch the target refuses (a string above
//! its limit) or a killed run never leaves part of a value under the key's name.

use std::borrow::Cow;

use rdb_parser::Entry;

use super::inflight::{Kind, Pending};
use super::run::{show_key, Run};
use super::OnExists;
use crate::resp;
use crate::Failure;

/// The TTL of a temporary key while it is built: if rdbkit is killed before renaming or
/// deleting it, the server removes it.
const TEMP_TTL_MS: i64 = 3_600_000;

impl Run<'_> {
    /// The value as plain commands, because its payload exceeds proto-max-bulk-len.
    pub(super) fn chunked(
        &mut self,
        i: u64,
        entry: &Entry<'_>,
        target: usize,
        db: u64,
        uncertain: bool,
    ) -> Result<(), Failure> {
        self.select(target, db)?;
        let replace = self.o.on_exists == OnExists::Replace;
        // Building the copy costs the whole value: ask first whether the key is there.
        let there = !replace && self.present(target, entry)?;
        if there && !uncertain {
            return self.exists(entry.db, &entry.key);
        }
        let tmp = self.temp_key(&entry.key, i);
        self.temps.insert(i, (target, db, tmp.clone()));
        let mut tmp_entry = entry.clone();
        tmp_entry.key = Cow::Owned(tmp.clone());
        let mut native = self.native;
        // A temporary name of a killed run is never reused, but DEL costs nothing.
        native.delete_first = true;
        let mut failed = None;
        let mut sent = 0usize;
        let mut emit = |cmd: Vec<u8>| {
            if failed.is_some() {
                return;
            }
            let mut r = self.enqueue(target, cmd, Some(i), Kind::Native);
            sent += 1;
            // After DEL and the command that created the key.
            if r.is_ok() && sent == 2 {
                let ttl = resp::Cmd::new("PEXPIRE")
                    .arg(&tmp)
                    .int(TEMP_TTL_MS)
                    .finish_ref();
                r = self.enqueue(target, ttl, Some(i), Kind::Native);
            }
            if let Err(e) = r {
                failed = Some(e);
            }
        };
        let result = resp::native_commands(&tmp_entry, &native, &mut emit);
        if let Some(e) = failed {
            return Err(e);
        }
        if let Err(e) = result {
            return Err(self.native_error(entry, e));
        }
        if entry.expire_ms.is_none() {
            // The key's own expiry came last (PEXPIREAT); without one, the temporary TTL
            // must go before the rename, which keeps it.
            let persist = resp::Cmd::new("PERSIST").arg(&tmp).finish_ref();
            self.enqueue(target, persist, Some(i), Kind::Native)?;
        }
        if there {
            return self.settle_existing(i, target, entry, &tmp, None, true);
        }
        // Commands are pipelined: the rename waits until every command building the value
        // was answered, or it would move a value the target refused part of into place.
        self.drain_all()?;
        let rename = resp::Cmd::new(if replace { "RENAME" } else { "RENAMENX" })
            .arg(&tmp)
            .arg(&entry.key)
            .finish_ref();
        let kind = if replace {
            Kind::Native
        } else {
            Kind::RenameNx
        };
        if entry.expire_ms.is_none() {
            self.writing.insert(i);
        }
        self.enqueue(target, rename, Some(i), kind)?;
        self.s.chunked += 1;
        Ok(())
    }

    fn native_error(&self, entry: &Entry<'_>, e: resp::NativeError) -> Failure {
        match e {
            resp::NativeError::Parse(p) => Failure::Data(p.in_key(entry.db, &entry.key)),
            resp::NativeError::Refused(why) => Failure::Refused(format!(
                "key \"{}\" (db {}): {why}",
                show_key(&entry.key),
                entry.db
            )),
            resp::NativeError::Unsupported(why) => Failure::Refused(format!(
                "key \"{}\" (db {}): its payload ({} bytes) exceeds the target's \
                 proto-max-bulk-len ({}), and {why}",
                show_key(&entry.key),
                entry.db,
                entry.raw_value.len(),
                self.max_bulk
            )),
        }
    }

    /// `RENAMENX` answered 0: the key appeared on the target while its value was built.
    /// The temporary copy goes, and `--on-exists` decides.
    pub(super) fn renamenx_refused(
        &mut self,
        conn: usize,
        key: Option<u64>,
    ) -> Result<(), Failure> {
        let Some(k) = key else {
            return Ok(());
        };
        let name = self.outstanding.get(&k).map(|(_, n, db)| (n.clone(), *db));
        if let Some((_, _, tmp)) = self.temps.get(&k) {
            let del = resp::Cmd::new("DEL").arg(tmp).finish_ref();
            if let Some(e) = self.outstanding.get_mut(&k) {
                e.0 += 1;
            }
            // Queued, not sent from here: this runs while a reply is being read.
            self.retries.push_back((
                conn,
                Pending {
                    key: Some(k),
                    bytes: del.len(),
                    command: Some(del),
                    kind: Kind::Native,
                    redirects: 0,
                },
            ));
        }
        self.s.chunked = self.s.chunked.saturating_sub(1);
        self.writing.remove(&k);
        let (name, db) = name.unwrap_or_default();
        let r = self.exists(db, &name);
        self.release(k);
        r
    }
}
