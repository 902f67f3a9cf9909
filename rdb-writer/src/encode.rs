//! Primitive writes: RDB lengths, strings, times, doubles and stream IDs. The twin of the
//! parser's `input.rs`; every function appends to a `Vec<u8>` and cannot fail.
//!
//! ```text
//! length   00xxxxxx                 n < 64
//!          01xxxxxx yyyyyyyy        n < 16384, big-endian
//!          10000000 u32 BE          n <= u32::MAX
//!          10000001 u64 BE          otherwise (needs RDB 8+)
//! string   length bytes | C0 i8 | C1 i16 LE | C2 i32 LE | C3 len(compressed) len(original) lzf
//! double   binary: f64 LE          ascii: len byte, text | FD NaN | FE +inf | FF -inf
//! stream id  len ms, len seq       raw: ms u64 BE, seq u64 BE (16 bytes)
//! ```

use rdb_parser::format::string_enc;
use rdb_parser::{parse_canonical_int, StreamId};

/// Whether strings longer than 20 bytes are tried with LZF, as a server does under
/// `rdbcompression yes` (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Keep the LZF form when it saves at least 4 bytes.
    #[default]
    Lzf,
    /// Never compress.
    None,
}

/// A server only tries LZF above this length: shorter strings never shrink enough.
const LZF_MIN_LEN: usize = 20;
/// A canonical integer string this long or longer is kept as text, as `rdbTryIntegerEncoding` does.
const INT_MAX_TEXT_LEN: usize = 11;

