//! The one pass: each core reads a piece of the file and folds its keys ([`KeyFacts`])
//! into bounded aggregates of its own ([`Stats`]): fixed histograms, top-N heaps,
//! 16384-slot arrays and a prefix trie capped in nodes. The pieces' aggregates are joined
//! in file order, to what one sequence would give (else the file is read again, as a
//! pipeline). Memory stays flat however big the file is.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use rdb_parser::{Checksum, Entry, Function, Item, ParserBuilder, Value};
use rdb_pipeline::{Spanned, Stretch, UNKNOWN_DB};
use rdb_writer::slot::{hash_tag, key_slot, SLOTS};

use super::memory::Model;
use crate::Failure;

/// What the report is asked to look at.
#[derive(Debug, Clone)]
pub struct Options {
    /// How many biggest keys to keep.
    pub top: usize,
    /// Bytes that end a key-prefix segment.
    pub separators: Vec<u8>,
    /// How many segments deep the prefix breakdown goes.
    pub depth: usize,
    /// "Now" for expiry questions (Unix ms); `None`: the snapshot's ctime, else the clock.
    pub now_ms: Option<i64>,
    /// How many shards the balance section splits the slots into.
    pub shards: usize,
    /// The memory model; `None`: from the snapshot's server version.
    pub model: Option<Model>,
    pub allocator: super::memory::Allocator,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            top: 20,
            separators: b":|".to_vec(),
            depth: 3,
            now_ms: None,
            shards: 3,
            model: None,
            allocator: super::memory::Allocator::Jemalloc,
        }
    }
}

/// A fast non-cryptographic hasher for the trie and tag maps (their keys come from the
/// file, but a collision only costs time, and the maps are capped in size).
#[derive(Debug, Default, Clone, Copy)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x517c_c1b7_2722_0a95;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.0 = (self.0.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for &b in chunks.remainder() {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(K);
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A map keyed by byte strings, hashed with [`FastHasher`].
pub type BytesMap<V> = HashMap<Vec<u8>, V, std::hash::BuildHasherDefault<FastHasher>>;

/// The most trie nodes the prefix breakdown makes; a later new prefix counts at its parent.
pub const MAX_PREFIX_NODES: usize = 50_000;
/// The most children one prefix keeps; past it the prefix is collapsed into "prefix*"
/// (IDs in a middle segment would take all the nodes, and listing them says nothing).
pub const MAX_CHILDREN: usize = 1000;
/// Keys whose slot counts wait to be added together (see `Stats::slot_pending`).
const SLOT_PENDING: usize = 512;

/// The most distinct `{tag}`s counted exactly.
pub const MAX_TAGS: usize = 65_536;

/// Type names in report order.
pub const TYPES: [&str; 7] = ["string", "list", "set", "zset", "hash", "stream", "module"];

/// Keys, elements, serialized bytes and estimated memory of some group of keys.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub keys: u64,
    pub elements: u64,
    pub bytes: u64,
    pub memory: u64,
}

impl Totals {
    fn add(&mut self, f: &KeyFacts<'_>) {
        self.keys += 1;
        self.elements += f.elements;
        self.bytes += f.bytes;
        self.memory += f.memory;
    }
}

/// Per-database counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DbStats {
    pub keys: u64,
    pub expires: u64,
    /// Keys whose expiry is at or before "now".
    pub expired: u64,
    pub bytes: u64,
    pub memory: u64,
}

/// A histogram with 8 sub-buckets per power of two: quantiles within 12.5%.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SizeHistogram {
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum: u64,
    pub max: u64,
}

const SUB: u32 = 8;

impl Default for SizeHistogram {
    fn default() -> Self {
        SizeHistogram {
            counts: vec![0; 62 * SUB as usize],
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl SizeHistogram {
    fn bucket(v: u64) -> usize {
        if v < u64::from(SUB) {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= 3
        let sub = (v >> (exp - 3)) & u64::from(SUB - 1);
        ((exp - 2) * SUB) as usize + sub as usize
    }

    /// The smallest value of bucket `b`.
    pub fn bucket_low(b: usize) -> u64 {
        let b = b as u64;
        if b < u64::from(SUB) {
            return b;
        }
        let exp = b / u64::from(SUB) + 2;
        if exp >= 64 {
            return u64::MAX;
        }
        let sub = b % u64::from(SUB);
        (1u64 << exp) + (sub << (exp - 3))
    }

    pub fn add(&mut self, v: u64) {
        if let Some(c) = self.counts.get_mut(Self::bucket(v)) {
            *c += 1;
        }
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        self.max = self.max.max(v);
    }

    /// How far above the exact value a quantile may be, as a fraction of it: a bucket is
    /// an eighth of a power of two wide.
    pub const QUANTILE_ERROR: f64 = 0.125;

    /// The value at quantile `q` (0..=1): the top of the bucket it falls in, capped by max.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let high = Self::bucket_low(b + 1).saturating_sub(1);
                return high.min(self.max);
            }
        }
        self.max
    }

    pub fn mean(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// Power-of-two buckets for charts: (low, high, count).
    pub fn octaves(&self) -> Vec<(u64, u64, u64)> {
        let mut out: Vec<(u64, u64, u64)> = Vec::new();
        for (b, &c) in self.counts.iter().enumerate() {
            let low = Self::bucket_low(b);
            let octave = if low == 0 {
                0
            } else {
                64 - low.leading_zeros()
            };
            let (lo, hi) = if octave == 0 {
                (0, 0)
            } else {
                (
                    1u64 << (octave - 1),
                    (1u64 << (octave - 1)).saturating_mul(2) - 1,
                )
            };
            match out.last_mut() {
                Some(last) if last.0 == lo => last.2 += c,
                _ => out.push((lo, hi, c)),
            }
        }
        while out.last().is_some_and(|o| o.2 == 0) {
            out.pop();
        }
        let first = out.iter().position(|o| o.2 > 0).unwrap_or(0);
        out.drain(..first);
        out
    }
}

/// TTL bucket names, in order.
pub const TTL_BUCKETS: [&str; 8] = [
    "none", "expired", "<1m", "<1h", "<1d", "<7d", "<30d", ">=30d",
];

fn ttl_bucket(expire_ms: Option<i64>, now_ms: i64) -> usize {
    let Some(at) = expire_ms else { return 0 };
    let left = at.saturating_sub(now_ms);
    const MIN: i64 = 60_000;
    match left {
        i64::MIN..0 => 1,
        0..MIN => 2,
        MIN..3_600_000 => 3,
        3_600_000..86_400_000 => 4,
        86_400_000..604_800_000 => 5,
        604_800_000..2_592_000_000 => 6,
        _ => 7,
    }
}

/// The most bytes of a key's name a top list keeps, so that a list is bounded however
/// long the names in the file are (an LZF-compressed name of 100 MB takes about 1 MB of
/// file): 64 KiB, less when `--top` is large (the names of one list then take at most
/// 16 MiB), but never under 1 KiB.
pub fn top_key_prefix(top: usize) -> usize {
    ((16 << 20) / top.max(1)).clamp(1 << 10, 64 << 10)
}

/// One of the biggest keys. Ordered by rank, and among equal ranks the lower (db, key)
/// is the bigger, so which tied keys make the list, and their order, do not depend on
/// the order of the file. A shortened name orders by its prefix, then its full length,
/// then its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopKey {
    /// The ranking value (bytes, elements or memory).
    pub rank: u64,
    pub db: u64,
    /// The key's name, or its first [`top_key_prefix`] bytes when it is longer.
    pub key: Vec<u8>,
    /// The full name's length.
    pub key_len: u64,
    /// XXH3-128 of the full name, kept for a shortened one only.
    pub key_digest: Option<u128>,
    pub type_name: &'static str,
    pub encoding: &'static str,
    pub bytes: u64,
    pub elements: u64,
    pub memory: u64,
}

/// How a top list compares keys: rank, then (db, name prefix, length, digest) reversed.
type TopOrder<'a> = (u64, Reverse<(u64, &'a [u8], u64, Option<u128>)>);

