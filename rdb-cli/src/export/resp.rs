//! `--format resp`: for each key the plain commands that build the same value (SET/APPEND,
//! RPUSH, SADD, ZADD, HSET, XADD..., then PEXPIREAT), for `redis-cli --pipe`. The
//! per-type builders here also serve `restore` for values too large for one RESTORE.

use std::collections::{BTreeMap, BTreeSet};

use rdb_parser::{Entry, Function, Item, StreamId, Value};
use rdb_writer::convert::{FieldTtlPolicy, FunctionPolicy, LossKind, StreamIdmpPolicy};

use super::{ExportFormat, FormatSpec, Job, Sink, Summary, TargetOptions};
use crate::resp::{score_text, Cmd};
use crate::Failure;

pub const SPEC: FormatSpec = FormatSpec {
    name: "resp",
    help:
        "Plain commands (SET, RPUSH, SADD, ZADD, HSET, XADD, PEXPIREAT...) for `redis-cli --pipe`",
    for_target: true,
    run,
};

fn run(job: &mut Job<'_>) -> Result<Summary, Failure> {
    let o = job.target_options(SPEC.name)?.clone();
    let native = NativeOptions {
        delete_first: o.replace,
        field_ttl_policy: o.convert.field_ttls,
        stream_idmp_policy: o.convert.stream_idmp,
        now_ms: o.convert.now_ms,
        ..NativeOptions::for_target(&o.convert.target)
    };
    super::run(&Resp { o, native }, job)
}

/// The most command bytes a worker builds for one key before leaving it to the writing
/// thread: the stored size does not bound the commands' size.
const BUFFERED_MAX: usize = 8 << 20;

struct Resp {
    o: TargetOptions,
    native: NativeOptions,
}

/// One key's commands, built on any core.
struct KeyCommands {
    bytes: Vec<u8>,
    commands: u64,
    losses: NativeLosses,
}

impl ExportFormat for Resp {
    type Key<'data> = KeyCommands;
    type State = CommandsState;

    fn key<'data>(&self, entry: &Entry<'data>) -> Result<Option<KeyCommands>, Failure> {
        // A huge value's commands are built by the sink and written one by one.
        if entry.raw_value.len() > super::IN_PIECES_ABOVE {
            return Ok(None);
        }
        let mut k = KeyCommands {
            bytes: Vec::new(),
            commands: 0,
            losses: NativeLosses::default(),
        };
        let mut overflow = false;
        let mut emit = |cmd: Vec<u8>| {
            // Small in the file, huge as commands (LZF, a vector set's floats as text):
            // given up, and left to the sink, which writes the commands one by one.
            if overflow || k.bytes.len() + cmd.len() > BUFFERED_MAX {
                overflow = true;
                k.bytes = Vec::new();
                return;
            }
            k.bytes.extend_from_slice(&cmd);
            k.commands += 1;
        };
        k.losses = plain_commands(entry, &self.native, &mut emit)?;
        if overflow {
            return Ok(None);
        }
        Ok(Some(k))
    }

    fn item<'data>(
        &self,
        st: &mut CommandsState,
        item: Item<'data>,
        k: Option<KeyCommands>,
        out: &mut Sink<'_>,
    ) -> Result<(), Failure> {
        let entry = match item {
            Item::Key(entry) => entry,
            // Plain commands cannot attach module key metadata.
            Item::KeyMeta(_) => {
                out.summary.key_meta_left_out += 1;
                return Ok(());
            }
            other => return non_key_item(&self.o, &other, out),
        };
        st.select(entry.db, out)?;
        out.summary.keys += 1;
        if let Some(k) = k {
            out.summary.records += k.commands;
            count_losses(&mut out.summary, k.losses);
            return out.write(&k.bytes);
        }
        let mut failed = None;
        let mut emit = |cmd: Vec<u8>| {
            if failed.is_none() {
                failed = out.record(&cmd).err();
            }
        };
        let losses = plain_commands(&entry, &self.native, &mut emit)?;
        if let Some(e) = failed {
            return Err(e);
        }
        count_losses(&mut out.summary, losses);
        Ok(())
    }
}

fn count_losses(summary: &mut Summary, losses: NativeLosses) {
    summary.field_ttls_left_out += losses.field_ttls;
    summary.streams_idmp_left_out += losses.stream_idmp;
}

/// What a command format keeps between items.
#[derive(Debug, Default)]
pub(super) struct CommandsState {
    /// The database the last `SELECT` chose.
    db: Option<u64>,
}

