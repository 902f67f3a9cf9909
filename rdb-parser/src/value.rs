//! Values: one lazy view per RDB type, found by the top-level parser without decoding
//! elements. Collections expose iterators that decode on `next()`.
//!
//! ```text
//! string        string
//! list     1    len n, n x string
//!          10   string -> ziplist
//!          14   len nodes, nodes x string -> ziplist
//!          18   len nodes, nodes x (len container (1 plain | 2 packed), string)
//! set      2    len n, n x string      11 string -> intset      20 string -> listpack
//! zset     3    len n, n x (string, ascii double)     5 same with binary doubles
//!          12   string -> ziplist      17 string -> listpack   (member, score pairs)
//! hash     4    len n, n x (string, string)           9 zipmap  13 ziplist  16 listpack
//!          24   u64 LE min_expire, len n, n x (len ttl, string, string)
//!          22   (Redis 7.4 RC) len n, n x (len abs_expire, string, string)
//!          25   u64 LE min_expire, string -> listpack of (field, value, expire) triples
//!          23   (Redis 7.4 RC) string -> listpack of triples
//!          22   (Valkey 9) see [`crate::format`]: len n, n x (string, string, i64 LE expire)
//! ```

use std::borrow::Cow;

use crate::ctx::{Blob, Ctx};
use crate::element::Element;
use crate::error::{Error, ErrorKind, Fail, PResult};
use crate::format::{quicklist_container, Version};
use crate::input::{ascii_double, binary_double, count, fail, len, ms_time, string};
use crate::intset::{Intset, IntsetIter};
use crate::listpack::{Listpack, ListpackCursor, ListpackIter};
use crate::module::Module;
use crate::stream::Stream;
use crate::string::RdbString;
use crate::ziplist::{Ziplist, ZiplistCursor, ZiplistIter};
use crate::zipmap::{Zipmap, ZipmapIter};

