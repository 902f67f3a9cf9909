//! RESP commands for a key: `RESTORE` with a DUMP payload, or the plain commands that build
//! the same value (SET/APPEND, RPUSH, SADD, ZADD, HSET, XADD..., then PEXPIREAT).
//!
//! Commands are framed here, straight into the output buffer: a RESP request is a count line
//! and length-prefixed arguments, and framing in place avoids a copy of every argument
//! (`redis::Cmd` keeps each argument in its own buffer first). Replies are parsed with the
//! `redis` crate (see `restore.rs`).

use std::collections::BTreeMap;

use rdb_parser::{Element, Entry, Value};
use rdb_writer::convert::FieldTtlPolicy;

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

/// What the plain commands may use on the target.
#[derive(Debug, Clone, Copy)]
pub struct NativeOptions {
    /// Most argument bytes in one command (a batch of elements, or a string chunk).
    pub batch_bytes: usize,
    /// Most elements in one command.
    pub batch_items: usize,
    /// HPEXPIREAT exists (Redis 7.4+, Valkey 9+); without it field TTLs are left out.
    pub field_ttls: bool,
    /// XSETID ENTRIESADDED/MAXDELETEDID and XGROUP CREATE ENTRIESREAD exist (7.0+).
    pub stream_metadata: bool,
    /// XGROUP CREATECONSUMER exists (6.2+); without it only consumers with pending
    /// entries come back (XCLAIM creates them).
    pub create_consumer: bool,
    /// Start with `DEL key`, so that the commands replace whatever the key held.
    pub delete_first: bool,
    /// Hash fields with a TTL on a target without field TTLs (`--field-ttls`).
    pub field_ttl_policy: FieldTtlPolicy,
    /// "Now" for [`FieldTtlPolicy::DropExpired`], Unix ms.
    pub now_ms: i64,
}

impl NativeOptions {
    /// What `target` has; the batch sizes stay at their defaults.
    pub fn for_target(target: &rdb_writer::TargetProfile) -> NativeOptions {
        let v = target.version;
        let before_6_2 = matches!(target.name, "redis-5.0" | "redis-6.0")
            || target.name.starts_with("azure-cache-premium");
        NativeOptions {
            field_ttls: target.field_ttls(),
            stream_metadata: rdb_writer::profile::is_valkey(v) || v.number >= 10,
            create_consumer: !before_6_2,
            ..NativeOptions::default()
        }
    }
}

impl Default for NativeOptions {
    fn default() -> Self {
        NativeOptions {
            batch_bytes: 1 << 20,
            batch_items: 1024,
            field_ttls: true,
            stream_metadata: true,
            create_consumer: true,
            delete_first: false,
            field_ttl_policy: FieldTtlPolicy::Error,
            now_ms: 0,
        }
    }
}

/// Why a key has no plain-command form.
#[derive(Debug)]
pub enum NativeError {
    Parse(rdb_parser::Error),
    /// e.g. a module value.
    Unsupported(String),
    /// A loss the options do not allow (a hash field's TTL under `--field-ttls error`).
    Refused(String),
}

impl From<rdb_parser::Error> for NativeError {
    fn from(e: rdb_parser::Error) -> Self {
        NativeError::Parse(e)
    }
}

/// What the plain commands of one key left out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NativeLosses {
    /// Hash fields whose own TTL the target cannot hold.
    pub field_ttls: u64,
}