impl TopKey {
    fn order(&self) -> TopOrder<'_> {
        (
            self.rank,
            Reverse((self.db, self.key.as_slice(), self.key_len, self.key_digest)),
        )
    }

    /// Whether `key` holds only the start of the name.
    pub fn shortened(&self) -> bool {
        self.key_digest.is_some()
    }
}

/// The digest a top list keeps for a name longer than its prefix.
fn key_digest(key: &[u8], prefix: usize) -> Option<u128> {
    (key.len() > prefix).then(|| xxhash_rust::xxh3::xxh3_128(key))
}

impl Ord for TopKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for TopKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A bounded "N largest" set.
#[derive(Debug, Clone, Default)]
pub struct TopN {
    limit: usize,
    /// How much of a name is kept ([`top_key_prefix`] of `limit`).
    prefix: usize,
    heap: BinaryHeap<Reverse<TopKey>>,
}

impl TopN {
    fn new(limit: usize) -> Self {
        TopN {
            limit,
            prefix: top_key_prefix(limit),
            // --top can be anything up to usize::MAX: grow past a small start as needed.
            heap: BinaryHeap::with_capacity(limit.min(1024) + 1),
        }
    }

    /// `digest` is [`key_digest`] of `f.key`, computed once for the three lists.
    fn offer(&mut self, rank: u64, f: &KeyFacts<'_>, digest: Option<u128>) {
        if self.limit == 0 {
            return;
        }
        let prefix = f.key.get(..self.prefix).unwrap_or(&f.key);
        let key_len = f.key.len() as u64;
        let candidate = (rank, Reverse((f.db, prefix, key_len, digest)));
        if self.heap.len() >= self.limit
            && self.heap.peek().is_some_and(|m| m.0.order() >= candidate)
        {
            return;
        }
        self.heap.push(Reverse(TopKey {
            rank,
            db: f.db,
            key: prefix.to_vec(),
            key_len,
            key_digest: digest,
            type_name: f.type_name,
            encoding: f.encoding,
            bytes: f.bytes,
            elements: f.elements,
            memory: f.memory,
        }));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// Takes in the keys `later` kept: the N largest of both are the N largest of all.
    fn absorb(&mut self, later: TopN, unknown_db_is: Option<u64>) {
        for Reverse(mut k) in later.heap {
            if let (Some(db), true) = (unknown_db_is, k.db == UNKNOWN_DB) {
                k.db = db;
            }
            self.heap.push(Reverse(k));
            if self.heap.len() > self.limit {
                self.heap.pop();
            }
        }
    }

    /// Biggest first.
    pub fn sorted(&self) -> Vec<TopKey> {
        let mut v: Vec<TopKey> = self.heap.iter().map(|r| r.0.clone()).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}

/// A node of the prefix trie.
#[derive(Debug, Clone, Default)]
pub struct PrefixNode {
    /// The segment, separator included; "" for the root.
    pub segment: Vec<u8>,
    pub totals: Totals,
    pub children: BytesMap<usize>,
    /// Set once the prefix has more than [`MAX_CHILDREN`] distinct next segments (IDs,
    /// mostly): then it keeps no children, and this sums the keys that went on past it.
    /// Listing them says nothing; their sum does.
    pub collapsed: Option<Totals>,
}

/// Key prefixes split at separator bytes, up to a depth. A prefix of more than
/// [`MAX_CHILDREN`] next segments is collapsed into one "prefix*"; which prefixes are
/// collapsed, and every total, depend on the keys only, not on their order. At most
/// [`MAX_PREFIX_NODES`] nodes are ever made.
#[derive(Debug, Clone)]
pub struct PrefixTree {
    /// Node 0 is the root; children of a collapsed node stay here, unreachable.
    pub nodes: Vec<PrefixNode>,
    /// Keys summed under a collapsed prefix's "*".
    pub collapsed_keys: u64,
    /// Keys that met a new prefix once the trie had made [`MAX_PREFIX_NODES`] nodes:
    /// they are counted up to its parent only.
    pub overflowed: u64,
    /// Nodes made by the sequence of adds this trie stands for (joined tries: the sum of
    /// theirs, at least what one sequence would have made).
    made: usize,
}

impl PrefixTree {
    fn new() -> Self {
        PrefixTree {
            nodes: vec![PrefixNode::default()],
            collapsed_keys: 0,
            overflowed: 0,
            made: 1,
        }
    }

    fn add(&mut self, key: &[u8], separators: &Separators, depth: usize, f: &KeyFacts<'_>) {
        let mut node = 0;
        if let Some(root) = self.nodes.get_mut(0) {
            root.totals.add(f);
        }
        let mut one = Totals::default();
        one.add(f);
        let mut rest = key;
        for _ in 0..depth {
            let Some(cut) = separators.find(rest) else {
                break;
            };
            let (segment, after) = rest.split_at(cut + 1);
            rest = after;
            let Some(next) = self.child(node, segment, &one) else {
                break;
            };
            node = next;
            if let Some(n) = self.nodes.get_mut(node) {
                n.totals.add(f);
            }
        }
    }

    /// The child of `parent` for `segment`, made if need be, for keys of `totals` going
    /// on past `parent`; `None` when they stop there (collapsed, or no room).
    fn child(&mut self, parent: usize, segment: &[u8], totals: &Totals) -> Option<usize> {
        let made = self.nodes.len();
        let p = self.nodes.get_mut(parent)?;
        if let Some(below) = &mut p.collapsed {
            add_totals(below, totals);
            self.collapsed_keys += totals.keys;
            return None;
        }
        if let Some(&c) = p.children.get(segment) {
            return Some(c);
        }
        if p.children.len() >= MAX_CHILDREN {
            let kids: Vec<usize> = p.children.drain().map(|(_, c)| c).collect();
            let mut below = *totals;
            for c in kids {
                if let Some(k) = self.nodes.get(c) {
                    add_totals(&mut below, &k.totals);
                }
            }
            self.collapsed_keys += below.keys;
            if let Some(p) = self.nodes.get_mut(parent) {
                p.collapsed = Some(below);
            }
            return None;
        }
        if made >= MAX_PREFIX_NODES {
            self.overflowed += totals.keys;
            return None;
        }
        p.children.insert(segment.to_vec(), made);
        self.made += 1;
        self.nodes.push(PrefixNode {
            segment: segment.to_vec(),
            ..PrefixNode::default()
        });
        Some(made)
    }

    /// Nodes reachable from the root: the trie's size, whatever order made it.
    pub fn live_nodes(&self) -> usize {
        let mut stack = vec![0];
        let mut n = 0;
        while let Some(id) = stack.pop() {
            if let Some(node) = self.nodes.get(id) {
                n += 1;
                stack.extend(node.children.values().copied());
            }
        }
        n
    }

    /// Adds the trie `later` built from the keys after this one's, as if those keys had
    /// been added here one by one. Exact while the two together made no more than
    /// [`MAX_PREFIX_NODES`] nodes: a key order can then change no count, and each
    /// prefix's subtree is joined on its own. `false` (and this trie half-joined) otherwise.
    fn absorb(&mut self, later: &PrefixTree) -> bool {
        // One sequence of adds makes at most the nodes of both (each node `later` made
        // is made once, or not at all, here): within the cap, no key met a full trie.
        let made = self.made + later.made - 1;
        if made > MAX_PREFIX_NODES || self.overflowed > 0 || later.overflowed > 0 {
            return false;
        }
        self.join(0, later, 0);
        self.made = made;
        true
    }

    /// Joins `later`'s node `from` (same prefix) into node `into`.
    fn join(&mut self, into: usize, later: &PrefixTree, from: usize) {
        let Some(l) = later.nodes.get(from) else {
            return;
        };
        if let Some(n) = self.nodes.get_mut(into) {
            add_totals(&mut n.totals, &l.totals);
        }
        if let Some(below) = l.collapsed {
            // The keys past `from` were summed there: sum them here too.
            self.collapsed_keys += below.keys;
            let kids: Vec<usize> = match self.nodes.get_mut(into) {
                Some(n) if n.collapsed.is_none() => n.children.drain().map(|(_, c)| c).collect(),
                _ => Vec::new(),
            };
            let mut sum = below;
            for c in kids {
                if let Some(k) = self.nodes.get(c) {
                    add_totals(&mut sum, &k.totals);
                    self.collapsed_keys += k.totals.keys;
                }
            }
            if let Some(n) = self.nodes.get_mut(into) {
                let b = n.collapsed.get_or_insert_with(Totals::default);
                add_totals(b, &sum);
            }
            return;
        }
        // In `later`'s order of making, as keys would have made them here.
        let mut kids: Vec<usize> = l.children.values().copied().collect();
        kids.sort_unstable();
        for c in kids {
            let Some(k) = later.nodes.get(c) else {
                continue;
            };
            // The subtree's keys arrive as one: `child` sees their totals together.
            match self.child(into, &k.segment, &Totals::default()) {
                Some(here) => self.join(here, later, c),
                None => {
                    if let Some(n) = self.nodes.get_mut(into) {
                        if let Some(b) = &mut n.collapsed {
                            add_totals(b, &k.totals);
                            self.collapsed_keys += k.totals.keys;
                        }
                    }
                }
            }
        }
    }

    /// The `limit` biggest prefixes by bytes, flattened depth-first: (depth, full prefix,
    /// totals).
    pub fn biggest(&self, limit: usize) -> Vec<(usize, Vec<u8>, Totals)> {
        let mut out = Vec::new();
        self.walk(0, 0, &mut Vec::new(), limit, &mut out);
        out
    }

    fn walk(
        &self,
        node: usize,
        depth: usize,
        prefix: &mut Vec<u8>,
        limit: usize,
        out: &mut Vec<(usize, Vec<u8>, Totals)>,
    ) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        if let Some(all) = n.collapsed {
            let mut p = prefix.clone();
            p.push(b'*');
            out.push((depth + 1, p, all));
            return;
        }
        // Biggest first; equal sizes by name, not by the hash map's order.
        let mut kids: Vec<&PrefixNode> = n
            .children
            .values()
            .filter_map(|&c| self.nodes.get(c))
            .collect();
        kids.sort_by(|a, b| {
            b.totals
                .bytes
                .cmp(&a.totals.bytes)
                .then_with(|| a.segment.cmp(&b.segment))
        });
        let ids: Vec<usize> = kids
            .iter()
            .filter_map(|k| n.children.get(&k.segment).copied())
            .collect();
        for c in ids.into_iter().take(limit) {
            let Some(k) = self.nodes.get(c) else { continue };
            let len = prefix.len();
            prefix.extend_from_slice(&k.segment);
            out.push((depth + 1, prefix.clone(), k.totals));
            self.walk(c, depth + 1, prefix, (limit / 2).max(3), out);
            prefix.truncate(len);
        }
    }
}

/// Which bytes end a prefix segment: a table, as a key is scanned a byte at a time
/// (`slice::contains` per byte was a tenth of the fold; keys are too short for `memchr`'s
/// vector search to pay).
#[derive(Debug, Clone)]
pub struct Separators([bool; 256]);

impl Separators {
    pub fn new(bytes: &[u8]) -> Self {
        let mut set = [false; 256];
        for &b in bytes {
            if let Some(s) = set.get_mut(b as usize) {
                *s = true;
            }
        }
        Separators(set)
    }

