//! Listpack building: the blob of RDB types 16, 17, 20 and of quicklist v2 nodes. The twin
//! of the parser's `listpack.rs`.
//!
//! ```text
//! total_bytes u32 LE | num_elements u16 LE (65535 = many) | entry* | FF
//! entry: encoding+data | backlen (size of encoding+data, 7 bits a byte, read backwards)
//! encoding: 0xxxxxxx                 7-bit unsigned int
//!           10xxxxxx                 string, 6-bit length
//!           110xxxxx yyyyyyyy        13-bit signed int
//!           1110xxxx yyyyyyyy        string, 12-bit length
//!           F0 u32 LE                string, 32-bit length
//!           F1 i16 | F2 i24 | F3 i32 | F4 i64 (LE)
//! ```

use rdb_parser::parse_canonical_int;

use crate::error::Error;

const HEADER: usize = 6;
const END: u8 = 0xFF;
/// `num_elements` saturates here; readers then count by walking.
const MANY: u16 = u16::MAX;

/// Appends elements to a listpack; [`ListpackBuilder::finish`] fills in the header.
#[derive(Debug, Clone)]
pub struct ListpackBuilder {
    buf: Vec<u8>,
    count: usize,
}

impl Default for ListpackBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ListpackBuilder {
    pub fn new() -> Self {
        ListpackBuilder {
            buf: vec![0; HEADER],
            count: 0,
        }
    }

    /// Appends `element`, as an integer entry when it is a canonical integer of at most
    /// 20 characters (`lpStringToInt64`), else as a string entry.
    pub fn push(&mut self, element: &[u8]) {
        match parse_canonical_int(element) {
            Some(v) => self.push_int(v),
            None => self.push_str(element),
        }
    }

    /// Appends an integer entry in its smallest form.
    pub fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        int_entry(&mut self.buf, v);
        self.end_entry(start);
    }

    /// Appends a string entry, even for text that could be an integer entry.
    pub fn push_str(&mut self, s: &[u8]) {
        let start = self.buf.len();
        let n = s.len();
        if n < 1 << 6 {
            self.buf.push(0x80 | n as u8);
        } else if n < 1 << 12 {
            self.buf
                .extend_from_slice(&[0xE0 | (n >> 8) as u8, n as u8]);
        } else {
            // A length past u32 makes the whole listpack too large; finish() reports it.
            self.buf.push(0xF0);
            self.buf.extend_from_slice(&(n as u32).to_le_bytes());
        }
        self.buf.extend_from_slice(s);
        self.end_entry(start);
    }

    fn end_entry(&mut self, start: usize) {
        let len = self.buf.len() - start;
        backlen(&mut self.buf, len);
        self.count += 1;
    }

    /// The number of elements pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size the finished listpack will have, in bytes.
    pub fn size(&self) -> usize {
        self.buf.len() + 1
    }

    /// Writes the header and terminator. Fails past 4 GiB, which the header cannot state.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        self.buf.push(END);
        let total = u32::try_from(self.buf.len()).map_err(|_| Error::TooLarge {
            what: "listpack",
            size: self.buf.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        let count = u16::try_from(self.count).unwrap_or(MANY);
        if let Some(h) = self.buf.get_mut(..4) {
            h.copy_from_slice(&total.to_le_bytes());
        }
        if let Some(h) = self.buf.get_mut(4..HEADER) {
            h.copy_from_slice(&count.to_le_bytes());
        }
        Ok(self.buf)
    }
}

/// The bytes `element` takes in a listpack, back-length included, as [`ListpackBuilder::push`]
/// would write it.
pub fn entry_size(element: &[u8]) -> usize {
    let len = match parse_canonical_int(element) {
        Some(v) => int_entry_len(v),
        None => {
            let n = element.len();
            n + match n {
                0..=63 => 1,
                64..=4095 => 2,
                _ => 5,
            }
        }
    };
    len + backlen_size(len)
}

fn int_entry_len(v: i64) -> usize {
    match v {
        0..=127 => 1,
        -4096..=4095 => 2,
        -32768..=32767 => 3,
        -8_388_608..=8_388_607 => 4,
        -2_147_483_648..=2_147_483_647 => 5,
        _ => 9,
    }
}

