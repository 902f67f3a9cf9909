//! One element of a collection: borrowed bytes, an owned copy, or an integer entry.

use std::borrow::Cow;

/// A collection element as stored: bytes, or an integer (ziplist/listpack/intset integer
/// entries, INT-encoded RDB strings). Integers stand for their decimal string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Element<'a> {
    Bytes(Cow<'a, [u8]>),
    Int(i64),
}

impl<'a> Element<'a> {
    pub(crate) fn borrowed(bytes: &'a [u8]) -> Self {
        Element::Bytes(Cow::Borrowed(bytes))
    }

    /// The bytes this element stands for (integers formatted in decimal).
    pub fn to_bytes(&self) -> Cow<'_, [u8]> {
        match self {
            Element::Bytes(b) => Cow::Borrowed(b.as_ref()),
            Element::Int(v) => Cow::Owned(v.to_string().into_bytes()),
        }
    }

    /// Appends the bytes this element stands for to `out`, without allocating for integers.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Element::Bytes(b) => out.extend_from_slice(b),
            Element::Int(v) => out.extend_from_slice(itoa_buf(*v).as_slice()),
        }
    }

    /// The integer value, for integer entries and canonical decimal byte strings.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Element::Int(v) => Some(*v),
            Element::Bytes(b) => parse_canonical_int(b),
        }
    }

    /// The length of the bytes this element stands for.
    pub fn len(&self) -> usize {
        match self {
            Element::Bytes(b) => b.len(),
            Element::Int(v) => itoa_buf(*v).len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Detaches the element from the buffer it borrows.
    pub fn into_owned(self) -> Element<'static> {
        match self {
            Element::Bytes(b) => Element::Bytes(Cow::Owned(b.into_owned())),
            Element::Int(v) => Element::Int(v),
        }
    }

    /// The element as a score (zset ziplists and listpacks store scores as entries).
    pub fn as_score(&self) -> Option<f64> {
        match self {
            Element::Int(v) => Some(*v as f64),
            Element::Bytes(b) => crate::input::parse_double(b),
        }
    }
}

/// A small stack buffer holding an integer's decimal digits.
pub(crate) struct DecimalBuf {
    buf: [u8; 20],
    start: usize,
}

impl DecimalBuf {
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }
    pub fn len(&self) -> usize {
        self.buf.len() - self.start
    }
}

pub(crate) fn itoa_buf(v: i64) -> DecimalBuf {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut n = v.unsigned_abs();
    loop {
        pos -= 1;
        if let Some(slot) = buf.get_mut(pos) {
            *slot = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        pos -= 1;
        if let Some(slot) = buf.get_mut(pos) {
            *slot = b'-';
        }
    }
    DecimalBuf { buf, start: pos }
}

/// Parses bytes as Redis' `string2ll` does: optional `-`, no `+`, no leading zeros, no `-0`,
/// fits in i64.
pub fn parse_canonical_int(b: &[u8]) -> Option<i64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    let (neg, digits) = match b.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, b),
    };
    match digits {
        [] => return None,
        [b'0'] => return if neg { None } else { Some(0) },
        [b'0', ..] => return None,
        _ => {}
    }
    let mut acc: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        acc = acc.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    if neg {
        if acc <= i64::MAX as u64 + 1 {
            Some((acc as i64).wrapping_neg())
        } else {
            None
        }
    } else {
        i64::try_from(acc).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_ints() {
        for (s, v) in [
            ("0", Some(0)),
            ("-1", Some(-1)),
            ("9223372036854775807", Some(i64::MAX)),
            ("-9223372036854775808", Some(i64::MIN)),
            ("9223372036854775808", None),
            ("01", None),
            ("-0", None),
            ("+1", None),
            ("", None),
            ("-", None),
            ("1a", None),
        ] {
            assert_eq!(parse_canonical_int(s.as_bytes()), v, "{s}");
        }
    }

    #[test]
    fn decimal_buffer() {
        for v in [0i64, 7, -7, 1234567890, i64::MIN, i64::MAX] {
            assert_eq!(itoa_buf(v).as_slice(), v.to_string().as_bytes());
        }
    }
}
