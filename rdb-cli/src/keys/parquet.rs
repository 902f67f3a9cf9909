//! The Parquet writer: records gathered into row groups bounded in rows and key bytes,
//! each written out as soon as it is full, through the Apache `parquet` crate's column
//! writers (no Arrow: the schema is fixed, docs/keys.md).

use std::io::Write;
use std::sync::Arc;

use bytes::Bytes;
use parquet::basic::Compression;
use parquet::data_type::{ByteArray, ByteArrayType, Int32Type, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;

use super::{Options, Record, Sink};
use crate::Failure;

/// The schema, in the order of the CSV columns.
const SCHEMA: &str = "message rdbkit_keys {
    required binary file (STRING);
    optional binary cluster (STRING);
    optional binary instance (STRING);
    required int64 db;
    required binary key;
    required binary type (STRING);
    required binary encoding (STRING);
    required int64 rdb_size;
    required int64 memory;
    required int64 member_count;
    optional int64 largest_element;
    optional int64 expire_at;
    optional int64 idle_s;
    optional int32 freq;
    required int32 slot;
    optional binary hash_tag;
}";

/// A row group is written once it holds this many rows...
pub const GROUP_ROWS: usize = 128 * 1024;
/// ...or this many bytes of keys (a few huge keys must not hold the memory up).
const GROUP_KEY_BYTES: usize = 64 << 20;
/// The columns of a few distinct values, dictionary-encoded.
const DICTIONARY_COLUMNS: [&str; 7] = [
    "file", "cluster", "instance", "db", "type", "encoding", "freq",
];
/// Min/max statistics of binary columns keep this many bytes of a key.
const STATS_TRUNCATE: usize = 64;

/// Gathers the rows of a row group on the calling thread; full groups are encoded and
/// written by a thread of their own (a profile showed the encoding and SNAPPY on the
/// pipeline's sink thread, while the parse thread waited), one group queued at most.
pub struct ParquetSink<W: Write + Send + 'static> {
    to_writer: Option<std::sync::mpsc::SyncSender<Group>>,
    writer: Option<std::thread::JoinHandle<Result<(W, u64), Failure>>>,
    group: Group,
    file: ByteArray,
    group_rows: usize,
}

/// The file being written, on the writer thread.
struct GroupWriter<W: Write + Send> {
    writer: SerializedFileWriter<W>,
    cluster: Option<ByteArray>,
    instance: Option<ByteArray>,
    row_groups: u64,
}

/// The rows of the row group being gathered, column by column.
#[derive(Default)]
struct Group {
    rows: usize,
    file: Vec<ByteArray>,
    db: Vec<i64>,
    /// Every key's bytes one after the other, and where each ends.
    key_bytes: Vec<u8>,
    key_ends: Vec<usize>,
    type_name: Vec<ByteArray>,
    encoding: Vec<ByteArray>,
    rdb_size: Vec<i64>,
    memory: Vec<i64>,
    members: Vec<i64>,
    largest: Nullable<i64>,
    expire_at: Nullable<i64>,
    idle_s: Nullable<i64>,
    freq: Nullable<i32>,
    slot: Vec<i32>,
    /// The tag's range within `key_bytes`, and a definition level per row.
    tags: Vec<(usize, usize)>,
    tag_levels: Vec<i16>,
}

/// An optional column: the present values and a definition level per row.
struct Nullable<T> {
    values: Vec<T>,
    levels: Vec<i16>,
}

impl<T> Default for Nullable<T> {
    fn default() -> Self {
        Nullable {
            values: Vec::new(),
            levels: Vec::new(),
        }
    }
}

impl<T> Nullable<T> {
    fn push(&mut self, v: Option<T>) {
        match v {
            Some(v) => {
                self.values.push(v);
                self.levels.push(1);
            }
            None => self.levels.push(0),
        }
    }
}

fn pq(e: parquet::errors::ParquetError) -> Failure {
    Failure::Io(std::io::Error::other(format!("writing Parquet: {e}")))
}

fn int64(v: u64, what: &str, r: &Record<'_>) -> Result<i64, Failure> {
    i64::try_from(v).map_err(|_| {
        Failure::Refused(format!(
            "db {} key {:?} (offset {}): {what} {v} does not fit a Parquet INT64",
            r.db,
            String::from_utf8_lossy(&r.key),
            r.offset
        ))
    })
}

