//! `rdbkit verify`: the CRC64 and a deep structural check of every value, reporting every
//! problem with its byte offset, database and key (schema: `docs/verify-json.md`).
//!
//! ```text
//! parse batch N+1 (one thread) | deep-check batch N (all cores) | CRC64 (own thread)
//!                                 -> dangling opcodes in file order, key hashes
//! end of walk: sort key hashes (all cores) -> duplicate keys
//! ```
//! The parser already checks every length when it locates a value, and its lazy decoders
//! check every inner encoding (ziplist / listpack headers, entries, back-lengths and
//! terminators, intset widths, LZF lengths, stream node layout) when the value is walked.
//! This module walks every value with them and adds what a loader's deep sanitization
//! checks on top: intset order, NaN scores, duplicate members and fields, stream ID order
//! and consumer-group consistency, duplicate keys, empty collections, and expiry opcodes
//! that belong to no key. The duplicate-key check keeps a 64-bit hash per key (8 to 16
//! bytes with the vector's slack: 100 M keys take 0.8 to 1.6 GB), sorted at the end; only
//! when two hashes meet is the file walked again to find those keys and compare them
//! whole. A value whose bytes are corrupt inside a known extent is reported and skipped; a
//! broken extent ends the walk, since nothing after it can be located.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::io::Write;

use rayon::prelude::*;
use rdb_parser::{Checksum, Element, Entry, Error, Item, ParserBuilder, Stream, Value};

// The shared pipeline's batch sizes: verify batches on its own only to carry the parse
// error behind the items before it.
use rdb_writer::pipeline::{BATCH_BYTES, BATCH_ITEMS};

use crate::json;

/// The largest field expiry a server accepts (it keeps 48 bits).
const MAX_FIELD_EXPIRE: i64 = (1 << 48) - 1;
/// Duplicates named per collection before the rest are only counted.
const DUPLICATES_NAMED: usize = 3;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// A server refuses (or, without sanitization, mis-loads) the file.
    Error,
    /// Servers load it, but it is not what a healthy server writes.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Absolute byte offset in the file.
    pub offset: u64,
    pub db: Option<u64>,
    pub key: Option<Vec<u8>>,
    /// A stable name for the check that fired (see `docs/verify-json.md`).
    pub check: &'static str,
    pub severity: Severity,
    pub message: String,
}

impl Problem {
    fn in_entry(entry: &Entry<'_>, check: &'static str, message: String) -> Self {
        Problem {
            offset: entry.offset,
            db: Some(entry.db),
            key: Some(entry.key.to_vec()),
            check,
            severity: Severity::Error,
            message,
        }
    }

    fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// A decoding error, classified by the structure it names.
    fn from_error(e: &Error, entry: Option<&Entry<'_>>) -> Self {
        let check = match (e.kind(), e.what()) {
            (rdb_parser::ErrorKind::ChecksumMismatch, _) => "checksum",
            (_, "compressed string") => "lzf",
            (_, w) if w.starts_with("ziplist") => "ziplist",
            (_, w) if w.starts_with("listpack") => "listpack",
            (_, "intset") => "intset",
            (_, "zipmap") => "zipmap",
            (_, "quicklist") => "quicklist",
            (_, w) if w.starts_with("stream") || w == "consumer PEL" => "stream",
            (_, "sorted set") => "zset",
            (_, "hash") => "hash",
            _ => "structure",
        };
        Problem {
            offset: e.offset(),
            db: e.db().or(entry.map(|x| x.db)),
            key: e
                .key()
                .map(<[u8]>::to_vec)
                .or_else(|| entry.map(|x| x.key.to_vec())),
            check,
            severity: Severity::Error,
            message: e.to_string(),
        }
    }
}

/// How the CRC64 trailer came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumState {
    Verified(u64),
    Mismatch {
        stored: u64,
        actual: u64,
    },
    /// Written with checksums off (trailer 0).
    Disabled,
    /// The version predates checksums (RDB < 5).
    Absent,
    /// No EOF was reached, so the trailer could not be located.
    NotReached,
}

impl ChecksumState {
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumState::Verified(_) => "verified",
            ChecksumState::Mismatch { .. } => "mismatch",
            ChecksumState::Disabled => "disabled",
            ChecksumState::Absent => "absent",
            ChecksumState::NotReached => "not_reached",
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Report {
    pub file_bytes: u64,
    /// `REDIS0011`, or `None` when the header is unreadable.
    pub version: Option<String>,
    pub checksum: ChecksumState,
    /// Keys found (each checked unless its extent was broken).
    pub keys: u64,
    /// Whether the walk reached the EOF opcode.
    pub complete: bool,
    /// The findings, in file order: the first `max_problems` of the walk, plus the
    /// checksum and trailer verdicts.
    pub problems: Vec<Problem>,
    /// Findings past `max_problems`, counted but not listed.
    pub omitted_errors: u64,
    pub omitted_warnings: u64,
    max_problems: usize,
}

impl Report {
    /// The report of a walk not yet begun over a file of `file_bytes`.
    fn new(file_bytes: u64, max_problems: usize) -> Report {
        Report {
            omitted_errors: 0,
            omitted_warnings: 0,
            max_problems,
            file_bytes,
            version: None,
            checksum: ChecksumState::NotReached,
            keys: 0,
            complete: false,
            problems: Vec::new(),
        }
    }

    /// No problem of severity error.
    pub fn ok(&self) -> bool {
        self.errors() == 0
    }

    pub fn errors(&self) -> usize {
        self.listed_errors() + self.omitted_errors as usize
    }

    pub fn warnings(&self) -> usize {
        self.problems.len() - self.listed_errors() + self.omitted_warnings as usize
    }

    fn listed_errors(&self) -> usize {
        self.problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count()
    }

    /// Lists a finding of the walk, or only counts it once `max_problems` are listed (a
    /// file broken in every key must not hold all its findings in memory).
    fn add(&mut self, p: Problem) {
        if self.problems.len() < self.max_problems {
            self.problems.push(p);
        } else if p.severity == Severity::Error {
            self.omitted_errors += 1;
        } else {
            self.omitted_warnings += 1;
        }
    }

