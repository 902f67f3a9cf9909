//! Vector sets (`VADD`, Redis 8.0+): type-7 module values of the built-in module type
//! `vectorset` (encoding version 0), decoded.
//!
//! The layout is the one `VectorSetRdbSave` writes (Redis `modules/vector-sets/vset.c`,
//! nodes serialized by `hnsw_serialize_node` in `hnsw.c`). Every field is a module opcode:
//! `U` an unsigned (opcode 2 + length), `S` a string (opcode 5 + RDB string).
//!
//! ```text
//! U dim | U count | U quant (bits 0-7: 0 NOQUANT f32, 1 Q8 int8, 2 BIN) + M << 8 | U flags
//! [flags & 1: U input_dim | S projection: input_dim x dim f32 LE, row-major by output]
//! count x ( S element | [flags & 2: S attributes JSON, "" = none] | S vector
//!           | U n | n x U params )
//! EOF (opcode 0)
//!
//! vector   NOQUANT  dim x f32 LE, normalized (VEMB multiplies by l2)
//!          Q8       dim x i8: value = q * range / 127 * l2
//!          BIN      ceil(dim / 64) x u64 LE: bit j set = +1, clear = -1 (not scaled)
//! params   id | version << 24 + level | (level + 1) x layer | f32 range << 32 + f32 l2
//! layer    num_links | max_links | num_links x linked node id | [version 1: worst link:
//!          f32 distance << 32 + index]
//! ```
//! Elements are stored newest first. Redis 8.0-8.4 write node version 0, 8.6 version 1;
//! the graph is read and checked exactly as the newest loader checks it (link counts, ids
//! that resolve to a node of that level, no self or duplicate links, every link
//! reciprocal, unique element names), and exposed only as counts.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use crate::ctx::Ctx;
use crate::error::{Error, ErrorKind, Fail, PResult};
use crate::format::module_opcode as op;
use crate::input::{fail, len, string};
use crate::string::RdbString;

/// The module type name vector sets are stored under.
pub const VECTORSET_MODULE: &str = "vectorset";

/// The largest vector dimension a loader accepts (`VSET_MAX_VECTOR_DIM`).
pub const MAX_DIM: u64 = 1 << 16;
/// The highest HNSW level a node can have (`HNSW_MAX_LEVEL`).
const MAX_LEVEL: u64 = 16;
/// The most links a node layer may declare (`HNSW_MAX_M * 4`).
const MAX_LINKS: u64 = 4096 * 4;
/// The newest node serialization version (`HNSW_SERIALIZATION_VERSION`, Redis 8.6).
pub const NEWEST_NODE_VERSION: u8 = 1;
/// M when the file stores 0 (files from before M was configurable).
const DEFAULT_M: u32 = 16;

const FLAG_PROJECTION: u64 = 1;
const FLAG_ATTRIBUTES: u64 = 2;

const WHAT: &str = "vector set";

/// How the vectors of a set are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quantization {
    /// 32-bit floats (`NOQUANT`).
    NoQuant,
    /// 8-bit integers and a per-vector range (`Q8`, the default).
    Q8,
    /// One bit per dimension (`BIN`).
    Bin,
}

impl Quantization {
    fn from_stored(v: u64) -> Option<Self> {
        match v {
            0 => Some(Quantization::NoQuant),
            1 => Some(Quantization::Q8),
            2 => Some(Quantization::Bin),
            _ => None,
        }
    }

    /// The `VADD` option that selects it: `NOQUANT`, `Q8` or `BIN`.
    pub fn vadd_option(self) -> &'static str {
        match self {
            Quantization::NoQuant => "NOQUANT",
            Quantization::Q8 => "Q8",
            Quantization::Bin => "BIN",
        }
    }

    /// The name `VINFO` reports: `f32`, `int8` or `bin`.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::NoQuant => "f32",
            Quantization::Q8 => "int8",
            Quantization::Bin => "bin",
        }
    }

    /// The bytes one stored vector of `dim` dimensions takes (`hnsw_quants_bytes`).
    pub fn vector_bytes(self, dim: u64) -> u64 {
        match self {
            Quantization::NoQuant => dim * 4,
            Quantization::Q8 => dim,
            Quantization::Bin => dim.div_ceil(64) * 8,
        }
    }
}

