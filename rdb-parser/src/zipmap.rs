//! Zipmap: the hash encoding of RDB type 9 (Redis 2.x).
//!
//! ```text
//! zmlen u8 (>= 254: count by walking) | (len key | len free value <free bytes>)* | FF
//! len: u8 < 254 | FE u32 (host order, little-endian in practice)
//! ```

use crate::bytes::le_uint;
use crate::element::Element;
use crate::error::Fail;

const END: u8 = 0xFF;

/// A zipmap over a borrowed blob; iterate its field/value pairs with [`Zipmap::iter`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Zipmap<'a> {
    blob: &'a [u8],
}

impl<'a> Zipmap<'a> {
    pub(crate) fn new(blob: &'a [u8]) -> Result<Self, Fail> {
        if blob.len() < 2 || blob.last() != Some(&END) {
            return Err(Fail::corrupt(blob, "zipmap", "missing end marker"));
        }
        Ok(Zipmap { blob })
    }

    pub(crate) fn iter(&self) -> ZipmapIter<'a> {
        ZipmapIter {
            rest: self.blob.get(1..).unwrap_or(&[]),
            done: false,
        }
    }
}

/// Yields `(field, value)` pairs; fuses after an error.
#[derive(Debug, Clone)]
pub(crate) struct ZipmapIter<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> ZipmapIter<'a> {
    fn pair(&mut self) -> Result<Option<(Element<'a>, Element<'a>)>, Fail> {
        let at = self.rest;
        match at.first() {
            None => return Err(Fail::truncated(at, "zipmap", 1)),
            Some(&END) if at.len() == 1 => return Ok(None),
            Some(&END) => {
                return Err(Fail::corrupt(at, "zipmap", "end marker before the end"));
            }
            Some(_) => {}
        }
        let (klen, pos) = zm_len(at, 0)?;
        let key = take(at, pos, klen)?;
        let (vlen, pos) = zm_len(at, pos + klen)?;
        let free = *at
            .get(pos)
            .ok_or_else(|| Fail::truncated(at, "zipmap", 1))? as usize;
        let value = take(at, pos + 1, vlen)?;
        let end = pos + 1 + vlen + free;
        if end >= at.len() {
            return Err(Fail::corrupt(at, "zipmap", "entry runs past the end"));
        }
        self.rest = at.get(end..).unwrap_or(&[]);
        Ok(Some((Element::borrowed(key), Element::borrowed(value))))
    }
}

fn zm_len(at: &[u8], pos: usize) -> Result<(usize, usize), Fail> {
    match at.get(pos) {
        Some(&b) if b < 254 => Ok((b as usize, pos + 1)),
        Some(&254) => {
            let n = le_uint(at, pos + 1, 4).ok_or_else(|| Fail::truncated(at, "zipmap", 5))?;
            Ok((n as usize, pos + 5))
        }
        Some(_) => Err(Fail::corrupt(at, "zipmap", "unexpected end marker")),
        None => Err(Fail::truncated(at, "zipmap", 1)),
    }
}

fn take(at: &[u8], pos: usize, len: usize) -> Result<&[u8], Fail> {
    pos.checked_add(len)
        .and_then(|end| at.get(pos..end))
        .ok_or_else(|| Fail::corrupt(at, "zipmap", format!("length {len} exceeds the blob")))
}

impl<'a> Iterator for ZipmapIter<'a> {
    type Item = Result<(Element<'a>, Element<'a>), Fail>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.pair() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(f) => {
                self.done = true;
                Some(Err(f))
            }
        }
    }
}