    pub fn omitted(&self) -> u64 {
        self.omitted_errors + self.omitted_warnings
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for p in &self.problems {
            let mut line = format!("{} at byte {}", p.severity.as_str(), p.offset);
            if let Some(db) = p.db {
                line.push_str(&format!(", db {db}"));
            }
            if let Some(key) = &p.key {
                line.push_str(", key \"");
                let _ = rdb_parser::error::write_escaped(&mut line, key);
                line.push('"');
            }
            writeln!(out, "{line} [{}]: {}", p.check, p.message)?;
        }
        if self.omitted() > 0 {
            writeln!(
                out,
                "... {} more problems ({} errors) not listed (--max-problems)",
                self.omitted(),
                self.omitted_errors
            )?;
        }
        let version = self.version.as_deref().unwrap_or("unreadable header");
        writeln!(
            out,
            "{}: {version}, {} bytes, {} keys, checksum {}, {} errors, {} warnings{}",
            if self.ok() { "OK" } else { "CORRUPT" },
            self.file_bytes,
            self.keys,
            self.checksum.as_str(),
            self.errors(),
            self.warnings(),
            if self.complete {
                ""
            } else {
                " (the walk stopped before EOF)"
            },
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        let problems: Vec<serde_json::Value> = self
            .problems
            .iter()
            .map(|p| {
                let key = p.key.as_ref().map(|k| {
                    let mut buf = Vec::new();
                    json::bytes(&mut buf, k);
                    serde_json::from_slice::<serde_json::Value>(&buf)
                        .unwrap_or(serde_json::Value::Null)
                });
                serde_json::json!({
                    "offset": p.offset,
                    "db": p.db,
                    "key": key,
                    "check": p.check,
                    "severity": p.severity.as_str(),
                    "message": p.message,
                })
            })
            .collect();
        let (stored, actual) = match self.checksum {
            ChecksumState::Verified(c) => (Some(c), Some(c)),
            ChecksumState::Mismatch { stored, actual } => (Some(stored), Some(actual)),
            _ => (None, None),
        };
        serde_json::json!({
            "ok": self.ok(),
            "file_bytes": self.file_bytes,
            "version": self.version,
            "checksum": {
                "state": self.checksum.as_str(),
                "stored": stored.map(|c| format!("{c:016x}")),
                "actual": actual.map(|c| format!("{c:016x}")),
            },
            "keys": self.keys,
            "complete": self.complete,
            "errors": self.errors(),
            "warnings": self.warnings(),
            "omitted": self.omitted(),
            "problems": problems,
        })
    }
}

/// An item with where it starts and ends in the file.
struct Located<'data> {
    item: Item<'data>,
    start: u64,
    end: u64,
}

/// Items up to the batch size; a parse error ends the batch and the walk.
struct Batch<'data> {
    items: Vec<Located<'data>>,
    error: Option<Error>,
}

fn next_batch<'data>(parser: &mut rdb_parser::Parser<'data>, data: &[u8]) -> Batch<'data> {
    let mut items = Vec::new();
    let mut bytes = 0u64;
    let mut read_ahead = rdb_writer::pipeline::ReadAhead::new();
    while bytes < BATCH_BYTES as u64 && items.len() < BATCH_ITEMS {
        read_ahead.advance(data, parser.offset());
        match parser.next() {
            None => break,
            Some(Err(e)) => {
                return Batch {
                    items,
                    error: Some(e),
                }
            }
            Some(Ok(item)) => {
                let (start, end) = (parser.item_start(), parser.offset());
                bytes += end - start;
                items.push(Located { item, start, end });
            }
        }
    }
    Batch { items, error: None }
}

/// What checking one item found, computed on any core.
struct Checked {
    problems: Vec<Problem>,
    /// Hash of (db, key), for the duplicate-key check.
    key_hash: Option<u64>,
}

/// Problems listed by default; the rest are counted.
pub const DEFAULT_MAX_PROBLEMS: usize = 100_000;

/// Verifies `data` (a whole snapshot). `progress` receives offsets as the walk advances.
pub fn verify(data: &[u8], progress: impl FnMut(u64) + Send) -> Report {
    verify_with(data, DEFAULT_MAX_PROBLEMS, progress)
}

/// [`verify`], listing at most `max_problems` findings of the walk (all are counted).
pub fn verify_with(
    data: &[u8],
    max_problems: usize,
    mut progress: impl FnMut(u64) + Send,
) -> Report {
    let mut report = Report::new(data.len() as u64, max_problems);
    let builder = walk_builder();
    let mut parser = match builder.parse(data) {
        Ok(p) => p,
        Err(e) => {
            report.problems.push(Problem::from_error(&e, None));
            return report;
        }
    };
    let version = parser.version();
    report.version = Some(format!(
        "{}{:0width$}",
        version.magic.as_str(),
        version.number,
        width = if version.magic == rdb_parser::Magic::Redis {
            4
        } else {
            3
        }
    ));

    let parallel = rayon::current_num_threads() > 1;
    std::thread::scope(|scope| {
        // The CRC of everything but a final 8-byte trailer, while the cores decode.
        let prefix_crc = parallel.then(|| {
            scope.spawn(|| {
                let covered = data.len().checked_sub(8)?;
                Some(rdb_parser::crc64(0, data.get(..covered)?))
            })
        });
        let walked = parallel
            .then(|| split_walk(data, &builder, &report, &mut progress))
            .flatten();
        let in_order = match walked {
            Some((walked, in_order)) => {
                report = walked;
                in_order
            }
            None => pipeline_walk(&mut parser, data, &mut report, &mut progress),
        };
        let InOrder {
            fingerprints, eof, ..
        } = in_order;
        let suspects = shared_fingerprints(fingerprints);
        duplicate_keys(data, &builder, &suspects, key_hash, &mut report);
        let prefix_crc = prefix_crc.and_then(|h| h.join().ok().flatten());
        if eof.is_none() && version.has_checksum() && data.len() >= 17 {
            // No EOF to locate the trailer: say whether the last 8 bytes, read as one,
            // vouch for the rest (then the file was written like this, not damaged since).
            let covered = data.len() - 8;
            let crc = prefix_crc
                .unwrap_or_else(|| rdb_parser::crc64(0, data.get(..covered).unwrap_or(&[])));
            let mut last = [0u8; 8];
            last.copy_from_slice(data.get(covered..).unwrap_or(&[0; 8]));
            let matches = u64::from_le_bytes(last) == crc;
            report.problems.push(Problem {
                offset: covered as u64,
                db: None,
                key: None,
                check: "checksum",
                severity: Severity::Warning,
                message: if matches {
                    "the walk stopped before EOF, yet the last 8 bytes are the CRC64 of the \
                         rest: the file was written like this"
                        .into()
                } else {
                    "the walk stopped before EOF, and the last 8 bytes are not the CRC64 of \
                         the rest: the file is damaged or cut short"
                        .into()
                },
            });
        }
        if let Some(eof) = eof {
            report.complete = true;
            report.checksum = checksum_state(data, &eof, prefix_crc);
            if let ChecksumState::Mismatch { stored, actual } = report.checksum {
                report.problems.push(Problem {
                    offset: eof.offset + 1,
                    db: None,
                    key: None,
                    check: "checksum",
                    severity: Severity::Error,
                    message: format!("trailer says {stored:016x}, the bytes give {actual:016x}"),
                });
            }
            if eof.trailing > 0 {
                report.problems.push(Problem {
                    offset: data.len() as u64 - eof.trailing,
                    db: None,
                    key: None,
                    check: "trailing-bytes",
                    // Loaders stop reading at the trailer.
                    severity: Severity::Warning,
                    message: format!("{} bytes follow the end of the snapshot", eof.trailing),
                });
            }
        }
    });
    report.problems.sort_by_key(|p| p.offset);
    report
}

