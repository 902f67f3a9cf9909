//! Several snapshots as one (a cluster's shard backups, or a directory with its
//! manifest): each file is read on its own, its statistics kept as a part, then joined
//! into the whole as if every key had come in one sequence.

use rdb_parser::ParserBuilder;
use rdb_writer::slot::SlotRange;

use super::collect::{collect_part, collect_sequence, Outside, Stats};
use super::{Options, Source};
use crate::Failure;

/// What one file of several holds.
#[derive(Debug, Clone)]
pub struct PartStats {
    /// The path as the user gave it (or as the manifest names it).
    pub name: String,
    pub file_bytes: u64,
    pub magic: &'static str,
    pub rdb_version: u32,
    pub checksum: String,
    pub keys: u64,
    pub bytes: u64,
    pub memory: u64,
    /// The slots holding its keys, as inclusive ranges.
    pub slots: Vec<SlotRange>,
    /// The ranges its manifest gives it; `None` without a manifest.
    pub manifest_slots: Option<Vec<SlotRange>>,
    /// Its keys outside `manifest_slots`.
    pub outside: Outside,
}

/// A run's statistics: the whole, and each part when there are several files (or one
/// whose manifest gives its slots).
#[derive(Debug, Clone)]
pub struct Report {
    pub whole: Stats,
    /// Empty for one plain file: its report is the whole.
    pub parts: Vec<PartStats>,
}

/// Reads every source and joins them. `progress` gets the bytes read over all sources.
pub fn collect_all(
    sources: &[Source<'_>],
    parser: &ParserBuilder,
    options: &Options,
    mut progress: impl FnMut(u64) + Send,
) -> Result<Report, Failure> {
    if let [one] = sources {
        if one.part.slots.is_none() {
            let whole = super::collect(one.data, parser, options, progress)?;
            return Ok(Report {
                whole,
                parts: Vec::new(),
            });
        }
    }
    let mut parts = Vec::with_capacity(sources.len());
    let mut whole: Option<Stats> = None;
    let mut exact = true;
    let mut done = 0u64;
    for source in sources {
        let slots = source.part.slots.as_deref();
        let stats = collect_part(source.data, parser, options, slots, |at| {
            progress(done + at)
        })
        .map_err(|e| in_part(e, &source.part.name()))?;
        done += source.data.len() as u64;
        parts.push(PartStats::of(&source.part.name(), &stats, slots));
        match &mut whole {
            None => whole = Some(stats),
            // Once a join is inexact the whole is read again as one sequence.
            Some(w) if exact => exact = w.absorb_file(stats),
            Some(_) => {}
        }
    }
    let mut whole = match whole {
        Some(w) if exact => w,
        _ => {
            let files: Vec<&[u8]> = sources.iter().map(|s| s.data).collect();
            collect_sequence(&files, parser, options, |_| {})?
        }
    };
    whole.checksum = joined_checksum(&parts);
    Ok(Report { whole, parts })
}

/// `ok (N files)` when every part's checksum is verified, else the first part's that
/// is not, named.
fn joined_checksum(parts: &[PartStats]) -> String {
    match parts.iter().find(|p| !p.checksum.starts_with("ok")) {
        None => format!("ok ({} files)", parts.len()),
        Some(p) => format!("{} in {}", p.checksum, p.name),
    }
}

/// A malformed part names its file: the error alone does not say which of several.
fn in_part(e: Failure, name: &str) -> Failure {
    match e {
        Failure::Data(d) => Failure::Refused(format!("{name}: {d}")),
        other => other,
    }
}

impl PartStats {
    fn of(name: &str, s: &Stats, manifest_slots: Option<&[SlotRange]>) -> PartStats {
        PartStats {
            name: name.to_owned(),
            file_bytes: s.file_bytes,
            magic: s.magic,
            rdb_version: s.rdb_version,
            checksum: s.checksum.clone(),
            keys: s.keys,
            bytes: s.bytes(),
            memory: s.memory(),
            slots: slot_ranges(&s.sections.slots.keys),
            manifest_slots: manifest_slots.map(<[SlotRange]>::to_vec),
            outside: s.sections.outside.clone(),
        }
    }
}

/// The slots with keys, as inclusive ranges.
pub fn slot_ranges(slot_keys: &[u64]) -> Vec<SlotRange> {
    let mut out: Vec<SlotRange> = Vec::new();
    for (slot, _) in slot_keys.iter().enumerate().filter(|(_, &k)| k > 0) {
        let slot = slot as u16;
        match out.last_mut() {
            Some(last) if last.1 + 1 == slot => last.1 = slot,
            _ => out.push((slot, slot)),
        }
    }
    out
}

/// `0-5460+5462`: ranges as the reports write them.
pub fn ranges_text(ranges: &[SlotRange]) -> String {
    if ranges.is_empty() {
        return "-".into();
    }
    crate::parts::ranges_joined(ranges, "+")
}

#[cfg(test)]
#[allow(clippy::indexing_slicing, clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::parts::Part;

    /// A snapshot of `n` string keys `{prefix<i>}:k`, each its own tag.
    fn tagged(prefix: &str, n: u32) -> Vec<u8> {
        use rdb_parser::format::type_id;
        use rdb_writer::{value, Compression, Writer};
        let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(11)).unwrap();
        w.aux(b"ctime", b"1700000000").unwrap();
        w.select_db(0).unwrap();
        for i in 0..n {
            let key = format!("{{{prefix}{i}}}:k");
            let v = value::string(b"v", Compression::None);
            w.key_value(type_id::STRING, key.as_bytes(), &v).unwrap();
        }
        w.finish().unwrap()
    }

    fn report(files: &[Vec<u8>]) -> Report {
        let parts: Vec<Part> = (0..files.len())
            .map(|i| Part::file(format!("f{i}.rdb")))
            .collect();
        let sources: Vec<Source<'_>> = parts
            .iter()
            .zip(files)
            .map(|(part, data)| Source { part, data })
            .collect();
        collect_all(&sources, &ParserBuilder::new(), &Options::default(), |_| {}).unwrap()
    }

    /// Files joined exactly, and files whose tags overflow the cap together (read again
    /// as one sequence): both what one sequence of all their keys gives.
    #[test]
    fn the_whole_is_one_sequence_of_all_keys() {
        for n in [1000, 40_000] {
            let files = [tagged("a", n), tagged("b", n)];
            let whole = report(&files).whole;
            let refs: Vec<&[u8]> = files.iter().map(Vec::as_slice).collect();
            let mut one =
                collect_sequence(&refs, &ParserBuilder::new(), &Options::default(), |_| {})
                    .unwrap();
            one.checksum = whole.checksum.clone();
            assert_eq!(whole.to_json(), one.to_json(), "{n} keys a file");
            assert_eq!(whole.keys, 2 * u64::from(n));
            assert_eq!(whole.sections.tags.tagged_keys, 2 * u64::from(n));
            let tracked = (2 * n as usize).min(crate::stats::collect::MAX_TAGS);
            assert_eq!(whole.sections.tags.map.len(), tracked);
            assert_eq!(
                whole.sections.tags.untracked_keys,
                2 * u64::from(n) - tracked as u64
            );
        }
    }

    #[test]
    fn slots_with_keys_become_ranges() {
        let mut keys = vec![0u64; 16384];
        for s in [0, 1, 2, 7, 16383] {
            keys[s] = 1;
        }
        let r = slot_ranges(&keys);
        assert_eq!(r, vec![(0, 2), (7, 7), (16383, 16383)]);
        assert_eq!(ranges_text(&r), "0-2+7+16383");
        assert_eq!(ranges_text(&[]), "-");
    }
}
