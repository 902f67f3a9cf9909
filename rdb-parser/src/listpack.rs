//! Listpack: the compact list of RDB types 16, 17, 20, 25, quicklist v2 nodes and stream nodes.
//!
//! ```text
//! total_bytes u32 LE | num_elements u16 LE | entry* | FF
//! entry: encoding+data | backlen (1-5 bytes, the size of encoding+data, read backwards)
//! encoding: 0xxxxxxx                 7-bit unsigned int
//!           10xxxxxx                 string, 6-bit length
//!           110xxxxx yyyyyyyy        13-bit signed int
//!           1110xxxx yyyyyyyy        string, 12-bit length
//!           F0 u32 LE                string, 32-bit length
//!           F1 i16 | F2 i24 | F3 i32 | F4 i64 (LE)
//! ```

use crate::bytes::{le_int, le_uint};
use crate::element::Element;
use crate::error::Fail;
use crate::format::listpack_backlen_size as backlen_size;

const HEADER: usize = 6;
const END: u8 = 0xFF;
const UNKNOWN_COUNT: u16 = u16::MAX;

/// A validated listpack header over a borrowed blob; iterate with [`Listpack::iter`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Listpack<'a> {
    blob: &'a [u8],
    declared: u16,
}

impl<'a> Listpack<'a> {
    pub(crate) fn new(blob: &'a [u8]) -> Result<Self, Fail> {
        let (Some(total), Some(declared)) = (le_uint(blob, 0, 4), le_uint(blob, 4, 2)) else {
            return Err(Fail::truncated(blob, "listpack", HEADER as u64 + 1));
        };
        if total as usize != blob.len() {
            return Err(Fail::corrupt(
                blob,
                "listpack",
                format!("header says {total} bytes, blob has {}", blob.len()),
            ));
        }
        if blob.len() <= HEADER || blob.last() != Some(&END) {
            return Err(Fail::corrupt(blob, "listpack", "missing end marker"));
        }
        Ok(Listpack {
            blob,
            declared: declared as u16,
        })
    }

    /// The element count from the header, unless it says "unknown".
    pub(crate) fn declared_len(&self) -> Option<usize> {
        (self.declared != UNKNOWN_COUNT).then_some(self.declared as usize)
    }

    pub(crate) fn iter(&self) -> ListpackIter<'a> {
        ListpackIter {
            rest: self.blob.get(HEADER..).unwrap_or(&[]),
            seen: 0,
            declared: self.declared,
            done: false,
        }
    }
}

/// Decodes one entry per `next()`; fuses after an error.
#[derive(Debug, Clone)]
pub(crate) struct ListpackIter<'a> {
    rest: &'a [u8],
    seen: usize,
    declared: u16,
    done: bool,
}

/// Where a walk over a listpack stands, so it can continue over a buffer it cannot
/// borrow for long (a decompressed quicklist node held by the caller).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListpackCursor {
    pos: usize,
    seen: usize,
    declared: u16,
    done: bool,
}

impl ListpackCursor {
    /// Validates the header of `blob` and points at its first entry.
    pub(crate) fn start(blob: &[u8]) -> Result<Self, Fail> {
        let lp = Listpack::new(blob)?;
        Ok(ListpackCursor {
            pos: HEADER,
            seen: 0,
            declared: lp.declared,
            done: false,
        })
    }

    /// The entry at the cursor in `blob` (the same blob `start` saw), copied out.
    pub(crate) fn next_owned(&mut self, blob: &[u8]) -> Option<Result<Element<'static>, Fail>> {
        self.next_in(blob).map(|r| r.map(Element::into_owned))
    }

    /// The entry at the cursor in `blob` (the same blob `start` saw), borrowing it.
    pub(crate) fn next_in<'b>(&mut self, blob: &'b [u8]) -> Option<Result<Element<'b>, Fail>> {
        let mut it = ListpackIter {
            rest: self.rest(blob),
            seen: self.seen,
            declared: self.declared,
            done: self.done,
        };
        let item = it.next();
        self.pos = blob.len() - it.rest.len();
        (self.seen, self.done) = (it.seen, it.done);
        item
    }

    /// The bytes of `blob` not yet decoded (for error positions).
    pub(crate) fn rest<'b>(&self, blob: &'b [u8]) -> &'b [u8] {
        blob.get(self.pos..).unwrap_or(&[])
    }
}