/// The parser every walk of verify uses: the CRC is checked beside the walk (and a
/// mismatch reported, not fatal), and empty collections are read to be reported.
fn walk_builder() -> ParserBuilder {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false).allow_empty_keys(true);
    builder
}

/// The walk in one sequence: three batches in flight, each checked on any core and taken
/// in file order.
fn pipeline_walk<'data>(
    parser: &mut rdb_parser::Parser<'data>,
    data: &'data [u8],
    report: &mut Report,
    progress: &mut (impl FnMut(u64) + Send),
) -> InOrder {
    let mut in_order = InOrder::new();
    // A batch checked, waiting for the in-order pass.
    let mut checked_batch: Option<(Vec<Located<'_>>, Vec<Checked>)> = None;
    let mut batch = next_batch(parser, data);
    // On a pool thread: a `join` from outside the pool (a library caller; rdbkit's main
    // thread is a worker already) would hand every batch over and sleep until done.
    rayon::scope(|_| loop {
        let Batch { mut items, error } = batch;
        let last = error.is_some() || items.is_empty();
        let previous = checked_batch.take();
        // Three batches in flight: the in-order pass over batch N-1, the checks of
        // batch N and the parse of batch N+1. The two serial stages each have a core;
        // the checks fill whichever is free.
        let ((_, checked), next) = rayon::join(
            || {
                rayon::join(
                    || {
                        if let Some((items, checked)) = previous {
                            in_order.pass(&items, checked, data, report, progress);
                        }
                    },
                    || {
                        // `&mut`: items are Send but not Sync (lazily decompressed blobs).
                        items
                            .par_iter_mut()
                            .map(|l| check_item(&l.item, data))
                            .collect::<Vec<_>>()
                    },
                )
            },
            || {
                if last {
                    Batch {
                        items: Vec::new(),
                        error: None,
                    }
                } else {
                    next_batch(parser, data)
                }
            },
        );
        if !last {
            checked_batch = Some((items, checked));
            batch = next;
            continue;
        }
        in_order.pass(&items, checked, data, report, progress);
        if let Some(e) = error {
            let mut p = Problem::from_error(&e, None);
            if p.check == "structure" {
                p.message = format!("{}; the walk cannot continue past it", p.message);
            } else {
                p.message = format!(
                    "{}; the value's extent is broken, the walk cannot continue",
                    p.message
                );
            }
            report.problems.push(p);
        }
        break;
    });
    in_order
}

/// The walk in one piece of the file per core ([`rdb_writer::pipeline::split_fold`]):
/// each piece checks its items in order and keeps its own findings and key fingerprints,
/// joined in file order onto `before` (the report so far). `None` when the file is not
/// split, a piece start proved a wrong guess, or the walk met an error it cannot go past
/// (one sequence then reports it where it stops).
fn split_walk(
    data: &[u8],
    builder: &ParserBuilder,
    before: &Report,
    progress: &mut (impl FnMut(u64) + Send),
) -> Option<(Report, InOrder)> {
    use rdb_writer::pipeline::UNKNOWN_DB;
    let empty = Report::new(before.file_bytes, before.max_problems);
    let fresh = || (empty.clone(), InOrder::new());
    let step = |acc: &mut (Report, InOrder), item: &Item<'_>, start: u64, span: &[u8]| {
        let checked = check_item(item, data);
        let (report, in_order) = acc;
        in_order.take(
            item,
            start,
            start + span.len() as u64,
            checked,
            data,
            report,
        );
        Ok::<_, Error>(())
    };
    let threads = rayon::current_num_threads();
    let stretches =
        rdb_writer::pipeline::split_fold(data, builder, threads, fresh, step, progress).ok()??;
    let mut report = before.clone();
    let mut joined = InOrder::new();
    for stretch in stretches {
        let (mut found, mut in_order) = stretch.acc;
        if let Some(db) = stretch.unknown_db_is {
            let fix = db_mix(UNKNOWN_DB) ^ db_mix(db);
            in_order.fingerprints.iter_mut().for_each(|f| *f ^= fix);
            // Findings name the db in their field, and decoding errors in their text too.
            let (unknown, known) = (format!(" (db {UNKNOWN_DB})"), format!(" (db {db})"));
            for p in found
                .problems
                .iter_mut()
                .filter(|p| p.db == Some(UNKNOWN_DB))
            {
                p.db = Some(db);
                p.message = p.message.replace(&unknown, &known);
            }
        }
        report.keys += found.keys;
        found.problems.into_iter().for_each(|p| report.add(p));
        report.omitted_errors += found.omitted_errors;
        report.omitted_warnings += found.omitted_warnings;
        if joined.fingerprints.is_empty() {
            joined.fingerprints = in_order.fingerprints;
        } else {
            joined.fingerprints.extend(in_order.fingerprints);
        }
        if in_order.eof.is_some() {
            joined.eof = in_order.eof;
        }
    }
    Some((report, joined))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyOpcode {
    Expire,
    Idle,
    Freq,
}

impl KeyOpcode {
    fn name(self) -> &'static str {
        match self {
            KeyOpcode::Expire => "EXPIRETIME",
            KeyOpcode::Idle => "IDLE",
            KeyOpcode::Freq => "FREQ",
        }
    }
}

