//! Key metadata (opcode 243 under `REDIS` magic, RDB 13+): module metadata classes
//! attached to the key that follows.
//!
//! ```text
//! KEY_META  len classes, classes x (4 bytes class spec, module opcode stream, len 0)
//! ```
//! The class spec is the writer's native 32-bit word (little-endian on every known
//! writer): the class's 4-character name, its version and flags. The value is written
//! by the module with the same opcodes as a module value, so it is walked, not decoded.

use crate::error::PResult;
use crate::input::{bytes, count};
use crate::module::opcode_stream;

/// One metadata class of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyMetaClass<'data> {
    /// The 32-bit class spec as stored.
    pub spec: u32,
    /// The module's opcode stream, including its closing EOF opcode.
    pub raw: &'data [u8],
}

/// The metadata classes written before one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyMetadata<'data> {
    pub classes: Vec<KeyMetaClass<'data>>,
    /// The whole item after the opcode byte, for copying it through.
    pub raw: &'data [u8],
}

impl<'data> KeyMetadata<'data> {
    pub(crate) fn parse(i: &'data [u8]) -> PResult<'data, Self> {
        // A class takes at least 5 bytes: its spec and an EOF opcode.
        let (mut rest, n) = count(i, 5, "key metadata classes")?;
        let mut classes = Vec::with_capacity(n.min(64) as usize);
        for _ in 0..n {
            let (r, spec) = bytes(rest, 4, "key metadata class spec")?;
            let spec = u32::from_le_bytes(spec.try_into().unwrap_or([0; 4]));
            let (r, raw) = opcode_stream(r)?;
            classes.push(KeyMetaClass { spec, raw });
            rest = r;
        }
        let raw = i.get(..i.len() - rest.len()).unwrap_or(&[]);
        Ok((rest, KeyMetadata { classes, raw }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_classes_walk_their_module_values() {
        // 2 classes: spec 0x01020304 with UINT 5 then EOF; spec 7 with STRING "ab" then EOF.
        let mut b = vec![2u8, 4, 3, 2, 1, 2, 5, 0];
        b.extend_from_slice(&[7, 0, 0, 0, 5, 2, b'a', b'b', 0]);
        b.push(0xAA); // the next item
        let Ok((rest, m)) = KeyMetadata::parse(&b) else {
            panic!("a well-formed KEY_META did not parse");
        };
        assert_eq!(rest, &[0xAA]);
        let classes: Vec<(u32, &[u8])> = m.classes.iter().map(|c| (c.spec, c.raw)).collect();
        let want: Vec<(u32, &[u8])> = vec![(0x0102_0304, &[2, 5, 0]), (7, &[5, 2, b'a', b'b', 0])];
        assert_eq!(classes, want);
        assert_eq!(m.raw.len(), b.len() - 1);
    }

    #[test]
    fn truncated_or_overcounted_classes_fail() {
        // A class without its EOF opcode.
        assert!(KeyMetadata::parse(&[1, 1, 0, 0, 0, 2, 5]).is_err());
        // Declares more classes than the bytes can hold.
        assert!(KeyMetadata::parse(&[9, 1, 0, 0, 0, 0]).is_err());
        // An unknown module opcode inside the value.
        assert!(KeyMetadata::parse(&[1, 1, 0, 0, 0, 9, 0]).is_err());
    }
}
