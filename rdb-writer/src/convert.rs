//! Re-encoding a snapshot for a target server version.
//!
//! Every item the target can load is copied byte for byte (its exact span in the source),
//! so a conversion to the source's own version reproduces the file. Only what the target
//! cannot load is transcoded:
//!
//! ```text
//! RDB 12/80 -> 11   hash-field TTL types: policy (error | drop TTLs | drop expired fields)
//!                   SLOT_INFO: dropped (a sizing hint)
//! -> 10             set listpack (20) -> intset (11) or set (2); stream v3 -> v2
//! -> 9              hash/zset listpack -> ziplist (13/12); quicklist v2 -> v1 (14);
//!                   stream -> v1; functions: policy
//! Redis 7.4 <-> Valkey 9   hash-field TTLs re-encoded (24/25 <-> 22), nothing lost
//! ```
//! What the target cannot hold is never dropped silently: the default is an error naming
//! the key; flags choose a loss, and each loss is reported per key.

use std::collections::{HashMap, HashSet};
use std::io::{self, Write};

use rdb_parser::format::{type_id, Magic, Version};
use rdb_parser::{Element, Entry, Function, Hash, Item, ParserBuilder, Stream, Value};

use crate::encode::{self, Compression};
use crate::filter::Filter;
use crate::profile::{is_valkey, ModuleSupport, TargetProfile};
use crate::slot::SlotMap;
use crate::{value, WriterBuilder, ZiplistBuilder};
use rdb_pipeline::{self as pipeline, Spanned};

/// What to do with hash fields that have their own TTL when the target has no such thing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldTtlPolicy {
    /// Stop with an error naming the key (default).
    Error,
    /// Keep every field; make the fields persistent.
    Drop,
    /// Delete fields already expired at `now_ms`, then make the rest persistent.
    DropExpired,
}

/// What to do with a Redis 8.6 stream's idempotent-producer (IDMP) state on a target
/// whose streams have none (every target before RDB 13).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StreamIdmpPolicy {
    /// Stop with an error naming the key (default).
    #[default]
    Error,
    /// Write the stream without it, reporting each stream.
    Drop,
}

/// What to do with function libraries on a target without functions (Redis < 7.0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FunctionPolicy {
    Error,
    /// Leave them out (the caller may save them elsewhere through the loss callback).
    Drop,
}

/// What to do with module values and module aux data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModulePolicy {
    /// Keep them where the target profile has modules, refuse them where it has none.
    Auto,
    Keep,
    Drop,
    Error,
}

/// What to do with databases other than 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbPolicy {
    /// Keep each key in its database; an error where the target keeps only db 0 (default).
    Keep,
    /// Move every key into db 0; a key name found in two databases is an error.
    MergeInto0,
    /// Leave out keys of databases other than 0, reporting each.
    DropOthers,
}

/// Conversion settings.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    pub target: TargetProfile,
    pub field_ttls: FieldTtlPolicy,
    pub stream_idmp: StreamIdmpPolicy,
    pub functions: FunctionPolicy,
    pub modules: ModulePolicy,
    pub dbs: DbPolicy,
    /// Source db -> output db (`--db-map 3:0`); applied under [`DbPolicy::Keep`].
    pub db_map: std::collections::BTreeMap<u64, u64>,
    /// Which keys to keep at all.
    pub filter: Filter,
    /// "Now" for [`FieldTtlPolicy::DropExpired`], in Unix ms.
    pub now_ms: i64,
    pub compression: Compression,
    /// A key found twice where its copies land in one db (one input of [`convert`]):
    /// stop, or keep the first or the last copy. Under [`ConflictPolicy::Error`] only
    /// copies that a db merge brings together are caught here: the caller checks the
    /// input's own duplicates (a full key set costs memory that policy does not need).
    pub conflict: ConflictPolicy,
}

impl ConvertOptions {
    pub fn new(target: TargetProfile) -> Self {
        ConvertOptions {
            target,
            field_ttls: FieldTtlPolicy::Error,
            stream_idmp: StreamIdmpPolicy::Error,
            functions: FunctionPolicy::Error,
            modules: ModulePolicy::Auto,
            dbs: DbPolicy::Keep,
            db_map: Default::default(),
            filter: Filter::default(),
            now_ms: 0,
            compression: Compression::Lzf,
            conflict: ConflictPolicy::Error,
        }
    }

    /// The output db of a source db, or `None` when its keys are left out.
    fn output_db(&self, db: u64) -> Option<u64> {
        match self.dbs {
            DbPolicy::Keep => Some(self.db_map.get(&db).copied().unwrap_or(db)),
            DbPolicy::MergeInto0 => Some(0),
            DbPolicy::DropOthers => (db == 0).then_some(0),
        }
    }

    /// Whether databases are written as they are in the source (SELECTDB and RESIZEDB
    /// copied), which a byte-identical passthrough needs.
    fn dbs_as_stored(&self) -> bool {
        self.dbs == DbPolicy::Keep && self.db_map.iter().all(|(a, b)| a == b)
    }

    /// Whether two source dbs can land in one output db (then a key in both is an error).
    fn dbs_merge(&self) -> bool {
        match self.dbs {
            DbPolicy::MergeInto0 => true,
            DbPolicy::DropOthers => false,
            DbPolicy::Keep => {
                // Any mapped db whose target is also some other db's target.
                let targets: Vec<u64> = self.db_map.values().copied().collect();
                self.db_map.iter().any(|(a, b)| a != b)
                    && (targets.len() != targets.iter().collect::<HashSet<_>>().len()
                        || targets.iter().any(|t| !self.db_map.contains_key(t)))
            }
        }
    }

    fn keep_modules(&self) -> Option<bool> {
        match (self.modules, self.target.modules) {
            (ModulePolicy::Keep, _) => Some(true),
            (ModulePolicy::Drop, _) => Some(false),
            (ModulePolicy::Error, _) | (ModulePolicy::Auto, ModuleSupport::None) => None,
            (ModulePolicy::Auto, _) => Some(true),
        }
    }
}

