//! An estimate of what each key costs in a server's memory, the way `MEMORY USAGE key
//! SAMPLES 0` counts it: the value's object and allocations plus the key's entry in the
//! keyspace. The model and its measured error are in `docs/memory-model.md`.
//!
//! Everything is computed from lengths the file already states (string lengths, blob
//! sizes, element counts); collection elements are walked only for the encodings whose
//! in-memory form allocates per element (hash tables, skiplists, linked lists).

use rdb_parser::{Entry, Value};

/// The allocator whose size classes round every allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// jemalloc as Redis and Valkey bundle it (built with an 8-byte quantum: official
    /// builds, Docker images): 8, 16, 24, ... 64, 80, 96, 112, 128, then four classes
    /// per doubling.
    Jemalloc,
    /// jemalloc with its stock 16-byte quantum (distribution packages linked against the
    /// system library; `MEMORY MALLOC-STATS` says `Quantum size: 16`): 8, 16, 32, 48, ...
    /// 128, then four classes per doubling.
    JemallocQuantum16,
    /// glibc malloc (`MALLOC=libc` builds): 16-byte chunks, 8 bytes of header each.
    Libc,
}

impl Allocator {
    /// The usable size of an allocation of `n` bytes.
    pub fn usable(self, n: u64) -> u64 {
        match self {
            Allocator::Jemalloc if n <= 64 => n.max(1).div_ceil(8) * 8,
            Allocator::Jemalloc | Allocator::JemallocQuantum16 => jemalloc_class(n),
            Allocator::Libc => {
                if n <= 24 {
                    24
                } else {
                    (n + 8).div_ceil(16) * 16 - 8
                }
            }
        }
    }
}

fn jemalloc_class(n: u64) -> u64 {
    if n <= 8 {
        return 8;
    }
    if n <= 128 {
        return n.div_ceil(16) * 16;
    }
    // Four classes per doubling: (2^k, 2^(k+1)] is cut in steps of 2^(k-2).
    let k = 63 - (n - 1).leading_zeros() as u64; // 2^k < n <= 2^(k+1)
    let step = 1u64 << (k - 2);
    n.div_ceil(step) * step
}

/// Which server layout the estimate follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Redis 6.x: ziplists; `MEMORY USAGE` counts blob lengths, not allocations.
    Redis6,
    /// Redis 7.0: listpacks, keys as separate sds strings, lists always quicklists.
    Redis70,
    /// Redis 7.2 and 7.4: keys embedded in the dict entry, small lists as listpacks.
    Redis74,
    /// Redis 8.x: keys as separate sds strings again, small lists as listpacks.
    Redis8,
    /// Valkey 8.0: the key embedded in the value object.
    Valkey80,
    /// Valkey 8.1: the open-addressing hashtable, key and expiry in the object.
    Valkey81,
    /// Valkey 9: as 8.1, with sorted-set members inside their skiplist nodes.
    Valkey90,
}

/// The estimate's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Model {
    pub layout: Layout,
    pub allocator: Allocator,
}

