//! Module values (type 7) and module aux data (opcode 247).
//!
//! ```text
//! MODULE_2     len module_id | (len opcode, payload)* | len 0
//! MODULE_AUX   len module_id | len 2 | len when | (len opcode, payload)* | len 0
//! opcode       1 SINT len | 2 UINT len | 3 FLOAT 4 bytes | 4 DOUBLE 8 bytes | 5 STRING string
//! module_id    9 chars x 6 bits (first char highest) | 10-bit encoding version
//! ```
//! The value stays opaque: walking the opcodes finds where it ends without the module.
//! The one exception is the built-in `vectorset` type, which [`Module::vector_set`]
//! decodes (see [`crate::vectorset`]).

use crate::ctx::Ctx;
use crate::error::{Error, Fail, PResult};
use crate::format::module_opcode as op;
use crate::input::{bytes, fail, len, string};

const CHARSET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A module type id: its 9-character name and encoding version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ModuleId(pub u64);

impl ModuleId {
    /// The module type name, e.g. `ReJSON-RL`.
    pub fn name(self) -> String {
        let mut chars = [0u8; 9];
        let mut bits = self.0 >> 10;
        for slot in chars.iter_mut().rev() {
            *slot = CHARSET.get((bits & 63) as usize).copied().unwrap_or(b'?');
            bits >>= 6;
        }
        String::from_utf8_lossy(&chars).into_owned()
    }

    pub fn encver(self) -> u64 {
        self.0 & 1023
    }

    /// Builds an id from a 9-character name and encoding version (`None` if the name has
    /// characters outside the module charset or is not 9 long).
    pub fn from_name(name: &str, encver: u64) -> Option<Self> {
        if name.len() != 9 || encver > 1023 {
            return None;
        }
        let mut id = 0u64;
        for c in name.bytes() {
            let pos = CHARSET.iter().position(|&x| x == c)? as u64;
            id = id << 6 | pos;
        }
        Some(ModuleId(id << 10 | encver))
    }
}

/// A module value, undecoded.
#[derive(Debug, Clone, Copy)]
pub struct Module<'data> {
    pub id: ModuleId,
    /// The opcode stream, including the closing EOF opcode.
    pub raw: &'data [u8],
    ctx: Ctx<'data>,
}

impl<'data> Module<'data> {
    pub(crate) fn parse(i: &'data [u8], ctx: Ctx<'data>) -> PResult<'data, Self> {
        let (rest, id) = len(i)?;
        let (rest, raw) = opcode_stream(rest)?;
        Ok((
            rest,
            Module {
                id: ModuleId(id),
                raw,
                ctx,
            },
        ))
    }

    pub fn encoding_name(&self) -> &'static str {
        "module2"
    }

    /// Whether this is a vector set (`VADD`; the `vectorset` type built into Redis 8.0+).
    pub fn is_vector_set(&self) -> bool {
        crate::vectorset::is_vectorset_id(self.id.0)
    }

    /// The vector set this value holds, its header decoded (`None` for other module
    /// types, which stay opaque). Errors carry the byte offset, database and key.
    pub fn vector_set(&self) -> Option<Result<crate::VectorSet<'data>, Error>> {
        self.is_vector_set()
            .then(|| crate::VectorSet::parse(self.raw, self.id.encver(), self.ctx))
    }
}

/// Module aux data saved by a module before or after the keyspace.
#[derive(Debug, Clone, Copy)]
pub struct ModuleAux<'data> {
    pub id: ModuleId,
    /// 1 = before keys, 2 = after keys.
    pub when: u64,
    /// The opcode stream, including the closing EOF opcode.
    pub raw: &'data [u8],
}

impl<'data> ModuleAux<'data> {
    pub(crate) fn parse(i: &'data [u8]) -> PResult<'data, Self> {
        let (rest, id) = len(i)?;
        let (rest, when_opcode) = len(rest)?;
        if when_opcode != op::UINT {
            return fail(Fail::corrupt(
                i,
                "module aux",
                format!("expected the 'when' field as opcode 2, found {when_opcode}"),
            ));
        }
        let (rest, when) = len(rest)?;
        let (rest, raw) = opcode_stream(rest)?;
        Ok((
            rest,
            ModuleAux {
                id: ModuleId(id),
                when,
                raw,
            },
        ))
    }
}

/// Walks a module opcode stream to its EOF; returns the bytes it spans.
pub(crate) fn opcode_stream(i: &[u8]) -> PResult<'_, &[u8]> {
    let mut rest = i;
    loop {
        let at = rest;
        let (r, opcode) = len(rest)?;
        rest = match opcode {
            op::EOF => {
                let spanned = i.get(..i.len() - r.len()).unwrap_or(&[]);
                return Ok((r, spanned));
            }
            op::SINT | op::UINT => len(r)?.0,
            op::FLOAT => bytes(r, 4, "module float")?.0,
            op::DOUBLE => bytes(r, 8, "module double")?.0,
            op::STRING => string(r)?.0,
            other => {
                return fail(Fail::corrupt(
                    at,
                    "module value",
                    format!("unknown module opcode {other}"),
                ))
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_round_trip() {
        for name in ["ReJSON-RL", "MBbloom--", "TSDB-TYPE", "ft-index0"] {
            let id = ModuleId::from_name(name, 3);
            assert_eq!(
                id.map(|i| (i.name(), i.encver())),
                Some((name.to_string(), 3))
            );
        }
        assert_eq!(ModuleId::from_name("short", 0), None);
    }
}
