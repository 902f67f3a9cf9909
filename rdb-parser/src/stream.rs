//! Streams: RDB types 15, 19, 21 and 26.
//!
//! ```text
//! len nodes, nodes x (string master_id[16: ms BE, seq BE], string listpack)
//! len length, len last_id.ms, len last_id.seq
//! v2+: len first_id.ms/seq, len max_deleted_id.ms/seq, len entries_added
//! len groups, per group:
//!     string name, len last_id.ms/seq, v2+: len entries_read (u64::MAX = unknown)
//!     len pel, pel x (16 raw id, u64 LE delivery_time, len delivery_count)
//!     len consumers, per consumer:
//!         string name, u64 LE seen_time, v3: u64 LE active_time, len n, n x 16 raw id
//! v4 (26): len idmp_duration (s), len idmp_max_entries,
//!          len producers, per producer: string pid, len n, n x (string iid, len ms, len seq)
//!          len iids_added, len iids_duplicates
//! node listpack: master entry  count, deleted, n_fields, field*, 0
//!                then entries  flags, ms_delta, seq_delta,
//!                              (n, (field, value)* | value* when SAMEFIELDS), lp_count
//! ```

use std::borrow::Cow;

use crate::ctx::Ctx;
use crate::element::Element;
use crate::error::{Error, Fail, PResult};
use crate::format::{stream_flag, type_id};
use crate::input::{bytes, count, len, ms_time, string};
use crate::listpack::ListpackCursor;
use crate::string::RdbString;

/// A stream entry ID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct StreamId {
    pub ms: u64,
    pub seq: u64,
}

impl StreamId {
    fn from_raw(raw: &[u8; 16]) -> Self {
        let (ms, seq) = raw.split_at(8);
        StreamId {
            ms: u64::from_be_bytes(ms.try_into().unwrap_or([0; 8])),
            seq: u64::from_be_bytes(seq.try_into().unwrap_or([0; 8])),
        }
    }

    /// The 16-byte big-endian form used for node keys and PEL entries.
    pub fn to_raw(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.ms.to_be_bytes());
        out[8..].copy_from_slice(&self.seq.to_be_bytes());
        out
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// A pending (delivered, unacknowledged) entry of a consumer group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingEntry {
    pub id: StreamId,
    pub delivery_time_ms: i64,
    pub delivery_count: u64,
}

/// A consumer of a group. Its pending IDs are read from the file on demand.
#[derive(Debug, Clone)]
pub struct Consumer<'data> {
    pub name: Cow<'data, [u8]>,
    pub seen_time_ms: i64,
    /// Stored from type 21 (Redis 7.2) on.
    pub active_time_ms: Option<i64>,
    /// The IDs this consumer holds in the group's PEL: 16 bytes each, as stored.
    pending: &'data [u8],
}

impl<'data> Consumer<'data> {
    /// How many IDs this consumer holds in the group's PEL.
    pub fn pending_count(&self) -> u64 {
        (self.pending.len() / 16) as u64
    }

    /// The IDs this consumer holds in the group's PEL, in stored order.
    pub fn pending(&self) -> ConsumerPending<'data> {
        ConsumerPending {
            ids: self.pending.chunks_exact(16),
        }
    }
}

/// A consumer group. Its PEL and consumers are read from the file on demand (they were
/// checked when the stream was parsed, and nothing per element is kept).
#[derive(Debug, Clone)]
pub struct ConsumerGroup<'data> {
    pub name: Cow<'data, [u8]>,
    pub last_id: StreamId,
    /// Stored from type 19 on; `Some(u64::MAX)` means the file says "unknown".
    pub entries_read: Option<u64>,
    pending: Section<'data>,
    consumers: Section<'data>,
    v3: bool,
}

impl<'data> ConsumerGroup<'data> {
    /// How many entries the group's PEL holds.
    pub fn pending_count(&self) -> u64 {
        self.pending.count
    }

    /// The group's PEL in stored (ID) order.
    pub fn pending(&self) -> GroupPending<'data> {
        GroupPending {
            walk: self.pending.walk(),
        }
    }

    /// How many consumers the group has.
    pub fn consumer_count(&self) -> u64 {
        self.consumers.count
    }

    /// The group's consumers in stored order.
    pub fn consumers(&self) -> Consumers<'data> {
        Consumers {
            walk: self.consumers.walk(),
            v3: self.v3,
        }
    }
}

/// One remembered `XADD ... IDMP pid iid`: the iid and the entry it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmpEntry<'data> {
    pub iid: Cow<'data, [u8]>,
    pub id: StreamId,
}

