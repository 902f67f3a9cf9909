//! `rdbkit keys`: one record per key (file, db, key, type, encoding, sizes, memory
//! estimate, element count and largest element, expiry, idle/freq, slot, hash tag) for
//! the engines people query keyspaces with: Parquet, CSV, JSON Lines, and the memory
//! report CSV of redis-rdb-tools. Columns and types: docs/keys.md.
//!
//! Each input is read once through the ordered parallel pipeline: the facts of a key are
//! measured on every core and the records reach the writer in file order. The writer holds
//! at most one Parquet row group (bounded in rows and key bytes) or one buffer of text, so
//! memory stays flat whatever the size of the inputs.

mod parquet;
pub mod text;

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;

use rdb_parser::{Element, Entry, Item, ParserBuilder, Value};
use rdb_pipeline::Spanned;
use rdb_writer::filter::Filter;
use rdb_writer::slot::hash_tag;

use crate::stats::memory::{Allocator, Model};
use crate::Failure;

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Csv,
    Jsonl,
    /// redis-rdb-tools' `-c memory` CSV.
    Rdbtools,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Parquet => "parquet",
            Format::Csv => "csv",
            Format::Jsonl => "jsonl",
            Format::Rdbtools => "rdbtools",
        }
    }

    /// The format an output file's extension names (`.parquet`, `.csv`, `.jsonl`/`.ndjson`,
    /// each optionally before nothing else).
    pub fn from_extension(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "parquet" | "pq" => Some(Format::Parquet),
            "csv" => Some(Format::Csv),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// What `rdbkit keys` is asked to write.
#[derive(Debug, Clone)]
pub struct Options {
    pub format: Format,
    /// Written in the `cluster` column of every record (null when `None`).
    pub cluster: Option<String>,
    /// Written in the `instance` column of every record (null when `None`).
    pub instance: Option<String>,
    /// Which keys get a record.
    pub filter: Filter,
    /// Source db -> the db written in the record.
    pub db_map: HashMap<u64, u64>,
    /// The memory model; `None`: from each snapshot's server version, as stats does.
    pub model: Option<Model>,
    pub allocator: Allocator,
    /// Parquet: a row group is written once it holds this many rows (or 64 MiB of keys).
    pub row_group_rows: usize,
}

impl Options {
    pub fn new(format: Format) -> Self {
        Options {
            format,
            cluster: None,
            instance: None,
            filter: Filter::default(),
            db_map: HashMap::new(),
            model: None,
            allocator: Allocator::Jemalloc,
            row_group_rows: parquet::GROUP_ROWS,
        }
    }
}

/// One input: the name written in the `file` column and its bytes.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    pub name: &'a str,
    pub data: &'a [u8],
}

/// What a run wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub files: u64,
    /// Records written (one per key).
    pub keys: u64,
    /// Keys the filters left out.
    pub left_out: u64,
    pub input_bytes: u64,
    /// Parquet row groups (0 for the text formats).
    pub row_groups: u64,
}

/// The facts of one key, as written in its record.
#[derive(Debug, Clone)]
pub struct Record<'data> {
    /// The db written (after `--db-map`).
    pub db: u64,
    pub key: Cow<'data, [u8]>,
    pub type_name: &'static str,
    pub encoding: &'static str,
    /// The entry's bytes in the file: expiry/idle/freq opcodes, type, key and value.
    pub rdb_size: u64,
    /// The stats estimate of `MEMORY USAGE`.
    pub memory: u64,
    /// Elements: 1 for strings and module values, entries for streams.
    pub members: u64,
    /// The longest element in bytes (integers as their decimal text); `None` for module
    /// values, whose contents are opaque.
    pub largest: Option<u64>,
    pub expire_ms: Option<i64>,
    pub idle_s: Option<u64>,
    pub freq: Option<u8>,
    pub slot: u16,
    /// The entry's offset in its file.
    pub offset: u64,
}

impl Record<'_> {
    /// The `{...}` part of the key that decides its slot, when it has one.
    pub fn hash_tag(&self) -> Option<&[u8]> {
        self.key.get(self.hash_tag_range()?)
    }

    /// Where [`Record::hash_tag`] sits in the key.
    pub fn hash_tag_range(&self) -> Option<std::ops::Range<usize>> {
        let tag = hash_tag(&self.key);
        // A tag is a slice of its key, strictly shorter (it sits between braces).
        if tag.len() >= self.key.len() {
            return None;
        }
        let start = (tag.as_ptr() as usize).checked_sub(self.key.as_ptr() as usize)?;
        Some(start..start + tag.len())
    }
}