impl Model {
    /// The layout of the server that wrote the snapshot, from its `redis-ver` /
    /// `valkey-ver` AUX field and header.
    pub fn for_server(valkey: bool, version: Option<&str>, rdb_version: u32) -> Layout {
        let parse = |v: &str| -> (u32, u32) {
            let mut parts = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
            (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
        };
        match (valkey, version.map(parse)) {
            (true, Some((8, 0))) => Layout::Valkey80,
            (true, Some((8, _))) => Layout::Valkey81,
            (true, Some((major, _))) if major >= 9 => Layout::Valkey90,
            (true, _) if rdb_version >= 80 => Layout::Valkey90,
            (_, Some((major, _))) if major >= 8 => Layout::Redis8,
            (_, Some((7, 0))) => Layout::Redis70,
            (_, Some((7, _))) => Layout::Redis74,
            (_, Some(_)) => Layout::Redis6,
            (_, None) if rdb_version >= 12 => Layout::Redis74,
            (_, None) if rdb_version >= 10 => Layout::Redis70,
            (_, None) => Layout::Redis6,
        }
    }

    fn alloc(&self, n: u64) -> u64 {
        self.allocator.usable(n)
    }

    /// Redis 6 reports blob lengths and sds lengths as written, not rounded up.
    fn reported(&self, n: u64) -> u64 {
        if self.layout == Layout::Redis6 {
            n
        } else {
            self.alloc(n)
        }
    }

    /// An sds string's allocation; `short_header` allows the 1-byte header of strings
    /// under 32 bytes (keys, fields; never embedded strings).
    fn sds(&self, len: u64, short_header: bool) -> u64 {
        self.alloc(sds_header(len, short_header) + len + 1)
    }

    /// What the keyspace spends on the key itself: its string and its table entry.
    fn key_cost(&self, key_len: u64) -> u64 {
        match self.layout {
            // 7.2 and 7.4 embed the key in the dict entry, but `MEMORY USAGE` still counts
            // a separate sds and a 24-byte entry (measured: exact on 7.4 for keys of 1-47).
            Layout::Redis6 | Layout::Redis70 | Layout::Redis74 | Layout::Redis8 => {
                self.sds(key_len, true) + 24
            }
            // The key (and expiry) are inside the value object: see `object`.
            // The dict entry: the key lives in the object.
            Layout::Valkey80 => 16,
            Layout::Valkey81 | Layout::Valkey90 => 0,
        }
    }

    /// An object header allocation: 16 bytes, plus the embedded key for Valkey.
    fn object(&self, key_len: u64, has_expire: bool, embedded_value: u64) -> u64 {
        match self.layout {
            // Valkey 8.0 pads the embedded key to 16 bytes when a value follows it
            // (measured: exact for every key of 1-40 and value of 0-44 bytes).
            Layout::Valkey80 => {
                let key = 1 + sds_bytes(key_len) + key_len + 1;
                if embedded_value == 0 {
                    self.alloc(16 + key)
                } else {
                    self.alloc(16 + key.div_ceil(16) * 16 + embedded_value)
                }
            }
            Layout::Valkey81 | Layout::Valkey90 => {
                let expire = if has_expire { 8 } else { 0 };
                self.alloc(16 + expire + 1 + sds_bytes(key_len) + key_len + 1 + embedded_value)
            }
            Layout::Redis6 if embedded_value > 0 => 16 + embedded_value,
            _ => self.alloc(16 + embedded_value).max(16),
        }
    }

    /// The longest string kept in the object's own allocation (EMBSTR).
    fn embstr_limit(&self, key_len: u64) -> u64 {
        match self.layout {
            // Valkey 9: whatever fits a 128-byte allocation with the key.
            Layout::Valkey90 => 128u64.saturating_sub(16 + 1 + 3 + key_len + 1 + 3 + 1),
            Layout::Valkey81 => 128u64
                .saturating_sub(16 + 1 + 3 + key_len + 1 + 3 + 1)
                .min(43),
            _ => 44,
        }
    }

    /// A dict (hash table) with `n` entries, before the entries themselves.
    fn dict(&self, n: u64) -> u64 {
        let slots = n.max(4).next_power_of_two();
        match self.layout {
            Layout::Redis6 => 96 + self.alloc(8 * slots),
            Layout::Valkey81 | Layout::Valkey90 => {
                // Buckets of 7 entries, 64 bytes each: ceil(n * 5 / 32) of them (a fill of at
                // most 91%), rounded up to a power of two. A bucket that hashes more than 7
                // entries chains child buckets; their number depends on the hash seed, so
                // the estimate takes its mean.
                let buckets = (n * 5).div_ceil(32).max(1).next_power_of_two();
                let children = expected_child_buckets(n, buckets);
                self.alloc(48) + self.alloc(64 * buckets) + (children * 64.0).round() as u64
            }
            // Valkey 8.0's dict keeps less per table (fitted on its hash-table sets).
            Layout::Valkey80 => 32 + self.alloc(8 * slots),
            _ => 56 + self.alloc(8 * slots),
        }
    }

    /// A set member's cost beyond the table slot.
    fn set_member(&self, len: u64) -> u64 {
        match self.layout {
            // Valkey 8.0 keeps a member in its bucket when it is alone there and needs an
            // entry otherwise: about 4 bytes per member on average (measured).
            Layout::Valkey80 => self.sds(len, true) + 4,
            Layout::Valkey81 | Layout::Valkey90 => self.sds(len, true),
            _ => self.sds(len, true) + 24,
        }
    }

    /// A hash field's cost beyond the table slot.
    fn hash_field(&self, field: u64, value: u64) -> u64 {
        match self.layout {
            // One allocation: the entry with the field embedded, the value separate.
            Layout::Valkey81 | Layout::Valkey90 => self.alloc(field + value + 10),
            _ => self.sds(field, true) + self.sds(value, true) + 24,
        }
    }

    /// A sorted-set member's cost beside its skiplist node's levels: its string and its
    /// dict entry. Valkey 9 keeps the string inside the node, after the score, backward
    /// pointer, first level and a header-size byte (measured: exact for members of 4-100
    /// bytes, the levels above the first added apart).
    fn zset_member(&self, len: u64) -> u64 {
        match self.layout {
            Layout::Valkey90 => self.alloc(33 + sds_header(len, true) + len + 1),
            Layout::Valkey81 => self.sds(len, true),
            _ => self.sds(len, true) + 24,
        }
    }

    /// The mean allocation of a skiplist node: member pointer, score and backward pointer,
    /// then 16 bytes per level, the level drawn at p = 1/4. The levels are random, so a
    /// server's figure for n members varies by about 11 * sqrt(n) bytes.
    fn skiplist_node(&self) -> f64 {
        if self.layout == Layout::Valkey90 {
            // The first level is in `zset_member`; a third of a level more on average.
            return 16.0 / 3.0;
        }
        let fixed = 24;
        let mut mean = 0.0;
        let mut p = 0.75;
        for level in 1..=32u64 {
            mean += p * self.alloc(fixed + 16 * level) as f64;
            p *= 0.25;
        }
        mean
    }

    /// The estimated bytes `MEMORY USAGE` reports for `entry`.
    pub fn estimate(&self, entry: &Entry<'_>) -> u64 {
        let key_len = entry.key.len() as u64;
        let has_expire = entry.expire_ms.is_some();
        let key = self.key_cost(key_len);
        let obj = |embedded: u64| self.object(key_len, has_expire, embedded);
        let value = match &entry.value {
            Value::String(s) => {
                let len = s.len() as u64;
                match s.stored() {
                    rdb_parser::RdbString::Int(_) => obj(0),
                    // Decimal strings that fit 64 bits are stored as integers on load.
                    rdb_parser::RdbString::Raw(b)
                        if b.len() <= 20 && rdb_parser::parse_canonical_int(b).is_some() =>
                    {
                        obj(0)
                    }
                    rdb_parser::RdbString::Raw(_) if len <= self.embstr_limit(key_len) => {
                        obj(3 + len + 1)
                    }
                    // LZF strings are decompressed into a plain sds, never embedded.
                    _ => obj(0) + self.sds(len, false),
                }
            }
            Value::Set(set) => match set.encoding_name() {
                "intset" | "listpack" => obj(0) + self.reported(blob_len(entry.raw_value)),
                _ => {
                    let (mut per, mut n) = (0, 0);
                    let walked = walk_collection(entry.type_id, entry.raw_value, |lens| {
                        per += self.set_member(lens[0]);
                        n += 1;
                    });
                    if walked.is_none() {
                        (per, n) = (0, 0);
                        for m in set.iter().flatten() {
                            per += self.set_member(m.len() as u64);
                            n += 1;
                        }
                    }
                    obj(0) + self.dict(n) + per
                }
            },
            Value::Hash(h) => match h.encoding_name() {
                "ziplist" | "listpack" | "zipmap" | "listpack_ex_pre_ga" => {
                    obj(0) + self.reported(blob_len(entry.raw_value))
                }
                // The minimum field expiry (8 bytes) comes before the listpack; in memory
                // the listpack sits in a small struct beside the expiry metadata.
                "listpack_ex" => {
                    let lp = blob_len(entry.raw_value.get(8..).unwrap_or_default());
                    obj(0) + 32 + self.alloc(lp)
                }
                "hashtable" => {
                    let (mut per, mut n) = (0, 0);
                    let walked = walk_collection(entry.type_id, entry.raw_value, |lens| {
                        per += self.hash_field(lens[0], lens[1]);
                        n += 1;
                    });
                    if walked.is_none() {
                        (per, n) = (0, 0);
                        for f in h.iter().flatten() {
                            per += self.hash_field(f.field.len() as u64, f.value.len() as u64);
                            n += 1;
                        }
                    }
                    obj(0) + self.dict(n) + per
                }
                _ => {
                    let (mut per, mut n) = (0, 0);
                    for f in h.iter().flatten() {
                        per += self.hash_field(f.field.len() as u64, f.value.len() as u64);
                        if f.expire_ms.is_some() {
                            per += if self.layout == Layout::Valkey90 {
                                16
                            } else {
                                8
                            };
                        }
                        n += 1;
                    }
                    obj(0) + self.dict(n) + per
                }
            },
            Value::ZSet(z) => match z.encoding_name() {
                "ziplist" | "listpack" => obj(0) + self.reported(blob_len(entry.raw_value)),
                _ => {
                    let (mut per, mut n) = (0, 0);
                    let walked = walk_collection(entry.type_id, entry.raw_value, |lens| {
                        per += self.zset_member(lens[0]);
                        n += 1;
                    });
                    if walked.is_none() {
                        (per, n) = (0, 0);
                        for (m, _) in z.iter().flatten() {
                            per += self.zset_member(m.len() as u64);
                            n += 1;
                        }
                    }
                    let nodes = (n as f64 * self.skiplist_node()).round() as u64;
                    // zset + zskiplist + the 32-level header node.
                    obj(0) + 16 + 32 + self.alloc(24 + 32 * 16) + self.dict(n) + per + nodes
                }
            },
            Value::List(l) => self.list(entry, l, &obj),
            Value::Stream(s) => obj(0) + self.stream(s),
            // Modules report their own sizes; the serialized size is the best guess here.
            Value::Module(_) => obj(0) + entry.raw_value.len() as u64,
        };
        key + value
    }

    /// A stream: its struct, the radix tree of its nodes, each node listpack, and per group
    /// and consumer its struct, its PEL tree and 24 bytes per pending entry. Redis prices a
    /// tree at 16 bytes per ID and 4 + 240 per tree node ("a fixed overhead" of 30 words);
    /// Valkey 8.1 on counts the tree's allocations.
    fn stream(&self, s: &rdb_parser::Stream<'_>) -> u64 {
        let valkey_trees = matches!(self.layout, Layout::Valkey81 | Layout::Valkey90);
        let tree = |mut ids: Vec<[u8; 16]>| {
            ids.sort_unstable();
            ids.dedup();
            let (mut nodes, mut allocated) = (0, self.alloc(32));
            rax_walk(&ids, 0, &mut |length| {
                nodes += 1;
                allocated += self.alloc(length);
            });
            if valkey_trees {
                allocated
            } else {
                16 * ids.len() as u64 + 244 * nodes
            }
        };
        let (stream, group, consumer) = match self.layout {
            Layout::Redis6 => (40, 32, 24),
            // 7.0 adds first/max-deleted IDs, entries-added and entries-read.
            Layout::Redis70 => (80, 40, 24),
            // 7.2 adds a consumer's active time.
            _ => (80, 40, 32),
        };
        // One walk of the nodes: each master ID, and its listpack's decoded length (stated
        // in the string header; nothing is decompressed).
        let (mut node_ids, mut listpacks) = (Vec::new(), 0);
        for (id, listpack) in s.nodes().flatten() {
            node_ids.push(id.to_raw());
            listpacks += self.reported(listpack.len() as u64);
        }
        let mut usage = stream + tree(node_ids) + listpacks;
        for g in s.groups() {
            let pel = g.pending().map(|p| p.id.to_raw()).collect();
            usage += group + tree(pel) + 24 * g.pending_count();
            for c in g.consumers() {
                let pel = c.pending().map(|id| id.to_raw()).collect();
                usage += consumer + c.name.len() as u64 + tree(pel);
            }
        }
        usage
    }

    fn list(&self, entry: &Entry<'_>, l: &rdb_parser::List<'_>, obj: &dyn Fn(u64) -> u64) -> u64 {
        match l.encoding_name() {
            "ziplist" => obj(0) + self.reported(blob_len(entry.raw_value)),
            "linkedlist" => {
                // Loaded into a quicklist of 8 KiB listpacks: approximate by the data.
                let bytes: u64 = l.iter().flatten().map(|e| e.len() as u64 + 2).sum();
                obj(0) + 40 + bytes.div_ceil(8192) * 32 + self.alloc(bytes + 7)
            }
            _ => {
                let nodes =
                    quicklist_node_sizes(entry.raw_value, l.encoding_name() == "quicklist2");
                let listpack_lists = !matches!(self.layout, Layout::Redis6 | Layout::Redis70);
                if let [(size, false)] = nodes.as_slice() {
                    if listpack_lists && *size <= 8192 {
                        return obj(0) + self.alloc(*size);
                    }
                }
                let node_cost: u64 = nodes
                    .iter()
                    .map(|&(size, _)| 32 + self.reported(size))
                    .sum();
                obj(0) + 40 + node_cost
            }
        }
    }
}

/// The sds header size for a string of `len` bytes (type 8 and up).
/// The mean number of child buckets a Valkey hashtable of `buckets` chains for `n`
/// entries: each bucket's load is Poisson with mean n / buckets, and a load of x > 7
/// needs ceil((x - 7) / 6) children (a chained bucket gives one slot to the link).
fn expected_child_buckets(n: u64, buckets: u64) -> f64 {
    let mean = n as f64 / buckets as f64;
    let mut p = (-mean).exp(); // P(load = 0)
    let mut children = 0.0;
    for x in 1..=200u64 {
        p *= mean / x as f64;
        if x > 7 {
            children += p * (x - 7).div_ceil(6) as f64;
        }
    }
    children * buckets as f64
}

/// An sds string's header size; `short_header` allows the 1-byte header under 32 bytes.
fn sds_header(len: u64, short_header: bool) -> u64 {
    match len {
        0..32 if short_header => 1,
        0..256 => 3,
        256..65536 => 5,
        65536..4294967296 => 9,
        _ => 17,
    }
}

fn sds_bytes(len: u64) -> u64 {
    match len {
        0..256 => 3,
        256..65536 => 5,
        _ => 9,
    }
}

/// An RDB string's length prefix: (decoded length, prefix bytes, stored bytes after the
/// prefix). Integer-encoded strings give `None`.
fn string_header(i: &[u8]) -> Option<(u64, usize, u64)> {
    let first = *i.first()?;
    match first >> 6 {
        0 => Some((u64::from(first & 0x3f), 1, u64::from(first & 0x3f))),
        1 => {
            let n = (u64::from(first & 0x3f) << 8) | u64::from(*i.get(1)?);
            Some((n, 2, n))
        }
        2 => {
            let (n, used) = big_len(i)?;
            Some((n, used, n))
        }
        _ if first == 0xC3 => {
            // LZF: compressed length, then the original length.
            let (clen, a) = any_len(i.get(1..)?)?;
            let (ulen, b) = any_len(i.get(1 + a..)?)?;
            Some((ulen, 1 + a + b, clen))
        }
        _ => None,
    }
}

fn big_len(i: &[u8]) -> Option<(u64, usize)> {
    match *i.first()? {
        0x80 => {
            let b: [u8; 4] = i.get(1..5)?.try_into().ok()?;
            Some((u64::from(u32::from_be_bytes(b)), 5))
        }
        0x81 => {
            let b: [u8; 8] = i.get(1..9)?.try_into().ok()?;
            Some((u64::from_be_bytes(b), 9))
        }
        _ => None,
    }
}

fn any_len(i: &[u8]) -> Option<(u64, usize)> {
    let first = *i.first()?;
    match first >> 6 {
        0 => Some((u64::from(first & 0x3f), 1)),
        1 => Some(((u64::from(first & 0x3f) << 8) | u64::from(*i.get(1)?), 2)),
        2 => big_len(i),
        _ => None,
    }
}

/// The decoded size of a value stored as one RDB string (a listpack, ziplist, intset).
fn blob_len(raw_value: &[u8]) -> u64 {
    string_header(raw_value).map_or(raw_value.len() as u64, |h| h.0)
}

/// Each quicklist node's decoded size and whether it is a PLAIN node.
fn quicklist_node_sizes(raw_value: &[u8], v2: bool) -> Vec<(u64, bool)> {
    let mut sizes = Vec::new();
    let Some((count, mut at)) = any_len(raw_value) else {
        return sizes;
    };
    for _ in 0..count.min(1 << 24) {
        let mut plain = false;
        if v2 {
            let Some((container, used)) = raw_value.get(at..).and_then(any_len) else {
                break;
            };
            plain = container == 1;
            at += used;
        }
        let Some((decoded, used, stored)) = raw_value.get(at..).and_then(string_header) else {
            break;
        };
        sizes.push((decoded, plain));
        at += used + stored as usize;
    }
    sizes
}

/// The decoded length of the RDB string at `i` and the bytes it takes, reading only its
/// header (integer encodings give their decimal length).
fn string_extent(i: &[u8]) -> Option<(u64, usize)> {
    let first = *i.first()?;
    let int_len = |v: i64| v.to_string().len() as u64;
    match first {
        0xC0 => Some((int_len(i64::from(*i.get(1)? as i8)), 2)),
        0xC1 => {
            let b: [u8; 2] = i.get(1..3)?.try_into().ok()?;
            Some((int_len(i64::from(i16::from_le_bytes(b))), 3))
        }
        0xC2 => {
            let b: [u8; 4] = i.get(1..5)?.try_into().ok()?;
            Some((int_len(i64::from(i32::from_le_bytes(b))), 5))
        }
        _ => {
            let (decoded, used, stored) = string_header(i)?;
            Some((decoded, used.checked_add(usize::try_from(stored).ok()?)?))
        }
    }
}

/// Walks a hash-table set (`[member]`), hash (`[field, value]`) or skiplist sorted set
/// (`[member]`, scores skipped) as stored, calling `f` with each element's decoded
/// lengths. Nothing is decompressed. `None` for other types or a malformed body (the
/// parser has already checked it; the caller then falls back to its iterator).
fn walk_collection(type_id: u8, raw: &[u8], mut f: impl FnMut([u64; 2])) -> Option<()> {
    use rdb_parser::format::type_id as t;
    let (count, mut at) = any_len(raw)?;
    for _ in 0..count {
        let (first, used) = raw.get(at..).and_then(string_extent)?;
        at += used;
        let second = match type_id {
            t::SET => 0,
            t::HASH => {
                let (value, used) = raw.get(at..).and_then(string_extent)?;
                at += used;
                value
            }
            t::ZSET_2 => {
                at += 8;
                0
            }
            t::ZSET => {
                let n = *raw.get(at)?;
                at += 1 + if n >= 253 { 0 } else { usize::from(n) };
                0
            }
            _ => return None,
        };
        f([first, second]);
    }
    (at <= raw.len()).then_some(())
}

/// The first `want` bytes LZF-decompressed from `compressed`: enough for a listpack or
/// ziplist header without inflating the node.
fn lzf_prefix(compressed: &[u8], want: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(want + 264);
    let mut at = 0;
    while out.len() < want {
        let ctrl = usize::from(*compressed.get(at)?);
        at += 1;
        if ctrl < 32 {
            let lit = compressed.get(at..at + ctrl + 1)?;
            out.extend_from_slice(lit);
            at += ctrl + 1;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*compressed.get(at)?);
                at += 1;
            }
            len += 2;
            let back = ((ctrl & 0x1f) << 8) + usize::from(*compressed.get(at)?) + 1;
            at += 1;
            // Byte by byte: a back-reference may overlap what it produces.
            let from = out.len().checked_sub(back)?;
            for i in from..from + len {
                let b = *out.get(i)?;
                out.push(b);
            }
        }
    }
    Some(out)
}

