//! The top-level reader: an iterator of items over a whole snapshot.
//!
//! Per key, the opcodes before the type byte (expiry, idle, freq) are folded into the
//! [`Entry`] they belong to. Values are located, not decoded: collections decode their
//! elements when iterated.

use std::borrow::Cow;

use crate::ctx::Ctx;
use crate::error::{unnom, Error, ErrorKind, Fail, PResult};
use crate::format::{opcode, Magic, Version, MAX_REDIS_VERSION, VALKEY_VERSIONS};
use crate::input::{byte, bytes, len, string, u64_le};
use crate::keymeta::KeyMetadata;
use crate::module::ModuleAux;
use crate::value::{self, Value};

/// Options for reading a snapshot.
#[derive(Debug, Clone)]
pub struct ParserBuilder {
    verify_checksum: bool,
    allow_empty_keys: bool,
}

impl Default for ParserBuilder {
    fn default() -> Self {
        ParserBuilder {
            verify_checksum: true,
            allow_empty_keys: false,
        }
    }
}

impl ParserBuilder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Verify the CRC64 trailer when the file has one that is not zero (default: true).
    pub fn verify_checksum(&mut self, yes: bool) -> &mut Self {
        self.verify_checksum = yes;
        self
    }

    /// Whether the CRC64 trailer will be verified.
    pub fn verifies_checksum(&self) -> bool {
        self.verify_checksum
    }

    /// Yield keys whose collection is empty instead of failing on them (default: false).
    ///
    /// No server writes an empty list, set, sorted set or hash; files holding them come from
    /// old bugs, and servers skip (7.0+) or mis-load (6.0) such keys.
    pub fn allow_empty_keys(&mut self, yes: bool) -> &mut Self {
        self.allow_empty_keys = yes;
        self
    }

    /// Reads the header of `data` and returns a parser positioned after it.
    pub fn parse<'data>(&self, data: &'data [u8]) -> Result<Parser<'data>, Error> {
        let version = header(data)?;
        Ok(Parser {
            data,
            rest: data.get(9..).unwrap_or(&[]),
            version,
            db: 0,
            verify_checksum: self.verify_checksum,
            allow_empty_keys: self.allow_empty_keys,
            state: State::Header,
            meta: KeyMeta::default(),
            item_start: 0,
        })
    }
}

impl ParserBuilder {
    /// A parser that starts at `offset` of `data` as if every item before it had been
    /// read: no header item, and keys before the next SELECTDB get `db`. `offset` must be
    /// an item boundary where no key opcode is pending ([`Parser::at_boundary`] of a
    /// parser there, or a guess from [`resume_point`] to be confirmed that way): from such
    /// a boundary the items are exactly those a parser from the start reads.
    pub fn resume<'data>(
        &self,
        data: &'data [u8],
        offset: u64,
        db: u64,
    ) -> Result<Parser<'data>, Error> {
        let mut p = self.parse(data)?;
        p.rest = usize::try_from(offset)
            .ok()
            .and_then(|o| data.get(o..))
            .unwrap_or(&[]);
        p.db = db;
        p.state = State::Body;
        Ok(p)
    }
}

/// Items a guessed resume point must read without error before [`resume_point`] takes it.
const CONFIRM_ITEMS: usize = 32;
/// How far past `from` [`resume_point`] looks.
const RESUME_WINDOW: usize = 1 << 20;

/// The first offset at or after `from` where a resumed parser reads `CONFIRM_ITEMS`
/// items (or all up to a well-formed end) without error, advanced to the boundary after
/// the last of them. A guess: the members of a collection can read as items too, but such
/// a misreading mostly falls in step with the real items within a few, so the boundary
/// after many items is the one a parser from the start reaches. Whoever uses the guess
/// must confirm it so. `None` when nothing in the next MiB reads.
pub fn resume_point(builder: &ParserBuilder, data: &[u8], from: u64) -> Option<u64> {
    let mut unchecked = builder.clone();
    unchecked.verify_checksum(false);
    let from = usize::try_from(from).ok()?;
    let end = data.len().min(from.saturating_add(RESUME_WINDOW));
    (from..end).find_map(|at| {
        let mut p = unchecked.resume(data, at as u64, 0).ok()?;
        let mut boundary = None;
        for _ in 0..CONFIRM_ITEMS {
            match p.next() {
                // An end that is the file's end, nothing after its trailer.
                Some(Ok(Item::Eof(e))) => return boundary.filter(|_| e.trailing == 0),
                Some(Ok(_)) => {
                    if p.at_boundary() {
                        boundary = Some(p.offset());
                    }
                }
                Some(Err(_)) | None => return None,
            }
        }
        boundary
    })
}

