//! `rdbkit diff A B`: a logical comparison of two snapshots, whatever their versions and
//! encodings (schema of the difference lines: `docs/diff-jsonl.md`).
//!
//! ```text
//! A, B --parse on all cores--> record per key: db, key, type, TTL, 128-bit digest of the
//!                              canonical value (+ the value when small)
//!      --hash(db, key) % N --> N bucket files per side (unlinked temporary files)
//! bucket i: A's records in a map, B's streamed against it -> differences
//! ```
//! Canonical values: a string's bytes; a list in order; a set, hash or sorted set as the
//! multiset of its members (a commutative sum of per-member digests, so no sorting and no
//! memory); a stream by its entries in order plus its groups (last ID, PEL, consumers'
//! pending IDs, IDMP state); a vector set by its header and the multiset of its elements
//! (name, attributes, stored vector), not its graph. A bucket whose records would not fit
//! `memory_limit` is split again with another hash seed, so memory stays bounded for
//! inputs of any size. Function libraries and module aux data are compared beside the
//! keys, by name.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::PathBuf;

use rdb_parser::{Element, Entry, Function, Item, ModuleAux, ParserBuilder, Value, VectorSet};
use rdb_pipeline::Spanned;
use rdb_writer::filter::Filter;
use xxhash_rust::xxh3::{xxh3_64_with_seed, Xxh3};

use crate::{json, Failure};

/// Values up to this size are kept whole in the records, to be shown in differences.
const SMALL_VALUE: usize = 64;
/// The most bucket files per side at once (each is an open file descriptor).
const MAX_BUCKETS: usize = 200;
/// Buckets per side when one bucket is split again: nested splits keep their files open
/// beside the parent's, and all must stay under the usual limit of 1024 descriptors.
const MAX_RESPLIT_BUCKETS: u64 = 50;
/// How deep a bucket that does not fit is split again.
const MAX_SPLIT_DEPTH: u64 = 4;
/// Memory per record held in a bucket's map, beyond its own bytes.
const RECORD_OVERHEAD: u64 = 96;

/// How to compare.
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Keys both sides must pass to be compared (each side filtered on its own entries).
    pub filter: Filter,
    /// Source db -> db, applied to A (the source of a migration).
    pub db_map: HashMap<u64, u64>,
    /// Expiry times this close (ms) count as equal.
    pub ttl_tolerance_ms: i64,
    pub ignore_ttl: bool,
    /// Memory for one bucket's records, which sets the number of buckets.
    pub memory_limit: u64,
    /// Force this many buckets per side (1: everything in memory, no temporary files).
    pub buckets: Option<usize>,
    /// Where bucket files go (default: the system temporary directory).
    pub temp_dir: Option<PathBuf>,
    pub parser: ParserBuilder,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            filter: Filter::default(),
            db_map: HashMap::new(),
            ttl_tolerance_ms: 0,
            ignore_ttl: false,
            memory_limit: 256 << 20,
            buckets: None,
            temp_dir: None,
            parser: ParserBuilder::new(),
        }
    }
}

/// One side's view of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Side {
    pub type_name: &'static str,
    pub expire_ms: Option<i64>,
    pub digest: u128,
    /// Elements (entries for a stream, bytes for a string).
    pub elements: u64,
    /// The canonical value when it is at most 64 bytes (strings only).
    pub small: Option<Vec<u8>>,
}

/// What a difference is about besides keys: a snapshot's function libraries (by name)
/// and module aux data (by module and the phase it is saved in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKind {
    Function,
    /// `when`: 1 before the keys, 2 after them.
    ModuleAux {
        when: u64,
    },
}

impl ItemKind {
    pub fn name(self) -> &'static str {
        match self {
            ItemKind::Function => "function",
            ItemKind::ModuleAux { .. } => "module_aux",
        }
    }
}

/// What differs for one key, or for one function library or module's aux data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The key's db (0 for an item).
    pub db: u64,
    /// The key, or the item's name: the library name, or the module type name.
    pub key: Vec<u8>,
    /// `Some` when the difference is about a function library or module aux data.
    pub item: Option<ItemKind>,
    pub a: Option<Side>,
    pub b: Option<Side>,
    pub type_changed: bool,
    pub value_changed: bool,
    pub ttl_changed: bool,
}

