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
//! checks on top: intset order, NaN scores, duplicate members and fields, zipmap header
//! counts, empty PLAIN quicklist nodes, stream ID order and consumer-group consistency,
//! duplicate keys, empty collections, expiry opcodes that belong to no key, Valkey slot
//! import names, and lengths equal to the loaders' error marker. The duplicate-key check
//! keeps a 64-bit hash per key (8 to 16 bytes with the vector's slack: 100 M keys take 0.8
//! to 1.6 GB), sorted at the end; only when two hashes meet is the file walked again to
//! find those keys and compare them whole, one entry per distinct key, naming duplicates
//! as it meets them (past `max_problems` they are only counted). A value whose bytes are
//! corrupt inside a known extent is reported and skipped; a broken extent ends the walk,
//! since nothing after it can be located.
//!
//! `report` holds the findings and their JSON contract ([`Check`]), `walk` the walks over
//! the file, `checks` the checks of one item.

mod checks;
mod report;
mod walk;
mod whole;

pub use checks::check_value;
pub use report::{Check, ChecksumState, Problem, Report, Severity};
pub use whole::{PartReport, Whole};

use rdb_writer::slot::SlotRange;

use crate::parts::Part;

use walk::{
    checksum_state, duplicate_keys, key_hash, pipeline_walk, shared_fingerprints, split_walk,
    walk_builder, InOrder,
};

/// verify's checks fed one item at a time by a walk made for another purpose: convert folds
/// them into its own pass, so that the file is read once. [`Inline::check`] runs on any
/// core; [`Inline::take`] takes each item's findings in file order and returns them with
/// those that need the items before it (key opcodes); [`Inline::duplicate_keys`] ends the
/// walk. The CRC64 is the walker's to check.
pub struct Inline {
    /// No slot ranges: a conversion's input is one file, not a part of a manifest.
    in_order: InOrder<'static>,
    scratch: Report,
}

/// What [`Inline::check`] found in one item.
pub struct Found(walk::Checked);

impl Found {
    pub fn problems(&self) -> &[Problem] {
        &self.0.problems
    }
}

impl std::fmt::Debug for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Found").field(&self.0.problems).finish()
    }
}

impl std::fmt::Debug for Inline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inline").finish_non_exhaustive()
    }
}

impl Inline {
    pub fn new(data: &[u8]) -> Inline {
        Inline {
            in_order: InOrder::new(None),
            scratch: Report::new(data.len() as u64, usize::MAX),
        }
    }

    /// The checks of one item that starts at `start` in `data` (any core).
    pub fn check(item: &rdb_parser::Item<'_>, start: u64, data: &[u8]) -> Found {
        Found(walk::check_item(item, start, data))
    }

    /// Takes the next item in file order (spanning `start..end`) with what
    /// [`Inline::check`] found in it; returns its problems.
    pub fn take(
        &mut self,
        item: &rdb_parser::Item<'_>,
        start: u64,
        end: u64,
        found: Found,
        data: &[u8],
    ) -> Vec<Problem> {
        self.in_order
            .take(item, start, end, found.0, data, &mut self.scratch);
        std::mem::take(&mut self.scratch.problems)
    }

    /// After the last item: the keys stored twice in one db (walking the file again only
    /// when two key hashes meet).
    pub fn duplicate_keys(self, data: &[u8]) -> Vec<Problem> {
        let suspects = shared_fingerprints(self.in_order.fingerprints);
        let mut report = Report::new(data.len() as u64, usize::MAX);
        duplicate_keys(data, &walk_builder(), &suspects, key_hash, &mut report);
        report.problems
    }
}

/// Problems listed by default; the rest are counted.
pub const DEFAULT_MAX_PROBLEMS: usize = 100_000;

/// Verifies `data` (a whole snapshot). `progress` receives offsets as the walk advances.
pub fn verify(data: &[u8], progress: impl FnMut(u64) + Send) -> Report {
    verify_with(data, DEFAULT_MAX_PROBLEMS, progress)
}