/// Calls `emit` with each plain command that rebuilds `entry` (key name `key`), in order,
/// ending with `PEXPIREAT` when the key has an expiry.
pub fn native_commands(
    entry: &Entry<'_>,
    o: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<NativeLosses, NativeError> {
    let key: &[u8] = &entry.key;
    let mut losses = NativeLosses::default();
    if o.delete_first {
        emit(Cmd::new("DEL").arg(key).finish_ref());
    }
    // Elements are added to `cmd` until a batch is full, then it is sent and a new one begun.
    let mut batch = Batch::new(o, key);
    match &entry.value {
        Value::String(s) => {
            let bytes = s.to_bytes()?;
            let step = o.batch_bytes.max(1);
            let mut chunks = bytes.chunks(step);
            let first = chunks.next().unwrap_or_default();
            emit(Cmd::new("SET").arg(key).arg(first).finish_ref());
            for c in chunks {
                emit(Cmd::new("APPEND").arg(key).arg(c).finish_ref());
            }
        }
        Value::List(l) => {
            for e in l.iter() {
                let e = e?;
                batch.push("RPUSH", emit, |c| {
                    c.element(&e);
                });
            }
        }
        Value::Set(s) => {
            for e in s.iter() {
                let e = e?;
                batch.push("SADD", emit, |c| {
                    c.element(&e);
                });
            }
        }
        Value::ZSet(z) => {
            for pair in z.iter() {
                let (member, score) = pair?;
                batch.push("ZADD", emit, |c| {
                    c.arg(score_text(score).as_bytes()).element(&member);
                });
            }
        }
        Value::Hash(h) => {
            let mut ttls: BTreeMap<i64, Vec<Vec<u8>>> = BTreeMap::new();
            for field in h.iter() {
                let field = field?;
                if let Some(t) = field.expire_ms {
                    if o.field_ttls {
                        ttls.entry(t)
                            .or_default()
                            .push(field.field.to_bytes().into_owned());
                    } else {
                        match o.field_ttl_policy {
                            FieldTtlPolicy::Error => {
                                return Err(NativeError::Refused(
                                    "a hash field has its own TTL and the target has no \
                                     field TTLs (HPEXPIREAT: Redis 7.4+, Valkey 9+); \
                                     --field-ttls drop makes the fields persistent, \
                                     drop-expired also leaves out those expired at --now"
                                        .to_owned(),
                                ))
                            }
                            FieldTtlPolicy::DropExpired if t <= o.now_ms => {
                                losses.field_ttls += 1;
                                continue;
                            }
                            _ => losses.field_ttls += 1,
                        }
                    }
                }
                batch.push("HSET", emit, |c| {
                    c.element(&field.field).element(&field.value);
                });
            }
            batch.flush(emit);
            for (t, fields) in ttls {
                for group in fields.chunks(o.batch_items.max(1)) {
                    let mut c = Cmd::new("HPEXPIREAT");
                    c.arg(key).int(t).arg(b"FIELDS").int(group.len() as i64);
                    for f in group {
                        c.arg(f);
                    }
                    emit(c.finish());
                }
            }
        }
        Value::Stream(s) => {
            // Pending entries whose message was deleted: XCLAIM ignores an ID the stream
            // lacks, so such messages are added for the claim and deleted again after.
            let mut pel: std::collections::BTreeSet<rdb_parser::StreamId> =
                s.groups().flat_map(|g| g.pending().map(|p| p.id)).collect();
            let mut placeholders = Vec::new();
            let mut placeholder = |id: rdb_parser::StreamId, emit: &mut dyn FnMut(Vec<u8>)| {
                let mut c = Cmd::new("XADD");
                c.arg(key)
                    .arg(stream_id(id).as_bytes())
                    .arg(b"rdbkit-deleted")
                    .arg(b"");
                emit(c.finish());
                placeholders.push(id);
            };
            let mut entries = s.entries();
            while let Some(e) = entries.next_entry() {
                let e = e?;
                while let Some(&p) = pel.first() {
                    if p > e.id {
                        break;
                    }
                    pel.pop_first();
                    if p < e.id {
                        placeholder(p, emit);
                    }
                }
                let mut c = Cmd::new("XADD");
                c.arg(key).arg(stream_id(e.id).as_bytes());
                for (f, v) in &e.fields {
                    c.element(f).element(v);
                }
                emit(c.finish());
            }
            for p in std::mem::take(&mut pel) {
                placeholder(p, emit);
            }
            if s.length == 0 && placeholders.is_empty() {
                // An empty stream: a group created with MKSTREAM and destroyed again
                // leaves one, with nothing counted as added or deleted.
                let tmp = b"rdbkit-tmp-group";
                let mut c = Cmd::new("XGROUP");
                c.arg(b"CREATE")
                    .arg(key)
                    .arg(tmp)
                    .arg(b"0")
                    .arg(b"MKSTREAM");
                emit(c.finish());
                emit(
                    Cmd::new("XGROUP")
                        .arg(b"DESTROY")
                        .arg(key)
                        .arg(tmp)
                        .finish_ref(),
                );
            }
            for g in s.groups() {
                let mut c = Cmd::new("XGROUP");
                c.arg(b"CREATE").arg(key).arg(&g.name);
                c.arg(stream_id(g.last_id).as_bytes());
                if o.stream_metadata {
                    if let Some(n) = g.entries_read.filter(|&n| n != u64::MAX) {
                        c.arg(b"ENTRIESREAD").int(n as i64);
                    }
                }
                emit(c.finish());
                let mut owner: BTreeMap<rdb_parser::StreamId, std::borrow::Cow<'_, [u8]>> =
                    BTreeMap::new();
                for cons in g.consumers() {
                    if o.create_consumer {
                        emit(
                            Cmd::new("XGROUP")
                                .arg(b"CREATECONSUMER")
                                .arg(key)
                                .arg(&g.name)
                                .arg(&cons.name)
                                .finish_ref(),
                        );
                    }
                    for id in cons.pending() {
                        owner.insert(id, cons.name.clone());
                    }
                }
                for p in g.pending() {
                    let Some(cons) = owner.get(&p.id) else {
                        continue;
                    };
                    let mut c = Cmd::new("XCLAIM");
                    c.arg(key).arg(&g.name).arg(cons).arg(b"0");
                    c.arg(stream_id(p.id).as_bytes());
                    c.arg(b"TIME").int(p.delivery_time_ms);
                    c.arg(b"RETRYCOUNT").int(p.delivery_count as i64);
                    c.arg(b"FORCE").arg(b"JUSTID");
                    emit(c.finish());
                }
            }
            for group in placeholders.chunks(o.batch_items.max(1)) {
                let mut c = Cmd::new("XDEL");
                c.arg(key);
                for id in group {
                    c.arg(stream_id(*id).as_bytes());
                }
                emit(c.finish());
            }
            // Last, so that the placeholders' XADD/XDEL leave no trace in the counters.
            let mut c = Cmd::new("XSETID");
            c.arg(key).arg(stream_id(s.last_id).as_bytes());
            if o.stream_metadata {
                if let Some(n) = s.entries_added {
                    c.arg(b"ENTRIESADDED").int(n as i64);
                }
                if let Some(id) = s.max_deleted_id {
                    c.arg(b"MAXDELETEDID").arg(stream_id(id).as_bytes());
                }
            }
            emit(c.finish());
        }
        Value::Module(m) => {
            return Err(NativeError::Unsupported(format!(
                "a {} module value has no plain-command form (only RESTORE carries it)",
                m.id.name()
            )))
        }
    }
    batch.flush(emit);
    if let Some(t) = entry.expire_ms {
        emit(Cmd::new("PEXPIREAT").arg(key).int(t).finish_ref());
    }
    Ok(losses)
}

/// A batch of elements for one variadic command.
struct Batch<'k> {
    cmd: Option<(&'static str, Cmd)>,
    key: &'k [u8],
    items: usize,
    o: NativeOptions,
}

impl<'k> Batch<'k> {
    fn new(o: &NativeOptions, key: &'k [u8]) -> Self {
        Batch {
            cmd: None,
            key,
            items: 0,
            o: *o,
        }
    }

    fn push(
        &mut self,
        name: &'static str,
        emit: &mut dyn FnMut(Vec<u8>),
        add: impl FnOnce(&mut Cmd),
    ) {
        let (_, cmd) = self.cmd.get_or_insert_with(|| {
            let mut c = Cmd::new(name);
            c.arg(self.key);
            (name, c)
        });
        add(cmd);
        self.items += 1;
        if self.items >= self.o.batch_items || cmd.len() >= self.o.batch_bytes {
            self.flush(emit);
        }
    }

    fn flush(&mut self, emit: &mut dyn FnMut(Vec<u8>)) {
        if let Some((_, cmd)) = self.cmd.take() {
            emit(cmd.finish());
        }
        self.items = 0;
    }
}

impl Cmd {
    /// [`Cmd::finish`] through a `&mut` (for chained builders).
    pub fn finish_ref(&mut self) -> Vec<u8> {
        std::mem::take(self).finish()
    }
}

fn stream_id(id: rdb_parser::StreamId) -> String {
    format!("{}-{}", id.ms, id.seq)
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