impl Difference {
    pub fn kind(&self) -> &'static str {
        match (&self.a, &self.b) {
            (Some(_), None) => "only_in_a",
            (None, Some(_)) => "only_in_b",
            _ => "changed",
        }
    }

    /// One line of text, e.g. `changed db 0 "user:1": value, ttl` (key escaped).
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut key = String::new();
        let cut = self.key.get(..96).unwrap_or(&self.key);
        let _ = rdb_parser::error::write_escaped(&mut key, cut);
        if self.key.len() > 96 {
            key.push_str("...");
        }
        let what = match (&self.a, &self.b) {
            _ if self.item.is_some() => match (&self.a, &self.b) {
                (Some(_), None) => "only in A".to_owned(),
                (None, Some(_)) => "only in B".to_owned(),
                _ => "differs".to_owned(),
            },
            (Some(a), None) => format!("only in A ({})", a.type_name),
            (None, Some(b)) => format!("only in B ({})", b.type_name),
            _ => {
                let changes: Vec<&str> = [
                    (self.type_changed, "type"),
                    (self.value_changed, "value"),
                    (self.ttl_changed, "ttl"),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, n)| *n)
                .collect();
                format!("differs in {}", changes.join(", "))
            }
        };
        match self.item {
            Some(ItemKind::Function) => writeln!(out, "function library \"{key}\": {what}"),
            Some(ItemKind::ModuleAux { when }) => {
                writeln!(
                    out,
                    "module aux data of \"{key}\" ({}): {what}",
                    phase(when)
                )
            }
            None => writeln!(out, "db {} \"{key}\": {what}", self.db),
        }
    }

    /// The line of a function library or module aux difference (`docs/diff-jsonl.md`).
    fn write_item_json(&self, item: ItemKind, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"kind\":\"");
        out.extend_from_slice(self.kind().as_bytes());
        out.extend_from_slice(b"\",\"item\":\"");
        out.extend_from_slice(item.name().as_bytes());
        out.extend_from_slice(b"\",\"name\":");
        json::bytes(out, &self.key);
        if let ItemKind::ModuleAux { when } = item {
            out.extend_from_slice(b",\"when\":\"");
            out.extend_from_slice(phase(when).as_bytes());
            out.push(b'"');
        }
        if self.kind() == "changed" {
            out.extend_from_slice(b",\"changes\":[\"value\"]");
        }
        for (name, side) in [("a", &self.a), ("b", &self.b)] {
            let Some(s) = side else { continue };
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":{\"copies\":");
            json::int(out, s.elements);
            out.extend_from_slice(format!(",\"digest\":\"{:032x}\"}}", s.digest).as_bytes());
        }
        out.push(b'}');
    }

    /// The JSON line (without newline) of `docs/diff-jsonl.md`.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        if let Some(item) = self.item {
            return self.write_item_json(item, out);
        }
        out.extend_from_slice(b"{\"kind\":\"");
        out.extend_from_slice(self.kind().as_bytes());
        out.extend_from_slice(b"\",\"db\":");
        json::int(out, self.db);
        out.extend_from_slice(b",\"key\":");
        json::bytes(out, &self.key);
        if self.kind() == "changed" {
            out.extend_from_slice(b",\"changes\":[");
            let names = [
                (self.type_changed, "\"type\""),
                (self.value_changed, "\"value\""),
                (self.ttl_changed, "\"ttl\""),
            ];
            let mut first = true;
            for (_, n) in names.iter().filter(|(on, _)| *on) {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.extend_from_slice(n.as_bytes());
            }
            out.push(b']');
        }
        for (name, side) in [("a", &self.a), ("b", &self.b)] {
            let Some(s) = side else { continue };
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":{\"type\":\"");
            out.extend_from_slice(s.type_name.as_bytes());
            out.extend_from_slice(b"\",\"expire_ms\":");
            json::opt_int(out, s.expire_ms);
            out.extend_from_slice(b",\"elements\":");
            json::int(out, s.elements);
            out.extend_from_slice(format!(",\"digest\":\"{:032x}\"", s.digest).as_bytes());
            if let Some(v) = &s.small {
                out.extend_from_slice(b",\"value\":");
                json::bytes(out, v);
            }
            out.push(b'}');
        }
        out.push(b'}');
    }
}

/// Counts of a comparison.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiffSummary {
    pub keys_a: u64,
    pub keys_b: u64,
    pub equal: u64,
    pub only_in_a: u64,
    pub only_in_b: u64,
    /// Keys with a difference of each kind (a key may count in several).
    pub type_changed: u64,
    pub value_changed: u64,
    pub ttl_changed: u64,
    /// Function libraries and module aux data items of each side.
    pub functions_a: u64,
    pub functions_b: u64,
    pub module_aux_a: u64,
    pub module_aux_b: u64,
    /// Function libraries and modules' aux data that differ (only on one side, or changed).
    pub items_differing: u64,
    /// Buckets per side of the first partitioning, and buckets split again.
    pub buckets: u64,
    pub resplit_buckets: u64,
    /// Bytes written to temporary bucket files.
    pub temp_bytes: u64,
    /// Peak resident memory of the process (VmHWM), in bytes, when known. It counts the
    /// memory-mapped inputs' pages too.
    pub peak_rss: Option<u64>,
    /// The largest anonymous memory (RssAnon: heap, not the mapped inputs) seen at the
    /// points where it peaks: after each side is partitioned and with each bucket's map full.
    pub peak_anon: Option<u64>,
}

impl DiffSummary {
    pub fn equal_snapshots(&self) -> bool {
        self.only_in_a == 0
            && self.only_in_b == 0
            && self.differing() == 0
            && self.items_differing == 0
    }