impl<'a> ListpackIter<'a> {
    /// The next entry, with an error if the listpack ends first (for fixed-shape records
    /// such as stream entries).
    pub(crate) fn required(&mut self, what: &'static str) -> Result<Element<'a>, Fail> {
        let at = self.rest;
        match self.next() {
            Some(r) => r,
            None => Err(Fail::corrupt(at, what, "listpack ended inside a record")),
        }
    }

    /// The next entry as an integer (stream metadata fields).
    pub(crate) fn required_int(&mut self, what: &'static str) -> Result<i64, Fail> {
        let at = self.rest;
        self.required(what)?
            .as_int()
            .ok_or_else(|| Fail::corrupt(at, what, "expected an integer entry"))
    }
}

impl<'a> Iterator for ListpackIter<'a> {
    type Item = Result<Element<'a>, Fail>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.rest.first() {
            None => {
                self.done = true;
                return Some(Err(Fail::truncated(self.rest, "listpack", 1)));
            }
            Some(&END) => {
                self.done = true;
                if self.rest.len() != 1 {
                    return Some(Err(Fail::corrupt(
                        self.rest,
                        "listpack",
                        "end marker before the end of the blob",
                    )));
                }
                if self.declared != UNKNOWN_COUNT && self.seen != self.declared as usize {
                    return Some(Err(Fail::corrupt(
                        self.rest,
                        "listpack",
                        format!(
                            "header declares {} elements, found {}",
                            self.declared, self.seen
                        ),
                    )));
                }
                return None;
            }
            Some(_) => {}
        }
        match entry(self.rest) {
            Ok((element, size)) => {
                self.rest = self.rest.get(size..).unwrap_or(&[]);
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

/// Decodes the entry at the start of `at`; returns it and its total size including backlen.
fn entry(at: &[u8]) -> Result<(Element<'_>, usize), Fail> {
    let trunc = |needed: usize| Fail::truncated(at, "listpack entry", needed as u64);
    let enc = *at.first().ok_or_else(|| trunc(1))?;
    let int = |n: usize| le_int(at, 1, n).ok_or_else(|| trunc(1 + n));
    let (element, len) = if enc & 0x80 == 0 {
        (Element::Int(i64::from(enc & 0x7f)), 1)
    } else if enc & 0xC0 == 0x80 {
        string(at, 1, (enc & 0x3f) as usize)?
    } else if enc & 0xE0 == 0xC0 {
        let low = *at.get(1).ok_or_else(|| trunc(2))?;
        let v = i64::from(enc & 0x1f) << 8 | i64::from(low);
        (
            Element::Int(if v >= 1 << 12 { v - (1 << 13) } else { v }),
            2,
        )
    } else if enc & 0xF0 == 0xE0 {
        let low = *at.get(1).ok_or_else(|| trunc(2))?;
        string(at, 2, ((enc & 0x0f) as usize) << 8 | low as usize)?
    } else {
        match enc {
            0xF0 => {
                let n = le_uint(at, 1, 4).ok_or_else(|| trunc(5))? as usize;
                string(at, 5, n)?
            }
            0xF1 => (Element::Int(int(2)?), 3),
            0xF2 => (Element::Int(int(3)?), 4),
            0xF3 => (Element::Int(int(4)?), 5),
            0xF4 => (Element::Int(int(8)?), 9),
            _ => {
                return Err(Fail::corrupt(
                    at,
                    "listpack entry",
                    format!("invalid encoding byte 0x{enc:02x}"),
                ))
            }
        }
    };
    let back = backlen_size(len);
    let total = len + back;
    let backlen_bytes = at
        .get(len..total)
        .filter(|_| total < at.len())
        .ok_or_else(|| trunc(total + 1))?;
    let decoded = backlen_bytes
        .iter()
        .fold(0usize, |acc, &b| acc << 7 | (b & 0x7f) as usize);
    // The first back-length byte has its high bit clear, every later one set; a reader
    // walking backwards relies on it.
    let well_formed = backlen_bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| (b & 0x80 != 0) == (i > 0));
    if decoded != len || !well_formed {
        return Err(Fail::corrupt(
            at,
            "listpack entry",
            format!("back-length says {decoded} bytes, entry has {len}"),
        ));
    }
    Ok((element, total))
}

fn string(at: &[u8], pos: usize, len: usize) -> Result<(Element<'_>, usize), Fail> {
    let end = pos.checked_add(len).filter(|&e| e < at.len());
    match end.and_then(|e| at.get(pos..e).map(|b| (b, e))) {
        Some((bytes, end)) => Ok((Element::borrowed(bytes), end)),
        None => Err(Fail::corrupt(
            at,
            "listpack entry",
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
    fn backlen_boundaries() {
        assert_eq!(backlen_size(127), 1);
        assert_eq!(backlen_size(128), 2);
        assert_eq!(backlen_size(16382), 2);
        assert_eq!(backlen_size(16383), 3);
    }

    #[test]
    fn small_listpack() {
        // "a", 7, -1 (13-bit), 1000 (13-bit)
        let entries: Vec<u8> = vec![
            0x81, b'a', 2, // string "a"
            0x07, 1, // 7
            0xDF, 0xFF, 2, // -1
            0xC3, 0xE8, 2, // 1000
        ];
        let total = 6 + entries.len() + 1;
        let mut blob = (total as u32).to_le_bytes().to_vec();
        blob.extend(4u16.to_le_bytes());
        blob.extend(entries);
        blob.push(0xFF);
        let lp = Listpack::new(&blob).map_err(|f| f.detail);
        let got: Vec<_> = lp
            .iter()
            .flat_map(|l| l.iter())
            .map(|e| e.map(|e| e.to_bytes().into_owned()).map_err(|f| f.detail))
            .collect();
        let want: Vec<Result<Vec<u8>, String>> = ["a", "7", "-1", "1000"]
            .iter()
            .map(|s| Ok(s.as_bytes().to_vec()))
            .collect();
        assert_eq!(got, want);
    }
}