impl<W: Write + Send + 'static> ParquetSink<W> {
    pub fn new(out: W, options: &Options) -> Result<Self, Failure> {
        let schema = Arc::new(parquet::schema::parser::parse_message_type(SCHEMA).map_err(pq)?);
        let mut props = WriterProperties::builder()
            .set_compression(Compression::SNAPPY)
            .set_created_by(format!("rdbkit {}", env!("CARGO_PKG_VERSION")))
            // Sizes, times and keys are mostly distinct: a dictionary would be built for
            // each page and dropped (it cost a tenth of the run). Only the columns of a
            // few values keep one.
            .set_dictionary_enabled(false)
            .set_statistics_truncate_length(Some(STATS_TRUNCATE))
            .set_column_index_truncate_length(Some(STATS_TRUNCATE));
        for column in DICTIONARY_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), true);
        }
        // Keys come in hash order: their min/max prune nothing, and comparing every key
        // cost 7% of the run.
        for column in ["key", "hash_tag"] {
            props = props.set_column_statistics_enabled(
                ColumnPath::from(column),
                parquet::file::properties::EnabledStatistics::None,
            );
        }
        let props = props.build();
        let writer = SerializedFileWriter::new(out, schema, Arc::new(props)).map_err(pq)?;
        let label = |l: &Option<String>| l.as_ref().map(|s| ByteArray::from(s.as_bytes().to_vec()));
        let mut w = GroupWriter {
            writer,
            cluster: label(&options.cluster),
            instance: label(&options.instance),
            row_groups: 0,
        };
        let (to_writer, groups) = std::sync::mpsc::sync_channel::<Group>(1);
        let writer = std::thread::Builder::new()
            .name("rdbkit-parquet".into())
            .spawn(move || {
                for g in groups {
                    w.write(g)?;
                }
                let rows = w.row_groups;
                Ok((w.writer.into_inner().map_err(pq)?, rows))
            })
            .map_err(Failure::Io)?;
        Ok(ParquetSink {
            to_writer: Some(to_writer),
            writer: Some(writer),
            group: Group::default(),
            file: ByteArray::from(Vec::new()),
            group_rows: options.row_group_rows.max(1),
        })
    }

    /// Writes the last row group and the footer; returns the output and the row groups.
    pub fn finish(mut self) -> Result<(W, u64), Failure> {
        self.flush()?;
        self.to_writer = None;
        self.join()
    }

    /// Hands the gathered rows to the writer thread.
    fn flush(&mut self) -> Result<(), Failure> {
        if self.group.rows == 0 {
            return Ok(());
        }
        let g = std::mem::take(&mut self.group);
        if let Some(tx) = &self.to_writer {
            if tx.send(g).is_ok() {
                return Ok(());
            }
        }
        // The writer stopped: its error says why.
        self.to_writer = None;
        match self.join() {
            Err(e) => Err(e),
            Ok(_) => Err(writer_gone()),
        }
    }

    fn join(&mut self) -> Result<(W, u64), Failure> {
        match self.writer.take().map(|h| h.join()) {
            Some(Ok(result)) => result,
            _ => Err(writer_gone()),
        }
    }
}

fn writer_gone() -> Failure {
    Failure::Io(std::io::Error::other("the Parquet writer thread stopped"))
}

