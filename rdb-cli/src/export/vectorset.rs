//! Vector sets (`VADD`, the `vectorset` type built into Redis 8.0+) in the export formats:
//! decoded into JSON, and re-created with plain `VADD` commands.
//!
//! JSON (`value` of a `module` key line):
//! `{"module":"vectorset","encver":0,"vector_set":{"dim":D,"quantization":"Q8","m":16,
//! "reduce":null|{"input_dim":N,"matrix":[...]},"elements":[{"element":B,"vector":[...],
//! "attributes":B|null},...]}}`; vectors are the values `VEMB` returns.
//!
//! Commands: one `VADD key [REDUCE D] VALUES n v... element NOQUANT|Q8|BIN [M m]
//! [SETATTR json]` per element, oldest first (the file stores them newest first). A
//! REDUCE set stores only projected vectors; `VADD ... REDUCE` wants the input ones, so
//! each is given as its least-norm pre-image under the stored matrix (the matrix's
//! transpose: Redis' projection has orthonormal rows), which the target, building the
//! same matrix, projects back to the stored vector.

use rdb_parser::{Module, VectorSet, VectorSetElement, VectorSetElements};

use super::jsonl::Line;
use super::resp::{NativeError, NativeOptions};
use super::ModuleType;
use crate::json;
use crate::resp::Cmd;

pub const TYPE: ModuleType = ModuleType {
    name: rdb_parser::vectorset::VECTORSET_MODULE,
    json: write_json,
    commands,
};

/// A float as JSON: a number, or `"nan"`, `"inf"`, `"-inf"` (as scores are).
fn number(out: &mut Vec<u8>, v: f32) {
    if v.is_finite() {
        let _ = serde_json::to_writer(&mut *out, &v);
    } else {
        json::score(out, f64::from(v));
    }
}

/// How many numbers go into the line between two [`Line::spill`]s: a REDUCE matrix can
/// hold millions.
const NUMBERS_PER_SPILL: usize = 4096;

/// A JSON array of floats; false when a worker's line gave up (see [`Line::spill`]).
fn numbers(line: &mut Line<'_, '_>, values: &[f32]) -> bool {
    line.push(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            line.push(b',');
            if i % NUMBERS_PER_SPILL == 0 && line.spill() {
                return false;
            }
        }
        number(line, *v);
    }
    line.push(b']');
    true
}

/// The `value` of a vector set's line, written element by element (newest first, as
/// stored) and spilled after each, so a set of any size goes out in pieces.
fn write_json(line: &mut Line<'_, '_>, m: &Module<'_>) -> Result<(), rdb_parser::Error> {
    line.extend_from_slice(b"{\"module\":");
    json::string(line, &m.id.name());
    line.extend_from_slice(b",\"encver\":");
    json::int(line, m.id.encver());
    // Registered by name, so always a vector set; the opaque form otherwise.
    let Some(set) = m.vector_set() else {
        line.extend_from_slice(b",\"raw\":");
        line.bytes(m.raw);
        line.push(b'}');
        return Ok(());
    };
    let set = set?;
    line.extend_from_slice(b",\"vector_set\":{\"dim\":");
    json::int(line, set.dim());
    line.extend_from_slice(b",\"quantization\":");
    json::string(line, set.quantization().vadd_option());
    line.extend_from_slice(b",\"m\":");
    json::int(line, set.m());
    line.extend_from_slice(b",\"reduce\":");
    match set.projection() {
        Some(p) => {
            line.extend_from_slice(b"{\"input_dim\":");
            json::int(line, p.input_dim());
            line.extend_from_slice(b",\"matrix\":");
            if !numbers(line, &p.matrix()?) {
                return Ok(());
            }
            line.push(b'}');
        }
        None => line.extend_from_slice(b"null"),
    }
    line.extend_from_slice(b",\"elements\":[");
    for (i, e) in set.elements().enumerate() {
        let e = e?;
        if i > 0 {
            line.push(b',');
        }
        line.extend_from_slice(b"{\"element\":");
        line.bytes(e.name());
        line.extend_from_slice(b",\"vector\":");
        if !numbers(line, &e.vector().to_f32()) {
            return Ok(());
        }
        line.extend_from_slice(b",\"attributes\":");
        match e.attributes() {
            Some(a) => line.bytes(a),
            None => line.extend_from_slice(b"null"),
        }
        line.push(b'}');
        if line.spill() {
            return Ok(());
        }
    }
    line.extend_from_slice(b"]}}");
    Ok(())
}