/// The 54 bits of a module id that hold `vectorset`.
const fn name_bits(name: &[u8]) -> u64 {
    let mut id = 0u64;
    let mut rest = name;
    while let [c, tail @ ..] = rest {
        let pos = match *c {
            b'A'..=b'Z' => *c - b'A',
            b'a'..=b'z' => *c - b'a' + 26,
            b'0'..=b'9' => *c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        id = id << 6 | pos as u64;
        rest = tail;
    }
    id
}

const VECTORSET_BITS: u64 = name_bits(b"vectorset");

/// Whether a module id names the `vectorset` type (any encoding version).
pub(crate) fn is_vectorset_id(id: u64) -> bool {
    id >> 10 == VECTORSET_BITS
}

/// A vector set: its header decoded, its elements decoded one by one by
/// [`VectorSet::elements`].
#[derive(Debug, Clone)]
pub struct VectorSet<'data> {
    dim: u32,
    count: u64,
    quantization: Quantization,
    m: u32,
    flags: u64,
    projection: Option<Projection<'data>>,
    /// The opcodes from `dim` to the first element.
    head: &'data [u8],
    /// The opcodes of the elements and the closing EOF.
    body: &'data [u8],
    ctx: Ctx<'data>,
}

/// The random-projection matrix of a set created with `VADD ... REDUCE`.
#[derive(Debug, Clone, Copy)]
pub struct Projection<'data> {
    input_dim: u32,
    output_dim: u32,
    matrix: RdbString<'data>,
    at: &'data [u8],
    ctx: Ctx<'data>,
}

impl Projection<'_> {
    /// The dimension of the vectors `VADD` takes (before the projection).
    pub fn input_dim(&self) -> u32 {
        self.input_dim
    }

    /// The dimension of the stored vectors (the set's `VDIM`).
    pub fn output_dim(&self) -> u32 {
        self.output_dim
    }

    /// The matrix, `output_dim` rows of `input_dim` values.
    pub fn matrix(&self) -> Result<Vec<f32>, Error> {
        let bytes = self
            .matrix
            .decode()
            .map_err(|f| self.ctx.error(f, self.at))?;
        Ok(f32s(&bytes))
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .filter_map(|c| <[u8; 4]>::try_from(c).ok())
        .map(f32::from_le_bytes)
        .collect()
}

/// Reads an unsigned field: module opcode 2 and a length.
fn uint<'a>(i: &'a [u8], field: &str) -> PResult<'a, u64> {
    let (rest, opcode) = len(i)?;
    if opcode != op::UINT {
        return fail(unexpected(i, opcode, field, "an unsigned (opcode 2)"));
    }
    len(rest)
}

/// Reads a string field: module opcode 5 and an RDB string.
fn text<'a>(i: &'a [u8], field: &str) -> PResult<'a, RdbString<'a>> {
    let (rest, opcode) = len(i)?;
    if opcode != op::STRING {
        return fail(unexpected(i, opcode, field, "a string (opcode 5)"));
    }
    string(rest)
}

fn unexpected(at: &[u8], opcode: u64, field: &str, wanted: &str) -> Fail {
    let found = if opcode == op::EOF {
        "the value's end (opcode 0)".to_string()
    } else {
        format!("opcode {opcode}")
    };
    Fail::corrupt(
        at,
        WHAT,
        format!("expected {field} as {wanted}, found {found}"),
    )
}

fn corrupt<T>(at: &[u8], detail: String) -> PResult<'_, T> {
    fail(Fail::corrupt(at, WHAT, detail))
}

fn bad(at: &[u8], detail: String) -> nom::Err<Fail> {
    nom::Err::Error(Fail::corrupt(at, WHAT, detail))
}

impl<'data> VectorSet<'data> {
    /// Decodes the header of a `vectorset` module value; `raw` is its opcode stream.
    pub(crate) fn parse(raw: &'data [u8], encver: u64, ctx: Ctx<'data>) -> Result<Self, Error> {
        Self::header(raw, encver, ctx).map_err(|e| ctx.error(crate::error::unnom(e), raw))
    }