/// What kind of thing a target cannot take, or a conversion left out: the contract between
/// the writer and its callers (a verdict or a flag is chosen by kind, never by message).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LossKind {
    /// Hash fields with their own TTL, on a target that has none.
    FieldTtls,
    /// Hash fields already expired, deleted by [`FieldTtlPolicy::DropExpired`].
    ExpiredFields,
    /// Function libraries, on a target without functions.
    Functions,
    /// Keys holding a module value.
    ModuleValue,
    /// Module aux data (file-level module state).
    ModuleAux,
    /// Keys of a database the target or the [`DbPolicy`] does not keep.
    Databases,
    /// A database other than 0 in a cluster split.
    ClusterDatabases,
    /// A key found more than once where its copies land in one database.
    DuplicateKey,
    /// Empty collections (read with `allow_empty_keys`): servers skip or refuse them.
    EmptyKey,
    /// Field expiries too far apart for the target's relative field TTLs.
    FieldExpiryRange,
    /// A type the target cannot load and no conversion exists for.
    Type,
    /// A stream's idempotent-producer (IDMP) state (Redis 8.6), on a target without it.
    StreamIdmp,
    /// Module key metadata (Redis 8.6 KEY_META), on a target that cannot load it.
    KeyMeta,
}

impl LossKind {
    /// A stable name, for reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            LossKind::FieldTtls => "field_ttls",
            LossKind::ExpiredFields => "expired_fields",
            LossKind::Functions => "functions",
            LossKind::ModuleValue => "module_values",
            LossKind::ModuleAux => "module_aux",
            LossKind::Databases => "dbs",
            LossKind::ClusterDatabases => "cluster_dbs",
            LossKind::DuplicateKey => "duplicate_keys",
            LossKind::EmptyKey => "empty_keys",
            LossKind::FieldExpiryRange => "field_expiry_range",
            LossKind::Type => "type",
            LossKind::StreamIdmp => "stream_idmp",
            LossKind::KeyMeta => "key_meta",
        }
    }
}

/// One thing the output does not carry over from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss<'a> {
    pub db: Option<u64>,
    pub key: Option<&'a [u8]>,
    pub kind: LossKind,
    /// `dropped`, `field_ttls_dropped`, `expired_fields_dropped`, `function_dropped`,
    /// `module_aux_dropped`, `stream_idmp_dropped`, `key_meta_dropped`.
    pub action: &'static str,
    pub reason: String,
    /// For `function_dropped`: the library source, so it can be loaded separately.
    pub payload: Option<&'a [u8]>,
}

/// Counts of what a conversion did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    pub keys_read: u64,
    pub keys_written: u64,
    /// Keys copied byte for byte.
    pub passed_through: u64,
    /// Keys re-encoded for the target.
    pub transcoded: u64,
    pub keys_dropped: u64,
    pub keys_with_field_ttls_dropped: u64,
    pub fields_dropped: u64,
    /// Redis 8.6 streams written without their IDMP state (`StreamIdmpPolicy::Drop`).
    pub streams_idmp_dropped: u64,
    pub functions_dropped: u64,
    pub module_aux_dropped: u64,
    /// Keys the filters left out (as asked: not a loss).
    pub keys_filtered: u64,
    /// SLOT_INFO / slot-import records left out (sizing hints the target does not read).
    pub hints_dropped: u64,
    pub bytes_written: u64,
    /// Per output file (one, or one per shard): keys and bytes.
    pub outputs: Vec<OutputStats>,
}

/// What one output file received.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutputStats {
    pub keys: u64,
    pub bytes: u64,
}

/// Why a conversion stopped.
#[derive(Debug)]
pub enum ConvertError {
    /// The input is malformed.
    Parse(rdb_parser::Error),
    Io(io::Error),
    /// The target cannot represent something and no flag chose a loss.
    Unrepresentable {
        db: Option<u64>,
        key: Option<Vec<u8>>,
        offset: u64,
        reason: String,
        /// What stands in the way; the caller names the option that accepts the loss.
        kind: LossKind,
    },
}

impl std::fmt::Display for ConvertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConvertError::Parse(e) => write!(f, "{e}"),
            ConvertError::Io(e) => write!(f, "{e}"),
            ConvertError::Unrepresentable {
                db,
                key,
                offset,
                reason,
                kind: _,
            } => {
                write!(f, "cannot convert")?;
                if let Some(key) = key {
                    let mut shown = String::new();
                    let cut = key.get(..64).unwrap_or(key);
                    let _ = rdb_parser::error::write_escaped(&mut shown, cut);
                    write!(f, " key \"{shown}\"")?;
                    if let Some(db) = db {
                        write!(f, " (db {db})")?;
                    }
                }
                write!(f, " at byte {offset}: {reason}")
            }
        }
    }
}

impl std::error::Error for ConvertError {}

impl From<rdb_parser::Error> for ConvertError {
    fn from(e: rdb_parser::Error) -> Self {
        ConvertError::Parse(e)
    }
}

impl From<io::Error> for ConvertError {
    fn from(e: io::Error) -> Self {
        ConvertError::Io(e)
    }
}

impl From<crate::Error> for ConvertError {
    fn from(e: crate::Error) -> Self {
        ConvertError::Io(io::Error::new(io::ErrorKind::InvalidData, e.to_string()))
    }
}

/// How a value reaches the output.
enum Encoded {
    /// The target loads the stored bytes.
    Same,
    /// Re-encoded: new type byte and value bytes.
    New(u8, Vec<u8>),
    /// Nothing of the key remains.
    Dropped(LossKind, String),
}

/// A loss found on a worker thread, reported in file order by the writing thread.
#[derive(Debug)]
struct PendingLoss {
    kind: LossKind,
    action: &'static str,
    reason: String,
}

/// A key's outcome, computed on any core.
struct KeyStep {
    encoded: Encoded,
    losses: Vec<PendingLoss>,
    delta: ConvertSummary,
}

impl ConvertSummary {
    fn absorb(&mut self, d: &ConvertSummary) {
        self.keys_with_field_ttls_dropped += d.keys_with_field_ttls_dropped;
        self.fields_dropped += d.fields_dropped;
        self.streams_idmp_dropped += d.streams_idmp_dropped;
    }
}

/// How a key fares, decided on any core.
enum KeyOutcome {
    /// A filter left it out.
    Filtered,
    /// Its database is not kept.
    DbDropped,
    Step(KeyStep),
}

/// Converts the snapshot `data` for `opts.target`, writing it to `out`.
///
/// Keys are filtered and re-encoded on all cores (see [`rdb_pipeline`]) and written in
/// file order. `on_loss` sees every loss in file order (for a report); `progress` gets the
/// input offset after each key.
pub fn convert<W: Write>(
    data: &[u8],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    out: W,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, ConvertSummary), ConvertError> {
    let (mut outs, summary) =
        convert_split(data, parser, opts, vec![out], None, on_loss, progress)?;
    let out = outs
        .pop()
        .ok_or_else(|| ConvertError::Io(io::Error::other("no output")))?;
    Ok((out, summary))
}

