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

/// A consumer of a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer<'data> {
    pub name: Cow<'data, [u8]>,
    pub seen_time_ms: i64,
    /// Stored from type 21 (Redis 7.2) on.
    pub active_time_ms: Option<i64>,
    /// IDs this consumer holds in the group's PEL.
    pub pending: Vec<StreamId>,
}

/// A consumer group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup<'data> {
    pub name: Cow<'data, [u8]>,
    pub last_id: StreamId,
    /// Stored from type 19 on; `Some(u64::MAX)` means the file says "unknown".
    pub entries_read: Option<u64>,
    pub pending: Vec<PendingEntry>,
    pub consumers: Vec<Consumer<'data>>,
}

/// One remembered `XADD ... IDMP pid iid`: the iid and the entry it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmpEntry<'data> {
    pub iid: Cow<'data, [u8]>,
    pub id: StreamId,
}

/// An idempotent producer and the iids it is remembered for, as stored (oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdmpProducer<'data> {
    pub pid: Cow<'data, [u8]>,
    pub entries: Vec<IdmpEntry<'data>>,
}

/// The idempotent-producer state of a type-26 stream (Redis 8.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idmp<'data> {
    /// Seconds an iid is remembered (`XCFGSET ... IDMP-DURATION`).
    pub duration_s: u64,
    /// Iids remembered per producer (`IDMP-MAXSIZE`).
    pub max_entries: u64,
    pub producers: Vec<IdmpProducer<'data>>,
    /// All-time count of entries added with an iid.
    pub iids_added: u64,
    /// All-time count of duplicates refused.
    pub iids_duplicates: u64,
}

/// A stream value: metadata and groups decoded, entries decoded on iteration.
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
    pub groups: Vec<ConsumerGroup<'data>>,
    /// Stored from type 26 (Redis 8.6) on.
    pub idmp: Option<Idmp<'data>>,
    ctx: Ctx<'data>,
}

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

fn name(i: &[u8]) -> PResult<'_, Cow<'_, [u8]>> {
    let (rest, s) = string(i)?;
    let decoded = s.decode().map_err(nom::Err::Error)?;
    Ok((rest, decoded))
}

/// The IDMP section that ends a type-26 stream. Counts are checked against the bytes
/// left before anything is reserved for them (a producer takes at least 2 bytes, an
/// entry at least 3).
fn idmp(i: &[u8]) -> PResult<'_, Idmp<'_>> {
    let (rest, duration_s) = len(i)?;
    let (rest, max_entries) = len(rest)?;
    let (mut rest, n_producers) = count(rest, 2, "stream IDMP producers")?;
    let mut producers = Vec::with_capacity(n_producers.min(1024) as usize);
    for _ in 0..n_producers {
        let (r, pid) = name(rest)?;
        let (mut r, n) = count(r, 3, "stream IDMP entries")?;
        let mut entries = Vec::with_capacity(n.min(1024) as usize);
        for _ in 0..n {
            let (r2, iid) = name(r)?;
            let (r2, id) = id_pair(r2)?;
            entries.push(IdmpEntry { iid, id });
            r = r2;
        }
        producers.push(IdmpProducer { pid, entries });
        rest = r;
    }
    let (rest, iids_added) = len(rest)?;
    let (rest, iids_duplicates) = len(rest)?;
    Ok((
        rest,
        Idmp {
            duration_s,
            max_entries,
            producers,
            iids_added,
            iids_duplicates,
        },
    ))
}

impl<'data> Stream<'data> {
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
        let (mut rest, n_groups) = count(rest, 4, "stream groups")?;
        let mut groups = Vec::with_capacity(n_groups.min(1024) as usize);
        for _ in 0..n_groups {
            let (r, group_name) = name(rest)?;
            let (r, group_last) = id_pair(r)?;
            let (r, entries_read) = if v2 {
                let (r, n) = len(r)?;
                (r, Some(n))
            } else {
                (r, None)
            };
            let (mut r, n_pel) = count(r, 25, "stream PEL")?;
            let mut pending = Vec::with_capacity(n_pel.min(1 << 16) as usize);
            for _ in 0..n_pel {
                let (r2, id) = raw_id(r)?;
                let (r2, delivery_time_ms) = ms_time(r2)?;
                let (r2, delivery_count) = len(r2)?;
                pending.push(PendingEntry {
                    id,
                    delivery_time_ms,
                    delivery_count,
                });
                r = r2;
            }
            let (mut r, n_consumers) = count(r, 10, "stream consumers")?;
            let mut consumers = Vec::with_capacity(n_consumers.min(1024) as usize);
            for _ in 0..n_consumers {
                let (r2, consumer_name) = name(r)?;
                let (r2, seen_time_ms) = ms_time(r2)?;
                let (r2, active_time_ms) = if v3 {
                    let (r3, a) = ms_time(r2)?;
                    (r3, Some(a))
                } else {
                    (r2, None)
                };
                let (mut r2, n_ids) = count(r2, 16, "consumer PEL")?;
                let mut ids = Vec::with_capacity(n_ids.min(1 << 16) as usize);
                for _ in 0..n_ids {
                    let (r3, id) = raw_id(r2)?;
                    ids.push(id);
                    r2 = r3;
                }
                consumers.push(Consumer {
                    name: consumer_name,
                    seen_time_ms,
                    active_time_ms,
                    pending: ids,
                });
                r = r2;
            }
            groups.push(ConsumerGroup {
                name: group_name,
                last_id: group_last,
                entries_read,
                pending,
                consumers,
            });
            rest = r;
        }
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
