//! What verify found: the findings, their kinds (the JSON contract of
//! `docs/verify-json.md`), and the report's text and JSON forms.

use std::io::Write;

use rdb_parser::{Entry, Error, ErrorKind, Structure};

pub use crate::checksum::ChecksumState;
use crate::json;
use crate::parts::{self, KeysOutside};
use rdb_writer::slot::SlotRange;

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

/// Which check fired. [`Check::name`] is the `check` field of the JSON report: each name
/// is a row of `docs/verify-json.md`'s table (a test holds the two equal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Check {
    Structure,
    Checksum,
    Ziplist,
    Listpack,
    Intset,
    IntsetOrder,
    Zipmap,
    Quicklist,
    QuicklistNode,
    Lzf,
    Zset,
    NanScore,
    Hash,
    HashFieldTtl,
    DuplicateMember,
    EmptyCollection,
    Stream,
    StreamIdOrder,
    StreamLength,
    StreamLastId,
    StreamFirstId,
    StreamPel,
    StreamGroup,
    DuplicateKey,
    DanglingOpcode,
    DetachedOpcode,
    TrailingBytes,
    SlotImport,
    LengthMarker,
    OutsideSlots,
    Manifest,
}

impl Check {
    /// Every check, in the documentation's order.
    pub const ALL: [Check; 31] = [
        Check::Structure,
        Check::Checksum,
        Check::Ziplist,
        Check::Listpack,
        Check::Intset,
        Check::IntsetOrder,
        Check::Zipmap,
        Check::Quicklist,
        Check::QuicklistNode,
        Check::Lzf,
        Check::Zset,
        Check::NanScore,
        Check::Hash,
        Check::HashFieldTtl,
        Check::DuplicateMember,
        Check::EmptyCollection,
        Check::Stream,
        Check::StreamIdOrder,
        Check::StreamLength,
        Check::StreamLastId,
        Check::StreamFirstId,
        Check::StreamPel,
        Check::StreamGroup,
        Check::DuplicateKey,
        Check::DanglingOpcode,
        Check::DetachedOpcode,
        Check::TrailingBytes,
        Check::SlotImport,
        Check::LengthMarker,
        Check::OutsideSlots,
        Check::Manifest,
    ];

    /// The stable name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Check::Structure => "structure",
            Check::Checksum => "checksum",
            Check::Ziplist => "ziplist",
            Check::Listpack => "listpack",
            Check::Intset => "intset",
            Check::IntsetOrder => "intset-order",
            Check::Zipmap => "zipmap",
            Check::Quicklist => "quicklist",
            Check::QuicklistNode => "quicklist-node",
            Check::Lzf => "lzf",
            Check::Zset => "zset",
            Check::NanScore => "nan-score",
            Check::Hash => "hash",
            Check::HashFieldTtl => "hash-field-ttl",
            Check::DuplicateMember => "duplicate-member",
            Check::EmptyCollection => "empty-collection",
            Check::Stream => "stream",
            Check::StreamIdOrder => "stream-id-order",
            Check::StreamLength => "stream-length",
            Check::StreamLastId => "stream-last-id",
            Check::StreamFirstId => "stream-first-id",
            Check::StreamPel => "stream-pel",
            Check::StreamGroup => "stream-group",
            Check::DuplicateKey => "duplicate-key",
            Check::DanglingOpcode => "dangling-opcode",
            Check::DetachedOpcode => "detached-opcode",
            Check::TrailingBytes => "trailing-bytes",
            Check::SlotImport => "slot-import",
            Check::LengthMarker => "length-marker",
            Check::OutsideSlots => "outside-slots",
            Check::Manifest => "manifest",
        }
    }

    /// The severities this check reports with (the documentation's severity column).
    pub fn severities(self) -> &'static [Severity] {
        const ERROR: &[Severity] = &[Severity::Error];
        const WARNING: &[Severity] = &[Severity::Warning];
        const BOTH: &[Severity] = &[Severity::Error, Severity::Warning];
        match self {
            Check::Checksum | Check::StreamGroup | Check::Lzf => BOTH,
            Check::QuicklistNode
            | Check::StreamFirstId
            | Check::DetachedOpcode
            | Check::TrailingBytes
            | Check::OutsideSlots => WARNING,
            _ => ERROR,
        }
    }

    /// The check a decoding error falls under: the structure the parser names, not its
    /// words.
    pub fn of_error(e: &Error) -> Check {
        if *e.kind() == ErrorKind::ChecksumMismatch {
            return Check::Checksum;
        }
        match e.structure() {
            Structure::Lzf => Check::Lzf,
            Structure::Ziplist => Check::Ziplist,
            Structure::Listpack => Check::Listpack,
            Structure::Intset => Check::Intset,
            Structure::Zipmap => Check::Zipmap,
            Structure::Quicklist => Check::Quicklist,
            Structure::Stream => Check::Stream,
            Structure::SortedSet => Check::Zset,
            Structure::Hash => Check::Hash,
            // The header, framing, a cut trailer, module and slot import records: what
            // locates values, so the walk cannot go past them.
            _ => Check::Structure,
        }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Absolute byte offset in the file.
    pub offset: u64,
    pub db: Option<u64>,
    pub key: Option<Vec<u8>>,
    /// The check that fired (its name is in `docs/verify-json.md`).
    pub check: Check,
    pub severity: Severity,
    pub message: String,
}

