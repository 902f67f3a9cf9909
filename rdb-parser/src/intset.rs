//! Intset: a sorted array of integers, RDB type 11.
//!
//! ```text
//! encoding u32 LE (2, 4 or 8 bytes per value) | length u32 LE | value* (LE, ascending)
//! ```

use crate::bytes::{le_int, le_uint};
use crate::error::Fail;

/// A validated intset over a borrowed blob.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Intset<'a> {
    values: &'a [u8],
    width: usize,
}

impl<'a> Intset<'a> {
    pub(crate) fn new(blob: &'a [u8]) -> Result<Self, Fail> {
        let (Some(width), Some(count)) = (le_uint(blob, 0, 4), le_uint(blob, 4, 4)) else {
            return Err(Fail::truncated(blob, "intset", 8));
        };
        if !matches!(width, 2 | 4 | 8) {
            return Err(Fail::corrupt(
                blob,
                "intset",
                format!("invalid encoding width {width}"),
            ));
        }
        let expected = count.saturating_mul(width).saturating_add(8);
        if expected != blob.len() as u64 {
            return Err(Fail::corrupt(
                blob,
                "intset",
                format!(
                    "{count} values of {width} bytes need {expected} bytes, blob has {}",
                    blob.len()
                ),
            ));
        }
        Ok(Intset {
            values: blob.get(8..).unwrap_or(&[]),
            width: width as usize,
        })
    }

    pub(crate) fn len(&self) -> usize {
        self.values.len() / self.width
    }

    /// Bytes per value: 2, 4 or 8.
    pub(crate) fn width(&self) -> usize {
        self.width
    }

    pub(crate) fn iter(&self) -> IntsetIter<'a> {
        IntsetIter {
            chunks: self.values.chunks_exact(self.width),
        }
    }
}

/// The values of an intset in stored order.
#[derive(Debug, Clone)]
pub(crate) struct IntsetIter<'a> {
    chunks: std::slice::ChunksExact<'a, u8>,
}

impl Iterator for IntsetIter<'_> {
    type Item = i64;

    fn next(&mut self) -> Option<i64> {
        let c = self.chunks.next()?;
        le_int(c, 0, c.len())
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.chunks.size_hint()
    }
}
