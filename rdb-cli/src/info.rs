//! `rdbkit info`: what a snapshot holds, from one pass that decodes no element.

use std::collections::BTreeMap;
use std::io::Write;

use rdb_parser::{Entry, Item, ParserBuilder};
use serde_json::json;

use crate::checksum::ChecksumState;
use crate::parts::{self, KeysOutside, Part, SlotsHeld};
use crate::Failure;
use rdb_writer::slot::key_slot;

/// Per-database counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DbInfo {
    pub keys: u64,
    pub expires: u64,
    /// type -> encoding -> keys
    pub types: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
}

/// A snapshot's summary.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Info {
    pub file_bytes: u64,
    pub magic: &'static str,
    pub rdb_version: u32,
    pub aux: Vec<(String, String)>,
    pub dbs: BTreeMap<u64, DbInfo>,
    pub functions: u64,
    pub module_aux: Vec<String>,
    pub slot_info_records: u64,
    /// Shown as one string ([`ChecksumState::summary`]), in the text and the JSON.
    pub checksum: ChecksumState,
    pub keys: u64,
}

/// Reads the whole snapshot and counts what it holds.
pub fn collect(
    data: &[u8],
    parser: &ParserBuilder,
    progress: impl FnMut(u64),
) -> Result<Info, Failure> {
    collect_with(data, parser, progress, |_| {})
}