impl CommandsState {
    /// `SELECT db` where the database changes.
    pub(super) fn select(&mut self, db: u64, out: &mut Sink<'_>) -> Result<(), Failure> {
        if self.db != Some(db) {
            self.db = Some(db);
            out.record(&crate::resp::select(db))?;
        }
        Ok(())
    }
}

/// The commands of an item other than a key: `FUNCTION LOAD` for a library (the other
/// items have none).
pub(super) fn non_key_item(
    o: &TargetOptions,
    item: &Item<'_>,
    out: &mut Sink<'_>,
) -> Result<(), Failure> {
    match item {
        Item::Function(Function::Library { code }) => {
            if !o.convert.target.functions() {
                if o.convert.functions == FunctionPolicy::Drop {
                    out.summary.functions_left_out += 1;
                    return Ok(());
                }
                return Err(Failure::Refused(format!(
                    "the snapshot holds function libraries and {} has no functions; \
                     --functions drop leaves them out",
                    o.convert.target.name
                )));
            }
            let mut c = Cmd::new("FUNCTION");
            c.arg(b"LOAD");
            if o.replace {
                c.arg(b"REPLACE");
            }
            c.arg(code);
            out.summary.functions += 1;
            out.record(&c.finish())
        }
        Item::Function(Function::PreGa { name, .. }) => {
            let mut shown = String::new();
            let _ = rdb_parser::error::write_escaped(&mut shown, name);
            Err(Failure::Refused(format!(
                "function \"{shown}\" is in the Redis 7.0 release-candidate form, which \
                 no released server loads"
            )))
        }
        _ => Ok(()),
    }
}

/// Hands `entry`'s plain commands to `emit` one by one; returns what the target has no
/// command for.
fn plain_commands(
    entry: &Entry<'_>,
    native: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<NativeLosses, Failure> {
    match native_commands(entry, native, emit) {
        Ok(losses) => Ok(losses),
        Err(NativeError::Parse(p)) => Err(Failure::Data(p.in_key(entry.db, &entry.key))),
        Err(NativeError::Refused(why)) => Err(refused(entry, &why, "")),
        Err(NativeError::Unsupported(why)) => {
            Err(refused(entry, &why, "; --format restore carries it"))
        }
    }
}

/// A key the format cannot write as asked, named with where it is.
pub(super) fn refused(entry: &Entry<'_>, why: &str, hint: &str) -> Failure {
    let mut shown = String::new();
    let _ = rdb_parser::error::write_escaped(&mut shown, &entry.key);
    Failure::Refused(format!(
        "key \"{shown}\" (db {}) at byte {}: {why}{hint}",
        entry.db, entry.offset
    ))
}

// -----------------------------------------------------------------------------------------
// Plain commands per value type

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
    /// XCFGSET and XIDMPRECORD exist (Redis 8.6.2+): a stream's idempotent-producer
    /// (IDMP) state is re-created.
    pub stream_idmp: bool,
    /// A stream's IDMP state on a target without those commands (`--stream-idmp`).
    pub stream_idmp_policy: StreamIdmpPolicy,
    /// "Now" for [`FieldTtlPolicy::DropExpired`], Unix ms.
    pub now_ms: i64,
    /// VADD exists (vector sets, Redis 8.0+).
    pub vector_sets: bool,
}