/// Reads the EXPIRETIME(_MS) / IDLE / FREQ opcodes at the start of `bytes` (which begin at
/// file offset `base`); stops at anything else.
fn scan_key_opcodes(mut bytes: &[u8], base: u64, out: &mut Vec<(u64, KeyOpcode)>) {
    use rdb_parser::format::opcode;
    let total = bytes.len();
    while let Some((&op, rest)) = bytes.split_first() {
        let offset = base + (total - bytes.len()) as u64;
        let (kind, rest) = match op {
            opcode::EXPIRETIME_MS => (KeyOpcode::Expire, rest.get(8..)),
            opcode::EXPIRETIME => (KeyOpcode::Expire, rest.get(4..)),
            opcode::IDLE => (KeyOpcode::Idle, rdb_length(rest).map(|(_, r)| r)),
            opcode::FREQ => (KeyOpcode::Freq, rest.get(1..)),
            _ => return,
        };
        let Some(rest) = rest else { return };
        out.push((offset, kind));
        bytes = rest;
    }
}

/// Loaders keep the last of each kind of opcode before a key: the earlier ones belong to
/// no key.
fn overridden_opcodes(pending: &[(u64, KeyOpcode)], entry: &Entry<'_>) -> Option<Problem> {
    let overridden: Vec<&(u64, KeyOpcode)> = pending
        .iter()
        .enumerate()
        .filter(|(i, (_, kind))| pending.iter().skip(i + 1).any(|(_, k)| k == kind))
        .map(|(_, p)| p)
        .collect();
    let &&(offset, kind) = overridden.first()?;
    let mut p = Problem::in_entry(
        entry,
        "dangling-opcode",
        format!(
            "{} {} opcode(s) before the key are overridden by a later one (loaders keep the \
             last): they belong to no key",
            overridden.len(),
            kind.name()
        ),
    );
    p.offset = offset;
    Some(p)
}

/// What the in-order pass over checked items carries from one item to the next.
struct InOrder {
    /// The hash of db and key ([`key_hash`]) per key, sorted once the walk is done: 8
    /// bytes a key, and one sort instead of a hash map larger than the caches.
    fingerprints: Vec<u64>,
    previous_end: Option<u64>,
    /// Key opcodes (offset, kind) since the last key: in gaps between items, or in a
    /// key's own span.
    pending_opcodes: Vec<(u64, KeyOpcode)>,
    eof: Option<rdb_parser::Eof>,
}

impl InOrder {
    fn new() -> Self {
        InOrder {
            fingerprints: Vec::new(),
            previous_end: None,
            pending_opcodes: Vec::new(),
            eof: None,
        }
    }