/// A decoded value of any type.
#[derive(Debug, Clone)]
pub enum Value<'data> {
    String(StringValue<'data>),
    List(List<'data>),
    Set(Set<'data>),
    ZSet(ZSet<'data>),
    Hash(Hash<'data>),
    Stream(Box<Stream<'data>>),
    Module(Module<'data>),
}

impl Value<'_> {
    /// The Redis type name: `string`, `list`, `set`, `zset`, `hash`, `stream`, `module`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::ZSet(_) => "zset",
            Value::Hash(_) => "hash",
            Value::Stream(_) => "stream",
            Value::Module(_) => "module",
        }
    }

    /// How the value is stored, as named in `docs/export-jsonl.md`.
    pub fn encoding_name(&self) -> &'static str {
        match self {
            Value::String(s) => s.stored.encoding_name(),
            Value::List(l) => l.encoding_name(),
            Value::Set(s) => s.encoding_name(),
            Value::ZSet(z) => z.encoding_name(),
            Value::Hash(h) => h.encoding_name(),
            Value::Stream(s) => s.encoding_name(),
            Value::Module(m) => m.encoding_name(),
        }
    }

    /// Whether a list, set, sorted set or hash holds no element. Header counts answer
    /// this; lists and zipmaps, which have none, decode their first element.
    pub fn is_empty_collection(&self) -> bool {
        match self {
            Value::String(_) | Value::Module(_) | Value::Stream(_) => false,
            Value::List(l) => l.is_empty(),
            Value::Set(Set {
                repr: SetRepr::Intset(b) | SetRepr::Listpack(b),
                ..
            })
            | Value::ZSet(ZSet {
                repr: ZSetRepr::Ziplist(b) | ZSetRepr::Listpack(b),
                ..
            })
            | Value::Hash(Hash {
                repr:
                    HashRepr::Ziplist(b)
                    | HashRepr::Listpack(b)
                    | HashRepr::Zipmap(b)
                    | HashRepr::ListpackEx { blob: b, .. },
                ..
            }) if !b.may_be_empty() => false,
            // A small blob whose header does not know its count (a listpack count of
            // 65535): look at the first element (found by fuzzing: an empty listpack zset
            // with an unknown count was re-encoded as an empty ziplist zset).
            Value::Hash(h) if h.len_hint().is_none() => h.iter().next().is_none(),
            Value::ZSet(z) if z.len_hint().is_none() => z.iter().next().is_none(),
            Value::Set(s) if s.len_hint().is_none() => s.iter().next().is_none(),
            other => other.len_hint() == Some(0),
        }
    }

    /// Decodes every element (and every stream entry) and returns how many there were:
    /// the full check that each inner encoding is well formed.
    pub fn decode_all(&self) -> Result<u64, Error> {
        fn count<T>(mut it: impl Iterator<Item = Result<T, Error>>) -> Result<u64, Error> {
            it.try_fold(0u64, |n, x| x.map(|_| n + 1))
        }
        match self {
            Value::String(s) => s.to_bytes().map(|_| 1),
            Value::List(l) => count(l.iter()),
            Value::Set(s) => count(s.iter()),
            Value::ZSet(z) => count(z.iter()),
            Value::Hash(h) => count(h.iter()),
            Value::Stream(s) => s.for_each_entry(|_| Ok::<(), Error>(())),
            // A vector set is checked whole (elements and graph); other modules are opaque.
            Value::Module(m) => match m.vector_set() {
                Some(set) => set?.validate(),
                None => Ok(1),
            },
        }
    }

    /// The element count when it is known without decoding (header counts; a vector
    /// set's `VCARD`).
    pub fn len_hint(&self) -> Option<u64> {
        match self {
            Value::Module(m) => match m.vector_set() {
                Some(set) => set.ok().map(|s| s.len()),
                None => Some(1),
            },
            Value::String(_) => Some(1),
            Value::List(l) => l.len_hint(),
            Value::Set(s) => s.len_hint(),
            Value::ZSet(z) => z.len_hint(),
            Value::Hash(h) => h.len_hint(),
            Value::Stream(s) => Some(s.length),
        }
    }
}

/// Parses the value of type `type_id` at `i`, checking every length on the way.
pub(crate) fn parse<'data>(
    i: &'data [u8],
    type_id: u8,
    version: Version,
    ctx: Ctx<'data>,
) -> PResult<'data, Value<'data>> {
    use crate::format::type_id as t;
    match type_id {
        t::STRING => {
            let (rest, stored) = string(i)?;
            Ok((rest, Value::String(StringValue { stored, ctx })))
        }
        t::LIST | t::LIST_ZIPLIST | t::LIST_QUICKLIST | t::LIST_QUICKLIST_2 => {
            parse_list(i, type_id, ctx)
        }
        t::SET | t::SET_INTSET | t::SET_LISTPACK => parse_set(i, type_id, ctx),
        t::ZSET | t::ZSET_2 | t::ZSET_ZIPLIST | t::ZSET_LISTPACK => parse_zset(i, type_id, ctx),
        t::HASH | t::HASH_ZIPMAP | t::HASH_ZIPLIST | t::HASH_LISTPACK => {
            parse_hash(i, type_id, ctx)
        }
        t::HASH_2 if version.is_valkey_format() => parse_hash2(i, ctx),
        t::HASH_METADATA_PRE_GA
        | t::HASH_METADATA
        | t::HASH_LISTPACK_EX_PRE_GA
        | t::HASH_LISTPACK_EX => parse_hash_with_ttls(i, type_id, ctx),
        t::STREAM_LISTPACKS
        | t::STREAM_LISTPACKS_2
        | t::STREAM_LISTPACKS_3
        | t::STREAM_LISTPACKS_4 => {
            let (rest, s) = Stream::parse(i, type_id, ctx)?;
            Ok((rest, Value::Stream(Box::new(s))))
        }
        t::MODULE_2 => {
            let (rest, m) = Module::parse(i, ctx)?;
            Ok((rest, Value::Module(m)))
        }
        t::MODULE_PRE_GA => fail(Fail::new(
            i,
            ErrorKind::Unsupported,
            "module value",
            "a Redis 4.0 release-candidate module value (type 6) has no self-describing \
             extent and cannot be read without its module"
                .into(),
        )),
        other => {
            let detail = unknown_type(other, version).unwrap_or_default();
            fail(Fail::new(i, ErrorKind::UnknownType, "value type", detail))
        }
    }
}

/// An RDB string holding a compact encoding (ziplist, listpack, intset, zipmap).
fn blob(i: &[u8]) -> PResult<'_, Blob<'_>> {
    let (rest, s) = string(i)?;
    Ok((rest, Blob::new(s)))
}

/// Types 1, 10, 14 and 18.
fn parse_list<'data>(i: &'data [u8], type_id: u8, ctx: Ctx<'data>) -> PResult<'data, Value<'data>> {
    use crate::format::type_id as t;
    match type_id {
        t::LIST => {
            let (rest, (n, body)) = strings_n(i, 1)?;
            Ok((rest, list(ListRepr::Linked { count: n, body }, ctx)))
        }
        t::LIST_ZIPLIST => {
            let (rest, b) = blob(i)?;
            Ok((rest, list(ListRepr::Ziplist(b), ctx)))
        }
        _ => {
            let v2 = type_id == t::LIST_QUICKLIST_2;
            let (mut rest, nodes) = count(i, if v2 { 2 } else { 1 }, "quicklist")?;
            let start = rest;
            for _ in 0..nodes {
                if v2 {
                    let (r, container) = len(rest)?;
                    if container != quicklist_container::PLAIN
                        && container != quicklist_container::PACKED
                    {
                        return fail(Fail::corrupt(
                            rest,
                            "quicklist",
                            format!("unknown node container {container}"),
                        ));
                    }
                    rest = r;
                }
                rest = string(rest)?.0;
            }
            let body = consumed(start, rest);
            Ok((rest, list(ListRepr::Quicklist { nodes, body, v2 }, ctx)))
        }
    }
}

/// Types 2, 11 and 20.
fn parse_set<'data>(i: &'data [u8], type_id: u8, ctx: Ctx<'data>) -> PResult<'data, Value<'data>> {
    use crate::format::type_id as t;
    let (rest, repr) = match type_id {
        t::SET => {
            let (rest, (n, body)) = strings_n(i, 1)?;
            (rest, SetRepr::Hashtable { count: n, body })
        }
        t::SET_INTSET => {
            let (rest, b) = blob(i)?;
            (rest, SetRepr::Intset(b))
        }
        _ => {
            let (rest, b) = blob(i)?;
            (rest, SetRepr::Listpack(b))
        }
    };
    Ok((rest, set(repr, ctx)))
}

/// Types 3, 5, 12 and 17.
fn parse_zset<'data>(i: &'data [u8], type_id: u8, ctx: Ctx<'data>) -> PResult<'data, Value<'data>> {
    use crate::format::type_id as t;
    let (rest, repr) = match type_id {
        t::ZSET_ZIPLIST => {
            let (rest, b) = blob(i)?;
            (rest, ZSetRepr::Ziplist(b))
        }
        t::ZSET_LISTPACK => {
            let (rest, b) = blob(i)?;
            (rest, ZSetRepr::Listpack(b))
        }
        _ => {
            let binary = type_id == t::ZSET_2;
            let (mut rest, n) = count(i, 2, "sorted set")?;
            let start = rest;
            for _ in 0..n {
                rest = string(rest)?.0;
                rest = if binary {
                    binary_double(rest)?.0
                } else {
                    ascii_double(rest)?.0
                };
            }
            let body = consumed(start, rest);
            (
                rest,
                ZSetRepr::Skiplist {
                    count: n,
                    body,
                    binary,
                },
            )
        }
    };
    Ok((rest, zset(repr, ctx)))
}