/// On an error before `finish`: the writer thread ends and drops the output (an
/// unfinished output file removes itself) before the command returns.
impl<W: Write + Send + 'static> Drop for ParquetSink<W> {
    fn drop(&mut self) {
        self.to_writer = None;
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

impl<W: Write + Send> GroupWriter<W> {
    /// Encodes and writes one row group.
    fn write(&mut self, g: Group) -> Result<(), Failure> {
        let keys = Bytes::from(g.key_bytes);
        let mut start = 0;
        let key_values: Vec<ByteArray> = g
            .key_ends
            .iter()
            .map(|&end| {
                let k = ByteArray::from(keys.slice(start..end));
                start = end;
                k
            })
            .collect();
        let tag_values: Vec<ByteArray> = g
            .tags
            .iter()
            .map(|&(a, b)| ByteArray::from(keys.slice(a..b)))
            .collect();
        let rows = g.rows;
        let repeat = |v: &Option<ByteArray>| -> (Vec<ByteArray>, Vec<i16>) {
            match v {
                Some(v) => (vec![v.clone(); rows], vec![1; rows]),
                None => (Vec::new(), vec![0; rows]),
            }
        };
        let (cluster, cluster_levels) = repeat(&self.cluster);
        let (instance, instance_levels) = repeat(&self.instance);
        let mut rg = self.writer.next_row_group().map_err(pq)?;
        let mut index = 0;
        while let Some(mut col) = rg.next_column().map_err(pq)? {
            let written = match index {
                0 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&g.file, None, None),
                1 => {
                    col.typed::<ByteArrayType>()
                        .write_batch(&cluster, Some(&cluster_levels), None)
                }
                2 => col.typed::<ByteArrayType>().write_batch(
                    &instance,
                    Some(&instance_levels),
                    None,
                ),
                3 => col.typed::<Int64Type>().write_batch(&g.db, None, None),
                4 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&key_values, None, None),
                5 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&g.type_name, None, None),
                6 => col
                    .typed::<ByteArrayType>()
                    .write_batch(&g.encoding, None, None),
                7 => col
                    .typed::<Int64Type>()
                    .write_batch(&g.rdb_size, None, None),
                8 => col.typed::<Int64Type>().write_batch(&g.memory, None, None),
                9 => col.typed::<Int64Type>().write_batch(&g.members, None, None),
                10 => col.typed::<Int64Type>().write_batch(
                    &g.largest.values,
                    Some(&g.largest.levels),
                    None,
                ),
                11 => col.typed::<Int64Type>().write_batch(
                    &g.expire_at.values,
                    Some(&g.expire_at.levels),
                    None,
                ),
                12 => col.typed::<Int64Type>().write_batch(
                    &g.idle_s.values,
                    Some(&g.idle_s.levels),
                    None,
                ),
                13 => {
                    col.typed::<Int32Type>()
                        .write_batch(&g.freq.values, Some(&g.freq.levels), None)
                }
                14 => col.typed::<Int32Type>().write_batch(&g.slot, None, None),
                15 => {
                    col.typed::<ByteArrayType>()
                        .write_batch(&tag_values, Some(&g.tag_levels), None)
                }
                _ => Err(parquet::errors::ParquetError::General(format!(
                    "schema has an unexpected column {index}"
                ))),
            };
            written.map_err(pq)?;
            col.close().map_err(pq)?;
            index += 1;
        }
        rg.close().map_err(pq)?;
        self.row_groups += 1;
        Ok(())
    }
}

impl<W: Write + Send + 'static> Sink for ParquetSink<W> {
    fn begin_file(&mut self, name: &str) {
        self.file = ByteArray::from(name.as_bytes().to_vec());
    }

    fn record(&mut self, r: &Record<'_>) -> Result<(), Failure> {
        let db = int64(r.db, "db", r)?;
        let rdb_size = int64(r.rdb_size, "rdb_size", r)?;
        let memory = int64(r.memory, "memory", r)?;
        let members = int64(r.members, "member_count", r)?;
        let largest = r
            .largest
            .map(|v| int64(v, "largest_element", r))
            .transpose()?;
        // An LRU idle time past i64 cannot come from a real server; keep the order.
        let idle = r.idle_s.map(|v| i64::try_from(v).unwrap_or(i64::MAX));
        let g = &mut self.group;
        g.rows += 1;
        // A clone of `Bytes`: a reference count, not a copy.
        g.file.push(self.file.clone());
        g.db.push(db);
        let start = g.key_bytes.len();
        g.key_bytes.extend_from_slice(&r.key);
        g.key_ends.push(g.key_bytes.len());
        g.type_name
            .push(ByteArray::from(Bytes::from_static(r.type_name.as_bytes())));
        g.encoding
            .push(ByteArray::from(Bytes::from_static(r.encoding.as_bytes())));
        g.rdb_size.push(rdb_size);
        g.memory.push(memory);
        g.members.push(members);
        g.largest.push(largest);
        g.expire_at.push(r.expire_ms);
        g.idle_s.push(idle);
        g.freq.push(r.freq.map(i32::from));
        g.slot.push(i32::from(r.slot));
        match r.hash_tag_range() {
            Some(tag) => {
                g.tags.push((start + tag.start, start + tag.end));
                g.tag_levels.push(1);
            }
            None => g.tag_levels.push(0),
        }
        if g.rows >= self.group_rows || g.key_bytes.len() >= GROUP_KEY_BYTES {
            self.flush()?;
        }
        Ok(())
    }
}
