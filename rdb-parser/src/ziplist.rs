//! Ziplist: the compact list of RDB types 10, 12, 13 and of type 14 quicklist nodes.
//!
//! ```text
//! zlbytes u32 LE | zltail u32 LE | zllen u16 LE | entry* | FF
//! entry: prevlen (1 byte < 254 | FE u32 LE) | encoding | data
//! encoding: 00pppppp             string, 6-bit length
//!           01pppppp qqqqqqqq    string, 14-bit length (big-endian)
//!           10000000 u32 BE      string, 32-bit length
//!           C0 i16 | D0 i32 | E0 i64 | F0 i24 | FE i8 (all LE) | F1..FD immediate 0..12
//! ```

use crate::bytes::{be_uint, le_int, le_uint};
use crate::element::Element;
use crate::error::Fail;

const HEADER: usize = 10;
const END: u8 = 0xFF;
/// `zllen` value meaning "count by walking".
const UNKNOWN_COUNT: u16 = u16::MAX;

/// A validated ziplist header over a borrowed blob; iterate with [`Ziplist::iter`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ziplist<'a> {
    blob: &'a [u8],
    declared: u16,
    /// Bytes from the `zltail` entry to the end of the blob.
    tail_gap: usize,
}

impl<'a> Ziplist<'a> {
    /// Checks the header and terminator; entries are checked as they are read.
    pub(crate) fn new(blob: &'a [u8]) -> Result<Self, Fail> {
        let (Some(zlbytes), Some(zltail), Some(declared)) = (
            le_uint(blob, 0, 4),
            le_uint(blob, 4, 4),
            le_uint(blob, 8, 2),
        ) else {
            return Err(Fail::truncated(blob, "ziplist", HEADER as u64 + 1));
        };
        let declared = declared as u16;
        if zlbytes as usize != blob.len() {
            return Err(Fail::corrupt(
                blob,
                "ziplist",
                format!("header says {zlbytes} bytes, blob has {}", blob.len()),
            ));
        }
        if blob.last() != Some(&END) {
            return Err(Fail::corrupt(blob, "ziplist", "missing end marker"));
        }
        if zltail as usize >= blob.len() {
            return Err(Fail::corrupt(
                blob,
                "ziplist",
                format!("tail offset {zltail} outside {} bytes", blob.len()),
            ));
        }
        Ok(Ziplist {
            blob,
            declared,
            tail_gap: blob.len() - zltail as usize,
        })
    }

    /// The entry count from the header, unless it says "unknown".
    pub(crate) fn declared_len(&self) -> Option<usize> {
        (self.declared != UNKNOWN_COUNT).then_some(self.declared as usize)
    }

    pub(crate) fn iter(&self) -> ZiplistIter<'a> {
        ZiplistIter {
            rest: self.blob.get(HEADER..).unwrap_or(&[]),
            prev_len: 0,
            seen: 0,
            declared: self.declared,
            done: false,
            tail_gap: self.tail_gap,
        }
    }
}

/// Decodes one entry per `next()`; fuses after an error.
#[derive(Debug, Clone)]
pub(crate) struct ZiplistIter<'a> {
    rest: &'a [u8],
    prev_len: usize,
    seen: usize,
    declared: u16,
    done: bool,
    tail_gap: usize,
}

/// Where a walk over a ziplist stands (see `ListpackCursor`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ZiplistCursor {
    pos: usize,
    prev_len: usize,
    seen: usize,
    declared: u16,
    done: bool,
    tail_gap: usize,
}

impl ZiplistCursor {
    pub(crate) fn start(blob: &[u8]) -> Result<Self, Fail> {
        let zl = Ziplist::new(blob)?;
        Ok(ZiplistCursor {
            pos: HEADER,
            prev_len: 0,
            seen: 0,
            declared: zl.declared,
            done: false,
            tail_gap: zl.tail_gap,
        })
    }

    pub(crate) fn next_owned(&mut self, blob: &[u8]) -> Option<Result<Element<'static>, Fail>> {
        let mut it = ZiplistIter {
            rest: blob.get(self.pos..).unwrap_or(&[]),
            prev_len: self.prev_len,
            seen: self.seen,
            declared: self.declared,
            done: self.done,
            tail_gap: self.tail_gap,
        };
        let item = it.next().map(|r| r.map(Element::into_owned));
        self.pos = blob.len() - it.rest.len();
        (self.prev_len, self.seen, self.done) = (it.prev_len, it.seen, it.done);
        item
    }
}