/// [`collect`], handing every key to `on_key` as well.
fn collect_with(
    data: &[u8],
    parser: &ParserBuilder,
    progress: impl FnMut(u64),
    on_key: impl FnMut(&Entry<'_>),
) -> Result<Info, Failure> {
    let mut info = rdb_pipeline::checked(data, parser, |p, eof| {
        collect_unchecked(data, p, eof, progress, on_key)
    })?;
    if parser.verifies_checksum() {
        // The other thread verified it; say so as the sequential pass would.
        info.checksum = info.checksum.vouched();
    }
    Ok(info)
}

fn collect_unchecked(
    data: &[u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    mut progress: impl FnMut(u64),
    mut on_key: impl FnMut(&Entry<'_>),
) -> Result<Info, Failure> {
    let mut info = Info {
        file_bytes: data.len() as u64,
        ..Info::default()
    };
    let mut items = parser.parse(data)?;
    let mut read_ahead = rdb_pipeline::ReadAhead::new();
    while let Some(item) = {
        read_ahead.advance(data, items.offset());
        items.next()
    } {
        match item? {
            Item::Header(v) => {
                info.magic = v.magic.as_str();
                info.rdb_version = v.number;
            }
            Item::Aux(a) => info.aux.push((
                String::from_utf8_lossy(&a.key).into_owned(),
                String::from_utf8_lossy(&a.value).into_owned(),
            )),
            Item::ModuleAux(m) => info.module_aux.push(m.id.name()),
            Item::Function(_) => info.functions += 1,
            Item::SlotInfo { .. } => info.slot_info_records += 1,
            // A db is listed once it holds a key (an empty one is noise): a SELECTDB
            // alone costs nothing, however many the file has.
            Item::SelectDb(_) => {}
            Item::Key(e) => {
                let db = info.dbs.entry(e.db).or_default();
                db.keys += 1;
                db.expires += u64::from(e.expire_ms.is_some());
                *db.types
                    .entry(e.value.type_name())
                    .or_default()
                    .entry(e.value.encoding_name())
                    .or_default() += 1;
                info.keys += 1;
                on_key(&e);
                progress(e.offset);
            }
            Item::Eof(eof) => {
                eof_seen.set(eof);
                info.checksum = ChecksumState::from_eof(eof.checksum);
            }
            Item::ResizeDb { .. } | Item::SlotImport(_) | Item::KeyMeta(_) => {}
        }
    }
    Ok(info)
}

impl Info {
    pub fn to_json(&self) -> serde_json::Value {
        let dbs = dbs_json(&self.dbs);
        json!({
            "file_bytes": self.file_bytes,
            "magic": self.magic,
            "rdb_version": self.rdb_version,
            "aux": self.aux.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
            "keys": self.keys,
            "dbs": dbs,
            "functions": self.functions,
            "module_aux": self.module_aux,
            "slot_info_records": self.slot_info_records,
            "checksum": self.checksum.summary(),
        })
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "file      {} bytes", self.file_bytes)?;
        writeln!(out, "format    {} version {}", self.magic, self.rdb_version)?;
        writeln!(out, "checksum  {}", self.checksum.summary())?;
        if !self.aux.is_empty() {
            writeln!(out, "aux")?;
            for (k, v) in &self.aux {
                let shown: String = v.chars().take(72).collect();
                let more = if v.chars().count() > 72 { "..." } else { "" };
                // The values come from the file: a terminal escape sequence in one must
                // not reach the user's terminal.
                let (k, shown) = (printable(k), printable(&shown));
                writeln!(out, "  {k:<16} {shown}{more}")?;
            }
        }
        if self.functions > 0 {
            writeln!(out, "functions {}", self.functions)?;
        }
        if !self.module_aux.is_empty() {
            writeln!(out, "module aux {}", self.module_aux.join(", "))?;
        }
        writeln!(out, "keys      {}", self.keys)?;
        write_dbs(out, &self.dbs)
    }
}

/// One part of a run over several files: its summary, the slots its keys hash to, and,
/// when a manifest gives its slot ranges, the keys outside them.
#[derive(Debug, Clone, PartialEq)]
pub struct PartInfo {
    pub part: Part,
    pub info: Info,
    pub slots_held: SlotsHeld,
    /// `None` without a manifest.
    pub outside: Option<KeysOutside>,
}

/// [`collect`] for one part of several; an error names the part.
pub fn collect_part(
    data: &[u8],
    parser: &ParserBuilder,
    part: &Part,
    progress: impl FnMut(u64),
) -> Result<PartInfo, Failure> {
    let mut slots_held = SlotsHeld::default();
    let mut outside = part.slots.as_ref().map(|_| KeysOutside::default());
    let info = collect_with(data, parser, progress, |e| {
        let slot = key_slot(&e.key);
        slots_held.add(slot);
        if let (Some(ranges), Some(tally)) = (&part.slots, outside.as_mut()) {
            tally.check_slot(ranges, slot, e.offset, e.db, &e.key);
        }
    })
    .map_err(|f| parts::named(part, f))?;
    Ok(PartInfo {
        part: part.clone(),
        info,
        slots_held,
        outside,
    })
}

/// Several snapshots as one: the sums over the parts, and each part.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InfoParts {
    pub parts: Vec<PartInfo>,
}

impl InfoParts {
    pub fn file_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.info.file_bytes).sum()
    }

    pub fn keys(&self) -> u64 {
        self.parts.iter().map(|p| p.info.keys).sum()
    }

    pub fn functions(&self) -> u64 {
        self.parts.iter().map(|p| p.info.functions).sum()
    }

    pub fn slot_info_records(&self) -> u64 {
        self.parts.iter().map(|p| p.info.slot_info_records).sum()
    }

    /// Keys outside their part's slot ranges, over the parts a manifest gives ranges for;
    /// `None` when none does.
    pub fn keys_outside_slots(&self) -> Option<u64> {
        let mut tallies = self.parts.iter().filter_map(|p| p.outside.as_ref());
        let first = tallies.next()?.count;
        Some(first + tallies.map(|t| t.count).sum::<u64>())
    }

    /// Keys, expiries and types per database, summed over the parts.
    pub fn dbs(&self) -> BTreeMap<u64, DbInfo> {
        let mut dbs: BTreeMap<u64, DbInfo> = BTreeMap::new();
        for (n, db) in self.parts.iter().flat_map(|p| &p.info.dbs) {
            let whole = dbs.entry(*n).or_default();
            whole.keys += db.keys;
            whole.expires += db.expires;
            for (t, encodings) in &db.types {
                let types = whole.types.entry(t).or_default();
                for (e, c) in encodings {
                    *types.entry(e).or_default() += c;
                }
            }
        }
        dbs
    }

    pub fn to_json(&self) -> serde_json::Value {
        let parts: Vec<serde_json::Value> = self.parts.iter().map(PartInfo::to_json).collect();
        json!({
            "file_bytes": self.file_bytes(),
            "keys": self.keys(),
            "dbs": dbs_json(&self.dbs()),
            "functions": self.functions(),
            "slot_info_records": self.slot_info_records(),
            "keys_outside_slots": self.keys_outside_slots(),
            "parts": parts,
        })
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "parts     {} files, {} bytes",
            self.parts.len(),
            self.file_bytes()
        )?;
        if self.functions() > 0 {
            writeln!(out, "functions {}", self.functions())?;
        }
        writeln!(out, "keys      {}", self.keys())?;
        if let Some(n) = self.keys_outside_slots() {
            writeln!(out, "outside   {n} keys outside their part's slot ranges")?;
        }
        write_dbs(out, &self.dbs())?;
        for (i, p) in self.parts.iter().enumerate() {
            p.write_text(i + 1, out)?;
        }
        Ok(())
    }
}