/// An idempotent producer. The iids it is remembered for are read on demand.
#[derive(Debug, Clone)]
pub struct IdmpProducer<'data> {
    pub pid: Cow<'data, [u8]>,
    entries: Section<'data>,
}

impl<'data> IdmpProducer<'data> {
    /// How many iids the producer is remembered for.
    pub fn entry_count(&self) -> u64 {
        self.entries.count
    }

    /// The iids the producer is remembered for, as stored (oldest first).
    pub fn entries(&self) -> IdmpEntries<'data> {
        IdmpEntries {
            walk: self.entries.walk(),
        }
    }
}

/// The idempotent-producer state of a type-26 stream (Redis 8.6). The producers are read
/// on demand.
#[derive(Debug, Clone)]
pub struct Idmp<'data> {
    /// Seconds an iid is remembered (`XCFGSET ... IDMP-DURATION`).
    pub duration_s: u64,
    /// Iids remembered per producer (`IDMP-MAXSIZE`).
    pub max_entries: u64,
    producers: Section<'data>,
    /// The iids stored over all producers.
    iids: u64,
    /// All-time count of entries added with an iid.
    pub iids_added: u64,
    /// All-time count of duplicates refused.
    pub iids_duplicates: u64,
}

impl<'data> Idmp<'data> {
    /// How many producers are remembered.
    pub fn producer_count(&self) -> u64 {
        self.producers.count
    }

    /// How many iids are remembered, over all producers.
    pub fn iid_count(&self) -> u64 {
        self.iids
    }

    /// The producers as stored.
    pub fn producers(&self) -> IdmpProducers<'data> {
        IdmpProducers {
            walk: self.producers.walk(),
        }
    }

    /// Whether this is the state of a stream no `XADD ... IDMP` touched: no producers,
    /// zero counters, the server's built-in settings (100 s, 100 iids). A server without
    /// IDMP loads a stream as if it had exactly this.
    pub fn is_default(&self) -> bool {
        self.producers.count == 0
            && self.iids_added == 0
            && self.iids_duplicates == 0
            && (self.duration_s, self.max_entries) == (100, 100)
    }
}

/// A stream value: metadata decoded; entries, groups and IDMP state read on demand.
#[derive(Debug, Clone)]
pub struct Stream<'data> {
    pub type_id: u8,
    nodes: u64,
    nodes_body: &'data [u8],
    /// Live entries.
    pub length: u64,
    pub last_id: StreamId,
    /// Stored from type 19 (Redis 7.0) on.
    pub first_id: Option<StreamId>,
    pub max_deleted_id: Option<StreamId>,
    pub entries_added: Option<u64>,
    groups: Section<'data>,
    /// Stored from type 26 (Redis 8.6) on.
    pub idmp: Option<Idmp<'data>>,
    ctx: Ctx<'data>,
}

/// `count` records stored back to back in `body`, checked when the stream was parsed.
#[derive(Debug, Clone, Copy)]
struct Section<'data> {
    count: u64,
    body: &'data [u8],
}

impl<'data> Section<'data> {
    fn walk(self) -> Walk<'data> {
        Walk {
            rest: self.body,
            left: self.count,
        }
    }
}

/// Reads `n` records with `record`, returning the section they span and the bytes after.
/// `record` checks what it reads; nothing is kept per record.
fn section<'a>(
    i: &'a [u8],
    n: u64,
    mut record: impl FnMut(&'a [u8]) -> PResult<'a, ()>,
) -> PResult<'a, Section<'a>> {
    let mut rest = i;
    for _ in 0..n {
        rest = record(rest)?.0;
    }
    let body = i.get(..i.len() - rest.len()).unwrap_or(&[]);
    Ok((rest, Section { count: n, body }))
}

/// The records of a checked section, read again one at a time. Reading cannot fail on
/// bytes that were checked; if it did, the walk ends (it never panics).
#[derive(Debug, Clone)]
struct Walk<'data> {
    rest: &'data [u8],
    left: u64,
}

