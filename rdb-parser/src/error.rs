//! Errors that say where and why.
//!
//! An [`Error`] is one pointer wide. It always knows the byte offset in the snapshot where
//! decoding stopped, and, once the key is known, the database and the key (escaped and
//! shortened for display). Inner decoders raise a `Fail` that records the address of the
//! failing byte; the caller that knows which buffer that address belongs to turns it into an
//! absolute file offset.

use std::fmt;

/// What went wrong. New kinds may be added.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The input ended before a structure it declared was complete.
    Truncated,
    /// The first bytes are not `REDIS` or `VALKEY` followed by digits.
    BadMagic,
    /// The header names a version this parser does not read.
    UnsupportedVersion,
    /// A byte where an opcode or type was expected is neither.
    UnknownType,
    /// A structure's contents contradict its own header or the format's rules.
    Corrupt,
    /// The CRC64 trailer does not match the bytes before it.
    ChecksumMismatch,
    /// A declared size exceeds a limit set in [`crate::ParserBuilder`].
    LimitExceeded,
    /// A construct the format allows but that cannot be decoded without outside knowledge.
    Unsupported,
}

impl ErrorKind {
    fn phrase(&self) -> &'static str {
        match self {
            ErrorKind::Truncated => "truncated",
            ErrorKind::BadMagic => "not an RDB file",
            ErrorKind::UnsupportedVersion => "unsupported version",
            ErrorKind::UnknownType => "unknown type",
            ErrorKind::Corrupt => "corrupt",
            ErrorKind::ChecksumMismatch => "checksum mismatch",
            ErrorKind::LimitExceeded => "limit exceeded",
            ErrorKind::Unsupported => "unsupported",
        }
    }
}

/// The structure a decoding error is about, for callers that act on it (verify names its
/// finding after it) without reading the message. New structures may be added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Structure {
    /// The 9-byte magic and version.
    Header,
    /// The record framing between values: lengths, opcodes, plain and integer strings,
    /// times, doubles, AUX fields, the end of the input.
    Framing,
    /// The CRC64 trailer.
    Checksum,
    /// An LZF-compressed string.
    Lzf,
    Ziplist,
    Listpack,
    Intset,
    Zipmap,
    /// A quicklist's node list (its node count and containers).
    Quicklist,
    /// A sorted set's members and scores inside a ziplist or listpack.
    SortedSet,
    /// A hash's fields, values and field TTLs inside a compact encoding.
    Hash,
    /// A stream: its nodes, entries, groups, consumers and PELs.
    Stream,
    /// A module value or module AUX record.
    Module,
    /// A Valkey slot import record.
    SlotImport,
}

impl Structure {
    /// The structure a decoder's label names. The labels are this crate's own (every
    /// decoder passes one to [`Fail`]); this table is the one place they are classified,
    /// by whole label, and a label it does not know is framing.
    fn of_label(what: &str) -> Structure {
        match what {
            "header" => Structure::Header,
            "checksum" | "file" => Structure::Checksum,
            "compressed string" => Structure::Lzf,
            "ziplist" | "ziplist entry" => Structure::Ziplist,
            "listpack" | "listpack entry" => Structure::Listpack,
            "intset" => Structure::Intset,
            "zipmap" => Structure::Zipmap,
            "quicklist" => Structure::Quicklist,
            "sorted set" => Structure::SortedSet,
            "hash" => Structure::Hash,
            "stream"
            | "stream node"
            | "stream node ID"
            | "stream entry"
            | "stream ID"
            | "stream groups"
            | "stream consumers"
            | "stream PEL"
            | "consumer PEL"
            | "stream IDMP producers"
            | "stream IDMP entries" => Structure::Stream,
            "module value"
            | "module aux"
            | "module float"
            | "module double"
            | "vector set"
            | "key metadata classes"
            | "key metadata class spec" => Structure::Module,
            "slot import" => Structure::SlotImport,
            _ => Structure::Framing,
        }
    }
}

