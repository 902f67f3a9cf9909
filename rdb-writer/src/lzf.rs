//! LZF compression for `C3` strings: the twin of the parser's LZF decoding.
//!
//! ```text
//! 000LLLLL <L+1 literal bytes>              literal run, 1..32 bytes
//! LLLooooo oooooooo                          back-reference, L in 1..6: copy L+2 bytes
//! 111ooooo LLLLLLLL oooooooo                 back-reference: copy 7+L+2 bytes (up to 264)
//!                                            from o+1 bytes back (o is 13 bits, up to 8192)
//! ```
//! Written here rather than taken from the `lzf` crate: its `compress` (1.0.0) indexes past
//! its output buffer on some incompressible inputs and panics, e.g. bytes 0..160 followed by
//! 1, 2, 3, 200, 201. This is a greedy single-probe hash matcher like liblzf; its output
//! decodes with any LZF decoder but is not byte-identical to the server's.

/// Hash table size (log2): 16K slots of u32, 64 KiB per thread, kept from call to call.
const HASH_BITS: u32 = 14;
const MAX_LITERALS: usize = 32;
const MIN_MATCH: usize = 3;
/// 7 from the control byte plus 255 from the extra byte, plus the implied 2.
const MAX_MATCH: usize = 7 + 255 + 2;
const MAX_DISTANCE: usize = 1 << 13;
/// Inputs up to this size are compressed: positions are stored as u32 past a base.
const MAX_INPUT: usize = 1 << 30;

/// The hash table of one thread. A slot holds `base + position + 1` of the last 3-byte
/// sequence with that hash; a value at or below `base` was left by an earlier call and
/// counts as empty. Each call moves `base` past its own positions, so no call pays for
/// clearing the table (64 KiB, eight times an 8 KiB node), and the output depends on the
/// input alone, never on what the thread compressed before.
struct Table {
    slots: Vec<u32>,
    base: u32,
}

thread_local! {
    static TABLE: std::cell::RefCell<Table> = std::cell::RefCell::new(Table {
        slots: vec![0; 1 << HASH_BITS],
        base: 0,
    });
}

/// Compresses `input`, or returns `None` if the result would exceed `max_out` bytes.
pub(crate) fn compress(input: &[u8], max_out: usize) -> Option<Vec<u8>> {
    let n = input.len();
    if !(MIN_MATCH + 1..=MAX_INPUT).contains(&n) {
        return None;
    }
    TABLE.with(|t| {
        let mut t = t.borrow_mut();
        let t = &mut *t;
        if u64::from(t.base) + n as u64 + 1 > u64::from(u32::MAX) {
            t.slots.iter_mut().for_each(|s| *s = 0);
            t.base = 0;
        }
        let base = t.base;
        let out = compress_with(input, max_out, &mut t.slots, base);
        t.base = base + n as u32 + 1;
        out
    })
}

fn compress_with(input: &[u8], max_out: usize, table: &mut [u32], base: u32) -> Option<Vec<u8>> {
    let n = input.len();
    let mut out = Vec::with_capacity(max_out.min(n));
    let mut literals_from = 0;
    let mut i = 0;
    while let Some(key) = trigram(input, i) {
        let slot = hash(key);
        let stored = table.get(slot).copied().unwrap_or(0);
        if let Some(s) = table.get_mut(slot) {
            *s = base + i as u32 + 1;
        }
        let found = stored
            .checked_sub(base + 1)
            .map(|r| r as usize)
            .filter(|&r| r < i && i - r <= MAX_DISTANCE && trigram(input, r) == Some(key));
        let Some(r) = found else {
            i += 1;
            // Pending literals alone already overflow: incompressible, stop early.
            if out.len() + (i - literals_from) > max_out {
                return None;
            }
            continue;
        };
        let limit = (n - i).min(MAX_MATCH);
        let mut len = MIN_MATCH;
        while len < limit && input.get(r + len) == input.get(i + len) {
            len += 1;
        }
        literal_runs(&mut out, input.get(literals_from..i).unwrap_or_default());
        back_reference(&mut out, i - r - 1, len - 2);
        if out.len() > max_out {
            return None;
        }
        // Index the positions the match covered, so later repeats of them are found.
        for p in i + 1..i + len {
            if let Some(k) = trigram(input, p) {
                if let Some(s) = table.get_mut(hash(k)) {
                    *s = base + p as u32 + 1;
                }
            }
        }
        i += len;
        literals_from = i;
    }
    literal_runs(&mut out, input.get(literals_from..).unwrap_or_default());
    (out.len() <= max_out).then_some(out)
}

