//! The report's sections. Each is one struct that folds a key in ([`Section::add`]) and
//! takes in the partial result of the keys after its own ([`Section::absorb`]: a later
//! stretch of the same file, read on another core, or a later file of several). A new
//! section is one struct here, one line in the `sections!` list, and its renderers.

use std::collections::BTreeMap;
use std::ops::Deref;

use rdb_pipeline::UNKNOWN_DB;
use rdb_writer::slot::{hash_tag, SlotRange, SLOTS};

use super::collect::{
    key_digest, ttl_bucket, BytesMap, DbStats, KeyFacts, Options, Outside, PrefixTree, Separators,
    SizeHistogram, StreamStats, TopN, Totals, MAX_TAGS,
};

/// What a section's `add` needs besides the key.
#[derive(Debug, Clone, Copy)]
pub struct KeyContext<'a> {
    /// "Now" for expiry questions (Unix ms), the key's file's.
    pub now_ms: i64,
    pub separators: &'a Separators,
    /// How many segments deep the prefix breakdown goes.
    pub depth: usize,
}

/// One section of the report.
pub trait Section: Sized {
    /// The section of no key yet, for a file whose manifest gives it `slots`.
    fn new(options: &Options, slots: Option<&[SlotRange]>) -> Self;
    /// Folds one key in.
    fn add(&mut self, f: &KeyFacts<'_>, cx: &KeyContext<'_>);
    /// Takes in `later`, as if its keys had been added here one by one. `unknown_db_is`:
    /// the db a later stretch's keys before its first SELECTDB sit in. `false` when that
    /// cannot be done exactly (a cap was reached and which keys found room depended on
    /// their order); `self` may then be half-joined, and the caller reads again.
    fn absorb(&mut self, later: Self, unknown_db_is: Option<u64>) -> bool;
    /// Ends a pass: running accumulators become what the renderers read.
    fn finish(&mut self) {}
}

/// The sections, in one list: the struct holding them and its `new`, `add`, `absorb`
/// and `finish`, each calling every section's.
macro_rules! sections {
    ($($(#[$doc:meta])* $name:ident: $ty:ty,)*) => {
        /// Every section of the report.
        #[derive(Debug, Clone)]
        pub struct Sections {
            $($(#[$doc])* pub $name: $ty,)*
        }

        impl Sections {
            pub(crate) fn new(options: &Options, slots: Option<&[SlotRange]>) -> Self {
                Sections { $($name: <$ty as Section>::new(options, slots),)* }
            }

            pub(crate) fn add(&mut self, f: &KeyFacts<'_>, cx: &KeyContext<'_>) {
                $(self.$name.add(f, cx);)*
            }

            pub(crate) fn absorb(&mut self, later: Sections, unknown_db_is: Option<u64>) -> bool {
                $(if !self.$name.absorb(later.$name, unknown_db_is) {
                    return false;
                })*
                true
            }

            pub(crate) fn finish(&mut self) {
                $(self.$name.finish();)*
            }
        }
    };
}

sections! {
    /// Keys per database.
    dbs: Dbs,
    /// Keys per type and encoding.
    kinds: Kinds,
    /// Key, value, memory and element-count distributions.
    sizes: Sizes,
    /// The biggest keys by bytes, elements and memory.
    top: TopKeys,
    /// Key prefixes.
    prefixes: PrefixTree,
    /// Keys per bucket of time to live.
    ttl: Ttl,
    /// Keys, bytes and memory per hash slot.
    slots: Slots,
    /// `{tag}`s.
    tags: Tags,
    /// Module value keys per module type.
    modules: Modules,
    /// Hash fields with their own TTL.
    field_ttls: FieldTtls,
    /// Streams.
    streams: StreamStats,
    /// Keys outside the slots a manifest gives their file.
    outside: Outside,
}

/// The real db of a later stretch's first keys.
fn real_db(db: u64, unknown_db_is: Option<u64>) -> u64 {
    match unknown_db_is {
        Some(real) if db == UNKNOWN_DB => real,
        _ => db,
    }
}

/// Per-database counts; a db gets its row with its first key.
#[derive(Debug, Clone, Default)]
pub struct Dbs(pub BTreeMap<u64, DbStats>);

impl Deref for Dbs {
    type Target = BTreeMap<u64, DbStats>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Section for Dbs {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        Dbs::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, cx: &KeyContext<'_>) {
        let db = self.0.entry(f.db).or_default();
        db.keys += 1;
        db.bytes += f.bytes;
        db.memory += f.memory;
        if let Some(at) = f.expire_ms {
            db.expires += 1;
            // As the server decides: a key is expired once "now" is past its time.
            db.expired += u64::from(at < cx.now_ms);
        }
    }

    fn absorb(&mut self, later: Self, unknown_db_is: Option<u64>) -> bool {
        for (db, d) in later.0 {
            let to = self.0.entry(real_db(db, unknown_db_is)).or_default();
            to.keys += d.keys;
            to.expires += d.expires;
            to.expired += d.expired;
            to.bytes += d.bytes;
            to.memory += d.memory;
        }
        true
    }

    fn finish(&mut self) {
        self.0.retain(|_, db| db.keys > 0);
    }
}

/// Totals per type and per (type, encoding).
#[derive(Debug, Clone, Default)]
pub struct Kinds {
    /// (type, encoding, totals) while a pass runs: a handful of pairs, found by a linear
    /// scan on the static names' addresses, which beats a map lookup per key.
    running: Vec<(&'static str, &'static str, Totals)>,
    pub types: BTreeMap<&'static str, Totals>,
    pub encodings: BTreeMap<(&'static str, &'static str), Totals>,
}

impl Section for Kinds {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        Kinds::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        match self
            .running
            .iter_mut()
            .find(|e| std::ptr::eq(e.0, f.type_name) && std::ptr::eq(e.1, f.encoding))
        {
            Some(e) => e.2.add(f),
            None => {
                let mut t = Totals::default();
                t.add(f);
                self.running.push((f.type_name, f.encoding, t));
            }
        }
    }

    /// Running or finished, both are joined.
    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        for (t, e, totals) in later.running {
            match self
                .running
                .iter_mut()
                .find(|x| std::ptr::eq(x.0, t) && std::ptr::eq(x.1, e))
            {
                Some(x) => x.2.absorb(&totals),
                None => self.running.push((t, e, totals)),
            }
        }
        for (t, totals) in later.types {
            self.types.entry(t).or_default().absorb(&totals);
        }
        for (te, totals) in later.encodings {
            self.encodings.entry(te).or_default().absorb(&totals);
        }
        true
    }

    fn finish(&mut self) {
        for (t, e, totals) in std::mem::take(&mut self.running) {
            self.types.entry(t).or_default().absorb(&totals);
            self.encodings.entry((t, e)).or_default().absorb(&totals);
        }
    }
}

/// Distributions of key sizes, value sizes in the file, memory and element counts.
#[derive(Debug, Clone, Default)]
pub struct Sizes {
    pub keys: SizeHistogram,
    pub values: SizeHistogram,
    pub memory: SizeHistogram,
    pub elements: SizeHistogram,
}

impl Section for Sizes {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        Sizes::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        self.keys.add(f.key.len() as u64);
        self.values.add(f.value_bytes);
        self.memory.add(f.memory);
        self.elements.add(f.elements);
    }

    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        self.keys.absorb(later.keys);
        self.values.absorb(later.values);
        self.memory.absorb(later.memory);
        self.elements.absorb(later.elements);
        true
    }
}

