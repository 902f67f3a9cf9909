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

use rdb_parser::Module;

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

fn numbers(out: &mut Vec<u8>, values: &[f32]) {
    out.push(b'[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        number(out, *v);
    }
    out.push(b']');
}

fn write_json(out: &mut Vec<u8>, m: &Module<'_>) -> Result<(), rdb_parser::Error> {
    out.extend_from_slice(b"{\"module\":");
    json::string(out, &m.id.name());
    out.extend_from_slice(b",\"encver\":");
    json::int(out, m.id.encver());
    // Registered by name, so always a vector set; the opaque form otherwise.
    let Some(set) = m.vector_set() else {
        out.extend_from_slice(b",\"raw\":");
        json::bytes(out, m.raw);
        out.push(b'}');
        return Ok(());
    };
    let set = set?;
    out.extend_from_slice(b",\"vector_set\":{\"dim\":");
    json::int(out, set.dim());
    out.extend_from_slice(b",\"quantization\":");
    json::string(out, set.quantization().vadd_option());
    out.extend_from_slice(b",\"m\":");
    json::int(out, set.m());
    out.extend_from_slice(b",\"reduce\":");
    match set.projection() {
        Some(p) => {
            out.extend_from_slice(b"{\"input_dim\":");
            json::int(out, p.input_dim());
            out.extend_from_slice(b",\"matrix\":");
            numbers(out, &p.matrix()?);
            out.push(b'}');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"elements\":[");
    for (i, e) in set.elements().enumerate() {
        let e = e?;
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"element\":");
        json::bytes(out, e.name());
        out.extend_from_slice(b",\"vector\":");
        numbers(out, &e.vector().to_f32());
        out.extend_from_slice(b",\"attributes\":");
        match e.attributes() {
            Some(a) => json::bytes(out, a),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"]}}");
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
    let elements: Vec<_> = set.elements().collect::<Result<_, _>>()?;
    for e in elements.iter().rev() {
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
    }
    Ok(())
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