/// The element count a single-blob value (listpack, ziplist, intset) declares in its
/// header; for a compressed blob only the header is inflated. `None` for other types
/// or a saturated count.
pub fn blob_count(type_id: u8, raw_value: &[u8]) -> Option<u64> {
    use rdb_parser::format::type_id as t;
    let (_, used, stored) = string_header(raw_value)?;
    let body = raw_value.get(used..used.checked_add(usize::try_from(stored).ok()?)?)?;
    let inflated;
    let header: &[u8] = if raw_value.first() == Some(&0xC3) {
        inflated = lzf_prefix(body, 10)?;
        &inflated
    } else {
        body
    };
    let u16_at = |at: usize| -> Option<u64> {
        let n = u16::from_le_bytes(header.get(at..at + 2)?.try_into().ok()?);
        (n != u16::MAX).then_some(u64::from(n))
    };
    match type_id {
        t::SET_LISTPACK => u16_at(4),
        t::HASH_LISTPACK | t::ZSET_LISTPACK => u16_at(4).map(|n| n / 2),
        t::LIST_ZIPLIST => u16_at(8),
        t::HASH_ZIPLIST | t::ZSET_ZIPLIST => u16_at(8).map(|n| n / 2),
        t::SET_INTSET => {
            let n = u32::from_le_bytes(header.get(4..8)?.try_into().ok()?);
            Some(u64::from(n))
        }
        _ => None,
    }
}