/// Measures one key: the stats facts plus the largest element.
pub fn record<'data>(
    entry: &Entry<'data>,
    span: &[u8],
    model: &Model,
) -> Result<Record<'data>, Failure> {
    let facts = crate::stats::collect::measure(entry, span, model)?;
    Ok(Record {
        db: entry.db,
        key: facts.key,
        type_name: facts.type_name,
        encoding: facts.encoding,
        rdb_size: facts.bytes,
        memory: facts.memory,
        members: facts.elements,
        largest: largest_element(&entry.value)?,
        expire_ms: entry.expire_ms,
        idle_s: entry.idle_s,
        freq: entry.freq,
        slot: facts.slot,
        offset: entry.offset,
    })
}

/// The byte length of the longest element: list items, set and sorted-set members, hash
/// fields and values, stream entry fields and values; a string's own length.
pub fn largest_element(value: &Value<'_>) -> Result<Option<u64>, rdb_parser::Error> {
    fn len(e: &Element<'_>) -> u64 {
        match e {
            Element::Bytes(b) => b.len() as u64,
            Element::Int(v) => decimal_len(*v),
        }
    }
    fn max_of<'a>(
        it: impl Iterator<Item = Result<Element<'a>, rdb_parser::Error>>,
    ) -> Result<u64, rdb_parser::Error> {
        it.map(|e| e.map(|e| len(&e)))
            .try_fold(0, |m, l| l.map(|l| m.max(l)))
    }
    Ok(Some(match value {
        Value::String(s) => s.len() as u64,
        Value::List(l) => max_of(l.iter())?,
        Value::Set(s) => max_of(s.iter())?,
        Value::ZSet(z) => max_of(z.iter().map(|p| p.map(|(member, _)| member)))?,
        Value::Hash(h) => {
            let mut m = 0;
            for f in h.iter() {
                let f = f?;
                m = m.max(len(&f.field)).max(len(&f.value));
            }
            m
        }
        Value::Stream(s) => {
            let mut m = 0;
            let mut entries = s.entries();
            while let Some(e) = entries.next_entry() {
                for (field, value) in &e?.fields {
                    m = m.max(len(field)).max(len(value));
                }
            }
            m
        }
        Value::Module(_) => return Ok(None),
    }))
}

/// Characters of `v` in decimal, sign included.
fn decimal_len(v: i64) -> u64 {
    let digits = v.unsigned_abs().checked_ilog10().map_or(1, |d| d + 1);
    u64::from(digits) + u64::from(v < 0)
}

/// The memory model of one snapshot: `options.model`, else the layout its header and
/// leading AUX fields name (as `stats` decides it).
pub fn model_for(data: &[u8], parser: &ParserBuilder, options: &Options) -> Result<Model, Failure> {
    if let Some(m) = options.model {
        return Ok(m);
    }
    let mut unchecked = parser.clone();
    unchecked.verify_checksum(false);
    let (mut rdb_version, mut magic_valkey) = (0, false);
    let (mut redis_ver, mut valkey_ver) = (None, None);
    for item in unchecked.parse(data)? {
        match item? {
            Item::Header(v) => {
                rdb_version = v.number;
                magic_valkey = v.magic.as_str() == "VALKEY";
            }
            Item::Aux(a) if a.key.as_ref() == b"redis-ver" => {
                redis_ver = Some(String::from_utf8_lossy(&a.value).into_owned());
            }
            Item::Aux(a) if a.key.as_ref() == b"valkey-ver" => {
                valkey_ver = Some(String::from_utf8_lossy(&a.value).into_owned());
            }
            Item::Aux(_) => {}
            // AUX fields come before anything else in every server's files.
            _ => break,
        }
    }
    let server = rdb_writer::server::ServerVersion::from_aux(
        magic_valkey,
        valkey_ver.as_deref(),
        redis_ver.as_deref(),
    );
    Ok(Model {
        layout: Model::for_server(server, rdb_version),
        allocator: options.allocator,
    })
}