impl Problem {
    /// An error outside any key.
    pub(super) fn at(offset: u64, check: Check, message: String) -> Self {
        Problem {
            offset,
            db: None,
            key: None,
            check,
            severity: Severity::Error,
            message,
        }
    }

    pub(super) fn in_entry(entry: &Entry<'_>, check: Check, message: String) -> Self {
        Problem {
            offset: entry.offset,
            db: Some(entry.db),
            key: Some(entry.key.to_vec()),
            check,
            severity: Severity::Error,
            message,
        }
    }

    /// A compressed string declaring length 0: loaded as empty by Redis 6.2+ and Valkey,
    /// refused by older loaders (verify's only `lzf` warning).
    pub fn is_empty_lzf(&self) -> bool {
        self.check == Check::Lzf && self.severity == Severity::Warning
    }

    pub(super) fn warning(mut self) -> Self {
        self.severity = Severity::Warning;
        self
    }

    /// A decoding error, under the check of the structure it names.
    pub(super) fn from_error(e: &Error, entry: Option<&Entry<'_>>) -> Self {
        Problem {
            offset: e.offset(),
            db: e.db().or(entry.map(|x| x.db)),
            key: e
                .key()
                .map(<[u8]>::to_vec)
                .or_else(|| entry.map(|x| x.key.to_vec())),
            check: Check::of_error(e),
            severity: Severity::Error,
            message: e.to_string(),
        }
    }
}

