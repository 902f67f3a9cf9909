//! The one pass: each core reads a piece of the file and folds its keys ([`KeyFacts`])
//! into bounded aggregates of its own ([`Stats`]): fixed histograms, top-N heaps,
//! 16384-slot arrays and a prefix trie capped in nodes. The pieces' aggregates are joined
//! in file order, to what one sequence would give (else the file is read again, as a
//! pipeline). Memory stays flat however big the file is.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::HashMap;

use rdb_parser::{Checksum, Entry, Function, Item, ParserBuilder, Value};
use rdb_pipeline::{Spanned, Stretch, UNKNOWN_DB};
use rdb_writer::server::ServerVersion;
use rdb_writer::slot::{key_slot, SlotRange, SLOTS};

use super::memory::Model;
pub use super::prefixes::{PrefixNode, PrefixTree, Separators, MAX_CHILDREN, MAX_PREFIX_NODES};
use super::sections::{KeyContext, Sections};
pub(crate) use super::top::key_digest;
pub use super::top::{top_key_prefix, TopKey, TopN};
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
    /// What [`super::run`] writes: JSON instead of the text report.
    pub json: bool,
    /// What [`super::run`] writes besides: a self-contained HTML page here.
    pub html: Option<std::path::PathBuf>,
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
            json: false,
            html: None,
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
    pub(crate) fn add(&mut self, f: &KeyFacts<'_>) {
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

    /// Takes in the values of `later`.
    pub(crate) fn absorb(&mut self, later: SizeHistogram) {
        for (c, n) in self.counts.iter_mut().zip(later.counts) {
            *c += n;
        }
        self.count += later.count;
        self.sum = self.sum.saturating_add(later.sum);
        self.max = self.max.max(later.max);
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

pub(crate) fn ttl_bucket(expire_ms: Option<i64>, now_ms: i64) -> usize {
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

impl Totals {
    pub(crate) fn absorb(&mut self, from: &Totals) {
        self.keys += from.keys;
        self.elements += from.elements;
        self.bytes += from.bytes;
        self.memory += from.memory;
    }
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

/// How many keys outside a part's slot ranges are kept as examples.
pub const OUTSIDE_EXAMPLES: usize = 5;
/// The most bytes of an example's name kept.
pub const OUTSIDE_NAME_BYTES: usize = 1024;

/// Keys whose slot is not among the ranges the manifest gives their file: a cluster node
/// that does not own a slot refuses its keys, so an import loses them.
#[derive(Debug, Clone, Default)]
pub struct Outside {
    /// Which slots the file owns; `None` (no manifest): every key is in place.
    owned: Option<Vec<bool>>,
    pub keys: u64,
    /// The first few in file order: (db, name cut at [`OUTSIDE_NAME_BYTES`], slot).
    pub examples: Vec<(u64, Vec<u8>, u16)>,
}

impl Outside {
    pub(crate) fn new(ranges: Option<&[SlotRange]>) -> Self {
        let owned = ranges.map(|ranges| {
            let mut owned = vec![false; SLOTS];
            for &(lo, hi) in ranges {
                for slot in lo..=hi {
                    if let Some(o) = owned.get_mut(slot as usize) {
                        *o = true;
                    }
                }
            }
            owned
        });
        Outside {
            owned,
            ..Outside::default()
        }
    }

    /// Whether a manifest gave the file's slots.
    pub fn checked(&self) -> bool {
        self.owned.is_some()
    }

    pub(crate) fn add_key(&mut self, f: &KeyFacts<'_>) {
        let Some(owned) = &self.owned else { return };
        if owned.get(f.slot as usize).copied().unwrap_or(true) {
            return;
        }
        self.keys += 1;
        if self.examples.len() < OUTSIDE_EXAMPLES {
            let name = f.key.get(..OUTSIDE_NAME_BYTES).unwrap_or(&f.key);
            self.examples.push((f.db, name.to_vec(), f.slot));
        }
    }

    /// Takes in the keys after this one's: the first examples stay the first.
    pub(crate) fn join_later(&mut self, later: Outside, unknown_db_is: Option<u64>) {
        self.keys += later.keys;
        for (mut db, key, slot) in later.examples {
            if self.examples.len() >= OUTSIDE_EXAMPLES {
                break;
            }
            if let (Some(real), true) = (unknown_db_is, db == UNKNOWN_DB) {
                db = real;
            }
            self.examples.push((db, key, slot));
        }
    }
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
    /// What the keys add up to, section by section.
    pub sections: Sections,
    /// Module AUX records, by module name.
    pub module_aux: Vec<String>,
    /// Function libraries, by name.
    pub functions: Vec<String>,
    pub options: Options,
    /// The EOF item, once seen.
    pub eof: Option<rdb_parser::Eof>,
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
    collect_part(data, parser, options, None, progress)
}

/// [`collect`] for a file whose manifest gives it `slots`: keys outside them are counted
/// in the `outside` section.
pub fn collect_part(
    data: &[u8],
    parser: &ParserBuilder,
    options: &Options,
    slots: Option<&[SlotRange]>,
    progress: impl FnMut(u64) + Send,
) -> Result<Stats, Failure> {
    let mut stats = rdb_pipeline::checked(data, parser, |p, eof| {
        collect_unchecked(data, p, eof, options, slots, progress)
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
fn empty(
    data: &[u8],
    parser: &ParserBuilder,
    options: &Options,
    slots: Option<&[SlotRange]>,
) -> Result<Stats, Failure> {
    let (rdb_version, magic, first_aux) = preamble(data, parser)?;
    let aux_text = |name: &[u8]| {
        first_aux
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    };
    let server = ServerVersion::from_aux(
        magic == "VALKEY",
        aux_text(b"valkey-ver").as_deref(),
        aux_text(b"redis-ver").as_deref(),
    );
    let model = options.model.unwrap_or(Model {
        layout: Model::for_server(server, rdb_version),
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
        sections: Sections::new(options, slots),
        module_aux: Vec::new(),
        functions: Vec::new(),
        options: options.clone(),
        eof: None,
        separators: Separators::new(&options.separators),
    })
}

fn collect_unchecked(
    data: &[u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    options: &Options,
    slots: Option<&[SlotRange]>,
    mut progress: impl FnMut(u64) + Send,
) -> Result<Stats, Failure> {
    let mut s = empty(data, parser, options, slots)?;
    let model = s.model;
    match split(data, parser, &s, &model, &mut progress)? {
        Some(joined) => s = joined,
        None => pipeline(&mut s, data, parser, &model, &mut progress)?,
    }
    if let Some(eof) = s.eof {
        eof_seen.set(eof);
    }
    s.finish();
    Ok(s)
}

/// Reads `data` as a pipeline and folds its keys into `s`, in file order.
fn pipeline<'data>(
    s: &mut Stats,
    data: &'data [u8],
    parser: &ParserBuilder,
    model: &Model,
    progress: &mut (impl FnMut(u64) + Send),
) -> Result<(), Failure> {
    // By `&mut` (items are Send, not Sync): a few hundred bytes an item stay where the
    // parse put them.
    let work = |sp: &mut Spanned<'data>| -> Result<Fold<'data>, Failure> {
        match &sp.item {
            Item::Key(entry) => {
                measure(entry, sp.span, model)
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
        for fold in facts {
            match fold? {
                Fold::Key(f) => s.add_key(&f),
                Fold::Other(item) => s.add_item(&item),
            }
        }
        Ok(())
    };
    // Three batches in flight: the serial fold of batch N-1, the measuring of batch N and
    // the serial parse of batch N+1. The two serial stages run on a core each, and the
    // measuring fills whichever core is free first. The aggregates see keys in file order.
    let mut items = parser.parse(data)?;
    let mut measured: Vec<Result<Fold<'data>, Failure>> = Vec::new();
    let mut current = next_batch(&mut items, data, progress);
    // On a pool thread: a `join` from outside the pool (a library caller; rdbkit's main
    // thread is a worker already) would hand every batch over and sleep until done.
    rayon::scope(|_| -> Result<(), Failure> {
        loop {
            let mut batch = match current {
                Ok(b) => b,
                Err(e) => {
                    // A key measured before the parse failed comes first in the file.
                    fold(s, measured)?;
                    return Err(e);
                }
            };
            let last = batch.is_empty();
            let previous = std::mem::take(&mut measured);
            let ((folded, facts), next) = rayon::join(
                || {
                    rayon::join(
                        || fold(s, previous),
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
                        next_batch(&mut items, data, progress)
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
    })
}

/// The statistics of several files read as one sequence, in their order: what
/// [`Stats::absorb_file`] joins when it can do so exactly. Each file's keys are judged at
/// its own "now" and priced with its own memory model; the header, AUX fields and "now"
/// shown are the first file's. The files were read (and their checksums verified) once
/// already.
pub(crate) fn collect_sequence(
    files: &[&[u8]],
    parser: &ParserBuilder,
    options: &Options,
    mut progress: impl FnMut(u64) + Send,
) -> Result<Stats, Failure> {
    let mut whole: Option<Stats> = None;
    let mut done = 0u64;
    for &data in files {
        let fresh = empty(data, parser, options, None)?;
        let model = fresh.model;
        let mut progress_here = |at| progress(done + at);
        match &mut whole {
            None => {
                let mut s = fresh;
                pipeline(&mut s, data, parser, &model, &mut progress_here)?;
                whole = Some(s);
            }
            Some(s) => {
                // Its keys at its own "now"; the first file's AUX fields and "now" stay.
                let (aux, now) = (std::mem::take(&mut s.aux), s.now_ms);
                s.now_ms = fresh.now_ms;
                s.file_bytes += fresh.file_bytes;
                pipeline(s, data, parser, &model, &mut progress_here)?;
                (s.aux, s.now_ms) = (aux, now);
            }
        }
        done += data.len() as u64;
    }
    let mut s = whole.ok_or_else(|| Failure::Usage("no snapshot to read".into()))?;
    s.functions = distinct(std::mem::take(&mut s.functions));
    s.module_aux = distinct(std::mem::take(&mut s.module_aux));
    s.finish();
    Ok(s)
}

/// The names in their first order, each once.
pub(crate) fn distinct(names: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(names.len());
    for n in names {
        if !out.contains(&n) {
            out.push(n);
        }
    }
    out
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
    /// Ends the pass: each section's running accumulators become what the renderers read.
    fn finish(&mut self) {
        self.sections.finish();
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

    fn add_key(&mut self, f: &KeyFacts<'_>) {
        self.keys += 1;
        let cx = KeyContext {
            now_ms: self.now_ms,
            separators: &self.separators,
            depth: self.options.depth,
        };
        self.sections.add(f, &cx);
    }

    /// Takes in the statistics of the keys after this one's (a later stretch of the file),
    /// as if they had been added here one by one. `false` when that cannot be done
    /// exactly (the prefix tries or the tag map ran out of room, and which keys found
    /// room depended on their order); `self` is then half-joined.
    fn absorb(&mut self, later: Stats, unknown_db_is: Option<u64>) -> bool {
        if !self.sections.absorb(later.sections, unknown_db_is) {
            return false;
        }
        self.aux.extend(later.aux);
        if later.eof.is_some() {
            self.eof = later.eof;
            self.checksum = later.checksum;
        }
        self.keys += later.keys;
        self.module_aux.extend(later.module_aux);
        self.functions.extend(later.functions);
        true
    }

    /// Takes in the finished statistics of another file (the next part of a cluster), as
    /// if its keys had followed these in one sequence: the header and AUX fields stay
    /// this file's; function libraries and module AUX records that every shard carries
    /// count once. `false` when that cannot be done exactly (the prefix tries or the tag
    /// map ran out of room); `self` is then half-joined.
    pub(crate) fn absorb_file(&mut self, later: Stats) -> bool {
        if !self.sections.absorb(later.sections, None) {
            return false;
        }
        self.file_bytes += later.file_bytes;
        self.keys += later.keys;
        self.module_aux.extend(later.module_aux);
        self.module_aux = distinct(std::mem::take(&mut self.module_aux));
        self.functions.extend(later.functions);
        self.functions = distinct(std::mem::take(&mut self.functions));
        true
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
            add(&mut keys, &self.sections.slots.keys);
            add(&mut bytes, &self.sections.slots.bytes);
            add(&mut memory, &self.sections.slots.memory);
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
                let k = *self.sections.slots.keys.get(s)?;
                (k > 0).then(|| (s, k, self.sections.slots.bytes.get(s).copied().unwrap_or(0)))
            })
            .collect();
        v.sort_by_key(|&(s, k, b)| (Reverse(b), Reverse(k), s));
        v.truncate(n);
        v
    }

    /// The `n` tags with the most keys: (tag, keys, bytes).
    pub fn top_tags(&self, n: usize) -> Vec<(Vec<u8>, u64, u64)> {
        let mut v: Vec<(Vec<u8>, u64, u64)> = self
            .sections
            .tags
            .map
            .iter()
            .map(|(t, &(k, b))| (t.clone(), k, b))
            .collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));
        v.truncate(n);
        v
    }

    /// Total estimated memory.
    pub fn memory(&self) -> u64 {
        self.sections.kinds.types.values().map(|t| t.memory).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.sections.kinds.types.values().map(|t| t.bytes).sum()
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
            t.insert(
                key.as_bytes(),
                &Separators::new(b":"),
                3,
                &facts(key.as_bytes()),
            );
        }
        t.insert(b"plain", &Separators::new(b":"), 3, &facts(b"plain"));
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
        assert!(
            one.sections.prefixes.collapsed_keys > 0,
            "a prefix collapsed"
        );
        for threads in [2, 3, 4] {
            let joined = in_pool(threads, || {
                let empty = empty(&data, &ParserBuilder::new(), &options, None).unwrap();
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
                whole.insert(k.as_bytes(), &Separators::new(b":"), 3, &f);
                let half = if i < cut { &mut a } else { &mut b };
                half.insert(k.as_bytes(), &Separators::new(b":"), 3, &f);
            }
            assert!(a.join_later(&b), "cut {cut}");
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
            t.insert(
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
