//! The low-level snapshot writer: the caller states each item in file order; the writer
//! encodes it and keeps the checksum. The twin of the parser's `parser.rs`.
//!
//! ```text
//! header     "REDIS0011" | "VALKEY080"                       Writer::new
//! AUX        FA string key, string value                     aux
//! FUNCTION2  F5 string code                                  function
//! SELECTDB   FE len db                                       select_db
//! RESIZEDB   FB len db_size, len expires                     resize_db
//! per key    [FC i64 LE ms] [F8 len idle | F9 u8 freq]       expire_ms, idle, freq
//!            type, string key, value                         key_value, raw_entry
//! EOF        FF, crc64 u64 LE (RDB 5+; 0 when disabled)      finish
//! ```
//! The writer does not reorder or check the sequence beyond refusing an opcode the
//! chosen version does not have.

use std::io::{self, Write};

use rdb_parser::format::opcode;
use rdb_parser::{Magic, Version};

use crate::crc::Crc64Writer;
use crate::encode::{self, Compression};

/// Options for a [`Writer`]; the names mirror `rdb_parser::ParserBuilder`'s.
#[derive(Debug, Clone)]
pub struct WriterBuilder {
    compression: Compression,
    checksum: bool,
}

impl Default for WriterBuilder {
    fn default() -> Self {
        WriterBuilder {
            compression: Compression::Lzf,
            checksum: true,
        }
    }
}

impl WriterBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether keys, AUX fields and function code may be LZF-compressed (default: LZF, as
    /// a server with `rdbcompression yes`). Values are encoded by the caller, with their
    /// own setting.
    pub fn compression(&mut self, compression: Compression) -> &mut Self {
        self.compression = compression;
        self
    }

    /// Write the real CRC64 in the trailer (default), or 0 as `rdbchecksum no` does.
    pub fn checksum(&mut self, yes: bool) -> &mut Self {
        self.checksum = yes;
        self
    }

    /// Writes the 9-byte header for `version` and returns the writer positioned after it.
    pub fn build<W: Write>(&self, inner: W, version: Version) -> io::Result<Writer<W>> {
        let mut out = Crc64Writer::new(inner);
        out.write_all(&version.header())?;
        Ok(Writer {
            out,
            version,
            compression: self.compression,
            checksum: self.checksum,
            scratch: Vec::with_capacity(64),
        })
    }
}

/// Writes one snapshot to `W`, item by item; [`Writer::finish`] ends it.
#[derive(Debug)]
pub struct Writer<W: Write> {
    out: Crc64Writer<W>,
    version: Version,
    compression: Compression,
    checksum: bool,
    /// Opcodes and keys are assembled here, so each item is one write.
    scratch: Vec<u8>,
}

impl<W: Write> Writer<W> {
    /// Writes the header for `version` with default options (LZF on, checksum on).
    pub fn new(inner: W, version: Version) -> io::Result<Self> {
        WriterBuilder::default().build(inner, version)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.out.bytes_written()
    }

    /// An AUX field (RDB 7+). Both strings follow the string rules: `redis-bits` = `64`
    /// becomes `C0 40`.
    pub fn aux(&mut self, key: &[u8], value: &[u8]) -> io::Result<()> {
        self.require(7, "AUX field")?;
        self.scratch.clear();
        self.scratch.push(opcode::AUX);
        encode::string(&mut self.scratch, key, self.compression);
        encode::string(&mut self.scratch, value, self.compression);
        self.flush_scratch()
    }

    /// A function library (FUNCTION2, RDB 10+): the whole source, `#!lua name=...`.
    pub fn function(&mut self, code: &[u8]) -> io::Result<()> {
        self.require(10, "FUNCTION2")?;
        self.scratch.clear();
        self.scratch.push(opcode::FUNCTION2);
        encode::string(&mut self.scratch, code, self.compression);
        self.flush_scratch()
    }

