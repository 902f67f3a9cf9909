//! Format constants shared by the parser and the writer: every opcode, type id and
//! version the crate knows, each defined once.
//!
//! ```text
//! "REDIS" 4 digits | "VALKEY" 3 digits     magic + version
//! AUX* MODULE_AUX* FUNCTION*               file-level items
//! (SELECTDB RESIZEDB (opcodes* TYPE key value)*)*
//! EOF [CRC64 LE, v5+]
//! ```

/// Opcode bytes, read where a value type is expected.
pub mod opcode {
    /// Valkey 9 `SLOT_IMPORT` (under `VALKEY` magic): string name, len n, n x (len, len).
    pub const SLOT_IMPORT: u8 = 243;
    /// Redis 8.6 `KEY_META` (under `REDIS` magic, RDB 13+), before a key's type byte:
    /// len classes, classes x (4-byte class spec, module opcode stream ending in EOF).
    pub const KEY_META: u8 = 243;
    /// Redis 7.4 cluster slot sizes: len slot, len keys, len expires.
    pub const SLOT_INFO: u8 = 244;
    /// A function library: one string with the whole source.
    pub const FUNCTION2: u8 = 245;
    /// Redis 7.0 release candidates' function form.
    pub const FUNCTION_PRE_GA: u8 = 246;
    pub const MODULE_AUX: u8 = 247;
    pub const IDLE: u8 = 248;
    pub const FREQ: u8 = 249;
    pub const AUX: u8 = 250;
    pub const RESIZEDB: u8 = 251;
    pub const EXPIRETIME_MS: u8 = 252;
    pub const EXPIRETIME: u8 = 253;
    pub const SELECTDB: u8 = 254;
    pub const EOF: u8 = 255;
}

/// Value type ids.
pub mod type_id {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
    /// Redis 7.4 RCs `HASH_METADATA_PRE_GA`; Valkey 9 `HASH_2` under `VALKEY` magic.
    pub const HASH_METADATA_PRE_GA: u8 = 22;
    pub const HASH_2: u8 = 22;
    pub const HASH_LISTPACK_EX_PRE_GA: u8 = 23;
    pub const HASH_METADATA: u8 = 24;
    pub const HASH_LISTPACK_EX: u8 = 25;
    /// Redis 8.6 (RDB 13): type 21's layout followed by the idempotent-producer state.
    pub const STREAM_LISTPACKS_4: u8 = 26;
    // Defined in Redis' source after 8.6; no packaged server writes them, and this
    // crate does not read them (see `introduced_after_13`).
    pub const STREAM_LISTPACKS_5: u8 = 27;
    pub const ARRAY: u8 = 28;
    pub const HASH_TMPL_LP: u8 = 29;
    pub const HASH_TMPL_LP_REF: u8 = 30;
    pub const HASH_TMPL_ARRAY: u8 = 31;
    pub const HASH_TMPL_ARRAY_REF: u8 = 32;
    pub const GCRA: u8 = 33;

    /// What a type byte newer than RDB 13 is and where it comes from, for the error that
    /// stops on it; `None` for bytes no known Redis defines.
    pub fn introduced_after_13(type_byte: u8) -> Option<&'static str> {
        Some(match type_byte {
            STREAM_LISTPACKS_5 => "a stream with XNACK state (RDB 14, Redis 8.8)",
            ARRAY => "an ARRAY value (RDB 14, Redis 8.8)",
            HASH_TMPL_LP..=HASH_TMPL_ARRAY_REF => {
                "a hash template value (defined in Redis' source after RDB 13)"
            }
            GCRA => "a GCRA rate-limiter value (defined in Redis' source after RDB 13)",
            _ => return None,
        })
    }
}

/// Module opcode stream markers (MODULE_2 values, MODULE_AUX).
pub mod module_opcode {
    pub const EOF: u64 = 0;
    pub const SINT: u64 = 1;
    pub const UINT: u64 = 2;
    pub const FLOAT: u64 = 3;
    pub const DOUBLE: u64 = 4;
    pub const STRING: u64 = 5;
}

/// Special string encodings: the low 6 bits of a `11xxxxxx` length byte.
pub mod string_enc {
    pub const INT8: u8 = 0;
    pub const INT16: u8 = 1;
    pub const INT32: u8 = 2;
    pub const LZF: u8 = 3;
}

/// Quicklist v2 node containers.
pub mod quicklist_container {
    pub const PLAIN: u64 = 1;
    pub const PACKED: u64 = 2;
}

/// Stream entry flags in a node listpack.
pub mod stream_flag {
    pub const DELETED: i64 = 1;
    pub const SAMEFIELDS: i64 = 2;
}

/// The number of back-length bytes after a listpack entry of `len` bytes. The bounds are
/// the server's (`lpEncodeBacklen`), off-by-one included: 16383 takes 3 bytes.
pub const fn listpack_backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2_097_150 => 3,
        2_097_151..=268_435_454 => 4,
        _ => 5,
    }
}

/// The highest `REDIS` version this crate reads (Redis 8.6).
pub const MAX_REDIS_VERSION: u32 = 13;
/// The `VALKEY` versions this crate reads (Valkey 9.0).
pub const VALKEY_VERSIONS: std::ops::RangeInclusive<u32> = 80..=80;

/// The header's magic word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Magic {
    /// `REDIS` + 4 digits: every Redis release and Valkey up to 8.x.
    Redis,
    /// `VALKEY` + 3 digits: Valkey 9 and later.
    Valkey,
}

impl Magic {
    pub fn as_str(self) -> &'static str {
        match self {
            Magic::Redis => "REDIS",
            Magic::Valkey => "VALKEY",
        }
    }
}

/// Magic and version: together they decide what each type and opcode byte means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    pub magic: Magic,
    pub number: u32,
}

impl Version {
    pub const fn redis(number: u32) -> Self {
        Version {
            magic: Magic::Redis,
            number,
        }
    }

    pub const fn valkey(number: u32) -> Self {
        Version {
            magic: Magic::Valkey,
            number,
        }
    }

    /// The 9-byte header this version is written with.
    pub fn header(self) -> [u8; 9] {
        let text = match self.magic {
            Magic::Redis => format!("REDIS{:04}", self.number % 10_000),
            Magic::Valkey => format!("VALKEY{:03}", self.number % 1_000),
        };
        let mut out = [0u8; 9];
        out.copy_from_slice(text.as_bytes());
        out
    }

    /// Whether the file ends with a CRC64 trailer (RDB 5 and later).
    pub fn has_checksum(self) -> bool {
        self.magic == Magic::Valkey || self.number >= 5
    }

    /// Whether millisecond times are stored little-endian (RDB 9+) rather than host order.
    /// Every known writer ran little-endian, so both read the same here; kept for clarity.
    pub fn ms_times_little_endian(self) -> bool {
        self.magic == Magic::Valkey || self.number >= 9
    }

    /// Type 22 means Valkey's HASH_2 under `VALKEY` magic, Redis 7.4-rc metadata otherwise.
    pub fn is_valkey_format(self) -> bool {
        self.magic == Magic::Valkey
    }

    /// Opcode 243 is KEY_META here (Redis RDB 13+), not Valkey's SLOT_IMPORT.
    pub fn has_key_meta(self) -> bool {
        self.magic == Magic::Redis && self.number >= 13
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.magic {
            Magic::Redis => write!(f, "RDB {}", self.number),
            Magic::Valkey => write!(f, "VALKEY {}", self.number),
        }
    }
}