    fn header(raw: &'data [u8], encver: u64, ctx: Ctx<'data>) -> Result<Self, nom::Err<Fail>> {
        if encver != 0 {
            return Err(nom::Err::Error(Fail::new(
                raw,
                ErrorKind::Unsupported,
                WHAT,
                format!("encoding version {encver}: every Redis writes and loads version 0"),
            )));
        }
        let (rest, dim) = uint(raw, "the dimension")?;
        if dim == 0 || dim > MAX_DIM {
            return Err(bad(raw, format!("dimension {dim}, outside 1..={MAX_DIM}")));
        }
        let (rest, count) = uint(rest, "the element count")?;
        let at_config = rest;
        let (rest, config) = uint(rest, "the quantization")?;
        let quantization = Quantization::from_stored(config & 0xff).ok_or_else(|| {
            nom::Err::Error(Fail::corrupt(
                at_config,
                WHAT,
                format!(
                    "unknown quantization {} (0 NOQUANT, 1 Q8, 2 BIN)",
                    config & 0xff
                ),
            ))
        })?;
        let m = u32::try_from((config >> 8) & 0xffff).unwrap_or(0);
        let (mut rest, flags) = uint(rest, "the flags")?;
        let mut projection = None;
        if flags & FLAG_PROJECTION != 0 {
            let at = rest;
            let (r, input_dim) = uint(rest, "the projection's input dimension")?;
            if input_dim == 0 || input_dim > MAX_DIM || dim > input_dim {
                return Err(bad(
                    at,
                    format!("projection from {input_dim} to {dim} dimensions"),
                ));
            }
            let at_matrix = r;
            let (r, matrix) = text(r, "the projection matrix")?;
            let want = 4 * input_dim * dim;
            if matrix.len() as u64 != want {
                return Err(bad(
                    at_matrix,
                    format!(
                        "projection matrix of {} bytes, {want} expected",
                        matrix.len()
                    ),
                ));
            }
            projection = Some(Projection {
                input_dim: input_dim as u32,
                output_dim: dim as u32,
                matrix,
                at: at_matrix,
                ctx,
            });
            rest = r;
        }
        let head = raw.get(..raw.len() - rest.len()).unwrap_or(&[]);
        Ok(VectorSet {
            dim: dim as u32,
            count,
            quantization,
            m: if m == 0 { DEFAULT_M } else { m },
            flags,
            projection,
            head,
            body: rest,
            ctx,
        })
    }

    /// The stored vectors' dimension (`VDIM`).
    pub fn dim(&self) -> u32 {
        self.dim
    }

    /// The number of elements the header declares (`VCARD`).
    pub fn len(&self) -> u64 {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    /// The HNSW `M` parameter (links per node; 16 unless `VADD ... M` set it).
    pub fn m(&self) -> u32 {
        self.m
    }

    /// Whether elements carry an attributes field (some element has attributes).
    pub fn has_attributes(&self) -> bool {
        self.flags & FLAG_ATTRIBUTES != 0
    }

    /// The `REDUCE` projection, if the set has one.
    pub fn projection(&self) -> Option<&Projection<'data>> {
        self.projection.as_ref()
    }

    /// The header's opcodes as stored (dimension to projection), for writers that
    /// re-encode the elements.
    pub fn head_raw(&self) -> &'data [u8] {
        self.head
    }

    /// The elements in file order (newest first), decoded on `next()`. After the last
    /// one the iterator checks that the value ends there. Fuses after an error.
    pub fn elements(&self) -> VectorSetElements<'data> {
        VectorSetElements {
            rest: self.body,
            left: self.count,
            dim: u64::from(self.dim),
            quantization: self.quantization,
            attributes: self.has_attributes(),
            ctx: self.ctx,
            done: false,
        }
    }

    /// Decodes every element and checks the graph as a loader does; returns the count.
    pub fn validate(&self) -> Result<u64, Error> {
        // Pass 1: names unique, node ids and levels.
        let mut names: HashSet<Cow<'data, [u8]>> = HashSet::new();
        let mut levels: HashMap<u64, u8> = HashMap::new();
        let mut n = 0u64;
        for e in self.elements() {
            let e = e?;
            levels.entry(e.node.id).or_insert(e.node.level);
            if !names.insert(e.name.clone()) {
                let mut shown = String::new();
                let _ = crate::error::write_escaped(&mut shown, &e.name);
                return Err(self.fail(e.at, format!("element \"{shown}\" appears twice")));
            }
            n += 1;
        }
        drop(names);
        // Pass 2: every link resolves to a node of its level, and every link is mutual.
        let mut acc = [0u64; 2];
        for e in self.elements() {
            let e = e?;
            let me = e.node.id;
            for (level, target) in e.node.links() {
                match levels.get(&target) {
                    Some(&l) if u64::from(l) >= level => {}
                    Some(&l) => {
                        return Err(self.fail(
                            e.params,
                            format!(
                                "node {me} links at level {level} to node {target}, \
                                 which has only levels 0..={l}"
                            ),
                        ))
                    }
                    None => {
                        return Err(self.fail(
                            e.params,
                            format!("node {me} links to node {target}, which is not in the set"),
                        ))
                    }
                }
                let (a, b) = if me < target {
                    (me, target)
                } else {
                    (target, me)
                };
                acc[0] ^= mix(a ^ mix(b ^ mix(level)));
                acc[1] ^= mix(b.rotate_left(17) ^ mix(a ^ mix(!level)));
            }
        }
        if acc != [0, 0] {
            return Err(self.fail(
                self.body,
                "a graph link without its reverse link (loaders refuse non-reciprocal links)"
                    .into(),
            ));
        }
        Ok(n)
    }

    fn fail(&self, at: &[u8], detail: String) -> Error {
        self.ctx.error(Fail::corrupt(at, WHAT, detail), at)
    }
}

