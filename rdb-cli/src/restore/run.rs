//! The restore itself: one key after another, in file order.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use rdb_parser::{Entry, Function, Item, ParserBuilder};
use rdb_writer::convert::{dump_body, ConvertError, ConvertOptions, FunctionPolicy};
use redis::Value;

use super::checkpoint::Checkpoint;
use super::conn::{error_text, int, profile_for_server, server_error, text, Conn};
use super::inflight::{Kind, Pending};
use super::{OnExists, RestoreOptions, RestoreSummary, DEFAULT_MAX_BULK, SLOTS};
use crate::resp::{self, NativeOptions};
use crate::Failure;

/// A key's outcome, decided on any core.
pub(super) enum Prepared<'d> {
    NotKey,
    Filtered,
    Expired,
    Dropped,
    /// The DUMP payload; a value the target loads as stored is borrowed from the input.
    Payload(rdb_writer::convert::DumpBody<'d>),
}

pub(super) struct Run<'o> {
    pub(super) o: &'o RestoreOptions,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) conns: Vec<Conn>,
    pub(super) by_addr: HashMap<String, usize>,
    /// Cluster: slot -> connection.
    pub(super) slots: Vec<usize>,
    pub(super) map_stale: bool,
    /// Commands to send again (after MOVED / ASK / TRYAGAIN): target, command, pending.
    pub(super) retries: VecDeque<(usize, Pending)>,
    /// Keys with commands not yet acknowledged: number -> (commands, key name, db).
    pub(super) outstanding: BTreeMap<u64, (u32, Vec<u8>, u64)>,
    /// The last key handled (sent, skipped or filtered).
    pub(super) last_issued: Option<u64>,
    pub(super) checkpoint: Checkpoint,
    pub(super) written_acked: Option<u64>,
    pub(super) max_bulk: u64,
    pub(super) native: NativeOptions,
    /// `--resume`: the interrupted run sent the function libraries already.
    pub(super) resuming: bool,
    /// Temporary keys being built (key number -> connection, db, name): deleted when
    /// the run fails before they are renamed into place.
    pub(super) temps: BTreeMap<u64, (usize, u64, Vec<u8>)>,
    /// Keys without a TTL being written (RESTORE, RENAME): once acknowledged they go to
    /// `written_beyond`, and the checkpoint counts them once it covers them.
    pub(super) writing: BTreeSet<u64>,
    pub(super) written_beyond: BTreeSet<u64>,
    /// Makes this run's temporary key names its own.
    pub(super) nonce: String,
    pub(super) s: RestoreSummary,
}

/// `RESTORE key ttl payload ...` for `entry` (whose name may be a temporary key's).
pub(super) fn restore_command(
    entry: &Entry<'_>,
    payload: &rdb_writer::convert::DumpBody<'_>,
    replace: bool,
) -> Vec<u8> {
    let mut cmd = Vec::with_capacity(payload.len() + entry.key.len() + 96);
    resp::restore_head(&mut cmd, entry, payload.len(), replace);
    cmd.push(payload.type_id);
    cmd.extend_from_slice(&payload.value);
    cmd.extend_from_slice(&payload.trailer);
    resp::restore_tail(&mut cmd, entry, replace);
    cmd
}

/// The process id and the clock's nanoseconds: two runs never share a temporary name.
fn temp_nonce() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{}-{nanos:x}", std::process::id())
}

pub(super) fn show_key(key: &[u8]) -> String {
    let cut = key.get(..64).unwrap_or(key);
    let mut s = String::new();
    let _ = rdb_parser::error::write_escaped(&mut s, cut);
    if key.len() > 64 {
        s.push_str("...");
    }
    s
}