impl NativeOptions {
    /// What `target` has; the batch sizes stay at their defaults.
    pub fn for_target(target: &rdb_writer::TargetProfile) -> NativeOptions {
        let v = target.version;
        NativeOptions {
            field_ttls: target.field_ttls(),
            stream_idmp: target.loads_type(rdb_parser::format::type_id::STREAM_LISTPACKS_4),
            stream_metadata: rdb_writer::profile::is_valkey(v) || v.number >= 10,
            create_consumer: !target.before_redis_6_2(),
            vector_sets: target.vector_sets.is_some(),
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
            stream_idmp: true,
            stream_idmp_policy: StreamIdmpPolicy::Error,
            now_ms: 0,
            vector_sets: true,
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
    /// Streams written without their IDMP state (`--stream-idmp drop`).
    pub stream_idmp: u64,
}

/// Calls `emit` with each plain command that rebuilds `entry`, in order, ending with
/// `PEXPIREAT` when the key has an expiry.
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
    match &entry.value {
        Value::String(s) => string_commands(key, &s.to_bytes()?, o, emit),
        Value::List(l) => element_commands("RPUSH", key, l.iter(), o, emit)?,
        Value::Set(s) => element_commands("SADD", key, s.iter(), o, emit)?,
        Value::ZSet(z) => zset_commands(key, z, o, emit)?,
        Value::Hash(h) => losses.field_ttls = hash_commands(key, h, o, emit)?,
        Value::Stream(s) => losses.stream_idmp = stream_commands(key, s, o, emit)?,
        Value::Module(m) => match super::module_type(m) {
            Some(t) => (t.commands)(key, m, o, emit)?,
            None => {
                return Err(NativeError::Unsupported(format!(
                    "a {} module value has no plain-command form (only RESTORE carries it)",
                    m.id.name()
                )))
            }
        },
    }
    if let Some(t) = entry.expire_ms {
        emit(Cmd::new("PEXPIREAT").arg(key).int(t).finish_ref());
    }
    Ok(losses)
}

/// `SET` with the first chunk, `APPEND` with each further one.
fn string_commands(key: &[u8], bytes: &[u8], o: &NativeOptions, emit: &mut dyn FnMut(Vec<u8>)) {
    let mut chunks = bytes.chunks(o.batch_bytes.max(1));
    let first = chunks.next().unwrap_or_default();
    emit(Cmd::new("SET").arg(key).arg(first).finish_ref());
    for c in chunks {
        emit(Cmd::new("APPEND").arg(key).arg(c).finish_ref());
    }
}

/// A list's `RPUSH`es or a set's `SADD`s.
fn element_commands<'a>(
    name: &'static str,
    key: &[u8],
    elements: impl Iterator<Item = Result<rdb_parser::Element<'a>, rdb_parser::Error>>,
    o: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<(), NativeError> {
    let mut batch = Batch::new(o, key);
    for e in elements {
        let e = e?;
        batch.push(name, emit, |c| {
            c.element(&e);
        });
    }
    batch.flush(emit);
    Ok(())
}

fn zset_commands(
    key: &[u8],
    z: &rdb_parser::ZSet<'_>,
    o: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<(), NativeError> {
    let mut batch = Batch::new(o, key);
    for pair in z.iter() {
        let (member, score) = pair?;
        batch.push("ZADD", emit, |c| {
            c.arg(score_text(score).as_bytes()).element(&member);
        });
    }
    batch.flush(emit);
    Ok(())
}

/// `HSET`s, then one `HPEXPIREAT` per expiry time; returns the field TTLs left out.
fn hash_commands(
    key: &[u8],
    h: &rdb_parser::Hash<'_>,
    o: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<u64, NativeError> {
    let mut dropped = 0;
    let mut batch = Batch::new(o, key);
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
                        dropped += 1;
                        continue;
                    }
                    _ => dropped += 1,
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
    Ok(dropped)
}

/// `XADD` per entry, the IDMP state, the groups with their consumers and pending entries,
/// then `XSETID` with the stream's counters. Returns 1 when the IDMP state was left out.
fn stream_commands(
    key: &[u8],
    s: &rdb_parser::Stream<'_>,
    o: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<u64, NativeError> {
    let mut idmp_dropped = 0;
    let idmp = match s
        .idmp
        .as_ref()
        .and_then(|m| idmp_state(m).map(|what| (m, what)))
    {
        Some((m, _)) if o.stream_idmp => Some(m),
        Some((_, what)) if o.stream_idmp_policy == StreamIdmpPolicy::Error => {
            return Err(NativeError::Refused(format!(
                "a stream with IDMP state ({what}), and the target has no XCFGSET / \
                 XIDMPRECORD (Redis 8.6.2+); {}",
                crate::convert::remedy(LossKind::StreamIdmp, crate::convert::HintFor::Restore)
            )))
        }
        Some(_) => {
            idmp_dropped = 1;
            None
        }
        None => None,
    };
    let placeholders = stream_entries(key, s, idmp, emit)?;
    if s.length == 0 && placeholders.is_empty() {
        // An empty stream: a group created with MKSTREAM and destroyed again leaves one,
        // with nothing counted as added or deleted.
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
    if let Some(m) = idmp {
        idmp_commands(key, m, emit);
    }
    for g in s.groups() {
        group_commands(key, &g, o, emit);
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
    Ok(idmp_dropped)
}

/// What a stream's IDMP state holds, for a message; `None` when it is what a stream that
/// never saw an IDMP add has (no producers, no counts, the default 100 s and 100 iids).
pub(super) fn idmp_state(m: &rdb_parser::Idmp<'_>) -> Option<String> {
    (!m.is_default()).then(|| {
        format!(
            "{} producers, {} iids, duration {} s, max {} iids, {} added, {} duplicates",
            m.producer_count(),
            m.iid_count(),
            m.duration_s,
            m.max_entries,
            m.iids_added,
            m.iids_duplicates
        )
    })
}

/// The IDMP state, as the server's own AOF rewrite re-creates it: `XCFGSET` (which also
/// forgets any iid), then one `XIDMPRECORD` per remembered iid, oldest first, so that the
/// same ones stay within the maximum. The all-time `iids-added` and `iids-duplicates`
/// counts have no command: they restart (at the number of iids recorded, and 0).
fn idmp_commands(key: &[u8], m: &rdb_parser::Idmp<'_>, emit: &mut dyn FnMut(Vec<u8>)) {
    let mut c = Cmd::new("XCFGSET");
    c.arg(key)
        .arg(b"IDMP-DURATION")
        .arg(itoa::Buffer::new().format(m.duration_s).as_bytes())
        .arg(b"IDMP-MAXSIZE")
        .arg(itoa::Buffer::new().format(m.max_entries).as_bytes());
    emit(c.finish());
    for p in m.producers() {
        for e in p.entries() {
            let mut c = Cmd::new("XIDMPRECORD");
            c.arg(key).arg(&p.pid).arg(&e.iid);
            c.arg(stream_id(e.id).as_bytes());
            emit(c.finish());
        }
    }
}

/// The entries' `XADD`s. Pending entries and remembered IDMP iids whose message was
/// deleted are added too, as placeholders (XCLAIM and XIDMPRECORD refuse an ID the stream
/// lacks), and returned, to be deleted once claimed and recorded.
fn stream_entries(
    key: &[u8],
    s: &rdb_parser::Stream<'_>,
    idmp: Option<&rdb_parser::Idmp<'_>>,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<Vec<StreamId>, NativeError> {
    let recorded = idmp.into_iter().flat_map(|m| {
        m.producers()
            .flat_map(|p| p.entries().map(|e| e.id).collect::<Vec<_>>())
    });
    let mut needed: BTreeSet<StreamId> = s
        .groups()
        .flat_map(|g| g.pending().map(|p| p.id).collect::<Vec<_>>())
        .chain(recorded)
        .collect();
    let mut placeholders = Vec::new();
    let mut placeholder = |id: StreamId, emit: &mut dyn FnMut(Vec<u8>)| {
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
        while let Some(&p) = needed.first() {
            if p > e.id {
                break;
            }
            needed.pop_first();
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
    for p in std::mem::take(&mut needed) {
        placeholder(p, emit);
    }
    Ok(placeholders)
}

/// One consumer group: `XGROUP CREATE`, its consumers, and its pending entries claimed by
/// their owners.
fn group_commands(
    key: &[u8],
    g: &rdb_parser::ConsumerGroup<'_>,
    o: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) {
    let mut c = Cmd::new("XGROUP");
    c.arg(b"CREATE").arg(key).arg(&g.name);
    c.arg(stream_id(g.last_id).as_bytes());
    if o.stream_metadata {
        if let Some(n) = g.entries_read.filter(|&n| n != u64::MAX) {
            c.arg(b"ENTRIESREAD").int(n as i64);
        }
    }
    emit(c.finish());
    let mut owner: BTreeMap<StreamId, std::borrow::Cow<'_, [u8]>> = BTreeMap::new();
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

/// A batch of elements for one variadic command: elements are added until it is full,
/// then it is sent and a new one begun.
struct Batch<'k> {
    cmd: Option<Cmd>,
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
        let cmd = self.cmd.get_or_insert_with(|| {
            let mut c = Cmd::new(name);
            c.arg(self.key);
            c
        });
        add(cmd);
        self.items += 1;
        if self.items >= self.o.batch_items || cmd.len() >= self.o.batch_bytes {
            self.flush(emit);
        }
    }

    fn flush(&mut self, emit: &mut dyn FnMut(Vec<u8>)) {
        if let Some(cmd) = self.cmd.take() {
            emit(cmd.finish());
        }
        self.items = 0;
    }
}

pub(crate) fn stream_id(id: StreamId) -> String {
    format!("{}-{}", id.ms, id.seq)
}
