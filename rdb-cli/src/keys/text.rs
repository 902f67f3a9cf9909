//! The line formats: CSV, JSON Lines and redis-rdb-tools' memory CSV.

use std::io::Write;

use super::{io, Format, Options, Record, Sink};
use crate::json;
use crate::Failure;

/// The CSV header: the Parquet columns in the same order (docs/keys.md).
pub const CSV_HEADER: &str = "file,cluster,instance,db,key,type,encoding,rdb_size,memory,\
    member_count,largest_element,expire_at,idle_s,freq,slot,hash_tag";

/// redis-rdb-tools' `rdb -c memory` header, which its users' scripts read.
pub const RDBTOOLS_HEADER: &str =
    "database,type,key,size_in_bytes,encoding,num_elements,len_largest_element,expiry";

/// Lines are gathered up to this size, then written in one call.
const FLUSH_AT: usize = 256 << 10;

#[derive(Debug)]
pub struct TextSink<W: Write> {
    out: W,
    buf: Vec<u8>,
    lines: LineFormat,
}

/// How a record becomes a line, for the current input: shared by the workers, which
/// format the lines of their keys in parallel.
#[derive(Debug, Clone)]
pub struct LineFormat {
    format: Format,
    /// The current file's label, and the cluster and instance labels, pre-formatted as
    /// CSV fields or JSON values.
    file: Vec<u8>,
    cluster: Vec<u8>,
    instance: Vec<u8>,
}

impl<W: Write> TextSink<W> {
    pub fn new(out: W, format: Format, options: &Options) -> Result<Self, Failure> {
        let mut lines = LineFormat {
            format,
            file: Vec::new(),
            cluster: Vec::new(),
            instance: Vec::new(),
        };
        for (to, label) in [
            (&mut lines.cluster, &options.cluster),
            (&mut lines.instance, &options.instance),
        ] {
            match (format, label) {
                (Format::Jsonl, Some(l)) => json::string(to, l),
                (Format::Jsonl, None) => to.extend_from_slice(b"null"),
                (_, Some(l)) => csv_text(to, l.as_bytes()),
                (_, None) => {}
            }
        }
        let mut buf = Vec::with_capacity(FLUSH_AT + 4096);
        match format {
            Format::Csv => buf.extend_from_slice(CSV_HEADER.as_bytes()),
            Format::Rdbtools => buf.extend_from_slice(RDBTOOLS_HEADER.as_bytes()),
            _ => {}
        }
        if !buf.is_empty() {
            buf.push(b'\n');
        }
        Ok(TextSink { out, buf, lines })
    }

    pub fn finish(mut self) -> Result<W, Failure> {
        self.out.write_all(&self.buf).map_err(io)?;
        self.out.flush().map_err(io)?;
        Ok(self.out)
    }
}

impl<W: Write> Sink for TextSink<W> {
    fn begin_file(&mut self, name: &str) {
        let file = &mut self.lines.file;
        file.clear();
        match self.lines.format {
            Format::Jsonl => json::string(file, name),
            _ => csv_text(file, name.as_bytes()),
        }
    }

    fn record(&mut self, r: &Record<'_>) -> Result<(), Failure> {
        self.lines.line(r, &mut self.buf);
        self.buf.push(b'\n');
        self.spill()
    }

    fn line_format(&self) -> Option<LineFormat> {
        Some(self.lines.clone())
    }

    fn line(&mut self, line: &[u8]) -> Result<(), Failure> {
        self.buf.extend_from_slice(line);
        self.spill()
    }
}

impl<W: Write> TextSink<W> {
    fn spill(&mut self) -> Result<(), Failure> {
        if self.buf.len() >= FLUSH_AT {
            self.out.write_all(&self.buf).map_err(io)?;
            self.buf.clear();
        }
        Ok(())
    }
}

impl LineFormat {
    /// Appends the line of `r` (without its newline).
    pub fn line(&self, r: &Record<'_>, b: &mut Vec<u8>) {
        match self.format {
            Format::Jsonl => self.jsonl(r, b),
            Format::Rdbtools => rdbtools(b, r),
            _ => self.csv(r, b),
        }
    }