impl<'data> Walk<'data> {
    fn next<T>(&mut self, record: impl FnOnce(&'data [u8]) -> PResult<'data, T>) -> Option<T> {
        if self.left == 0 {
            return None;
        }
        match record(self.rest) {
            Ok((rest, v)) => {
                self.rest = rest;
                self.left -= 1;
                Some(v)
            }
            Err(_) => {
                self.left = 0;
                None
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.left).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

/// The iterator types of the stream views, all over checked sections of the file.
macro_rules! walk_iterator {
    ($name:ident, $item:ty, |$s:ident| $next:expr) => {
        impl<'data> Iterator for $name<'data> {
            type Item = $item;
            fn next(&mut self) -> Option<$item> {
                let $s = self;
                $next
            }
            fn size_hint(&self) -> (usize, Option<usize>) {
                self.walk.size_hint()
            }
        }
        impl ExactSizeIterator for $name<'_> {}
        impl std::iter::FusedIterator for $name<'_> {}
    };
}

/// A stream's consumer groups, see [`Stream::groups`].
#[derive(Debug, Clone)]
pub struct Groups<'data> {
    walk: Walk<'data>,
    v2: bool,
    v3: bool,
}
walk_iterator!(Groups, ConsumerGroup<'data>, |s| {
    let (v2, v3) = (s.v2, s.v3);
    s.walk.next(|i| {
        let (rest, g) = group(i, v2, v3, false)?;
        let name = g.name.decode().map_err(nom::Err::Error)?;
        Ok((
            rest,
            ConsumerGroup {
                name,
                last_id: g.last_id,
                entries_read: g.entries_read,
                pending: g.pending,
                consumers: g.consumers,
                v3,
            },
        ))
    })
});

/// A group's PEL, see [`ConsumerGroup::pending`].
#[derive(Debug, Clone)]
pub struct GroupPending<'data> {
    walk: Walk<'data>,
}
walk_iterator!(GroupPending, PendingEntry, |s| s.walk.next(pending_entry));

/// A group's consumers, see [`ConsumerGroup::consumers`].
#[derive(Debug, Clone)]
pub struct Consumers<'data> {
    walk: Walk<'data>,
    v3: bool,
}
walk_iterator!(Consumers, Consumer<'data>, |s| {
    let v3 = s.v3;
    s.walk.next(|i| {
        let (rest, c) = consumer(i, v3, false)?;
        let name = c.name.decode().map_err(nom::Err::Error)?;
        Ok((
            rest,
            Consumer {
                name,
                seen_time_ms: c.seen_time_ms,
                active_time_ms: c.active_time_ms,
                pending: c.pending,
            },
        ))
    })
});

/// A consumer's pending IDs, see [`Consumer::pending`].
#[derive(Debug, Clone)]
pub struct ConsumerPending<'data> {
    ids: std::slice::ChunksExact<'data, u8>,
}

impl Iterator for ConsumerPending<'_> {
    type Item = StreamId;
    fn next(&mut self) -> Option<StreamId> {
        let raw: &[u8; 16] = self.ids.next()?.try_into().ok()?;
        Some(StreamId::from_raw(raw))
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.ids.size_hint()
    }
}
impl ExactSizeIterator for ConsumerPending<'_> {}
impl std::iter::FusedIterator for ConsumerPending<'_> {}

/// A stream's idempotent producers, see [`Idmp::producers`].
#[derive(Debug, Clone)]
pub struct IdmpProducers<'data> {
    walk: Walk<'data>,
}
walk_iterator!(IdmpProducers, IdmpProducer<'data>, |s| s.walk.next(|i| {
    let (rest, (pid, entries)) = producer(i, false)?;
    let pid = pid.decode().map_err(nom::Err::Error)?;
    Ok((rest, IdmpProducer { pid, entries }))
}));

/// A producer's remembered iids, see [`IdmpProducer::entries`].
#[derive(Debug, Clone)]
pub struct IdmpEntries<'data> {
    walk: Walk<'data>,
}
walk_iterator!(IdmpEntries, IdmpEntry<'data>, |s| s.walk.next(|i| {
    let (rest, (iid, id)) = idmp_entry(i, false)?;
    let iid = iid.decode().map_err(nom::Err::Error)?;
    Ok((rest, IdmpEntry { iid, id }))
}));

fn id_pair(i: &[u8]) -> PResult<'_, StreamId> {
    let (rest, ms) = len(i)?;
    let (rest, seq) = len(rest)?;
    Ok((rest, StreamId { ms, seq }))
}

fn raw_id(i: &[u8]) -> PResult<'_, StreamId> {
    let (rest, b) = bytes(i, 16, "stream ID")?;
    let arr: [u8; 16] = b.try_into().unwrap_or([0; 16]);
    Ok((rest, StreamId::from_raw(&arr)))
}