/// As [`convert`], into one output per shard of `slots` (or the single output in `outs`
/// when `slots` is `None`). Each output is a complete snapshot: the file-level items, db 0,
/// and the keys whose cluster slot its shard owns.
pub fn convert_split<W: Write>(
    data: &[u8],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    outs: Vec<W>,
    slots: Option<&SlotMap>,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<(Vec<W>, ConvertSummary), ConvertError> {
    if outs.len() != slots.map_or(1, SlotMap::len) {
        return Err(ConvertError::Io(io::Error::other(format!(
            "{} outputs for {} shards",
            outs.len(),
            slots.map_or(1, SlotMap::len)
        ))));
    }
    let track = opts.dbs_merge() || opts.conflict != ConflictPolicy::Error;
    let last_owner = match opts.conflict {
        ConflictPolicy::Last => Some(last_owners(&[data], opts)?),
        _ => None,
    };
    let mut outputs = Outputs::new(outs, opts, track)?;
    let role = InputRole {
        as_stored: opts.dbs_as_stored() && slots.is_none(),
        file_level: true,
        index: 0,
        conflict: opts.conflict,
        last_owner: last_owner.as_ref(),
        validate: !crc_vouches(data, parser),
    };
    pipeline::checked(data, parser, |p, eof| {
        run_input(
            data,
            p,
            opts,
            slots,
            &mut outputs,
            &role,
            eof,
            on_loss,
            progress,
        )
    })?;
    outputs.finish()
}

/// What to do with a key that more than one input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConflictPolicy {
    /// Stop with an error naming the key (default).
    Error,
    /// Keep the copy from the earliest input.
    First,
    /// Keep the copy from the latest input.
    Last,
}

/// Merges several snapshots (e.g. one per cluster shard) into one for `opts.target`, with
/// the same filters and conversion as [`convert`]. File-level AUX fields come from the
/// first input; function libraries are kept once each.
pub fn merge<W: Write>(
    inputs: &[&[u8]],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    conflict: ConflictPolicy,
    out: W,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<(W, ConvertSummary), ConvertError> {
    // For "last", first learn where the last copy of each key is.
    let last_owner = match conflict {
        ConflictPolicy::Last => Some(last_owners(inputs, opts)?),
        _ => None,
    };
    let mut outputs = Outputs::new(vec![out], opts, true)?;
    for (index, data) in inputs.iter().enumerate() {
        let role = InputRole {
            as_stored: false,
            file_level: index == 0,
            index,
            conflict,
            last_owner: last_owner.as_ref(),
            validate: !crc_vouches(data, parser),
        };
        pipeline::checked(data, parser, |p, eof| {
            run_input(
                data,
                p,
                opts,
                None,
                &mut outputs,
                &role,
                eof,
                on_loss,
                progress,
            )
        })?;
    }
    let (mut outs, summary) = outputs.finish()?;
    let out = outs
        .pop()
        .ok_or_else(|| ConvertError::Io(io::Error::other("no output")))?;
    Ok((out, summary))
}

/// Where the last copy of each key is: (input index, entry offset) per (output db, key).
fn last_owners(inputs: &[&[u8]], opts: &ConvertOptions) -> Result<LastOwners, ConvertError> {
    let mut owner = LastOwners::new();
    for (i, data) in inputs.iter().enumerate() {
        let mut parser = ParserBuilder::new();
        parser.verify_checksum(false).allow_empty_keys(true);
        for item in parser.parse(data)? {
            if let Item::Key(e) = item? {
                if let Some(db) = opts.output_db(e.db) {
                    owner.insert((db, e.key.into_owned()), (i, e.offset));
                }
            }
        }
    }
    Ok(owner)
}

type LastOwners = HashMap<(u64, Vec<u8>), (usize, u64)>;

/// The output files of a pass and what has gone into them, across inputs.
struct Outputs<W: Write> {
    writers: Vec<crate::Writer<W>>,
    summary: ConvertSummary,
    /// The db each output's next key lands in, once a SELECTDB was written to it.
    out_db: Vec<Option<u64>>,
    /// (db, key) pairs written so far, where two sources can meet in one db.
    seen: Option<HashSet<(u64, Vec<u8>)>>,
    functions_seen: HashSet<Vec<u8>>,
}

impl<W: Write> Outputs<W> {
    fn new(outs: Vec<W>, opts: &ConvertOptions, track_keys: bool) -> io::Result<Self> {
        let writers = outs
            .into_iter()
            .map(|o| {
                WriterBuilder::new()
                    .compression(opts.compression)
                    .build(o, opts.target.version)
            })
            .collect::<io::Result<Vec<_>>>()?;
        Ok(Outputs {
            summary: ConvertSummary {
                outputs: vec![OutputStats::default(); writers.len()],
                ..ConvertSummary::default()
            },
            out_db: vec![None; writers.len()],
            writers,
            seen: track_keys.then(HashSet::new),
            functions_seen: HashSet::new(),
        })
    }

    fn finish(self) -> Result<(Vec<W>, ConvertSummary), ConvertError> {
        let mut summary = self.summary;
        let mut finished = Vec::with_capacity(self.writers.len());
        for (w, stats) in self.writers.into_iter().zip(summary.outputs.iter_mut()) {
            // What finish() adds: the EOF byte and the 8-byte checksum.
            stats.bytes = w.bytes_written() + 9;
            summary.bytes_written += stats.bytes;
            finished.push(w.finish()?);
        }
        Ok((finished, summary))
    }
}

/// How one input joins the outputs.
struct InputRole<'a> {
    /// Copy SELECTDB, RESIZEDB and slot hints as stored (one input into one output, dbs
    /// unchanged): what a byte-identical passthrough needs.
    as_stored: bool,
    /// Write this input's AUX and module aux fields (the first input of a merge).
    file_level: bool,
    index: usize,
    conflict: ConflictPolicy,
    /// For [`ConflictPolicy::Last`]: the input holding each key's last copy.
    last_owner: Option<&'a LastOwners>,
    /// Decode every value before copying it: no checksum vouches for the bytes.
    validate: bool,
}

