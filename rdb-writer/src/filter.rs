//! Which keys a pass keeps. Every test works on the key's bytes (keys need not be UTF-8)
//! and on what the parser found without decoding elements, so filtering costs next to
//! nothing beside conversion.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use rdb_parser::{Entry, Value};

/// A key pattern: a glob (`*`, `?`, `[a-z]`, as in Redis' KEYS) or a regular expression.
#[derive(Debug, Clone)]
pub enum KeyPattern {
    Glob(globset::GlobMatcher),
    Regex(regex::bytes::Regex),
}

impl KeyPattern {
    /// A glob over raw key bytes; `*` also matches `/` and `:`.
    pub fn glob(pattern: &str) -> Result<KeyPattern, String> {
        globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map(|g| KeyPattern::Glob(g.compile_matcher()))
            .map_err(|e| format!("glob {pattern:?}: {e}"))
    }

    /// A regular expression over raw key bytes (unanchored: use `^...$` for whole keys).
    /// Unicode mode is off, so `.` matches any byte and `\xff` the byte 0xFF.
    pub fn regex(pattern: &str) -> Result<KeyPattern, String> {
        regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .build()
            .map(KeyPattern::Regex)
            .map_err(|e| format!("regex {pattern:?}: {e}"))
    }

    pub fn matches(&self, key: &[u8]) -> bool {
        match self {
            KeyPattern::Glob(g) => g.is_match(OsStr::from_bytes(key)),
            KeyPattern::Regex(r) => r.is_match(key),
        }
    }
}

/// Keys with or without an expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TtlPresence {
    #[default]
    Any,
    With,
    Without,
}

/// The filters of one pass; the default keeps everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// A key must match one of these, when any are given.
    pub include: Vec<KeyPattern>,
    /// A key matching any of these is left out.
    pub exclude: Vec<KeyPattern>,
    /// Only these source databases, when given.
    pub dbs: Option<HashSet<u64>>,
    /// Only these types (`string`, `list`, `set`, `zset`, `hash`, `stream`, `module`).
    pub types: Option<HashSet<String>>,
    /// Only these encodings (as `rdbkit info` names them).
    pub encodings: Option<HashSet<String>>,
    /// Leave out keys already expired at `now_ms`.
    pub drop_expired: bool,
    pub ttl: TtlPresence,
    /// Remaining time to live bounds in ms at `now_ms` (keys without expiry fail both).
    pub min_ttl_ms: Option<i64>,
    pub max_ttl_ms: Option<i64>,
    /// Bounds on the value's stored size in bytes.
    pub min_bytes: Option<u64>,
    pub max_bytes: Option<u64>,
    /// Bounds on the element count (header counts; lists without one are counted).
    pub min_elements: Option<u64>,
    pub max_elements: Option<u64>,
    /// Module type names to keep / leave out (e.g. `ReJSON-RL`).
    pub include_modules: Option<HashSet<String>>,
    pub exclude_modules: HashSet<String>,
    /// "Now" for TTL decisions, Unix ms.
    pub now_ms: i64,
}

impl Filter {
    /// Whether the filter keeps every key (so a pass can skip it).
    pub fn is_pass_all(&self) -> bool {
        self.include.is_empty()
            && self.exclude.is_empty()
            && self.dbs.is_none()
            && self.types.is_none()
            && self.encodings.is_none()
            && !self.drop_expired
            && self.ttl == TtlPresence::Any
            && self.min_ttl_ms.is_none()
            && self.max_ttl_ms.is_none()
            && self.min_bytes.is_none()
            && self.max_bytes.is_none()
            && self.min_elements.is_none()
            && self.max_elements.is_none()
            && self.include_modules.is_none()
            && self.exclude_modules.is_empty()
    }

    /// Whether `entry` passes every filter.
    pub fn keeps(&self, entry: &Entry<'_>) -> bool {
        let key: &[u8] = &entry.key;
        if !self.include.is_empty() && !self.include.iter().any(|p| p.matches(key)) {
            return false;
        }
        if self.exclude.iter().any(|p| p.matches(key)) {
            return false;
        }
        if self.dbs.as_ref().is_some_and(|d| !d.contains(&entry.db)) {
            return false;
        }
        let value = &entry.value;
        if self
            .types
            .as_ref()
            .is_some_and(|t| !t.contains(value.type_name()))
        {
            return false;
        }
        if self
            .encodings
            .as_ref()
            .is_some_and(|e| !e.contains(value.encoding_name()))
        {
            return false;
        }
        match (self.ttl, entry.expire_ms) {
            (TtlPresence::With, None) | (TtlPresence::Without, Some(_)) => return false,
            _ => {}
        }
        let remaining = entry.expire_ms.map(|t| t.saturating_sub(self.now_ms));
        if self.drop_expired && remaining.is_some_and(|r| r <= 0) {
            return false;
        }
        if let Some(min) = self.min_ttl_ms {
            if remaining.is_none_or(|r| r < min) {
                return false;
            }
        }
        if let Some(max) = self.max_ttl_ms {
            if remaining.is_none_or(|r| r > max) {
                return false;
            }
        }
        let size = entry.raw_value.len() as u64;
        if self.min_bytes.is_some_and(|m| size < m) || self.max_bytes.is_some_and(|m| size > m) {
            return false;
        }
        if self.min_elements.is_some() || self.max_elements.is_some() {
            let n = element_count(value);
            if self.min_elements.is_some_and(|m| n < m) || self.max_elements.is_some_and(|m| n > m)
            {
                return false;
            }
        }
        if let Value::Module(m) = value {
            let name = m.id.name();
            if self.exclude_modules.contains(&name) {
                return false;
            }
            if self
                .include_modules
                .as_ref()
                .is_some_and(|i| !i.contains(&name))
            {
                return false;
            }
        }
        true
    }
}

/// The element count: the header's when it has one, else counted (a corrupt value counts
/// what decodes; the conversion itself reports the corruption).
fn element_count(v: &Value<'_>) -> u64 {
    v.len_hint().unwrap_or_else(|| v.decode_all().unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_regexes_on_bytes() {
        let g = KeyPattern::glob("session:*");
        assert!(g.as_ref().is_ok_and(|g| g.matches(b"session:a/b:c")));
        assert!(g.as_ref().is_ok_and(|g| g.matches(b"session:\xff\x00")));
        assert!(g.as_ref().is_ok_and(|g| !g.matches(b"user:1")));
        let q = KeyPattern::glob("user:?[0-9]");
        assert!(q.as_ref().is_ok_and(|q| q.matches(b"user:a7")));
        let r = KeyPattern::regex(r"^\xff\x00");
        assert!(r
            .as_ref()
            .is_ok_and(|r| r.matches(b"\xff\x00tail") && !r.matches(b"x\xff\x00")));
        assert!(KeyPattern::glob("[").is_err());
    }
}