/// A name or iid, undecoded; `check` says whether it must decode (checked without
/// decoding: an LZF name is not expanded).
fn name(i: &[u8], check: bool) -> PResult<'_, RdbString<'_>> {
    let (rest, s) = string(i)?;
    if check {
        s.validate().map_err(nom::Err::Error)?;
    }
    Ok((rest, s))
}

/// A PEL entry: 16-byte raw ID, delivery time, delivery count.
fn pending_entry(i: &[u8]) -> PResult<'_, PendingEntry> {
    let (rest, id) = raw_id(i)?;
    let (rest, delivery_time_ms) = ms_time(rest)?;
    let (rest, delivery_count) = len(rest)?;
    Ok((
        rest,
        PendingEntry {
            id,
            delivery_time_ms,
            delivery_count,
        },
    ))
}

/// A consumer as stored, its name undecoded.
struct RawConsumer<'data> {
    name: RdbString<'data>,
    seen_time_ms: i64,
    active_time_ms: Option<i64>,
    pending: &'data [u8],
}

fn consumer(i: &[u8], v3: bool, check: bool) -> PResult<'_, RawConsumer<'_>> {
    let (r, name) = name(i, check)?;
    let (r, seen_time_ms) = ms_time(r)?;
    let (r, active_time_ms) = if v3 {
        let (r, a) = ms_time(r)?;
        (r, Some(a))
    } else {
        (r, None)
    };
    let (r, n_ids) = count(r, 16, "consumer PEL")?;
    // `count` checked that n_ids x 16 bytes are there.
    let (r, pending) = bytes(r, n_ids.saturating_mul(16), "consumer PEL")?;
    Ok((
        r,
        RawConsumer {
            name,
            seen_time_ms,
            active_time_ms,
            pending,
        },
    ))
}

/// A group as stored, its name undecoded, its PEL and consumers walked (and, with
/// `check`, every name in them checked) but not kept.
struct RawGroup<'data> {
    name: RdbString<'data>,
    last_id: StreamId,
    entries_read: Option<u64>,
    pending: Section<'data>,
    consumers: Section<'data>,
}

fn group(i: &[u8], v2: bool, v3: bool, check: bool) -> PResult<'_, RawGroup<'_>> {
    let (r, name) = name(i, check)?;
    let (r, last_id) = id_pair(r)?;
    let (r, entries_read) = if v2 {
        let (r, n) = len(r)?;
        (r, Some(n))
    } else {
        (r, None)
    };
    let (r, n_pel) = count(r, 25, "stream PEL")?;
    let (r, pending) = section(r, n_pel, |i| Ok((pending_entry(i)?.0, ())))?;
    let (r, n_consumers) = count(r, 10, "stream consumers")?;
    let (r, consumers) = section(r, n_consumers, |i| Ok((consumer(i, v3, check)?.0, ())))?;
    Ok((
        r,
        RawGroup {
            name,
            last_id,
            entries_read,
            pending,
            consumers,
        },
    ))
}

/// One remembered iid and the entry it added.
fn idmp_entry(i: &[u8], check: bool) -> PResult<'_, (RdbString<'_>, StreamId)> {
    let (r, iid) = name(i, check)?;
    let (r, id) = id_pair(r)?;
    Ok((r, (iid, id)))
}

/// A producer: its pid and its entries (an entry takes at least 3 bytes).
fn producer(i: &[u8], check: bool) -> PResult<'_, (RdbString<'_>, Section<'_>)> {
    let (r, pid) = name(i, check)?;
    let (r, n) = count(r, 3, "stream IDMP entries")?;
    let (r, entries) = section(r, n, |i| Ok((idmp_entry(i, check)?.0, ())))?;
    Ok((r, (pid, entries)))
}

/// The IDMP section that ends a type-26 stream. Counts are checked against the bytes
/// left (a producer takes at least 2 bytes, an entry at least 3); every producer and
/// entry is checked, none is kept.
fn idmp(i: &[u8]) -> PResult<'_, Idmp<'_>> {
    let (rest, duration_s) = len(i)?;
    let (rest, max_entries) = len(rest)?;
    let (rest, n_producers) = count(rest, 2, "stream IDMP producers")?;
    let mut iids = 0u64;
    let (rest, producers) = section(rest, n_producers, |i| {
        let (r, (_, entries)) = producer(i, true)?;
        iids = iids.saturating_add(entries.count);
        Ok((r, ()))
    })?;
    let (rest, iids_added) = len(rest)?;
    let (rest, iids_duplicates) = len(rest)?;
    Ok((
        rest,
        Idmp {
            duration_s,
            max_entries,
            producers,
            iids,
            iids_added,
            iids_duplicates,
        },
    ))
}