/// [`verify`], listing at most `max_problems` findings of the walk (all are counted).
pub fn verify_with(data: &[u8], max_problems: usize, progress: impl FnMut(u64) + Send) -> Report {
    verify_in(data, None, max_problems, progress)
}

/// [`verify_with`] for one part of several: when a manifest gives the part's slot ranges,
/// keys outside them are counted ([`Report::outside_slots`]) and reported as one
/// `outside-slots` warning with the first few.
pub fn verify_part(
    data: &[u8],
    part: &Part,
    max_problems: usize,
    progress: impl FnMut(u64) + Send,
) -> Report {
    let mut report = verify_in(data, part.slots.as_deref(), max_problems, progress);
    if let Some(why) = part.differs_from_manifest(data) {
        // Always listed: it is about the whole file, whatever the walk found.
        report.problems.push(Problem::at(0, Check::Manifest, why));
    }
    report
}

fn verify_in(
    data: &[u8],
    slots: Option<&[SlotRange]>,
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
            .then(|| split_walk(data, &builder, slots, &report, &mut progress))
            .flatten();
        let in_order = match walked {
            Some((walked, in_order)) => {
                report = walked;
                in_order
            }
            None => pipeline_walk(&mut parser, data, slots, &mut report, &mut progress),
        };
        let InOrder {
            fingerprints,
            eof,
            outside,
            ..
        } = in_order;
        if let Some(ranges) = slots {
            report
                .problems
                .extend(Problem::outside_slots(ranges, &outside));
            report.outside_slots = Some(outside);
        }
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
            let message = if matches {
                "the walk stopped before EOF, yet the last 8 bytes are the CRC64 of the rest: \
                 the file was written like this"
            } else {
                "the walk stopped before EOF, and the last 8 bytes are not the CRC64 of the \
                 rest: the file is damaged or cut short"
            };
            let p = Problem::at(covered as u64, Check::Checksum, message.into());
            report.problems.push(p.warning());
        }
        if let Some(eof) = eof {
            report.complete = true;
            report.checksum = checksum_state(data, &eof, prefix_crc);
            if let ChecksumState::Mismatch { stored, actual } = report.checksum {
                report.problems.push(Problem::at(
                    eof.offset + 1,
                    Check::Checksum,
                    format!("trailer says {stored:016x}, the bytes give {actual:016x}"),
                ));
            }
            if eof.trailing > 0 {
                // Loaders stop reading at the trailer.
                let p = Problem::at(
                    data.len() as u64 - eof.trailing,
                    Check::TrailingBytes,
                    format!("{} bytes follow the end of the snapshot", eof.trailing),
                );
                report.problems.push(p.warning());
            }
        }
    });
    report.problems.sort_by_key(|p| p.offset);
    report
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
                    let walked = split_walk(data, &walk_builder(), None, &before, &mut |_| {});
                    format!("{:?}", walked.map(|(r, _)| r.keys))
                });
                assert_eq!(split, "Some(60000)", "{threads} threads: the pieces join");
                let many = in_pool(threads, || {
                    verify_with(data, max, |_| {}).to_json().to_string()
                });
                assert_eq!(many, one, "{threads} threads, --max-problems {max}");
            }
            // The keys outside a part's slots, their count and first few in file order
            // (their db known once the pieces join), as one sequence finds them.
            let part = Part {
                slots: Some(vec![(0, 5460)]),
                ..Part::file("shard-0.rdb")
            };
            let one = in_pool(1, || verify_part(data, &part, max, |_| {}));
            let outside = one.outside_slots.clone().unwrap_or_default();
            assert!(outside.count > 30_000, "{}", outside.count);
            assert_eq!(outside.examples.len(), crate::parts::KeysOutside::EXAMPLES);
            let one = one.to_json().to_string();
            assert!(one.contains("outside-slots"));
            for threads in [2, 3, 4] {
                let many = in_pool(threads, || {
                    verify_part(data, &part, max, |_| {}).to_json().to_string()
                });
                assert_eq!(many, one, "{threads} threads, a part's slots");
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
            report
                .problems
                .iter()
                .any(|p| p.check == Check::DuplicateKey),
            "{:?}",
            report.problems
        );
    }
}