/// The biggest keys, three ways.
#[derive(Debug, Clone)]
pub struct TopKeys {
    pub bytes: TopN,
    pub elements: TopN,
    pub memory: TopN,
}

impl Section for TopKeys {
    fn new(options: &Options, _: Option<&[SlotRange]>) -> Self {
        TopKeys {
            bytes: TopN::new(options.top),
            elements: TopN::new(options.top),
            memory: TopN::new(options.top),
        }
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        // Computed once for the three lists (they keep the same prefix).
        let digest = key_digest(&f.key, self.bytes.prefix);
        self.bytes.offer(f.bytes, f, digest);
        self.elements.offer(f.elements, f, digest);
        self.memory.offer(f.memory, f, digest);
    }

    fn absorb(&mut self, later: Self, unknown_db_is: Option<u64>) -> bool {
        self.bytes.absorb(later.bytes, unknown_db_is);
        self.elements.absorb(later.elements, unknown_db_is);
        self.memory.absorb(later.memory, unknown_db_is);
        true
    }
}

impl Section for PrefixTree {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        PrefixTree::new()
    }

    fn add(&mut self, f: &KeyFacts<'_>, cx: &KeyContext<'_>) {
        self.insert(&f.key, cx.separators, cx.depth, f);
    }

    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        self.join_later(&later)
    }
}

/// Keys per TTL bucket ([`super::collect::TTL_BUCKETS`]).
#[derive(Debug, Clone, Default)]
pub struct Ttl(pub [u64; 8]);

impl Deref for Ttl {
    type Target = [u64; 8];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Section for Ttl {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        Ttl::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, cx: &KeyContext<'_>) {
        if let Some(t) = self.0.get_mut(ttl_bucket(f.expire_ms, cx.now_ms)) {
            *t += 1;
        }
    }

    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        for (t, n) in self.0.iter_mut().zip(later.0) {
            *t += n;
        }
        true
    }
}

/// Keys whose slot counts wait to be added together.
const SLOT_PENDING: usize = 512;

/// Keys, bytes and memory per hash slot.
#[derive(Debug, Clone)]
pub struct Slots {
    /// (slot, bytes, memory) of keys not yet counted: added a few hundred at a time, the
    /// cache misses on 16384 cells overlap instead of each stalling a key's fold.
    pending: Vec<(u16, u64, u64)>,
    pub keys: Vec<u64>,
    pub bytes: Vec<u64>,
    pub memory: Vec<u64>,
}

impl Slots {
    fn add_pending(&mut self) {
        for (slot, bytes, memory) in self.pending.drain(..) {
            let slot = slot as usize;
            if let (Some(k), Some(b), Some(m)) = (
                self.keys.get_mut(slot),
                self.bytes.get_mut(slot),
                self.memory.get_mut(slot),
            ) {
                *k += 1;
                *b += bytes;
                *m += memory;
            }
        }
    }

