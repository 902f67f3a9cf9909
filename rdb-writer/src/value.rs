//! Value encoders: the bytes that follow the key, from plain Rust data. The twin of the
//! parser's `value.rs`; pass the result to [`crate::Writer::key_value`] with the type id
//! each function names.
//!
//! ```text
//! string   0    string
//! list     1    len n, n x string
//!          14   len nodes, nodes x string -> ziplist
//!          18   len nodes, nodes x (len container (1 plain | 2 packed), string)
//! set      2    len n, n x string      11 string -> intset      20 string -> listpack
//! zset     3    len n, n x (string, ascii double)     5 same with binary doubles
//!          12   string -> ziplist      17 string -> listpack   (member, score pairs)
//! hash     4    len n, n x (string, string)   13 string -> ziplist   16 string -> listpack
//! ```
//! Blobs and elements are written as RDB strings under `compression`, as a server does.
//! Nothing here checks for duplicates or emptiness: servers refuse duplicate members
//! and skip empty collections, so callers must not pass either.

use rdb_parser::format::quicklist_container;

use crate::encode::{self, Compression};
use crate::error::Error;
use crate::intset;
use crate::listpack::{self, ListpackBuilder};
use crate::ziplist::ZiplistBuilder;

/// The size limit of a list node, as a server with `list-max-listpack-size -2` (the
/// default) keeps it; a larger element gets a node of its own.
pub const LIST_NODE_MAX_BYTES: usize = 8192;

/// A string value (type 0).
pub fn string(value: &[u8], compression: Compression) -> Vec<u8> {
    let mut out = Vec::with_capacity(value.len() + 9);
    encode::string(&mut out, value, compression);
    out
}

/// A list as a quicklist of listpacks (type 18, Redis 7.0+). Nodes stay under 8 KiB;
/// an element longer than 8 KiB becomes a PLAIN node, as Redis 7.4 writes it.
pub fn list_quicklist2<T: AsRef<[u8]>>(
    items: &[T],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let mut body = Vec::new();
    let mut nodes = 0u64;
    let mut node = ListpackBuilder::new();
    for item in items {
        let item = item.as_ref();
        if item.len() > LIST_NODE_MAX_BYTES {
            packed_node(&mut body, &mut nodes, &mut node, compression)?;
            encode::length(&mut body, quicklist_container::PLAIN);
            encode::string(&mut body, item, compression);
            nodes += 1;
            continue;
        }
        if !node.is_empty() && node.size() + listpack::entry_size(item) > LIST_NODE_MAX_BYTES {
            packed_node(&mut body, &mut nodes, &mut node, compression)?;
        }
        node.push(item);
    }
    packed_node(&mut body, &mut nodes, &mut node, compression)?;
    Ok(counted(nodes, body))
}

/// Ends the current listpack node, if it holds anything.
fn packed_node(
    body: &mut Vec<u8>,
    nodes: &mut u64,
    node: &mut ListpackBuilder,
    compression: Compression,
) -> Result<(), Error> {
    if node.is_empty() {
        return Ok(());
    }
    let blob = std::mem::take(node).finish()?;
    encode::length(body, quicklist_container::PACKED);
    encode::string(body, &blob, compression);
    *nodes += 1;
    Ok(())
}

/// A list as type 14 (quicklist v1), built element by element: ziplist nodes of at most
/// 8 KiB, an element too big for that alone in its node.
/// The largest RDB length encoding: 0x81 and a u64.
const COUNT_ROOM: usize = 9;

#[derive(Debug)]
pub struct QuicklistBuilder {
    body: Vec<u8>,
    nodes: u64,
    node: ZiplistBuilder,
    compression: Compression,
}

impl QuicklistBuilder {
    pub fn new(compression: Compression) -> Self {
        QuicklistBuilder {
            // Room for the node count, written in front by `finish` (at most 9 bytes).
            body: vec![0; COUNT_ROOM],
            nodes: 0,
            node: ZiplistBuilder::new(),
            compression,
        }
    }

    pub fn push(&mut self, item: &[u8]) -> Result<(), Error> {
        // The entry size is at most the element plus 5 prevlen and 5 encoding bytes.
        if !self.node.is_empty() && self.node.size() + item.len() + 10 > LIST_NODE_MAX_BYTES {
            self.flush()?;
        }
        self.node.push(item);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        let blob = std::mem::take(&mut self.node).finish()?;
        encode::string(&mut self.body, &blob, self.compression);
        self.nodes += 1;
        Ok(())
    }

