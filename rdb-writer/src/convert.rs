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

use rdb_parser::format::Version;
use rdb_parser::{Entry, Item, ParserBuilder};

use crate::encode::Compression;
use crate::filter::Filter;
use crate::profile::{ModuleSupport, TargetProfile};
use crate::slot::SlotMap;
use crate::WriterBuilder;
use rdb_pipeline::{self as pipeline, Spanned};

mod pieces;
mod reencode;
mod sink;

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
    /// KEY_META records (module key metadata) a target without them cannot load.
    pub key_meta_dropped: u64,
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
    /// A list too large to hold re-encoded: the writing thread encodes it node by node
    /// as it writes it (type 14, see `pieces`).
    ListInPieces,
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
    let mut nothing = |_: &Inspected<'_, '_>, ()| Ok(());
    let inspect = Inspection {
        check: &|_| Ok(()),
        take: &mut nothing,
    };
    convert_split_with(data, parser, opts, outs, slots, on_loss, progress, inspect)
}

/// A caller's checks of the input, run inside the conversion's own walk, so that the file
/// is read once (rdbkit folds verify's deep check into convert this way). `check` sees
/// every item on any core before the item is converted; `take` gets each item's finding
/// in file order, before the item is written. An error of either stops the conversion at
/// that item, as the conversion's own errors do; what was written by then is the
/// caller's to discard.
pub struct Inspection<'a, F> {
    pub check: &'a (dyn Fn(&Inspected<'_, '_>) -> Result<F, ConvertError> + Sync),
    pub take: &'a mut dyn FnMut(&Inspected<'_, '_>, F) -> Result<(), ConvertError>,
}

impl<F> std::fmt::Debug for Inspection<'_, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inspection")
    }
}

/// An item seen by an [`Inspection`], with where it lies in its input.
#[derive(Debug)]
pub struct Inspected<'i, 'data> {
    /// The input's place among a merge's inputs (0 for a conversion).
    pub input: usize,
    /// The whole input.
    pub data: &'data [u8],
    pub item: &'i Item<'data>,
    /// Its first byte and the byte after it.
    pub start: u64,
    pub end: u64,
}

/// [`convert_split`] with an [`Inspection`] of the input.
#[allow(clippy::too_many_arguments)]
pub fn convert_split_with<W: Write, F: Send>(
    data: &[u8],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    outs: Vec<W>,
    slots: Option<&SlotMap>,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
    mut inspect: Inspection<'_, F>,
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
            &mut inspect,
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
    let mut nothing = |_: &Inspected<'_, '_>, ()| Ok(());
    let inspect = Inspection {
        check: &|_| Ok(()),
        take: &mut nothing,
    };
    merge_with(
        inputs, parser, opts, conflict, out, on_loss, progress, inspect,
    )
}

/// [`merge`] with an [`Inspection`] of the inputs ([`Inspected::input`] tells them apart).
#[allow(clippy::too_many_arguments)]
pub fn merge_with<W: Write, F: Send>(
    inputs: &[&[u8]],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    conflict: ConflictPolicy,
    out: W,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
    mut inspect: Inspection<'_, F>,
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
                &mut inspect,
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

/// One input's pass: items parsed in batches, each batch's keys inspected, filtered and
/// re-encoded on all cores ([`key_outcome`]), then taken in file order by the writing
/// thread ([`sink::InputSink`]).
#[allow(clippy::too_many_arguments)]
fn run_input<'data, W: Write, F: Send>(
    data: &'data [u8],
    parser: &ParserBuilder,
    opts: &ConvertOptions,
    slots: Option<&SlotMap>,
    outputs: &mut Outputs<W>,
    role: &InputRole<'_>,
    eof_seen: &pipeline::EofSeen,
    on_loss: &mut dyn FnMut(&Loss<'_>) -> io::Result<()>,
    progress: &mut dyn FnMut(u64),
    inspect: &mut Inspection<'_, F>,
) -> Result<(), ConvertError> {
    let items = parser.parse(data)?;
    let source = items.version();
    let writers = outputs.writers.len();
    let check = inspect.check;
    let take = &mut *inspect.take;
    let input = role.index;
    fn located<'i, 'data>(
        input: usize,
        data: &'data [u8],
        s: &'i Spanned<'data>,
    ) -> Inspected<'i, 'data> {
        Inspected {
            input,
            data,
            item: &s.item,
            start: s.offset,
            end: s.offset + s.span.len() as u64,
        }
    }
    let work = |s: &Spanned<'data>| -> Result<(F, Option<KeyOutcome>), ConvertError> {
        let found = check(&located(input, data, s))?;
        let outcome = key_outcome(&s.item, s.offset, source, opts, role.validate)?;
        Ok((found, outcome))
    };
    let mut state = sink::InputSink {
        opts,
        slots,
        role,
        eof_seen,
        outputs,
        on_loss,
        progress,
        runs: SpanRuns::new(data, writers),
        pending_meta: None,
        db: 0,
        as_stored: role.as_stored && opts.filter.is_pass_all(),
    };
    let sink = |s: Spanned<'data>, (found, outcome): (F, Option<KeyOutcome>)| {
        take(&located(input, data, &s), found)?;
        state.item(s, outcome)
    };
    pipeline::ordered_by_ref(items, work, sink)?;
    state.finish()?;
    Ok(())
}

/// How one key fares (`None` for other items): filtered, its db dropped, or its value's
/// way to the target with the losses met on the way. Runs on any core.
fn key_outcome(
    item: &Item<'_>,
    offset: u64,
    source: Version,
    opts: &ConvertOptions,
    validate: bool,
) -> Result<Option<KeyOutcome>, ConvertError> {
    let Item::Key(entry) = item else {
        return Ok(None);
    };
    if !opts.filter.is_pass_all() && !opts.filter.keeps(entry) {
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
    let encoded = reencode::encode_entry(
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
        offset,
        true,
    )?;
    Ok(Some(KeyOutcome::Step(KeyStep {
        encoded,
        losses,
        delta,
    })))
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

/// The CRC64 of a payload's value, continuing from `crc`: in pieces on all cores when it
/// is large.
fn payload_crc(crc: u64, value: &[u8]) -> u64 {
    const PARALLEL_ABOVE: usize = 16 << 20;
    if value.len() <= PARALLEL_ABOVE {
        return rdb_parser::crc64(crc, value);
    }
    let whole = rdb_parser::crc64_parallel(value, rayon::current_num_threads());
    rdb_parser::crc64_combine(crc, whole, value.len() as u64)
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
    let encoded = reencode::encode_entry(
        entry,
        source,
        opts,
        &mut summary,
        &mut ignore,
        entry.offset,
        false,
    )?;
    let (type_id, value) = match encoded {
        Encoded::Same => (entry.type_id, std::borrow::Cow::Borrowed(entry.raw_value)),
        Encoded::New(t, b) => (t, std::borrow::Cow::Owned(b)),
        Encoded::Dropped(..) | Encoded::ListInPieces => return Ok(None),
    };
    let version = (opts.target.version.number as u16).to_le_bytes();
    let crc = crate::crc::crc64_short(
        payload_crc(crate::crc::crc64_short(0, &[type_id]), &value),
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
