//! What verify found: the findings, their kinds (the JSON contract of
//! `docs/verify-json.md`), and the report's text and JSON forms.

use std::io::Write;

use rdb_parser::{Entry, Error, ErrorKind, Structure};

use crate::json;

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
}

impl Check {
    /// Every check, in the documentation's order.
    pub const ALL: [Check; 29] = [
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
            | Check::TrailingBytes => WARNING,
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
    fn json_with(&self, problems: Vec<serde_json::Value>) -> serde_json::Value {
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

    /// Writes [`Report::to_json`] pretty-printed, and a newline: the same bytes as
    /// `serde_json::to_string_pretty`, but one problem at a time, so a list of
    /// `--max-problems` findings is never held as JSON values all at once.
    pub fn write_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(&self.json_with(Vec::new()))?;
        // Keys are sorted, and "problems" is not the last: its line ends with a comma.
        const EMPTY: &str = "\n  \"problems\": [],\n";
        let split = text.split_once(EMPTY).filter(|_| !self.problems.is_empty());
        let Some((head, tail)) = split else {
            let whole = if self.problems.is_empty() {
                text
            } else {
                serde_json::to_string_pretty(&self.to_json())?
            };
            return writeln!(out, "{whole}");
        };
        write!(out, "{head}\n  \"problems\": [\n")?;
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                out.write_all(b",\n")?;
            }
            let one = serde_json::to_string_pretty(&problem_json(p))?;
            // Two levels deeper than a top-level value; JSON strings hold no raw newline.
            for (j, line) in one.lines().enumerate() {
                let sep = if j > 0 { "\n" } else { "" };
                write!(out, "{sep}    {line}")?;
            }
        }
        writeln!(out, "\n  ],\n{tail}")
    }
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