    /// The value bytes: node count, then the nodes.
    pub fn finish(mut self) -> Result<Vec<u8>, Error> {
        if !self.node.is_empty() {
            self.flush()?;
        }
        // The count goes into the room left in front, and the unused part of the room is
        // removed in place: a second copy of a gigabyte list would double its memory.
        let mut count = Vec::with_capacity(COUNT_ROOM);
        encode::length(&mut count, self.nodes);
        let skip = COUNT_ROOM - count.len();
        if let Some(room) = self.body.get_mut(skip..COUNT_ROOM) {
            room.copy_from_slice(&count);
        }
        self.body.drain(..skip);
        Ok(self.body)
    }
}

/// A list as type 14 (quicklist v1): ziplist nodes of at most 8 KiB.
pub fn list_quicklist<T: AsRef<[u8]>>(
    items: &[T],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let mut b = QuicklistBuilder::new(compression);
    for item in items {
        b.push(item.as_ref())?;
    }
    b.finish()
}

/// A list as plain strings (type 1): every version reads it and re-packs it on load.
pub fn list_plain<T: AsRef<[u8]>>(items: &[T], compression: Compression) -> Vec<u8> {
    strings(items, compression)
}

/// A set of integers as an intset (type 11): sorted, deduplicated, narrowest width.
pub fn set_intset(members: &[i64], compression: Compression) -> Result<Vec<u8>, Error> {
    Ok(string(&intset::build(members)?, compression))
}

/// A set as one listpack (type 20, Redis 7.2+).
pub fn set_listpack<T: AsRef<[u8]>>(
    members: &[T],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let mut lp = ListpackBuilder::new();
    for m in members {
        lp.push(m.as_ref());
    }
    Ok(string(&lp.finish()?, compression))
}

/// A set as plain strings (type 2).
pub fn set_plain<T: AsRef<[u8]>>(members: &[T], compression: Compression) -> Vec<u8> {
    strings(members, compression)
}

/// A sorted set as one listpack of member, score entries (type 17, Redis 7.0+), sorted
/// by (score, member) as the server keeps it. Scores are written as [`encode::score_text`],
/// so integral ones become integer entries.
pub fn zset_listpack<T: AsRef<[u8]>>(
    members: &[(T, f64)],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let mut lp = ListpackBuilder::new();
    for (member, score) in by_score(members) {
        lp.push(member);
        lp.push(encode::score_text(score).as_bytes());
    }
    Ok(string(&lp.finish()?, compression))
}

/// A sorted set as one ziplist of member, score entries (type 12, up to Redis 6.2),
/// sorted by (score, member).
pub fn zset_ziplist<T: AsRef<[u8]>>(
    members: &[(T, f64)],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let mut zl = ZiplistBuilder::new();
    for (member, score) in by_score(members) {
        zl.push(member);
        zl.push(encode::score_text(score).as_bytes());
    }
    Ok(string(&zl.finish()?, compression))
}

/// A sorted set with binary scores (type 5, RDB 8+), highest score first as the server
/// writes it, so each insert on load lands at the head.
pub fn zset_2<T: AsRef<[u8]>>(members: &[(T, f64)], compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    encode::length(&mut out, members.len() as u64);
    for (member, score) in by_score(members).into_iter().rev() {
        encode::string(&mut out, member, compression);
        encode::binary_double(&mut out, score);
    }
    out
}

/// A sorted set with ASCII scores (type 3, what RDB 1-7 servers write), highest first.
pub fn zset_plain<T: AsRef<[u8]>>(members: &[(T, f64)], compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    encode::length(&mut out, members.len() as u64);
    for (member, score) in by_score(members).into_iter().rev() {
        encode::string(&mut out, member, compression);
        encode::ascii_double(&mut out, score);
    }
    out
}

/// Members ordered by (score, member). NaN sorts above +inf; servers refuse NaN scores,
/// so callers should not pass one.
fn by_score<T: AsRef<[u8]>>(members: &[(T, f64)]) -> Vec<(&[u8], f64)> {
    let mut sorted: Vec<(&[u8], f64)> = members.iter().map(|(m, s)| (m.as_ref(), *s)).collect();
    sorted.sort_by(|a, b| {
        score_key(a.1)
            .total_cmp(&score_key(b.1))
            .then_with(|| a.0.cmp(b.0))
    });
    sorted
}

