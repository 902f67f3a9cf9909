//! Readers of a record's raw bytes, for checkers that look again at what the parser has
//! located (a value's `raw_value`, the bytes between items) instead of decoding it anew.
//!
//! The parser has checked every extent these read, so on bytes it produced they do not
//! fail; on other bytes they stop (`None`) rather than guess.

use crate::format::{quicklist_container, type_id};
use crate::string::RdbString;

/// The length a loader reads as its error marker (`RDB_LENERR`): a length field holding
/// it (`0x81` and eight `0xFF`) stops Redis and Valkey where they compare against it
/// (SELECTDB, RESIZEDB, IDLE).
pub const LENGTH_ERROR_MARKER: u64 = u64::MAX;

/// One RDB length prefix (not a string encoding) at the start of `bytes`: the length and
/// the bytes after it.
pub fn length(bytes: &[u8]) -> Option<(u64, &[u8])> {
    crate::input::len(bytes).ok().map(|(rest, n)| (n, rest))
}

/// One quicklist node as stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuicklistNode<'data> {
    /// [`quicklist_container::PACKED`] (a ziplist or listpack of elements) or
    /// [`quicklist_container::PLAIN`] (one element, quicklist 2 only).
    pub container: u64,
    /// The node's string: the packed blob, or the plain element.
    pub data: RdbString<'data>,
}

impl QuicklistNode<'_> {
    /// A packed node holding no element: a ziplist or listpack with nothing between its
    /// header and its end byte. `None` when that cannot be told without decompressing
    /// (an LZF node; servers never compress one that small).
    pub fn is_empty_packed(&self, v2: bool) -> Option<bool> {
        if self.container != quicklist_container::PACKED {
            return Some(false);
        }
        // A listpack's 6-byte header and its end byte; a ziplist's 10 and 1.
        let empty = if v2 { 7 } else { 11 };
        match self.data {
            RdbString::Raw(b) => Some(b.len() == empty),
            RdbString::Int(_) => Some(false),
            RdbString::Lzf { .. } => None,
        }
    }
}

/// The nodes of a quicklist value, in order.
#[derive(Debug, Clone)]
pub struct QuicklistNodes<'data> {
    rest: &'data [u8],
    left: u64,
    declared: u64,
    v2: bool,
}

impl<'data> QuicklistNodes<'data> {
    /// The nodes of a value of type `type_id` stored as `raw_value`; `None` when the type
    /// is not a quicklist or the node count cannot be read.
    pub fn new(type_id: u8, raw_value: &'data [u8]) -> Option<Self> {
        let v2 = match type_id {
            type_id::LIST_QUICKLIST => false,
            type_id::LIST_QUICKLIST_2 => true,
            _ => return None,
        };
        let (declared, rest) = length(raw_value)?;
        Some(QuicklistNodes {
            rest,
            left: declared,
            declared,
            v2,
        })
    }

    /// The node count the value declares.
    pub fn declared(&self) -> u64 {
        self.declared
    }

    /// Whether nodes carry a container (quicklist 2, listpack nodes).
    pub fn is_v2(&self) -> bool {
        self.v2
    }
}

impl<'data> Iterator for QuicklistNodes<'data> {
    type Item = QuicklistNode<'data>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let mut container = quicklist_container::PACKED;
        let mut rest = self.rest;
        if self.v2 {
            (container, rest) = length(rest)?;
        }
        let Some((data, rest)) = RdbString::read(rest) else {
            // Fused: nothing after a node that cannot be read can be located.
            self.left = 0;
            return None;
        };
        self.rest = rest;
        self.left -= 1;
        Some(QuicklistNode { container, data })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_in_every_width() {
        assert_eq!(length(&[0x05, 9]), Some((5, &[9u8][..])));
        assert_eq!(length(&[0x41, 0x02]), Some((0x102, &[][..])));
        assert_eq!(length(&[0x80, 0, 1, 0, 0]), Some((0x10000, &[][..])));
        let mut marker = vec![0x81];
        marker.extend([0xFF; 8]);
        assert_eq!(length(&marker), Some((LENGTH_ERROR_MARKER, &[][..])));
        // A string encoding is not a length; a cut prefix is nothing.
        assert_eq!(length(&[0xC0, 1]), None);
        assert_eq!(length(&[0x80, 0, 1]), None);
        assert_eq!(length(&[]), None);
    }

    #[test]
    fn quicklist_nodes_in_order() {
        // Quicklist 2: a plain node "ab", an empty listpack, an empty plain node.
        let empty_lp = [7, 0, 0, 0, 0, 0, 0xFF];
        let mut raw = vec![3, 1, 2, b'a', b'b', 2, 7];
        raw.extend(empty_lp);
        raw.extend([1, 0]);
        let nodes = QuicklistNodes::new(type_id::LIST_QUICKLIST_2, &raw);
        let nodes: Vec<_> = nodes.into_iter().flatten().collect();
        assert_eq!(nodes.len(), 3);
        let shapes: Vec<_> = nodes
            .iter()
            .map(|n| (n.container, n.data.len(), n.is_empty_packed(true)))
            .collect();
        assert_eq!(
            shapes,
            vec![(1, 2, Some(false)), (2, 7, Some(true)), (1, 0, Some(false))]
        );
        // Cut short: the nodes that can be read, then nothing.
        let cut = QuicklistNodes::new(type_id::LIST_QUICKLIST_2, raw.get(..6).unwrap_or(&[]));
        assert_eq!(cut.map(Iterator::count), Some(1));
        assert!(QuicklistNodes::new(type_id::SET, &raw).is_none());
    }
}