impl<'a> Iterator for ZiplistIter<'a> {
    type Item = Result<Element<'a>, Fail>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rest.first() {
            None => {
                self.done = true;
                return Some(Err(Fail::truncated(self.rest, "ziplist", 1)));
            }
            Some(&END) => {
                self.done = true;
                if self.rest.len() != 1 {
                    return Some(Err(Fail::corrupt(
                        self.rest,
                        "ziplist",
                        "end marker before the end of the blob",
                    )));
                }
                // As Redis' deep sanitization: zltail must point at the last entry.
                if self.seen > 0 && self.prev_len + 1 != self.tail_gap {
                    return Some(Err(Fail::corrupt(
                        self.rest,
                        "ziplist",
                        format!(
                            "tail offset is {} bytes before the end, the last entry starts {}",
                            self.tail_gap,
                            self.prev_len + 1
                        ),
                    )));
                }
                if self.declared != UNKNOWN_COUNT && self.seen != self.declared as usize {
                    return Some(Err(Fail::corrupt(
                        self.rest,
                        "ziplist",
                        format!(
                            "header declares {} entries, found {}",
                            self.declared, self.seen
                        ),
                    )));
                }
                return None;
            }
            Some(_) => {}
        }
        match entry(self.rest, self.prev_len) {
            Ok((element, size)) => {
                self.rest = self.rest.get(size..).unwrap_or(&[]);
                self.prev_len = size;
                self.seen += 1;
                Some(Ok(element))
            }
            Err(f) => {
                self.done = true;
                Some(Err(f))
            }
        }
    }
}

/// Decodes the entry at the start of `at`; returns it and the entry's total size.
fn entry(at: &[u8], expected_prev: usize) -> Result<(Element<'_>, usize), Fail> {
    let trunc = |needed: usize| Fail::truncated(at, "ziplist entry", needed as u64);
    let (prev_len, mut pos) = match at.first() {
        Some(&0xFE) => (le_uint(at, 1, 4).ok_or_else(|| trunc(5))? as usize, 5),
        Some(&b) => (b as usize, 1),
        None => return Err(trunc(1)),
    };
    if prev_len != expected_prev {
        return Err(Fail::corrupt(
            at,
            "ziplist entry",
            format!(
                "previous-entry length {prev_len}, the previous entry has {expected_prev} bytes"
            ),
        ));
    }
    let enc = *at.get(pos).ok_or_else(|| trunc(pos + 1))?;
    pos += 1;
    let int = |pos: usize, n: usize| le_int(at, pos, n).ok_or_else(|| trunc(pos + n));
    let (element, end) = match enc >> 6 {
        0 => string(at, pos, (enc & 0x3f) as usize)?,
        1 => {
            let low = *at.get(pos).ok_or_else(|| trunc(pos + 1))?;
            string(at, pos + 1, ((enc & 0x3f) as usize) << 8 | low as usize)?
        }
        2 => {
            if enc != 0x80 {
                return Err(Fail::corrupt(
                    at,
                    "ziplist entry",
                    format!("invalid encoding byte 0x{enc:02x}"),
                ));
            }
            let n = be_uint(at, pos, 4).ok_or_else(|| trunc(pos + 4))? as usize;
            string(at, pos + 4, n)?
        }
        _ => match enc {
            0xC0 => (Element::Int(int(pos, 2)?), pos + 2),
            0xD0 => (Element::Int(int(pos, 4)?), pos + 4),
            0xE0 => (Element::Int(int(pos, 8)?), pos + 8),
            0xF0 => (Element::Int(int(pos, 3)?), pos + 3),
            0xFE => (Element::Int(int(pos, 1)?), pos + 1),
            0xF1..=0xFD => (Element::Int(i64::from(enc & 0x0f) - 1), pos),
            _ => {
                return Err(Fail::corrupt(
                    at,
                    "ziplist entry",
                    format!("invalid encoding byte 0x{enc:02x}"),
                ))
            }
        },
    };
    Ok((element, end))
}

fn string(at: &[u8], pos: usize, len: usize) -> Result<(Element<'_>, usize), Fail> {
    let end = pos.checked_add(len).filter(|&e| e < at.len());
    match end.and_then(|e| at.get(pos..e).map(|b| (b, e))) {
        Some((bytes, end)) => Ok((Element::borrowed(bytes), end)),
        None => Err(Fail::corrupt(
            at,
            "ziplist entry",
            format!(
                "string of {len} bytes exceeds the {} bytes left",
                at.len().saturating_sub(pos)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_ziplist() {
        let blob = [11, 0, 0, 0, 10, 0, 0, 0, 0, 0, 0xFF];
        let zl = Ziplist::new(&blob).map_err(|f| f.detail);
        assert_eq!(zl.as_ref().map(|z| z.iter().count()).ok(), Some(0));
    }

    #[test]
    fn integers_and_strings() {
        // Entries: "ab", 5 (immediate), -2 (int8), 300 (int16)
        let mut entries = vec![0u8, 0x02, b'a', b'b'];
        entries.extend([4, 0xF6]);
        entries.extend([2, 0xFE, 0xFE]);
        entries.extend([3, 0xC0, 0x2C, 0x01]);
        let total = 10 + entries.len() + 1;
        let mut blob = (total as u32).to_le_bytes().to_vec();
        blob.extend(((total - 5) as u32).to_le_bytes());
        blob.extend(4u16.to_le_bytes());
        blob.extend(entries);
        blob.push(0xFF);
        let zl = Ziplist::new(&blob).map_err(|f| f.detail);
        let got: Vec<_> = zl
            .iter()
            .flat_map(|z| z.iter())
            .map(|e| e.map(|e| e.to_bytes().into_owned()).map_err(|f| f.detail))
            .collect();
        let want: Vec<Result<Vec<u8>, String>> = ["ab", "5", "-2", "300"]
            .iter()
            .map(|s| Ok(s.as_bytes().to_vec()))
            .collect();
        assert_eq!(got, want);
    }
}
