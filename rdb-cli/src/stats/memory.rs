//! An estimate of what each key costs in a server's memory, the way `MEMORY USAGE key
//! SAMPLES 0` counts it: the value's object and allocations plus the key's entry in the
//! keyspace. The model and its measured error are in `docs/memory-model.md`.
//!
//! Everything is computed from lengths the file already states (string lengths, blob
//! sizes, element counts); collection elements are walked only for the encodings whose
//! in-memory form allocates per element (hash tables, skiplists, linked lists).

use rdb_parser::{Entry, Value, VectorSet};
use rdb_writer::server::{Product, ServerVersion};

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

/// A vector set's fixed part as `MEMORY USAGE` reports it beyond the key and object the
/// model prices for every value: the module's `HNSW` (1672 bytes) and `vsetObject`
/// structs, as measured on each server (exact for sets of 1 to 400 elements).
const VSET_FIXED_86: u64 = 1784;
const VSET_FIXED_80: u64 = 1768;

/// Which server layout the estimate follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Redis 6.x: ziplists; `MEMORY USAGE` counts blob lengths, not allocations.
    Redis6,
    /// Redis 7.0: listpacks, keys as separate sds strings, lists always quicklists.
    Redis70,
    /// Redis 7.2 and 7.4: keys embedded in the dict entry, small lists as listpacks.
    Redis74,
    /// Redis 8.0: keys as separate sds strings again, small lists as listpacks.
    Redis8,
    /// Redis 8.6: the key (and expiry) inside the value object, hash fields and values in
    /// one entry, sorted-set members inside their skiplist nodes; `MEMORY USAGE` sums the
    /// sizes each structure tracks, which leaves listpacks, intsets and short strings
    /// unrounded.
    Redis86,
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
    /// The layout of the server that wrote the snapshot, from its version
    /// ([`ServerVersion::from_aux`]), else from its header's format version.
    pub fn for_server(server: Option<ServerVersion>, rdb_version: u32) -> Layout {
        use Product::Valkey;
        match server.map(|v| (v.product, v.major, v.minor)) {
            Some((Valkey, 8, 0)) => Layout::Valkey80,
            Some((Valkey, 8, _)) => Layout::Valkey81,
            Some((Valkey, 9.., _)) => Layout::Valkey90,
            // A VALKEY080 file, whatever (or if) it says its version is.
            Some((Valkey, _, _)) | None if rdb_version >= 80 => Layout::Valkey90,
            // 8.2 and 8.4 already embed the key, but are not measured: 8.0's layout.
            Some((_, 8, minor)) if minor < 6 => Layout::Redis8,
            Some((_, 8.., _)) => Layout::Redis86,
            Some((_, 7, 0)) => Layout::Redis70,
            Some((_, 7, _)) => Layout::Redis74,
            Some(_) => Layout::Redis6,
            None if rdb_version >= 13 => Layout::Redis86,
            None if rdb_version >= 12 => Layout::Redis74,
            None if rdb_version >= 10 => Layout::Redis70,
            None => Layout::Redis6,
        }
    }

    fn alloc(&self, n: u64) -> u64 {
        self.allocator.usable(n)
    }

    /// Redis 6 reports blob lengths and sds lengths as written, not rounded up; Redis 8.6
    /// reports a listpack's or intset's own length (it tracks requested sizes).
    fn reported(&self, n: u64) -> u64 {
        if matches!(self.layout, Layout::Redis6 | Layout::Redis86) {
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

    /// A string held as its own sds (set members, raw string values). Redis 8.6 counts a
    /// 1-byte-header string (1 to 31 bytes) at its requested size: that header has no room
    /// for the allocation's size.
    fn member_sds(&self, len: u64) -> u64 {
        if self.layout == Layout::Redis86 && (1..32).contains(&len) {
            1 + len + 1
        } else {
            self.sds(len, true)
        }
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
            Layout::Valkey81 | Layout::Valkey90 | Layout::Redis86 => 0,
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
            // The expiry sits before the object; a key of 128 bytes or more always has
            // room for one. The key's sds has a 1-byte header under 32 bytes.
            Layout::Redis86 => {
                let expire = if has_expire || key_len >= 128 { 8 } else { 0 };
                let key = 1 + sds_header(key_len, true) + key_len + 1;
                self.alloc(16 + expire + key + embedded_value)
            }
            Layout::Redis6 if embedded_value > 0 => 16 + embedded_value,
            _ => self.alloc(16 + embedded_value).max(16),
        }
    }

    /// Whether a string value of `len` bytes is kept in the object's own allocation
    /// (EMBSTR).
    fn embeds(&self, key_len: u64, len: u64) -> bool {
        let limit = match self.layout {
            // Valkey 9: whatever fits a 128-byte allocation with the key.
            Layout::Valkey90 => 128u64.saturating_sub(16 + 1 + 3 + key_len + 1 + 3 + 1),
            Layout::Valkey81 => 128u64
                .saturating_sub(16 + 1 + 3 + key_len + 1 + 3 + 1)
                .min(43),
            // Embedded while object, key and value stay within a 64-byte cache line, the
            // key counted with a 1-byte header and no expiry (measured: exact for keys of
            // 1-300 and values of 0-300 bytes, with and without expiry).
            Layout::Redis86 => return key_len + len <= 41,
            _ => 44,
        };
        len <= limit
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

    /// Redis 8.6 loads a hash with field TTLs by growing its table, not sizing it first:
    /// when the last growth left fewer inserts after it than the old table has occupied
    /// buckets (about 63% of them), the old half-size table is still there, half rehashed
    /// (measured: exact for 1-100 fields).
    fn table_left_by_growth(&self, n: u64) -> u64 {
        let slots = n.max(4).next_power_of_two();
        if self.layout != Layout::Redis86 || slots == 4 {
            return 0;
        }
        let old = slots / 2;
        let inserts_after_growth = n.saturating_sub(old + 1) as f64;
        let occupied = old as f64 * (1.0 - (-1.0f64).exp());
        if inserts_after_growth < occupied {
            self.alloc(8 * old)
        } else {
            0
        }
    }

    /// A set member's cost beyond the table slot.
    fn set_member(&self, len: u64) -> u64 {
        match self.layout {
            // Valkey 8.0 keeps a member in its bucket when it is alone there and needs an
            // entry otherwise: about 4 bytes per member on average (measured).
            Layout::Valkey80 => self.sds(len, true) + 4,
            Layout::Valkey81 | Layout::Valkey90 => self.sds(len, true),
            _ => self.member_sds(len) + 24,
        }
    }

    /// A hash field's cost beyond the table slot.
    fn hash_field(&self, field: u64, value: u64) -> u64 {
        match self.layout {
            // One allocation: the entry with the field embedded, the value separate.
            Layout::Valkey81 | Layout::Valkey90 => self.alloc(field + value + 10),
            // One entry holds the field and the value (at its requested size) while both
            // fit 128 bytes; otherwise the entry holds the field (3-byte header at least)
            // and a pointer to the value's own sds (measured: exact for fields of 1-300 and
            // values of 0-1000 bytes).
            Layout::Redis86 => {
                let field_sds = sds_header(field, true) + field + 1;
                let embedded_value = 3 + value + 1;
                if field_sds + embedded_value <= 128 {
                    field_sds + embedded_value + 24
                } else {
                    sds_header(field, false) + field + 1 + 8 + self.sds(value, false) + 24
                }
            }
            _ => self.sds(field, true) + self.sds(value, true) + 24,
        }
    }

    /// A sorted-set member's cost beside its skiplist node's levels: its string and its
    /// dict entry. Valkey 9 keeps the string inside the node, after the score, backward
    /// pointer, first level and a header-size byte (measured: exact for members of 4-100
    /// bytes, the levels above the first added apart).
    /// Redis 8.6 keeps it inside the node too, after the score, backward pointer and the
    /// levels, so the node's mean size over the levels is priced here (measured: the
    /// minimum of 200 one-member sets exact).
    fn zset_member(&self, len: u64) -> f64 {
        match self.layout {
            Layout::Valkey90 => self.alloc(33 + sds_header(len, true) + len + 1) as f64,
            Layout::Valkey81 => self.sds(len, true) as f64,
            Layout::Redis86 => 24.0 + self.mean_node(16 + sds_header(len, true) + len + 1),
            _ => (self.sds(len, true) + 24) as f64,
        }
    }

    /// The mean allocation of a skiplist node: member pointer, score and backward pointer,
    /// then 16 bytes per level, the level drawn at p = 1/4. The levels are random, so a
    /// server's figure for n members varies by about 11 * sqrt(n) bytes.
    fn skiplist_node(&self) -> f64 {
        match self.layout {
            // The first level is in `zset_member`; a third of a level more on average.
            Layout::Valkey90 => 16.0 / 3.0,
            // The whole node is in `zset_member`.
            Layout::Redis86 => 0.0,
            _ => self.mean_node(24),
        }
    }

    /// The mean allocation of a node of `fixed` bytes plus 16 per level (p = 1/4).
    fn mean_node(&self, fixed: u64) -> f64 {
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
                    rdb_parser::RdbString::Raw(_) if self.embeds(key_len, len) => obj(3 + len + 1),
                    // LZF strings are decompressed into a plain sds, never embedded (8.6:
                    // a string that does not embed is its own sds, short ones unrounded).
                    _ if self.layout == Layout::Redis86 => obj(0) + self.member_sds(len),
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
                    // 8.6's struct is 24 bytes (measured on 1-5 fields).
                    let header = if self.layout == Layout::Redis86 {
                        24
                    } else {
                        32
                    };
                    obj(0) + header + self.reported(lp)
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
                            per += match self.layout {
                                Layout::Valkey90 => 16,
                                // Measured: 18 per field with a TTL, whatever the lengths.
                                Layout::Redis86 => 18,
                                _ => 8,
                            };
                        }
                        n += 1;
                    }
                    obj(0) + self.dict(n) + per + self.table_left_by_growth(n)
                }
            },
            Value::ZSet(z) => match z.encoding_name() {
                "ziplist" | "listpack" => obj(0) + self.reported(blob_len(entry.raw_value)),
                _ => {
                    let (mut per, mut n) = (0.0, 0);
                    let walked = walk_collection(entry.type_id, entry.raw_value, |lens| {
                        per += self.zset_member(lens[0]);
                        n += 1;
                    });
                    if walked.is_none() {
                        (per, n) = (0.0, 0);
                        for (m, _) in z.iter().flatten() {
                            per += self.zset_member(m.len() as u64);
                            n += 1;
                        }
                    }
                    let nodes = (per + n as f64 * self.skiplist_node()).round() as u64;
                    // zset + zskiplist + the 32-level header node; 8.6's zskiplist tracks
                    // its size (40 bytes, allocated) and its nodes have no member pointer.
                    let lists = if self.layout == Layout::Redis86 {
                        self.alloc(40) + self.alloc(16 + 32 * 16)
                    } else {
                        32 + self.alloc(24 + 32 * 16)
                    };
                    obj(0) + 16 + lists + self.dict(n) + nodes
                }
            },
            Value::List(l) => self.list(entry, l, &obj),
            Value::Stream(s) => obj(0) + self.stream(s),
            // Modules report their own sizes. Vector sets are priced the way their module's
            // callback counts; for any other module the serialized size is the best guess.
            Value::Module(m) => {
                let set = m.vector_set().and_then(Result::ok);
                obj(0)
                    + set
                        .and_then(|set| self.vector_set(&set))
                        .unwrap_or(entry.raw_value.len() as u64)
            }
        };
        key + value
    }

    /// What the vectorset module's `mem_usage` callback (`VectorSetMemUsage`) reports for
    /// `set` as a server holds it after loading the snapshot; `None` for a corrupt set.
    ///
    /// The callback does not walk the graph: it counts its fixed structs, per node a node
    /// struct, the stored vector, 4/3 of a layer struct, the head node's layer-0 link
    /// capacity in pointers plus a third of half of it for the upper layers, the mean
    /// allocation of the element strings among the first 20 nodes of its list (times the
    /// count), the mean of their attribute strings (64 when none of them has one; times
    /// the number of elements with attributes), and 16 bytes of dictionary per element.
    /// A load inserts each node at the list's head, so the head is the file's last element
    /// and the first 20 are its last 20, backwards.
    fn vector_set(&self, set: &VectorSet<'_>) -> Option<u64> {
        // (the fixed structs, a node struct, a layer struct): 8.0 keeps each layer's
        // worst link in memory too, though it does not save it.
        let (fixed, node, layer) = match self.layout {
            Layout::Redis86 => (VSET_FIXED_86, 312, 24),
            _ => (VSET_FIXED_80, 312, 24),
        };
        let mut size = fixed;
        if let Some(p) = set.projection() {
            size += 4 * u64::from(p.input_dim()) * u64::from(p.output_dim());
        }
        let n = set.len();
        if n == 0 {
            return Some(size);
        }
        // The last 20 elements' string allocations, and the last one's layer-0 capacity.
        let mut last: std::collections::VecDeque<(u64, Option<u64>)> = Default::default();
        let mut with_attributes = 0u64;
        let mut head_links = 0u64;
        for e in set.elements() {
            let e = e.ok()?;
            if last.len() == 20 {
                last.pop_front();
            }
            let attributes = e.attributes().map(|a| self.module_string(a.len() as u64));
            with_attributes += u64::from(attributes.is_some());
            last.push_back((self.module_string(e.name().len() as u64), attributes));
            head_links = e.max_links(0).unwrap_or(0);
        }
        // A loaded node gets at least 2 * M links at layer 0, more if the file says so.
        let level0 = head_links.max(2 * u64::from(set.m()));
        size += node * n;
        size += set.quantization().vector_bytes(u64::from(set.dim())) * n;
        size += layer * n * 4 / 3;
        size += 8 * level0 * n;
        size += 8 * (level0 / 2) * n / 3;
        let names: u64 = last.iter().map(|(name, _)| name).sum();
        size += names / last.len() as u64 * n;
        let (attr_sum, attr_n) = last
            .iter()
            .filter_map(|(_, a)| *a)
            .fold((0, 0), |(s, c), a| (s + a, c + 1));
        let (attr_sum, attr_n) = if attr_n == 0 {
            (64, 1)
        } else {
            (attr_sum, attr_n)
        };
        size += attr_sum / attr_n * with_attributes;
        size += 16 * n;
        Some(size)
    }

    /// `RedisModule_MallocSizeString` of a string loaded from the snapshot: up to 44
    /// bytes embedded in its object, longer ones in their own sds. A string made by a
    /// command takes `alloc(20 + len)`; a loaded one, measured on 8.0 and 8.6 (16-byte
    /// quantum) for every length of 1-50, takes 32 up to 12 bytes, 48 up to 30, 64 up to
    /// 44: strings of 29 and 30 bytes stay a class lower than `alloc(20 + len)` says.
    fn module_string(&self, len: u64) -> u64 {
        match len {
            0..=12 if self.allocator == Allocator::JemallocQuantum16 => 32,
            13..=30 if self.allocator == Allocator::JemallocQuantum16 => 48,
            0..=44 => self.alloc(16 + 3 + len + 1),
            _ => 16 + self.sds(len, false),
        }
    }

    /// A stream: its struct, the radix tree of its nodes, each node listpack, and per group
    /// and consumer its struct, its PEL tree and 24 bytes per pending entry. Redis prices a
    /// tree at 16 bytes per ID and 4 + 240 per tree node ("a fixed overhead" of 30 words);
    /// Valkey 8.1 on and Redis 8.6 count the tree's allocations.
    fn stream(&self, s: &rdb_parser::Stream<'_>) -> u64 {
        if self.layout == Layout::Redis86 {
            return self.stream_86(s);
        }
        let valkey_trees = matches!(self.layout, Layout::Valkey81 | Layout::Valkey90);
        let tree = |ids: Vec<[u8; 16]>| {
            if valkey_trees {
                return self.tree_allocated(ids.iter().map(|id| id.as_slice()).collect());
            }
            let mut ids: Vec<&[u8]> = ids.iter().map(|id| id.as_slice()).collect();
            ids.sort_unstable();
            ids.dedup();
            let mut nodes = 0;
            rax_walk(&ids, 0, &mut |_| nodes += 1);
            16 * ids.len() as u64 + 244 * nodes
        };
        let (stream, group, consumer) = match self.layout {
            Layout::Redis6 => (40, 32, 24),
            // 7.0 adds first/max-deleted IDs, entries-added and entries-read.
            Layout::Redis70 => (80, 40, 24),
            // 7.2 adds a consumer's active time.
            _ => (80, 40, 32),
        };
        let mut usage = stream + self.stream_nodes(s, tree);
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

    /// The node tree and the node listpacks, in one walk of the nodes: each master ID and
    /// its listpack's decoded length (stated in the string header; nothing is decompressed).
    fn stream_nodes(&self, s: &rdb_parser::Stream<'_>, tree: impl Fn(Vec<[u8; 16]>) -> u64) -> u64 {
        let (mut node_ids, mut listpacks) = (Vec::new(), 0);
        for (id, listpack) in s.nodes().flatten() {
            node_ids.push(id.to_raw());
            listpacks += self.reported(listpack.len() as u64);
        }
        tree(node_ids) + listpacks
    }

    /// A radix tree as allocated: its 32-byte struct and each node.
    fn tree_allocated(&self, mut keys: Vec<&[u8]>) -> u64 {
        keys.sort_unstable();
        keys.dedup();
        let mut allocated = self.alloc(32);
        rax_walk(&keys, 0, &mut |length| allocated += self.alloc(length));
        allocated
    }

    /// Redis 8.6 tracks what a stream allocates: a 160-byte struct, every tree as
    /// allocated (nodes, group names, each group's consumer names and PEL, each consumer's
    /// PEL), and, once an entry is pending, a tree of the pending IDs naming the groups
    /// that hold each. A group costs 64 bytes, a consumer 32 and its name, and each entry
    /// pending in a group 64 (measured with the 16-byte quantum: exact for 1-3 groups,
    /// consumers of 1-40 bytes and 1-100 pending entries).
    fn stream_86(&self, s: &rdb_parser::Stream<'_>) -> u64 {
        let tree = |keys: Vec<&[u8]>| self.tree_allocated(keys);
        let mut usage =
            160 + self.stream_nodes(s, |ids| tree(ids.iter().map(|id| id.as_slice()).collect()));
        // Idempotent producers: 32 bytes each (whatever the name's length), and each
        // remembered iid one allocation of 32 bytes and the iid (measured: exact for
        // names of 1-40 and iids of 1-69 bytes, 1-10 iids).
        for p in s.idmp.iter().flat_map(|idmp| idmp.producers()) {
            usage += 32;
            usage += p
                .entries()
                .map(|e| self.alloc(32 + e.iid.len() as u64))
                .sum::<u64>();
        }
        if s.group_count() == 0 {
            return usage;
        }
        let groups: Vec<_> = s.groups().collect();
        usage += tree(groups.iter().map(|g| g.name.as_ref()).collect());
        let mut pending = Vec::new();
        for g in &groups {
            let pel: Vec<[u8; 16]> = g.pending().map(|p| p.id.to_raw()).collect();
            let consumers: Vec<_> = g.consumers().collect();
            let names = consumers.iter().map(|c| c.name.as_ref()).collect();
            usage += 64 + tree(pel.iter().map(|id| id.as_slice()).collect()) + tree(names);
            usage += 64 * pel.len() as u64;
            for c in &consumers {
                let pel: Vec<[u8; 16]> = c.pending().map(|id| id.to_raw()).collect();
                usage += 32 + self.member_sds(c.name.len() as u64);
                usage += tree(pel.iter().map(|id| id.as_slice()).collect());
            }
            pending.extend(pel);
        }
        if !pending.is_empty() {
            usage += tree(pending.iter().map(|id| id.as_slice()).collect());
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
                        return obj(0) + self.reported(*size);
                    }
                }
                // 8.6 counts the quicklist and each node as allocated, 48 bytes each with
                // the 16-byte quantum (measured on lists of 3 to 13 nodes, PLAIN and not).
                let (list, node) = if self.layout == Layout::Redis86 {
                    (self.alloc(40), self.alloc(40))
                } else {
                    (40, 32)
                };
                let node_cost: u64 = nodes
                    .iter()
                    .map(|&(size, _)| node + self.reported(size))
                    .sum();
                obj(0) + list + node_cost
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

/// Walks the radix tree (rax) Redis and Valkey build for `keys` (sorted, distinct; the
/// first `depth` bytes already matched) and calls `node` with each node's length: one node
/// per branching point, one per run of single-child steps (a compressed node; a run stops
/// where a key ends) and one per key's end, which holds a value pointer. An empty tree is
/// its root.
fn rax_walk(keys: &[&[u8]], depth: usize, node: &mut impl FnMut(u64)) {
    // A 4-byte header, the edge bytes padded to a pointer, then the child pointers.
    let length = |chars: u64, children: u64| 4 + chars + (8 - (chars + 4) % 8) % 8 + 8 * children;
    // Sorted and distinct: only the first key can end here, every other one is longer.
    let ends_here = keys.first().is_some_and(|k| k.len() == depth);
    let value = if ends_here { 8 } else { 0 };
    let rest = keys.get(usize::from(ends_here)..).unwrap_or_default();
    let (Some(first), Some(last)) = (rest.first(), rest.last()) else {
        node(length(0, 0) + value);
        return;
    };
    let shortest = rest.iter().map(|k| k.len()).min().unwrap_or(depth);
    let common = first
        .get(depth..)
        .unwrap_or_default()
        .iter()
        .zip(last.get(depth..).unwrap_or_default())
        .take_while(|(a, b)| a == b)
        .count()
        .min(shortest - depth);
    if common > 0 {
        node(length(common as u64, 1) + value);
        rax_walk(rest, depth + common, node);
        return;
    }
    let mut children = 0;
    let mut group = rest;
    while let Some(head) = group.first() {
        // Every key here is longer than `depth` and they differ at it: the group is never
        // empty, the loop ends.
        let split = group
            .partition_point(|k| k.get(depth) == head.get(depth))
            .max(1);
        let (same, tail) = group.split_at(split);
        rax_walk(same, depth + 1, node);
        children += 1;
        group = tail;
    }
    node(length(children, children) + value);
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
            let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_slice()).collect();
            let mut lengths = Vec::new();
            rax_walk(&keys, 0, &mut |n| lengths.push(n));
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

    /// Keys that end where others go on (consumer and group names): the node where a key
    /// ends carries a value pointer, and a compressed run stops there.
    #[test]
    fn radix_tree_nodes_of_prefix_keys() {
        let mut lengths = Vec::new();
        rax_walk(&[b"a".as_slice(), b"ab"], 0, &mut |n| lengths.push(n));
        // "a" (4 + 1 + 3 + 8), the key "a" with its child "b" (16 + 8), the end of "ab".
        assert_eq!(lengths, [16, 24, 16]);
        lengths.clear();
        // "g" shared, each name's end, then the 3-way branch (4 + 3 + 1 + 24).
        rax_walk(&[b"ga".as_slice(), b"gb", b"gc"], 0, &mut |n| {
            lengths.push(n)
        });
        assert_eq!(lengths, [16, 16, 16, 16, 32]);
    }

    #[test]
    fn layouts_by_server_version() {
        let redis = |v| Some(ServerVersion::parse(Product::Redis, v));
        let valkey = |v| Some(ServerVersion::parse(Product::Valkey, v));
        assert_eq!(Model::for_server(redis("8.6.3"), 13), Layout::Redis86);
        assert_eq!(Model::for_server(redis("8.0.2"), 12), Layout::Redis8);
        assert_eq!(Model::for_server(redis("8.4.0"), 12), Layout::Redis8);
        assert_eq!(Model::for_server(None, 13), Layout::Redis86);
        assert_eq!(Model::for_server(valkey("9.0.0"), 80), Layout::Valkey90);
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