fn trigram(input: &[u8], at: usize) -> Option<u32> {
    match input.get(at..at + MIN_MATCH)? {
        [a, b, c] => Some(u32::from(*a) | u32::from(*b) << 8 | u32::from(*c) << 16),
        _ => None,
    }
}

fn hash(key: u32) -> usize {
    (key.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

fn literal_runs(out: &mut Vec<u8>, bytes: &[u8]) {
    for run in bytes.chunks(MAX_LITERALS) {
        out.push((run.len() - 1) as u8);
        out.extend_from_slice(run);
    }
}

/// `offset` is the distance minus one (0..8192), `len` the match length minus two (1..262).
fn back_reference(out: &mut Vec<u8>, offset: usize, len: usize) {
    let high = (offset >> 8) as u8;
    if len < 7 {
        out.push((len as u8) << 5 | high);
    } else {
        out.push(7 << 5 | high);
        out.push((len - 7) as u8);
    }
    out.push(offset as u8);
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn roundtrip(input: &[u8]) -> Option<usize> {
        let packed = compress(input, input.len() * 2)?;
        // The lzf crate's decoder is an independent check of the format.
        assert_eq!(
            lzf::decompress(&packed, input.len()).ok().as_deref(),
            Some(input)
        );
        Some(packed.len())
    }

    #[test]
    fn the_input_that_panics_the_lzf_crate() {
        let mut d: Vec<u8> = (0..160u8).collect();
        d.extend_from_slice(&[1, 2, 3, 200, 201]);
        assert_eq!(compress(&d, d.len()), None);
        assert_eq!(
            compress(&d, d.len() + 10).map(|p| lzf::decompress(&p, d.len()).ok()),
            Some(Some(d))
        );
    }

    #[test]
    fn long_runs_and_far_matches() {
        assert!(roundtrip(&[b'a'; 10_000]).is_some_and(|n| n < 150));
        // A repeat exactly 8192 bytes back is the farthest a back-reference reaches.
        let noise = |n: usize| -> Vec<u8> {
            let mut x = 0x9E37_79B9_7F4A_7C15u64;
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x >> 24) as u8
                })
                .collect()
        };
        let mut reach = noise(8192);
        reach.extend_from_within(..300);
        // 8192 literals cost 8448 bytes; the 300-byte repeat then costs a few.
        assert!(roundtrip(&reach).is_some_and(|n| n < 8460));
        let mut beyond = noise(8193);
        beyond.extend_from_within(..300);
        // One byte farther, the repeat is out of reach and stays literal.
        assert!(roundtrip(&beyond).is_some_and(|n| n > 8700));
        let text = b"{\"id\":1,\"name\":\"alpha\"},{\"id\":2,\"name\":\"bravo\"},".repeat(40);
        assert!(roundtrip(&text).is_some_and(|n| n < text.len() / 4));
        assert_eq!(compress(b"abc", 10), None);
    }

    /// The table kept between calls never shows: the output depends on the input alone,
    /// after any other input, and across the reset when the positions would overflow.
    #[test]
    fn output_depends_on_the_input_alone() {
        let text = b"{\"id\":1,\"name\":\"alpha\"},{\"id\":2,\"name\":\"bravo\"},".repeat(30);
        let fresh = compress_with(&text, text.len(), &mut vec![0; 1 << HASH_BITS], 0);
        assert!(fresh.is_some());
        for other in [
            &b"{\"id\":9,\"name\":\"other\"}".repeat(50)[..],
            &[b'a'; 5000][..],
        ] {
            let _ = compress(other, other.len());
            assert_eq!(compress(&text, text.len()), fresh);
        }
        TABLE.with(|t| t.borrow_mut().base = u32::MAX - 10);
        assert_eq!(compress(&text, text.len()), fresh);
        assert_eq!(compress(&text, text.len()), fresh);
    }

    #[test]
    fn random_inputs_roundtrip() {
        let mut x = 0x1234_5678_9ABC_DEF0u64;
        for len in (4..3000).step_by(7) {
            let alphabet = 1 + (len % 13) as u64 * 20;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % alphabet) as u8
                })
                .collect();
            if let Some(packed) = compress(&data, data.len() * 2) {
                assert_eq!(
                    lzf::decompress(&packed, data.len()).ok(),
                    Some(data),
                    "len {len}"
                );
            }
        }
    }
}