    fn differing(&self) -> u64 {
        self.keys_a - self.equal - self.only_in_a
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "{}: A has {} keys, B has {}; {} equal, {} only in A, {} only in B, {} differ \
             ({} type, {} value, {} TTL)",
            if self.equal_snapshots() {
                "EQUAL"
            } else {
                "DIFFERENT"
            },
            self.keys_a,
            self.keys_b,
            self.equal,
            self.only_in_a,
            self.only_in_b,
            self.differing(),
            self.type_changed,
            self.value_changed,
            self.ttl_changed
        )?;
        if self.functions_a + self.functions_b + self.module_aux_a + self.module_aux_b > 0 {
            writeln!(
                out,
                "function libraries: A has {}, B has {}; module aux data: A has {}, B has {}; \
                 {} differ",
                self.functions_a,
                self.functions_b,
                self.module_aux_a,
                self.module_aux_b,
                self.items_differing
            )?;
        }
        writeln!(
            out,
            "{} buckets per side ({} split again), {} bytes of temporary files, peak RSS {} (anonymous {})",
            self.buckets,
            self.resplit_buckets,
            self.temp_bytes,
            mib(self.peak_rss),
            mib(self.peak_anon),
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "equal": self.equal_snapshots(),
            "keys_a": self.keys_a,
            "keys_b": self.keys_b,
            "equal_keys": self.equal,
            "only_in_a": self.only_in_a,
            "only_in_b": self.only_in_b,
            "differing": self.differing(),
            "type_changed": self.type_changed,
            "value_changed": self.value_changed,
            "ttl_changed": self.ttl_changed,
            "functions_a": self.functions_a,
            "functions_b": self.functions_b,
            "module_aux_a": self.module_aux_a,
            "module_aux_b": self.module_aux_b,
            "items_differing": self.items_differing,
            "buckets": self.buckets,
            "resplit_buckets": self.resplit_buckets,
            "temp_bytes": self.temp_bytes,
            "peak_rss_bytes": self.peak_rss,
            "peak_anon_bytes": self.peak_anon,
        })
    }

    fn sample_anon(&mut self) {
        if let Some(now) = proc_status_kb("RssAnon:") {
            self.peak_anon = Some(self.peak_anon.unwrap_or(0).max(now));
        }
    }
}

/// The phase a module's aux data is saved in.
fn phase(when: u64) -> &'static str {
    match when {
        1 => "before_keys",
        2 => "after_keys",
        _ => "unknown",
    }
}

fn mib(b: Option<u64>) -> String {
    b.map(|b| format!("{} MiB", b >> 20))
        .unwrap_or_else(|| "unknown".into())
}

/// Peak resident set size of this process, from `/proc/self/status`.
pub fn peak_rss() -> Option<u64> {
    proc_status_kb("VmHWM:")
}

/// A `/proc/self/status` field given in kB, in bytes.
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

// ---------------------------------------------------------------------------------------
// Records

const TYPES: [&str; 7] = ["string", "list", "set", "zset", "hash", "stream", "module"];

#[derive(Debug, Clone)]
struct Record {
    db: u64,
    key: Vec<u8>,
    side: Side,
}

fn type_index(name: &str) -> u8 {
    TYPES.iter().position(|t| *t == name).unwrap_or(0) as u8
}

impl Record {
    /// `db u64 | key_len u32 | key | type u8 | expire i64 (MIN: none) | digest u128 |
    /// elements u64 | small_len u32 (MAX: none) | small`, all little-endian.
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend(self.db.to_le_bytes());
        out.extend((self.key.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.key);
        out.push(type_index(self.side.type_name));
        out.extend(self.side.expire_ms.unwrap_or(i64::MIN).to_le_bytes());
        out.extend(self.side.digest.to_le_bytes());
        out.extend(self.side.elements.to_le_bytes());
        match &self.side.small {
            Some(v) => {
                out.extend((v.len() as u32).to_le_bytes());
                out.extend_from_slice(v);
            }
            None => out.extend(u32::MAX.to_le_bytes()),
        }
    }

    /// The next record of `r`, or `None` at its end.
    fn decode(r: &mut impl Read) -> std::io::Result<Option<Record>> {
        let mut db = [0u8; 8];
        match r.read_exact(&mut db) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        let mut fixed = [0u8; 4];
        r.read_exact(&mut fixed)?;
        let mut key = vec![0u8; u32::from_le_bytes(fixed) as usize];
        r.read_exact(&mut key)?;
        let mut rest = [0u8; 1 + 8 + 16 + 8 + 4];
        r.read_exact(&mut rest)?;
        let field = |from: usize, n: usize| rest.get(from..from + n).unwrap_or_default();
        let le8 = |from: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(field(from, 8));
            b
        };
        let type_name = TYPES
            .get(usize::from(rest.first().copied().unwrap_or(0)))
            .copied()
            .unwrap_or("string");
        let expire = i64::from_le_bytes(le8(1));
        let mut digest = [0u8; 16];
        digest.copy_from_slice(field(9, 16));
        let elements = u64::from_le_bytes(le8(25));
        let mut small_len = [0u8; 4];
        small_len.copy_from_slice(field(33, 4));
        let small_len = u32::from_le_bytes(small_len);
        let small = if small_len == u32::MAX {
            None
        } else {
            let mut v = vec![0u8; small_len as usize];
            r.read_exact(&mut v)?;
            Some(v)
        };
        Ok(Some(Record {
            db: u64::from_le_bytes(db),
            key,
            side: Side {
                type_name,
                expire_ms: (expire != i64::MIN).then_some(expire),
                digest: u128::from_le_bytes(digest),
                elements,
                small,
            },
        }))
    }
}

fn bucket_of(db: u64, key: &[u8], seed: u64, n: usize) -> usize {
    let mut buf = Vec::with_capacity(8 + key.len());
    buf.extend(db.to_le_bytes());
    buf.extend_from_slice(key);
    (xxh3_64_with_seed(&buf, seed) % n as u64) as usize
}

