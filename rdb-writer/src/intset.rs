//! Intset building: the blob of RDB type 11. The twin of the parser's `intset.rs`.
//!
//! ```text
//! encoding u32 LE (2, 4 or 8 bytes per value) | length u32 LE | value* (LE, strictly ascending)
//! ```

use crate::error::Error;

/// Builds an intset from `values`: sorted, duplicates dropped, every value at the width
/// of the widest one, as the server keeps it.
///
/// An empty intset is written as the 8-byte header alone; servers (6.2+) refuse it as a
/// key, so callers should not store one.
pub fn build(values: &[i64]) -> Result<Vec<u8>, Error> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let count = u32::try_from(sorted.len()).map_err(|_| Error::TooLarge {
        what: "intset",
        size: sorted.len() as u64,
        limit: u64::from(u32::MAX),
    })?;
    let width = sorted.iter().map(|&v| width_of(v)).max().unwrap_or(2);
    let mut out = Vec::with_capacity(8 + sorted.len() * width);
    out.extend_from_slice(&(width as u32).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    for v in sorted {
        out.extend_from_slice(v.to_le_bytes().get(..width).unwrap_or_default());
    }
    Ok(out)
}

/// Bytes per value needed to hold `v`.
fn width_of(v: i64) -> usize {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn widths_order_and_dedup() {
        assert_eq!(
            build(&[3, -1, 3]).ok(),
            Some(vec![2, 0, 0, 0, 2, 0, 0, 0, 0xFF, 0xFF, 3, 0])
        );
        let wide = build(&[1, 32768]).unwrap_or_default();
        assert_eq!(&wide[..8], [4, 0, 0, 0, 2, 0, 0, 0]);
        assert_eq!(wide.len(), 8 + 2 * 4);
        let widest = build(&[i64::MIN, 0]).unwrap_or_default();
        assert_eq!(&widest[..4], [8, 0, 0, 0]);
        assert_eq!(widest.len(), 8 + 2 * 8);
        assert_eq!(build(&[i64::from(i16::MIN)]).ok().map(|v| v[0]), Some(2));
        assert_eq!(build(&[i64::from(i32::MIN)]).ok().map(|v| v[0]), Some(4));
        assert_eq!(
            build(&[i64::from(i32::MAX) + 1]).ok().map(|v| v[0]),
            Some(8)
        );
    }
}