    /// Takes one checked batch in file order: its problems, the opcode checks that need
    /// the items before, and the keys for the duplicate check.
    fn pass(
        &mut self,
        items: &[Located<'_>],
        checked: Vec<Checked>,
        data: &[u8],
        report: &mut Report,
        progress: &mut impl FnMut(u64),
    ) {
        for (located, checked) in items.iter().zip(checked) {
            self.take(
                &located.item,
                located.start,
                located.end,
                checked,
                data,
                report,
            );
            if let Item::Key(entry) = &located.item {
                progress(entry.offset);
            }
        }
    }

    /// Takes one checked item, the next in file order, spanning `start..end`.
    fn take(
        &mut self,
        item: &Item<'_>,
        start: u64,
        end: u64,
        checked: Checked,
        data: &[u8],
        report: &mut Report,
    ) {
        // Bytes between two items are key opcodes the parser carried past them. (None
        // before the first item: a piece starts where the item before it ended.)
        let previous_end = *self.previous_end.get_or_insert(start);
        if start > previous_end {
            let gap = data
                .get(previous_end as usize..start as usize)
                .unwrap_or_default();
            scan_key_opcodes(gap, previous_end, &mut self.pending_opcodes);
        }
        match item {
            Item::Key(entry) => {
                report.keys += 1;
                if entry.opcodes_in_span {
                    // The value, the key and the type byte end the span.
                    let type_byte = end
                        .saturating_sub((entry.raw_value.len() + entry.raw_key.len() + 1) as u64);
                    let own = data
                        .get(start as usize..type_byte as usize)
                        .unwrap_or_default();
                    scan_key_opcodes(own, start, &mut self.pending_opcodes);
                }
                if let Some(p) = overridden_opcodes(&self.pending_opcodes, entry) {
                    report.add(p);
                }
                self.pending_opcodes.clear();
                // Opcodes the parser folded into this key from before other items.
                let detached = !entry.opcodes_in_span
                    && (entry.expire_ms.is_some()
                        || entry.idle_s.is_some()
                        || entry.freq.is_some());
                if detached {
                    report.add(
                        Problem::in_entry(
                            entry,
                            "detached-opcode",
                            "the key's EXPIRETIME/IDLE/FREQ opcodes are separated from \
                             it by other items"
                                .into(),
                        )
                        .warning(),
                    );
                }
                if let Some(h) = checked.key_hash {
                    self.fingerprints.push(h);
                }
            }
            // Size the key hashes from the db's hint, at most one key per 16 bytes
            // of file (8-byte hashes: half the file's size), so a corrupt hint cannot
            // reserve gigabytes; files of smaller keys grow past it. `try_`: a
            // hint that still asks for more than the machine has must not abort
            // the walk; the vector then grows as keys come.
            Item::ResizeDb { db_size, .. } => {
                let bound = (data.len() / 16) as u64;
                let _ = self
                    .fingerprints
                    .try_reserve((*db_size).min(bound) as usize);
            }
            Item::Eof(e) => {
                // Key opcodes since the last key have no key.
                if let Some(&(first, _)) = self.pending_opcodes.first() {
                    report.add(Problem {
                        offset: first,
                        db: None,
                        key: None,
                        check: "dangling-opcode",
                        severity: Severity::Error,
                        message: format!(
                            "{} expiry/idle/freq opcodes after the last key, before \
                             EOF, belong to no key",
                            self.pending_opcodes.len()
                        ),
                    });
                }
                self.eof = Some(*e);
            }
            _ => {}
        }
        checked.problems.into_iter().for_each(|p| report.add(p));
        self.previous_end = Some(end);
    }
}

/// The fingerprints that occur more than once, sorted: those of keys stored twice, or
/// (rarely) of different keys whose hashes meet.
fn shared_fingerprints(mut fingerprints: Vec<u64>) -> Vec<u64> {
    fingerprints.par_sort_unstable();
    let mut shared: Vec<u64> = fingerprints
        .windows(2)
        .filter_map(|w| match w {
            [a, b] if a == b => Some(*a),
            _ => None,
        })
        .collect();
    shared.dedup();
    shared
}

/// Reports every key stored twice in one db, at the later copy, naming the copy before it.
/// Only the keys whose `fingerprint` is one of `suspects` (sorted) can be: the file is
/// walked again to find them, and they are compared whole, so a hash collision reports
/// nothing. The walk reads what the first one read, and stops where it stopped; without
/// suspects (a clean file) there is no walk.
fn duplicate_keys(
    data: &[u8],
    builder: &ParserBuilder,
    suspects: &[u64],
    fingerprint: impl Fn(&[u8], u64) -> u64,
    report: &mut Report,
) {
    if suspects.is_empty() {
        return;
    }
    // (db, key, offset) of each suspect key, the key borrowed from the file when stored
    // plain; sorted, copies of one key sit together in file order.
    let mut copies: Vec<(u64, Cow<'_, [u8]>, u64)> = Vec::new();
    let Ok(parser) = builder.parse(data) else {
        return;
    };
    for item in parser {
        match item {
            Ok(Item::Key(entry)) => {
                if suspects
                    .binary_search(&fingerprint(&entry.key, entry.db))
                    .is_ok()
                {
                    copies.push((entry.db, entry.key, entry.offset));
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    copies.sort_unstable();
    let mut found = Vec::new();
    for pair in copies.windows(2) {
        if let [(db_a, key_a, first), (db, key, offset)] = pair {
            if db_a == db && key_a == key {
                found.push(Problem {
                    offset: *offset,
                    db: Some(*db),
                    key: Some(key.to_vec()),
                    check: "duplicate-key",
                    severity: Severity::Error,
                    message: format!("the key is already in db {db} at byte {first}"),
                });
            }
        }
    }
    found.sort_by_key(|p| p.offset);
    found.into_iter().for_each(|p| report.add(p));
}

fn checksum_state(data: &[u8], eof: &rdb_parser::Eof, prefix_crc: Option<u64>) -> ChecksumState {
    match eof.checksum {
        Checksum::Absent => ChecksumState::Absent,
        Checksum::Disabled => ChecksumState::Disabled,
        Checksum::Verified(c) => ChecksumState::Verified(c),
        Checksum::Unchecked(stored) => {
            let whole_file = eof.trailing == 0 && eof.offset + 9 == data.len() as u64;
            let actual = match prefix_crc {
                Some(c) if whole_file => c,
                _ => rdb_parser::crc64(0, data.get(..=eof.offset as usize).unwrap_or(&[])),
            };
            if actual == stored {
                ChecksumState::Verified(stored)
            } else {
                ChecksumState::Mismatch { stored, actual }
            }
        }
    }
}

fn check_item(item: &Item<'_>, data: &[u8]) -> Checked {
    let Item::Key(entry) = item else {
        return Checked {
            problems: Vec::new(),
            key_hash: None,
        };
    };
    Checked {
        problems: check_value(entry, data),
        key_hash: Some(key_hash(&entry.key, entry.db)),
    }
}

/// The fingerprint of a key in a db for the duplicate-key check. The db is mixed in apart
/// from the key's hash, so a piece that learns its keys' db later can put it in.
fn key_hash(key: &[u8], db: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key) ^ db_mix(db)
}

fn db_mix(db: u64) -> u64 {
    // A bijection of the db number (multiplication by an odd constant), so dbs differ.
    db.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Every check of one key's value.
pub fn check_value(entry: &Entry<'_>, data: &[u8]) -> Vec<Problem> {
    let mut problems = Vec::new();
    if entry.value.is_empty_collection() {
        problems.push(Problem::in_entry(
            entry,
            "empty-collection",
            format!(
                "empty {}: no server writes one; servers skip (7.0+) or mis-load (6.x) it",
                entry.value.type_name()
            ),
        ));
    }
    let result = match &entry.value {
        Value::String(s) => match s.stored() {
            rdb_parser::RdbString::Lzf {
                compressed,
                original_len,
            } => {
                if let Err(why) = lzf_check(compressed, original_len) {
                    let offset =
                        (compressed.as_ptr() as usize).saturating_sub(data.as_ptr() as usize);
                    problems.push(Problem {
                        offset: offset as u64,
                        db: Some(entry.db),
                        key: Some(entry.key.to_vec()),
                        check: "lzf",
                        severity: Severity::Error,
                        message: format!(
                            "compressed string of {} bytes does not expand to its declared \
                             {original_len} bytes: {why}",
                            compressed.len()
                        ),
                    });
                }
                Ok(())
            }
            _ => Ok(()),
        },
        Value::List(l) => {
            check_quicklist_nodes(entry, &mut problems);
            l.iter().try_for_each(|e| e.map(|_| ()))
        }
        Value::Set(s) => check_set(entry, s, &mut problems),
        Value::ZSet(z) => check_zset(entry, z, &mut problems),
        Value::Hash(h) => check_hash(entry, h, &mut problems),
        Value::Stream(s) => check_stream(entry, s, &mut problems),
        Value::Module(_) => Ok(()),
    };
    if let Err(e) = result {
        problems.push(Problem::from_error(&e, Some(entry)));
    }
    problems
}

/// The bytes an element stands for, borrowed when it is stored as bytes.
fn element_bytes(e: Element<'_>) -> Cow<'_, [u8]> {
    match e {
        Element::Bytes(b) => b,
        Element::Int(v) => Cow::Owned(v.to_string().into_bytes()),
    }
}

/// The hash of the bytes an element stands for (an integer hashes as its decimal form, as
/// a loader compares them).
fn element_hash(e: &Element<'_>) -> u64 {
    match e {
        Element::Bytes(b) => xxhash_rust::xxh3::xxh3_64(b),
        Element::Int(v) => xxhash_rust::xxh3::xxh3_64(itoa::Buffer::new().format(*v).as_bytes()),
    }
}

/// Finds members seen twice: a hash per member, compared after the walk. Only when two
/// hashes meet are the members themselves collected, compared and named
/// ([`name_duplicates`]), so a clean collection allocates no copy of an integer member and
/// sorts words instead of byte strings.
struct Duplicates {
    hashes: Vec<u64>,
}

impl Duplicates {
    fn new() -> Self {
        Duplicates { hashes: Vec::new() }
    }

    fn add(&mut self, member: &Element<'_>) {
        self.hashes.push(element_hash(member));
    }

    /// Whether two members may be equal.
    fn suspected(&mut self) -> bool {
        let h = &mut self.hashes;
        if h.len() <= 16 {
            h.iter()
                .enumerate()
                .any(|(i, x)| h.iter().take(i).any(|y| y == x))
        } else {
            h.sort_unstable();
            h.windows(2).any(|w| w.first() == w.last())
        }
    }
}

/// Reports the members of `members` seen twice, naming the first few.
fn name_duplicates<'a>(
    members: impl Iterator<Item = Result<Cow<'a, [u8]>, Error>>,
    entry: &Entry<'_>,
    what: &str,
    problems: &mut Vec<Problem>,
) {
    // The walk already succeeded once; a second one meets the same bytes.
    let mut m: Vec<Cow<'a, [u8]>> = members.filter_map(Result::ok).collect();
    m.sort_unstable();
    let mut named: Vec<&[u8]> = Vec::new();
    let mut count = 0u64;
    for pair in m.windows(2) {
        if let [x, y] = pair {
            if x == y {
                count += 1;
                if named.len() < DUPLICATES_NAMED {
                    named.push(y);
                }
            }
        }
    }
    if count == 0 {
        return;
    }
    let mut names = String::new();
    for (i, n) in named.iter().enumerate() {
        names.push_str(if i == 0 { "\"" } else { ", \"" });
        let _ = rdb_parser::error::write_escaped(&mut names, n);
        names.push('"');
    }
    let more = count - named.len() as u64;
    if more > 0 {
        names.push_str(&format!(" and {more} more"));
    }
    problems.push(Problem::in_entry(
        entry,
        "duplicate-member",
        format!("{count} duplicate {what}: {names}"),
    ));
}

fn check_set(
    entry: &Entry<'_>,
    set: &rdb_parser::Set<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let intset = set.encoding_name() == "intset";
    let mut dups = Duplicates::new();
    let mut previous: Option<i64> = None;
    let mut order_reported = false;
    for member in set.iter() {
        let member = member?;
        if intset {
            if let Element::Int(v) = member {
                if previous.is_some_and(|p| p >= v) && !order_reported {
                    order_reported = true;
                    problems.push(Problem::in_entry(
                        entry,
                        "intset-order",
                        format!(
                            "intset values must be strictly ascending: {} then {v}",
                            previous.unwrap_or_default()
                        ),
                    ));
                }
                previous = Some(v);
            }
            // Strictly ascending values are distinct; a broken order is reported above.
            continue;
        }
        dups.add(&member);
    }
    if dups.suspected() {
        let members = set.iter().map(|m| m.map(element_bytes));
        name_duplicates(members, entry, "members", problems);
    }
    Ok(())
}

fn check_zset(
    entry: &Entry<'_>,
    zset: &rdb_parser::ZSet<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let mut dups = Duplicates::new();
    let mut nan_reported = false;
    for pair in zset.iter() {
        let (member, score) = pair?;
        if score.is_nan() && !nan_reported {
            nan_reported = true;
            let mut m = String::new();
            let _ = rdb_parser::error::write_escaped(&mut m, &member.to_bytes());
            problems.push(Problem::in_entry(
                entry,
                "nan-score",
                format!("member \"{m}\" has a NaN score"),
            ));
        }
        dups.add(&member);
    }
    if dups.suspected() {
        let members = zset.iter().map(|p| p.map(|(m, _)| element_bytes(m)));
        name_duplicates(members, entry, "members", problems);
    }
    Ok(())
}

fn check_hash(
    entry: &Entry<'_>,
    hash: &rdb_parser::Hash<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let mut dups = Duplicates::new();
    // Redis' listpack form keeps fields with a TTL first, by ascending expiry.
    let ordered = hash.encoding_name().starts_with("listpack_ex");
    let mut last_ttl: Option<Option<i64>> = None;
    let (mut bad_ttl, mut bad_order) = (None, false);
    for field in hash.iter() {
        let field = field?;
        if let Some(t) = field.expire_ms {
            if !(0..=MAX_FIELD_EXPIRE).contains(&t) && bad_ttl.is_none() {
                bad_ttl = Some(t);
            }
        }
        if ordered {
            bad_order |= match (last_ttl, field.expire_ms) {
                (Some(None), Some(_)) => true,
                (Some(Some(prev)), Some(t)) => t < prev,
                _ => false,
            };
            last_ttl = Some(field.expire_ms);
        }
        dups.add(&field.field);
    }
    if dups.suspected() {
        let fields = hash.iter().map(|f| f.map(|f| element_bytes(f.field)));
        name_duplicates(fields, entry, "fields", problems);
    }
    if let Some(t) = bad_ttl {
        problems.push(Problem::in_entry(
            entry,
            "hash-field-ttl",
            format!("a field expires at {t}, outside 0..=2^48-1 ms"),
        ));
    }
    if bad_order {
        problems.push(Problem::in_entry(
            entry,
            "hash-field-ttl",
            "fields with a TTL must come first, by ascending expiry".into(),
        ));
    }
    Ok(())
}

fn check_stream(
    entry: &Entry<'_>,
    stream: &Stream<'_>,
    problems: &mut Vec<Problem>,
) -> Result<(), Error> {
    let mut previous: Option<rdb_parser::StreamId> = None;
    let mut live = 0u64;
    let mut first = None;
    let mut order_reported = false;
    let mut entries = stream.entries();
    while let Some(e) = entries.next_entry() {
        let e = e?;
        live += 1;
        first.get_or_insert(e.id);
        if previous.is_some_and(|p| p >= e.id) && !order_reported {
            order_reported = true;
            problems.push(Problem::in_entry(
                entry,
                "stream-id-order",
                format!(
                    "entry IDs must ascend: {} then {}",
                    previous.unwrap_or_default(),
                    e.id
                ),
            ));
        }
        previous = Some(e.id);
    }
    if live != stream.length {
        problems.push(Problem::in_entry(
            entry,
            "stream-length",
            format!(
                "the stream says {} entries, its nodes hold {live}",
                stream.length
            ),
        ));
    }
    if let Some(last) = previous {
        if last > stream.last_id {
            problems.push(Problem::in_entry(
                entry,
                "stream-last-id",
                format!(
                    "entry {last} is beyond the stream's last ID {}",
                    stream.last_id
                ),
            ));
        }
    }
    if let (Some(declared), Some(found)) = (stream.first_id, first) {
        if declared != found && declared != rdb_parser::StreamId::default() {
            problems.push(
                Problem::in_entry(
                    entry,
                    "stream-first-id",
                    format!("the stream's first ID says {declared}, the first entry is {found}"),
                )
                .warning(),
            );
        }
    }
    if let Some(max_deleted) = stream.max_deleted_id {
        if max_deleted > stream.last_id {
            problems.push(Problem::in_entry(
                entry,
                "stream-last-id",
                format!(
                    "the max deleted ID {max_deleted} is beyond the last ID {}",
                    stream.last_id
                ),
            ));
        }
    }
    let mut group_names = HashSet::new();
    for group in &stream.groups {
        let mut gname = String::new();
        let _ = rdb_parser::error::write_escaped(&mut gname, &group.name);
        if !group_names.insert(group.name.as_ref()) {
            problems.push(Problem::in_entry(
                entry,
                "stream-group",
                format!("consumer group \"{gname}\" appears twice"),
            ));
        }
        if group.last_id > stream.last_id {
            problems.push(
                Problem::in_entry(
                    entry,
                    "stream-group",
                    format!(
                        "group \"{gname}\" last-delivered ID {} is beyond the stream's last ID {}",
                        group.last_id, stream.last_id
                    ),
                )
                .warning(),
            );
        }
        // The group PEL: unique IDs; each owned by exactly one consumer.
        let mut owners: HashMap<rdb_parser::StreamId, u32> = HashMap::new();
        let mut pel_dups = 0u64;
        for p in &group.pending {
            if owners.insert(p.id, 0).is_some() {
                pel_dups += 1;
            }
        }
        if pel_dups > 0 {
            problems.push(Problem::in_entry(
                entry,
                "stream-pel",
                format!("group \"{gname}\": {pel_dups} IDs appear twice in the PEL"),
            ));
        }
        let mut consumer_names = HashSet::new();
        let mut missing = Vec::new();
        for c in &group.consumers {
            if !consumer_names.insert(c.name.as_ref()) {
                let mut cname = String::new();
                let _ = rdb_parser::error::write_escaped(&mut cname, &c.name);
                problems.push(Problem::in_entry(
                    entry,
                    "stream-group",
                    format!("group \"{gname}\": consumer \"{cname}\" appears twice"),
                ));
            }
            for id in &c.pending {
                match owners.get_mut(id) {
                    Some(n) => *n += 1,
                    None => missing.push(*id),
                }
            }
        }
        if let Some(id) = missing.first() {
            problems.push(Problem::in_entry(
                entry,
                "stream-pel",
                format!(
                    "group \"{gname}\": {} consumer PEL entries (first {id}) are not in the \
                     group PEL",
                    missing.len()
                ),
            ));
        }
        let mut unowned: Vec<_> = owners.iter().filter(|(_, &n)| n == 0).collect();
        let mut shared: Vec<_> = owners.iter().filter(|(_, &n)| n > 1).collect();
        unowned.sort();
        shared.sort();
        if let Some((id, _)) = unowned.first() {
            problems.push(Problem::in_entry(
                entry,
                "stream-pel",
                format!(
                    "group \"{gname}\": {} PEL entries (first {id}) belong to no consumer",
                    unowned.len()
                ),
            ));
        }
        if let Some((id, _)) = shared.first() {
            problems.push(Problem::in_entry(
                entry,
                "stream-pel",
                format!(
                    "group \"{gname}\": {} PEL entries (first {id}) belong to more than one \
                     consumer",
                    shared.len()
                ),
            ));
        }
    }
    Ok(())
}

/// Empty quicklist nodes: a server skips them on load (and a list made only of them is
/// an empty collection), but none writes one. The parser has checked every node's extent;
/// this only re-reads the node headers.
fn check_quicklist_nodes(entry: &Entry<'_>, problems: &mut Vec<Problem>) {
    use rdb_parser::format::type_id;
    let v2 = match entry.type_id {
        type_id::LIST_QUICKLIST => false,
        type_id::LIST_QUICKLIST_2 => true,
        _ => return,
    };
    let Some((nodes, mut rest)) = rdb_length(entry.raw_value) else {
        return;
    };
    let mut empty = 0u64;
    for _ in 0..nodes {
        let mut container = rdb_parser::format::quicklist_container::PACKED;
        if v2 {
            let Some((c, r)) = rdb_length(rest) else {
                return;
            };
            (container, rest) = (c, r);
        }
        let Some((blob, r)) = rdb_raw_string(rest) else {
            return;
        };
        rest = r;
        // An empty listpack is its 6-byte header and the end byte; an empty ziplist 10 + 1.
        let empty_len = if v2 { 7 } else { 11 };
        if container == rdb_parser::format::quicklist_container::PACKED
            && blob.is_some_and(|b| b.len() == empty_len)
        {
            empty += 1;
        }
    }
    if empty > 0 && !entry.value.is_empty_collection() {
        problems.push(
            Problem::in_entry(
                entry,
                "quicklist-node",
                format!("{empty} of {nodes} quicklist nodes are empty (servers skip them)"),
            )
            .warning(),
        );
    }
}

/// An RDB length prefix (not a string encoding) and the bytes after it.
fn rdb_length(i: &[u8]) -> Option<(u64, &[u8])> {
    let (&first, rest) = i.split_first()?;
    match first >> 6 {
        0 => Some((u64::from(first & 0x3f), rest)),
        1 => {
            let (&second, rest) = rest.split_first()?;
            Some((u64::from(first & 0x3f) << 8 | u64::from(second), rest))
        }
        2 if first == 0x80 => {
            let b: [u8; 4] = rest.get(..4)?.try_into().ok()?;
            Some((u64::from(u32::from_be_bytes(b)), rest.get(4..)?))
        }
        2 if first == 0x81 => {
            let b: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            Some((u64::from_be_bytes(b), rest.get(8..)?))
        }
        _ => None,
    }
}

/// An RDB string: its bytes when stored plain (`None` for integer and LZF forms), and
/// the bytes after it.
fn rdb_raw_string(i: &[u8]) -> Option<(Option<&[u8]>, &[u8])> {
    match i.first()? >> 6 {
        3 => {
            let (&enc, rest) = i.split_first()?;
            let skip = match enc & 0x3f {
                0 => 1,
                1 => 2,
                2 => 4,
                3 => {
                    let (clen, rest) = rdb_length(rest)?;
                    let (_, rest) = rdb_length(rest)?;
                    return Some((None, rest.get(usize::try_from(clen).ok()?..)?));
                }
                _ => return None,
            };
            Some((None, rest.get(skip..)?))
        }
        _ => {
            let (n, rest) = rdb_length(i)?;
            let n = usize::try_from(n).ok()?;
            Some((Some(rest.get(..n)?), rest.get(n..)?))
        }
    }
}

/// Walks an LZF stream without writing its output: every literal run and back-reference
/// must stay inside the input and the declared output, and the output must come to exactly
/// `declared` bytes. The same rules as decompressing, with no copy (verify only needs the
/// verdict; collections inside LZF blobs are decompressed by the parser to be walked).
fn lzf_check(input: &[u8], declared: usize) -> Result<(), String> {
    if declared == 0 {
        return Err("declared length 0".into());
    }
    let (mut ip, mut op) = (0usize, 0usize);
    while ip < input.len() {
        let ctrl = usize::from(input.get(ip).copied().unwrap_or(0));
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            if ip + run > input.len() {
                return Err(format!(
                    "literal run of {run} bytes passes the end of the input"
                ));
            }
            ip += run;
            op += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip).ok_or("input ends inside a back-reference")?);
                ip += 1;
            }
            let low = usize::from(*input.get(ip).ok_or("input ends inside a back-reference")?);
            ip += 1;
            let distance = ((ctrl & 0x1f) << 8) + low + 1;
            if distance > op {
                return Err(format!(
                    "back-reference {distance} bytes back at output byte {op}"
                ));
            }
            op += len + 2;
        }
        if op > declared {
            return Err(format!("expands past {declared} bytes"));
        }
    }
    if op != declared {
        return Err(format!("expands to {op} bytes"));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::test_support::in_pool;

    /// Keys over `dbs` dbs, each db with a copy of an earlier key, sets with a member
    /// stored twice, and an expiry overridden by a second one: findings all over the
    /// file, in the first piece and in later ones once their db is known.
    fn findings_everywhere(dbs: u32) -> Vec<u8> {
        use rdb_parser::format::type_id;
        use rdb_writer::{value, Compression, Writer};
        let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(11)).unwrap();
        w.select_db(0).unwrap();
        for i in 0..60_000u32 {
            let per_db = 60_000 / dbs;
            if i > 0 && i % per_db == 0 {
                w.select_db(u64::from(i / per_db)).unwrap();
            }
            // The same names in each db are no duplicates; a repeat within one db is.
            let n = i % per_db;
            let key = if n % 4_999 == 4_998 {
                format!("k:{}", n / 2)
            } else {
                format!("k:{n}")
            };
            if i % 7_001 == 7_000 {
                w.expire_ms(1).unwrap();
            }
            if i % 3 == 0 {
                w.expire_ms(1_700_000_000_000).unwrap();
            }
            if i % 5 == 0 {
                let mut members: Vec<String> = (0..1 + i % 30).map(|m| format!("m{m}")).collect();
                if i % 6_007 == 0 {
                    members.push("m0".into());
                }
                let v = value::set_plain(&members, Compression::None);
                w.key_value(type_id::SET, key.as_bytes(), &v).unwrap();
            } else {
                let v = value::string(format!("{i}").repeat(4).as_bytes(), Compression::None);
                w.key_value(type_id::STRING, key.as_bytes(), &v).unwrap();
            }
        }
        w.finish().unwrap()
    }

    /// Checked in pieces on 2 to 4 threads, the file gives the report of one sequence,
    /// findings and all; `--max-problems` cuts the joined list where one sequence would.
    #[test]
    fn pieces_find_what_one_sequence_finds() {
        for dbs in [1, 3] {
            pieces_find_what_one_sequence_finds_in(&findings_everywhere(dbs));
        }
    }

    fn pieces_find_what_one_sequence_finds_in(data: &[u8]) {
        for max in [DEFAULT_MAX_PROBLEMS, 5] {
            let one = in_pool(1, || verify_with(data, max, |_| {}).to_json().to_string());
            if max == DEFAULT_MAX_PROBLEMS {
                for check in ["duplicate-key", "duplicate-member", "dangling-opcode"] {
                    assert!(one.contains(check), "{check}: {one}");
                }
            }
            for threads in [2, 3, 4] {
                let split = in_pool(threads, || {
                    let before = Report::new(data.len() as u64, max);
                    let walked = split_walk(data, &walk_builder(), &before, &mut |_| {});
                    format!("{:?}", walked.map(|(r, _)| r.keys))
                });
                assert_eq!(split, "Some(60000)", "{threads} threads: the pieces join");
                let many = in_pool(threads, || {
                    verify_with(data, max, |_| {}).to_json().to_string()
                });
                assert_eq!(many, one, "{threads} threads, --max-problems {max}");
            }
        }
    }

    /// `REDIS0009`, SELECTDB 0, then string keys given as their stored key bytes (length
    /// prefix or integer/LZF encoding included), each with the value "v".
    fn file(keys: &[&[u8]]) -> (Vec<u8>, Vec<u64>) {
        let mut data = b"REDIS0009\xfe\x00".to_vec();
        let mut offsets = Vec::new();
        for stored in keys {
            offsets.push(data.len() as u64);
            data.push(0); // string type
            data.extend_from_slice(stored);
            data.extend_from_slice(b"\x01v");
        }
        data.push(0xff);
        let crc = rdb_parser::crc64(0, &data);
        data.extend_from_slice(&crc.to_le_bytes());
        (data, offsets)
    }

    /// The duplicate keys found when every key's fingerprint is 7, as if all collided.
    fn duplicates(data: &[u8]) -> Vec<Problem> {
        let mut report = verify(data, |_| {});
        report.problems.clear();
        duplicate_keys(data, &walk_builder(), &[7], |_, _| 7, &mut report);
        report.problems
    }

    #[test]
    fn only_fingerprints_met_twice_are_suspects() {
        assert_eq!(shared_fingerprints(vec![5, 1, 9, 5, 3, 9, 5]), vec![5, 9]);
        assert!(shared_fingerprints(vec![4, 2, 8]).is_empty());
        assert!(shared_fingerprints(Vec::new()).is_empty());
    }

    #[test]
    fn a_hash_collision_between_different_keys_reports_nothing() {
        let (data, _) = file(&[b"\x01a", b"\x01b"]);
        // Both keys given the same hash, as a collision would.
        let found = duplicates(&data);
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    #[allow(clippy::indexing_slicing)] // lengths asserted first
    fn keys_stored_in_different_forms_are_the_same_key() {
        // "123" as plain bytes and as an 8-bit integer string: one key to a loader.
        let (data, at) = file(&[b"\x03123", b"\xc0\x7b"]);
        let found = duplicates(&data);
        assert_eq!(found.len(), 1, "{found:?}");
        let message = format!("the key is already in db 0 at byte {}", at[0]);
        assert_eq!(
            (
                found[0].offset,
                found[0].key.as_deref(),
                found[0].message.as_str()
            ),
            (at[1], Some(&b"123"[..]), message.as_str())
        );
        // And the whole verify finds it with the real hashes.
        let report = verify(&data, |_| {});
        assert!(
            report.problems.iter().any(|p| p.check == "duplicate-key"),
            "{:?}",
            report.problems
        );
    }
}
