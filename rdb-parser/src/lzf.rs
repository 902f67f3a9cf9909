//! LZF decompression for `C3` strings.
//!
//! ```text
//! 000LLLLL <L+1 literal bytes>              literal run, 1..32 bytes
//! LLLooooo oooooooo                          back-reference, L in 1..6: copy L+2 bytes
//! 111ooooo LLLLLLLL oooooooo                 back-reference: copy 7+L+2 bytes (up to 264)
//!                                            from o+1 bytes back (o is 13 bits, up to 8192)
//! ```
//! Written here rather than taken from the `lzf` crate, which copies back-references one
//! byte at a time (a third of a full decode went there). A reference whose source ends
//! before its destination starts is one `copy_within`; an overlapping one (a run) doubles
//! the copied span each step. Every read and write is bounds-checked: corrupt input is an
//! error, never a panic, and the output never grows past the declared length.

use std::fmt;

/// Why an LZF stream does not decode, with the offset in the compressed bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LzfError {
    /// The stream ends inside an instruction.
    Truncated { at: usize },
    /// A back-reference reaches before the start of the output.
    BadReference { at: usize, distance: usize },
    /// The stream expands past the declared length.
    TooLong { at: usize },
    /// The stream ends before producing the declared length.
    TooShort { produced: usize },
}

impl fmt::Display for LzfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LzfError::Truncated { at } => {
                write!(f, "LZF data ends inside the instruction at byte {at}")
            }
            LzfError::BadReference { at, distance } => write!(
                f,
                "back-reference at byte {at} reaches {distance} bytes back, before the start"
            ),
            LzfError::TooLong { at } => {
                write!(
                    f,
                    "instruction at byte {at} expands past the declared length"
                )
            }
            LzfError::TooShort { produced } => {
                write!(f, "expands to {produced} bytes, fewer than declared")
            }
        }
    }
}

impl std::error::Error for LzfError {}

/// Decompresses `input`, which must expand to exactly `out_len` bytes.
///
/// Allocates `out_len` bytes up front; callers bound it (RDB strings refuse a length more
/// than 88 times the compressed size, LZF's largest expansion).
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, LzfError> {
    let mut decoded = vec![0u8; out_len];
    let out = decoded.as_mut_slice();
    let mut pos = 0; // next output byte
    let mut at = 0; // next input byte
    while let Some(&ctrl) = input.get(at) {
        let start = at;
        at += 1;
        if ctrl < 0x20 {
            let len = usize::from(ctrl) + 1;
            // Fast path: move a fixed 32 bytes (one or two vector moves), of which `len`
            // count; the rest is overwritten by what follows.
            if let (Some(src), Some(dst)) = (input.get(at..at + 32), out.get_mut(pos..pos + 32)) {
                dst.copy_from_slice(src);
            } else {
                let literal = input
                    .get(at..at + len)
                    .ok_or(LzfError::Truncated { at: start })?;
                out.get_mut(pos..pos + len)
                    .ok_or(LzfError::TooLong { at: start })?
                    .copy_from_slice(literal);
            }
            at += len;
            pos += len;
            continue;
        }
        let mut len = usize::from(ctrl >> 5);
        if len == 7 {
            len += usize::from(*input.get(at).ok_or(LzfError::Truncated { at: start })?);
            at += 1;
        }
        let low = *input.get(at).ok_or(LzfError::Truncated { at: start })?;
        at += 1;
        len += 2;
        let distance = (usize::from(ctrl & 0x1f) << 8 | usize::from(low)) + 1;
        let from = pos.checked_sub(distance).ok_or(LzfError::BadReference {
            at: start,
            distance,
        })?;
        if pos + len > out_len {
            return Err(LzfError::TooLong { at: start });
        }
        if distance >= len && len <= 16 && pos + 16 <= out_len {
            // Most references are short: load a fixed 16 bytes, then store them. The source
            // ends before `pos`, so the first `len` are final; the rest is overwritten later.
            let mut chunk = [0u8; 16];
            if let Some(src) = out.get(from..from + 16) {
                chunk.copy_from_slice(src);
            }
            if let Some(dst) = out.get_mut(pos..pos + 16) {
                dst.copy_from_slice(&chunk);
            }
        } else if distance >= len {
            out.copy_within(from..from + len, pos);
        } else if distance == 1 {
            let byte = out.get(from).copied().unwrap_or_default();
            if let Some(dst) = out.get_mut(pos..pos + len) {
                dst.fill(byte);
            }
        } else {
            // The source overlaps the destination: the `distance` bytes before `pos`
            // repeat. Each copy doubles the repeated span that is already in place.
            let mut done = 0;
            while done < len {
                let n = (distance + done).min(len - done);
                out.copy_within(from..from + n, pos + done);
                done += n;
            }
        }
        pos += len;
    }
    if pos != out_len {
        return Err(LzfError::TooShort { produced: pos });
    }
    Ok(decoded)
}

