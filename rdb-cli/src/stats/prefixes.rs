//! The key-prefix breakdown: a trie of key prefixes split at separator bytes, capped in
//! nodes and in children per node, whose joins are exact within those caps.

use super::collect::{BytesMap, KeyFacts, Totals};

/// The most trie nodes the prefix breakdown makes; a later new prefix counts at its parent.
pub const MAX_PREFIX_NODES: usize = 50_000;
/// The most children one prefix keeps; past it the prefix is collapsed into "prefix*"
/// (IDs in a middle segment would take all the nodes, and listing them says nothing).
pub const MAX_CHILDREN: usize = 1000;

/// A node of the prefix trie.
#[derive(Debug, Clone, Default)]
pub struct PrefixNode {
    /// The segment, separator included; "" for the root.
    pub segment: Vec<u8>,
    pub totals: Totals,
    pub children: BytesMap<usize>,
    /// Set once the prefix has more than [`MAX_CHILDREN`] distinct next segments (IDs,
    /// mostly): then it keeps no children, and this sums the keys that went on past it.
    /// Listing them says nothing; their sum does.
    pub collapsed: Option<Totals>,
}

/// Key prefixes split at separator bytes, up to a depth. A prefix of more than
/// [`MAX_CHILDREN`] next segments is collapsed into one "prefix*"; which prefixes are
/// collapsed, and every total, depend on the keys only, not on their order. At most
/// [`MAX_PREFIX_NODES`] nodes are ever made.
#[derive(Debug, Clone)]
pub struct PrefixTree {
    /// Node 0 is the root; children of a collapsed node stay here, unreachable.
    pub nodes: Vec<PrefixNode>,
    /// Keys summed under a collapsed prefix's "*".
    pub collapsed_keys: u64,
    /// Keys that met a new prefix once the trie had made [`MAX_PREFIX_NODES`] nodes:
    /// they are counted up to its parent only.
    pub overflowed: u64,
    /// Nodes made by the sequence of adds this trie stands for (joined tries: the sum of
    /// theirs, at least what one sequence would have made).
    made: usize,
}

impl PrefixTree {
    pub(crate) fn new() -> Self {
        PrefixTree {
            nodes: vec![PrefixNode::default()],
            collapsed_keys: 0,
            overflowed: 0,
            made: 1,
        }
    }

    pub(crate) fn insert(
        &mut self,
        key: &[u8],
        separators: &Separators,
        depth: usize,
        f: &KeyFacts<'_>,
    ) {
        let mut node = 0;
        if let Some(root) = self.nodes.get_mut(0) {
            root.totals.add(f);
        }
        let mut one = Totals::default();
        one.add(f);
        let mut rest = key;
        for _ in 0..depth {
            let Some(cut) = separators.find(rest) else {
                break;
            };
            let (segment, after) = rest.split_at(cut + 1);
            rest = after;
            let Some(next) = self.child(node, segment, &one) else {
                break;
            };
            node = next;
            if let Some(n) = self.nodes.get_mut(node) {
                n.totals.add(f);
            }
        }
    }

    /// The child of `parent` for `segment`, made if need be, for keys of `totals` going
    /// on past `parent`; `None` when they stop there (collapsed, or no room).
    fn child(&mut self, parent: usize, segment: &[u8], totals: &Totals) -> Option<usize> {
        let made = self.nodes.len();
        let p = self.nodes.get_mut(parent)?;
        if let Some(below) = &mut p.collapsed {
            add_totals(below, totals);
            self.collapsed_keys += totals.keys;
            return None;
        }
        if let Some(&c) = p.children.get(segment) {
            return Some(c);
        }
        if p.children.len() >= MAX_CHILDREN {
            let kids: Vec<usize> = p.children.drain().map(|(_, c)| c).collect();
            let mut below = *totals;
            for c in kids {
                if let Some(k) = self.nodes.get(c) {
                    add_totals(&mut below, &k.totals);
                }
            }
            self.collapsed_keys += below.keys;
            if let Some(p) = self.nodes.get_mut(parent) {
                p.collapsed = Some(below);
            }
            return None;
        }
        if made >= MAX_PREFIX_NODES {
            self.overflowed += totals.keys;
            return None;
        }
        p.children.insert(segment.to_vec(), made);
        self.made += 1;
        self.nodes.push(PrefixNode {
            segment: segment.to_vec(),
            ..PrefixNode::default()
        });
        Some(made)
    }

    /// Nodes reachable from the root: the trie's size, whatever order made it.
    pub fn live_nodes(&self) -> usize {
        let mut stack = vec![0];
        let mut n = 0;
        while let Some(id) = stack.pop() {
            if let Some(node) = self.nodes.get(id) {
                n += 1;
                stack.extend(node.children.values().copied());
            }
        }
        n
    }