#[allow(clippy::too_many_arguments)]
fn run_input<'data, W: Write>(
    data: &'data [u8],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    slots: Option<&SlotMap>,
    outputs: &mut Outputs<W>,
    role: &InputRole<'_>,
    eof_seen: &pipeline::EofSeen,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), ConvertError> {
    let items = parser.parse(data)?;
    let source = items.version();
    let target = &opts.target;
    let Outputs {
        writers,
        summary,
        out_db,
        seen: merged_keys,
        functions_seen,
    } = outputs;
    // Filters may empty a database: then SELECTDB is written only before surviving keys.
    let as_stored = role.as_stored && opts.filter.is_pass_all();
    let validate = role.validate;
    let mut db: u64 = 0;
    let filter_all = opts.filter.is_pass_all();

    let work = |s: &Spanned<'data>| -> Result<Option<KeyOutcome>, ConvertError> {
        let Item::Key(entry) = &s.item else {
            return Ok(None);
        };
        if !filter_all && !opts.filter.keeps(entry) {
            return Ok(Some(KeyOutcome::Filtered));
        }
        if opts.output_db(entry.db).is_none() {
            return Ok(Some(KeyOutcome::DbDropped));
        }
        if validate {
            entry
                .value
                .decode_all()
                .map_err(|e| ConvertError::Parse(e.in_key(entry.db, &entry.key)))?;
        }
        let mut losses = Vec::new();
        let mut delta = ConvertSummary::default();
        let encoded = encode_entry(
            entry,
            source,
            opts,
            &mut delta,
            &mut |l: &Loss<'_>| {
                losses.push(PendingLoss {
                    kind: l.kind,
                    action: l.action,
                    reason: l.reason.clone(),
                });
                Ok(())
            },
            s.offset,
        )?;
        Ok(Some(KeyOutcome::Step(KeyStep {
            encoded,
            losses,
            delta,
        })))
    };

    // Bytes copied as stored are mostly adjacent in the input: each output gathers a run of
    // them and writes it in one piece (no copy through its buffer; one CRC call).
    let mut runs = SpanRuns::new(data, writers.len());
    // A Redis 8.6 KEY_META waiting for its key: written right before that key's type byte
    // (where a loader expects it) if the key is written at all.
    let mut pending_meta: Option<&'data [u8]> = None;

    let sink = |s: Spanned<'data>, outcome: Option<KeyOutcome>| -> Result<(), ConvertError> {
        let (span, start) = (s.span, s.offset as usize);
        let runs = &mut runs;
        let all = |runs: &mut SpanRuns<'data>,
                   writers: &mut Vec<crate::Writer<W>>,
                   bytes: &'data [u8]|
         -> io::Result<()> {
            writers
                .iter_mut()
                .enumerate()
                .try_for_each(|(i, w)| runs.copy(i, w, bytes))
        };
        match s.item {
            Item::Header(_) => {}
            Item::Eof(eof) => eof_seen.set(eof),
            Item::Aux(_) | Item::ModuleAux(_) if !role.file_level => {}
            Item::Aux(_) => all(runs, writers, span)?,
            Item::ModuleAux(m) => match opts.keep_modules() {
                Some(true) => all(runs, writers, span)?,
                Some(false) => {
                    summary.module_aux_dropped += 1;
                    on_loss(&Loss {
                        db: None,
                        key: None,
                        kind: LossKind::ModuleAux,
                        action: "module_aux_dropped",
                        reason: format!("module aux data of {}", m.id.name()),
                        payload: None,
                    })?;
                }
                None => {
                    return Err(unrepresentable(
                        None,
                        None,
                        start,
                        format!(
                            "module aux data of {}, and {} loads it only with that module",
                            m.id.name(),
                            target.name
                        ),
                        LossKind::ModuleAux,
                    ))
                }
            },
            Item::Function(f) => {
                let code = match &f {
                    Function::Library { code } => code.to_vec(),
                    // 7.0 GA and later refuse the RC form; its parts make a FUNCTION2 library.
                    Function::PreGa {
                        name, engine, code, ..
                    } => {
                        let mut c = format!(
                            "#!{} name={}\n",
                            String::from_utf8_lossy(engine).to_lowercase(),
                            String::from_utf8_lossy(name)
                        )
                        .into_bytes();
                        c.extend_from_slice(code);
                        c
                    }
                };
                if !functions_seen.insert(code.clone()) {
                    // The same library from another input of a merge.
                } else if target.functions() {
                    for (i, w) in writers.iter_mut().enumerate() {
                        runs.flush(i, w)?;
                        match f {
                            Function::Library { .. } => w.raw(span)?,
                            Function::PreGa { .. } => w.function(&code)?,
                        }
                    }
                } else if opts.functions == FunctionPolicy::Drop {
                    summary.functions_dropped += 1;
                    on_loss(&Loss {
                        db: None,
                        key: None,
                        kind: LossKind::Functions,
                        action: "function_dropped",
                        reason: format!("{} has no functions", target.name),
                        payload: Some(&code),
                    })?;
                } else {
                    return Err(unrepresentable(
                        None,
                        None,
                        start,
                        format!(
                            "a function library, and {} has no functions (Redis < 7.0)",
                            target.name
                        ),
                        LossKind::Functions,
                    ));
                }
            }
            Item::SelectDb(n) => {
                db = n;
                if as_stored {
                    if let Some(max) = target.databases.filter(|&max| n >= max) {
                        return Err(unrepresentable(
                            Some(n),
                            None,
                            start,
                            format!(
                                "database {n}, and {} keeps databases 0 to {}",
                                target.name,
                                max - 1
                            ),
                            LossKind::Databases,
                        ));
                    }
                    all(runs, writers, span)?;
                }
            }
            Item::ResizeDb { .. } => {
                // Size hints stay true only while databases stay as they are.
                if as_stored {
                    all(runs, writers, span)?;
                }
            }
            Item::SlotInfo { .. } => {
                if as_stored && !is_valkey(target.version) && target.version.number >= 12 {
                    all(runs, writers, span)?;
                } else {
                    summary.hints_dropped += 1;
                }
            }
            Item::SlotImport(_) => {
                if as_stored && is_valkey(target.version) {
                    all(runs, writers, span)?;
                } else {
                    summary.hints_dropped += 1;
                }
            }
            Item::KeyMeta(_) if target.version.has_key_meta() => pending_meta = Some(span),
            Item::KeyMeta(m) => on_loss(&Loss {
                kind: LossKind::KeyMeta,
                db: None,
                key: None,
                action: "key_meta_dropped",
                reason: format!(
                    "module key metadata ({} classes) of the next key, which {} cannot load",
                    m.classes.len(),
                    target.name
                ),
                payload: None,
            })?,
            Item::Key(entry) => {
                summary.keys_read += 1;
                progress(start as u64);
                // Goes with the key: dropped with it, written only right before it.
                let meta = pending_meta.take();
                let step = match outcome {
                    Some(KeyOutcome::Step(step)) => step,
                    Some(KeyOutcome::Filtered) => {
                        summary.keys_filtered += 1;
                        return Ok(());
                    }
                    Some(KeyOutcome::DbDropped) | None => {
                        summary.keys_dropped += 1;
                        return on_loss(&Loss {
                            db: Some(db),
                            key: Some(&entry.key),
                            kind: LossKind::Databases,
                            action: "dropped",
                            reason: format!("database {db} is not kept"),
                            payload: None,
                        })
                        .map_err(ConvertError::from);
                    }
                };
                let tdb = opts.output_db(db).unwrap_or(0);
                if let Some(max) = target.databases.filter(|_| slots.is_none()) {
                    if tdb >= max {
                        return Err(unrepresentable(
                            Some(db),
                            Some(&entry.key),
                            start,
                            format!(
                                "database {tdb}, and {} keeps databases 0 to {}",
                                target.name,
                                max - 1
                            ),
                            LossKind::Databases,
                        ));
                    }
                }
                if slots.is_some() && tdb != 0 {
                    return Err(unrepresentable(
                        Some(db),
                        Some(&entry.key),
                        start,
                        format!("database {tdb}, and a cluster keeps only db 0"),
                        LossKind::ClusterDatabases,
                    ));
                }
                let superseded = role.last_owner.is_some_and(|o| {
                    o.get(&(tdb, entry.key.to_vec())) != Some(&(role.index, entry.offset))
                });
                let duplicate = !superseded
                    && merged_keys
                        .as_mut()
                        .is_some_and(|seen| !seen.insert((tdb, entry.key.to_vec())));
                if duplicate && role.conflict == ConflictPolicy::Error {
                    return Err(unrepresentable(
                        Some(db),
                        Some(&entry.key),
                        start,
                        format!("the key is in more than one input or database, all written to db {tdb}"),
                        LossKind::DuplicateKey,
                    ));
                }
                if superseded || duplicate {
                    summary.keys_dropped += 1;
                    let which = if superseded { "a later" } else { "an earlier" };
                    let which = format!("{which} copy (in this or another input)");
                    return on_loss(&Loss {
                        db: Some(db),
                        key: Some(&entry.key),
                        kind: LossKind::DuplicateKey,
                        action: "dropped",
                        reason: format!("{which} is the one kept"),
                        payload: None,
                    })
                    .map_err(ConvertError::from);
                }
                summary.absorb(&step.delta);
                for l in &step.losses {
                    on_loss(&Loss {
                        db: Some(db),
                        key: Some(&entry.key),
                        kind: l.kind,
                        action: l.action,
                        reason: l.reason.clone(),
                        payload: None,
                    })?;
                }
                if let Encoded::Dropped(kind, reason) = step.encoded {
                    summary.keys_dropped += 1;
                    return on_loss(&Loss {
                        db: Some(db),
                        key: Some(&entry.key),
                        kind,
                        action: "dropped",
                        reason,
                        payload: None,
                    })
                    .map_err(ConvertError::from);
                }
                let i = slots.map_or(0, |m| m.shard_of(&entry.key));
                let (Some(w), Some(current), Some(stats)) = (
                    writers.get_mut(i),
                    out_db.get_mut(i),
                    summary.outputs.get_mut(i),
                ) else {
                    return Ok(());
                };
                if !as_stored && *current != Some(tdb) {
                    runs.flush(i, w)?;
                    w.select_db(tdb)?;
                    *current = Some(tdb);
                }
                match step.encoded {
                    Encoded::Same => {
                        summary.passed_through += 1;
                        if !entry.opcodes_in_span {
                            runs.flush(i, w)?;
                            write_key_opcodes(w, &entry)?;
                        }
                        if let Some(m) = meta {
                            runs.copy(i, w, m)?;
                        }
                        runs.copy(i, w, span)?;
                    }
                    Encoded::New(type_id, bytes) => {
                        summary.transcoded += 1;
                        runs.flush(i, w)?;
                        write_key_opcodes(w, &entry)?;
                        if let Some(m) = meta {
                            runs.copy(i, w, m)?;
                            runs.flush(i, w)?;
                        }
                        let mut head = Vec::with_capacity(entry.raw_key.len() + 1);
                        head.push(type_id);
                        head.extend_from_slice(entry.raw_key);
                        w.raw(&head)?;
                        w.raw(&bytes)?;
                    }
                    Encoded::Dropped(..) => {}
                }
                stats.keys += 1;
                summary.keys_written += 1;
            }
        }
        Ok(())
    };
    pipeline::ordered_by_ref(items, work, sink)?;
    for (i, w) in writers.iter_mut().enumerate() {
        runs.flush(i, w)?;
    }
    Ok(())
}

