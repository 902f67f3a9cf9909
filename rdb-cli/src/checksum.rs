//! How a snapshot's CRC64 trailer came out: one state for every report that shows it.
//!
//! The reports render it in two shapes, both kept as they were so scripts that read them
//! go on working: `verify --json` gives an object, `{"state": "verified", "stored": "…",
//! "actual": "…"}` ([`ChecksumState::to_json`], `docs/verify-json.md`), and `info --json`
//! one string, `"ok (…)"` ([`ChecksumState::summary`], the text of `info` too).

use rdb_parser::Checksum;

/// How the CRC64 trailer came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChecksumState {
    /// The trailer matches the bytes.
    Verified(u64),
    /// The trailer does not match the bytes.
    Mismatch { stored: u64, actual: u64 },
    /// A trailer is there and was not checked, as asked (`--no-verify-checksum`).
    Unchecked(u64),
    /// Written with checksums off (trailer 0).
    Disabled,
    /// The version predates checksums (RDB < 5).
    Absent,
    /// No EOF was reached, so the trailer could not be located.
    #[default]
    NotReached,
}

impl ChecksumState {
    /// The parser's verdict at EOF. (A parser that verifies stops at a mismatch with an
    /// error; one that does not leaves [`ChecksumState::Unchecked`].)
    pub fn from_eof(c: Checksum) -> Self {
        match c {
            Checksum::Verified(c) => ChecksumState::Verified(c),
            Checksum::Unchecked(c) => ChecksumState::Unchecked(c),
            Checksum::Disabled => ChecksumState::Disabled,
            Checksum::Absent => ChecksumState::Absent,
        }
    }

    /// The trailer compared with `actual`, the CRC64 of the bytes it covers.
    pub fn compared(stored: u64, actual: u64) -> Self {
        if stored == actual {
            ChecksumState::Verified(stored)
        } else {
            ChecksumState::Mismatch { stored, actual }
        }
    }

    /// The state once another reader vouched for the trailer (the CRC64 computed beside
    /// the walk): an unchecked trailer is then a verified one.
    pub fn vouched(self) -> Self {
        match self {
            ChecksumState::Unchecked(c) => ChecksumState::Verified(c),
            other => other,
        }
    }

    /// The state's name: the `checksum.state` of `verify --json`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChecksumState::Verified(_) => "verified",
            ChecksumState::Mismatch { .. } => "mismatch",
            ChecksumState::Unchecked(_) => "unchecked",
            ChecksumState::Disabled => "disabled",
            ChecksumState::Absent => "absent",
            ChecksumState::NotReached => "not_reached",
        }
    }

    /// The trailer's value, when there is one to show.
    pub fn stored(self) -> Option<u64> {
        match self {
            ChecksumState::Verified(c) | ChecksumState::Unchecked(c) => Some(c),
            ChecksumState::Mismatch { stored, .. } => Some(stored),
            _ => None,
        }
    }

    /// The CRC64 of the bytes, when it was computed.
    pub fn actual(self) -> Option<u64> {
        match self {
            ChecksumState::Verified(c) => Some(c),
            ChecksumState::Mismatch { actual, .. } => Some(actual),
            _ => None,
        }
    }

    /// Whether the trailer contradicts the bytes.
    pub fn is_mismatch(self) -> bool {
        matches!(self, ChecksumState::Mismatch { .. })
    }

    /// The object form (`verify --json`): `state`, and `stored` / `actual` as 16 hex
    /// digits or `null`.
    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "state": self.as_str(),
            "stored": self.stored().map(hex),
            "actual": self.actual().map(hex),
        })
    }

    /// The one-line form (`info`'s text and `info --json`): `ok (…)`, `not checked (…)`,
    /// `disabled (written as 0)`, `none (RDB < 5)`, `MISMATCH (…)`, `not reached`.
    pub fn summary(self) -> String {
        match self {
            ChecksumState::Verified(c) => format!("ok ({c:016x})"),
            ChecksumState::Mismatch { stored, actual } => {
                format!("MISMATCH (trailer {stored:016x}, bytes {actual:016x})")
            }
            ChecksumState::Unchecked(c) => format!("not checked ({c:016x})"),
            ChecksumState::Disabled => "disabled (written as 0)".into(),
            ChecksumState::Absent => "none (RDB < 5)".into(),
            ChecksumState::NotReached => "not reached".into(),
        }
    }
}

fn hex(c: u64) -> String {
    format!("{c:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The strings `info` printed before the type was shared, and verify's object.
    #[test]
    fn both_shapes_are_what_they_were() {
        let c = 0x0123_4567_89ab_cdef;
        assert_eq!(
            ChecksumState::from_eof(Checksum::Verified(c)).summary(),
            "ok (0123456789abcdef)"
        );
        assert_eq!(
            ChecksumState::from_eof(Checksum::Unchecked(c)).summary(),
            "not checked (0123456789abcdef)"
        );
        assert_eq!(
            ChecksumState::from_eof(Checksum::Unchecked(c))
                .vouched()
                .summary(),
            "ok (0123456789abcdef)"
        );
        assert_eq!(
            ChecksumState::from_eof(Checksum::Disabled).summary(),
            "disabled (written as 0)"
        );
        assert_eq!(
            ChecksumState::from_eof(Checksum::Absent).summary(),
            "none (RDB < 5)"
        );
        assert_eq!(
            ChecksumState::compared(c, 1).to_json(),
            serde_json::json!({"state": "mismatch", "stored": "0123456789abcdef",
                "actual": "0000000000000001"})
        );
        assert_eq!(
            ChecksumState::NotReached.to_json(),
            serde_json::json!({"state": "not_reached", "stored": null, "actual": null})
        );
        assert_eq!(ChecksumState::compared(c, c), ChecksumState::Verified(c));
    }
}