/// Types 4, 9, 13 and 16: hashes without field TTLs.
fn parse_hash<'data>(i: &'data [u8], type_id: u8, ctx: Ctx<'data>) -> PResult<'data, Value<'data>> {
    use crate::format::type_id as t;
    if type_id == t::HASH {
        let (rest, (n, body)) = strings_n(i, 2)?;
        return Ok((rest, hash(HashRepr::Hashtable { count: n, body }, ctx)));
    }
    let (rest, b) = blob(i)?;
    let repr = match type_id {
        t::HASH_ZIPMAP => HashRepr::Zipmap(b),
        t::HASH_ZIPLIST => HashRepr::Ziplist(b),
        _ => HashRepr::Listpack(b),
    };
    Ok((rest, hash(repr, ctx)))
}

/// Valkey 9's type 22.
fn parse_hash2<'data>(i: &'data [u8], ctx: Ctx<'data>) -> PResult<'data, Value<'data>> {
    let (mut rest, n) = count(i, 10, "hash")?;
    let start = rest;
    for _ in 0..n {
        rest = string(rest)?.0;
        rest = string(rest)?.0;
        rest = ms_time(rest)?.0;
    }
    let body = consumed(start, rest);
    Ok((rest, hash(HashRepr::Hash2 { count: n, body }, ctx)))
}

/// Redis' hash-field TTL types: 24 and 25, and their 7.4 release-candidate forms 22 and 23
/// (no minimum expiry in front).
fn parse_hash_with_ttls<'data>(
    i: &'data [u8],
    type_id: u8,
    ctx: Ctx<'data>,
) -> PResult<'data, Value<'data>> {
    use crate::format::type_id as t;
    let pre_ga = matches!(
        type_id,
        t::HASH_METADATA_PRE_GA | t::HASH_LISTPACK_EX_PRE_GA
    );
    let (rest, min_expire) = if pre_ga {
        (i, None)
    } else {
        let (r, m) = ms_time(i)?;
        (r, Some(m))
    };
    if matches!(type_id, t::HASH_LISTPACK_EX_PRE_GA | t::HASH_LISTPACK_EX) {
        let (rest, b) = blob(rest)?;
        return Ok((
            rest,
            hash(
                HashRepr::ListpackEx {
                    blob: b,
                    min_expire,
                },
                ctx,
            ),
        ));
    }
    let (mut rest, n) = count(rest, 3, "hash")?;
    let start = rest;
    for _ in 0..n {
        rest = len(rest)?.0;
        rest = string(rest)?.0;
        rest = string(rest)?.0;
    }
    let body = consumed(start, rest);
    Ok((
        rest,
        hash(
            HashRepr::Metadata {
                count: n,
                body,
                min_expire,
            },
            ctx,
        ),
    ))
}

/// Why `type_id` is not a value type of a `version` file, or `None` when it is one
/// ([`parse`] reads it, or refuses it for a reason of its own).
pub(crate) fn unknown_type(type_id: u8, version: Version) -> Option<String> {
    use crate::format::type_id as t;
    if matches!(type_id, t::STRING..=t::MODULE_2 | t::HASH_ZIPMAP..=t::STREAM_LISTPACKS_4) {
        return None;
    }
    Some(match t::introduced_after_13(type_id) {
        Some(what) => format!(
            "{what}, which this parser does not read ({version} file; the last type it \
             reads is 26, Redis 8.6's stream)"
        ),
        None => format!(
            "not a value type of any Redis or Valkey release ({version} file; the last type \
             this parser reads is 26, Redis 8.6's stream, and Redis' source defines none \
             above 33): the file may come from a newer server or a proprietary fork such as \
             Redis Enterprise"
        ),
    })
}

/// The error for an unknown type byte at `offset`. A type a later Redis defines is
/// followed by its key, which is named when it reads as one.
pub(crate) fn unknown_type_error(
    type_id: u8,
    offset: u64,
    detail: String,
    after_type: &[u8],
    db: u64,
) -> Error {
    let err = Error::unknown_type(type_id, offset, detail);
    if crate::format::type_id::introduced_after_13(type_id).is_none() {
        return err;
    }
    match string(after_type).ok().and_then(|(_, k)| k.decode().ok()) {
        Some(key) => err.in_key(db, &key),
        None => err,
    }
}

/// The bytes between `start` and `rest` (a prefix of `start`).
fn consumed<'a>(start: &'a [u8], rest: &'a [u8]) -> &'a [u8] {
    start.get(..start.len() - rest.len()).unwrap_or(&[])
}

/// `len n` then `n x per` strings; returns n and the bytes of the strings.
fn strings_n(i: &[u8], per: u64) -> PResult<'_, (u64, &[u8])> {
    let (mut rest, n) = count(i, per, "collection")?;
    let start = rest;
    for _ in 0..n.saturating_mul(per) {
        rest = string(rest)?.0;
    }
    Ok((rest, (n, consumed(start, rest))))
}

/// Decodes the next RDB string of a body as an element.
fn next_string<'a>(rest: &mut &'a [u8]) -> Result<Element<'a>, Fail> {
    let (r, s) = string(rest).map_err(crate::error::unnom)?;
    *rest = r;
    Ok(match s {
        RdbString::Raw(b) => Element::borrowed(b),
        RdbString::Int(v) => Element::Int(v),
        lzf => Element::Bytes(Cow::Owned(lzf.decode()?.into_owned())),
    })
}