/// Whether `input` expands to exactly `out_len` bytes: the verdict of [`decompress`],
/// error for error, without writing the output (a checker needs no copy of a value).
pub fn validate(input: &[u8], out_len: usize) -> Result<(), LzfError> {
    let mut pos = 0usize; // output bytes so far
    let mut at = 0usize;
    while let Some(&ctrl) = input.get(at) {
        let start = at;
        at += 1;
        if ctrl < 0x20 {
            let len = usize::from(ctrl) + 1;
            if at + len > input.len() {
                return Err(LzfError::Truncated { at: start });
            }
            if pos + len > out_len {
                return Err(LzfError::TooLong { at: start });
            }
            at += len;
            pos += len;
            continue;
        }
        let mut len = usize::from(ctrl >> 5);
        if len == 7 {
            len += usize::from(*input.get(at).ok_or(LzfError::Truncated { at: start })?);
            at += 1;
        }
        let low = *input.get(at).ok_or(LzfError::Truncated { at: start })?;
        at += 1;
        let distance = (usize::from(ctrl & 0x1f) << 8 | usize::from(low)) + 1;
        if distance > pos {
            return Err(LzfError::BadReference {
                at: start,
                distance,
            });
        }
        pos += len + 2;
        if pos > out_len {
            return Err(LzfError::TooLong { at: start });
        }
    }
    if pos != out_len {
        return Err(LzfError::TooShort { produced: pos });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The `lzf` crate's verdict in this decoder's terms: the bytes, or no bytes.
    fn reference(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
        lzf::decompress(input, out_len)
            .ok()
            .filter(|v| v.len() == out_len)
    }

    #[test]
    fn runs_overlaps_and_far_references() {
        // "a" then a reference 1 back, 264 long: a run of 265.
        let run = [0x00, b'a', 0xE0, 255, 0x00];
        assert_eq!(decompress(&run, 265), Ok(vec![b'a'; 265]));
        // "abc" then 9 bytes from 3 back (overlapping), then 3 from 12 back (disjoint).
        let mixed = [0x02, b'a', b'b', b'c', 0xE0, 0, 2, 0x20, 11];
        assert_eq!(
            decompress(&mixed, 15).as_deref(),
            Ok(&b"abcabcabcabcabc"[..])
        );
        assert_eq!(
            reference(&mixed, 15).as_deref(),
            Some(&b"abcabcabcabcabc"[..])
        );
    }

    #[test]
    fn corrupt_streams_are_errors() {
        assert_eq!(decompress(&[], 1), Err(LzfError::TooShort { produced: 0 }));
        assert_eq!(
            decompress(&[0x05, 1, 2], 6),
            Err(LzfError::Truncated { at: 0 })
        );
        assert_eq!(decompress(&[0x20], 3), Err(LzfError::Truncated { at: 0 }));
        assert_eq!(
            decompress(&[0xE0, 1], 3),
            Err(LzfError::Truncated { at: 0 })
        );
        assert_eq!(
            decompress(&[0x00, b'a', 0x20, 1], 4),
            Err(LzfError::BadReference { at: 2, distance: 2 })
        );
        assert_eq!(
            decompress(&[0x01, 1, 2], 1),
            Err(LzfError::TooLong { at: 0 })
        );
        assert_eq!(
            decompress(&[0x00, 1, 0x20, 0], 3),
            Err(LzfError::TooLong { at: 2 })
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// Valid streams (from the crate's compressor) decode to the original.
        #[test]
        fn equals_the_crate_on_compressed_data(
            data in prop::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), any::<u8>()], 4..3000),
        ) {
            if let Ok(packed) = lzf::compress(&data) {
                prop_assert_eq!(decompress(&packed, data.len()).ok(), Some(data.clone()));
                prop_assert_eq!(reference(&packed, data.len()), Some(data));
            }
        }

        /// Arbitrary bytes: the same verdict and bytes as the crate, and never a panic.
        #[test]
        fn equals_the_crate_on_arbitrary_bytes(
            input in prop::collection::vec(any::<u8>(), 0..200),
            out_len in 1usize..2000,
        ) {
            prop_assert_eq!(decompress(&input, out_len).ok(), reference(&input, out_len));
        }

        /// Validation gives decompression's verdict, error for error, on any bytes and
        /// lengths (0 included).
        #[test]
        fn validate_agrees_with_decompress(
            input in prop::collection::vec(prop_oneof![Just(0u8), Just(0x20), Just(0xE0), any::<u8>()], 0..120),
            out_len in 0usize..600,
        ) {
            prop_assert_eq!(validate(&input, out_len), decompress(&input, out_len).map(|_| ()));
        }

        /// And on valid streams, at and around their true length.
        #[test]
        fn validate_accepts_exactly_the_true_length(
            data in prop::collection::vec(prop_oneof![Just(b'a'), any::<u8>()], 4..2000),
        ) {
            if let Ok(packed) = lzf::compress(&data) {
                for n in [data.len() - 1, data.len(), data.len() + 1] {
                    prop_assert_eq!(validate(&packed, n), decompress(&packed, n).map(|_| ()));
                }
                prop_assert_eq!(validate(&packed, data.len()), Ok(()));
            }
        }
    }
}
