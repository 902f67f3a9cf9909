//! Lists for targets before Redis 7.0: a quicklist 2 (type 18, listpack or PLAIN nodes)
//! becomes a quicklist of ziplists (type 14), node for node.
//!
//! ```text
//! type 18   len nodes, nodes x (len container, string -> listpack | element)
//! type 14   len nodes, nodes x string -> ziplist        same count, same order
//! ```
//! Each node turns into one ziplist of the same elements: a PLAIN node into a ziplist of
//! its one element, an empty node into an empty ziplist (which loaders skip, as they skip
//! an empty listpack). The node count is therefore the source's, known before any node is
//! encoded, and nodes are independent: a large list is cut into pieces of whole nodes,
//! encoded on all cores, and written in order as it goes ([`write_quicklist`]), so
//! memory holds a window of pieces, never the value.
//!
//! A node is LZF-compressed only if the source stored it compressed: a server under
//! `rdbcompression yes` tries every node longer than 20 bytes and keeps it plain when LZF
//! does not pay, so the same elements as a ziplist would not pay either (and a file
//! written without compression stays without). Trying them anyway was most of the time of
//! LZF, the largest part of a conversion to RDB 9.

use std::io;

use rayon::prelude::*;
use rdb_parser::raw::QuicklistNodes;
use rdb_parser::{List, ListNodes, RdbString};

use super::ConvertError;
use crate::encode::{self, Compression};
use crate::ZiplistBuilder;

/// A list stored in more bytes than this is left to the writing thread, which encodes it in
/// pieces as it writes it ([`write_quicklist`]) instead of holding it re-encoded.
pub(super) const IN_PIECES_ABOVE: usize = 4 << 20;
/// Stored bytes of source nodes per piece (a node larger than this is a piece alone).
const PIECE_BYTES: usize = 256 << 10;
/// Pieces in flight per thread of the pool: enough that one slow piece (compressed
/// nodes) does not leave the other cores idle, few enough to keep memory small.
const PIECES_PER_THREAD: usize = 4;

/// Maps an element's decoding error to the conversion's error (naming the key).
type InKey<'a> = &'a (dyn Fn(rdb_parser::Error) -> ConvertError + Sync);

/// The whole value (node count, then the nodes), held in memory: for values returned
/// whole (RESTORE payloads, lists up to [`IN_PIECES_ABOVE`]). A large one is still
/// encoded in pieces on all cores.
pub(super) fn quicklist<'d>(
    list: &List<'d>,
    stored: Stored<'d>,
    c: Compression,
    in_key: InKey<'_>,
) -> Result<Vec<u8>, ConvertError> {
    let (mut nodes, count) = nodes_of(list, stored, c)?;
    let mut out = Vec::with_capacity(nodes.rest_bytes() + 9);
    encode::length(&mut out, count);
    let mut read = 0u64;
    if nodes.rest_bytes() <= PIECE_BYTES {
        while let Some((node, c)) = nodes.next() {
            node_to(&mut out, &node, c, in_key)?;
            read += 1;
        }
    } else {
        let pieces: Vec<Vec<(List<'_>, Compression)>> =
            std::iter::from_fn(|| next_piece(&mut nodes)).collect();
        read = pieces.iter().map(|p| p.len() as u64).sum();
        let encoded: Vec<Result<Vec<u8>, ConvertError>> = pieces
            .into_par_iter()
            .map(|p| encode_piece(&p, in_key))
            .collect();
        for piece in encoded {
            out.extend_from_slice(&piece?);
        }
    }
    all_read(read, count)?;
    Ok(out)
}

/// Writes the value (node count, then the nodes) through `write`, a window of pieces at
/// a time: the window's pieces are encoded on all cores, then written in order.
pub(super) fn write_quicklist<'d>(
    list: &List<'d>,
    stored: Stored<'d>,
    c: Compression,
    in_key: InKey<'_>,
    write: &mut dyn FnMut(&[u8]) -> io::Result<()>,
) -> Result<(), ConvertError> {
    let (mut nodes, count) = nodes_of(list, stored, c)?;
    let mut head = Vec::with_capacity(9);
    encode::length(&mut head, count);
    write(&head)?;
    let window = rayon::current_num_threads().max(1) * PIECES_PER_THREAD;
    let mut read = 0u64;
    loop {
        let pieces: Vec<Vec<(List<'_>, Compression)>> =
            (0..window).map_while(|_| next_piece(&mut nodes)).collect();
        if pieces.is_empty() {
            break;
        }
        read += pieces.iter().map(|p| p.len() as u64).sum::<u64>();
        let encoded: Vec<Result<Vec<u8>, ConvertError>> = pieces
            .into_par_iter()
            .map(|p| encode_piece(&p, in_key))
            .collect();
        for piece in encoded {
            write(&piece?)?;
        }
    }
    all_read(read, count)
}

/// The value as stored: its type and bytes, where each node's stored form is read.
pub(super) type Stored<'a> = (u8, &'a [u8]);