/// A string value.
#[derive(Debug, Clone)]
pub struct StringValue<'data> {
    pub(crate) stored: RdbString<'data>,
    ctx: Ctx<'data>,
}

impl<'data> StringValue<'data> {
    /// The value's bytes: borrowed when stored plain, decoded otherwise.
    pub fn to_bytes(&self) -> Result<Cow<'data, [u8]>, Error> {
        self.stored.decode().map_err(|f| {
            self.ctx
                .error(f, crate::ctx::Blob::new(self.stored).origin())
        })
    }

    /// The string as stored (plain, integer or LZF), undecoded.
    pub fn stored(&self) -> RdbString<'data> {
        self.stored
    }

    /// The decoded length, known without decoding.
    pub fn len(&self) -> usize {
        self.stored.len()
    }

    pub fn is_empty(&self) -> bool {
        self.stored.is_empty()
    }
}

/// Opens an iterator over a blob that may need decompressing first; a failure to open
/// becomes the iterator's only item.
fn blob_inner<'a, T>(
    ctx: &Ctx<'a>,
    blob: &'a Blob<'_>,
    open: fn(&'a [u8]) -> Result<T, Fail>,
    wrap: fn(T) -> Inner<'a>,
) -> Inner<'a> {
    match blob.bytes().and_then(open) {
        Ok(v) => wrap(v),
        Err(f) => Inner::Failed(Some(ctx.error(f, blob.origin()))),
    }
}

// ---------------------------------------------------------------------------------------
// Lists

#[derive(Debug, Clone)]
enum ListRepr<'data> {
    Linked {
        count: u64,
        body: &'data [u8],
    },
    Ziplist(Blob<'data>),
    Quicklist {
        nodes: u64,
        body: &'data [u8],
        v2: bool,
    },
}

/// A list value.
#[derive(Debug, Clone)]
pub struct List<'data> {
    repr: ListRepr<'data>,
    ctx: Ctx<'data>,
}

fn list<'data>(repr: ListRepr<'data>, ctx: Ctx<'data>) -> Value<'data> {
    Value::List(List { repr, ctx })
}

impl<'data> List<'data> {
    pub fn encoding_name(&self) -> &'static str {
        match &self.repr {
            ListRepr::Linked { .. } => "linkedlist",
            ListRepr::Ziplist(_) => "ziplist",
            ListRepr::Quicklist { v2: false, .. } => "quicklist",
            ListRepr::Quicklist { v2: true, .. } => "quicklist2",
        }
    }

    pub fn len_hint(&self) -> Option<u64> {
        match &self.repr {
            ListRepr::Linked { count, .. } => Some(*count),
            ListRepr::Ziplist(b) => b
                .bytes()
                .ok()
                .and_then(|b| Ziplist::new(b).ok())
                .and_then(|z| z.declared_len())
                .map(|n| n as u64),
            ListRepr::Quicklist { .. } => None,
        }
    }

    /// Whether no node holds an element. Reads node headers only: a node stored
    /// compressed, or a PLAIN node, always holds one.
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            ListRepr::Linked { count, .. } => *count == 0,
            ListRepr::Ziplist(b) => b.may_be_empty() && self.iter().next().is_none(),
            ListRepr::Quicklist { nodes, body, v2 } => {
                let mut rest: &[u8] = body;
                for _ in 0..*nodes {
                    let mut container = quicklist_container::PACKED;
                    if *v2 {
                        let Ok((r, c)) = len(rest) else { return false };
                        (rest, container) = (r, c);
                    }
                    let Ok((r, s)) = string(rest) else {
                        return false;
                    };
                    rest = r;
                    if container == quicklist_container::PLAIN || !Blob::new(s).may_be_empty() {
                        return false;
                    }
                    let empty_node = match s {
                        RdbString::Raw(b) if *v2 => {
                            Listpack::new(b).is_ok_and(|l| l.iter().next().is_none())
                        }
                        RdbString::Raw(b) => {
                            Ziplist::new(b).is_ok_and(|z| z.iter().next().is_none())
                        }
                        _ => false,
                    };
                    if !empty_node {
                        return false;
                    }
                }
                true
            }
        }
    }

    /// The number of quicklist nodes, for quicklist encodings.
    pub fn node_count(&self) -> Option<u64> {
        match &self.repr {
            ListRepr::Quicklist { nodes, .. } => Some(*nodes),
            _ => None,
        }
    }

    /// The quicklist's nodes in order, each as a list of its own holding that node's
    /// elements (`None` when the list is not stored as a quicklist), so that a long list can
    /// be walked a run of nodes at a time, on several cores. A node's elements decode as
    /// [`List::iter`] decodes them, errors included.
    pub fn nodes(&self) -> Option<ListNodes<'data>> {
        match &self.repr {
            ListRepr::Quicklist { nodes, body, v2 } => Some(ListNodes {
                rest: body,
                left: *nodes,
                v2: *v2,
                ctx: self.ctx,
            }),
            _ => None,
        }
    }

    /// The elements in list order.
    pub fn iter(&self) -> ElementIter<'_> {
        let inner = match &self.repr {
            ListRepr::Linked { count, body } => Inner::Strings {
                rest: body,
                left: *count,
            },
            ListRepr::Ziplist(b) => {
                blob_inner(&self.ctx, b, Ziplist::new, |z| Inner::Ziplist(z.iter()))
            }
            ListRepr::Quicklist { nodes, body, v2 } => Inner::Quicklist(QuicklistIter {
                rest: body,
                nodes_left: *nodes,
                v2: *v2,
                node: NodeIter::None,
            }),
        };
        ElementIter {
            inner,
            ctx: self.ctx,
            origin: self.origin(),
        }
    }

    fn origin(&self) -> &'data [u8] {
        match &self.repr {
            ListRepr::Ziplist(b) => b.origin(),
            ListRepr::Linked { body, .. } | ListRepr::Quicklist { body, .. } => body,
        }
    }
}