/// A decoding error with its location.
///
/// `Display` reads like
/// `corrupt listpack in key "user:42" (db 0) at byte 1048613: entry length 9000 exceeds 512 remaining`.
#[derive(Clone, PartialEq, Eq)]
pub struct Error(Box<Inner>);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Inner {
    kind: ErrorKind,
    /// The structure being decoded: "length", "listpack", "stream", ...
    what: &'static str,
    detail: String,
    offset: u64,
    db: Option<u64>,
    key: Option<Vec<u8>>,
    /// For [`ErrorKind::UnknownType`]: the byte read where a value type was expected.
    type_byte: Option<u8>,
}

/// The longest key prefix kept in an error, in bytes.
const KEY_SHOWN: usize = 64;

impl Error {
    pub(crate) fn new(kind: ErrorKind, what: &'static str, offset: u64, detail: String) -> Self {
        Error(Box::new(Inner {
            kind,
            what,
            detail,
            offset,
            db: None,
            key: None,
            type_byte: None,
        }))
    }

    /// An unknown value type byte at `offset`: displayed as
    /// `unknown value type 107 at byte 280: ...`.
    pub(crate) fn unknown_type(type_byte: u8, offset: u64, detail: String) -> Self {
        let mut e = Error::new(ErrorKind::UnknownType, "value type", offset, detail);
        e.0.type_byte = Some(type_byte);
        e
    }

    /// For an unknown value type, the type byte that was read.
    pub fn type_byte(&self) -> Option<u8> {
        self.0.type_byte
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.0.kind
    }