    fn find(&self, hay: &[u8]) -> Option<usize> {
        hay.iter()
            .position(|&b| self.0.get(b as usize).copied().unwrap_or(false))
    }
}

fn add_totals(to: &mut Totals, from: &Totals) {
    to.keys += from.keys;
    to.elements += from.elements;
    to.bytes += from.bytes;
    to.memory += from.memory;
}

/// Stream counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StreamStats {
    pub keys: u64,
    pub entries: u64,
    pub groups: u64,
    pub consumers: u64,
    pub pending: u64,
    pub max_pending: u64,
}

/// Everything the report shows.
#[derive(Debug, Clone)]
pub struct Stats {
    pub file_bytes: u64,
    pub magic: &'static str,
    pub rdb_version: u32,
    pub aux: Vec<(Vec<u8>, Vec<u8>)>,
    pub checksum: String,
    pub now_ms: i64,
    pub now_source: &'static str,
    pub model: Model,
    pub keys: u64,
    pub dbs: BTreeMap<u64, DbStats>,
    pub types: BTreeMap<&'static str, Totals>,
    /// (type, encoding) -> totals.
    pub encodings: BTreeMap<(&'static str, &'static str), Totals>,
    pub key_sizes: SizeHistogram,
    pub value_sizes: SizeHistogram,
    pub memory_sizes: SizeHistogram,
    pub elements: SizeHistogram,
    pub top_bytes: TopN,
    pub top_elements: TopN,
    pub top_memory: TopN,
    pub prefixes: PrefixTree,
    pub ttl: [u64; 8],
    pub slot_keys: Vec<u64>,
    pub slot_bytes: Vec<u64>,
    pub slot_memory: Vec<u64>,
    pub tags: BytesMap<(u64, u64)>,
    pub tagged_keys: u64,
    pub untracked_tag_keys: u64,
    pub modules: BTreeMap<String, u64>,
    pub module_aux: Vec<String>,
    pub functions: Vec<String>,
    pub field_ttl_keys: u64,
    pub field_ttl_fields: u64,
    pub hash_fields_with_ttl_total: u64,
    pub streams: StreamStats,
    pub options: Options,
    /// The EOF item, once seen.
    pub eof: Option<rdb_parser::Eof>,
    /// (type, encoding, totals) while the pass runs; `types` and `encodings` after.
    by_encoding: Vec<(&'static str, &'static str, Totals)>,
    /// [keys, bytes, memory] per slot while the pass runs; `slot_*` after.
    slot_acc: Vec<[u64; 3]>,
    /// (slot, bytes, memory) of keys not yet in `slot_acc`: added a few hundred at a time,
    /// the cache misses on its 16384 cells overlap instead of each stalling a key's fold.
    slot_pending: Vec<(u16, u64, u64)>,
    /// `options.separators` as a table.
    separators: Separators,
}