impl<'data> Stream<'data> {
    /// Reads a stream's metadata and checks its groups and IDMP state record by record,
    /// keeping none of them: they are read again on demand ([`Stream::groups`]), so a
    /// stream of millions of consumers costs no memory per consumer.
    pub(crate) fn parse(i: &'data [u8], type_id: u8, ctx: Ctx<'data>) -> PResult<'data, Self> {
        let v2 = type_id >= type_id::STREAM_LISTPACKS_2;
        let v3 = type_id >= type_id::STREAM_LISTPACKS_3;
        let (mut rest, nodes) = count(i, 2, "stream")?;
        let start = rest;
        for _ in 0..nodes {
            rest = string(rest)?.0;
            rest = string(rest)?.0;
        }
        let nodes_body = start.get(..start.len() - rest.len()).unwrap_or(&[]);
        let (rest, length) = len(rest)?;
        let (mut rest, last_id) = id_pair(rest)?;
        let (mut first_id, mut max_deleted_id, mut entries_added) = (None, None, None);
        if v2 {
            let (r, f) = id_pair(rest)?;
            let (r, m) = id_pair(r)?;
            let (r, a) = len(r)?;
            (first_id, max_deleted_id, entries_added) = (Some(f), Some(m), Some(a));
            rest = r;
        }
        let (rest, n_groups) = count(rest, 4, "stream groups")?;
        let (rest, groups) = section(rest, n_groups, |i| Ok((group(i, v2, v3, true)?.0, ())))?;
        let (rest, idmp) = if type_id >= type_id::STREAM_LISTPACKS_4 {
            let (r, state) = idmp(rest)?;
            (r, Some(state))
        } else {
            (rest, None)
        };
        Ok((
            rest,
            Stream {
                type_id,
                nodes,
                nodes_body,
                length,
                last_id,
                first_id,
                max_deleted_id,
                entries_added,
                groups,
                idmp,
                ctx,
            },
        ))
    }

    /// How many consumer groups the stream has.
    pub fn group_count(&self) -> u64 {
        self.groups.count
    }

    /// The consumer groups in stored order, each read from the file as the walk reaches
    /// it (they were checked when the stream was parsed).
    pub fn groups(&self) -> Groups<'data> {
        Groups {
            walk: self.groups.walk(),
            v2: self.type_id >= type_id::STREAM_LISTPACKS_2,
            v3: self.type_id >= type_id::STREAM_LISTPACKS_3,
        }
    }

    pub fn encoding_name(&self) -> &'static str {
        match self.type_id {
            type_id::STREAM_LISTPACKS => "listpacks",
            type_id::STREAM_LISTPACKS_2 => "listpacks2",
            type_id::STREAM_LISTPACKS_3 => "listpacks3",
            _ => "listpacks4",
        }
    }

    /// The number of listpack nodes.
    pub fn node_count(&self) -> u64 {
        self.nodes
    }

    /// The node section exactly as stored (after the node count), for copying it through:
    /// node listpacks have not changed since Redis 5.0.
    pub fn nodes_raw(&self) -> &'data [u8] {
        self.nodes_body
    }

    /// The nodes as stored: `(master ID, listpack string)`, for passthrough and checks.
    pub fn nodes(&self) -> impl Iterator<Item = Result<(StreamId, RdbString<'data>), Error>> + '_ {
        let mut rest = self.nodes_body;
        let mut left = self.nodes;
        std::iter::from_fn(move || {
            if left == 0 {
                return None;
            }
            left -= 1;
            let r = (|| {
                let (r, master) = crate::input::fixed_string::<16>(rest, "stream node ID")?;
                let (r, lp) = string(r)?;
                rest = r;
                Ok((StreamId::from_raw(&master), lp))
            })();
            match r {
                Ok(v) => Some(Ok(v)),
                Err(e) => {
                    left = 0;
                    let f = crate::error::unnom(e);
                    Some(Err(self.ctx.error(f, self.nodes_body)))
                }
            }
        })
    }

    /// Live entries in ID order, decoded one entry at a time: a compressed node is
    /// decompressed once and its entries borrow from that copy, a plain node's borrow
    /// from the file. Each entry borrows the walk, so this is not an `Iterator`:
    /// `while let Some(e) = it.next_entry() { ... }`, or [`Stream::for_each_entry`].
    pub fn entries(&self) -> StreamEntries<'_, 'data> {
        StreamEntries {
            stream: self,
            rest: self.nodes_body,
            nodes_left: self.nodes,
            node: None,
            fields: Vec::new(),
            failed: false,
        }
    }

    /// Calls `f` with each live entry in ID order and returns how many there were; stops
    /// at the first error, the walk's or `f`'s.
    pub fn for_each_entry<E: From<Error>>(
        &self,
        mut f: impl FnMut(StreamEntry<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let mut it = self.entries();
        let mut n = 0;
        while let Some(e) = it.next_entry() {
            f(e?)?;
            n += 1;
        }
        Ok(n)
    }
}

/// One live stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry<'a> {
    pub id: StreamId,
    pub fields: Vec<(Element<'a>, Element<'a>)>,
}

