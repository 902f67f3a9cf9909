//! Ziplist building: the blob of RDB types 10, 12, 13 and of type 14 quicklist nodes.
//! The twin of the parser's `ziplist.rs`.
//!
//! ```text
//! zlbytes u32 LE | zltail u32 LE (offset of the last entry, 10 if none) | zllen u16 LE | entry* | FF
//! entry: prevlen (1 byte < 254 | FE u32 LE) | encoding | data
//! encoding: 00pppppp             string, 6-bit length
//!           01pppppp qqqqqqqq    string, 14-bit length (big-endian)
//!           10000000 u32 BE      string, 32-bit length
//!           C0 i16 | D0 i32 | E0 i64 | F0 i24 | FE i8 (all LE) | F1..FD immediate 0..12
//! ```

use rdb_parser::{parse_canonical_int, Element};

use crate::error::Error;

const HEADER: usize = 10;
const END: u8 = 0xFF;
const MANY: u16 = u16::MAX;
/// A prevlen this large takes the 5-byte form (254 itself is the marker).
const PREVLEN_WIDE: usize = 254;

/// Appends elements to a ziplist; [`ZiplistBuilder::finish`] fills in the header.
#[derive(Debug, Clone)]
pub struct ZiplistBuilder {
    buf: Vec<u8>,
    count: usize,
    /// Offset and size of the last entry, which the next one's prevlen and zltail need.
    tail: usize,
    prev_len: usize,
}

impl Default for ZiplistBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl ZiplistBuilder {
    pub fn new() -> Self {
        ZiplistBuilder {
            buf: vec![0; HEADER],
            count: 0,
            tail: HEADER,
            prev_len: 0,
        }
    }

    /// Appends `element`, as an integer entry when it is a canonical integer (string2ll)
    /// of 1 to 31 characters, else as a string entry.
    pub fn push(&mut self, element: &[u8]) {
        match parse_canonical_int(element) {
            Some(v) => self.push_int(v),
            None => self.push_str(element),
        }
    }

    /// Appends a decoded element as [`ZiplistBuilder::push`] would append its bytes: an
    /// integer entry of a listpack or ziplist stays an integer without being formatted
    /// and parsed again.
    pub fn push_element(&mut self, element: &Element<'_>) {
        match element {
            Element::Int(v) => self.push_int(*v),
            Element::Bytes(b) => self.push(b),
        }
    }

    /// Appends an integer entry in the first form that fits: immediate 0..12, int8,
    /// int16, int24, int32, int64 (the server's preference order).
    pub fn push_int(&mut self, v: i64) {
        let start = self.begin_entry();
        let le = v.to_le_bytes();
        let (enc, width) = match v {
            0..=12 => (0xF1 + v as u8, 0),
            -128..=127 => (0xFE, 1),
            -32768..=32767 => (0xC0, 2),
            -8_388_608..=8_388_607 => (0xF0, 3),
            -2_147_483_648..=2_147_483_647 => (0xD0, 4),
            _ => (0xE0, 8),
        };
        self.buf.push(enc);
        self.buf
            .extend_from_slice(le.get(..width).unwrap_or_default());
        self.end_entry(start);
    }

    /// Appends a string entry, even for text that could be an integer entry.
    pub fn push_str(&mut self, s: &[u8]) {
        let start = self.begin_entry();
        let n = s.len();
        if n < 1 << 6 {
            self.buf.push(n as u8);
        } else if n < 1 << 14 {
            self.buf
                .extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
        } else {
            // A length past u32 makes the whole ziplist too large; finish() reports it.
            self.buf.push(0x80);
            self.buf.extend_from_slice(&(n as u32).to_be_bytes());
        }
        self.buf.extend_from_slice(s);
        self.end_entry(start);
    }

    fn begin_entry(&mut self) -> usize {
        let start = self.buf.len();
        if self.prev_len < PREVLEN_WIDE {
            self.buf.push(self.prev_len as u8);
        } else {
            self.buf.push(0xFE);
            self.buf
                .extend_from_slice(&(self.prev_len as u32).to_le_bytes());
        }
        start
    }

    fn end_entry(&mut self, start: usize) {
        self.tail = start;
        self.prev_len = self.buf.len() - start;
        self.count += 1;
    }

    /// The number of elements pushed.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The size the finished ziplist will have, in bytes.
    pub fn size(&self) -> usize {
        self.buf.len() + 1
    }

    /// Writes the header and terminator. Fails past 4 GiB, which the header cannot state.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        self.buf.push(END);
        let total = u32::try_from(self.buf.len()).map_err(|_| Error::TooLarge {
            what: "ziplist",
            size: self.buf.len() as u64,
            limit: u64::from(u32::MAX),
        })?;
        // tail < total, so it fits too.
        let tail = self.tail as u32;
        let count = u16::try_from(self.count).unwrap_or(MANY);
        let mut header = [0u8; HEADER];
        header[..4].copy_from_slice(&total.to_le_bytes());
        header[4..8].copy_from_slice(&tail.to_le_bytes());
        header[8..].copy_from_slice(&count.to_le_bytes());
        if let Some(h) = self.buf.get_mut(..HEADER) {
            h.copy_from_slice(&header);
        }
        Ok(self.buf)
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn build(elements: &[&[u8]]) -> Vec<u8> {
        let mut b = ZiplistBuilder::new();
        for e in elements {
            b.push(e);
        }
        let size = b.size();
        let zl = b.finish().unwrap_or_default();
        assert_eq!(zl.len(), size);
        zl
    }

    #[test]
    fn empty_ziplist() {
        assert_eq!(build(&[]), [11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0xFF]);
    }

    #[test]
    fn integer_forms() {
        let zl = build(&[
            b"0",
            b"12",
            b"13",
            b"-1",
            b"-129",
            b"32768",
            b"-8388609",
            b"2147483648",
        ]);
        let entries = &zl[HEADER..zl.len() - 1];
        #[rustfmt::skip]
        let want: Vec<u8> = [
            &[0u8, 0xF1][..],
            &[2, 0xFD],
            &[2, 0xFE, 13],
            &[3, 0xFE, 0xFF],
            &[3, 0xC0, 0x7F, 0xFF],
            &[4, 0xF0, 0x00, 0x80, 0x00],
            &[5, 0xD0, 0xFF, 0xFF, 0x7F, 0xFF],
            &[6, 0xE0, 0, 0, 0, 0x80, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(entries, &want[..]);
        // zltail points at the last entry.
        assert_eq!(
            u32::from_le_bytes([zl[4], zl[5], zl[6], zl[7]]) as usize,
            zl.len() - 1 - 10
        );
        assert_eq!(&zl[8..10], [8, 0]);
    }

    #[test]
    fn strings_and_wide_prevlen() {
        let long = vec![b'y'; 300];
        let zl = build(&[b"ab", &long, b"01"]);
        // "ab": prevlen 0, 6-bit length.
        assert_eq!(&zl[10..14], [0, 2, b'a', b'b']);
        // 300 bytes: 14-bit big-endian length.
        assert_eq!(&zl[14..17], [4, 0x41, 0x2C]);
        // The entry after it needs the 5-byte prevlen (1 + 2 + 300 = 303).
        let third = 14 + 303;
        assert_eq!(&zl[third..third + 5], [0xFE, 0x2F, 0x01, 0, 0]);
        assert_eq!(&zl[third + 5..third + 8], [2, b'0', b'1']);
        let big = build(&[&vec![b'z'; 20_000]]);
        assert_eq!(&big[10..16], [0, 0x80, 0, 0, 0x4E, 0x20]);
    }
}