/// Per output, a run of input bytes waiting to be written: spans that follow each other
/// in the input are joined and written with one call.
struct SpanRuns<'data> {
    data: &'data [u8],
    /// Start and end offsets in `data`, per output.
    pending: Vec<Option<(usize, usize)>>,
}

impl<'data> SpanRuns<'data> {
    /// Runs are written once they reach this size, so output keeps pace with input.
    const MAX_RUN: usize = 8 << 20;

    fn new(data: &'data [u8], outputs: usize) -> Self {
        SpanRuns {
            data,
            pending: vec![None; outputs],
        }
    }

    /// Queues `span` (a slice of the input) for output `i`, writing what was queued first
    /// unless `span` continues it.
    fn copy<W: Write>(
        &mut self,
        i: usize,
        w: &mut crate::Writer<W>,
        span: &'data [u8],
    ) -> io::Result<()> {
        let base = self.data.as_ptr() as usize;
        let start = (span.as_ptr() as usize).wrapping_sub(base);
        let inside = start <= self.data.len() && span.len() <= self.data.len() - start;
        if !inside {
            self.flush(i, w)?;
            return w.raw(span);
        }
        let end = start + span.len();
        let Some(slot) = self.pending.get_mut(i) else {
            return w.raw(span);
        };
        match slot {
            Some((_, e)) if *e == start => *e = end,
            _ => {
                self.flush(i, w)?;
                if let Some(slot) = self.pending.get_mut(i) {
                    *slot = Some((start, end));
                }
            }
        }
        if let Some(Some((s, e))) = self.pending.get(i) {
            if e - s >= Self::MAX_RUN {
                self.flush(i, w)?;
            }
        }
        Ok(())
    }