fn commands(
    key: &[u8],
    m: &Module<'_>,
    o: &NativeOptions,
    emit: &mut dyn FnMut(Vec<u8>),
) -> Result<(), NativeError> {
    if !o.vector_sets {
        return Err(NativeError::Unsupported(
            "a vector set, and the target has no VADD (vector sets are built into Redis 8.0 \
             and later)"
                .into(),
        ));
    }
    let Some(set) = m.vector_set() else {
        return Err(NativeError::Unsupported(format!(
            "a {} module value has no plain-command form",
            m.id.name()
        )));
    };
    let set = set?;
    let pre_image = match set.projection() {
        Some(p) => Some(PreImage::new(p.matrix()?, p.input_dim(), p.output_dim())?),
        None => None,
    };
    let quant = set.quantization().vadd_option();
    // Oldest first, as they were added; the file holds them newest first.
    oldest_first(&set, |e| {
        let stored = e.vector().to_f32();
        let (values, reduce) = match &pre_image {
            Some(p) => (p.of(&stored), Some(set.dim())),
            None => (stored, None),
        };
        let mut cmd = Cmd::new("VADD");
        cmd.arg(key);
        if let Some(dim) = reduce {
            cmd.arg(b"REDUCE").int(i64::from(dim));
        }
        cmd.arg(b"VALUES").int(values.len() as i64);
        for v in &values {
            cmd.arg(v.to_string().as_bytes());
        }
        cmd.arg(e.name()).arg(quant.as_bytes());
        if set.m() != 16 {
            cmd.arg(b"M").int(i64::from(set.m()));
        }
        if let Some(a) = e.attributes() {
            cmd.arg(b"SETATTR").arg(a);
        }
        emit(cmd.finish_ref());
    })
}

/// Most elements decoded at once when walking a set backwards.
const BLOCK_ELEMENTS: usize = 1024;
/// Most decoded bytes (names, attributes, vectors) held at once when walking backwards:
/// a block ends at whichever limit comes first.
const BLOCK_BYTES: usize = 4 << 20;

/// Calls `each` with the elements of `set` oldest first (the reverse of file order)
/// without holding them all: a first pass decodes every element (so a corrupt one stops
/// the walk before anything is emitted) and keeps the iterator's position at the start
/// of each block; then the blocks, last first, are decoded again and walked backwards.
fn oldest_first<'data>(
    set: &VectorSet<'data>,
    mut each: impl FnMut(&VectorSetElement<'data>),
) -> Result<(), NativeError> {
    let mut blocks: Vec<(VectorSetElements<'data>, usize)> = Vec::new();
    let mut it = set.elements();
    loop {
        let start = it.clone();
        let (mut count, mut bytes) = (0usize, 0usize);
        while count < BLOCK_ELEMENTS && bytes < BLOCK_BYTES {
            let Some(e) = it.next() else { break };
            let e = e?;
            count += 1;
            bytes += decoded_size(&e);
        }
        if count == 0 {
            break;
        }
        blocks.push((start, count));
    }
    for (start, count) in blocks.into_iter().rev() {
        let block: Vec<_> = start.take(count).collect::<Result<_, _>>()?;
        for e in block.iter().rev() {
            each(e);
        }
    }
    Ok(())
}

/// What one decoded element holds (its decompressed strings, and its vector as floats).
fn decoded_size(e: &VectorSetElement<'_>) -> usize {
    let vector = e.vector().stored().len() + 4 * e.vector().dim();
    e.name().len() + e.attributes().map_or(0, <[u8]>::len) + vector + 256
}

/// Input vectors that the stored projection maps to given stored vectors.
struct PreImage {
    /// `output_dim` rows of `input_dim`.
    matrix: Vec<f32>,
    input_dim: usize,
}

impl PreImage {
    /// Checks that the rows are orthonormal (P Pᵀ = I, as Redis builds the matrix), so
    /// that Pᵀ y is the least-norm x with P x = y.
    fn new(matrix: Vec<f32>, input_dim: u32, output_dim: u32) -> Result<PreImage, NativeError> {
        let (n, rows) = (input_dim as usize, output_dim as usize);
        let row = |r: usize| matrix.get(r * n..(r + 1) * n).unwrap_or_default();
        for a in 0..rows {
            for b in a..rows {
                let dot: f64 = row(a)
                    .iter()
                    .zip(row(b))
                    .map(|(x, y)| f64::from(*x) * f64::from(*y))
                    .sum();
                let want = if a == b { 1.0 } else { 0.0 };
                if (dot - want).abs() > 1e-3 {
                    return Err(NativeError::Unsupported(format!(
                        "a vector set whose REDUCE matrix is not the one Redis builds (rows \
                         {a} and {b}: {dot}), so VADD ... REDUCE would not give its vectors \
                         back"
                    )));
                }
            }
        }
        Ok(PreImage {
            matrix,
            input_dim: n,
        })
    }

    /// Pᵀ y.
    fn of(&self, y: &[f32]) -> Vec<f32> {
        let mut x = vec![0f32; self.input_dim];
        for (r, yr) in y.iter().enumerate() {
            let row = self
                .matrix
                .get(r * self.input_dim..(r + 1) * self.input_dim)
                .unwrap_or_default();
            for (xj, pj) in x.iter_mut().zip(row) {
                *xj += pj * yr;
            }
        }
        x
    }
}