/// The nodes of a quicklist, one list each ([`List::nodes`]). The node extents were
/// checked when the value was parsed; should one not read, the walk ends early (compare
/// the nodes returned with [`List::node_count`]).
#[derive(Debug, Clone)]
pub struct ListNodes<'data> {
    rest: &'data [u8],
    left: u64,
    v2: bool,
    ctx: Ctx<'data>,
}

impl<'data> ListNodes<'data> {
    /// The stored bytes of the nodes not yet returned (container lengths and strings).
    pub fn rest_bytes(&self) -> usize {
        self.rest.len()
    }
}

impl<'data> Iterator for ListNodes<'data> {
    type Item = List<'data>;

    fn next(&mut self) -> Option<List<'data>> {
        if self.left == 0 {
            return None;
        }
        let start = self.rest;
        let mut rest = start;
        if self.v2 {
            let Ok((r, _)) = len(rest) else {
                self.left = 0;
                return None;
            };
            rest = r;
        }
        let Ok((rest, _)) = string(rest) else {
            self.left = 0;
            return None;
        };
        self.left -= 1;
        self.rest = rest;
        let body = consumed(start, rest);
        Some(List {
            repr: ListRepr::Quicklist {
                nodes: 1,
                body,
                v2: self.v2,
            },
            ctx: self.ctx,
        })
    }
}

/// Elements of a list or set, decoded on `next()`. Fuses after an error.
#[derive(Debug)]
pub struct ElementIter<'a> {
    inner: Inner<'a>,
    ctx: Ctx<'a>,
    origin: &'a [u8],
}