/// A quicklist's element count from its node headers (listpack or ziplist counts, one
/// per PLAIN node), without decoding an element; `None` when a node's
/// header count is saturated, and the elements must be counted by walking them. A
/// compressed node has only its header inflated.
pub fn quicklist_len(raw_value: &[u8], v2: bool) -> Option<u64> {
    let (count, mut at) = any_len(raw_value)?;
    let mut total = 0u64;
    for _ in 0..count {
        let mut plain = false;
        if v2 {
            let (container, used) = raw_value.get(at..).and_then(any_len)?;
            plain = container == 1;
            at += used;
        }
        let compressed = *raw_value.get(at)? == 0xC3;
        let (decoded, used, stored) = raw_value.get(at..).and_then(string_header)?;
        let stored_body = raw_value.get(at + used..at + used + stored as usize)?;
        at += used + stored as usize;
        let header;
        let body: &[u8] = if compressed && !plain {
            // Only the header is inflated: listpack count at 4..6, ziplist at 8..10.
            header = lzf_prefix(stored_body, 10)?;
            &header
        } else {
            stored_body
        };
        if plain {
            total += 1;
            continue;
        }
        let n = if v2 {
            u16::from_le_bytes(body.get(4..6)?.try_into().ok()?)
        } else {
            u16::from_le_bytes(body.get(8..10)?.try_into().ok()?)
        };
        if n == u16::MAX || decoded < 7 {
            return None;
        }
        total += u64::from(n);
    }
    Some(total)
}