/// What one key contributes, measured on a worker thread.
#[derive(Debug)]
pub struct KeyFacts<'data> {
    pub db: u64,
    pub key: Cow<'data, [u8]>,
    pub type_name: &'static str,
    pub encoding: &'static str,
    pub expire_ms: Option<i64>,
    /// The entry's bytes in the file (opcodes, type, key and value).
    pub bytes: u64,
    /// The serialized value's bytes.
    pub value_bytes: u64,
    pub elements: u64,
    pub memory: u64,
    pub slot: u16,
    pub field_ttls: Option<u64>,
    pub stream: Option<Box<StreamStats>>,
    pub module: Option<String>,
    pub offset: u64,
}

/// Measures one key. Elements come from header counts where the encoding has one; the
/// others are counted by walking them (no string is decompressed for it).
pub fn measure<'data>(
    entry: &Entry<'data>,
    span: &[u8],
    model: &Model,
) -> Result<KeyFacts<'data>, Failure> {
    let mut field_ttls = None;
    let mut stream = None;
    let mut module = None;
    let in_key = |e: rdb_parser::Error| Failure::Data(e);
    let elements = match &entry.value {
        Value::String(_) => 1,
        Value::Module(m) => {
            module = Some(m.id.name());
            1
        }
        Value::Stream(s) => {
            let groups = s.group_count();
            let consumers = s.groups().map(|g| g.consumer_count()).sum();
            let pending: u64 = s.groups().map(|g| g.pending_count()).sum();
            let max_pending = s.groups().map(|g| g.pending_count()).max().unwrap_or(0);
            stream = Some(Box::new(StreamStats {
                keys: 1,
                entries: s.length,
                groups,
                consumers,
                pending,
                max_pending,
            }));
            s.length
        }
        Value::Hash(h) if h.has_field_ttls() => {
            let mut n = 0;
            let mut with_ttl = 0;
            for f in h.iter() {
                let f = f.map_err(in_key)?;
                n += 1;
                with_ttl += u64::from(f.expire_ms.is_some());
            }
            field_ttls = Some(with_ttl);
            n
        }
        Value::List(l) if l.node_count().is_some() => {
            let v2 = l.encoding_name() == "quicklist2";
            match super::memory::quicklist_len(entry.raw_value, v2) {
                Some(n) => n,
                None => entry.value.decode_all().map_err(in_key)?,
            }
        }
        v => match super::memory::blob_count(entry.type_id, entry.raw_value)
            .or_else(|| v.len_hint())
        {
            Some(n) => n,
            None => v.decode_all().map_err(in_key)?,
        },
    };
    let memory = model.estimate(entry);
    Ok(KeyFacts {
        db: entry.db,
        slot: key_slot(&entry.key),
        type_name: entry.value.type_name(),
        encoding: entry.value.encoding_name(),
        expire_ms: entry.expire_ms,
        bytes: span.len() as u64,
        value_bytes: entry.raw_value.len() as u64,
        elements,
        memory,
        field_ttls,
        stream,
        module,
        offset: entry.offset,
        key: entry.key.clone(),
    })
}

/// Reads the whole snapshot once and returns its statistics.
pub fn collect(
    data: &[u8],
    parser: &ParserBuilder,
    options: &Options,
    progress: impl FnMut(u64) + Send,
) -> Result<Stats, Failure> {
    let mut stats = rdb_pipeline::checked(data, parser, |p, eof| {
        collect_unchecked(data, p, eof, options, progress)
    })?;
    if parser.verifies_checksum() {
        stats.checksum = stats.checksum.replace("not checked", "ok");
    }
    Ok(stats)
}