/// The server orders -0 and 0 as one score, then by member.
fn score_key(s: f64) -> f64 {
    if s == 0.0 {
        0.0
    } else {
        s
    }
}

/// A hash as one listpack of field, value entries (type 16, Redis 7.0+).
pub fn hash_listpack<F: AsRef<[u8]>, V: AsRef<[u8]>>(
    fields: &[(F, V)],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let mut lp = ListpackBuilder::new();
    for (field, value) in fields {
        lp.push(field.as_ref());
        lp.push(value.as_ref());
    }
    Ok(string(&lp.finish()?, compression))
}

/// A hash as one ziplist of field, value entries (type 13, RDB 4 to Redis 6.2).
pub fn hash_ziplist<F: AsRef<[u8]>, V: AsRef<[u8]>>(
    fields: &[(F, V)],
    compression: Compression,
) -> Result<Vec<u8>, Error> {
    let mut zl = ZiplistBuilder::new();
    for (field, value) in fields {
        zl.push(field.as_ref());
        zl.push(value.as_ref());
    }
    Ok(string(&zl.finish()?, compression))
}

/// A hash as plain field, value strings (type 4).
pub fn hash_plain<F: AsRef<[u8]>, V: AsRef<[u8]>>(
    fields: &[(F, V)],
    compression: Compression,
) -> Vec<u8> {
    let mut out = Vec::new();
    encode::length(&mut out, fields.len() as u64);
    for (field, value) in fields {
        encode::string(&mut out, field.as_ref(), compression);
        encode::string(&mut out, value.as_ref(), compression);
    }
    out
}

/// `len n` then each item as a string.
fn strings<T: AsRef<[u8]>>(items: &[T], compression: Compression) -> Vec<u8> {
    let mut out = Vec::new();
    encode::length(&mut out, items.len() as u64);
    for item in items {
        encode::string(&mut out, item.as_ref(), compression);
    }
    out
}

/// `len n` followed by `body`.
fn counted(n: u64, body: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    encode::length(&mut out, n);
    out.extend_from_slice(&body);
    out
}

#[cfg(test)]
#[allow(clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn quicklist2_splits_nodes_and_plain_elements() -> Result<(), Error> {
        let small: Vec<Vec<u8>> = (0..2000)
            .map(|i| format!("element-{i:05}").into_bytes())
            .collect();
        let v = list_quicklist2(&small, Compression::None)?;
        // 2000 entries of 15 bytes (13 + 1 encoding + 1 backlen) need 4 nodes of <= 8 KiB.
        assert_eq!(v[0], 4);
        assert_eq!(v[1], quicklist_container::PACKED as u8);

        let big = vec![b'x'; LIST_NODE_MAX_BYTES + 1];
        let items: Vec<&[u8]> = vec![b"a", &big, b"b"];
        let v = list_quicklist2(&items, Compression::None)?;
        assert_eq!(v[0], 3);
        // Second node: container 1, then the element as a plain string.
        let second = 1 + 1 + 1 + 10;
        assert_eq!(v[second], quicklist_container::PLAIN as u8);
        assert_eq!(&v[second + 1..second + 3], [0x60, 0x01]);
        Ok(())
    }

    #[test]
    fn zset_orders() {
        let members = [
            (b"b".to_vec(), 1.0),
            (b"a".to_vec(), 1.0),
            (b"c".to_vec(), -2.5),
        ];
        let got: Vec<_> = by_score(&members)
            .into_iter()
            .map(|(m, _)| m.to_vec())
            .collect();
        assert_eq!(got, [b"c".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        let z2 = zset_2(&members, Compression::None);
        // Highest first: "b" (1.0), then "a", then "c".
        assert_eq!(&z2[..3], [3, 1, b'b']);
    }

    #[test]
    fn encoded_collections_are_rdb_strings() -> Result<(), Error> {
        // A small blob is a plain string: a length byte, then the ziplist.
        let zl = hash_ziplist(&[(b"f", b"v")], Compression::Lzf)?;
        assert_eq!(zl[0] as usize, zl.len() - 1);
        let is = set_intset(&[1, 2, 3], Compression::Lzf)?;
        assert_eq!(is, [14, 2, 0, 0, 0, 3, 0, 0, 0, 1, 0, 2, 0, 3, 0]);
        Ok(())
    }
}