/// A 64-bit finalizer (MurmurHash3's) for the reciprocity accumulator.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// The elements of a vector set, decoded on `next()`.
#[derive(Debug, Clone)]
pub struct VectorSetElements<'data> {
    rest: &'data [u8],
    left: u64,
    dim: u64,
    quantization: Quantization,
    attributes: bool,
    ctx: Ctx<'data>,
    done: bool,
}

impl<'data> Iterator for VectorSetElements<'data> {
    type Item = Result<VectorSetElement<'data>, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let at = self.rest;
        let step = if self.left == 0 {
            self.done = true;
            match len(at) {
                Ok((_, op::EOF)) => return None,
                Ok((_, opcode)) => Err(Fail::corrupt(
                    at,
                    WHAT,
                    format!("opcode {opcode} after the last declared element"),
                )),
                Err(e) => Err(crate::error::unnom(e)),
            }
        } else {
            self.element().map_err(crate::error::unnom)
        };
        match step {
            Ok(e) => {
                self.left -= 1;
                Some(Ok(e))
            }
            Err(f) => {
                self.done = true;
                Some(Err(self.ctx.error(f, at)))
            }
        }
    }
}

impl<'data> VectorSetElements<'data> {
    fn element(&mut self) -> Result<VectorSetElement<'data>, nom::Err<Fail>> {
        let start = self.rest;
        let (rest, name) = text(start, "an element name")?;
        let name_at = start;
        let name = name
            .decode()
            .map_err(|f| nom::Err::Error(at_origin(f, name_at)))?;
        let (rest, attributes) = if self.attributes {
            let at = rest;
            let (r, a) = text(rest, "the element's attributes")?;
            let a = a.decode().map_err(|f| nom::Err::Error(at_origin(f, at)))?;
            (r, (!a.is_empty()).then_some(a))
        } else {
            (rest, None)
        };
        let vector_at = rest;
        let (rest, stored) = text(rest, "the element's vector")?;
        let want = self.quantization.vector_bytes(self.dim);
        if stored.len() as u64 != want {
            return Err(nom::Err::Error(Fail::corrupt(
                vector_at,
                WHAT,
                format!(
                    "a vector of {} bytes, {want} expected for {} dimensions {}",
                    stored.len(),
                    self.dim,
                    self.quantization.vadd_option()
                ),
            )));
        }
        let bytes = stored
            .decode()
            .map_err(|f| nom::Err::Error(at_origin(f, vector_at)))?;
        let strings = start.get(..start.len() - rest.len()).unwrap_or(&[]);
        let params = rest;
        let (rest, node) = Node::parse(rest)?;
        self.rest = rest;
        Ok(VectorSetElement {
            name,
            attributes,
            vector: Vector {
                quantization: self.quantization,
                dim: self.dim as usize,
                bytes,
                l2: node.l2,
                range: node.range,
            },
            node,
            strings,
            params: params.get(..params.len() - rest.len()).unwrap_or(&[]),
            at: start,
        })
    }
}

/// A failure inside a decompressed string is reported at the string.
fn at_origin(mut f: Fail, origin: &[u8]) -> Fail {
    f.at = origin.as_ptr() as usize;
    f
}

/// One element of a vector set.
#[derive(Debug, Clone)]
pub struct VectorSetElement<'data> {
    name: Cow<'data, [u8]>,
    attributes: Option<Cow<'data, [u8]>>,
    vector: Vector<'data>,
    node: Node<'data>,
    strings: &'data [u8],
    params: &'data [u8],
    at: &'data [u8],
}

