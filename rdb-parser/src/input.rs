//! Primitive reads: RDB lengths, strings, times and doubles.
//!
//! ```text
//! length   00xxxxxx                 6-bit
//!          01xxxxxx yyyyyyyy        14-bit, big-endian
//!          10000000 u32 BE          32-bit
//!          10000001 u64 BE          64-bit (RDB 8+)
//!          11xxxxxx                 special string encoding xxxxxx (see `string_enc`)
//! string   length bytes | C0 i8 | C1 i16 LE | C2 i32 LE | C3 len(compressed) len(original) lzf
//! ```
//! Every read is bounds-checked by nom's `complete` parsers: a short input is a `Truncated`
//! failure at the byte where the read began.

use nom::bytes::complete::take;
use nom::number::complete::{be_u32, be_u64, be_u8, le_i16, le_i32, le_i64, le_u64};
use nom::Parser;

use crate::error::{ErrorKind, Fail, PResult};
use crate::format::string_enc;
use crate::string::RdbString;

/// Returns a nom error for `f`.
pub(crate) fn fail<T>(f: Fail) -> PResult<'static, T> {
    Err(nom::Err::Error(f))
}

/// A decoded length field: either a length or the id of a special string encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Length {
    Len(u64),
    Encoded(u8),
}

#[inline]
pub(crate) fn length(i: &[u8]) -> PResult<'_, Length> {
    // Most lengths are the 1- or 2-byte forms: decoded here without nom's machinery.
    match *i {
        [first, ref rest @ ..] if first < 0x40 => return Ok((rest, Length::Len(u64::from(first)))),
        [first, second, ref rest @ ..] if first >> 6 == 1 => {
            return Ok((
                rest,
                Length::Len(u64::from(first & 0x3f) << 8 | u64::from(second)),
            ))
        }
        _ => {}
    }
    length_slow(i)
}

#[cold]
fn length_slow(i: &[u8]) -> PResult<'_, Length> {
    let (rest, first) = be_u8(i)?;
    match first >> 6 {
        0 => Ok((rest, Length::Len(u64::from(first & 0x3f)))),
        1 => {
            let (rest, second) = be_u8::<_, Fail>(rest).map_err(|_| truncated(i, "length", 2))?;
            Ok((
                rest,
                Length::Len(u64::from(first & 0x3f) << 8 | u64::from(second)),
            ))
        }
        3 => Ok((rest, Length::Encoded(first & 0x3f))),
        _ => match first {
            0x80 => {
                let (rest, v) = be_u32::<_, Fail>(rest).map_err(|_| truncated(i, "length", 5))?;
                Ok((rest, Length::Len(u64::from(v))))
            }
            0x81 => {
                let (rest, v) = be_u64::<_, Fail>(rest).map_err(|_| truncated(i, "length", 9))?;
                Ok((rest, Length::Len(v)))
            }
            other => fail(Fail::corrupt(
                i,
                "length",
                format!("invalid length prefix byte 0x{other:02x}"),
            )),
        },
    }
}

#[cold]
fn truncated(at: &[u8], what: &'static str, needed: u64) -> nom::Err<Fail> {
    nom::Err::Error(Fail::truncated(at, what, needed))
}

/// A plain length: a special string encoding here is corruption.
pub(crate) fn len(i: &[u8]) -> PResult<'_, u64> {
    match length(i)? {
        (rest, Length::Len(n)) => Ok((rest, n)),
        (_, Length::Encoded(e)) => fail(Fail::corrupt(
            i,
            "length",
            format!("expected a length, found string encoding {e}"),
        )),
    }
}

/// A length that must fit the bytes left, given each item takes at least `min_item` bytes.
/// Called before anything sized by the length is allocated.
pub(crate) fn count<'a>(i: &'a [u8], min_item: u64, what: &'static str) -> PResult<'a, u64> {
    let (rest, n) = len(i)?;
    if n.saturating_mul(min_item) > rest.len() as u64 {
        return fail(Fail::new(
            i,
            ErrorKind::Truncated,
            what,
            format!("declares {n} items, only {} bytes left", rest.len()),
        ));
    }
    Ok((rest, n))
}

/// Takes `n` bytes, failing with `Truncated` naming `what`.
pub(crate) fn bytes<'a>(i: &'a [u8], n: u64, what: &'static str) -> PResult<'a, &'a [u8]> {
    if n > i.len() as u64 {
        return fail(Fail::truncated(i, what, n));
    }
    take(n as usize).parse(i)
}