    /// Writes output `i`'s queued run; call before writing anything else to it.
    fn flush<W: Write>(&mut self, i: usize, w: &mut crate::Writer<W>) -> io::Result<()> {
        if let Some((s, e)) = self.pending.get_mut(i).and_then(Option::take) {
            w.raw(self.data.get(s..e).unwrap_or_default())?;
        }
        Ok(())
    }
}

/// Whether the input's CRC64 will be verified, so values may be copied without decoding.
fn crc_vouches(data: &[u8], parser: &ParserBuilder) -> bool {
    parser.verifies_checksum()
        && rdb_parser::header(data).is_ok_and(|v| v.has_checksum())
        && data
            .get(data.len().saturating_sub(8)..)
            .is_some_and(|t| t.iter().any(|&b| b != 0))
}

/// A key's expiry, LRU idle time and LFU counter, written before its type byte.
fn write_key_opcodes<W: Write>(w: &mut crate::Writer<W>, entry: &Entry<'_>) -> io::Result<()> {
    if let Some(t) = entry.expire_ms {
        w.expire_ms(t)?;
    }
    if let Some(s) = entry.idle_s {
        w.idle(s)?;
    }
    if let Some(f) = entry.freq {
        w.freq(f)?;
    }
    Ok(())
}

fn unrepresentable(
    db: Option<u64>,
    key: Option<&[u8]>,
    offset: usize,
    reason: String,
    kind: LossKind,
) -> ConvertError {
    ConvertError::Unrepresentable {
        db,
        key: key.map(<[u8]>::to_vec),
        offset: offset as u64,
        reason,
        kind,
    }
}

/// Decides how one key reaches the target.
fn encode_entry(
    entry: &Entry<'_>,
    source: Version,
    opts: &ConvertOptions,
    summary: &mut ConvertSummary,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    offset: u64,
) -> Result<Encoded, ConvertError> {
    let target = &opts.target;
    let tv = target.version;
    let fail = |reason: String, kind: LossKind| {
        unrepresentable(
            Some(entry.db),
            Some(&entry.key),
            offset as usize,
            reason,
            kind,
        )
    };
    let in_key = |e: rdb_parser::Error| ConvertError::Parse(e.in_key(entry.db, &entry.key));
    let c = opts.compression;
    if entry.value.is_empty_collection() {
        // Read only with --allow-empty-keys: no server writes these, 7.0+ skip them on
        // load and 6.x refuse or crash on them.
        return Ok(Encoded::Dropped(
            LossKind::EmptyKey,
            format!(
                "an empty {}: servers skip or refuse such keys",
                entry.value.type_name()
            ),
        ));
    }
    Ok(match &entry.value {
        Value::Module(m) if m.is_vector_set() => {
            use crate::vectorset::{plan, VectorSetStep};
            match plan(m, opts.modules, target).map_err(in_key)? {
                VectorSetStep::Keep => Encoded::Same,
                VectorSetStep::Rewrite(bytes) => Encoded::New(entry.type_id, bytes),
                VectorSetStep::Drop(reason) => Encoded::Dropped(LossKind::ModuleValue, reason),
                VectorSetStep::Refuse(reason) => return Err(fail(reason, LossKind::ModuleValue)),
            }
        }
        Value::Module(m) => match opts.keep_modules() {
            Some(true) => Encoded::Same,
            Some(false) => Encoded::Dropped(
                LossKind::ModuleValue,
                format!("module value of type {}", m.id.name()),
            ),
            None => {
                return Err(fail(
                    format!(
                        "a module value of type {}, and {} loads it only with that module",
                        m.id.name(),
                        target.name
                    ),
                    LossKind::ModuleValue,
                ))
            }
        },
        Value::Hash(h) if h.has_field_ttls() => {
            // Valkey's HASH_2 shares type 22 with a Redis 7.4 RC type: same magic, same meaning.
            let same = if source.magic == Magic::Valkey {
                is_valkey(tv)
            } else {
                target.loads_type(entry.type_id)
            };
            if same {
                Encoded::Same
            } else {
                hash_with_ttls(entry, h, opts, summary, on_loss, &fail).map_err(|e| match e {
                    HashErr::Convert(c) => c,
                    HashErr::Parse(p) => in_key(p),
                })?
            }
        }
        _ if target.loads_type(entry.type_id) => Encoded::Same,
        Value::Hash(h) => {
            let fields = hash_fields(h).map_err(in_key)?;
            let pairs: Vec<(&[u8], &[u8])> = fields
                .iter()
                .map(|(f, v, _)| (f.as_slice(), v.as_slice()))
                .collect();
            plain_hash(&pairs, tv, c)?
        }
        Value::ZSet(z) => {
            // Listpack -> ziplist for RDB 9: entries copied as stored, order unchanged.
            let mut zl = ZiplistBuilder::new();
            let mut count = 0usize;
            for pair in z.iter() {
                let (member, score) = pair.map_err(in_key)?;
                zl.push(&member.to_bytes());
                zl.push(encode::score_text(score).as_bytes());
                count += 1;
            }
            if count <= 128 {
                let mut out = Vec::new();
                encode::string(&mut out, &zl.finish()?, c);
                Encoded::New(type_id::ZSET_ZIPLIST, out)
            } else {
                let members: Vec<(Vec<u8>, f64)> = z
                    .iter()
                    .map(|p| p.map(|(m, s)| (m.to_bytes().into_owned(), s)))
                    .collect::<Result<_, _>>()
                    .map_err(in_key)?;
                Encoded::New(type_id::ZSET_2, value::zset_2(&members, c))
            }
        }
        Value::List(l) => {
            // Streamed node by node: memory holds the output value, not a copy per element.
            let mut b = value::QuicklistBuilder::new(c);
            for e in l.iter() {
                b.push(&e.map_err(in_key)?.to_bytes())?;
            }
            Encoded::New(type_id::LIST_QUICKLIST, b.finish()?)
        }
        Value::Set(s) => {
            let members: Vec<Element<'_>> = s.iter().collect::<Result<_, _>>().map_err(in_key)?;
            let ints: Option<Vec<i64>> = members.iter().map(Element::as_int).collect();
            match ints {
                Some(ints) if ints.len() <= 512 => {
                    Encoded::New(type_id::SET_INTSET, value::set_intset(&ints, c)?)
                }
                _ => {
                    let bytes: Vec<Vec<u8>> =
                        members.iter().map(|m| m.to_bytes().into_owned()).collect();
                    Encoded::New(type_id::SET, value::set_plain(&bytes, c))
                }
            }
        }
        Value::Stream(s) => {
            if let Some(what) = s.idmp.as_ref().and_then(idmp_state) {
                match opts.stream_idmp {
                    StreamIdmpPolicy::Error => {
                        return Err(fail(
                            format!(
                                "a stream with IDMP state ({what}), and {} has none",
                                target.name
                            ),
                            LossKind::StreamIdmp,
                        ))
                    }
                    StreamIdmpPolicy::Drop => {
                        summary.streams_idmp_dropped += 1;
                        on_loss(&Loss {
                            kind: LossKind::StreamIdmp,
                            db: Some(entry.db),
                            key: Some(&entry.key),
                            action: "stream_idmp_dropped",
                            reason: format!("IDMP state: {what}"),
                            payload: None,
                        })?;
                    }
                }
            }
            let (t, bytes) = stream(s, tv);
            Encoded::New(t, bytes)
        }
        Value::String(_) => {
            return Err(fail(
                format!("type {} is not loadable by {}", entry.type_id, target.name),
                LossKind::Type,
            ))
        }
    })
}

