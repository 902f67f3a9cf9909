//! Binary-safe JSON pieces for line-oriented output (`docs/export-jsonl.md`).
//!
//! Lines are assembled in a reused `Vec<u8>`: building a `serde_json::Value` per key would
//! allocate for every element. serde_json still does the string escaping.

use base64::Engine as _;

/// Appends a byte string: a JSON string when it is UTF-8, else `{"base64": "..."}`.
pub fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    match std::str::from_utf8(b) {
        Ok(s) => string(out, s),
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            let encoded = base64::engine::general_purpose::STANDARD.encode(b);
            out.extend_from_slice(encoded.as_bytes());
            out.extend_from_slice(b"\"}");
        }
    }
}

/// [`bytes()`] of a large `b`, handing `out` to `flush` each time it has grown by about
/// `piece` bytes of input, so the whole encoding is never held: the pieces concatenate to
/// exactly what [`bytes()`] writes.
pub fn bytes_in_pieces(
    out: &mut Vec<u8>,
    b: &[u8],
    piece: usize,
    mut flush: impl FnMut(&mut Vec<u8>),
) {
    let piece = piece.max(4);
    match std::str::from_utf8(b) {
        Ok(mut s) => {
            out.push(b'"');
            while !s.is_empty() {
                // A char boundary at or below `piece` (a UTF-8 char is at most 4 bytes).
                let mut end = piece.min(s.len());
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                let (head, rest) = s.split_at(end);
                // serde_json escapes; its quotes around each piece are dropped.
                let start = out.len();
                string(out, head);
                out.pop();
                out.remove(start);
                flush(out);
                s = rest;
            }
            out.push(b'"');
        }
        Err(_) => {
            out.extend_from_slice(b"{\"base64\":\"");
            // Whole 3-byte groups per piece: their encodings concatenate without padding.
            for chunk in b.chunks(piece / 3 * 3) {
                let text = base64::engine::general_purpose::STANDARD.encode(chunk);
                out.extend_from_slice(text.as_bytes());
                flush(out);
            }
            out.extend_from_slice(b"\"}");
        }
    }
}

/// Appends an escaped JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    // Writing into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, s);
}

/// Appends a decimal integer.
pub fn int(out: &mut Vec<u8>, v: impl itoa_like::Int) {
    v.push_to(out);
}

/// Appends a score: a number, or `"inf"`, `"-inf"`, `"nan"`.
pub fn score(out: &mut Vec<u8>, v: f64) {
    if v.is_nan() {
        out.extend_from_slice(b"\"nan\"");
    } else if v == f64::INFINITY {
        out.extend_from_slice(b"\"inf\"");
    } else if v == f64::NEG_INFINITY {
        out.extend_from_slice(b"\"-inf\"");
    } else {
        let _ = serde_json::to_writer(&mut *out, &v);
    }
}

/// Appends `"name":` (names are ASCII literals here).
pub fn key(out: &mut Vec<u8>, name: &str) {
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Appends an optional integer or `null`.
pub fn opt_int<T: itoa_like::Int>(out: &mut Vec<u8>, v: Option<T>) {
    match v {
        Some(v) => v.push_to(out),
        None => out.extend_from_slice(b"null"),
    }
}

pub mod itoa_like {
    use std::io::Write as _;

    /// Integers written in decimal without going through `fmt` allocation.
    pub trait Int: Copy {
        fn push_to(self, out: &mut Vec<u8>);
    }

    macro_rules! impl_int {
        ($($t:ty),*) => {$(
            impl Int for $t {
                fn push_to(self, out: &mut Vec<u8>) {
                    let _ = write!(out, "{}", self);
                }
            }
        )*};
    }
    impl_int!(u8, u32, u64, i64, usize);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_strings() {
        let mut out = Vec::new();
        bytes(&mut out, b"a\"b\n");
        out.push(b' ');
        bytes(&mut out, &[0xff, 0x00]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#""a\"b\n" {"base64":"/wA="}"#
        );
    }

    #[test]
    fn pieces_concatenate_to_the_whole() {
        let utf8 = "a\"é\n用户\u{1F600}\\x".repeat(50);
        let mut binary = utf8.clone().into_bytes();
        binary.push(0xff);
        for input in [utf8.as_bytes(), &binary[..], b"", b"\xff"] {
            let mut whole = Vec::new();
            bytes(&mut whole, input);
            for piece in [1, 4, 5, 7, 64, 1 << 20] {
                let (mut out, mut written, mut flushes) = (Vec::new(), Vec::new(), 0);
                bytes_in_pieces(&mut out, input, piece, |o| {
                    written.append(o);
                    flushes += 1;
                });
                written.append(&mut out);
                assert_eq!(written, whole, "piece {piece}");
                assert!(input.len() < piece.max(4) * 2 || flushes > 1);
            }
        }
    }

    #[test]
    fn scores() {
        let mut out = Vec::new();
        for v in [1.5, -0.25, f64::INFINITY, f64::NEG_INFINITY, 3.0] {
            score(&mut out, v);
            out.push(b',');
        }
        assert_eq!(
            String::from_utf8_lossy(&out),
            r#"1.5,-0.25,"inf","-inf",3.0,"#
        );
    }
}