/// Where an element of the current node lies: owned by nobody, so the walk can keep
/// it across calls and lend the bytes out afterwards.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Int(i64),
    Bytes(usize, usize),
}

impl Slot {
    /// `e` as a position in `base`, the listpack it was decoded from (listpack entries
    /// always borrow their bytes from it).
    fn of(e: &Element<'_>, base: &[u8]) -> Result<Slot, Fail> {
        match e {
            Element::Int(v) => Ok(Slot::Int(*v)),
            Element::Bytes(b) => {
                let start = (b.as_ptr() as usize).wrapping_sub(base.as_ptr() as usize);
                match start.checked_add(b.len()) {
                    Some(end) if end <= base.len() && matches!(b, Cow::Borrowed(_)) => {
                        Ok(Slot::Bytes(start, end))
                    }
                    _ => Err(Fail::corrupt(
                        base,
                        "stream entry",
                        "field outside its node",
                    )),
                }
            }
        }
    }

    fn get<'b>(self, base: &'b [u8]) -> Element<'b> {
        match self {
            Slot::Int(v) => Element::Int(v),
            Slot::Bytes(s, e) => Element::borrowed(base.get(s..e).unwrap_or(&[])),
        }
    }
}

/// The node being walked.
#[derive(Debug)]
struct Node<'data> {
    /// The listpack: borrowed from the file, or decompressed once.
    buf: Cow<'data, [u8]>,
    /// Where errors inside a decompressed copy are reported.
    origin: &'data [u8],
    master: StreamId,
    /// The master entry's field names, shared by SAMEFIELDS entries.
    master_fields: Vec<Slot>,
    cursor: ListpackCursor,
    live: i64,
    deleted: i64,
    seen: i64,
    seen_live: i64,
}

/// Walks a stream's live entries one at a time; fuses after an error.
#[derive(Debug)]
pub struct StreamEntries<'s, 'data> {
    stream: &'s Stream<'data>,
    rest: &'data [u8],
    nodes_left: u64,
    node: Option<Node<'data>>,
    /// The current entry's fields, reused from one entry to the next.
    fields: Vec<(Slot, Slot)>,
    failed: bool,
}

impl<'data> StreamEntries<'_, 'data> {
    /// The next live entry, borrowing the node it was decoded from.
    pub fn next_entry(&mut self) -> Option<Result<StreamEntry<'_>, Error>> {
        let id = loop {
            if self.failed {
                return None;
            }
            let Some(node) = self.node.as_mut() else {
                if self.nodes_left == 0 {
                    return None;
                }
                self.nodes_left -= 1;
                match open_node(self.rest) {
                    Ok((rest, node)) => {
                        self.rest = rest;
                        self.node = Some(node);
                    }
                    Err(f) => return Some(Err(self.fail(f, self.stream.nodes_body))),
                }
                continue;
            };
            match node.step(&mut self.fields) {
                Ok(Some(id)) => break id,
                Ok(None) => self.node = None,
                Err(f) => {
                    let origin = node.origin;
                    return Some(Err(self.fail(f, origin)));
                }
            }
        };
        let buf: &[u8] = self.node.as_ref().map(|n| n.buf.as_ref()).unwrap_or(&[]);
        let fields = self
            .fields
            .iter()
            .map(|(f, v)| (f.get(buf), v.get(buf)))
            .collect();
        Some(Ok(StreamEntry { id, fields }))
    }

    fn fail(&mut self, f: Fail, origin: &[u8]) -> Error {
        self.failed = true;
        self.node = None;
        self.stream.ctx.error(f, origin)
    }
}

