//! The biggest keys: bounded "N largest" lists whose order, and whichever tied keys make
//! them, do not depend on the order of the file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rdb_pipeline::UNKNOWN_DB;

use super::collect::KeyFacts;

/// The most bytes of a key's name a top list keeps, so that a list is bounded however
/// long the names in the file are (an LZF-compressed name of 100 MB takes about 1 MB of
/// file): 64 KiB, less when `--top` is large (the names of one list then take at most
/// 16 MiB), but never under 1 KiB.
pub fn top_key_prefix(top: usize) -> usize {
    ((16 << 20) / top.max(1)).clamp(1 << 10, 64 << 10)
}

/// One of the biggest keys. Ordered by rank, and among equal ranks the lower (db, key)
/// is the bigger, so which tied keys make the list, and their order, do not depend on
/// the order of the file. A shortened name orders by its prefix, then its full length,
/// then its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopKey {
    /// The ranking value (bytes, elements or memory).
    pub rank: u64,
    pub db: u64,
    /// The key's name, or its first [`top_key_prefix`] bytes when it is longer.
    pub key: Vec<u8>,
    /// The full name's length.
    pub key_len: u64,
    /// XXH3-128 of the full name, kept for a shortened one only.
    pub key_digest: Option<u128>,
    pub type_name: &'static str,
    pub encoding: &'static str,
    pub bytes: u64,
    pub elements: u64,
    pub memory: u64,
}

/// How a top list compares keys: rank, then (db, name prefix, length, digest) reversed.
type TopOrder<'a> = (u64, Reverse<(u64, &'a [u8], u64, Option<u128>)>);

impl TopKey {
    fn order(&self) -> TopOrder<'_> {
        (
            self.rank,
            Reverse((self.db, self.key.as_slice(), self.key_len, self.key_digest)),
        )
    }

    /// Whether `key` holds only the start of the name.
    pub fn shortened(&self) -> bool {
        self.key_digest.is_some()
    }
}

/// The digest a top list keeps for a name longer than its prefix.
pub(crate) fn key_digest(key: &[u8], prefix: usize) -> Option<u128> {
    (key.len() > prefix).then(|| xxhash_rust::xxh3::xxh3_128(key))
}

impl Ord for TopKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.order().cmp(&other.order())
    }
}

impl PartialOrd for TopKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// A bounded "N largest" set.
#[derive(Debug, Clone, Default)]
pub struct TopN {
    limit: usize,
    /// How much of a name is kept ([`top_key_prefix`] of `limit`).
    pub(crate) prefix: usize,
    heap: BinaryHeap<Reverse<TopKey>>,
}

impl TopN {
    pub(crate) fn new(limit: usize) -> Self {
        TopN {
            limit,
            prefix: top_key_prefix(limit),
            // --top can be anything up to usize::MAX: grow past a small start as needed.
            heap: BinaryHeap::with_capacity(limit.min(1024) + 1),
        }
    }

    /// `digest` is [`key_digest`] of `f.key`, computed once for the three lists.
    pub(crate) fn offer(&mut self, rank: u64, f: &KeyFacts<'_>, digest: Option<u128>) {
        if self.limit == 0 {
            return;
        }
        let prefix = f.key.get(..self.prefix).unwrap_or(&f.key);
        let key_len = f.key.len() as u64;
        let candidate = (rank, Reverse((f.db, prefix, key_len, digest)));
        if self.heap.len() >= self.limit
            && self.heap.peek().is_some_and(|m| m.0.order() >= candidate)
        {
            return;
        }
        self.heap.push(Reverse(TopKey {
            rank,
            db: f.db,
            key: prefix.to_vec(),
            key_len,
            key_digest: digest,
            type_name: f.type_name,
            encoding: f.encoding,
            bytes: f.bytes,
            elements: f.elements,
            memory: f.memory,
        }));
        if self.heap.len() > self.limit {
            self.heap.pop();
        }
    }

    /// Takes in the keys `later` kept: the N largest of both are the N largest of all.
    pub(crate) fn absorb(&mut self, later: TopN, unknown_db_is: Option<u64>) {
        for Reverse(mut k) in later.heap {
            if let (Some(db), true) = (unknown_db_is, k.db == UNKNOWN_DB) {
                k.db = db;
            }
            self.heap.push(Reverse(k));
            if self.heap.len() > self.limit {
                self.heap.pop();
            }
        }
    }

    /// Biggest first.
    pub fn sorted(&self) -> Vec<TopKey> {
        let mut v: Vec<TopKey> = self.heap.iter().map(|r| r.0.clone()).collect();
        v.sort_by(|a, b| b.cmp(a));
        v
    }
}