enum HashErr {
    Convert(ConvertError),
    Parse(rdb_parser::Error),
}

type Field = (Vec<u8>, Vec<u8>, Option<i64>);

fn hash_fields(h: &Hash<'_>) -> Result<Vec<Field>, rdb_parser::Error> {
    h.iter()
        .map(|f| {
            f.map(|f| {
                (
                    f.field.to_bytes().into_owned(),
                    f.value.to_bytes().into_owned(),
                    f.expire_ms,
                )
            })
        })
        .collect()
}

/// A hash whose fields may carry TTLs, for a target that stores them differently or not
/// at all.
fn hash_with_ttls(
    entry: &Entry<'_>,
    h: &Hash<'_>,
    opts: &ConvertOptions,
    summary: &mut ConvertSummary,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    fail: &dyn Fn(String, LossKind) -> ConvertError,
) -> Result<Encoded, HashErr> {
    let target = &opts.target;
    let mut fields = hash_fields(h).map_err(HashErr::Parse)?;
    let with_ttl = fields.iter().filter(|f| f.2.is_some()).count();
    if target.field_ttls() {
        return field_ttl_hash(&fields, target.version, opts.compression, fail)
            .map_err(HashErr::Convert);
    }
    if with_ttl > 0 {
        let loss = |kind: LossKind, action: &'static str, reason: String| Loss {
            db: Some(entry.db),
            key: Some(&entry.key),
            kind,
            action,
            reason,
            payload: None,
        };
        match opts.field_ttls {
            FieldTtlPolicy::Error => {
                return Err(HashErr::Convert(fail(
                    format!(
                        "{with_ttl} hash fields have their own TTL, and {} cannot store field TTLs",
                        target.name
                    ),
                    LossKind::FieldTtls,
                )))
            }
            FieldTtlPolicy::Drop => {}
            FieldTtlPolicy::DropExpired => {
                let before = fields.len();
                let now = opts.now_ms;
                fields.retain(|f| f.2.is_none_or(|t| t > now));
                let gone = (before - fields.len()) as u64;
                if gone > 0 {
                    summary.fields_dropped += gone;
                    on_loss(&loss(
                        LossKind::ExpiredFields,
                        "expired_fields_dropped",
                        format!("{gone} fields had expired at {now}"),
                    ))
                    .map_err(|e| HashErr::Convert(e.into()))?;
                }
                if fields.is_empty() {
                    return Ok(Encoded::Dropped(
                        LossKind::ExpiredFields,
                        "every field had expired".into(),
                    ));
                }
            }
        }
        summary.keys_with_field_ttls_dropped += 1;
        on_loss(&loss(
            LossKind::FieldTtls,
            "field_ttls_dropped",
            format!(
                "{} fields made persistent",
                fields.iter().filter(|f| f.2.is_some()).count()
            ),
        ))
        .map_err(|e| HashErr::Convert(e.into()))?;
    }
    let pairs: Vec<(&[u8], &[u8])> = fields
        .iter()
        .map(|(f, v, _)| (f.as_slice(), v.as_slice()))
        .collect();
    plain_hash(&pairs, target.version, opts.compression).map_err(HashErr::Convert)
}

/// A hash without field TTLs in the encoding the target's own server would choose.
fn plain_hash(
    pairs: &[(&[u8], &[u8])],
    v: Version,
    c: Compression,
) -> Result<Encoded, ConvertError> {
    let small = pairs.len() <= 512 && pairs.iter().all(|(f, x)| f.len() <= 64 && x.len() <= 64);
    Ok(if !small {
        Encoded::New(type_id::HASH, value::hash_plain(pairs, c))
    } else if is_valkey(v) || v.number >= 10 {
        Encoded::New(type_id::HASH_LISTPACK, value::hash_listpack(pairs, c)?)
    } else {
        Encoded::New(type_id::HASH_ZIPLIST, value::hash_ziplist(pairs, c)?)
    })
}

/// A hash with field TTLs for a target that stores them: Valkey's HASH_2 or Redis 7.4's
/// HASH_METADATA.
fn field_ttl_hash(
    fields: &[Field],
    v: Version,
    c: Compression,
    fail: &dyn Fn(String, LossKind) -> ConvertError,
) -> Result<Encoded, ConvertError> {
    let mut out = Vec::new();
    if is_valkey(v) {
        // len n, n x (field, value, i64 LE expire or -1)
        encode::length(&mut out, fields.len() as u64);
        for (f, x, t) in fields {
            encode::string(&mut out, f, c);
            encode::string(&mut out, x, c);
            encode::ms_time(&mut out, t.unwrap_or(-1));
        }
        return Ok(Encoded::New(type_id::HASH_2, out));
    }
    // u64 LE min_expire, len n, n x (len ttl, field, value); ttl = expire - min + 1, 0 = none.
    let min = fields.iter().filter_map(|f| f.2).min().unwrap_or(0);
    encode::ms_time(&mut out, min);
    encode::length(&mut out, fields.len() as u64);
    for (f, x, t) in fields {
        // Relative TTLs must fit the i64 range readers accept (found by fuzzing: expiries
        // near both ends of i64 overflowed the subtraction).
        let ttl = match *t {
            None => 0,
            Some(t) => u64::try_from(i128::from(t) - i128::from(min) + 1)
                .ok()
                .filter(|&d| i64::try_from(d).is_ok())
                .ok_or_else(|| {
                    fail(
                        format!(
                            "field expiries {min} and {t} ms are too far apart for the relative field TTLs of RDB {}",
                            v.number
                        ),
                        LossKind::FieldExpiryRange,
                    )
                })?,
        };
        encode::length(&mut out, ttl);
        encode::string(&mut out, f, c);
        encode::string(&mut out, x, c);
    }
    Ok(Encoded::New(type_id::HASH_METADATA, out))
}