/// Reads and checks the 9-byte header.
pub fn header(data: &[u8]) -> Result<Version, Error> {
    let bad = |detail: String| Error::new(ErrorKind::BadMagic, "header", 0, detail);
    let Some(head) = data.get(..9) else {
        return Err(Error::new(
            ErrorKind::Truncated,
            "header",
            0,
            format!("needs 9 bytes, the input has {}", data.len()),
        ));
    };
    let (magic, digits) = if let Some(d) = head.strip_prefix(b"REDIS") {
        (Magic::Redis, d)
    } else if let Some(d) = head.strip_prefix(b"VALKEY") {
        (Magic::Valkey, d)
    } else {
        return Err(bad(format!(
            "starts with {:?}, not REDIS or VALKEY",
            String::from_utf8_lossy(head)
        )));
    };
    let number = std::str::from_utf8(digits)
        .ok()
        .filter(|d| d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse::<u32>().ok())
        .ok_or_else(|| bad(format!("version digits {digits:?} are not a number")))?;
    let supported = match magic {
        Magic::Redis => (1..=MAX_REDIS_VERSION).contains(&number),
        Magic::Valkey => VALKEY_VERSIONS.contains(&number),
    };
    if !supported {
        return Err(Error::new(
            ErrorKind::UnsupportedVersion,
            "header",
            5,
            format!(
                "{}{:0width$} is newer than this parser reads (REDIS 1-{MAX_REDIS_VERSION}, \
                 VALKEY {}-{})",
                magic.as_str(),
                number,
                VALKEY_VERSIONS.start(),
                VALKEY_VERSIONS.end(),
                width = digits.len(),
            ),
        ));
    }
    Ok(Version { magic, number })
}

/// One thing found in a snapshot.
#[derive(Debug, Clone)]
pub enum Item<'data> {
    /// Always first.
    Header(Version),
    /// A file-level key/value annotation (`redis-ver`, `ctime`, Valkey `slot-info`, ...).
    Aux(Aux<'data>),
    ModuleAux(ModuleAux<'data>),
    Function(Function<'data>),
    /// Following keys belong to this database.
    SelectDb(u64),
    /// Size hints for the current database.
    ResizeDb {
        db_size: u64,
        expires_size: u64,
    },
    /// Redis 7.4 cluster slot sizes (opcode 244).
    SlotInfo {
        slot: u64,
        keys: u64,
        expires: u64,
    },
    /// Valkey 9 in-progress slot import (opcode 243 under `VALKEY` magic).
    SlotImport(SlotImport<'data>),
    /// Redis 8.6 module key metadata (opcode 243 under `REDIS` magic, RDB 13+): belongs
    /// to the next [`Item::Key`] (a server writes it right before that key's type byte).
    KeyMeta(KeyMetadata<'data>),
    /// A key and its value.
    Key(Entry<'data>),
    /// The end; always last when the file is whole.
    Eof(Eof),
}

/// An AUX field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aux<'data> {
    pub key: Cow<'data, [u8]>,
    pub value: Cow<'data, [u8]>,
}

/// A function library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Function<'data> {
    /// FUNCTION2: the whole library source, `#!lua name=...`.
    Library { code: Cow<'data, [u8]> },
    /// The Redis 7.0 release-candidate form.
    PreGa {
        name: Cow<'data, [u8]>,
        engine: Cow<'data, [u8]>,
        description: Option<Cow<'data, [u8]>>,
        code: Cow<'data, [u8]>,
    },
}

/// A Valkey slot import job recorded in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotImport<'data> {
    pub name: Cow<'data, [u8]>,
    /// Inclusive slot ranges.
    pub ranges: Vec<(u64, u64)>,
}

/// The checksum outcome at the end of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// The trailer matched the bytes.
    Verified(u64),
    /// The file was written with checksums off (trailer is 0).
    Disabled,
    /// Present but not checked, as asked.
    Unchecked(u64),
    /// The version predates checksums (RDB < 5).
    Absent,
}

/// The end of the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Eof {
    pub checksum: Checksum,
    /// Offset of the EOF opcode.
    pub offset: u64,
    /// Bytes after the trailer (a whole file has none).
    pub trailing: u64,
}

/// A key with its value and per-key metadata.
#[derive(Debug, Clone)]
pub struct Entry<'data> {
    pub db: u64,
    pub key: Cow<'data, [u8]>,
    /// Absolute Unix time in ms (EXPIRETIME seconds are scaled).
    pub expire_ms: Option<i64>,
    /// LRU idle seconds.
    pub idle_s: Option<u64>,
    /// LFU counter.
    pub freq: Option<u8>,
    pub value: Value<'data>,
    /// The value's type byte.
    pub type_id: u8,
    /// The key string as stored, including its length prefix.
    pub raw_key: &'data [u8],
    /// The value as stored, after the key, for copying it through unchanged.
    pub raw_value: &'data [u8],
    /// Offset of the entry's first byte (its first opcode, or its type byte).
    pub offset: u64,
    /// Whether the bytes from `offset` include the key's EXPIRETIME/IDLE/FREQ opcodes;
    /// false when other items came between them and the type byte, so copying the key
    /// means writing those opcodes anew.
    pub opcodes_in_span: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body,
    Done,
}