    /// Following keys belong to database `db`.
    pub fn select_db(&mut self, db: u64) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.push(opcode::SELECTDB);
        encode::length(&mut self.scratch, db);
        self.flush_scratch()
    }

    /// Size hints for the current database (RDB 7+).
    pub fn resize_db(&mut self, db_size: u64, expires: u64) -> io::Result<()> {
        self.require(7, "RESIZEDB")?;
        self.scratch.clear();
        self.scratch.push(opcode::RESIZEDB);
        encode::length(&mut self.scratch, db_size);
        encode::length(&mut self.scratch, expires);
        self.flush_scratch()
    }

    /// The next key expires at `t` (absolute Unix ms; RDB 3+).
    pub fn expire_ms(&mut self, t: i64) -> io::Result<()> {
        self.require(3, "EXPIRETIME_MS")?;
        self.scratch.clear();
        self.scratch.push(opcode::EXPIRETIME_MS);
        encode::ms_time(&mut self.scratch, t);
        self.flush_scratch()
    }

    /// The next key's LRU idle time in seconds (RDB 9+).
    pub fn idle(&mut self, seconds: u64) -> io::Result<()> {
        self.require(9, "IDLE")?;
        self.scratch.clear();
        self.scratch.push(opcode::IDLE);
        encode::length(&mut self.scratch, seconds);
        self.flush_scratch()
    }

    /// The next key's LFU counter (RDB 9+).
    pub fn freq(&mut self, counter: u8) -> io::Result<()> {
        self.require(9, "FREQ")?;
        self.out.write_all(&[opcode::FREQ, counter])
    }

    /// A key whose value bytes were encoded by the caller (see [`crate::value`]); the key
    /// follows the string rules.
    pub fn key_value(&mut self, type_id: u8, key: &[u8], encoded_value: &[u8]) -> io::Result<()> {
        self.scratch.clear();
        self.scratch.push(type_id);
        encode::string(&mut self.scratch, key, self.compression);
        self.flush_scratch()?;
        self.out.write_all(encoded_value)
    }

    /// A key copied verbatim: `raw_key` includes its length prefix, as
    /// `rdb_parser::Entry::raw_key` and `raw_value` hold them.
    pub fn raw_entry(&mut self, type_id: u8, raw_key: &[u8], raw_value: &[u8]) -> io::Result<()> {
        self.out.write_all(&[type_id])?;
        self.out.write_all(raw_key)?;
        self.out.write_all(raw_value)
    }

    /// Copies bytes of an item exactly as another snapshot stored them (a whole AUX,
    /// SELECTDB or key entry span). The caller vouches that this version reads them.
    pub fn raw(&mut self, item_bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(item_bytes)
    }

    /// Writes EOF and, from RDB 5 on, the CRC64 of every byte from the magic through EOF
    /// (or 0 when checksums are off); flushes and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[opcode::EOF])?;
        if self.version.has_checksum() {
            let crc = if self.checksum { self.out.crc() } else { 0 };
            self.out.write_all(&crc.to_le_bytes())?;
        }
        self.out.flush()?;
        Ok(self.out.into_inner())
    }

    fn flush_scratch(&mut self) -> io::Result<()> {
        self.out.write_all(&self.scratch)
    }

    /// Refuses an opcode that a reader of this version would not know.
    fn require(&self, since: u32, what: &str) -> io::Result<()> {
        if self.version.magic == Magic::Valkey || self.version.number >= since {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} has no {what} (it needs RDB {since} or later)",
                    self.version
                ),
            ))
        }
    }
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;
    use rdb_parser::format::type_id;
    use rdb_parser::{Checksum, Item, Parser, Value};

    #[test]
    fn smallest_file() -> io::Result<()> {
        let file = Writer::new(Vec::new(), Version::redis(9))?.finish()?;
        let mut want = b"REDIS0009\xFF".to_vec();
        want.extend_from_slice(&rdb_parser::crc64(0, &want).to_le_bytes());
        assert_eq!(file, want);
        Ok(())
    }

    #[test]
    fn no_trailer_before_rdb5_and_zero_when_disabled() -> io::Result<()> {
        assert_eq!(
            Writer::new(Vec::new(), Version::redis(4))?.finish()?,
            b"REDIS0004\xFF"
        );
        let off = WriterBuilder::new()
            .checksum(false)
            .build(Vec::new(), Version::redis(11))?
            .finish()?;
        assert_eq!(off, b"REDIS0011\xFF\0\0\0\0\0\0\0\0");
        Ok(())
    }

    #[test]
    fn refuses_opcodes_the_version_lacks() -> io::Result<()> {
        let mut w = Writer::new(Vec::new(), Version::redis(6))?;
        assert!(w.aux(b"redis-ver", b"2.8.0").is_err());
        assert!(w.idle(5).is_err());
        assert!(w.function(b"#!lua name=x\n").is_err());
        assert!(w.expire_ms(1).is_ok());
        let mut v = Writer::new(Vec::new(), Version::valkey(80))?;
        assert!(v.function(b"#!lua name=x\n").is_ok());
        Ok(())
    }

    #[test]
    fn every_opcode_reads_back() -> Result<(), Box<dyn std::error::Error>> {
        let mut w = Writer::new(Vec::new(), Version::redis(11))?;
        w.aux(b"redis-bits", b"64")?;
        w.aux(b"redis-ver", b"7.2.4")?;
        w.function(b"#!lua name=lib\nredis.register_function('f', function() return 1 end)")?;
        w.select_db(3)?;
        w.resize_db(2, 1)?;
        w.expire_ms(1_700_000_000_123)?;
        w.idle(42)?;
        w.key_value(
            type_id::STRING,
            b"k1",
            &crate::value::string(b"v1", Compression::Lzf),
        )?;
        w.freq(7)?;
        w.raw_entry(type_id::STRING, b"\x02k2", b"\xC0\x05")?;
        let file = w.finish()?;
        assert!(file[9..].starts_with(b"\xFA\x0Aredis-bits\xC0\x40"));

        let items: Vec<Item<'_>> = Parser::new(&file)?.collect::<Result<_, _>>()?;
        let mut keys = Vec::new();
        let mut aux = Vec::new();
        let mut saw = (false, false, false);
        for item in &items {
            match item {
                Item::Aux(a) => aux.push((a.key.to_vec(), a.value.to_vec())),
                Item::Function(_) => saw.0 = true,
                Item::SelectDb(3) => saw.1 = true,
                Item::ResizeDb {
                    db_size: 2,
                    expires_size: 1,
                } => saw.2 = true,
                Item::Key(e) => {
                    let Value::String(s) = &e.value else {
                        panic!("not a string")
                    };
                    keys.push((
                        e.db,
                        e.key.to_vec(),
                        s.to_bytes()?.to_vec(),
                        e.expire_ms,
                        e.idle_s,
                        e.freq,
                    ));
                }
                Item::Eof(eof) => assert!(matches!(eof.checksum, Checksum::Verified(_))),
                _ => {}
            }
        }
        assert_eq!(saw, (true, true, true));
        assert_eq!(
            aux,
            vec![
                (b"redis-bits".to_vec(), b"64".to_vec()),
                (b"redis-ver".to_vec(), b"7.2.4".to_vec())
            ]
        );
        assert_eq!(
            keys,
            vec![
                (
                    3,
                    b"k1".to_vec(),
                    b"v1".to_vec(),
                    Some(1_700_000_000_123),
                    Some(42),
                    None
                ),
                (3, b"k2".to_vec(), b"5".to_vec(), None, None, Some(7)),
            ]
        );
        Ok(())
    }
}
