//! `rdbkit info`: what a snapshot holds, from one pass that decodes no element.

use std::collections::BTreeMap;
use std::io::Write;

use rdb_parser::{Checksum, Item, ParserBuilder};
use serde_json::json;

use crate::Failure;

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
    pub checksum: String,
    pub keys: u64,
}

/// Reads the whole snapshot and counts what it holds.
pub fn collect(
    data: &[u8],
    parser: &ParserBuilder,
    progress: impl FnMut(u64),
) -> Result<Info, Failure> {
    let mut info = rdb_pipeline::checked(data, parser, |p, eof| {
        collect_unchecked(data, p, eof, progress)
    })?;
    if parser.verifies_checksum() {
        // The other thread verified it; say so as the sequential pass would.
        info.checksum = info.checksum.replace("not checked", "ok");
    }
    Ok(info)
}

fn collect_unchecked(
    data: &[u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    mut progress: impl FnMut(u64),
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
                progress(e.offset);
            }
            Item::Eof(eof) => {
                eof_seen.set(eof);
                info.checksum = match eof.checksum {
                    Checksum::Verified(c) => format!("ok ({c:016x})"),
                    Checksum::Disabled => "disabled (written as 0)".into(),
                    Checksum::Unchecked(c) => format!("not checked ({c:016x})"),
                    Checksum::Absent => "none (RDB < 5)".into(),
                };
            }
            Item::ResizeDb { .. } | Item::SlotImport(_) | Item::KeyMeta(_) => {}
        }
    }
    Ok(info)
}

impl Info {
    pub fn to_json(&self) -> serde_json::Value {
        let dbs: serde_json::Map<String, serde_json::Value> = self
            .dbs
            .iter()
            .map(|(n, db)| {
                (
                    n.to_string(),
                    json!({"keys": db.keys, "expires": db.expires, "types": db.types}),
                )
            })
            .collect();
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
            "checksum": self.checksum,
        })
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "file      {} bytes", self.file_bytes)?;
        writeln!(out, "format    {} version {}", self.magic, self.rdb_version)?;
        writeln!(out, "checksum  {}", self.checksum)?;
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
        for (n, db) in &self.dbs {
            writeln!(out, "db {n}: {} keys, {} with expiry", db.keys, db.expires)?;
            for (t, encodings) in &db.types {
                let total: u64 = encodings.values().sum();
                let detail: Vec<String> =
                    encodings.iter().map(|(e, c)| format!("{e} {c}")).collect();
                writeln!(out, "  {t:<7} {total:>10}  ({})", detail.join(", "))?;
            }
        }
        Ok(())
    }
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