impl Problem {
    /// The `outside-slots` warning of a part whose keys hash outside `ranges`, its
    /// manifest's: at the first such key, with how many there are and the first few.
    pub(super) fn outside_slots(ranges: &[SlotRange], outside: &KeysOutside) -> Option<Problem> {
        let first = outside.examples.first()?;
        let message = format!(
            "{} keys hash to slots outside this part's ranges in the manifest ({}), e.g. {}: \
             the cluster node that owns only those slots does not own them",
            outside.count,
            parts::ranges_text(ranges),
            outside.examples_text()
        );
        Some(Problem {
            offset: first.offset,
            db: Some(first.db),
            key: Some(first.key.clone()),
            check: Check::OutsideSlots,
            severity: Severity::Warning,
            message,
        })
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
    /// Keys outside the slot ranges a manifest gives the file (`None`: no ranges given).
    /// When there are some, one `outside-slots` warning among the problems says so.
    pub outside_slots: Option<KeysOutside>,
    pub(super) max_problems: usize,
}

impl Report {
    /// The report of a walk not yet begun over a file of `file_bytes`.
    pub(super) fn new(file_bytes: u64, max_problems: usize) -> Report {
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
            outside_slots: None,
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
    pub(super) fn add(&mut self, p: Problem) {
        if self.problems.len() < self.max_problems {
            self.problems.push(p);
        } else if p.severity == Severity::Error {
            self.omitted_errors += 1;
        } else {
            self.omitted_warnings += 1;
        }
    }

    /// [`Report::add`] for a finding of `severity` that is built only if it is listed.
    pub(super) fn add_with(&mut self, severity: Severity, make: impl FnOnce() -> Problem) {
        if self.problems.len() < self.max_problems {
            self.problems.push(make());
        } else if severity == Severity::Error {
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
        let problems: Vec<serde_json::Value> = self.problems.iter().map(problem_json).collect();
        self.json_with(problems)
    }

    /// The report with `problems` for its list.
    pub(super) fn json_with(&self, problems: Vec<serde_json::Value>) -> serde_json::Value {
        serde_json::json!({
            "ok": self.ok(),
            "file_bytes": self.file_bytes,
            "version": self.version,
            "checksum": self.checksum.to_json(),
            "keys": self.keys,
            "complete": self.complete,
            "errors": self.errors(),
            "warnings": self.warnings(),
            "omitted": self.omitted(),
            "problems": problems,
        })
    }

    /// Writes [`Report::to_json`] pretty-printed, and a newline: the same bytes as
    /// `serde_json::to_string_pretty`, but one problem at a time, so a list of
    /// `--max-problems` findings is never held as JSON values all at once.
    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        self.write_json_at(out, &self.json_with(Vec::new()), 0)?;
        writeln!(out)
    }

    /// Writes `object`, this report's JSON with an empty `problems` list (and perhaps
    /// more fields), pretty-printed with every line after the first `indent` spaces in,
    /// its problems streamed into the list.
    pub(super) fn write_json_at(
        &self,
        out: &mut dyn Write,
        object: &serde_json::Value,
        indent: usize,
    ) -> std::io::Result<()> {
        let mut problems = self.problems.iter();
        write_with_list(
            out,
            object,
            "problems",
            self.problems.len(),
            indent,
            |out, at| match problems.next() {
                Some(p) => write_pretty_at(out, &problem_json(p), at),
                None => Ok(()),
            },
        )
    }
}

/// Writes `object` as `serde_json::to_string_pretty` would with its top-level list `list`
/// (empty in `object`) holding `count` items, each written by `item(out, indent)` (its
/// first line included, `indent` spaces in): so a long list is never one JSON value.
/// Every line after the first is `indent` spaces in; no newline at the end.
pub(super) fn write_with_list(
    out: &mut dyn Write,
    object: &serde_json::Value,
    list: &str,
    count: usize,
    indent: usize,
    mut item: impl FnMut(&mut dyn Write, usize) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(object)?;
    let pad = " ".repeat(indent);
    // A top-level field is two spaces in; JSON strings hold no raw newline, so no
    // deeper line or value can look like it.
    let field = format!("  \"{list}\": []");
    for (j, line) in text.lines().enumerate() {
        if j > 0 {
            write!(out, "\n{pad}")?;
        }
        match line.strip_prefix(field.as_str()) {
            Some(rest) if count > 0 => {
                write!(out, "  \"{list}\": [")?;
                for i in 0..count {
                    out.write_all(if i > 0 { b",\n" } else { b"\n" })?;
                    item(out, indent + 4)?;
                }
                write!(out, "\n{pad}  ]{rest}")?;
            }
            _ => out.write_all(line.as_bytes())?,
        }
    }
    Ok(())
}

/// Writes `value` pretty-printed with every line `indent` spaces in; no newline at the end.
pub(super) fn write_pretty_at(
    out: &mut dyn Write,
    value: &serde_json::Value,
    indent: usize,
) -> std::io::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    let pad = " ".repeat(indent);
    for (j, line) in text.lines().enumerate() {
        let sep = if j > 0 { "\n" } else { "" };
        write!(out, "{sep}{pad}{line}")?;
    }
    Ok(())
}

/// One problem as JSON.
fn problem_json(p: &Problem) -> serde_json::Value {
    let key = p.key.as_ref().map(|k| {
        let mut buf = Vec::new();
        json::bytes(&mut buf, k);
        serde_json::from_slice::<serde_json::Value>(&buf).unwrap_or(serde_json::Value::Null)
    });
    serde_json::json!({
        "offset": p.offset,
        "db": p.db,
        "key": key,
        "check": p.check.name(),
        "severity": p.severity.as_str(),
        "message": p.message,
    })
}
