//! What a snapshot holds, decoded into plain values, so two files can be compared by
//! content whatever their versions and encodings.
#![allow(dead_code)]

use rdb_parser::{Item, ParserBuilder, Value};

pub type Bytes = Vec<u8>;
/// A stream entry: id (ms, seq) and its fields.
pub type StreamEntry = ((u64, u64), Vec<(Bytes, Bytes)>);

/// A value, fully decoded. Unordered collections are sorted so that encodings that
/// store them in another order compare equal.
#[derive(Debug, Clone, PartialEq)]
pub enum Model {
    String(Bytes),
    List(Vec<Bytes>),
    Set(Vec<Bytes>),
    /// Sorted by member, then score.
    ZSet(Vec<(Bytes, Score)>),
    /// Field, value, field expiry; sorted.
    Hash(Vec<(Bytes, Bytes, Option<i64>)>),
    /// Entry ids (ms, seq) with their fields, in stream order.
    Stream(Vec<StreamEntry>),
    /// Module values are carried opaquely: presence only.
    Module,
}

/// A sorted-set score that equals itself when NaN (a corrupt score still has to survive a
/// conversion) and compares -0 equal to 0 (text scores do not keep the sign of zero).
#[derive(Debug, Clone, Copy)]
pub struct Score(pub f64);

impl PartialEq for Score {
    fn eq(&self, other: &Self) -> bool {
        self.0 == other.0 || (self.0.is_nan() && other.0.is_nan())
    }
}

/// One key of a snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    pub db: u64,
    pub key: Bytes,
    pub expire_ms: Option<i64>,
    pub value: Model,
}

pub fn model(value: &Value<'_>) -> Result<Model, rdb_parser::Error> {
    Ok(match value {
        Value::String(s) => Model::String(s.to_bytes()?.into_owned()),
        Value::List(l) => Model::List(
            l.iter()
                .map(|e| e.map(|e| e.to_bytes().into_owned()))
                .collect::<Result<_, _>>()?,
        ),
        Value::Set(s) => {
            let mut v: Vec<Bytes> = s
                .iter()
                .map(|e| e.map(|e| e.to_bytes().into_owned()))
                .collect::<Result<_, _>>()?;
            v.sort();
            Model::Set(v)
        }
        Value::ZSet(z) => {
            let mut v: Vec<(Bytes, Score)> = z
                .iter()
                .map(|e| e.map(|(m, s)| (m.to_bytes().into_owned(), Score(s))))
                .collect::<Result<_, _>>()?;
            v.sort_by(|a, b| a.0.cmp(&b.0).then(a.1 .0.total_cmp(&b.1 .0)));
            Model::ZSet(v)
        }
        Value::Hash(h) => {
            let mut v: Vec<(Bytes, Bytes, Option<i64>)> = h
                .iter()
                .map(|f| {
                    f.map(|f| {
                        (
                            f.field.to_bytes().into_owned(),
                            f.value.to_bytes().into_owned(),
                            f.expire_ms,
                        )
                    })
                })
                .collect::<Result<_, _>>()?;
            v.sort();
            Model::Hash(v)
        }
        Value::Stream(s) => {
            let mut v = Vec::new();
            s.for_each_entry(|e| {
                let raw = e.id.to_raw();
                let ms = u64::from_be_bytes(raw[..8].try_into().unwrap_or_default());
                let seq = u64::from_be_bytes(raw[8..].try_into().unwrap_or_default());
                let fields = e
                    .fields
                    .iter()
                    .map(|(f, v)| (f.to_bytes().into_owned(), v.to_bytes().into_owned()))
                    .collect();
                v.push(((ms, seq), fields));
                Ok::<(), rdb_parser::Error>(())
            })?;
            Model::Stream(v)
        }
        Value::Module(_) => Model::Module,
    })
}

/// Every key of `file` in file order, or the first error.
pub fn keys(file: &[u8], builder: &ParserBuilder) -> Result<Vec<Key>, rdb_parser::Error> {
    let mut keys = Vec::new();
    for item in builder.parse(file)? {
        if let Item::Key(e) = item? {
            keys.push(Key {
                db: e.db,
                key: e.key.to_vec(),
                expire_ms: e.expire_ms,
                value: model(&e.value)?,
            });
        }
    }
    Ok(keys)
}