/// An iterator of [`Item`]s over a snapshot; fuses after the first error or after EOF.
#[derive(Debug, Clone)]
pub struct Parser<'data> {
    data: &'data [u8],
    rest: &'data [u8],
    version: Version,
    db: u64,
    verify_checksum: bool,
    allow_empty_keys: bool,
    state: State,
    meta: KeyMeta,
    item_start: usize,
}

/// Per-key opcodes seen before the type byte.
#[derive(Debug, Clone, Default)]
struct KeyMeta {
    expire_ms: Option<i64>,
    idle_s: Option<u64>,
    freq: Option<u8>,
    start: Option<usize>,
    /// Another item (an AUX, say) came between these opcodes and the key's type byte.
    interrupted: bool,
}

impl<'data> Parser<'data> {
    /// Parses `data` with default options (checksum verified).
    pub fn new(data: &'data [u8]) -> Result<Self, Error> {
        ParserBuilder::default().parse(data)
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The offset of the next byte to read.
    pub fn offset(&self) -> u64 {
        (self.data.len() - self.rest.len()) as u64
    }

    /// Where the bytes of the item last returned begin: its opcode, or for a key its first
    /// opcode (EXPIRETIME_MS, IDLE, FREQ) when those directly precede it, else its type
    /// byte. Up to [`Parser::offset`], that span copies the item on its own.
    pub fn item_start(&self) -> u64 {
        self.item_start as u64
    }

    /// Whether the next byte begins an item and no key opcode (EXPIRETIME, IDLE, FREQ)
    /// read so far waits for its key: a parser resumed here reads what this one reads.
    pub fn at_boundary(&self) -> bool {
        self.state == State::Body && self.meta.start.is_none()
    }

    /// The database of the keys read now (the last SELECTDB's).
    pub fn db(&self) -> u64 {
        self.db
    }

    /// The whole input.
    pub fn data(&self) -> &'data [u8] {
        self.data
    }

    fn locate(&self, f: Fail) -> Error {
        f.locate(self.data, 0)
    }

