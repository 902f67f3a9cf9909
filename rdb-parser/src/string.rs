//! RDB strings as found in the file, decoded only on demand.

use std::borrow::Cow;

use crate::error::{ErrorKind, Fail};

/// The most an LZF stream can expand: a 3-byte back-reference yields at most 264 bytes.
/// A declared original length beyond this ratio is corrupt, and is refused before allocating.
const LZF_MAX_RATIO: usize = 88;

/// A string as stored in the snapshot: borrowed bytes, an integer, or LZF-compressed bytes.
///
/// Nothing is decoded until asked for; [`RdbString::to_bytes`] borrows plain strings and
/// materializes the other two.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RdbString<'data> {
    /// Plain length-prefixed bytes.
    Raw(&'data [u8]),
    /// An INT8/INT16/INT32 string: stands for its decimal form.
    Int(i64),
    /// An LZF-compressed string and its declared decompressed length.
    Lzf {
        compressed: &'data [u8],
        original_len: usize,
    },
}

impl<'data> RdbString<'data> {
    /// Reads one length-prefixed RDB string at the start of `bytes`; returns it and the
    /// bytes after it, or `None` when they do not hold a whole string.
    pub fn read(bytes: &'data [u8]) -> Option<(RdbString<'data>, &'data [u8])> {
        crate::input::string(bytes).ok().map(|(rest, s)| (s, rest))
    }

    /// The bytes this string stands for.
    pub fn to_bytes(&self) -> Result<Cow<'data, [u8]>, crate::Error> {
        self.decode().map_err(|f| f.locate(&[], 0))
    }

    pub(crate) fn decode(&self) -> Result<Cow<'data, [u8]>, Fail> {
        match *self {
            RdbString::Raw(bytes) => Ok(Cow::Borrowed(bytes)),
            RdbString::Int(v) => Ok(Cow::Owned(v.to_string().into_bytes())),
            RdbString::Lzf {
                compressed,
                original_len,
            } => lzf_decompress(compressed, original_len).map(Cow::Owned),
        }
    }

    /// Whether the string decodes: the verdict of `decode`, error for error, without
    /// allocating (an LZF string is checked, not expanded).
    pub(crate) fn validate(&self) -> Result<(), Fail> {
        match *self {
            RdbString::Raw(_) | RdbString::Int(_) => Ok(()),
            RdbString::Lzf {
                compressed,
                original_len,
            } => lzf_validate(compressed, original_len),
        }
    }

    /// The length of the decoded string, without decoding it.
    pub fn len(&self) -> usize {
        match *self {
            RdbString::Raw(bytes) => bytes.len(),
            RdbString::Int(v) => decimal_len(v),
            RdbString::Lzf { original_len, .. } => original_len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The number of bytes the string occupies in the file after its length prefix.
    pub fn stored_len(&self) -> usize {
        match *self {
            RdbString::Raw(bytes) => bytes.len(),
            RdbString::Int(_) => 0,
            RdbString::Lzf { compressed, .. } => compressed.len(),
        }
    }

    /// The encoding name used in exports: `raw`, `int` or `lzf`.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            RdbString::Raw(_) => "raw",
            RdbString::Int(_) => "int",
            RdbString::Lzf { .. } => "lzf",
        }
    }
}

fn decimal_len(v: i64) -> usize {
    let mut n = if v < 0 { 2 } else { 1 };
    let mut rest = v.unsigned_abs() / 10;
    while rest > 0 {
        n += 1;
        rest /= 10;
    }
    n
}

/// Decompresses an LZF stream that must expand to exactly `original_len` bytes.
///
/// A declared length of 0 is the empty string whatever the compressed bytes: Redis 6.2+
/// and Valkey compare the decompressor's output length (0 on any failure) with the
/// declared one, so they load it, for a key or an element as for a value. (Redis 6.0 and
/// older refuse it; `verify` warns about a string value declaring it.)
pub(crate) fn lzf_decompress(compressed: &[u8], original_len: usize) -> Result<Vec<u8>, Fail> {
    if original_len == 0 {
        return Ok(Vec::new());
    }
    lzf_bounds(compressed, original_len)?;
    crate::lzf::decompress(compressed, original_len)
        .map_err(|e| lzf_error(compressed, original_len, e))
}

/// [`lzf_decompress`]'s verdict without the output.
pub(crate) fn lzf_validate(compressed: &[u8], original_len: usize) -> Result<(), Fail> {
    if original_len == 0 {
        return Ok(());
    }
    lzf_bounds(compressed, original_len)?;
    crate::lzf::validate(compressed, original_len)
        .map_err(|e| lzf_error(compressed, original_len, e))
}

fn lzf_error(compressed: &[u8], original_len: usize, e: crate::lzf::LzfError) -> Fail {
    Fail::corrupt(
        compressed,
        "compressed string",
        format!("LZF data does not decode ({original_len} bytes declared): {e}"),
    )
}

/// The checks made before decompressing: a declared length LZF cannot reach is refused
/// before anything is allocated for it.
fn lzf_bounds(compressed: &[u8], original_len: usize) -> Result<(), Fail> {
    if original_len > compressed.len().saturating_mul(LZF_MAX_RATIO) {
        return Err(Fail::new(
            compressed,
            ErrorKind::Corrupt,
            "compressed string",
            format!(
                "declares {original_len} bytes from {} compressed bytes, more than LZF can expand to",
                compressed.len()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_lengths() {
        for v in [0i64, 9, 10, -1, -10, 12345, i64::MIN, i64::MAX] {
            assert_eq!(decimal_len(v), v.to_string().len(), "{v}");
        }
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn lzf_bounds() {
        let data = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let packed = lzf::compress(data).unwrap_or_default();
        assert!(!packed.is_empty());
        assert_eq!(
            lzf_decompress(&packed, data.len()).ok(),
            Some(data.to_vec())
        );
        assert!(lzf_decompress(&packed, data.len() + 1).is_err());
        assert!(lzf_decompress(&packed, usize::MAX).is_err());
        assert!(lzf_decompress(&[0xff, 0xff], 100).is_err());
    }

    /// Declared length 0 is the empty string, whatever follows, as Redis 6.2+ loads it;
    /// `validate` agrees with `decode`.
    #[test]
    fn declared_length_0_is_the_empty_string() {
        for compressed in [&[][..], &[0x00, b'a'][..], &[0x20, 0x00][..], &[0xff][..]] {
            let s = RdbString::Lzf {
                compressed,
                original_len: 0,
            };
            assert_eq!(s.decode().ok().as_deref(), Some(&[][..]), "{compressed:?}");
            assert!(s.validate().is_ok(), "{compressed:?}");
            assert!(s.is_empty());
        }
        // Not so for a length the bytes cannot expand to.
        let s = RdbString::Lzf {
            compressed: &[0x00, b'a'],
            original_len: 2,
        };
        assert!(s.decode().is_err() && s.validate().is_err());
    }
}