/// The list's nodes, each with the compression its ziplist gets, and their count.
struct Nodes<'d> {
    lists: ListNodes<'d>,
    stored: QuicklistNodes<'d>,
    c: Compression,
}

impl<'d> Nodes<'d> {
    fn rest_bytes(&self) -> usize {
        self.lists.rest_bytes()
    }

    fn next(&mut self) -> Option<(List<'d>, Compression)> {
        let list = self.lists.next()?;
        let plain = self
            .stored
            .next()
            .is_some_and(|n| !matches!(n.data, RdbString::Lzf { .. }));
        Some((list, if plain { Compression::None } else { self.c }))
    }
}

fn nodes_of<'d>(
    list: &List<'d>,
    (type_id, raw): Stored<'d>,
    c: Compression,
) -> Result<(Nodes<'d>, u64), ConvertError> {
    match (
        list.nodes(),
        list.node_count(),
        QuicklistNodes::new(type_id, raw),
    ) {
        (Some(lists), Some(count), Some(stored)) => Ok((Nodes { lists, stored, c }, count)),
        _ => Err(ConvertError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "a list without quicklist nodes reached the node encoder",
        ))),
    }
}

/// The parse checked every node's extent; a node that could not be read again would
/// leave the written count wrong, so it stops the conversion.
fn all_read(read: u64, count: u64) -> Result<(), ConvertError> {
    if read == count {
        return Ok(());
    }
    Err(ConvertError::Io(io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{read} of the list's {count} quicklist nodes could be read"),
    )))
}

/// The next nodes up to [`PIECE_BYTES`] of stored bytes (at least one); `None` at the end.
fn next_piece<'d>(nodes: &mut Nodes<'d>) -> Option<Vec<(List<'d>, Compression)>> {
    let start = nodes.rest_bytes();
    let mut piece = Vec::new();
    while start - nodes.rest_bytes() < PIECE_BYTES {
        match nodes.next() {
            Some(node) => piece.push(node),
            None => break,
        }
    }
    (!piece.is_empty()).then_some(piece)
}

fn encode_piece(
    piece: &[(List<'_>, Compression)],
    in_key: InKey<'_>,
) -> Result<Vec<u8>, ConvertError> {
    let mut out = Vec::with_capacity(PIECE_BYTES + PIECE_BYTES / 4);
    for (node, c) in piece {
        node_to(&mut out, node, *c, in_key)?;
    }
    Ok(out)
}

/// One node's elements as one ziplist, appended to `out` as an RDB string.
fn node_to(
    out: &mut Vec<u8>,
    node: &List<'_>,
    c: Compression,
    in_key: InKey<'_>,
) -> Result<(), ConvertError> {
    let mut zl = ZiplistBuilder::new();
    for e in node.iter() {
        zl.push_element(&e.map_err(in_key)?);
    }
    encode::string(out, &zl.finish()?, c);
    Ok(())
}
