//! Several snapshots verified as one (a cluster's shards, or a directory with its
//! `manifest.json`): each part's report, and the whole's verdict, the worst part's.

use std::io::Write;

use serde_json::json;

use super::report::{write_with_list, Report};
use crate::parts::Part;

/// One part and its report.
#[derive(Debug, Clone)]
pub struct PartReport {
    pub part: Part,
    pub report: Report,
}

/// The reports of several parts.
#[derive(Debug, Clone, Default)]
pub struct Whole {
    pub parts: Vec<PartReport>,
}

impl Whole {
    /// Every part is free of errors: the exit code is the worst part's.
    pub fn ok(&self) -> bool {
        self.parts.iter().all(|p| p.report.ok())
    }

    pub fn errors(&self) -> usize {
        self.parts.iter().map(|p| p.report.errors()).sum()
    }

    pub fn warnings(&self) -> usize {
        self.parts.iter().map(|p| p.report.warnings()).sum()
    }

    pub fn keys(&self) -> u64 {
        self.parts.iter().map(|p| p.report.keys).sum()
    }

    pub fn file_bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.report.file_bytes).sum()
    }

    /// Keys outside their part's slot ranges, over the parts a manifest gives ranges for;
    /// `None` when none does.
    pub fn keys_outside_slots(&self) -> Option<u64> {
        let mut counts = self
            .parts
            .iter()
            .filter_map(|p| p.report.outside_slots.as_ref().map(|o| o.count));
        let first = counts.next()?;
        Some(first + counts.sum::<u64>())
    }

    /// The parts with errors.
    pub fn failed(&self) -> Vec<&Part> {
        self.parts
            .iter()
            .filter(|p| !p.report.ok())
            .map(|p| &p.part)
            .collect()
    }

    /// The whole without its parts' list (`parts` empty).
    fn head_json(&self) -> serde_json::Value {
        json!({
            "ok": self.ok(),
            "file_bytes": self.file_bytes(),
            "keys": self.keys(),
            "complete": self.parts.iter().all(|p| p.report.complete),
            "errors": self.errors(),
            "warnings": self.warnings(),
            "omitted": self.parts.iter().map(|p| p.report.omitted()).sum::<u64>(),
            "keys_outside_slots": self.keys_outside_slots(),
            "parts": [],
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = self.head_json();
        let parts: Vec<serde_json::Value> = self
            .parts
            .iter()
            .map(|p| p.with_part_fields(p.report.to_json()))
            .collect();
        if let Some(map) = v.as_object_mut() {
            map.insert("parts".into(), parts.into());
        }
        v
    }

    /// Writes [`Whole::to_json`] pretty-printed, and a newline, a problem at a time (as
    /// [`Report::write_json`] does).
    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut parts = self.parts.iter();
        write_with_list(
            out,
            &self.head_json(),
            "parts",
            self.parts.len(),
            0,
            |out, indent| {
                let Some(p) = parts.next() else { return Ok(()) };
                let object = p.with_part_fields(p.report.json_with(Vec::new()));
                write!(out, "{}", " ".repeat(indent))?;
                p.report.write_json_at(out, &object, indent)
            },
        )?;
        writeln!(out)
    }

    /// Each part's report under its name, then the whole's verdict line.
    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for p in &self.parts {
            writeln!(out, "{}", p.part.heading())?;
            p.report.write_text(out)?;
        }
        let failed = self.failed();
        let outside = match self.keys_outside_slots() {
            Some(n) if n > 0 => format!(", {n} keys outside their part's slots"),
            _ => String::new(),
        };
        let which = if failed.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = failed.iter().map(|p| p.shown()).collect();
            format!("; errors in {}", names.join(", "))
        };
        writeln!(
            out,
            "{}: {} parts, {} bytes, {} keys, {} errors, {} warnings{outside}{which}",
            if self.ok() { "OK" } else { "CORRUPT" },
            self.parts.len(),
            self.file_bytes(),
            self.keys(),
            self.errors(),
            self.warnings(),
        )
    }
}

impl PartReport {
    /// A part's report JSON with `file`, `slots` (its manifest's ranges, or `null`) and
    /// `keys_outside_slots` (`null` without ranges).
    fn with_part_fields(&self, mut report: serde_json::Value) -> serde_json::Value {
        if let Some(map) = report.as_object_mut() {
            map.insert("file".into(), self.part.name().into());
            map.insert("slots".into(), self.part.slots_json());
            map.insert(
                "keys_outside_slots".into(),
                self.report.outside_slots.as_ref().map(|o| o.count).into(),
            );
        }
        report
    }
}