    fn csv(&self, r: &Record<'_>, b: &mut Vec<u8>) {
        b.extend_from_slice(&self.file);
        b.push(b',');
        b.extend_from_slice(&self.cluster);
        b.push(b',');
        b.extend_from_slice(&self.instance);
        b.push(b',');
        int(b, r.db);
        b.push(b',');
        csv_bytes(b, &r.key);
        b.push(b',');
        b.extend_from_slice(r.type_name.as_bytes());
        b.push(b',');
        b.extend_from_slice(r.encoding.as_bytes());
        for v in [r.rdb_size, r.memory, r.members] {
            b.push(b',');
            int(b, v);
        }
        b.push(b',');
        opt(b, r.largest);
        b.push(b',');
        opt(b, r.expire_ms);
        b.push(b',');
        opt(b, r.idle_s);
        b.push(b',');
        opt(b, r.freq);
        b.push(b',');
        int(b, r.slot);
        b.push(b',');
        if let Some(tag) = r.hash_tag() {
            csv_bytes(b, tag);
        }
    }

    fn jsonl(&self, r: &Record<'_>, b: &mut Vec<u8>) {
        b.extend_from_slice(b"{\"file\":");
        b.extend_from_slice(&self.file);
        b.extend_from_slice(b",\"cluster\":");
        b.extend_from_slice(&self.cluster);
        b.extend_from_slice(b",\"instance\":");
        b.extend_from_slice(&self.instance);
        b.extend_from_slice(b",\"db\":");
        int(b, r.db);
        b.extend_from_slice(b",\"key\":");
        json::bytes(b, &r.key);
        b.extend_from_slice(b",\"type\":\"");
        b.extend_from_slice(r.type_name.as_bytes());
        b.extend_from_slice(b"\",\"encoding\":\"");
        b.extend_from_slice(r.encoding.as_bytes());
        b.extend_from_slice(b"\",\"rdb_size\":");
        int(b, r.rdb_size);
        b.extend_from_slice(b",\"memory\":");
        int(b, r.memory);
        b.extend_from_slice(b",\"member_count\":");
        int(b, r.members);
        b.extend_from_slice(b",\"largest_element\":");
        opt_json(b, r.largest);
        b.extend_from_slice(b",\"expire_at\":");
        opt_json(b, r.expire_ms);
        b.extend_from_slice(b",\"idle_s\":");
        opt_json(b, r.idle_s);
        b.extend_from_slice(b",\"freq\":");
        opt_json(b, r.freq);
        b.extend_from_slice(b",\"slot\":");
        int(b, r.slot);
        b.extend_from_slice(b",\"hash_tag\":");
        match r.hash_tag() {
            Some(tag) => json::bytes(b, tag),
            None => b.extend_from_slice(b"null"),
        }
        b.push(b'}');
    }
}