impl<'data> VectorSetElement<'data> {
    /// The element (`VADD`'s element argument).
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The attributes (`VGETATTR`), a JSON text; `None` when the element has none.
    pub fn attributes(&self) -> Option<&[u8]> {
        self.attributes.as_deref()
    }

    pub fn vector(&self) -> &Vector<'data> {
        &self.vector
    }

    /// The node's HNSW level (0 = only the bottom layer).
    pub fn level(&self) -> u8 {
        self.node.level
    }

    /// How many graph links the node has, over all its layers.
    pub fn link_count(&self) -> u64 {
        self.node.link_total
    }

    /// The node's serialization version: 0 (Redis 8.0-8.4) or 1 (8.6, with each layer's
    /// worst link).
    pub fn node_version(&self) -> u8 {
        self.node.version
    }

    /// The link capacity (`max_links`) stored for layer `layer` of the node; `None` above
    /// its level.
    pub fn max_links(&self, layer: u8) -> Option<u64> {
        if layer > self.node.level {
            return None;
        }
        let mut walk = ParamWalk::new(self.node.raw);
        walk.next_param()?;
        walk.next_param()?;
        for l in 0..=layer {
            let num = walk.next_param()?;
            let max = walk.next_param()?;
            if l == layer {
                return Some(max);
            }
            for _ in 0..num {
                walk.next_param()?;
            }
            if self.node.version >= 1 {
                walk.next_param()?;
            }
        }
        None
    }

    /// The name, attributes and vector opcodes as stored, for writers that re-encode the
    /// graph.
    pub fn strings_raw(&self) -> &'data [u8] {
        self.strings
    }

    /// The node's HNSW parameters re-serialized for node `version`: the same graph, with
    /// each layer's worst-link word dropped for version 0. `None` when that cannot be done
    /// (version 1 from a version 0 node, whose worst links were never stored).
    pub fn hnsw_params(&self, version: u8) -> Option<Vec<u64>> {
        if version > NEWEST_NODE_VERSION || version > self.node.version {
            return None;
        }
        let mut out = Vec::new();
        let mut walk = ParamWalk::new(self.node.raw);
        out.push(walk.next_param()?);
        let level_word = walk.next_param()?;
        out.push(level_word & !0xff00_0000 | u64::from(version) << 24);
        for _ in 0..=self.node.level {
            let num = walk.next_param()?;
            out.push(num);
            out.push(walk.next_param()?);
            for _ in 0..num {
                out.push(walk.next_param()?);
            }
            if self.node.version >= 1 {
                let worst = walk.next_param()?;
                if version >= 1 {
                    out.push(worst);
                }
            }
        }
        out.push(walk.next_param()?);
        Some(out)
    }
}

/// A stored vector, in its quantization.
#[derive(Debug, Clone)]
pub struct Vector<'data> {
    quantization: Quantization,
    dim: usize,
    bytes: Cow<'data, [u8]>,
    l2: f32,
    range: f32,
}

impl Vector<'_> {
    pub fn quantization(&self) -> Quantization {
        self.quantization
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The vector as stored: normalized f32 LE, int8 or packed bits.
    pub fn stored(&self) -> &[u8] {
        &self.bytes
    }

    /// The L2 norm the vector was divided by before it was stored.
    pub fn l2(&self) -> f32 {
        self.l2
    }

    /// The Q8 quantization range (0 for the other quantizations).
    pub fn range(&self) -> f32 {
        self.range
    }

    /// Component `j`, de-quantized and de-normalized exactly as `VEMB` computes it.
    pub fn get(&self, j: usize) -> Option<f32> {
        if j >= self.dim {
            return None;
        }
        let b = self.bytes.as_ref();
        Some(match self.quantization {
            Quantization::NoQuant => {
                let c = b.get(j * 4..j * 4 + 4)?;
                f32::from_le_bytes(<[u8; 4]>::try_from(c).ok()?) * self.l2
            }
            Quantization::Q8 => {
                let q = *b.get(j)? as i8;
                (f32::from(q) * self.range) / 127.0 * self.l2
            }
            Quantization::Bin => {
                let byte = *b.get(j / 8)?;
                if byte >> (j % 8) & 1 == 1 {
                    1.0
                } else {
                    -1.0
                }
            }
        })
    }

    /// Every component as `VEMB` returns it.
    pub fn to_f32(&self) -> Vec<f32> {
        (0..self.dim).filter_map(|j| self.get(j)).collect()
    }
}