/// Where records go: one of the formats' writers.
trait Sink {
    /// The records that follow come from this input.
    fn begin_file(&mut self, name: &str);
    fn record(&mut self, r: &Record<'_>) -> Result<(), Failure>;
    /// For line formats: how workers format a record, for [`Sink::line`].
    fn line_format(&self) -> Option<text::LineFormat> {
        None
    }
    /// A line formatted by a worker, newline included.
    fn line(&mut self, _line: &[u8]) -> Result<(), Failure> {
        Ok(())
    }
}

/// What a worker made of one item.
enum Outcome<'data> {
    NotKey,
    LeftOut,
    Key(Record<'data>),
    /// A key's line, formatted by the worker, and its offset.
    Line(Vec<u8>, u64),
}

/// Writes one record per key of every source to `out`, in the order of the sources and
/// of their files; returns the summary and `out` (to be committed by the caller).
/// `progress` gets the bytes done over all sources.
pub fn write<W: Write + Send + 'static>(
    sources: &[Source<'_>],
    parser: &ParserBuilder,
    options: &Options,
    out: W,
    mut progress: impl FnMut(u64),
) -> Result<(Summary, W), Failure> {
    let mut summary = Summary::default();
    match options.format {
        Format::Parquet => {
            let mut sink = parquet::ParquetSink::new(out, options)?;
            each_source(
                sources,
                parser,
                options,
                &mut sink,
                &mut summary,
                &mut progress,
            )?;
            let (out, row_groups) = sink.finish()?;
            summary.row_groups = row_groups;
            Ok((summary, out))
        }
        format => {
            let mut sink = text::TextSink::new(out, format, options)?;
            each_source(
                sources,
                parser,
                options,
                &mut sink,
                &mut summary,
                &mut progress,
            )?;
            Ok((summary, sink.finish()?))
        }
    }
}

fn each_source(
    sources: &[Source<'_>],
    parser: &ParserBuilder,
    options: &Options,
    sink: &mut dyn Sink,
    summary: &mut Summary,
    progress: &mut dyn FnMut(u64),
) -> Result<(), Failure> {
    let mut done = 0u64;
    let many = sources.len() > 1;
    for source in sources {
        sink.begin_file(source.name);
        let model =
            model_for(source.data, parser, options).map_err(|e| in_source(e, source.name, many))?;
        rdb_pipeline::checked(source.data, parser, |p, eof| {
            one_source(
                source.data,
                p,
                eof,
                options,
                &model,
                sink,
                summary,
                &mut |o| progress(done + o),
            )
        })
        .map_err(|e| in_source(e, source.name, many))?;
        done += source.data.len() as u64;
        summary.files += 1;
        summary.input_bytes += source.data.len() as u64;
        progress(done);
    }
    Ok(())
}

/// With several inputs, a malformed one is named (exit code 1 all the same).
fn in_source(e: Failure, name: &str, many: bool) -> Failure {
    match e {
        Failure::Data(d) if many => Failure::Refused(format!("{name}: {d}")),
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
fn one_source<'data>(
    data: &'data [u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    options: &Options,
    model: &Model,
    sink: &mut dyn Sink,
    summary: &mut Summary,
    progress: &mut dyn FnMut(u64),
) -> Result<(), Failure> {
    let filter = &options.filter;
    let pass_all = filter.is_pass_all();
    let lines = sink.line_format();
    let work = |s: &Spanned<'data>| -> Result<Outcome<'data>, Failure> {
        let Item::Key(entry) = &s.item else {
            return Ok(Outcome::NotKey);
        };
        if !pass_all && !filter.keeps(entry) {
            return Ok(Outcome::LeftOut);
        }
        let mut r = record(entry, s.span, model).map_err(|e| match e {
            Failure::Data(d) => Failure::Data(d.in_key(entry.db, &entry.key)),
            other => other,
        })?;
        if let Some(&to) = options.db_map.get(&r.db) {
            r.db = to;
        }
        if let Some(lines) = &lines {
            let mut line = Vec::with_capacity(128 + r.key.len());
            lines.line(&r, &mut line);
            line.push(b'\n');
            return Ok(Outcome::Line(line, r.offset));
        }
        Ok(Outcome::Key(r))
    };
    let sink_one = |s: Spanned<'data>, outcome: Outcome<'data>| -> Result<(), Failure> {
        match outcome {
            Outcome::Key(r) => {
                sink.record(&r)?;
                summary.keys += 1;
                progress(r.offset);
            }
            Outcome::Line(line, offset) => {
                sink.line(&line)?;
                summary.keys += 1;
                progress(offset);
            }
            Outcome::LeftOut => summary.left_out += 1,
            Outcome::NotKey => {
                if let Item::Eof(eof) = s.item {
                    eof_seen.set(eof);
                }
            }
        }
        Ok(())
    };
    rdb_pipeline::ordered_by_ref(parser.parse(data)?, work, sink_one)
}

fn io(e: std::io::Error) -> Failure {
    Failure::Io(e)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn decimal_lengths_count_the_sign() {
        for v in [0i64, 7, -7, 10, 99, -100, i64::MAX, i64::MIN, 1_000_000] {
            assert_eq!(decimal_len(v), v.to_string().len() as u64, "{v}");
        }
    }

    #[test]
    fn formats_come_from_extensions() {
        use std::path::Path;
        assert_eq!(
            Format::from_extension(Path::new("a/k.parquet")),
            Some(Format::Parquet)
        );
        assert_eq!(
            Format::from_extension(Path::new("k.CSV")),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_extension(Path::new("k.ndjson")),
            Some(Format::Jsonl)
        );
        assert_eq!(Format::from_extension(Path::new("k.txt")), None);
        assert_eq!(Format::from_extension(Path::new("-")), None);
    }
}