/// Feeds one length-prefixed piece into a digest.
fn piece(h: &mut Xxh3, bytes: &[u8]) {
    h.update(&(bytes.len() as u64).to_le_bytes());
    h.update(bytes);
}

fn element_piece(h: &mut Xxh3, e: &Element<'_>, scratch: &mut Vec<u8>) {
    match e {
        Element::Bytes(b) => piece(h, b),
        Element::Int(_) => {
            scratch.clear();
            e.write_to(scratch);
            piece(h, scratch);
        }
    }
}

/// The digest of one member of an unordered collection.
fn member_digest(parts: impl FnOnce(&mut Xxh3)) -> u128 {
    let mut h = Xxh3::new();
    parts(&mut h);
    h.digest128()
}

/// The canonical digest and element count of a value.
fn digest(
    value: &Value<'_>,
    raw_value: &[u8],
) -> Result<(u128, u64, Option<Vec<u8>>), rdb_parser::Error> {
    let mut h = Xxh3::new();
    let mut scratch = Vec::new();
    h.update(value.type_name().as_bytes());
    let mut count = 0u64;
    let mut small = None;
    // Unordered collections: the wrapping sum of member digests.
    let mut sum = 0u128;
    match value {
        Value::String(s) => {
            let bytes = s.to_bytes()?;
            piece(&mut h, &bytes);
            count = bytes.len() as u64;
            if bytes.len() <= SMALL_VALUE {
                small = Some(bytes.into_owned());
            }
        }
        Value::List(l) => {
            for e in l.iter() {
                element_piece(&mut h, &e?, &mut scratch);
                count += 1;
            }
        }
        Value::Set(s) => {
            for e in s.iter() {
                let e = e?;
                sum = sum.wrapping_add(member_digest(|m| element_piece(m, &e, &mut scratch)));
                count += 1;
            }
        }
        Value::ZSet(z) => {
            for pair in z.iter() {
                let (member, score) = pair?;
                // -0 and 0 are the same score.
                let score = if score == 0.0 { 0.0 } else { score };
                sum = sum.wrapping_add(member_digest(|m| {
                    element_piece(m, &member, &mut scratch);
                    m.update(&score.to_bits().to_le_bytes());
                }));
                count += 1;
            }
        }
        Value::Hash(hash) => {
            for f in hash.iter() {
                let f = f?;
                sum = sum.wrapping_add(member_digest(|m| {
                    element_piece(m, &f.field, &mut scratch);
                    element_piece(m, &f.value, &mut scratch);
                    m.update(&f.expire_ms.unwrap_or(i64::MIN).to_le_bytes());
                }));
                count += 1;
            }
        }
        Value::Stream(s) => {
            let mut entries = s.entries();
            while let Some(e) = entries.next_entry() {
                let e = e?;
                h.update(&e.id.to_raw());
                h.update(&(e.fields.len() as u64).to_le_bytes());
                for (f, v) in &e.fields {
                    element_piece(&mut h, f, &mut scratch);
                    element_piece(&mut h, v, &mut scratch);
                }
                count += 1;
            }
            h.update(&s.last_id.to_raw());
            // IDMP state that is not every stream's default (no producers, zero counters,
            // the built-in settings): a target without IDMP keeps exactly the default.
            if let Some(m) = s.idmp.as_ref().filter(|m| !m.is_default()) {
                h.update(b"idmp");
                for n in [m.duration_s, m.max_entries, m.iids_added, m.iids_duplicates] {
                    h.update(&n.to_le_bytes());
                }
                for p in m.producers() {
                    piece(&mut h, &p.pid);
                    h.update(&p.entry_count().to_le_bytes());
                    for e in p.entries() {
                        piece(&mut h, &e.iid);
                        h.update(&e.id.to_raw());
                    }
                }
            }
            for g in s.groups() {
                sum = sum.wrapping_add(member_digest(|m| {
                    piece(m, &g.name);
                    m.update(&g.last_id.to_raw());
                    for p in g.pending() {
                        m.update(&p.id.to_raw());
                        m.update(&p.delivery_time_ms.to_le_bytes());
                        m.update(&p.delivery_count.to_le_bytes());
                    }
                    let consumers = g
                        .consumers()
                        .map(|c| {
                            member_digest(|cm| {
                                piece(cm, &c.name);
                                for id in c.pending() {
                                    cm.update(&id.to_raw());
                                }
                            })
                        })
                        .fold(0u128, u128::wrapping_add);
                    m.update(&consumers.to_le_bytes());
                }));
            }
        }
        Value::Module(m) => match m.vector_set() {
            Some(set) => {
                let set = set?;
                h.update(b"vectorset");
                count = vector_set_digest(&mut h, &set, &mut sum)?;
            }
            None => {
                piece(&mut h, raw_value);
                count = 1;
            }
        },
    }
    h.update(&sum.to_le_bytes());
    h.update(&count.to_le_bytes());
    Ok((h.digest128(), count, small))
}