/// Reads the next node's ID and listpack (decompressing it if stored compressed) and
/// decodes its master entry.
fn open_node(rest: &[u8]) -> Result<(&[u8], Node<'_>), Fail> {
    let (r, master) =
        crate::input::fixed_string::<16>(rest, "stream node ID").map_err(crate::error::unnom)?;
    let (r, lp) = string(r).map_err(crate::error::unnom)?;
    let origin = match lp {
        RdbString::Raw(b) => b,
        RdbString::Lzf { compressed, .. } => compressed,
        RdbString::Int(_) => rest,
    };
    let buf = lp.decode()?;
    let mut cursor = ListpackCursor::start(&buf)?;
    let live = required_int(&mut cursor, &buf, "stream node")?;
    let deleted = required_int(&mut cursor, &buf, "stream node")?;
    let n_master = required_int(&mut cursor, &buf, "stream node")?;
    if live < 0 || deleted < 0 || n_master < 0 {
        return Err(Fail::corrupt(
            &buf,
            "stream node",
            "negative count in master entry",
        ));
    }
    // Counts come from the file: reserve little, let the vector grow with what decodes.
    let mut master_fields = Vec::with_capacity((n_master as usize).min(64));
    for _ in 0..n_master {
        let f = required(&mut cursor, &buf, "stream node")?;
        master_fields.push(Slot::of(&f, &buf)?);
    }
    if required_int(&mut cursor, &buf, "stream node")? != 0 {
        return Err(Fail::corrupt(
            cursor.rest(&buf),
            "stream node",
            "master entry is not terminated by 0",
        ));
    }
    let node = Node {
        buf,
        origin,
        master: StreamId::from_raw(&master),
        master_fields,
        cursor,
        live,
        deleted,
        seen: 0,
        seen_live: 0,
    };
    Ok((r, node))
}

impl Node<'_> {
    /// Decodes entries up to the next live one, leaving its fields in `fields`; `None`
    /// once the node is done (its counts checked).
    fn step(&mut self, fields: &mut Vec<(Slot, Slot)>) -> Result<Option<StreamId>, Fail> {
        let buf: &[u8] = &self.buf;
        loop {
            let at = self.cursor.rest(buf);
            let Some(flags) = self.cursor.next_in(buf) else {
                if self.seen != self.live + self.deleted || self.seen_live != self.live {
                    return Err(Fail::corrupt(
                        buf,
                        "stream node",
                        format!(
                            "master entry counts {} live and {} deleted, node holds {} and {}",
                            self.live,
                            self.deleted,
                            self.seen_live,
                            self.seen - self.seen_live
                        ),
                    ));
                }
                return Ok(None);
            };
            let flags = flags?
                .as_int()
                .ok_or_else(|| Fail::corrupt(at, "stream entry", "flags are not an integer"))?;
            let cur = &mut self.cursor;
            let ms_delta = required_int(cur, buf, "stream entry")?;
            let seq_delta = required_int(cur, buf, "stream entry")?;
            let id = StreamId {
                ms: self.master.ms.wrapping_add(ms_delta as u64),
                seq: self.master.seq.wrapping_add(seq_delta as u64),
            };
            fields.clear();
            let same = flags & stream_flag::SAMEFIELDS != 0;
            let n_fields = if same {
                for &f in &self.master_fields {
                    let v = required(cur, buf, "stream entry")?;
                    fields.push((f, Slot::of(&v, buf)?));
                }
                self.master_fields.len() as i64
            } else {
                let n = required_int(cur, buf, "stream entry")?;
                if n < 0 {
                    return Err(Fail::corrupt(at, "stream entry", "negative field count"));
                }
                for _ in 0..n {
                    let f = required(cur, buf, "stream entry")?;
                    let v = required(cur, buf, "stream entry")?;
                    fields.push((Slot::of(&f, buf)?, Slot::of(&v, buf)?));
                }
                n
            };
            let lp_count = required_int(cur, buf, "stream entry")?;
            let expected = if same { n_fields + 3 } else { 2 * n_fields + 4 };
            if lp_count != expected {
                return Err(Fail::corrupt(
                    at,
                    "stream entry",
                    format!("entry count field says {lp_count}, the entry has {expected}"),
                ));
            }
            self.seen += 1;
            if flags & stream_flag::DELETED == 0 {
                self.seen_live += 1;
                return Ok(Some(id));
            }
        }
    }
}

/// The next element, with an error if the listpack ends first (entries are fixed-shape
/// records).
fn required<'b>(
    cur: &mut ListpackCursor,
    buf: &'b [u8],
    what: &'static str,
) -> Result<Element<'b>, Fail> {
    let at = cur.rest(buf);
    match cur.next_in(buf) {
        Some(r) => r,
        None => Err(Fail::corrupt(at, what, "listpack ended inside a record")),
    }
}