    fn next_item(&mut self) -> Result<Item<'data>, Error> {
        // Opcodes before a key may be split from it by other items (a loader accepts them
        // in any order), so what they set waits in `self.meta` for the key.
        let mut meta = std::mem::take(&mut self.meta);
        loop {
            let at = self.rest;
            let pos = self.data.len() - at.len();
            let (rest, op) = byte(at).map_err(|e| self.locate(unnom(e)))?;
            let r = match op {
                opcode::EOF => return self.eof(pos, rest),
                opcode::SELECTDB => len(rest).map(|(r, db)| {
                    self.db = db;
                    (r, Some(Item::SelectDb(db)))
                }),
                opcode::RESIZEDB => resize_db(rest).map(|(r, it)| (r, Some(it))),
                opcode::AUX => aux(rest).map(|(r, a)| (r, Some(Item::Aux(a)))),
                opcode::EXPIRETIME_MS => crate::input::ms_time(rest).map(|(r, t)| {
                    meta.expire_ms = Some(t);
                    meta.start.get_or_insert(pos);
                    (r, None)
                }),
                opcode::EXPIRETIME => bytes(rest, 4, "expire time").map(|(r, b)| {
                    let secs = i32::from_le_bytes(b.try_into().unwrap_or([0; 4]));
                    meta.expire_ms = Some(i64::from(secs) * 1000);
                    meta.start.get_or_insert(pos);
                    (r, None)
                }),
                opcode::IDLE => len(rest).map(|(r, idle)| {
                    meta.idle_s = Some(idle);
                    meta.start.get_or_insert(pos);
                    (r, None)
                }),
                opcode::FREQ => byte(rest).map(|(r, freq)| {
                    meta.freq = Some(freq);
                    meta.start.get_or_insert(pos);
                    (r, None)
                }),
                opcode::MODULE_AUX if self.version.number >= 9 => {
                    ModuleAux::parse(rest).map(|(r, m)| (r, Some(Item::ModuleAux(m))))
                }
                opcode::FUNCTION2 if self.version.number >= 10 => {
                    string(rest).and_then(|(r, s)| {
                        let code = s.decode().map_err(nom::Err::Error)?;
                        Ok((r, Some(Item::Function(Function::Library { code }))))
                    })
                }
                opcode::FUNCTION_PRE_GA if self.version.number >= 10 => {
                    function_pre_ga(rest).map(|(r, f)| (r, Some(Item::Function(f))))
                }
                opcode::SLOT_INFO if self.version.number >= 12 => {
                    slot_info(rest).map(|(r, it)| (r, Some(it)))
                }
                opcode::SLOT_IMPORT if self.version.magic == Magic::Valkey => {
                    slot_import(rest).map(|(r, it)| (r, Some(Item::SlotImport(it))))
                }
                opcode::KEY_META if self.version.has_key_meta() => {
                    // Like EXPIRETIME, a key opcode: until the key is read the parser is
                    // not at a boundary, and the key's own span starts at its type byte.
                    meta.start.get_or_insert(pos);
                    KeyMetadata::parse(rest).map(|(r, m)| (r, Some(Item::KeyMeta(m))))
                }
                type_byte => {
                    // A key's own bytes start at its first opcode, unless another item
                    // came between them; then only from its type byte.
                    let start = match meta.start {
                        Some(s) if !meta.interrupted => s,
                        _ => pos,
                    };
                    self.item_start = start;
                    return self.entry(type_byte, rest, meta, start).map(Item::Key);
                }
            };
            match r {
                Ok((r, item)) => {
                    self.rest = r;
                    if let Some(item) = item {
                        self.item_start = pos;
                        if meta.start.is_some() {
                            meta.interrupted = true;
                            self.meta = meta;
                        }
                        return Ok(item);
                    }
                }
                Err(e) => return Err(self.locate(unnom(e))),
            }
        }
    }

    fn entry(
        &mut self,
        type_id: u8,
        after_type: &'data [u8],
        meta: KeyMeta,
        start: usize,
    ) -> Result<Entry<'data>, Error> {
        if let Some(detail) = value::unknown_type(type_id, self.version) {
            // Before the key: what follows an unknown type byte may not be a key at all.
            let at = (self.data.len() - after_type.len()).saturating_sub(1) as u64;
            return Err(value::unknown_type_error(
                type_id, at, detail, after_type, self.db,
            ));
        }
        let (after_key, stored_key) = string(after_type).map_err(|e| self.locate(unnom(e)))?;
        let key = stored_key.decode().map_err(|f| self.locate(f))?;
        let ctx = Ctx {
            file: self.data,
            db: self.db,
            key: stored_key,
        };
        let raw_key = after_type
            .get(..after_type.len() - after_key.len())
            .unwrap_or(&[]);
        let (rest, value) = value::parse(after_key, type_id, self.version, ctx)
            .map_err(|e| self.locate(unnom(e)).in_key(self.db, &key))?;
        let raw_value = after_key.get(..after_key.len() - rest.len()).unwrap_or(&[]);
        if !self.allow_empty_keys && value.is_empty_collection() {
            return Err(Error::new(
                ErrorKind::Corrupt,
                value.type_name(),
                start as u64,
                "empty collection: servers skip such keys on load \
                 (ParserBuilder::allow_empty_keys, or --allow-empty-keys, reads them)"
                    .into(),
            )
            .in_key(self.db, &key));
        }
        self.rest = rest;
        Ok(Entry {
            db: self.db,
            key,
            expire_ms: meta.expire_ms,
            idle_s: meta.idle_s,
            freq: meta.freq,
            value,
            type_id,
            raw_key,
            raw_value,
            offset: start as u64,
            opcodes_in_span: meta.start.is_none() || !meta.interrupted,
        })
    }

    fn eof(&mut self, pos: usize, rest: &'data [u8]) -> Result<Item<'data>, Error> {
        self.item_start = pos;
        let mut trailing = rest;
        let checksum = if self.version.has_checksum() {
            let (r, stored) = u64_le(rest).map_err(|_| {
                Error::new(
                    ErrorKind::Truncated,
                    "checksum",
                    pos as u64 + 1,
                    format!("the 8-byte CRC64 trailer has only {} bytes", rest.len()),
                )
            })?;
            trailing = r;
            if stored == 0 {
                Checksum::Disabled
            } else if self.verify_checksum {
                let covered = self.data.get(..=pos).unwrap_or(&[]);
                let actual = crate::crc64(0, covered);
                if actual != stored {
                    return Err(Error::new(
                        ErrorKind::ChecksumMismatch,
                        "file",
                        pos as u64 + 1,
                        format!("trailer says {stored:016x}, the bytes give {actual:016x}"),
                    ));
                }
                Checksum::Verified(stored)
            } else {
                Checksum::Unchecked(stored)
            }
        } else {
            Checksum::Absent
        };
        self.rest = &[];
        Ok(Item::Eof(Eof {
            checksum,
            offset: pos as u64,
            trailing: trailing.len() as u64,
        }))
    }
}