/// RDB version, magic and the leading AUX fields.
type Preamble = (u32, &'static str, Vec<(Vec<u8>, Vec<u8>)>);

/// The AUX fields and header, read before the parallel pass so the model and "now" are
/// known (AUX fields come first in every server's files).
fn preamble(data: &[u8], parser: &ParserBuilder) -> Result<Preamble, Failure> {
    let mut unchecked = parser.clone();
    unchecked.verify_checksum(false);
    let mut aux = Vec::new();
    let mut version = (0, "REDIS");
    for item in unchecked.parse(data)? {
        match item? {
            Item::Header(v) => version = (v.number, v.magic.as_str()),
            Item::Aux(a) => aux.push((a.key.to_vec(), a.value.to_vec())),
            _ => break,
        }
    }
    Ok((version.0, version.1, aux))
}

/// The statistics of no key yet: the header, the leading AUX fields, the memory model
/// and "now" they give.
fn empty(data: &[u8], parser: &ParserBuilder, options: &Options) -> Result<Stats, Failure> {
    let (rdb_version, magic, first_aux) = preamble(data, parser)?;
    let aux_text = |name: &[u8]| {
        first_aux
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let valkey = magic == "VALKEY" || aux_text(b"valkey-ver").is_some();
    let version = aux_text(b"valkey-ver").or_else(|| aux_text(b"redis-ver"));
    let model = options.model.unwrap_or(Model {
        layout: Model::for_server(valkey, version.as_deref(), rdb_version),
        allocator: options.allocator,
    });
    // ctime counts whole seconds and the save began somewhere within that second: "now"
    // is the end of it, so a key that had expired when the save began counts as expired
    // (any later load drops it too). Checked arithmetic: the AUX value comes from the file.
    let ctime_ms = aux_text(b"ctime").and_then(|c| crate::now::from_ctime(c.as_bytes()));
    let (now_ms, now_source) = match (options.now_ms, ctime_ms) {
        (Some(n), _) => (n, "--now"),
        (None, Some(c)) => (c, "ctime"),
        (None, None) => (crate_now_ms(), "clock"),
    };
    Ok(Stats {
        file_bytes: data.len() as u64,
        magic,
        rdb_version,
        aux: Vec::new(),
        checksum: String::new(),
        now_ms,
        now_source,
        model,
        keys: 0,
        dbs: BTreeMap::new(),
        types: BTreeMap::new(),
        encodings: BTreeMap::new(),
        key_sizes: SizeHistogram::default(),
        value_sizes: SizeHistogram::default(),
        memory_sizes: SizeHistogram::default(),
        elements: SizeHistogram::default(),
        top_bytes: TopN::new(options.top),
        top_elements: TopN::new(options.top),
        top_memory: TopN::new(options.top),
        prefixes: PrefixTree::new(),
        ttl: [0; 8],
        slot_keys: vec![0; SLOTS],
        slot_bytes: vec![0; SLOTS],
        slot_memory: vec![0; SLOTS],
        tags: BytesMap::default(),
        tagged_keys: 0,
        untracked_tag_keys: 0,
        modules: BTreeMap::new(),
        module_aux: Vec::new(),
        functions: Vec::new(),
        field_ttl_keys: 0,
        field_ttl_fields: 0,
        hash_fields_with_ttl_total: 0,
        streams: StreamStats::default(),
        options: options.clone(),
        eof: None,
        by_encoding: Vec::new(),
        slot_acc: vec![[0; 3]; SLOTS],
        slot_pending: Vec::with_capacity(SLOT_PENDING),
        separators: Separators::new(&options.separators),
    })
}

fn collect_unchecked<'data>(
    data: &'data [u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    options: &Options,
    mut progress: impl FnMut(u64) + Send,
) -> Result<Stats, Failure> {
    let mut s = empty(data, parser, options)?;
    let model = s.model;
    // By `&mut` (items are Send, not Sync): a few hundred bytes an item stay where the
    // parse put them.
    let work = |sp: &mut Spanned<'data>| -> Result<Fold<'data>, Failure> {
        match &sp.item {
            Item::Key(entry) => {
                measure(entry, sp.span, &model)
                    .map(Fold::Key)
                    .map_err(|e| match e {
                        Failure::Data(d) => Failure::Data(d.in_key(entry.db, &entry.key)),
                        other => other,
                    })
            }
            other => Ok(Fold::Other(Box::new(other.clone()))),
        }
    };
    let fold = |s: &mut Stats, facts: Vec<Result<Fold<'data>, Failure>>| -> Result<(), Failure> {
        // The slot counters first, in a loop of their own: 16384 cells are a cache miss a
        // key, and here the misses overlap instead of each stalling the rest of `add_key`.
        // (A key after an error is counted too; the error discards the whole result.)
        for f in &facts {
            if let Ok(Fold::Key(f)) = f {
                if let Some(cell) = s.slot_acc.get_mut(f.slot as usize) {
                    cell[0] += 1;
                    cell[1] += f.bytes;
                    cell[2] += f.memory;
                }
            }
        }
        for fold in facts {
            match fold? {
                Fold::Key(f) => s.add_key(&f),
                Fold::Other(item) => s.add_item(&item),
            }
        }
        Ok(())
    };
    match split(data, parser, &s, &model, &mut progress)? {
        Some(joined) => s = joined,
        None => {
            // Three batches in flight: the serial fold of batch N-1, the measuring of batch N and
            // the serial parse of batch N+1. The two serial stages run on a core each, and the
            // measuring fills whichever core is free first. The aggregates see keys in file order.
            let mut items = parser.parse(data)?;
            let mut measured: Vec<Result<Fold<'data>, Failure>> = Vec::new();
            let mut current = next_batch(&mut items, data, &mut progress);
            // On a pool thread: a `join` from outside the pool (a library caller; rdbkit's main
            // thread is a worker already) would hand every batch over and sleep until done.
            rayon::scope(|_| -> Result<(), Failure> {
                loop {
                    let mut batch = match current {
                        Ok(b) => b,
                        Err(e) => {
                            // A key measured before the parse failed comes first in the file.
                            fold(&mut s, measured)?;
                            return Err(e);
                        }
                    };
                    let last = batch.is_empty();
                    let previous = std::mem::take(&mut measured);
                    let ((folded, facts), next) = rayon::join(
                        || {
                            rayon::join(
                                || fold(&mut s, previous),
                                || {
                                    use rayon::prelude::*;
                                    batch.par_iter_mut().map(work).collect::<Vec<_>>()
                                },
                            )
                        },
                        || {
                            if last {
                                Ok(Vec::new())
                            } else {
                                next_batch(&mut items, data, &mut progress)
                            }
                        },
                    );
                    folded?;
                    if last {
                        break;
                    }
                    measured = facts;
                    current = next;
                }
                Ok(())
            })?;
        }
    }
    if let Some(eof) = s.eof {
        eof_seen.set(eof);
    }
    s.add_pending_slots();
    for (slot, cell) in std::mem::take(&mut s.slot_acc).into_iter().enumerate() {
        for (array, v) in [&mut s.slot_keys, &mut s.slot_bytes, &mut s.slot_memory]
            .into_iter()
            .zip(cell)
        {
            if let Some(x) = array.get_mut(slot) {
                *x = v;
            }
        }
    }
    for (t, e, totals) in std::mem::take(&mut s.by_encoding) {
        let ty = s.types.entry(t).or_default();
        ty.keys += totals.keys;
        ty.elements += totals.elements;
        ty.bytes += totals.bytes;
        ty.memory += totals.memory;
        s.encodings.insert((t, e), totals);
    }
    s.dbs.retain(|_, db| db.keys > 0);
    Ok(s)
}