    /// Adds the trie `later` built from the keys after this one's, as if those keys had
    /// been added here one by one. Exact while the two together made no more than
    /// [`MAX_PREFIX_NODES`] nodes: a key order can then change no count, and each
    /// prefix's subtree is joined on its own. `false` (and this trie half-joined) otherwise.
    pub(crate) fn join_later(&mut self, later: &PrefixTree) -> bool {
        // One sequence of adds makes at most the nodes of both (each node `later` made
        // is made once, or not at all, here): within the cap, no key met a full trie.
        let made = self.made + later.made - 1;
        if made > MAX_PREFIX_NODES || self.overflowed > 0 || later.overflowed > 0 {
            return false;
        }
        self.join(0, later, 0);
        self.made = made;
        true
    }

    /// Joins `later`'s node `from` (same prefix) into node `into`.
    fn join(&mut self, into: usize, later: &PrefixTree, from: usize) {
        let Some(l) = later.nodes.get(from) else {
            return;
        };
        if let Some(n) = self.nodes.get_mut(into) {
            add_totals(&mut n.totals, &l.totals);
        }
        if let Some(below) = l.collapsed {
            // The keys past `from` were summed there: sum them here too.
            self.collapsed_keys += below.keys;
            let kids: Vec<usize> = match self.nodes.get_mut(into) {
                Some(n) if n.collapsed.is_none() => n.children.drain().map(|(_, c)| c).collect(),
                _ => Vec::new(),
            };
            let mut sum = below;
            for c in kids {
                if let Some(k) = self.nodes.get(c) {
                    add_totals(&mut sum, &k.totals);
                    self.collapsed_keys += k.totals.keys;
                }
            }
            if let Some(n) = self.nodes.get_mut(into) {
                let b = n.collapsed.get_or_insert_with(Totals::default);
                add_totals(b, &sum);
            }
            return;
        }
        // In `later`'s order of making, as keys would have made them here.
        let mut kids: Vec<usize> = l.children.values().copied().collect();
        kids.sort_unstable();
        for c in kids {
            let Some(k) = later.nodes.get(c) else {
                continue;
            };
            // The subtree's keys arrive as one: `child` sees their totals together.
            match self.child(into, &k.segment, &Totals::default()) {
                Some(here) => self.join(here, later, c),
                None => {
                    if let Some(n) = self.nodes.get_mut(into) {
                        if let Some(b) = &mut n.collapsed {
                            add_totals(b, &k.totals);
                            self.collapsed_keys += k.totals.keys;
                        }
                    }
                }
            }
        }
    }

    /// The `limit` biggest prefixes by bytes, flattened depth-first: (depth, full prefix,
    /// totals).
    pub fn biggest(&self, limit: usize) -> Vec<(usize, Vec<u8>, Totals)> {
        let mut out = Vec::new();
        self.walk(0, 0, &mut Vec::new(), limit, &mut out);
        out
    }

    fn walk(
        &self,
        node: usize,
        depth: usize,
        prefix: &mut Vec<u8>,
        limit: usize,
        out: &mut Vec<(usize, Vec<u8>, Totals)>,
    ) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        if let Some(all) = n.collapsed {
            let mut p = prefix.clone();
            p.push(b'*');
            out.push((depth + 1, p, all));
            return;
        }
        // Biggest first; equal sizes by name, not by the hash map's order.
        let mut kids: Vec<&PrefixNode> = n
            .children
            .values()
            .filter_map(|&c| self.nodes.get(c))
            .collect();
        kids.sort_by(|a, b| {
            b.totals
                .bytes
                .cmp(&a.totals.bytes)
                .then_with(|| a.segment.cmp(&b.segment))
        });
        let ids: Vec<usize> = kids
            .iter()
            .filter_map(|k| n.children.get(&k.segment).copied())
            .collect();
        for c in ids.into_iter().take(limit) {
            let Some(k) = self.nodes.get(c) else { continue };
            let len = prefix.len();
            prefix.extend_from_slice(&k.segment);
            out.push((depth + 1, prefix.clone(), k.totals));
            self.walk(c, depth + 1, prefix, (limit / 2).max(3), out);
            prefix.truncate(len);
        }
    }
}

/// Which bytes end a prefix segment: a table, as a key is scanned a byte at a time
/// (`slice::contains` per byte was a tenth of the fold; keys are too short for `memchr`'s
/// vector search to pay).
#[derive(Debug, Clone)]
pub struct Separators([bool; 256]);

impl Separators {
    pub fn new(bytes: &[u8]) -> Self {
        let mut set = [false; 256];
        for &b in bytes {
            if let Some(s) = set.get_mut(b as usize) {
                *s = true;
            }
        }
        Separators(set)
    }

    pub(crate) fn find(&self, hay: &[u8]) -> Option<usize> {
        hay.iter()
            .position(|&b| self.0.get(b as usize).copied().unwrap_or(false))
    }
}

fn add_totals(to: &mut Totals, from: &Totals) {
    to.absorb(from);
}