#[derive(Debug)]
enum Inner<'a> {
    Strings { rest: &'a [u8], left: u64 },
    Ziplist(ZiplistIter<'a>),
    Listpack(ListpackIter<'a>),
    Intset(IntsetIter<'a>),
    Quicklist(QuicklistIter<'a>),
    Failed(Option<Error>),
    Done,
}

impl<'a> Iterator for ElementIter<'a> {
    type Item = Result<Element<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let step: Option<Result<Element<'a>, Fail>> = match &mut self.inner {
            Inner::Strings { rest, left } => {
                if *left == 0 {
                    None
                } else {
                    *left -= 1;
                    Some(next_string(rest))
                }
            }
            Inner::Ziplist(it) => it.next(),
            Inner::Listpack(it) => it.next(),
            Inner::Intset(it) => it.next().map(|v| Ok(Element::Int(v))),
            Inner::Quicklist(it) => it.next(),
            Inner::Failed(e) => {
                let e = e.take();
                self.inner = Inner::Done;
                return e.map(Err);
            }
            Inner::Done => None,
        };
        match step? {
            Ok(e) => Some(Ok(e)),
            Err(f) => {
                self.inner = Inner::Done;
                Some(Err(self.ctx.error(f, self.origin)))
            }
        }
    }
}

/// Walks quicklist nodes; a compressed node is decompressed and its elements copied out.
#[derive(Debug)]
struct QuicklistIter<'a> {
    rest: &'a [u8],
    nodes_left: u64,
    v2: bool,
    node: NodeIter<'a>,
}

#[derive(Debug)]
enum NodeIter<'a> {
    None,
    Ziplist(ZiplistIter<'a>),
    Listpack(ListpackIter<'a>),
    /// A compressed node, decompressed into `buf` and walked one element at a time, so
    /// memory holds the node but never a copy of all its elements.
    OwnedListpack(Vec<u8>, ListpackCursor),
    OwnedZiplist(Vec<u8>, ZiplistCursor),
    Plain(Option<Element<'a>>),
}

impl<'a> QuicklistIter<'a> {
    fn next(&mut self) -> Option<Result<Element<'a>, Fail>> {
        loop {
            let item = match &mut self.node {
                NodeIter::None => None,
                NodeIter::Ziplist(it) => it.next(),
                NodeIter::Listpack(it) => it.next(),
                NodeIter::OwnedListpack(buf, cur) => cur.next_owned(buf),
                NodeIter::OwnedZiplist(buf, cur) => cur.next_owned(buf),
                NodeIter::Plain(e) => e.take().map(Ok),
            };
            if let Some(item) = item {
                return Some(item);
            }
            if self.nodes_left == 0 {
                return None;
            }
            self.nodes_left -= 1;
            if let Err(f) = self.open_node() {
                self.nodes_left = 0;
                self.node = NodeIter::None;
                return Some(Err(f));
            }
        }
    }

    /// Reads the next node header and positions `self.node` on its elements; a PLAIN node
    /// yields its single element.
    fn open_node(&mut self) -> Result<(), Fail> {
        let mut container = quicklist_container::PACKED;
        if self.v2 {
            let (r, c) = len(self.rest).map_err(crate::error::unnom)?;
            self.rest = r;
            container = c;
        }
        let (r, s) = string(self.rest).map_err(crate::error::unnom)?;
        self.rest = r;
        self.node = match (container, s) {
            (quicklist_container::PLAIN, RdbString::Raw(b)) => {
                NodeIter::Plain(Some(Element::borrowed(b)))
            }
            (quicklist_container::PLAIN, other) => NodeIter::Plain(Some(Element::Bytes(
                Cow::Owned(other.decode()?.into_owned()),
            ))),
            (_, RdbString::Raw(b)) if self.v2 => NodeIter::Listpack(Listpack::new(b)?.iter()),
            (_, RdbString::Raw(b)) => NodeIter::Ziplist(Ziplist::new(b)?.iter()),
            (_, other) => {
                // A compressed node: its elements cannot borrow from the file.
                let buf = other.decode()?.into_owned();
                if self.v2 {
                    let cur = ListpackCursor::start(&buf)?;
                    NodeIter::OwnedListpack(buf, cur)
                } else {
                    let cur = ZiplistCursor::start(&buf)?;
                    NodeIter::OwnedZiplist(buf, cur)
                }
            }
        };
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Sets

#[derive(Debug, Clone)]
enum SetRepr<'data> {
    Hashtable { count: u64, body: &'data [u8] },
    Intset(Blob<'data>),
    Listpack(Blob<'data>),
}

/// A set value.
#[derive(Debug, Clone)]
pub struct Set<'data> {
    repr: SetRepr<'data>,
    ctx: Ctx<'data>,
}

fn set<'data>(repr: SetRepr<'data>, ctx: Ctx<'data>) -> Value<'data> {
    Value::Set(Set { repr, ctx })
}

impl<'data> Set<'data> {
    pub fn encoding_name(&self) -> &'static str {
        match &self.repr {
            SetRepr::Hashtable { .. } => "hashtable",
            SetRepr::Intset(_) => "intset",
            SetRepr::Listpack(_) => "listpack",
        }
    }

    pub fn len_hint(&self) -> Option<u64> {
        match &self.repr {
            SetRepr::Hashtable { count, .. } => Some(*count),
            SetRepr::Intset(b) => b
                .bytes()
                .ok()
                .and_then(|b| Intset::new(b).ok())
                .map(|s| s.len() as u64),
            SetRepr::Listpack(b) => listpack_len(b),
        }
    }

    /// The members in file order.
    pub fn iter(&self) -> ElementIter<'_> {
        let (inner, origin) = match &self.repr {
            SetRepr::Hashtable { count, body } => (
                Inner::Strings {
                    rest: body,
                    left: *count,
                },
                *body,
            ),
            SetRepr::Intset(b) => (
                blob_inner(&self.ctx, b, Intset::new, |s| Inner::Intset(s.iter())),
                b.origin(),
            ),
            SetRepr::Listpack(b) => (
                blob_inner(&self.ctx, b, Listpack::new, |l| Inner::Listpack(l.iter())),
                b.origin(),
            ),
        };
        ElementIter {
            inner,
            ctx: self.ctx,
            origin,
        }
    }

    /// Bytes per member (2, 4 or 8) of an intset-encoded set.
    pub fn intset_width(&self) -> Option<Result<usize, Error>> {
        match &self.repr {
            SetRepr::Intset(b) => Some(
                b.bytes()
                    .and_then(Intset::new)
                    .map(|s| s.width())
                    .map_err(|f| self.ctx.error(f, b.origin())),
            ),
            _ => None,
        }
    }
}

fn listpack_len(b: &Blob<'_>) -> Option<u64> {
    b.bytes()
        .ok()
        .and_then(|b| Listpack::new(b).ok())
        .and_then(|l| l.declared_len())
        .map(|n| n as u64)
}

fn ziplist_len(b: &Blob<'_>) -> Option<u64> {
    b.bytes()
        .ok()
        .and_then(|b| Ziplist::new(b).ok())
        .and_then(|l| l.declared_len())
        .map(|n| n as u64)
}

// ---------------------------------------------------------------------------------------
// Sorted sets

#[derive(Debug, Clone)]
enum ZSetRepr<'data> {
    Skiplist {
        count: u64,
        body: &'data [u8],
        binary: bool,
    },
    Ziplist(Blob<'data>),
    Listpack(Blob<'data>),
}

/// A sorted set value.
#[derive(Debug, Clone)]
pub struct ZSet<'data> {
    repr: ZSetRepr<'data>,
    ctx: Ctx<'data>,
}

fn zset<'data>(repr: ZSetRepr<'data>, ctx: Ctx<'data>) -> Value<'data> {
    Value::ZSet(ZSet { repr, ctx })
}

impl<'data> ZSet<'data> {
    pub fn encoding_name(&self) -> &'static str {
        match &self.repr {
            ZSetRepr::Skiplist { binary: false, .. } => "skiplist",
            ZSetRepr::Skiplist { binary: true, .. } => "skiplist2",
            ZSetRepr::Ziplist(_) => "ziplist",
            ZSetRepr::Listpack(_) => "listpack",
        }
    }

    pub fn len_hint(&self) -> Option<u64> {
        match &self.repr {
            ZSetRepr::Skiplist { count, .. } => Some(*count),
            ZSetRepr::Ziplist(b) => ziplist_len(b).map(|n| n / 2),
            ZSetRepr::Listpack(b) => listpack_len(b).map(|n| n / 2),
        }
    }

    /// `(member, score)` pairs in file order.
    pub fn iter(&self) -> ZSetIter<'_> {
        let (pairs, origin) = match &self.repr {
            ZSetRepr::Skiplist {
                count,
                body,
                binary,
            } => (
                Pairs::Scored {
                    rest: body,
                    left: *count,
                    binary: *binary,
                },
                *body,
            ),
            ZSetRepr::Ziplist(b) => (Pairs::from_ziplist(b), b.origin()),
            ZSetRepr::Listpack(b) => (Pairs::from_listpack(b), b.origin()),
        };
        ZSetIter {
            pairs,
            ctx: self.ctx,
            origin,
        }
    }
}

/// Flat field/value (or member/score) sequences, decoded in pairs.
#[derive(Debug)]
enum Pairs<'a> {
    Scored {
        rest: &'a [u8],
        left: u64,
        binary: bool,
    },
    Strings {
        rest: &'a [u8],
        left: u64,
    },
    Ziplist(ZiplistIter<'a>),
    Listpack(ListpackIter<'a>),
    Zipmap(ZipmapIter<'a>),
    Failed(Fail),
    Done,
}

impl<'a> Pairs<'a> {
    fn from_ziplist(b: &'a Blob<'_>) -> Self {
        match b.bytes().and_then(Ziplist::new) {
            Ok(z) => Pairs::Ziplist(z.iter()),
            Err(f) => Pairs::Failed(f),
        }
    }

    fn from_listpack(b: &'a Blob<'_>) -> Self {
        match b.bytes().and_then(Listpack::new) {
            Ok(l) => Pairs::Listpack(l.iter()),
            Err(f) => Pairs::Failed(f),
        }
    }

    /// The next two entries of a flat sequence; an odd count is corruption.
    fn pair_from<I>(
        it: &mut I,
        what: &'static str,
    ) -> Option<Result<(Element<'a>, Element<'a>), Fail>>
    where
        I: Iterator<Item = Result<Element<'a>, Fail>>,
    {
        let first = match it.next()? {
            Ok(e) => e,
            Err(f) => return Some(Err(f)),
        };
        match it.next() {
            Some(Ok(second)) => Some(Ok((first, second))),
            Some(Err(f)) => Some(Err(f)),
            None => Some(Err(Fail::corrupt(&[], what, "odd number of entries"))),
        }
    }

    fn next_pair(
        &mut self,
        what: &'static str,
    ) -> Option<Result<(Element<'a>, Element<'a>), Fail>> {
        let r = match self {
            Pairs::Strings { rest, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                next_string(rest).and_then(|a| next_string(rest).map(|b| (a, b)))
            }
            Pairs::Ziplist(it) => return Self::pair_from(it, what),
            Pairs::Listpack(it) => return Self::pair_from(it, what),
            Pairs::Zipmap(it) => return it.next(),
            Pairs::Failed(f) => {
                let f = f.clone();
                *self = Pairs::Done;
                return Some(Err(f));
            }
            Pairs::Scored { .. } | Pairs::Done => return None,
        };
        Some(r)
    }
}

/// `(member, score)` pairs of a sorted set, decoded on `next()`. Fuses after an error.
#[derive(Debug)]
pub struct ZSetIter<'a> {
    pairs: Pairs<'a>,
    ctx: Ctx<'a>,
    origin: &'a [u8],
}

impl<'a> Iterator for ZSetIter<'a> {
    type Item = Result<(Element<'a>, f64), Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let step = match &mut self.pairs {
            Pairs::Scored { rest, left, binary } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let binary = *binary;
                next_string(rest).and_then(|member| {
                    let parsed = if binary {
                        binary_double(rest)
                    } else {
                        ascii_double(rest)
                    };
                    let (r, score) = parsed.map_err(crate::error::unnom)?;
                    *rest = r;
                    Ok((member, score))
                })
            }
            pairs => match pairs.next_pair("sorted set")? {
                Ok((member, score)) => {
                    let at = self.origin;
                    score
                        .as_score()
                        .map(|s| (member, s))
                        .ok_or_else(|| Fail::corrupt(at, "sorted set", "score is not a number"))
                }
                Err(f) => Err(f),
            },
        };
        match step {
            Ok(v) => Some(Ok(v)),
            Err(f) => {
                self.pairs = Pairs::Done;
                Some(Err(self.ctx.error(f, self.origin)))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Hashes

#[derive(Debug, Clone)]
enum HashRepr<'data> {
    Hashtable {
        count: u64,
        body: &'data [u8],
    },
    Zipmap(Blob<'data>),
    Ziplist(Blob<'data>),
    Listpack(Blob<'data>),
    /// Types 24 (`min_expire` set, TTLs relative) and 22 pre-GA (absolute TTLs).
    Metadata {
        count: u64,
        body: &'data [u8],
        min_expire: Option<i64>,
    },
    /// Types 25 and 23 pre-GA.
    ListpackEx {
        blob: Blob<'data>,
        min_expire: Option<i64>,
    },
    /// Valkey 9 type 22.
    Hash2 {
        count: u64,
        body: &'data [u8],
    },
}

/// A hash value.
#[derive(Debug, Clone)]
pub struct Hash<'data> {
    repr: HashRepr<'data>,
    ctx: Ctx<'data>,
}

fn hash<'data>(repr: HashRepr<'data>, ctx: Ctx<'data>) -> Value<'data> {
    Value::Hash(Hash { repr, ctx })
}

/// One hash field.
#[derive(Debug, Clone, PartialEq)]
pub struct HashField<'a> {
    pub field: Element<'a>,
    pub value: Element<'a>,
    /// The field's own expiry (absolute Unix ms), for hashes with field TTLs.
    pub expire_ms: Option<i64>,
}

impl<'data> Hash<'data> {
    pub fn encoding_name(&self) -> &'static str {
        match &self.repr {
            HashRepr::Hashtable { .. } => "hashtable",
            HashRepr::Zipmap(_) => "zipmap",
            HashRepr::Ziplist(_) => "ziplist",
            HashRepr::Listpack(_) => "listpack",
            HashRepr::Metadata {
                min_expire: Some(_),
                ..
            } => "metadata",
            HashRepr::Metadata {
                min_expire: None, ..
            } => "metadata_pre_ga",
            HashRepr::ListpackEx {
                min_expire: Some(_),
                ..
            } => "listpack_ex",
            HashRepr::ListpackEx {
                min_expire: None, ..
            } => "listpack_ex_pre_ga",
            HashRepr::Hash2 { .. } => "hash2",
        }
    }

    /// Whether this encoding can carry per-field TTLs.
    pub fn has_field_ttls(&self) -> bool {
        matches!(
            self.repr,
            HashRepr::Metadata { .. } | HashRepr::ListpackEx { .. } | HashRepr::Hash2 { .. }
        )
    }

    /// The earliest field expiry the file records (types 24 and 25), if any.
    pub fn min_expire(&self) -> Option<i64> {
        match self.repr {
            HashRepr::Metadata { min_expire, .. } | HashRepr::ListpackEx { min_expire, .. } => {
                min_expire
            }
            _ => None,
        }
    }

    pub fn len_hint(&self) -> Option<u64> {
        match &self.repr {
            HashRepr::Hashtable { count, .. }
            | HashRepr::Metadata { count, .. }
            | HashRepr::Hash2 { count, .. } => Some(*count),
            HashRepr::Ziplist(b) => ziplist_len(b).map(|n| n / 2),
            HashRepr::Listpack(b) => listpack_len(b).map(|n| n / 2),
            HashRepr::ListpackEx { blob, .. } => listpack_len(blob).map(|n| n / 3),
            HashRepr::Zipmap(_) => None,
        }
    }

    /// The fields in file order.
    pub fn iter(&self) -> HashIter<'_> {
        let (state, origin) = match &self.repr {
            HashRepr::Hashtable { count, body } => (
                HashState::Pairs(Pairs::Strings {
                    rest: body,
                    left: *count,
                }),
                *body,
            ),
            HashRepr::Zipmap(b) => (
                HashState::Pairs(match b.bytes().and_then(Zipmap::new) {
                    Ok(z) => Pairs::Zipmap(z.iter()),
                    Err(f) => Pairs::Failed(f),
                }),
                b.origin(),
            ),
            HashRepr::Ziplist(b) => (HashState::Pairs(Pairs::from_ziplist(b)), b.origin()),
            HashRepr::Listpack(b) => (HashState::Pairs(Pairs::from_listpack(b)), b.origin()),
            HashRepr::Metadata {
                count,
                body,
                min_expire,
            } => (
                HashState::Metadata {
                    rest: body,
                    left: *count,
                    min_expire: *min_expire,
                },
                *body,
            ),
            HashRepr::ListpackEx { blob, .. } => (
                match blob.bytes().and_then(Listpack::new) {
                    Ok(l) => HashState::Triples(l.iter()),
                    Err(f) => HashState::Pairs(Pairs::Failed(f)),
                },
                blob.origin(),
            ),
            HashRepr::Hash2 { count, body } => (
                HashState::Hash2 {
                    rest: body,
                    left: *count,
                },
                *body,
            ),
        };
        HashIter {
            state,
            ctx: self.ctx,
            origin,
        }
    }
}

#[derive(Debug)]
enum HashState<'a> {
    Pairs(Pairs<'a>),
    Metadata {
        rest: &'a [u8],
        left: u64,
        min_expire: Option<i64>,
    },
    Triples(ListpackIter<'a>),
    Hash2 {
        rest: &'a [u8],
        left: u64,
    },
    Done,
}

/// Fields of a hash, decoded on `next()`. Fuses after an error.
#[derive(Debug)]
pub struct HashIter<'a> {
    state: HashState<'a>,
    ctx: Ctx<'a>,
    origin: &'a [u8],
}

impl<'a> HashIter<'a> {
    fn step(&mut self) -> Option<Result<HashField<'a>, Fail>> {
        match &mut self.state {
            HashState::Pairs(p) => p.next_pair("hash").map(|r| {
                r.map(|(field, value)| HashField {
                    field,
                    value,
                    expire_ms: None,
                })
            }),
            HashState::Metadata {
                rest,
                left,
                min_expire,
            } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let min_expire = *min_expire;
                Some((|| {
                    let at = *rest;
                    let (r, ttl) = len(rest).map_err(crate::error::unnom)?;
                    *rest = r;
                    let field = next_string(rest)?;
                    let value = next_string(rest)?;
                    let expire_ms = match (ttl, min_expire) {
                        (0, _) => None,
                        // 7.4 GA: relative to the hash's minimum, off by one so 0 means none.
                        (ttl, Some(min)) => Some(
                            i64::try_from(ttl)
                                .ok()
                                .and_then(|t| t.checked_add(min))
                                .and_then(|t| t.checked_sub(1))
                                .ok_or_else(|| Fail::corrupt(at, "hash", "field TTL overflows"))?,
                        ),
                        (abs, None) => Some(
                            i64::try_from(abs)
                                .map_err(|_| Fail::corrupt(at, "hash", "field TTL overflows"))?,
                        ),
                    };
                    Ok(HashField {
                        field,
                        value,
                        expire_ms,
                    })
                })())
            }
            HashState::Triples(it) => {
                let field = match it.next()? {
                    Ok(e) => e,
                    Err(f) => return Some(Err(f)),
                };
                Some((|| {
                    let value = it.required("hash")?;
                    let ttl = it.required_int("hash")?;
                    Ok(HashField {
                        field,
                        value,
                        expire_ms: (ttl != 0).then_some(ttl),
                    })
                })())
            }
            HashState::Hash2 { rest, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                Some((|| {
                    let field = next_string(rest)?;
                    let value = next_string(rest)?;
                    let (r, expire) = ms_time(rest).map_err(crate::error::unnom)?;
                    *rest = r;
                    Ok(HashField {
                        field,
                        value,
                        // Valkey writes -1 for a field without a TTL.
                        expire_ms: (expire != -1).then_some(expire),
                    })
                })())
            }
            HashState::Done => None,
        }
    }
}

impl<'a> Iterator for HashIter<'a> {
    type Item = Result<HashField<'a>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.step()? {
            Ok(f) => Some(Ok(f)),
            Err(f) => {
                self.state = HashState::Done;
                Some(Err(self.ctx.error(f, self.origin)))
            }
        }
    }
}
