//! The walks over the file: in one sequence of batches or in one piece per core, the
//! in-order pass that sees what spans items (key opcodes, key fingerprints), and the
//! second walk that names duplicate keys.

use std::borrow::Cow;
use std::collections::HashMap;

use rayon::prelude::*;
use rdb_parser::{Checksum, Entry, Error, Item, ParserBuilder};

// The shared pipeline's batch sizes: verify batches on its own only to carry the parse
// error behind the items before it.
use rdb_pipeline::{BATCH_BYTES, BATCH_ITEMS};
use rdb_writer::slot::SlotRange;

use crate::parts::KeysOutside;

pub(super) use super::checks::check_item;
use super::report::{Check, ChecksumState, Problem, Report, Severity};

/// An item with where it starts and ends in the file.
pub(super) struct Located<'data> {
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
    let mut read_ahead = rdb_pipeline::ReadAhead::new();
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
pub(super) struct Checked {
    pub(super) problems: Vec<Problem>,
    /// Hash of (db, key), for the duplicate-key check.
    pub(super) key_hash: Option<u64>,
}

/// The parser every walk of verify uses: the CRC is checked beside the walk (and a
/// mismatch reported, not fatal), and empty collections are read to be reported.
pub(super) fn walk_builder() -> ParserBuilder {
    let mut builder = ParserBuilder::new();
    builder.verify_checksum(false).allow_empty_keys(true);
    builder
}

/// The walk in one sequence: three batches in flight, each checked on any core and taken
/// in file order.
pub(super) fn pipeline_walk<'data, 's>(
    parser: &mut rdb_parser::Parser<'data>,
    data: &'data [u8],
    slots: Option<&'s [SlotRange]>,
    report: &mut Report,
    progress: &mut (impl FnMut(u64) + Send),
) -> InOrder<'s> {
    let mut in_order = InOrder::new(slots);
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
                            .map(|l| check_item(&l.item, l.start, data))
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
            if p.check == Check::Structure {
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

/// The walk in one piece of the file per core ([`rdb_pipeline::split_fold`]):
/// each piece checks its items in order and keeps its own findings and key fingerprints,
/// joined in file order onto `before` (the report so far). `None` when the file is not
/// split, a piece start proved a wrong guess, or the walk met an error it cannot go past
/// (one sequence then reports it where it stops).
pub(super) fn split_walk<'s>(
    data: &[u8],
    builder: &ParserBuilder,
    slots: Option<&'s [SlotRange]>,
    before: &Report,
    progress: &mut (impl FnMut(u64) + Send),
) -> Option<(Report, InOrder<'s>)> {
    use rdb_pipeline::UNKNOWN_DB;
    let empty = Report::new(before.file_bytes, before.max_problems);
    let fresh = || (empty.clone(), InOrder::new(slots));
    let step = |acc: &mut (Report, InOrder<'s>), item: &Item<'_>, start: u64, span: &[u8]| {
        let checked = check_item(item, start, data);
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
        rdb_pipeline::split_fold(data, builder, threads, fresh, step, progress).ok()??;
    let mut report = before.clone();
    let mut joined = InOrder::new(slots);
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
            for k in in_order
                .outside
                .examples
                .iter_mut()
                .filter(|k| k.db == UNKNOWN_DB)
            {
                k.db = db;
            }
        }
        joined.outside.absorb(in_order.outside);
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
            opcode::IDLE => (
                KeyOpcode::Idle,
                rdb_parser::raw::length(rest).map(|(_, r)| r),
            ),
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
        Check::DanglingOpcode,
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
pub(super) struct InOrder<'s> {
    /// The part's slot ranges, when a manifest gives them: keys outside are tallied.
    slots: Option<&'s [SlotRange]>,
    pub(super) outside: KeysOutside,
    /// The hash of db and key ([`key_hash`]) per key, sorted once the walk is done: 8
    /// bytes a key, and one sort instead of a hash map larger than the caches.
    pub(super) fingerprints: Vec<u64>,
    previous_end: Option<u64>,
    /// Key opcodes (offset, kind) since the last key: in gaps between items, or in a
    /// key's own span.
    pending_opcodes: Vec<(u64, KeyOpcode)>,
    pub(super) eof: Option<rdb_parser::Eof>,
}

impl<'s> InOrder<'s> {
    pub(super) fn new(slots: Option<&'s [SlotRange]>) -> Self {
        InOrder {
            slots,
            outside: KeysOutside::default(),
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
    pub(super) fn take(
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
                if let Some(ranges) = self.slots {
                    self.outside
                        .check(ranges, entry.offset, entry.db, &entry.key);
                }
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
                            Check::DetachedOpcode,
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
                    report.add(Problem::at(
                        first,
                        Check::DanglingOpcode,
                        format!(
                            "{} expiry/idle/freq opcodes after the last key, before \
                             EOF, belong to no key",
                            self.pending_opcodes.len()
                        ),
                    ));
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
pub(super) fn shared_fingerprints(mut fingerprints: Vec<u64>) -> Vec<u64> {
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
pub(super) fn duplicate_keys(
    data: &[u8],
    builder: &ParserBuilder,
    suspects: &[u64],
    fingerprint: impl Fn(&[u8], u64) -> u64,
    report: &mut Report,
) {
    if suspects.is_empty() {
        return;
    }
    // The last offset of each suspect key met so far, by db and key (borrowed from the
    // file when stored plain): one entry per distinct key, however many copies it has.
    let mut last_seen: HashMap<(u64, Cow<'_, [u8]>), u64> = HashMap::new();
    let Ok(parser) = builder.parse(data) else {
        return;
    };
    for item in parser {
        let entry = match item {
            Ok(Item::Key(entry)) => entry,
            Ok(_) => continue,
            Err(_) => break,
        };
        if suspects
            .binary_search(&fingerprint(&entry.key, entry.db))
            .is_err()
        {
            continue;
        }
        let (db, offset) = (entry.db, entry.offset);
        let slot = (db, entry.key);
        let Some(previous) = last_seen.get_mut(&slot) else {
            last_seen.insert(slot, offset);
            continue;
        };
        let first = std::mem::replace(previous, offset);
        // The walk is in file order, so duplicates come by offset, as a sorted list
        // would: past `max_problems` they are counted, never built.
        report.add_with(Severity::Error, || Problem {
            offset,
            db: Some(db),
            key: Some(slot.1.to_vec()),
            check: Check::DuplicateKey,
            severity: Severity::Error,
            message: format!("the key is already in db {db} at byte {first}"),
        });
    }
}

pub(super) fn checksum_state(
    data: &[u8],
    eof: &rdb_parser::Eof,
    prefix_crc: Option<u64>,
) -> ChecksumState {
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
            ChecksumState::compared(stored, actual)
        }
    }
}

/// The fingerprint of a key in a db for the duplicate-key check. The db is mixed in apart
/// from the key's hash, so a piece that learns its keys' db later can put it in.
pub(super) fn key_hash(key: &[u8], db: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key) ^ db_mix(db)
}

pub(super) fn db_mix(db: u64) -> u64 {
    // A bijection of the db number (multiplication by an odd constant), so dbs differ.
    db.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}
