//! Checked fixed-width reads at a position inside a blob (ziplist, listpack, intset, zipmap).
//! Each returns `None` instead of reading past the end.

/// An unsigned little-endian integer of `n` (1..=8) bytes at `pos`.
pub(crate) fn le_uint(b: &[u8], pos: usize, n: usize) -> Option<u64> {
    let src = b.get(pos..pos.checked_add(n)?)?;
    let mut buf = [0u8; 8];
    buf.get_mut(..n)?.copy_from_slice(src);
    Some(u64::from_le_bytes(buf))
}

/// A signed little-endian integer of `n` (1..=8) bytes at `pos`, sign-extended.
pub(crate) fn le_int(b: &[u8], pos: usize, n: usize) -> Option<i64> {
    let raw = le_uint(b, pos, n)? as i64;
    let shift = 64 - 8 * n as u32;
    Some(raw.wrapping_shl(shift).wrapping_shr(shift))
}

/// An unsigned big-endian integer of `n` (1..=8) bytes at `pos`.
pub(crate) fn be_uint(b: &[u8], pos: usize, n: usize) -> Option<u64> {
    let src = b.get(pos..pos.checked_add(n)?)?;
    Some(src.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths() {
        let b = [0xFE, 0xFF, 0xFF, 0x7F];
        assert_eq!(le_int(&b, 0, 1), Some(-2));
        assert_eq!(le_int(&b, 0, 3), Some(-2));
        assert_eq!(le_int(&b, 0, 4), Some(0x7FFF_FFFE));
        assert_eq!(le_uint(&b, 2, 2), Some(0x7FFF));
        assert_eq!(be_uint(&b, 0, 2), Some(0xFEFF));
        assert_eq!(le_uint(&b, 3, 2), None);
        assert_eq!(le_uint(&b, usize::MAX, 2), None);
    }
}