fn required_int(cur: &mut ListpackCursor, buf: &[u8], what: &'static str) -> Result<i64, Fail> {
    let at = cur.rest(buf);
    required(cur, buf, what)?
        .as_int()
        .ok_or_else(|| Fail::corrupt(at, what, "expected an integer entry"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A listpack of small ints (< 128) and short strings (< 64 bytes).
    fn listpack(items: &[Result<u8, &[u8]>]) -> Vec<u8> {
        let mut body = Vec::new();
        for item in items {
            match item {
                Ok(v) => body.extend_from_slice(&[*v, 1]),
                Err(s) => {
                    body.push(0x80 | s.len() as u8);
                    body.extend_from_slice(s);
                    body.push(1 + s.len() as u8);
                }
            }
        }
        let mut out = ((body.len() + 7) as u32).to_le_bytes().to_vec();
        out.extend_from_slice(&(items.len() as u16).to_le_bytes());
        out.extend_from_slice(&body);
        out.push(0xFF);
        out
    }

    /// A type-15 stream of one LZF-compressed node: a master field shared by three live
    /// SAMEFIELDS entries and one deleted one; `live` is what the master entry claims.
    fn stream_bytes(live: u8) -> Vec<u8> {
        let field: &[u8] = b"a-field-name-long-enough-to-compress-aaaaaaaaaaaaaa";
        let mut items = vec![Ok(live), Ok(1), Ok(1), Err(field), Ok(0)];
        for (ms, flags) in [(1, 2), (2, 3), (3, 2), (4, 2)] {
            // flags 2: SAMEFIELDS, 3: SAMEFIELDS | DELETED.
            items.extend([Ok(flags), Ok(ms), Ok(0), Err(&b"v"[..]), Ok(4)]);
        }
        let lp = listpack(&items);
        let packed = lzf::compress(&lp).unwrap_or_default();
        assert!(!packed.is_empty() && packed.len() < lp.len() && lp.len() < 16384);
        // RDB lengths of 14 bits, good for both.
        let len14 = |n: usize| [0x40 | (n >> 8) as u8, n as u8];
        let mut v = vec![1, 16];
        v.extend_from_slice(&[0; 16]);
        v.push(0xC3);
        v.extend_from_slice(&len14(packed.len()));
        v.extend_from_slice(&len14(lp.len()));
        v.extend_from_slice(&packed);
        v.extend_from_slice(&[3, 4, 0, 0]); // length 3, last ID 4-0, no groups
        v
    }

    fn parse(data: &[u8]) -> Stream<'_> {
        let ctx = Ctx {
            file: data,
            db: 0,
            key: RdbString::Raw(b"s"),
        };
        match Stream::parse(data, type_id::STREAM_LISTPACKS, ctx) {
            Ok((_, s)) => s,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn compressed_node_entries_share_the_decompressed_master_field() {
        let data = stream_bytes(3);
        let stream = parse(&data);
        let mut it = stream.entries();
        let mut ids = Vec::new();
        let mut field_at = Vec::new();
        while let Some(e) = it.next_entry() {
            let e = e.unwrap_or_else(|e| panic!("{e}"));
            ids.push(e.id.ms);
            let [(Element::Bytes(f), v)] = e.fields.as_slice() else {
                panic!("fields {:?}", e.fields);
            };
            // Borrowed from the one decompressed node, not a copy per entry.
            assert!(matches!(f, Cow::Borrowed(_)));
            field_at.push(f.as_ptr() as usize);
            assert_eq!(v.to_bytes().as_ref(), b"v");
        }
        assert_eq!(ids, [1, 3, 4]);
        assert!(
            field_at.windows(2).all(|w| w.first() == w.last()),
            "{field_at:?}"
        );
        assert_eq!(stream.for_each_entry(|_| Ok::<_, Error>(())).ok(), Some(3));
    }

    #[test]
    fn a_node_holding_fewer_entries_than_its_master_says_is_an_error() {
        let data = stream_bytes(5);
        let stream = parse(&data);
        let mut it = stream.entries();
        let mut live = 0;
        let err = loop {
            match it.next_entry() {
                Some(Ok(_)) => live += 1,
                Some(Err(e)) => break e,
                None => panic!("no error"),
            }
        };
        assert_eq!(live, 3);
        assert!(err.to_string().contains("5 live"), "{err}");
        assert!(it.next_entry().is_none(), "fused after the error");
    }
}