/// Each core reads a piece of the file and folds it into statistics of its own, joined
/// in file order at the end: no item crosses between threads. `None` when the file is too
/// small, there is one thread, a piece's start proved a wrong guess, or the pieces'
/// statistics cannot be joined exactly; the pipeline then reads the file.
fn split<'data>(
    data: &'data [u8],
    parser: &ParserBuilder,
    empty: &Stats,
    model: &Model,
    progress: &mut (impl FnMut(u64) + Send),
) -> Result<Option<Stats>, Failure> {
    let threads = rayon::current_num_threads();
    if threads < 2 {
        return Ok(None);
    }
    let step = |s: &mut Stats, item: &Item<'data>, _, span: &'data [u8]| -> Result<(), Failure> {
        if let Item::Key(entry) = item {
            let f = measure(entry, span, model).map_err(|e| match e {
                Failure::Data(d) => Failure::Data(d.in_key(entry.db, &entry.key)),
                other => other,
            })?;
            s.slot_pending.push((f.slot, f.bytes, f.memory));
            if s.slot_pending.len() >= SLOT_PENDING {
                s.add_pending_slots();
            }
            s.add_key(&f);
        } else {
            s.add_item(item);
        }
        Ok(())
    };
    let fresh = || empty.clone();
    let Some(stretches) = rdb_pipeline::split_fold(data, parser, threads, fresh, step, progress)?
    else {
        return Ok(None);
    };
    let mut stretches = stretches.into_iter();
    let Some(Stretch {
        acc: mut joined, ..
    }) = stretches.next()
    else {
        return Ok(None);
    };
    for later in stretches {
        if !joined.absorb(later.acc, later.unknown_db_is) {
            return Ok(None);
        }
    }
    Ok(Some(joined))
}

/// The pipeline's next batch, then the progress callback at its end.
fn next_batch<'data>(
    parser: &mut rdb_parser::Parser<'data>,
    data: &'data [u8],
    progress: &mut (impl FnMut(u64) + Send),
) -> Result<Vec<Spanned<'data>>, Failure> {
    let batch = rdb_pipeline::next_batch(parser, data)?;
    progress(parser.offset());
    Ok(batch)
}

fn crate_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