    /// The structure being decoded when it went wrong (e.g. `"listpack"`).
    pub fn what(&self) -> &'static str {
        self.0.what
    }

    /// The structure being decoded when it went wrong, as a kind to match on.
    pub fn structure(&self) -> Structure {
        Structure::of_label(self.0.what)
    }

    /// The human-readable reason, without location.
    pub fn detail(&self) -> &str {
        &self.0.detail
    }

    /// The absolute byte offset in the input where decoding stopped.
    pub fn offset(&self) -> u64 {
        self.0.offset
    }

    /// The database of the key being decoded, if any.
    pub fn db(&self) -> Option<u64> {
        self.0.db
    }

    /// The first bytes of the key being decoded, if any (at most 64).
    pub fn key(&self) -> Option<&[u8]> {
        self.0.key.as_deref()
    }

    /// Attaches the key and database the error belongs to, unless one is already attached.
    #[must_use]
    pub fn in_key(mut self, db: u64, key: &[u8]) -> Self {
        if self.0.key.is_none() {
            self.0.db = Some(db);
            self.0.key = Some(key.iter().take(KEY_SHOWN + 1).copied().collect());
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &self.0;
        match inner.type_byte {
            Some(b) => write!(f, "unknown {} {b}", inner.what)?,
            None => write!(f, "{} {}", inner.kind.phrase(), inner.what)?,
        }
        if let Some(key) = &inner.key {
            f.write_str(" in key \"")?;
            write_escaped(f, key.get(..KEY_SHOWN).unwrap_or(key))?;
            f.write_str(if key.len() > KEY_SHOWN { "\"..." } else { "\"" })?;
            if let Some(db) = inner.db {
                write!(f, " (db {db})")?;
            }
        }
        write!(f, " at byte {}", inner.offset)?;
        if !inner.detail.is_empty() {
            write!(f, ": {}", inner.detail)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({self})")
    }
}

impl std::error::Error for Error {}

/// Writes bytes as printable ASCII, escaping the rest as `\xNN` (and `"` and `\`).
pub fn write_escaped(out: &mut impl fmt::Write, bytes: &[u8]) -> fmt::Result {
    for &b in bytes {
        match b {
            b'"' => out.write_str("\\\"")?,
            b'\\' => out.write_str("\\\\")?,
            0x20..=0x7e => out.write_char(b as char)?,
            _ => write!(out, "\\x{b:02x}")?,
        }
    }
    Ok(())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A failure inside a decoder, located by the address of the byte where it happened.
///
/// Decoders work on sub-slices of buffers whose file offset only the caller knows; the
/// address lets [`Fail::locate`] recover the offset without threading positions everywhere.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fail {
    pub at: usize,
    pub kind: ErrorKind,
    pub what: &'static str,
    pub detail: String,
}

impl Fail {
    pub fn new(at: &[u8], kind: ErrorKind, what: &'static str, detail: String) -> Self {
        Fail {
            at: at.as_ptr() as usize,
            kind,
            what,
            detail,
        }
    }

    pub fn corrupt(at: &[u8], what: &'static str, detail: impl Into<String>) -> Self {
        Self::new(at, ErrorKind::Corrupt, what, detail.into())
    }

    pub fn truncated(at: &[u8], what: &'static str, needed: u64) -> Self {
        Self::new(
            at,
            ErrorKind::Truncated,
            what,
            format!("needs {needed} bytes, {} left", at.len()),
        )
    }

    /// Converts to an [`Error`], given the buffer the failing address lies in and that
    /// buffer's offset in the file. An address outside the buffer maps to its start.
    pub fn locate(self, buf: &[u8], buf_offset: u64) -> Error {
        let start = buf.as_ptr() as usize;
        let rel = match self.at.checked_sub(start) {
            Some(rel) if rel <= buf.len() => rel as u64,
            _ => 0,
        };
        Error::new(self.kind, self.what, buf_offset + rel, self.detail)
    }
}

impl<'a> nom::error::ParseError<&'a [u8]> for Fail {
    fn from_error_kind(input: &'a [u8], _kind: nom::error::ErrorKind) -> Self {
        // With `complete` parsers the only way our primitive reads fail is running out.
        Fail::new(
            input,
            ErrorKind::Truncated,
            "input",
            "unexpected end of data".into(),
        )
    }

    fn append(_input: &'a [u8], _kind: nom::error::ErrorKind, other: Self) -> Self {
        other
    }
}

pub(crate) type PResult<'a, T> = nom::IResult<&'a [u8], T, Fail>;

/// Unwraps nom's error wrapper: with complete parsers there is no `Incomplete`.
pub(crate) fn unnom(e: nom::Err<Fail>) -> Fail {
    match e {
        nom::Err::Error(f) | nom::Err::Failure(f) => f,
        nom::Err::Incomplete(_) => Fail {
            at: 0,
            kind: ErrorKind::Truncated,
            what: "input",
            detail: "unexpected end of data".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every label a decoder of this crate passes names its structure (a reworded label
    /// must be reworded here too, or it falls to framing and this fails).
    #[test]
    fn every_decoder_label_has_its_structure() {
        let table = [
            ("header", Structure::Header),
            ("checksum", Structure::Checksum),
            ("file", Structure::Checksum),
            ("compressed string", Structure::Lzf),
            ("ziplist", Structure::Ziplist),
            ("ziplist entry", Structure::Ziplist),
            ("listpack", Structure::Listpack),
            ("listpack entry", Structure::Listpack),
            ("intset", Structure::Intset),
            ("zipmap", Structure::Zipmap),
            ("quicklist", Structure::Quicklist),
            ("sorted set", Structure::SortedSet),
            ("hash", Structure::Hash),
            ("stream", Structure::Stream),
            ("stream node", Structure::Stream),
            ("stream node ID", Structure::Stream),
            ("stream entry", Structure::Stream),
            ("stream ID", Structure::Stream),
            ("stream groups", Structure::Stream),
            ("stream consumers", Structure::Stream),
            ("stream PEL", Structure::Stream),
            ("consumer PEL", Structure::Stream),
            ("module value", Structure::Module),
            ("module aux", Structure::Module),
            ("module float", Structure::Module),
            ("module double", Structure::Module),
            ("vector set", Structure::Module),
            ("slot import", Structure::SlotImport),
            ("length", Structure::Framing),
            ("string", Structure::Framing),
            ("integer string", Structure::Framing),
            ("double", Structure::Framing),
            ("input", Structure::Framing),
        ];
        for (label, structure) in table {
            let e = Error::new(ErrorKind::Corrupt, label, 0, String::new());
            assert_eq!(e.structure(), structure, "{label}");
        }
    }
}