/// One node's HNSW parameters, checked.
#[derive(Debug, Clone, Copy)]
struct Node<'data> {
    id: u64,
    level: u8,
    version: u8,
    link_total: u64,
    l2: f32,
    range: f32,
    /// The parameters as stored, after the count.
    raw: &'data [u8],
}

impl<'data> Node<'data> {
    fn parse(i: &'data [u8]) -> PResult<'data, Node<'data>> {
        let (rest, n) = uint(i, "the node's parameter count")?;
        let raw = rest;
        let mut left = n;
        let mut at = rest;
        let mut rest = rest;
        let mut param = |rest: &mut &'data [u8], at: &mut &'data [u8], what: &str| {
            *at = rest;
            if left == 0 {
                return Err(nom::Err::Error(Fail::corrupt(
                    i,
                    WHAT,
                    format!("the node's {n} parameters end before its {what}"),
                )));
            }
            left -= 1;
            let (r, v) = uint(rest, "a node parameter")?;
            *rest = r;
            Ok(v)
        };
        let id = param(&mut rest, &mut at, "id")?;
        let word = param(&mut rest, &mut at, "level")?;
        let version = (word >> 24 & 0xff) as u8;
        let level = word & 0xff;
        if version > NEWEST_NODE_VERSION {
            return corrupt(
                at,
                format!("node serialization version {version}, newer than any Redis writes"),
            );
        }
        if level > MAX_LEVEL {
            return corrupt(at, format!("node level {level}, above {MAX_LEVEL}"));
        }
        let mut link_total = 0u64;
        let mut links = Vec::new();
        for layer in 0..=level {
            let layer_at = rest;
            let num = param(&mut rest, &mut at, "link count")?;
            let max = param(&mut rest, &mut at, "link capacity")?;
            if num > max || max > MAX_LINKS {
                return corrupt(
                    layer_at,
                    format!("layer {layer}: {num} links of {max} (at most {MAX_LINKS})"),
                );
            }
            links.clear();
            for _ in 0..num {
                let target = param(&mut rest, &mut at, "links")?;
                if target == id {
                    return corrupt(at, format!("node {id} links to itself at layer {layer}"));
                }
                links.push(target);
            }
            links.sort_unstable();
            if links.windows(2).any(|w| w.first() == w.get(1)) {
                return corrupt(
                    layer_at,
                    format!("node {id} has a duplicate link at layer {layer}"),
                );
            }
            if version >= 1 {
                let worst = param(&mut rest, &mut at, "worst link")?;
                if num > 0 && worst & 0xffff_ffff >= num {
                    return corrupt(
                        at,
                        format!("layer {layer}: worst link {} of {num}", worst & 0xffff_ffff),
                    );
                }
            }
            link_total += num;
        }
        let packed = param(&mut rest, &mut at, "norm and range")?;
        // Parameters past the last one are ignored by the loader, and here.
        for _ in 0..left {
            rest = uint(rest, "a node parameter")?.0;
        }
        let raw = raw.get(..raw.len() - rest.len()).unwrap_or(&[]);
        Ok((
            rest,
            Node {
                id,
                level: level as u8,
                version,
                link_total,
                l2: f32::from_bits(packed as u32),
                range: f32::from_bits((packed >> 32) as u32),
                raw,
            },
        ))
    }

    /// `(layer, linked node id)` of every link.
    fn links(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut walk = ParamWalk::new(self.raw);
        let mut out = Vec::with_capacity(self.link_total as usize);
        let _ = (|| -> Option<()> {
            walk.next_param()?;
            walk.next_param()?;
            for layer in 0..=u64::from(self.level) {
                let num = walk.next_param()?;
                walk.next_param()?;
                for _ in 0..num {
                    out.push((layer, walk.next_param()?));
                }
                if self.version >= 1 {
                    walk.next_param()?;
                }
            }
            Some(())
        })();
        out.into_iter()
    }
}

/// Re-reads parameters [`Node::parse`] has checked.
struct ParamWalk<'a> {
    rest: &'a [u8],
}

impl<'a> ParamWalk<'a> {
    fn new(raw: &'a [u8]) -> Self {
        ParamWalk { rest: raw }
    }

    fn next_param(&mut self) -> Option<u64> {
        let (r, v) = uint(self.rest, "a node parameter").ok()?;
        self.rest = r;
        Some(v)
    }
}