enum Fold<'data> {
    Key(KeyFacts<'data>),
    Other(Box<Item<'data>>),
}

impl Stats {
    fn add_pending_slots(&mut self) {
        for (slot, bytes, memory) in self.slot_pending.drain(..) {
            if let Some(cell) = self.slot_acc.get_mut(slot as usize) {
                cell[0] += 1;
                cell[1] += bytes;
                cell[2] += memory;
            }
        }
    }

    fn add_item(&mut self, item: &Item<'_>) {
        match item {
            Item::Aux(a) => self.aux.push((a.key.to_vec(), a.value.to_vec())),
            Item::ModuleAux(m) => self.module_aux.push(m.id.name()),
            Item::Function(f) => self.functions.push(library_name(f)),
            // A db gets its row with its first key: a file of a million SELECTDBs and no
            // keys must not make a million rows.
            Item::SelectDb(_) => {}
            Item::Eof(eof) => {
                self.eof = Some(*eof);
                self.checksum = match eof.checksum {
                    Checksum::Verified(c) => format!("ok ({c:016x})"),
                    Checksum::Disabled => "disabled (written as 0)".into(),
                    Checksum::Unchecked(c) => format!("not checked ({c:016x})"),
                    Checksum::Absent => "none (RDB < 5)".into(),
                };
            }
            _ => {}
        }
    }

    /// Takes in the statistics of the keys after this one's (a later stretch of the file),
    /// as if they had been added here one by one. `false` when that cannot be done
    /// exactly (the prefix tries or the tag map ran out of room, and which keys found
    /// room depended on their order); `self` is then half-joined.
    fn absorb(&mut self, mut later: Stats, unknown_db_is: Option<u64>) -> bool {
        self.add_pending_slots();
        later.add_pending_slots();
        let fits = later.untracked_tag_keys == 0
            && (self.tags.len() >= MAX_TAGS
                || self.tags.len()
                    + later
                        .tags
                        .keys()
                        .filter(|t| !self.tags.contains_key(*t))
                        .count()
                    <= MAX_TAGS);
        if !fits || !self.prefixes.absorb(&later.prefixes) {
            return false;
        }
        for (tag, (keys, bytes)) in later.tags {
            if let Some(t) = self.tags.get_mut(&tag) {
                t.0 += keys;
                t.1 += bytes;
            } else if self.tags.len() < MAX_TAGS {
                self.tags.insert(tag, (keys, bytes));
            } else {
                self.untracked_tag_keys += keys;
            }
        }
        self.tagged_keys += later.tagged_keys;
        self.aux.extend(later.aux);
        if later.eof.is_some() {
            self.eof = later.eof;
            self.checksum = later.checksum;
        }
        self.keys += later.keys;
        for (mut db, d) in later.dbs {
            if let (Some(real), true) = (unknown_db_is, db == UNKNOWN_DB) {
                db = real;
            }
            let to = self.dbs.entry(db).or_default();
            to.keys += d.keys;
            to.expires += d.expires;
            to.expired += d.expired;
            to.bytes += d.bytes;
            to.memory += d.memory;
        }
        for (t, e, totals) in later.by_encoding {
            match self
                .by_encoding
                .iter_mut()
                .find(|x| std::ptr::eq(x.0, t) && std::ptr::eq(x.1, e))
            {
                Some(x) => add_totals(&mut x.2, &totals),
                None => self.by_encoding.push((t, e, totals)),
            }
        }
        for (h, l) in [
            (&mut self.key_sizes, later.key_sizes),
            (&mut self.value_sizes, later.value_sizes),
            (&mut self.memory_sizes, later.memory_sizes),
            (&mut self.elements, later.elements),
        ] {
            for (c, n) in h.counts.iter_mut().zip(l.counts) {
                *c += n;
            }
            h.count += l.count;
            h.sum = h.sum.saturating_add(l.sum);
            h.max = h.max.max(l.max);
        }
        self.top_bytes.absorb(later.top_bytes, unknown_db_is);
        self.top_elements.absorb(later.top_elements, unknown_db_is);
        self.top_memory.absorb(later.top_memory, unknown_db_is);
        for (t, n) in self.ttl.iter_mut().zip(later.ttl) {
            *t += n;
        }
        for (cell, n) in self.slot_acc.iter_mut().zip(later.slot_acc) {
            for (c, v) in cell.iter_mut().zip(n) {
                *c += v;
            }
        }
        for (m, n) in later.modules {
            *self.modules.entry(m).or_default() += n;
        }
        self.module_aux.extend(later.module_aux);
        self.functions.extend(later.functions);
        self.field_ttl_keys += later.field_ttl_keys;
        self.field_ttl_fields += later.field_ttl_fields;
        self.hash_fields_with_ttl_total += later.hash_fields_with_ttl_total;
        let (s, l) = (&mut self.streams, later.streams);
        s.keys += l.keys;
        s.entries += l.entries;
        s.groups += l.groups;
        s.consumers += l.consumers;
        s.pending += l.pending;
        s.max_pending = s.max_pending.max(l.max_pending);
        true
    }

    fn add_key(&mut self, f: &KeyFacts<'_>) {
        self.keys += 1;
        let db = self.dbs.entry(f.db).or_default();
        db.keys += 1;
        db.bytes += f.bytes;
        db.memory += f.memory;
        if let Some(at) = f.expire_ms {
            db.expires += 1;
            // As the server decides: a key is expired once "now" is past its time.
            db.expired += u64::from(at < self.now_ms);
        }
        // A handful of (type, encoding) pairs: a linear scan on the static names' addresses
        // beats a map lookup per key; the maps are filled at the end.
        match self
            .by_encoding
            .iter_mut()
            .find(|e| std::ptr::eq(e.0, f.type_name) && std::ptr::eq(e.1, f.encoding))
        {
            Some(e) => e.2.add(f),
            None => {
                let mut t = Totals::default();
                t.add(f);
                self.by_encoding.push((f.type_name, f.encoding, t));
            }
        }
        self.key_sizes.add(f.key.len() as u64);
        self.value_sizes.add(f.value_bytes);
        self.memory_sizes.add(f.memory);
        self.elements.add(f.elements);
        let digest = key_digest(&f.key, self.top_bytes.prefix);
        self.top_bytes.offer(f.bytes, f, digest);
        self.top_elements.offer(f.elements, f, digest);
        self.top_memory.offer(f.memory, f, digest);
        self.prefixes
            .add(&f.key, &self.separators, self.options.depth, f);
        if let Some(t) = self.ttl.get_mut(ttl_bucket(f.expire_ms, self.now_ms)) {
            *t += 1;
        }
        let tag = hash_tag(&f.key);
        if tag.len() != f.key.len() {
            self.tagged_keys += 1;
            if let Some(t) = self.tags.get_mut(tag) {
                t.0 += 1;
                t.1 += f.bytes;
            } else if self.tags.len() < MAX_TAGS {
                self.tags.insert(tag.to_vec(), (1, f.bytes));
            } else {
                self.untracked_tag_keys += 1;
            }
        }
        if let Some(m) = &f.module {
            *self.modules.entry(m.clone()).or_default() += 1;
        }
        if let Some(n) = f.field_ttls {
            self.hash_fields_with_ttl_total += f.elements;
            if n > 0 {
                self.field_ttl_keys += 1;
                self.field_ttl_fields += n;
            }
        }
        if let Some(st) = &f.stream {
            let s = &mut self.streams;
            s.keys += 1;
            s.entries += st.entries;
            s.groups += st.groups;
            s.consumers += st.consumers;
            s.pending += st.pending;
            s.max_pending = s.max_pending.max(st.max_pending);
        }
    }

    /// Keys and bytes per shard of an even `n`-way split, and the max/mean ratios.
    pub fn shard_balance(&self, n: usize) -> Option<ShardBalance> {
        let map = rdb_writer::slot::SlotMap::even(n).ok()?;
        let mut keys = vec![0u64; map.len()];
        let mut bytes = vec![0u64; map.len()];
        let mut memory = vec![0u64; map.len()];
        for slot in 0..SLOTS {
            let owner = map.owner(slot as u16);
            let add = |v: &mut Vec<u64>, from: &[u64]| {
                if let (Some(d), Some(s)) = (v.get_mut(owner), from.get(slot)) {
                    *d += s;
                }
            };
            add(&mut keys, &self.slot_keys);
            add(&mut bytes, &self.slot_bytes);
            add(&mut memory, &self.slot_memory);
        }
        let ratio = |v: &[u64]| {
            let sum: u64 = v.iter().sum();
            let max = v.iter().copied().max().unwrap_or(0);
            if sum == 0 {
                1.0
            } else {
                max as f64 / (sum as f64 / v.len() as f64)
            }
        };
        Some(ShardBalance {
            ranges: map.shards.clone(),
            keys_ratio: ratio(&keys),
            bytes_ratio: ratio(&bytes),
            memory_ratio: ratio(&memory),
            keys,
            bytes,
            memory,
        })
    }

    /// The `n` slots holding the most bytes: (slot, keys, bytes).
    pub fn hottest_slots(&self, n: usize) -> Vec<(usize, u64, u64)> {
        let mut v: Vec<(usize, u64, u64)> = (0..SLOTS)
            .filter_map(|s| {
                let k = *self.slot_keys.get(s)?;
                (k > 0).then(|| (s, k, self.slot_bytes.get(s).copied().unwrap_or(0)))
            })
            .collect();
        v.sort_by_key(|&(s, k, b)| (Reverse(b), Reverse(k), s));
        v.truncate(n);
        v
    }

    /// The `n` tags with the most keys: (tag, keys, bytes).
    pub fn top_tags(&self, n: usize) -> Vec<(Vec<u8>, u64, u64)> {
        let mut v: Vec<(Vec<u8>, u64, u64)> = self
            .tags
            .iter()
            .map(|(t, &(k, b))| (t.clone(), k, b))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Total estimated memory.
    pub fn memory(&self) -> u64 {
        self.types.values().map(|t| t.memory).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.types.values().map(|t| t.bytes).sum()
    }

    pub fn aux_value(&self, name: &str) -> Option<String> {
        self.aux
            .iter()
            .find(|(k, _)| k == name.as_bytes())
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

/// How an even split spreads the keys.
#[derive(Debug, Clone, PartialEq)]
pub struct ShardBalance {
    pub ranges: Vec<Vec<(u16, u16)>>,
    pub keys: Vec<u64>,
    pub bytes: Vec<u64>,
    pub memory: Vec<u64>,
    pub keys_ratio: f64,
    pub bytes_ratio: f64,
    pub memory_ratio: f64,
}

/// A function library's name, from its `#!lua name=...` line.
fn library_name(f: &Function<'_>) -> String {
    match f {
        Function::PreGa { name, .. } => String::from_utf8_lossy(name).into_owned(),
        Function::Library { code } => {
            let first = code.split(|&b| b == b'\n').next().unwrap_or_default();
            let text = String::from_utf8_lossy(first);
            text.split_whitespace()
                .find_map(|w| w.strip_prefix("name="))
                .unwrap_or("(unnamed)")
                .to_owned()
        }
    }
}

#[cfg(test)]
#[allow(clippy::expect_used, clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::test_support::in_pool;

    #[test]
    fn histogram_buckets_are_ordered_and_quantiles_bound_the_value() {
        let mut h = SizeHistogram::default();
        for v in 0..10_000u64 {
            h.add(v);
        }
        let mut last = 0;
        for b in 1..200 {
            let low = SizeHistogram::bucket_low(b);
            assert!(low > last || b == 0, "bucket {b}");
            assert_eq!(SizeHistogram::bucket(low), b);
            last = low;
        }
        let p50 = h.quantile(0.5);
        assert!((5000..=5000 + 5000 / 8 + 1).contains(&p50), "p50 {p50}");
        assert_eq!(h.quantile(1.0), 9999);
        assert_eq!(h.max, 9999);
    }

    fn facts(key: &[u8]) -> KeyFacts<'_> {
        KeyFacts {
            db: 0,
            key: Cow::Borrowed(key),
            type_name: "string",
            encoding: "raw",
            expire_ms: None,
            bytes: 10,
            value_bytes: 5,
            elements: 1,
            memory: 64,
            slot: 0,
            field_ttls: None,
            stream: None,
            module: None,
            offset: 0,
        }
    }

    #[test]
    fn prefix_trie_is_capped_and_sums_id_segments() {
        let mut t = PrefixTree::new();
        for i in 0..3000 {
            let key = format!("user:{i}:name");
            t.add(
                key.as_bytes(),
                &Separators::new(b":"),
                3,
                &facts(key.as_bytes()),
            );
        }
        t.add(b"plain", &Separators::new(b":"), 3, &facts(b"plain"));
        assert_eq!(t.live_nodes(), 2, "the root and user:, collapsed");
        assert_eq!(t.collapsed_keys, 3000);
        assert_eq!(t.overflowed, 0);
        let top = t.biggest(10);
        assert_eq!(top[0].1, b"user:");
        assert_eq!(top[0].2.keys, 3000);
        assert_eq!(
            (top[1].0, top[1].1.as_slice(), top[1].2.keys),
            (2, &b"user:*"[..], 3000)
        );
        assert_eq!(t.nodes[0].totals.keys, 3001);
    }

    /// A file whose statistics join across pieces in every way that matters: dbs changing
    /// mid-file, prefixes that collapse (in one piece, in several, or only once joined),
    /// tags, expiries, tied sizes for the top lists.
    fn many_kinds_of_keys() -> Vec<u8> {
        use rdb_parser::format::type_id;
        use rdb_writer::{value, Compression, Writer};
        let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(11)).unwrap();
        w.aux(b"redis-ver", b"7.2.4").unwrap();
        w.aux(b"ctime", b"1700000000").unwrap();
        w.select_db(0).unwrap();
        for i in 0..40_000u32 {
            if i == 15_000 {
                w.select_db(3).unwrap();
            }
            if i == 31_000 {
                w.select_db(1).unwrap();
            }
            if i % 4 == 0 {
                w.expire_ms(1_699_999_000_000 + i64::from(i) * 100).unwrap();
            }
            let key = match i % 5 {
                0 => format!("user:{i}:name"),
                1 => format!("team:{}:member:{}", i % 900, i % 3),
                2 => format!("sess:{}:{{t{}}}", (i * 7) % 1300, i % 70_000),
                3 => format!(
                    "grow:{}:x",
                    if i < 30_000 { i % 600 } else { 600 + i % 600 }
                ),
                _ => format!("plain{}", i % 13),
            };
            if i % 3 == 0 {
                let members: Vec<String> = (0..1 + i % 40).map(|m| format!("m{m}")).collect();
                let v = value::set_plain(&members, Compression::None);
                w.key_value(type_id::SET, key.as_bytes(), &v).unwrap();
            } else {
                let v = value::string(
                    format!("{}", i % 97).repeat(3).as_bytes(),
                    Compression::None,
                );
                w.key_value(type_id::STRING, key.as_bytes(), &v).unwrap();
            }
        }
        w.finish().unwrap()
    }

    /// Statistics read in pieces on 2 to 4 threads and joined are those of one sequence.
    #[test]
    fn pieces_join_to_the_statistics_of_one_sequence() {
        let data = many_kinds_of_keys();
        let options = Options::default();
        let one = in_pool(1, || {
            collect(&data, &ParserBuilder::new(), &options, |_| {}).unwrap()
        });
        assert!(one.prefixes.collapsed_keys > 0, "a prefix collapsed");
        for threads in [2, 3, 4] {
            let joined = in_pool(threads, || {
                let empty = empty(&data, &ParserBuilder::new(), &options).unwrap();
                split(
                    &data,
                    &ParserBuilder::new(),
                    &empty,
                    &empty.model,
                    &mut |_| {},
                )
                .unwrap()
                .expect("the pieces join")
            });
            assert_eq!(joined.keys, one.keys);
            let many = in_pool(threads, || {
                collect(&data, &ParserBuilder::new(), &options, |_| {}).unwrap()
            });
            assert_eq!(many.to_json(), one.to_json(), "{threads} threads");
        }
    }

    /// The keys of a file in two halves, each half's trie joined: what one trie of all the
    /// keys holds, whichever half made a prefix first and wherever it collapsed.
    #[test]
    fn joined_tries_equal_one_trie_of_all_keys() {
        let names: Vec<String> = (0..6000)
            .map(|i| match i % 4 {
                0 => format!("user:{}:name", i / 4),
                1 => format!("user:{}:mail", (i / 4) % 700),
                2 => format!("team:{}:x:{i}", i % 900),
                _ => format!("plain{}", i % 7),
            })
            .collect();
        for cut in [0, 1, 2100, 3000, 5999, 6000] {
            let mut whole = PrefixTree::new();
            let (mut a, mut b) = (PrefixTree::new(), PrefixTree::new());
            for (i, k) in names.iter().enumerate() {
                let f = facts(k.as_bytes());
                whole.add(k.as_bytes(), &Separators::new(b":"), 3, &f);
                let half = if i < cut { &mut a } else { &mut b };
                half.add(k.as_bytes(), &Separators::new(b":"), 3, &f);
            }
            assert!(a.absorb(&b), "cut {cut}");
            assert_eq!(
                a.biggest(usize::MAX),
                whole.biggest(usize::MAX),
                "cut {cut}"
            );
            assert_eq!(
                (a.collapsed_keys, a.overflowed, a.live_nodes()),
                (whole.collapsed_keys, whole.overflowed, whole.live_nodes()),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn equal_prefixes_are_listed_by_name() {
        let mut t = PrefixTree::new();
        let names: Vec<String> = (0..20).rev().map(|i| format!("p{i:02}:k")).collect();
        for k in &names {
            t.add(
                k.as_bytes(),
                &Separators::new(b":"),
                3,
                &facts(k.as_bytes()),
            );
        }
        let shown: Vec<Vec<u8>> = t.biggest(20).into_iter().map(|p| p.1).collect();
        let mut sorted = shown.clone();
        sorted.sort();
        assert_eq!(shown, sorted);
    }

    #[test]
    fn ttl_buckets() {
        let now = 1_000_000_000;
        assert_eq!(ttl_bucket(None, now), 0);
        assert_eq!(ttl_bucket(Some(now - 1), now), 1);
        // The server keeps a key whose time is "now": it expires once now is past it.
        assert_eq!(ttl_bucket(Some(now), now), 2);
        assert_eq!(ttl_bucket(Some(now + 59_999), now), 2);
        assert_eq!(ttl_bucket(Some(now + 60_000), now), 3);
        assert_eq!(ttl_bucket(Some(now + 40 * 86_400_000), now), 7);
    }
}
