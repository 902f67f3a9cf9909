//! A `Write` adapter that keeps the CRC64 of everything written through it.
//!
//! ```text
//! "REDIS0011" ... FF | crc64 u64 LE     the trailer covers the magic through the EOF byte
//! ```
//! The CRC is Redis' Jones CRC-64 with init 0, continued across writes.

use std::io::{self, Write};

/// Passes bytes to `inner` and folds each accepted byte into a running CRC64.
#[derive(Debug)]
pub struct Crc64Writer<W> {
    inner: W,
    crc: u64,
    written: u64,
}

impl<W: Write> Crc64Writer<W> {
    pub fn new(inner: W) -> Self {
        Crc64Writer {
            inner,
            crc: 0,
            written: 0,
        }
    }

    /// The CRC64 of every byte written so far.
    pub fn crc(&self) -> u64 {
        self.crc
    }

    /// How many bytes were written so far.
    pub fn bytes_written(&self) -> u64 {
        self.written
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Crc64Writer<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        // Only the bytes the inner writer took: a short write is retried by write_all.
        let taken = buf.get(..n).unwrap_or(buf);
        self.crc = rdb_parser::crc64(self.crc, taken);
        self.written += taken.len() as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Redis' CRC-64 with a byte table, for a few bytes at a time.
const CRC64_BYTEWISE: crc::Crc<u64, crc::Table<1>> =
    crc::Crc::<u64, crc::Table<1>>::new(&crc::CRC_64_REDIS);

/// Inputs shorter than this are checksummed a byte at a time: the SIMD CRC's set-up per
/// call costs more than their bytes (a DUMP payload's type byte and version trailer).
const SHORT: usize = 16;

/// `rdb_parser::crc64`, a byte at a time for a few bytes.
pub fn crc64_short(crc: u64, data: &[u8]) -> u64 {
    if data.len() >= SHORT {
        return rdb_parser::crc64(crc, data);
    }
    // The crate reflects an initial value; a CRC carried over is reflected already.
    let mut digest = CRC64_BYTEWISE.digest_with_initial(crc.reverse_bits());
    digest.update(data);
    digest.finalize()
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Accepts at most 3 bytes a call, to exercise short writes.
    struct Trickle(Vec<u8>);

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let n = buf.len().min(3);
            self.0.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_inputs_checksum_as_the_simd_crc() {
        let data: Vec<u8> = (0..64u32).map(|i| (i * 37 + 11) as u8).collect();
        for len in 0..data.len() {
            for start in [0u64, 0xe9c6_d914_c4b8_d9ca] {
                assert_eq!(
                    crc64_short(start, &data[..len]),
                    rdb_parser::crc64(start, &data[..len]),
                    "len {len}"
                );
            }
        }
        assert_eq!(crc64_short(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    }

    #[test]
    fn check_value_across_short_writes() -> io::Result<()> {
        let mut w = Crc64Writer::new(Trickle(Vec::new()));
        w.write_all(b"1234")?;
        w.write_all(b"56789")?;
        assert_eq!(w.crc(), 0xe9c6d914c4b8d9ca);
        assert_eq!(w.bytes_written(), 9);
        assert_eq!(w.into_inner().0, b"123456789");
        Ok(())
    }
}