impl<'data> Iterator for Parser<'data> {
    type Item = Result<Item<'data>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.state {
            State::Done => None,
            State::Header => {
                self.state = State::Body;
                Some(Ok(Item::Header(self.version)))
            }
            State::Body => {
                let item = self.next_item();
                if matches!(item, Err(_) | Ok(Item::Eof(_))) {
                    self.state = State::Done;
                }
                Some(item)
            }
        }
    }
}

impl std::iter::FusedIterator for Parser<'_> {}

fn decoded(i: &[u8]) -> PResult<'_, Cow<'_, [u8]>> {
    let (rest, s) = string(i)?;
    let d = s.decode().map_err(nom::Err::Error)?;
    Ok((rest, d))
}

fn aux(i: &[u8]) -> PResult<'_, Aux<'_>> {
    let (rest, key) = decoded(i)?;
    let (rest, value) = decoded(rest)?;
    Ok((rest, Aux { key, value }))
}

fn resize_db(i: &[u8]) -> PResult<'_, Item<'_>> {
    let (rest, db_size) = len(i)?;
    let (rest, expires_size) = len(rest)?;
    Ok((
        rest,
        Item::ResizeDb {
            db_size,
            expires_size,
        },
    ))
}

fn slot_info(i: &[u8]) -> PResult<'_, Item<'_>> {
    let (rest, slot) = len(i)?;
    let (rest, keys) = len(rest)?;
    let (rest, expires) = len(rest)?;
    Ok((
        rest,
        Item::SlotInfo {
            slot,
            keys,
            expires,
        },
    ))
}

fn slot_import(i: &[u8]) -> PResult<'_, SlotImport<'_>> {
    let (rest, name) = decoded(i)?;
    let (mut rest, n) = crate::input::count(rest, 2, "slot import")?;
    let mut ranges = Vec::with_capacity(n.min(16384) as usize);
    for _ in 0..n {
        let (r, start) = len(rest)?;
        let (r, end) = len(r)?;
        ranges.push((start, end));
        rest = r;
    }
    Ok((rest, SlotImport { name, ranges }))
}

fn function_pre_ga(i: &[u8]) -> PResult<'_, Function<'_>> {
    let (rest, name) = decoded(i)?;
    let (rest, engine) = decoded(rest)?;
    let (rest, has_desc) = len(rest)?;
    let (rest, description) = if has_desc != 0 {
        let (r, d) = decoded(rest)?;
        (r, Some(d))
    } else {
        (rest, None)
    };
    let (rest, code) = decoded(rest)?;
    Ok((
        rest,
        Function::PreGa {
            name,
            engine,
            description,
            code,
        },
    ))
}
