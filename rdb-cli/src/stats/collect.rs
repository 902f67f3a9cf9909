//! The one pass: every key is measured on whichever core picks it up ([`KeyFacts`]), then
//! folded in file order into bounded aggregates ([`Stats`]): fixed histograms, top-N heaps,
//! 16384-slot arrays and a prefix trie capped in nodes. Memory stays flat however big the
//! file is.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use rdb_parser::{Checksum, Entry, Function, Item, ParserBuilder, Value};
use rdb_writer::pipeline::Spanned;
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

/// The most trie nodes the prefix breakdown keeps; later new prefixes count as "(other)".
pub const MAX_PREFIX_NODES: usize = 50_000;
/// The most children one prefix keeps (IDs in a middle segment would take all the nodes).
pub const MAX_CHILDREN: usize = 1000;
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

/// One of the biggest keys. Ordered by rank, and among equal ranks the lower (db, key)
/// is the bigger, so which tied keys make the list, and their order, do not depend on
/// the order of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopKey {
    /// The ranking value (bytes, elements or memory).
    pub rank: u64,
    pub db: u64,
    pub key: Vec<u8>,
    pub type_name: &'static str,
    pub encoding: &'static str,
    pub bytes: u64,
    pub elements: u64,
    pub memory: u64,
}

impl TopKey {
    fn order(&self) -> (u64, Reverse<u64>, Reverse<&[u8]>) {
        (self.rank, Reverse(self.db), Reverse(self.key.as_slice()))
    }
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
    heap: BinaryHeap<Reverse<TopKey>>,
}

impl TopN {
    fn new(limit: usize) -> Self {
        TopN {
            limit,
            // --top can be anything up to usize::MAX: grow past a small start as needed.
            heap: BinaryHeap::with_capacity(limit.min(1024) + 1),
        }
    }