    /// The slots holding keys.
    pub fn used(&self) -> usize {
        self.keys.iter().filter(|&&k| k > 0).count()
    }
}

impl Section for Slots {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        Slots {
            pending: Vec::with_capacity(SLOT_PENDING),
            keys: vec![0; SLOTS],
            bytes: vec![0; SLOTS],
            memory: vec![0; SLOTS],
        }
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        self.pending.push((f.slot, f.bytes, f.memory));
        if self.pending.len() >= SLOT_PENDING {
            self.add_pending();
        }
    }

    fn absorb(&mut self, mut later: Self, _: Option<u64>) -> bool {
        self.add_pending();
        later.add_pending();
        for (to, from) in [
            (&mut self.keys, later.keys),
            (&mut self.bytes, later.bytes),
            (&mut self.memory, later.memory),
        ] {
            for (a, v) in to.iter_mut().zip(from) {
                *a += v;
            }
        }
        true
    }

    fn finish(&mut self) {
        self.add_pending();
    }
}

/// `{tag}`s: at most [`MAX_TAGS`] distinct ones counted exactly.
#[derive(Debug, Clone, Default)]
pub struct Tags {
    /// tag -> (keys, bytes).
    pub map: BytesMap<(u64, u64)>,
    /// Keys with a tag.
    pub tagged_keys: u64,
    /// Keys of tags met once the map was full.
    pub untracked_keys: u64,
}

impl Tags {
    fn count(&mut self, tag: &[u8], keys: u64, bytes: u64) {
        if let Some(t) = self.map.get_mut(tag) {
            t.0 += keys;
            t.1 += bytes;
        } else if self.map.len() < MAX_TAGS {
            self.map.insert(tag.to_vec(), (keys, bytes));
        } else {
            self.untracked_keys += keys;
        }
    }
}

impl Section for Tags {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        Tags::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        let tag = hash_tag(&f.key);
        if tag.len() != f.key.len() {
            self.tagged_keys += 1;
            self.count(tag, 1, f.bytes);
        }
    }

    /// Exact when no tag `later` met went uncounted and together they fit the cap (or
    /// this map is full already and counts no more).
    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        let fits = later.untracked_keys == 0
            && (self.map.len() >= MAX_TAGS
                || self.map.len()
                    + later
                        .map
                        .keys()
                        .filter(|t| !self.map.contains_key(*t))
                        .count()
                    <= MAX_TAGS);
        if !fits {
            return false;
        }
        for (tag, (keys, bytes)) in later.map {
            self.count(&tag, keys, bytes);
        }
        self.tagged_keys += later.tagged_keys;
        true
    }
}

/// Module value keys per module type name.
#[derive(Debug, Clone, Default)]
pub struct Modules(pub BTreeMap<String, u64>);

impl Deref for Modules {
    type Target = BTreeMap<String, u64>;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Section for Modules {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        Modules::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        if let Some(m) = &f.module {
            *self.0.entry(m.clone()).or_default() += 1;
        }
    }

    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        for (m, n) in later.0 {
            *self.0.entry(m).or_default() += n;
        }
        true
    }
}

/// Hash fields with their own TTL.
#[derive(Debug, Clone, Default)]
pub struct FieldTtls {
    /// Hashes with at least one such field.
    pub keys: u64,
    /// Fields with a TTL.
    pub fields: u64,
    /// Every field of the hashes in an encoding that can hold field TTLs.
    pub fields_in_capable_hashes: u64,
}

impl Section for FieldTtls {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        FieldTtls::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        if let Some(n) = f.field_ttls {
            self.fields_in_capable_hashes += f.elements;
            if n > 0 {
                self.keys += 1;
                self.fields += n;
            }
        }
    }

    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        self.keys += later.keys;
        self.fields += later.fields;
        self.fields_in_capable_hashes += later.fields_in_capable_hashes;
        true
    }
}

impl StreamStats {
    fn join(&mut self, l: &StreamStats) {
        self.keys += l.keys;
        self.entries += l.entries;
        self.groups += l.groups;
        self.consumers += l.consumers;
        self.pending += l.pending;
        self.max_pending = self.max_pending.max(l.max_pending);
    }
}

impl Section for StreamStats {
    fn new(_: &Options, _: Option<&[SlotRange]>) -> Self {
        StreamStats::default()
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        if let Some(st) = &f.stream {
            self.join(st);
        }
    }

    fn absorb(&mut self, later: Self, _: Option<u64>) -> bool {
        self.join(&later);
        true
    }
}

impl Section for Outside {
    fn new(_: &Options, slots: Option<&[SlotRange]>) -> Self {
        Outside::new(slots)
    }

    fn add(&mut self, f: &KeyFacts<'_>, _: &KeyContext<'_>) {
        self.add_key(f);
    }

    fn absorb(&mut self, later: Self, unknown_db_is: Option<u64>) -> bool {
        self.join_later(later, unknown_db_is);
        true
    }
}