/// A vector set by its content: the header (dimension, quantization, M, the REDUCE
/// projection) into `h`, and each element (name, attributes, stored vector with its norm
/// and Q8 range) as a member digest added to `sum`. The graph (node ids, levels, links,
/// 8.6's worst-link words) is left out: `convert` rewrites it for older targets, and a
/// save after a load stores the elements in reverse order. Returns the element count.
fn vector_set_digest(
    h: &mut Xxh3,
    set: &VectorSet<'_>,
    sum: &mut u128,
) -> Result<u64, rdb_parser::Error> {
    h.update(&set.dim().to_le_bytes());
    h.update(set.quantization().name().as_bytes());
    h.update(&set.m().to_le_bytes());
    if let Some(p) = set.projection() {
        h.update(b"projection");
        h.update(&p.input_dim().to_le_bytes());
        for x in p.matrix()? {
            h.update(&x.to_bits().to_le_bytes());
        }
    }
    let mut count = 0u64;
    for e in set.elements() {
        let e = e?;
        *sum = sum.wrapping_add(member_digest(|m| {
            piece(m, e.name());
            match e.attributes() {
                Some(a) => {
                    m.update(b"+");
                    piece(m, a);
                }
                None => m.update(b"-"),
            }
            let v = e.vector();
            piece(m, v.stored());
            m.update(&v.l2().to_bits().to_le_bytes());
            m.update(&v.range().to_bits().to_le_bytes());
        }));
        count += 1;
    }
    Ok(count)
}

fn record(entry: &Entry<'_>, db: u64) -> Result<Record, rdb_parser::Error> {
    let (digest, elements, small) =
        digest(&entry.value, entry.raw_value).map_err(|e| e.in_key(entry.db, &entry.key))?;
    Ok(Record {
        db,
        key: entry.key.to_vec(),
        side: Side {
            type_name: entry.value.type_name(),
            expire_ms: entry.expire_ms,
            digest,
            elements,
            small,
        },
    })
}

// ---------------------------------------------------------------------------------------
// Buckets

/// Where one bucket's records go: memory (a single bucket, until it holds `spill_at`
/// bytes) or an unlinked temporary file, which the system removes however the process ends.
enum Store {
    Memory {
        records: Vec<u8>,
        spill_at: usize,
        dir: Option<PathBuf>,
        buffer: usize,
    },
    File(BufWriter<File>),
}

impl Store {
    fn new(
        spill_at: Option<usize>,
        dir: &Option<PathBuf>,
        buffer: usize,
    ) -> std::io::Result<Store> {
        if let Some(spill_at) = spill_at {
            return Ok(Store::Memory {
                records: Vec::new(),
                spill_at,
                dir: dir.clone(),
                buffer,
            });
        }
        Ok(Store::File(Self::temp_file(dir, buffer)?))
    }

    fn temp_file(dir: &Option<PathBuf>, buffer: usize) -> std::io::Result<BufWriter<File>> {
        let file = match dir {
            Some(d) => tempfile::tempfile_in(d)?,
            None => tempfile::tempfile()?,
        };
        Ok(BufWriter::with_capacity(buffer, file))
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Store::Memory {
                records,
                spill_at,
                dir,
                buffer,
            } => {
                if records.len() + bytes.len() <= *spill_at {
                    records.extend_from_slice(bytes);
                    return Ok(());
                }
                // Over its share of the budget: from here on the records go to a file.
                let mut file = Self::temp_file(dir, *buffer)?;
                file.write_all(records)?;
                file.write_all(bytes)?;
                *self = Store::File(file);
                Ok(())
            }
            Store::File(w) => w.write_all(bytes),
        }
    }

    fn is_file(&self) -> bool {
        matches!(self, Store::File(_))
    }

    fn reader(self) -> std::io::Result<Box<dyn Read>> {
        match self {
            Store::Memory { records, .. } => Ok(Box::new(std::io::Cursor::new(records))),
            Store::File(w) => {
                let mut file = w.into_inner().map_err(|e| e.into_error())?;
                file.rewind()?;
                Ok(Box::new(BufReader::with_capacity(1 << 16, file)))
            }
        }
    }
}

/// A temporary bucket file failed: say where it was, and which flag moves it.
fn temp_failure(opts: &DiffOptions, e: std::io::Error) -> Failure {
    let dir = opts.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    Failure::Io(std::io::Error::new(
        e.kind(),
        format!(
            "temporary bucket file in {} (choose another with --temp-dir): {e}",
            dir.display()
        ),
    ))
}

struct Partition {
    stores: Vec<Store>,
    bytes: Vec<u64>,
    records: Vec<u64>,
    seed: u64,
}

impl Partition {
    fn new(n: usize, seed: u64, opts: &DiffOptions) -> std::io::Result<Partition> {
        // Write buffers take at most a quarter of the budget. A single bucket starts in
        // memory, each side with a quarter of the budget (all of it when forced to one).
        let buffer = ((opts.memory_limit / 4) / (2 * n as u64)).clamp(4 << 10, 1 << 20) as usize;
        let spill_at = (n == 1).then(|| match opts.buckets {
            Some(1) => usize::MAX,
            _ => usize::try_from(opts.memory_limit / 4).unwrap_or(usize::MAX),
        });
        let stores = (0..n)
            .map(|_| Store::new(spill_at, &opts.temp_dir, buffer))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(Partition {
            stores,
            bytes: vec![0; n],
            records: vec![0; n],
            seed,
        })
    }