    fn offer(&mut self, rank: u64, f: &KeyFacts<'_>) {
        if self.limit == 0 {
            return;
        }
        let candidate = (rank, Reverse(f.db), Reverse(&*f.key));
        if self.heap.len() >= self.limit
            && self.heap.peek().is_some_and(|m| m.0.order() >= candidate)
        {
            return;
        }
        self.heap.push(Reverse(TopKey {
            rank,
            db: f.db,
            key: f.key.to_vec(),
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
}

/// Key prefixes split at separator bytes, up to a depth, capped at [`MAX_PREFIX_NODES`].
#[derive(Debug, Clone)]
pub struct PrefixTree {
    pub nodes: Vec<PrefixNode>,
    /// Keys that reached a node with no room for a new child (the trie is full, or the
    /// node has [`MAX_CHILDREN`]); they are counted under that node's `(other)`.
    pub overflowed: u64,
}

const OTHER: &[u8] = b"(other)";

impl PrefixTree {
    fn new() -> Self {
        PrefixTree {
            nodes: vec![PrefixNode::default()],
            overflowed: 0,
        }
    }

    fn add(&mut self, key: &[u8], separators: &[u8], depth: usize, f: &KeyFacts<'_>) {
        let mut node = 0;
        if let Some(root) = self.nodes.get_mut(0) {
            root.totals.add(f);
        }
        let mut rest = key;
        for _ in 0..depth {
            let Some(cut) = rest.iter().position(|b| separators.contains(b)) else {
                break;
            };
            let (segment, after) = rest.split_at(cut + 1);
            rest = after;
            node = self.child(node, segment);
            if let Some(n) = self.nodes.get_mut(node) {
                n.totals.add(f);
            }
            if n_is_other(self.nodes.get(node)) {
                break;
            }
        }
    }

    fn child(&mut self, parent: usize, segment: &[u8]) -> usize {
        if let Some(&c) = self.nodes.get(parent).and_then(|p| p.children.get(segment)) {
            return c;
        }
        let fan_out = self.nodes.get(parent).map_or(0, |p| p.children.len());
        let name: &[u8] = if self.nodes.len() < MAX_PREFIX_NODES && fan_out < MAX_CHILDREN {
            segment
        } else {
            self.overflowed += 1;
            OTHER
        };
        if let Some(&c) = self.nodes.get(parent).and_then(|p| p.children.get(name)) {
            return c;
        }
        let id = self.nodes.len();
        self.nodes.push(PrefixNode {
            segment: name.to_vec(),
            ..PrefixNode::default()
        });
        if let Some(p) = self.nodes.get_mut(parent) {
            p.children.insert(name.to_vec(), id);
        }
        id
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
        if n.children.len() > MAX_CHILDREN {
            // One child per ID: listing them says nothing, their sum does.
            let mut all = Totals::default();
            for k in n.children.values().filter_map(|&c| self.nodes.get(c)) {
                all.keys += k.totals.keys;
                all.elements += k.totals.elements;
                all.bytes += k.totals.bytes;
                all.memory += k.totals.memory;
            }
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

fn n_is_other(n: Option<&PrefixNode>) -> bool {
    n.is_some_and(|n| n.segment == OTHER)
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
            let groups = s.groups.len() as u64;
            let consumers = s.groups.iter().map(|g| g.consumers.len() as u64).sum();
            let pending: u64 = s.groups.iter().map(|g| g.pending.len() as u64).sum();
            let max_pending = s
                .groups
                .iter()
                .map(|g| g.pending.len() as u64)
                .max()
                .unwrap_or(0);
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
    let mut stats = rdb_writer::pipeline::checked(data, parser, |p, eof| {
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

fn collect_unchecked<'data>(
    data: &'data [u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_writer::pipeline::EofSeen,
    options: &Options,
    mut progress: impl FnMut(u64) + Send,
) -> Result<Stats, Failure> {
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
    let ctime_ms = aux_text(b"ctime")
        .and_then(|c| c.trim().parse::<i64>().ok())
        .and_then(|s| s.checked_add(1)?.checked_mul(1000));
    let (now_ms, now_source) = match (options.now_ms, ctime_ms) {
        (Some(n), _) => (n, "--now"),
        (None, Some(c)) => (c, "ctime"),
        (None, None) => (crate_now_ms(), "clock"),
    };
    let mut s = Stats {
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
    };
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
                Fold::Other(item) => s.add_item(*item),
            }
        }
        Ok(())
    };
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
    if let Some(eof) = s.eof {
        eof_seen.set(eof);
    }
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

/// The pipeline's next batch, then the progress callback at its end.
fn next_batch<'data>(
    parser: &mut rdb_parser::Parser<'data>,
    data: &'data [u8],
    progress: &mut (impl FnMut(u64) + Send),
) -> Result<Vec<Spanned<'data>>, Failure> {
    let batch = rdb_writer::pipeline::next_batch(parser, data)?;
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
    fn add_item(&mut self, item: Item<'_>) {
        match item {
            Item::Aux(a) => self.aux.push((a.key.to_vec(), a.value.to_vec())),
            Item::ModuleAux(m) => self.module_aux.push(m.id.name()),
            Item::Function(f) => self.functions.push(library_name(&f)),
            Item::SelectDb(db) => {
                self.dbs.entry(db).or_default();
            }
            Item::Eof(eof) => {
                self.eof = Some(eof);
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
        self.top_bytes.offer(f.bytes, f);
        self.top_elements.offer(f.elements, f);
        self.top_memory.offer(f.memory, f);
        let (separators, depth) = (&self.options.separators, self.options.depth);
        self.prefixes.add(&f.key, separators, depth, f);
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
            t.add(key.as_bytes(), b":", 3, &facts(key.as_bytes()));
        }
        t.add(b"plain", b":", 3, &facts(b"plain"));
        assert!(
            t.nodes.len() <= 2 + MAX_CHILDREN + 1,
            "{} nodes",
            t.nodes.len()
        );
        assert_eq!(t.overflowed, 2000);
        let top = t.biggest(10);
        assert_eq!(top[0].1, b"user:");
        assert_eq!(top[0].2.keys, 3000);
        assert_eq!(
            (top[1].0, top[1].1.as_slice(), top[1].2.keys),
            (2, &b"user:*"[..], 3000)
        );
        assert_eq!(t.nodes[0].totals.keys, 3001);
    }

    #[test]
    fn equal_prefixes_are_listed_by_name() {
        let mut t = PrefixTree::new();
        let names: Vec<String> = (0..20).rev().map(|i| format!("p{i:02}:k")).collect();
        for k in &names {
            t.add(k.as_bytes(), b":", 3, &facts(k.as_bytes()));
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