/// One line of the rdb-tools memory report: its type names (`sortedset`), the memory
/// estimate as `size_in_bytes`, a string's length as its element count (as rdb-tools
/// counts it) and the expiry as ISO 8601 UTC.
fn rdbtools(b: &mut Vec<u8>, r: &Record<'_>) {
    int(b, r.db);
    b.push(b',');
    b.extend_from_slice(match r.type_name {
        "zset" => b"sortedset",
        t => t.as_bytes(),
    });
    b.push(b',');
    csv_bytes(b, &r.key);
    b.push(b',');
    int(b, r.memory);
    b.push(b',');
    b.extend_from_slice(r.encoding.as_bytes());
    b.push(b',');
    let largest = r.largest.unwrap_or(0);
    int(
        b,
        if r.type_name == "string" {
            largest
        } else {
            r.members
        },
    );
    b.push(b',');
    int(b, largest);
    b.push(b',');
    if let Some(ms) = r.expire_ms {
        iso8601(b, ms);
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.ffffff]` in UTC, as Python's `datetime.isoformat()` writes it
/// (microseconds only when not zero); the plain milliseconds outside years 1-9999.
pub fn iso8601(b: &mut Vec<u8>, ms: i64) {
    use std::io::Write as _;
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000);
    match at {
        Ok(t) if (1..=9999).contains(&t.year()) => {
            let _ = write!(
                b,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            if t.microsecond() != 0 {
                let _ = write!(b, ".{:06}", t.microsecond());
            }
        }
        _ => int(b, ms),
    }
}

fn int(b: &mut Vec<u8>, v: impl itoa::Integer) {
    b.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

fn opt(b: &mut Vec<u8>, v: Option<impl itoa::Integer>) {
    if let Some(v) = v {
        int(b, v);
    }
}

fn opt_json(b: &mut Vec<u8>, v: Option<impl itoa::Integer>) {
    match v {
        Some(v) => int(b, v),
        None => b.extend_from_slice(b"null"),
    }
}

/// A binary-safe CSV field for a key: printable UTF-8 as it is, `\` as `\\`, control
/// characters and bytes that are not UTF-8 as `\xHH`; then quoted as RFC 4180 says
/// when it holds a comma or a quote, or is empty (an empty field reads as null).
pub fn csv_bytes(b: &mut Vec<u8>, key: &[u8]) {
    let plain = !key.is_empty()
        && key.iter().all(|&c| (0x20..0x7f).contains(&c) && c != b'\\')
        && !key.iter().any(|&c| c == b',' || c == b'"');
    if plain {
        b.extend_from_slice(key);
        return;
    }
    let mut escaped = Vec::with_capacity(key.len() + 8);
    escape(&mut escaped, key);
    csv_text(b, &escaped);
}

/// Appends `key` with `\\` and `\xHH` escapes (see [`csv_bytes`]).
fn escape(out: &mut Vec<u8>, key: &[u8]) {
    let mut rest = key;
    while !rest.is_empty() {
        let (valid, bad) = match std::str::from_utf8(rest) {
            Ok(s) => (s, 0),
            Err(e) => {
                // `valid_up_to` bytes are valid UTF-8; then one bad sequence.
                let (ok, _) = rest.split_at(e.valid_up_to());
                let ok = std::str::from_utf8(ok).unwrap_or_default();
                (ok, e.error_len().unwrap_or(rest.len() - e.valid_up_to()))
            }
        };
        for c in valid.chars() {
            match c {
                '\\' => out.extend_from_slice(b"\\\\"),
                c if c.is_control() => hex(out, &c.to_string().into_bytes()),
                c => {
                    let mut tmp = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut tmp).as_bytes());
                }
            }
        }
        let after = rest.get(valid.len()..).unwrap_or_default();
        let (bad_bytes, tail) = after.split_at(bad.min(after.len()));
        hex(out, bad_bytes);
        rest = tail;
    }
}

fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    use std::io::Write as _;
    for byte in bytes {
        let _ = write!(out, "\\x{byte:02x}");
    }
}

/// A text CSV field: quoted (quotes doubled) when it holds a comma, quote, CR or LF, or
/// is empty.
fn csv_text(b: &mut Vec<u8>, text: &[u8]) {
    let quote = text.is_empty()
        || text
            .iter()
            .any(|&c| matches!(c, b',' | b'"' | b'\n' | b'\r'));
    if !quote {
        b.extend_from_slice(text);
        return;
    }
    b.push(b'"');
    for &c in text {
        if c == b'"' {
            b.push(b'"');
        }
        b.push(c);
    }
    b.push(b'"');
}

/// Reverses [`csv_bytes`]' escapes (after CSV unquoting): for readers and tests.
pub fn unescape(field: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(field.len());
    let b = field.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        match b.get(i + 1)? {
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            b'x' => {
                let hex = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn field(key: &[u8]) -> String {
        let mut b = Vec::new();
        csv_bytes(&mut b, key);
        String::from_utf8(b).unwrap()
    }

    #[test]
    fn keys_are_escaped_and_quoted_only_when_needed() {
        assert_eq!(field(b"user:1"), "user:1");
        assert_eq!(field(b"a,b"), "\"a,b\"");
        assert_eq!(field(b"say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field(b""), "\"\"");
        assert_eq!(field(b"back\\slash"), "back\\\\slash");
        assert_eq!(field(b"\0nul\nline"), "\\x00nul\\x0aline");
        assert_eq!(field(b"key:\xff\xfe"), "key:\\xff\\xfe");
        assert_eq!(field("héllo ✓".as_bytes()), "héllo ✓");
    }

    #[test]
    fn escapes_reverse_to_the_key_bytes() {
        for key in [
            &b"plain"[..],
            b"\\x41 is not A",
            b"\xff\x00\x7f\x80",
            "wörld\u{85}".as_bytes(),
            b"\xe2\x82",
            b"",
        ] {
            let mut escaped = Vec::new();
            escape(&mut escaped, key);
            let text = String::from_utf8(escaped).unwrap();
            assert_eq!(unescape(&text).unwrap(), key, "{text}");
        }
    }

    #[test]
    fn expiry_reads_as_python_isoformat() {
        let iso = |ms| {
            let mut b = Vec::new();
            iso8601(&mut b, ms);
            String::from_utf8(b).unwrap()
        };
        assert_eq!(iso(4_102_444_800_000), "2100-01-01T00:00:00");
        assert_eq!(iso(4_102_444_800_001), "2100-01-01T00:00:00.001000");
        assert_eq!(iso(0), "1970-01-01T00:00:00");
        assert_eq!(iso(i64::MAX), i64::MAX.to_string());
    }
}