    fn add(&mut self, rec: &Record, buf: &mut Vec<u8>) -> std::io::Result<()> {
        let i = bucket_of(rec.db, &rec.key, self.seed, self.stores.len());
        buf.clear();
        rec.encode(buf);
        if let (Some(s), Some(b), Some(r)) = (
            self.stores.get_mut(i),
            self.bytes.get_mut(i),
            self.records.get_mut(i),
        ) {
            s.write(buf)?;
            *b += buf.len() as u64;
            *r += 1;
        }
        Ok(())
    }

    fn temp_bytes(&self) -> u64 {
        self.stores
            .iter()
            .zip(&self.bytes)
            .filter(|(s, _)| s.is_file())
            .map(|(_, b)| b)
            .sum()
    }
}

/// What one item of a side yields: its record, the EOF, and its offset (for progress).
type Found = (
    Option<Record>,
    Option<rdb_parser::Eof>,
    u64,
    Option<(ItemKind, Vec<u8>, u128)>,
);

/// Library names are identifiers; a longer one is compared by this prefix (and its code).
const MAX_ITEM_NAME: usize = 256;

/// A function library as FUNCTION2 source (a 7.0 release-candidate library in the form
/// convert writes it), named by its `#!engine name=...` line.
fn function_item(f: &Function<'_>) -> (ItemKind, Vec<u8>, u128) {
    let code: std::borrow::Cow<'_, [u8]> = match f {
        Function::Library { code } => std::borrow::Cow::Borrowed(code),
        Function::PreGa {
            name, engine, code, ..
        } => {
            let mut c = format!(
                "#!{} name={}\n",
                String::from_utf8_lossy(engine).to_lowercase(),
                String::from_utf8_lossy(name)
            )
            .into_bytes();
            c.extend_from_slice(code);
            std::borrow::Cow::Owned(c)
        }
    };
    let first = code.split(|&b| b == b'\n').next().unwrap_or_default();
    let name = first
        .split(|b| b.is_ascii_whitespace())
        .find_map(|w| w.strip_prefix(b"name="))
        .unwrap_or(b"(unnamed)");
    let name = name.get(..MAX_ITEM_NAME).unwrap_or(name).to_vec();
    (ItemKind::Function, name, xxhash_rust::xxh3::xxh3_128(&code))
}

/// A module's aux data, named by its module type; its version is part of the value.
fn module_aux_item(m: &ModuleAux<'_>) -> (ItemKind, Vec<u8>, u128) {
    let mut h = Xxh3::new();
    h.update(&m.id.0.to_le_bytes());
    h.update(m.raw);
    let kind = ItemKind::ModuleAux { when: m.when };
    (kind, m.id.name().into_bytes(), h.digest128())
}

/// One side's function libraries and module aux data: for each name, the wrapping sum of
/// its copies' digests and how many copies there are.
#[derive(Debug, Default)]
struct Items {
    by_name: BTreeMap<(ItemKind, Vec<u8>), (u128, u64)>,
    functions: u64,
    module_aux: u64,
}

impl Items {
    fn add(&mut self, (kind, name, digest): (ItemKind, Vec<u8>, u128)) {
        match kind {
            ItemKind::Function => self.functions += 1,
            ItemKind::ModuleAux { .. } => self.module_aux += 1,
        }
        let slot = self.by_name.entry((kind, name)).or_default();
        slot.0 = slot.0.wrapping_add(digest);
        slot.1 += 1;
    }
}

/// The differences between two sides' items, in (kind, name) order.
fn compare_items(a: Items, b: Items) -> Vec<Difference> {
    let side = |kind: ItemKind, (digest, copies): (u128, u64)| Side {
        type_name: kind.name(),
        expire_ms: None,
        digest,
        elements: copies,
        small: None,
    };
    let mut b = b.by_name;
    let mut found = Vec::new();
    for ((kind, name), va) in a.by_name {
        let vb = b.remove(&(kind, name.clone()));
        if vb == Some(va) {
            continue;
        }
        found.push(Difference {
            db: 0,
            key: name,
            item: Some(kind),
            a: Some(side(kind, va)),
            b: vb.map(|v| side(kind, v)),
            type_changed: false,
            value_changed: vb.is_some(),
            ttl_changed: false,
        });
    }
    for ((kind, name), vb) in b {
        found.push(Difference {
            db: 0,
            key: name,
            item: Some(kind),
            a: None,
            b: Some(side(kind, vb)),
            type_changed: false,
            value_changed: false,
            ttl_changed: false,
        });
    }
    found.sort_by(|x, y| (x.item, &x.key).cmp(&(y.item, &y.key)));
    found
}

