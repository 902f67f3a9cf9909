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