/// What a target without IDMP would lose of a stream's IDMP state, or `None` when it is
/// what every stream has untouched: no producers, zero counters, the server's built-in
/// settings (100 s, 100 iids).
fn idmp_state(m: &rdb_parser::Idmp<'_>) -> Option<String> {
    let iids = m.iid_count();
    let untouched = m.producer_count() == 0
        && m.iids_added == 0
        && m.iids_duplicates == 0
        && (m.duration_s, m.max_entries) == (100, 100);
    (!untouched).then(|| {
        format!(
            "{} producers, {iids} iids, duration {} s, max {} iids, {} added, {} duplicates",
            m.producer_count(),
            m.duration_s,
            m.max_entries,
            m.iids_added,
            m.iids_duplicates
        )
    })
}

/// A stream for an older stream type: node listpacks are copied, metadata the target
/// version does not store is left out (its server derives it on load).
fn stream(s: &Stream<'_>, v: Version) -> (u8, Vec<u8>) {
    let out_type = if is_valkey(v) || v.number >= 11 {
        type_id::STREAM_LISTPACKS_3
    } else if v.number >= 10 {
        type_id::STREAM_LISTPACKS_2
    } else {
        type_id::STREAM_LISTPACKS
    };
    let v2 = out_type >= type_id::STREAM_LISTPACKS_2;
    let v3 = out_type >= type_id::STREAM_LISTPACKS_3;
    let mut out = Vec::with_capacity(s.nodes_raw().len() + 64);
    encode::length(&mut out, s.node_count());
    out.extend_from_slice(s.nodes_raw());
    encode::length(&mut out, s.length);
    encode::stream_id_lens(&mut out, s.last_id);
    if v2 {
        encode::stream_id_lens(&mut out, s.first_id.unwrap_or_default());
        encode::stream_id_lens(&mut out, s.max_deleted_id.unwrap_or_default());
        encode::length(&mut out, s.entries_added.unwrap_or(s.length));
    }
    encode::length(&mut out, s.group_count());
    for g in s.groups() {
        encode::string(&mut out, &g.name, Compression::None);
        encode::stream_id_lens(&mut out, g.last_id);
        if v2 {
            encode::length(&mut out, g.entries_read.unwrap_or(u64::MAX));
        }
        encode::length(&mut out, g.pending_count());
        for p in g.pending() {
            encode::stream_id_raw(&mut out, p.id);
            encode::ms_time(&mut out, p.delivery_time_ms);
            encode::length(&mut out, p.delivery_count);
        }
        encode::length(&mut out, g.consumer_count());
        for cons in g.consumers() {
            encode::string(&mut out, &cons.name, Compression::None);
            encode::ms_time(&mut out, cons.seen_time_ms);
            if v3 {
                encode::ms_time(&mut out, cons.active_time_ms.unwrap_or(cons.seen_time_ms));
            }
            encode::length(&mut out, cons.pending_count());
            for id in cons.pending() {
                encode::stream_id_raw(&mut out, id);
            }
        }
    }
    (out_type, out)
}

/// A DUMP/RESTORE payload of `entry`'s value for `opts.target`: type byte, value, the
/// target's RDB version (u16 LE) and the CRC64 of all that (u64 LE).
pub fn dump_payload(
    entry: &Entry<'_>,
    source: Version,
    opts: &ConvertOptions,
) -> Result<Option<Vec<u8>>, ConvertError> {
    let Some(body) = dump_body(entry, source, opts)? else {
        return Ok(None);
    };
    let mut out = Vec::with_capacity(body.len());
    body.write_to(&mut out)?;
    Ok(Some(out))
}

/// A DUMP payload in parts, so that a caller can write a value the target loads as it
/// is straight from the input, without copying it first.
#[derive(Debug)]
pub struct DumpBody<'e> {
    pub type_id: u8,
    /// The value: borrowed from the input when the target loads it as stored.
    pub value: std::borrow::Cow<'e, [u8]>,
    /// The target's RDB version (u16 LE) and the CRC64 (u64 LE) of type, value and version.
    pub trailer: [u8; 10],
}

impl DumpBody<'_> {
    /// The payload's length in bytes.
    pub fn len(&self) -> usize {
        1 + self.value.len() + self.trailer.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn write_to<W: Write + ?Sized>(&self, out: &mut W) -> io::Result<()> {
        out.write_all(&[self.type_id])?;
        out.write_all(&self.value)?;
        out.write_all(&self.trailer)
    }
}

/// [`dump_payload`] in parts; `None` when nothing of the key remains for the target.
pub fn dump_body<'data>(
    entry: &Entry<'data>,
    source: Version,
    opts: &ConvertOptions,
) -> Result<Option<DumpBody<'data>>, ConvertError> {
    let mut summary = ConvertSummary::default();
    let mut ignore = |_: &Loss<'_>| Ok(());
    let (type_id, value) =
        match encode_entry(entry, source, opts, &mut summary, &mut ignore, entry.offset)? {
            Encoded::Same => (entry.type_id, std::borrow::Cow::Borrowed(entry.raw_value)),
            Encoded::New(t, b) => (t, std::borrow::Cow::Owned(b)),
            Encoded::Dropped(..) => return Ok(None),
        };
    let version = (opts.target.version.number as u16).to_le_bytes();
    let crc = rdb_parser::crc64(
        rdb_parser::crc64(rdb_parser::crc64(0, &[type_id]), &value),
        &version,
    );
    let mut trailer = [0u8; 10];
    let (v, c) = trailer.split_at_mut(2);
    v.copy_from_slice(&version);
    c.copy_from_slice(&crc.to_le_bytes());
    Ok(Some(DumpBody {
        type_id,
        value,
        trailer,
    }))
}