/// Parses one side into `partition`; returns its key count.
fn partition_side(
    data: &[u8],
    opts: &DiffOptions,
    filter: &Filter,
    map_dbs: bool,
    partition: &mut Partition,
    items: &mut Items,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, Failure> {
    let mut keys = 0u64;
    let mut buf = Vec::with_capacity(256);
    rdb_pipeline::checked(data, &opts.parser, |p, eof| {
        // The EOF reaches `eof` through the sink, which runs on this thread.
        let work = |s: Spanned<'_>| -> Result<Found, Failure> {
            let (rec, end) = match &s.item {
                Item::Key(entry) if filter.keeps(entry) => {
                    let db = if map_dbs {
                        opts.db_map.get(&entry.db).copied().unwrap_or(entry.db)
                    } else {
                        entry.db
                    };
                    (Some(record(entry, db)?), None)
                }
                Item::Eof(e) => (None, Some(*e)),
                _ => (None, None),
            };
            let item = match &s.item {
                Item::Function(f) => Some(function_item(f)),
                Item::ModuleAux(m) => Some(module_aux_item(m)),
                _ => None,
            };
            Ok((rec, end, s.offset, item))
        };
        let sink = |(rec, end, offset, item): Found| -> Result<(), Failure> {
            if let Some(e) = end {
                eof.set(e);
            }
            if let Some(item) = item {
                items.add(item);
            }
            progress(offset);
            if let Some(rec) = rec {
                keys += 1;
                partition
                    .add(&rec, &mut buf)
                    .map_err(|e| temp_failure(opts, e))?;
            }
            Ok(())
        };
        rdb_pipeline::ordered(p.parse(data)?, work, sink)
    })?;
    Ok(keys)
}

/// Compares two snapshots; every difference goes to `on_difference`, bucket by bucket
/// (sorted by db and key within a bucket). `progress` sees the input bytes read so far
/// (A, then B).
pub fn diff(
    a: &[u8],
    b: &[u8],
    opts: &DiffOptions,
    on_difference: &mut dyn FnMut(&Difference) -> std::io::Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<DiffSummary, Failure> {
    let n = opts.buckets.unwrap_or_else(|| {
        // Records are far smaller than values, but tiny keys can make them ~3x the bytes
        // they describe; a bucket's map costs about twice its records. B counts too: its
        // records are held in memory when there is one bucket, and its keys missing from A
        // are held with the differences.
        let estimate = (a.len().max(b.len()) as u64).saturating_mul(6);
        (estimate / opts.memory_limit.max(1) + 1).min(MAX_BUCKETS as u64) as usize
    });
    let n = n.clamp(1, MAX_BUCKETS);
    let mut summary = DiffSummary {
        buckets: n as u64,
        ..DiffSummary::default()
    };
    let mut pa = Partition::new(n, 0, opts).map_err(|e| temp_failure(opts, e))?;
    let mut pb = Partition::new(n, 0, opts).map_err(|e| temp_failure(opts, e))?;
    let (mut items_a, mut items_b) = (Items::default(), Items::default());
    summary.keys_a = partition_side(a, opts, &opts.filter, true, &mut pa, &mut items_a, progress)
        .map_err(|e| unreadable("A", e))?;
    summary.sample_anon();
    let a_len = a.len() as u64;
    let b_filter = filter_for_b(opts);
    summary.keys_b = partition_side(b, opts, &b_filter, false, &mut pb, &mut items_b, &mut |o| {
        progress(a_len + o)
    })
    .map_err(|e| unreadable("B", e))?;
    summary.sample_anon();
    summary.temp_bytes = pa.temp_bytes() + pb.temp_bytes();
    compare_partitions(pa, pb, 1, opts, &mut summary, on_difference)?;
    (summary.functions_a, summary.functions_b) = (items_a.functions, items_b.functions);
    (summary.module_aux_a, summary.module_aux_b) = (items_a.module_aux, items_b.module_aux);
    for d in compare_items(items_a, items_b) {
        summary.items_differing += 1;
        on_difference(&d).map_err(Failure::Io)?;
    }
    summary.peak_rss = peak_rss();
    Ok(summary)
}

/// `--db N` names A's (the source's) databases; B holds those keys under the numbers
/// `--db-map` gives them.
fn filter_for_b(opts: &DiffOptions) -> Filter {
    let mut filter = opts.filter.clone();
    if let Some(dbs) = &mut filter.dbs {
        *dbs = dbs
            .iter()
            .map(|db| opts.db_map.get(db).copied().unwrap_or(*db))
            .collect();
    }
    filter
}

/// A snapshot that cannot be read is an error of the comparison (exit 2), not a
/// difference: the message names the side.
fn unreadable(side: &str, e: Failure) -> Failure {
    match e {
        Failure::Data(e) => Failure::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("snapshot {side}: {e}"),
        )),
        other => other,
    }
}

fn compare_partitions(
    pa: Partition,
    pb: Partition,
    depth: u64,
    opts: &DiffOptions,
    summary: &mut DiffSummary,
    on_difference: &mut dyn FnMut(&Difference) -> std::io::Result<()>,
) -> Result<(), Failure> {
    // A bucket's memory: A's records in the map, and B's records where they are not A's
    // (kept as differences); the larger side decides.
    let footprint = |p: &Partition| -> Vec<(u64, u64)> {
        p.bytes
            .iter()
            .zip(&p.records)
            .map(|(b, r)| (b + r * RECORD_OVERHEAD, *r))
            .collect()
    };
    let sizes: Vec<(u64, u64)> = footprint(&pa)
        .into_iter()
        .zip(footprint(&pb))
        .map(|((sa, ra), (sb, rb))| (sa.max(sb), ra.max(rb)))
        .collect();
    // `--buckets 1` keeps everything in memory, as asked.
    let may_split = opts.buckets != Some(1);
    for ((sa, sb), (size, records)) in pa.stores.into_iter().zip(pb.stores).zip(sizes) {
        let ra = sa.reader().map_err(|e| temp_failure(opts, e))?;
        let rb = sb.reader().map_err(|e| temp_failure(opts, e))?;
        if may_split && size > opts.memory_limit && records > 1 && depth < MAX_SPLIT_DEPTH {
            // Too big for the budget: split this bucket again with another seed.
            summary.resplit_buckets += 1;
            let m = (size / opts.memory_limit.max(1) + 2)
                .min(records)
                .min(MAX_RESPLIT_BUCKETS) as usize;
            let mut sub_a = Partition::new(m, depth, opts).map_err(|e| temp_failure(opts, e))?;
            let mut sub_b = Partition::new(m, depth, opts).map_err(|e| temp_failure(opts, e))?;
            let mut buf = Vec::new();
            for (reader, part) in [(ra, &mut sub_a), (rb, &mut sub_b)] {
                let mut reader = reader;
                while let Some(rec) =
                    Record::decode(&mut reader).map_err(|e| temp_failure(opts, e))?
                {
                    part.add(&rec, &mut buf)
                        .map_err(|e| temp_failure(opts, e))?;
                }
            }
            summary.temp_bytes += sub_a.temp_bytes() + sub_b.temp_bytes();
            compare_partitions(sub_a, sub_b, depth + 1, opts, summary, on_difference)?;
            continue;
        }
        compare_bucket(ra, rb, opts, summary, on_difference)?;
    }
    Ok(())
}