impl PartInfo {
    /// The part's own `info --json`, with `file`, `slots` (the manifest's ranges or
    /// `null`), `slots_held` and `keys_outside_slots` (`null` without a manifest).
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.info.to_json();
        if let Some(map) = v.as_object_mut() {
            map.insert("file".into(), json!(self.part.name()));
            map.insert("slots".into(), self.part.slots_json());
            let held: Vec<[u16; 2]> = self
                .slots_held
                .ranges()
                .into_iter()
                .map(|(lo, hi)| [lo, hi])
                .collect();
            map.insert("slots_held".into(), json!(held));
            map.insert(
                "keys_outside_slots".into(),
                self.outside
                    .as_ref()
                    .map_or(serde_json::Value::Null, KeysOutside::to_json),
            );
        }
        v
    }

    fn write_text(&self, number: usize, out: &mut dyn Write) -> std::io::Result<()> {
        let info = &self.info;
        writeln!(out, "part {number}    {}", self.part.shown())?;
        writeln!(
            out,
            "  file      {} bytes, {} version {}, checksum {}",
            info.file_bytes,
            info.magic,
            info.rdb_version,
            info.checksum.summary()
        )?;
        let held = self.slots_held.ranges();
        let span = match (held.first(), held.last()) {
            (Some((lo, _)), Some((_, hi))) => {
                format!(", in {} slots from {lo} to {hi}", self.slots_held.count())
            }
            _ => String::new(),
        };
        writeln!(out, "  keys      {}{span}", info.keys)?;
        for (n, db) in &info.dbs {
            writeln!(
                out,
                "  db {n}: {} keys, {} with expiry",
                db.keys, db.expires
            )?;
        }
        if let (Some(ranges), Some(outside)) = (&self.part.slots, &self.outside) {
            let slots = parts::ranges_text(ranges);
            if outside.count == 0 {
                writeln!(out, "  slots     {slots} (manifest): every key inside")?;
            } else {
                writeln!(
                    out,
                    "  slots     {slots} (manifest): {} keys outside, e.g. {}",
                    outside.count,
                    outside.examples_text()
                )?;
            }
        }
        Ok(())
    }
}

fn dbs_json(dbs: &BTreeMap<u64, DbInfo>) -> serde_json::Map<String, serde_json::Value> {
    dbs.iter()
        .map(|(n, db)| {
            (
                n.to_string(),
                json!({"keys": db.keys, "expires": db.expires, "types": db.types}),
            )
        })
        .collect()
}

fn write_dbs(out: &mut dyn Write, dbs: &BTreeMap<u64, DbInfo>) -> std::io::Result<()> {
    for (n, db) in dbs {
        writeln!(out, "db {n}: {} keys, {} with expiry", db.keys, db.expires)?;
        for (t, encodings) in &db.types {
            let total: u64 = encodings.values().sum();
            let detail: Vec<String> = encodings.iter().map(|(e, c)| format!("{e} {c}")).collect();
            writeln!(out, "  {t:<7} {total:>10}  ({})", detail.join(", "))?;
        }
    }
    Ok(())
}

/// `text` with control characters escaped (`\u{1b}`), everything else as it is.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("7.4.1"), "7.4.1");
        assert_eq!(super::printable("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\n");
        assert_eq!(super::printable("café"), "café");
    }
}