/// Appends an RDB length in its smallest form.
pub fn length(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if let Ok(n32) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n32.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

/// The number of bytes [`length`] writes for `n`.
pub fn length_size(n: u64) -> usize {
    match n {
        0..=63 => 1,
        64..=16383 => 2,
        16384..=0xFFFF_FFFF => 5,
        _ => 9,
    }
}

/// Appends an RDB string by the server's rules: an INT8/16/32 form for a canonical integer
/// of at most 11 characters, else LZF when allowed, longer than 20 bytes and at least
/// 4 bytes smaller, else the plain form.
///
/// The LZF bytes come from this crate's own compressor (`lzf.rs`), not the server's
/// liblzf, so compressed output may differ byte-wise from a server's while decoding to
/// the same string.
pub fn string(out: &mut Vec<u8>, s: &[u8], compression: Compression) {
    if let Some(v) = int_encodable(s) {
        int_string(out, v);
        return;
    }
    if compression == Compression::Lzf && s.len() > LZF_MIN_LEN {
        if let Some(packed) = lzf_compress(s) {
            out.push(0xC0 | string_enc::LZF);
            length(out, packed.len() as u64);
            length(out, s.len() as u64);
            out.extend_from_slice(&packed);
            return;
        }
    }
    raw_string(out, s);
}

/// Appends a plain length-prefixed string: no integer form, no compression.
pub fn raw_string(out: &mut Vec<u8>, s: &[u8]) {
    length(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// The value to store in an INT8/16/32 string, if `s` may take one.
fn int_encodable(s: &[u8]) -> Option<i32> {
    if s.len() > INT_MAX_TEXT_LEN {
        return None;
    }
    parse_canonical_int(s).and_then(|v| i32::try_from(v).ok())
}

fn int_string(out: &mut Vec<u8>, v: i32) {
    if let Ok(b) = i8::try_from(v) {
        out.extend_from_slice(&[0xC0 | string_enc::INT8, b as u8]);
    } else if let Ok(h) = i16::try_from(v) {
        out.push(0xC0 | string_enc::INT16);
        out.extend_from_slice(&h.to_le_bytes());
    } else {
        out.push(0xC0 | string_enc::INT32);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// LZF-compresses `s` if the result saves at least 4 bytes (the server gives liblzf an
/// output buffer of `len - 4`).
fn lzf_compress(s: &[u8]) -> Option<Vec<u8>> {
    crate::lzf::compress(s, s.len().checked_sub(4)?)
}

/// Appends an 8-byte little-endian millisecond Unix time (RDB 9+ byte order; older
/// servers wrote host order, which was little-endian on every known writer).
pub fn ms_time(out: &mut Vec<u8>, t: i64) {
    out.extend_from_slice(&t.to_le_bytes());
}

/// Appends the binary double of ZSET_2 and module DOUBLE: IEEE-754, little-endian.
pub fn binary_double(out: &mut Vec<u8>, v: f64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Appends the ASCII double of type 3 scores: 253 = NaN, 254 = +inf, 255 = -inf, else a
/// length byte and [`score_text`].
pub fn ascii_double(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.push(253);
    } else if v == f64::INFINITY {
        out.push(254);
    } else if v == f64::NEG_INFINITY {
        out.push(255);
    } else {
        let text = score_text(v);
        // score_text is at most 24 characters for finite values, below the 253 specials.
        out.push(text.len() as u8);
        out.extend_from_slice(text.as_bytes());
    }
}

/// Longest plain-decimal text kept before switching to exponent form.
const SCORE_TEXT_MAX: usize = 24;

/// The text of a score, as zset ASCII doubles and zset listpack/ziplist entries hold it.
///
/// Rust's `{}` formatting of `f64` is the shortest text that parses back to the same
/// bits, so a reader using strtod gets the exact value back. It never uses an exponent,
/// which for 1e300 means 301 digits, so text longer than 24 characters is written in `{:e}`
/// form (also shortest round-trip, e.g. `1e300`). Integral scores come out as plain
/// integers (`5`, `-0`), which listpacks and ziplists then store as integer entries, as a
/// server does. The server itself writes `%.17g`; both parse to the same double.
/// Infinities are `inf` and `-inf`, NaN is `nan`, the spellings the server uses.
pub fn score_text(v: f64) -> String {
    let mut text = String::new();
    score_text_into(&mut text, v);
    text
}

/// [`score_text`] into `text` (cleared first), so that a caller formatting many scores
/// reuses one buffer.
pub fn score_text_into(text: &mut String, v: f64) {
    use std::fmt::Write;
    text.clear();
    if v.is_nan() {
        text.push_str("nan");
        return;
    }
    let _ = write!(text, "{v}");
    if text.len() > SCORE_TEXT_MAX {
        text.clear();
        let _ = write!(text, "{v:e}");
    }
}

/// Appends a stream ID as two lengths (stream last/first/max-deleted IDs, group last IDs).
pub fn stream_id_lens(out: &mut Vec<u8>, id: StreamId) {
    length(out, id.ms);
    length(out, id.seq);
}

/// Appends a stream ID as 16 raw big-endian bytes (PEL entries, consumer PELs).
pub fn stream_id_raw(out: &mut Vec<u8>, id: StreamId) {
    out.extend_from_slice(&id.to_raw());
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn len_bytes(n: u64) -> Vec<u8> {
        let mut v = Vec::new();
        length(&mut v, n);
        assert_eq!(v.len(), length_size(n), "{n}");
        v
    }

    fn str_bytes(s: &[u8], c: Compression) -> Vec<u8> {
        let mut v = Vec::new();
        string(&mut v, s, c);
        v
    }

    #[test]
    fn length_forms_at_boundaries() {
        assert_eq!(len_bytes(0), [0x00]);
        assert_eq!(len_bytes(63), [0x3F]);
        assert_eq!(len_bytes(64), [0x40, 0x40]);
        assert_eq!(len_bytes(16383), [0x7F, 0xFF]);
        assert_eq!(len_bytes(16384), [0x80, 0, 0, 0x40, 0]);
        assert_eq!(
            len_bytes(u64::from(u32::MAX)),
            [0x80, 0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(len_bytes(1 << 32), [0x81, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert_eq!(
            len_bytes(u64::MAX),
            [0x81, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn int_strings_follow_the_server() {
        let c = Compression::Lzf;
        assert_eq!(str_bytes(b"64", c), [0xC0, 0x40]);
        assert_eq!(str_bytes(b"-128", c), [0xC0, 0x80]);
        assert_eq!(str_bytes(b"128", c), [0xC1, 0x80, 0x00]);
        assert_eq!(str_bytes(b"-32769", c), [0xC2, 0xFF, 0x7F, 0xFF, 0xFF]);
        assert_eq!(str_bytes(b"-2147483648", c), [0xC2, 0, 0, 0, 0x80]);
        // Out of i32 range, or not canonical: plain text.
        assert_eq!(str_bytes(b"2147483648", c), b"\x0a2147483648");
        assert_eq!(str_bytes(b"01", c), b"\x0201");
        assert_eq!(str_bytes(b"-0", c), b"\x02-0");
        assert_eq!(str_bytes(b"+1", c), b"\x02+1");
        assert_eq!(str_bytes(b"", c), [0x00]);
    }

    #[test]
    fn lzf_only_when_long_and_worth_it() {
        let twenty = [b'a'; 20];
        assert_eq!(str_bytes(&twenty, Compression::Lzf)[0], 20);
        let long = [b'a'; 100];
        let packed = str_bytes(&long, Compression::Lzf);
        assert_eq!(packed[0], 0xC3);
        assert!(packed.len() < 20);
        assert_eq!(str_bytes(&long, Compression::None)[..2], [0x40, 100]);
        // Incompressible bytes stay plain.
        let noise: Vec<u8> = (0..100u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert_eq!(str_bytes(&noise, Compression::Lzf)[..2], [0x40, 100]);
    }

    #[test]
    fn doubles() {
        let mut v = Vec::new();
        ascii_double(&mut v, f64::NAN);
        ascii_double(&mut v, f64::INFINITY);
        ascii_double(&mut v, f64::NEG_INFINITY);
        ascii_double(&mut v, 1.5);
        assert_eq!(v, b"\xFD\xFE\xFF\x031.5");
        assert_eq!(score_text(1e300), "1e300");
        assert_eq!(score_text(-0.0), "-0");
        assert_eq!(score_text(3.0), "3");
        assert_eq!(score_text(f64::NEG_INFINITY), "-inf");
        for x in [
            0.1,
            1.0 / 3.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            5e-324,
            -2.2250738585072014e-308,
        ] {
            let t = score_text(x);
            assert!(t.len() <= 24, "{t}");
            assert_eq!(rdb_parser::parse_double(t.as_bytes()), Some(x), "{t}");
        }
        let mut b = Vec::new();
        binary_double(&mut b, 1.0);
        assert_eq!(b, 1.0f64.to_le_bytes());
    }

    #[test]
    fn stream_ids() {
        let id = StreamId {
            ms: 1_700_000_000_000,
            seq: 3,
        };
        let mut v = Vec::new();
        stream_id_lens(&mut v, id);
        assert_eq!(v.len(), 9 + 1);
        assert_eq!(v[0], 0x81);
        let mut r = Vec::new();
        stream_id_raw(&mut r, id);
        assert_eq!(r[..8], id.ms.to_be_bytes());
        assert_eq!(r[8..], id.seq.to_be_bytes());
    }
}