/// Restores the snapshot `data` as `o` says. `progress` gets the input offset of each key.
impl<'o> Run<'o> {
    pub(super) fn new(
        o: &'o RestoreOptions,
        tls: Option<Arc<rustls::ClientConfig>>,
        first: Conn,
        checkpoint: Checkpoint,
    ) -> Run<'o> {
        let mut by_addr = HashMap::new();
        by_addr.insert(first.addr.clone(), 0);
        Run {
            o,
            tls,
            conns: vec![first],
            by_addr,
            slots: Vec::new(),
            map_stale: false,
            retries: VecDeque::new(),
            outstanding: BTreeMap::new(),
            last_issued: None,
            checkpoint,
            written_acked: None,
            max_bulk: DEFAULT_MAX_BULK,
            native: NativeOptions::default(),
            resuming: o.resume,
            temps: BTreeMap::new(),
            writing: BTreeSet::new(),
            written_beyond: BTreeSet::new(),
            nonce: temp_nonce(),
            s: RestoreSummary::default(),
        }
    }

    /// Reads the server's version and limits; sets the payload profile.
    pub(super) fn probe(&mut self, copts: &mut ConvertOptions) -> Result<(), Failure> {
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
            stream_idmp_policy: copts.stream_idmp,
            now_ms: copts.now_ms,
            ..NativeOptions::for_target(&copts.target)
        };
        Ok(())
    }

    pub(super) fn conn(&mut self, i: usize) -> Result<&mut Conn, Failure> {
        self.conns
            .get_mut(i)
            .ok_or_else(|| Failure::Io(std::io::Error::other(format!("no connection {i}"))))
    }

    /// The connection to `host:port`, opened on first use.
    pub(super) fn conn_to(&mut self, host: &str, port: u16) -> Result<usize, Failure> {
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
    pub(super) fn load_slot_map(&mut self) -> Result<(), Failure> {
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

    pub(super) fn route(&self, key: &[u8]) -> usize {
        if self.o.cluster {
            let slot = rdb_writer::slot::key_slot(key) as usize;
            self.slots.get(slot).copied().unwrap_or(0)
        } else {
            0
        }
    }

    /// Every key up to the returned number is acknowledged.
    pub(super) fn acked(&self) -> Option<u64> {
        match self.outstanding.keys().next() {
            Some(&first) => first.checked_sub(1),
            None => self.last_issued,
        }
    }

    pub(super) fn send_all<'d>(
        &mut self,
        data: &'d [u8],
        parser: &ParserBuilder,
        copts: &ConvertOptions,
        resume: Option<Checkpoint>,
        progress: &mut dyn FnMut(u64),
    ) -> Result<(), Failure> {
        let source = parser.parse(data)?.version();
        let now = copts.now_ms;
        let work = |s: rdb_pipeline::Spanned<'d>| -> Result<(Item<'d>, Prepared<'d>), Failure> {
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
                            Err(other) => {
                                return Err(crate::convert::failure(
                                    other,
                                    crate::convert::HintFor::Restore,
                                ))
                            }
                        }
                    }
                }
                _ => Prepared::NotKey,
            };
            Ok((s.item, prepared))
        };
        let mut index = 0u64;
        let last_acked = resume.as_ref().and_then(|c| c.last_acked);
        let reserved = resume.as_ref().and_then(|c| c.reserved.or(c.last_acked));
        let done = resume.as_ref().is_some_and(|c| c.complete);
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
        rdb_pipeline::ordered(parser.parse(data)?, work, sink)
    }

    pub(super) fn function(
        &mut self,
        f: &Function<'_>,
        copts: &ConvertOptions,
    ) -> Result<(), Failure> {
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

    pub(super) fn key(
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
        // In the resume window a key may be there from the interrupted run, or from
        // before it: `--on-exists` still decides, after a comparison (see window.rs).
        let replace = self.o.on_exists == OnExists::Replace;
        let target = self.route(&entry.key);
        if payload.len() as u64 <= self.max_bulk {
            self.select(target, db)?;
            if uncertain && !replace && self.present(target, entry)? {
                let tmp = self.temp_key(&entry.key, i);
                let mut tmp_entry = entry.clone();
                tmp_entry.key = Cow::Owned(tmp.clone());
                let cmd = restore_command(&tmp_entry, &payload, true);
                drop(payload);
                self.settle_existing(i, target, entry, &tmp, Some(cmd), false)?;
            } else {
                let cmd = restore_command(entry, &payload, replace);
                drop(payload);
                if entry.expire_ms.is_none() {
                    self.writing.insert(i);
                }
                self.enqueue(target, cmd, Some(i), Kind::Restore)?;
                self.s.restored += 1;
            }
        } else {
            self.chunked(i, entry, target, db, uncertain)?;
        }
        self.release(i);
        self.maybe_checkpoint()
    }

    /// A key that exists on the target, under the --on-exists policy.
    pub(super) fn exists(&mut self, db: u64, key: &[u8]) -> Result<(), Failure> {
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

    /// A key in the resume window that is on the target with another value than this
    /// restore writes: the user's, under the --on-exists policy.
    pub(super) fn exists_differs(
        &mut self,
        db: u64,
        key: &[u8],
        hint: &str,
    ) -> Result<(), Failure> {
        match self.o.on_exists {
            OnExists::Skip => {
                self.s.skipped_existing += 1;
                Ok(())
            }
            _ => Err(Failure::Refused(format!(
                "key \"{}\" (db {db}) already exists on the target with another value than \
                 the snapshot's (compared because the interrupted run may have written it){hint}; \
                 --on-exists skip leaves it, --on-exists replace (or --replace) overwrites it",
                show_key(key)
            ))),
        }
    }

    pub(super) fn select(&mut self, target: usize, db: u64) -> Result<(), Failure> {
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
}