/// An RDB string, borrowed: plain, integer or LZF, undecoded.
pub(crate) fn string(i: &[u8]) -> PResult<'_, RdbString<'_>> {
    match length(i)? {
        (rest, Length::Len(n)) => {
            let (rest, raw) = bytes(rest, n, "string")?;
            Ok((rest, RdbString::Raw(raw)))
        }
        (rest, Length::Encoded(string_enc::INT8)) => {
            let (rest, v) =
                be_u8::<_, Fail>(rest).map_err(|_| truncated(i, "integer string", 2))?;
            Ok((rest, RdbString::Int(i64::from(v as i8))))
        }
        (rest, Length::Encoded(string_enc::INT16)) => {
            let (rest, v) =
                le_i16::<_, Fail>(rest).map_err(|_| truncated(i, "integer string", 3))?;
            Ok((rest, RdbString::Int(i64::from(v))))
        }
        (rest, Length::Encoded(string_enc::INT32)) => {
            let (rest, v) =
                le_i32::<_, Fail>(rest).map_err(|_| truncated(i, "integer string", 5))?;
            Ok((rest, RdbString::Int(i64::from(v))))
        }
        (rest, Length::Encoded(string_enc::LZF)) => {
            let (rest, compressed_len) = len(rest)?;
            let (rest, original_len) = len(rest)?;
            let (rest, compressed) = bytes(rest, compressed_len, "compressed string")?;
            let original_len = usize::try_from(original_len)
                .map_err(|_| nom::Err::Error(Fail::corrupt(i, "compressed string", "too large")))?;
            Ok((
                rest,
                RdbString::Lzf {
                    compressed,
                    original_len,
                },
            ))
        }
        (_, Length::Encoded(e)) => fail(Fail::corrupt(
            i,
            "string",
            format!("unknown string encoding {e}"),
        )),
    }
}

/// An RDB string that must hold exactly `N` bytes once decoded (stream IDs).
pub(crate) fn fixed_string<'a, const N: usize>(
    i: &'a [u8],
    what: &'static str,
) -> PResult<'a, [u8; N]> {
    let (rest, s) = string(i)?;
    let bytes = s.decode().map_err(nom::Err::Error)?;
    match <[u8; N]>::try_from(bytes.as_ref()) {
        Ok(arr) => Ok((rest, arr)),
        Err(_) => fail(Fail::corrupt(
            i,
            what,
            format!("expected {N} bytes, found {}", bytes.len()),
        )),
    }
}

/// A millisecond Unix time (8 bytes little-endian; all known writers of older versions
/// ran on little-endian hosts).
pub(crate) fn ms_time(i: &[u8]) -> PResult<'_, i64> {
    le_i64::<_, Fail>(i).map_err(|_| truncated(i, "millisecond time", 8))
}

pub(crate) fn u64_le(i: &[u8]) -> PResult<'_, u64> {
    le_u64::<_, Fail>(i).map_err(|_| truncated(i, "integer", 8))
}

#[inline]
pub(crate) fn byte(i: &[u8]) -> PResult<'_, u8> {
    match i.split_first() {
        Some((&b, rest)) => Ok((rest, b)),
        None => Err(truncated(i, "byte", 1)),
    }
}

/// The binary double of ZSET_2 and module DOUBLE: 8 bytes IEEE-754 little-endian.
pub(crate) fn binary_double(i: &[u8]) -> PResult<'_, f64> {
    let (rest, bits) = u64_le(i)?;
    Ok((rest, f64::from_bits(bits)))
}

/// The ASCII double of type 3 scores: a length byte and that many characters;
/// 253 = NaN, 254 = +inf, 255 = -inf.
pub(crate) fn ascii_double(i: &[u8]) -> PResult<'_, f64> {
    let (rest, n) = byte(i)?;
    match n {
        253 => Ok((rest, f64::NAN)),
        254 => Ok((rest, f64::INFINITY)),
        255 => Ok((rest, f64::NEG_INFINITY)),
        n => {
            let (rest, text) = bytes(rest, u64::from(n), "double")?;
            match parse_double(text) {
                Some(v) => Ok((rest, v)),
                None => fail(Fail::corrupt(i, "double", "not a number")),
            }
        }
    }
}

/// Parses a score as Redis' strtod would: decimal or exponent form, `inf`, `-inf`, `nan`.
pub fn parse_double(text: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(text).ok()?;
    let s = s.trim_end_matches('\0');
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_forms() {
        assert_eq!(length(&[0x05]).map(|r| r.1), Ok(Length::Len(5)));
        assert_eq!(length(&[0x41, 0x02]).map(|r| r.1), Ok(Length::Len(0x102)));
        assert_eq!(
            length(&[0x80, 0, 1, 0, 0]).map(|r| r.1),
            Ok(Length::Len(65536))
        );
        assert_eq!(
            length(&[0x81, 0, 0, 0, 1, 0, 0, 0, 0]).map(|r| r.1),
            Ok(Length::Len(1 << 32))
        );
        assert_eq!(length(&[0xC3]).map(|r| r.1), Ok(Length::Encoded(3)));
        assert!(length(&[0x82]).is_err());
        assert!(length(&[0x41]).is_err());
        assert!(length(&[]).is_err());
    }

    #[test]
    fn int_strings() {
        assert_eq!(string(&[0xC0, 0xFF]).map(|r| r.1), Ok(RdbString::Int(-1)));
        assert_eq!(
            string(&[0xC1, 0x39, 0x30]).map(|r| r.1),
            Ok(RdbString::Int(12345))
        );
        assert_eq!(
            string(&[0xC2, 0, 0, 0, 0x80]).map(|r| r.1),
            Ok(RdbString::Int(i64::from(i32::MIN)))
        );
    }

    #[test]
    fn count_rejects_impossible_sizes() {
        // 2^32 items of at least one byte each cannot fit in 3 bytes.
        assert!(count(&[0x80, 1, 0, 0, 0, 1, 2, 3], 1, "set").is_err());
        assert_eq!(count(&[0x02, 1, 2], 1, "set").map(|r| r.1), Ok(2));
    }
}