fn int_entry(out: &mut Vec<u8>, v: i64) {
    let le = v.to_le_bytes();
    match int_entry_len(v) {
        1 => out.push(v as u8),
        2 => {
            // 13 bits two's complement, high bits in the first byte.
            let u = (v as u16) & 0x1FFF;
            out.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
        }
        3 => {
            out.push(0xF1);
            out.extend_from_slice(le.get(..2).unwrap_or_default());
        }
        4 => {
            out.push(0xF2);
            out.extend_from_slice(le.get(..3).unwrap_or_default());
        }
        5 => {
            out.push(0xF3);
            out.extend_from_slice(le.get(..4).unwrap_or_default());
        }
        _ => {
            out.push(0xF4);
            out.extend_from_slice(&le);
        }
    }
}

pub use rdb_parser::format::listpack_backlen_size as backlen_size;

/// Appends the back-length: most significant 7-bit group first with bit 7 clear, each
/// later (lower) group with bit 7 set, so a reader going backwards knows when to stop.
fn backlen(out: &mut Vec<u8>, len: usize) {
    let n = backlen_size(len);
    let len = len as u64;
    for i in (0..n).rev() {
        let group = ((len >> (7 * i)) & 0x7F) as u8;
        out.push(if i == n - 1 { group } else { group | 0x80 });
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn one(element: &[u8]) -> Vec<u8> {
        let mut b = ListpackBuilder::new();
        b.push(element);
        let lp = b.finish().unwrap_or_default();
        assert_eq!(lp.len(), HEADER + entry_size(element) + 1, "{element:?}");
        lp[HEADER..lp.len() - 1].to_vec()
    }

    #[test]
    fn empty_listpack() {
        assert_eq!(
            ListpackBuilder::new().finish().ok(),
            Some(vec![7, 0, 0, 0, 0, 0, 0xFF])
        );
    }

    #[test]
    fn integer_forms() {
        assert_eq!(one(b"0"), [0x00, 1]);
        assert_eq!(one(b"127"), [0x7F, 1]);
        assert_eq!(one(b"128"), [0xC0, 0x80, 2]);
        assert_eq!(one(b"-1"), [0xDF, 0xFF, 2]);
        assert_eq!(one(b"4095"), [0xCF, 0xFF, 2]);
        assert_eq!(one(b"-4096"), [0xD0, 0x00, 2]);
        assert_eq!(one(b"4096"), [0xF1, 0x00, 0x10, 3]);
        assert_eq!(one(b"-32769"), [0xF2, 0xFF, 0x7F, 0xFF, 4]);
        assert_eq!(one(b"8388608"), [0xF3, 0x00, 0x00, 0x80, 0x00, 5]);
        assert_eq!(
            one(b"-9223372036854775808"),
            [0xF4, 0, 0, 0, 0, 0, 0, 0, 0x80, 9]
        );
        // Not canonical: strings.
        assert_eq!(one(b"01"), [0x82, b'0', b'1', 3]);
        assert_eq!(one(b"-0"), [0x82, b'-', b'0', 3]);
        assert_eq!(one(b"+1"), [0x82, b'+', b'1', 3]);
    }

    #[test]
    fn string_forms_and_backlens() {
        assert_eq!(one(b""), [0x80, 1]);
        let s63 = one(&[b'x'; 63]);
        assert_eq!((s63[0], s63[64]), (0xBF, 64));
        let s64 = one(&[b'x'; 64]);
        assert_eq!(&s64[..2], [0xE0, 64]);
        assert_eq!(&s64[66..], [66]);
        let s200 = one(&[b'x'; 200]);
        assert_eq!(&s200[202..], [0x01, 0x80 | 74]);
        let s4096 = one(&[b'x'; 4096]);
        assert_eq!(&s4096[..5], [0xF0, 0x00, 0x10, 0x00, 0x00]);
        // encoding+data = 16383 bytes: the server's 3-byte quirk.
        let q = one(&vec![b'x'; 16383 - 5]);
        assert_eq!(&q[16383..], [0x00, 0xFF, 0xFF]);
        let q2 = one(&vec![b'x'; 16382 - 5]);
        assert_eq!(&q2[16382..], [0x7F, 0xFE]);
    }

    #[test]
    fn count_saturates() {
        let mut b = ListpackBuilder::new();
        for _ in 0..70_000 {
            b.push(b"1");
        }
        let lp = b.finish().unwrap_or_default();
        assert_eq!(&lp[4..6], [0xFF, 0xFF]);
        assert_eq!(lp.len(), 6 + 70_000 * 2 + 1);
    }
}