/// Walks the radix tree (rax) Redis and Valkey build for `keys` (sorted, distinct, all 16
/// bytes; the first `depth` bytes already matched) and calls `node` with each node's
/// length: one node per branching point, one per run of single-child steps (a compressed
/// node) and one per key's end, which holds a value pointer. An empty tree is its root.
fn rax_walk(keys: &[[u8; 16]], depth: usize, node: &mut impl FnMut(u64)) {
    // A 4-byte header, the edge bytes padded to a pointer, then the child pointers.
    let length = |chars: u64, children: u64| 4 + chars + (8 - (chars + 4) % 8) % 8 + 8 * children;
    match keys {
        [] => node(length(0, 0)),
        [_] if depth == 16 => node(length(0, 0) + 8),
        [_] => {
            // The rest of the key in one compressed node, then the key's end.
            node(length(16 - depth as u64, 1));
            node(length(0, 0) + 8);
        }
        [first, .., last] => {
            let common = first
                .get(depth..)
                .unwrap_or_default()
                .iter()
                .zip(last.get(depth..).unwrap_or_default())
                .take_while(|(a, b)| a == b)
                .count();
            if common > 0 {
                node(length(common as u64, 1));
            }
            let at = depth + common;
            let mut children = 0;
            let mut rest = keys;
            while let Some(head) = rest.first() {
                // Distinct keys differ at `at`: the group is never empty, the loop ends.
                let split = rest.partition_point(|k| k.get(at) == head.get(at)).max(1);
                let (group, tail) = rest.split_at(split);
                rax_walk(group, at + 1, node);
                children += 1;
                rest = tail;
            }
            node(length(children, children));
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn jemalloc_classes() {
        let got: Vec<u64> = [1, 8, 9, 17, 33, 128, 129, 161, 257, 1025, 4097]
            .iter()
            .map(|&n| jemalloc_class(n))
            .collect();
        assert_eq!(got, [8, 8, 16, 32, 48, 128, 160, 192, 320, 1280, 5120]);
    }

    #[test]
    fn bundled_jemalloc_steps_by_8_to_64() {
        let got: Vec<u64> = [0, 1, 9, 24, 25, 41, 64, 65, 129]
            .iter()
            .map(|&n| Allocator::Jemalloc.usable(n))
            .collect();
        assert_eq!(got, [8, 8, 16, 24, 32, 48, 64, 80, 160]);
        assert_eq!(Allocator::JemallocQuantum16.usable(24), 32);
    }

    /// Node lengths of the trees Redis builds (4-byte header, edge bytes padded to 8,
    /// child pointers, a value pointer at each key's end).
    #[test]
    fn radix_tree_nodes() {
        let walk = |keys: &[[u8; 16]]| {
            let mut lengths = Vec::new();
            rax_walk(keys, 0, &mut |n| lengths.push(n));
            lengths
        };
        let key = |last: u8| {
            let mut k = [0u8; 16];
            k[15] = last;
            k
        };
        // The empty root.
        assert_eq!(walk(&[]), [8]);
        // A 16-byte compressed node (4 + 16 + 4 + 8), then the key's end (8 + 8).
        assert_eq!(walk(&[key(1)]), [32, 16]);
        // 15 shared bytes (4 + 15 + 5 + 8), two ends, and a 2-way branch (4 + 2 + 2 + 16).
        assert_eq!(walk(&[key(1), key(2)]), [32, 16, 16, 24]);
    }

    #[test]
    fn child_buckets_are_rare_below_the_fill_limit() {
        // 129 entries in 32 buckets: about 5% of buckets hold more than 7.
        let c = expected_child_buckets(129, 32);
        assert!((1.0..2.5).contains(&c), "{c}");
        assert!(expected_child_buckets(10, 32) < 1e-6);
    }

    #[test]
    fn libc_usable_sizes() {
        let got: Vec<u64> = [1, 24, 25, 40, 41]
            .iter()
            .map(|&n| Allocator::Libc.usable(n))
            .collect();
        assert_eq!(got, [24, 24, 40, 40, 56]);
    }

    #[test]
    fn lzf_prefix_matches_full_decompression() {
        let data: Vec<u8> = (0..2000u32).map(|i| (i % 7 + i / 300) as u8).collect();
        let compressed = lzf::compress(&data).expect("compressible");
        for want in [1, 6, 10, 100] {
            let got = lzf_prefix(&compressed, want).expect("prefix");
            assert!(got.len() >= want);
            assert_eq!(got[..want], data[..want]);
        }
        assert_eq!(lzf_prefix(&compressed[..1], 10), None);
    }

    #[test]
    fn walks_hashtable_bodies_without_decoding() {
        // A hash of 2 pairs: "ab" => 7 (int-encoded), "c" => LZF (clen 2, ulen 40).
        let raw = [2, 2, b'a', b'b', 0xC0, 7, 1, b'c', 0xC3, 2, 40, 0, 0];
        let mut seen = Vec::new();
        assert_eq!(
            walk_collection(rdb_parser::format::type_id::HASH, &raw, |l| seen.push(l)),
            Some(())
        );
        assert_eq!(seen, [[2, 1], [1, 40]]);
        assert_eq!(
            walk_collection(rdb_parser::format::type_id::HASH, &raw[..8], |_| {}),
            None
        );
    }

    #[test]
    fn string_headers() {
        assert_eq!(string_header(&[5, b'a']), Some((5, 1, 5)));
        assert_eq!(string_header(&[0x41, 0x00]), Some((256, 2, 256)));
        assert_eq!(string_header(&[0x80, 0, 1, 0, 0]), Some((65536, 5, 65536)));
        assert_eq!(string_header(&[0xC3, 4, 10]), Some((10, 3, 4)));
        assert_eq!(string_header(&[0xC0, 1]), None);
        assert_eq!(string_header(&[]), None);
    }
}