fn ttl_differs(a: Option<i64>, b: Option<i64>, opts: &DiffOptions) -> bool {
    if opts.ignore_ttl {
        return false;
    }
    match (a, b) {
        (None, None) => false,
        (Some(x), Some(y)) => x.abs_diff(y) > opts.ttl_tolerance_ms.unsigned_abs(),
        _ => true,
    }
}

/// A key seen twice on one side: a server refuses such a file, and neither copy can stand
/// for the key, so the comparison stops (exit 2) naming it.
fn duplicate(side: &str, db: u64, key: &[u8], opts: &DiffOptions) -> Failure {
    let mut name = String::new();
    let _ = rdb_parser::error::write_escaped(&mut name, key);
    let why = if side == "A" && !opts.db_map.is_empty() {
        " after --db-map (the file repeats it, or two mapped databases both hold it)"
    } else {
        " (a server refuses such a file; `rdbkit verify` lists every duplicate)"
    };
    Failure::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("snapshot {side}: key \"{name}\" appears twice in db {db}{why}"),
    ))
}

fn compare_bucket(
    mut ra: Box<dyn Read>,
    mut rb: Box<dyn Read>,
    opts: &DiffOptions,
    summary: &mut DiffSummary,
    on_difference: &mut dyn FnMut(&Difference) -> std::io::Result<()>,
) -> Result<(), Failure> {
    // `None`: B's record for the key has been seen (matched, or only in B).
    let mut left: HashMap<(u64, Vec<u8>), Option<Side>> = HashMap::new();
    while let Some(rec) = Record::decode(&mut ra).map_err(|e| temp_failure(opts, e))? {
        match left.entry((rec.db, rec.key)) {
            std::collections::hash_map::Entry::Occupied(o) => {
                return Err(duplicate("A", o.key().0, &o.key().1, opts));
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Some(rec.side));
            }
        }
    }
    // An in-memory bucket's records are in the map now.
    drop(ra);
    summary.sample_anon();
    let mut found = Vec::new();
    while let Some(rec) = Record::decode(&mut rb).map_err(|e| temp_failure(opts, e))? {
        let seen = match left.get_mut(&(rec.db, rec.key.clone())) {
            Some(slot) => match slot.take() {
                Some(sa) => Some(sa),
                None => return Err(duplicate("B", rec.db, &rec.key, opts)),
            },
            None => {
                left.insert((rec.db, rec.key.clone()), None);
                None
            }
        };
        match seen {
            None => found.push(Difference {
                db: rec.db,
                key: rec.key,
                item: None,
                a: None,
                b: Some(rec.side),
                type_changed: false,
                value_changed: false,
                ttl_changed: false,
            }),
            Some(sa) => {
                let type_changed = sa.type_name != rec.side.type_name;
                let value_changed = !type_changed && sa.digest != rec.side.digest;
                let ttl_changed = ttl_differs(sa.expire_ms, rec.side.expire_ms, opts);
                if type_changed || value_changed || ttl_changed {
                    found.push(Difference {
                        db: rec.db,
                        key: rec.key,
                        item: None,
                        a: Some(sa),
                        b: Some(rec.side),
                        type_changed,
                        value_changed,
                        ttl_changed,
                    });
                } else {
                    summary.equal += 1;
                }
            }
        }
    }
    for ((db, key), side) in left {
        let Some(side) = side else { continue };
        found.push(Difference {
            db,
            key,
            item: None,
            a: Some(side),
            b: None,
            type_changed: false,
            value_changed: false,
            ttl_changed: false,
        });
    }
    found.sort_by(|x, y| (x.db, &x.key).cmp(&(y.db, &y.key)));
    for d in &found {
        match d.kind() {
            "only_in_a" => summary.only_in_a += 1,
            "only_in_b" => summary.only_in_b += 1,
            _ => {
                summary.type_changed += u64::from(d.type_changed);
                summary.value_changed += u64::from(d.value_changed);
                summary.ttl_changed += u64::from(d.ttl_changed);
            }
        }
        on_difference(d).map_err(Failure::Io)?;
    }
    Ok(())
}
