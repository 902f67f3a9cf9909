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
use crate::listpack::Listpack;
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

    /// Live entries in ID order, decoded one node at a time.
    pub fn entries(&self) -> StreamEntries<'_> {
        StreamEntries {
            stream: self,
            rest: self.nodes_body,
            nodes_left: self.nodes,
            current: Vec::new().into_iter(),
            failed: false,
        }
    }
}

/// One live stream entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEntry<'a> {
    pub id: StreamId,
    pub fields: Vec<(Element<'a>, Element<'a>)>,
}

/// Iterates stream entries; fuses after an error.
#[derive(Debug)]
pub struct StreamEntries<'a> {
    stream: &'a Stream<'a>,
    rest: &'a [u8],
    nodes_left: u64,
    current: std::vec::IntoIter<StreamEntry<'a>>,
    failed: bool,
}

impl<'a> StreamEntries<'a> {
    fn load_node(&mut self) -> Result<(), Fail> {
        let (r, master) = crate::input::fixed_string::<16>(self.rest, "stream node ID")
            .map_err(crate::error::unnom)?;
        let (r, lp) = string(r).map_err(crate::error::unnom)?;
        self.rest = r;
        let master = StreamId::from_raw(&master);
        let entries = match lp {
            RdbString::Raw(b) => decode_node(b, master)?,
            other => {
                let bytes = other.decode()?;
                decode_node(&bytes, master)?
                    .into_iter()
                    .map(|e| StreamEntry {
                        id: e.id,
                        fields: e
                            .fields
                            .into_iter()
                            .map(|(f, v)| (f.into_owned(), v.into_owned()))
                            .collect(),
                    })
                    .collect()
            }
        };
        self.current = entries.into_iter();
        Ok(())
    }
}

impl<'a> Iterator for StreamEntries<'a> {
    type Item = Result<StreamEntry<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.current.next() {
                return Some(Ok(e));
            }
            if self.failed || self.nodes_left == 0 {
                return None;
            }
            self.nodes_left -= 1;
            if let Err(f) = self.load_node() {
                self.failed = true;
                return Some(Err(self.stream.ctx.error(f, self.stream.nodes_body)));
            }
        }
    }
}

/// Decodes one node listpack into its live entries.
pub(crate) fn decode_node(lp: &[u8], master: StreamId) -> Result<Vec<StreamEntry<'_>>, Fail> {
    let listpack = Listpack::new(lp)?;
    let mut it = listpack.iter();
    let live = it.required_int("stream node")?;
    let deleted = it.required_int("stream node")?;
    let n_master = it.required_int("stream node")?;
    if live < 0 || deleted < 0 || n_master < 0 {
        return Err(Fail::corrupt(
            lp,
            "stream node",
            "negative count in master entry",
        ));
    }
    // Counts come from the file: reserve little, let the vectors grow with what decodes.
    let mut master_fields = Vec::with_capacity((n_master as usize).min(64));
    for _ in 0..n_master {
        master_fields.push(it.required("stream node")?);
    }
    if it.required_int("stream node")? != 0 {
        return Err(Fail::corrupt(
            it.position(),
            "stream node",
            "master entry is not terminated by 0",
        ));
    }
    let mut out = Vec::with_capacity((live as usize).min(128));
    let mut seen = 0i64;
    while let Some(flags) = it.next() {
        let at = it.position();
        let flags = flags?
            .as_int()
            .ok_or_else(|| Fail::corrupt(at, "stream entry", "flags are not an integer"))?;
        let ms_delta = it.required_int("stream entry")?;
        let seq_delta = it.required_int("stream entry")?;
        let id = StreamId {
            ms: master.ms.wrapping_add(ms_delta as u64),
            seq: master.seq.wrapping_add(seq_delta as u64),
        };
        let mut fields = Vec::new();
        let n_fields;
        if flags & stream_flag::SAMEFIELDS != 0 {
            n_fields = n_master;
            for f in &master_fields {
                fields.push((f.clone(), it.required("stream entry")?));
            }
        } else {
            n_fields = it.required_int("stream entry")?;
            if n_fields < 0 {
                return Err(Fail::corrupt(at, "stream entry", "negative field count"));
            }
            for _ in 0..n_fields {
                let f = it.required("stream entry")?;
                let v = it.required("stream entry")?;
                fields.push((f, v));
            }
        }
        let lp_count = it.required_int("stream entry")?;
        let expected = if flags & stream_flag::SAMEFIELDS != 0 {
            n_fields + 3
        } else {
            2 * n_fields + 4
        };
        if lp_count != expected {
            return Err(Fail::corrupt(
                at,
                "stream entry",
                format!("entry count field says {lp_count}, the entry has {expected}"),
            ));
        }
        seen += 1;
        if flags & stream_flag::DELETED == 0 {
            out.push(StreamEntry { id, fields });
        }
    }
    if seen != live + deleted || out.len() as i64 != live {
        return Err(Fail::corrupt(
            lp,
            "stream node",
            format!(
                "master entry counts {live} live and {deleted} deleted, node holds {} and {}",
                out.len(),
                seen - out.len() as i64
            ),
        ));
    }
    Ok(out)
}
