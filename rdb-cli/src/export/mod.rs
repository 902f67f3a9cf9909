//! `rdbkit export`: the snapshot rewritten in another format, in file order.
//!
//! Every format runs on one driver ([`run`]): the read pipeline hands each key to the
//! format's per-key part ([`ExportFormat::key`]) on all cores, then every item, in file
//! order, to its per-item part ([`ExportFormat::item`]) on the writing thread, which
//! writes headers, `SELECT`s, trailers and counts the [`Summary`]. A format is one file
//! here and one line of [`FORMATS`]; a module type rendered beyond its opaque blob is one
//! file and one line of [`MODULE_TYPES`].

use std::io::Write;

use rdb_parser::{Entry, Item, Module, ParserBuilder};
use rdb_pipeline::Spanned;
use rdb_writer::convert::ConvertOptions;

use crate::Failure;

pub mod jsonl;
pub mod resp;
pub mod restore;
pub mod vectorset;

pub use jsonl::{write_key, write_value};

/// The formats `export --format` offers, in the order `--help` lists them.
pub const FORMATS: &[FormatSpec] = &[jsonl::SPEC, resp::SPEC, restore::SPEC];

/// One export format, as the command line offers it.
#[derive(Debug, Clone, Copy)]
pub struct FormatSpec {
    /// The `--format` value.
    pub name: &'static str,
    /// One line for `--help`.
    pub help: &'static str,
    /// Whether it writes for a target server: `--target`/`--rdb-version`, `--replace` and
    /// the loss policies apply, and [`Job::target`] is set.
    pub for_target: bool,
    /// Runs the export.
    pub run: fn(&mut Job<'_>) -> Result<Summary, Failure>,
}

impl FormatSpec {
    /// The format called `name`.
    pub fn named(name: &str) -> Option<&'static FormatSpec> {
        FORMATS.iter().find(|f| f.name == name)
    }
}

/// Values whose stored form is larger than this are formatted on the writing thread and
/// written out in pieces (jsonl) or command by command (resp): formatted whole, a 1 GB
/// list held about 3 GB in memory.
pub(crate) const IN_PIECES_ABOVE: usize = 8 << 20;
/// What a format writes for, when it writes commands for a server.
#[derive(Debug, Clone)]
pub struct TargetOptions {
    /// RESTORE ... REPLACE, or `DEL key` before the plain commands.
    pub replace: bool,
    /// The target (payload version, which commands it has) and the loss policies.
    pub convert: ConvertOptions,
}

/// One export to run.
pub struct Job<'a> {
    pub data: &'a [u8],
    pub parser: &'a ParserBuilder,
    /// Set when the format is [`FormatSpec::for_target`].
    pub target: Option<&'a TargetOptions>,
    pub out: &'a mut dyn Write,
    /// Called with the offset of each key written or left out.
    pub progress: &'a mut dyn FnMut(u64),
}

impl std::fmt::Debug for Job<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("bytes", &self.data.len())
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl Job<'_> {
    /// The target options, which a format for a server cannot do without.
    pub fn target_options(&self, format: &str) -> Result<&TargetOptions, Failure> {
        self.target.ok_or_else(|| {
            Failure::Usage(format!(
                "--format {format} needs a target (--target or --rdb-version)"
            ))
        })
    }
}

/// What an export wrote and left out.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub keys: u64,
    /// Lines (jsonl) or commands (resp, restore).
    pub records: u64,
    pub bytes: u64,
    /// Keys the target cannot hold that a flag allowed to leave out.
    pub keys_left_out: u64,
    /// Hash fields whose TTL the target has no command for (plain commands).
    pub field_ttls_left_out: u64,
    /// Function libraries written.
    pub functions: u64,
    /// Function libraries left out (`--functions drop`, a target without functions).
    pub functions_left_out: u64,
    /// Redis 8.6 streams written without their IDMP state (`--stream-idmp drop`).
    pub streams_idmp_left_out: u64,
    /// Redis 8.6 module key metadata records the target cannot take (reported, never kept).
    pub key_meta_left_out: u64,
}

/// The output as the per-item part sees it: the writer, with the bytes counted, and the
/// summary so far.
pub struct Sink<'o> {
    out: Counted<'o>,
    pub summary: Summary,
}

impl std::fmt::Debug for Sink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("bytes", &self.out.bytes)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl Sink<'_> {
    /// Writes `bytes` as they are.
    pub fn write(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.out.write_all(bytes).map_err(Failure::Io)
    }

    /// Writes one record (a line, a command) and counts it.
    pub fn record(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.summary.records += 1;
        self.write(bytes)
    }

    /// The writer itself, for a record written in pieces (its bytes are still counted).
    pub fn writer(&mut self) -> &mut dyn Write {
        &mut self.out
    }
}

/// A writer that counts what goes through it.
struct Counted<'o> {
    inner: &'o mut dyn Write,
    bytes: u64,
}

impl Write for Counted<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.bytes += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// One export format: a per-key part the workers run and a per-item part the writing
/// thread runs in file order.
pub trait ExportFormat: Sync {
    /// What the workers make of one key.
    type Key<'data>: Send;
    /// What the writing thread keeps between items (a header being gathered, the
    /// current database).
    type State: Default;

    /// Formats one key, on any core and in any order. `None` leaves the key to
    /// [`ExportFormat::item`] (a value too large to hold formatted, written in pieces).
    fn key<'data>(&self, entry: &Entry<'data>) -> Result<Option<Self::Key<'data>>, Failure>;

    /// Writes one item, in file order, with what [`ExportFormat::key`] made of it when
    /// it is a key.
    fn item<'data>(
        &self,
        state: &mut Self::State,
        item: Item<'data>,
        key: Option<Self::Key<'data>>,
        out: &mut Sink<'_>,
    ) -> Result<(), Failure>;
}

/// Runs `format` over the whole snapshot. Keys are formatted on all cores and written in
/// file order; the checksum is verified on another thread.
pub fn run<F: ExportFormat>(format: &F, job: &mut Job<'_>) -> Result<Summary, Failure> {
    let data = job.data;
    let out = &mut *job.out;
    let progress = &mut *job.progress;
    rdb_pipeline::checked(data, job.parser, |parser, eof_seen| {
        let mut sink = Sink {
            out: Counted {
                inner: out,
                bytes: 0,
            },
            summary: Summary::default(),
        };
        in_file_order(format, data, parser, eof_seen, &mut sink, progress)?;
        sink.out.flush().map_err(Failure::Io)?;
        sink.summary.bytes = sink.out.bytes;
        Ok(sink.summary)
    })
}

fn in_file_order<'data, F: ExportFormat>(
    format: &F,
    data: &'data [u8],
    parser: &ParserBuilder,
    eof_seen: &rdb_pipeline::EofSeen,
    sink: &mut Sink<'_>,
    progress: &mut dyn FnMut(u64),
) -> Result<(), Failure> {
    let mut state = F::State::default();
    let work = |s: Spanned<'data>| -> Result<(Item<'data>, Option<F::Key<'data>>), Failure> {
        match &s.item {
            Item::Key(entry) => {
                let key = format.key(entry)?;
                Ok((s.item, key))
            }
            _ => Ok((s.item, None)),
        }
    };
    let write = |(item, key): (Item<'data>, Option<F::Key<'data>>)| -> Result<(), Failure> {
        match &item {
            Item::Key(entry) => progress(entry.offset),
            Item::Eof(eof) => eof_seen.set(*eof),
            _ => {}
        }
        format.item(&mut state, item, key, sink)
    };
    rdb_pipeline::ordered(parser.parse(data)?, work, write)
}

/// How the formats render one module type beyond its opaque blob (`{"module", "encver",
/// "raw"}` in JSON, no plain-command form): one file per module type, listed in
/// [`MODULE_TYPES`].
///
/// Both hooks stream: a value may be far larger than memory allows to hold formatted, so
/// `json` calls [`jsonl::Line::spill`] after each element (the line goes out in pieces
/// on the writing thread) and `commands` hands each command to `emit` as it is built,
/// holding no more than a bounded part of the value at once.
#[derive(Debug, Clone, Copy)]
pub struct ModuleType {
    /// The module type name as stored (9 characters), e.g. `vectorset`.
    pub name: &'static str,
    /// Appends the value of the key's JSON line (`value`).
    pub json: ModuleJson,
    /// Hands the plain commands that re-create the value of `key` to `emit` (the key's
    /// `DEL` and `PEXPIREAT` are written around them).
    pub commands: ModuleCommands,
}

/// [`ModuleType::json`]: the line being written, the value.
pub type ModuleJson = fn(&mut jsonl::Line<'_, '_>, &Module<'_>) -> Result<(), rdb_parser::Error>;

/// [`ModuleType::commands`]: key name, value, what the target has, where each command goes.
pub type ModuleCommands = fn(
    &[u8],
    &Module<'_>,
    &resp::NativeOptions,
    &mut dyn FnMut(Vec<u8>),
) -> Result<(), resp::NativeError>;

/// Module types rendered beyond the opaque blob.
pub const MODULE_TYPES: &[ModuleType] = &[vectorset::TYPE];

/// The rendering of `m`'s module type, if it has one.
pub fn module_type(m: &Module<'_>) -> Option<&'static ModuleType> {
    let name = m.id.name();
    MODULE_TYPES.iter().find(|t| t.name == name)
}

// -----------------------------------------------------------------------------------------
// The entry points of earlier releases, kept for the library's callers.

/// What a JSON Lines export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ExportSummary {
    pub keys: u64,
    pub lines: u64,
}

/// Writes the whole snapshot as JSON Lines to `out` (`--format jsonl`).
pub fn jsonl(
    data: &[u8],
    parser: &ParserBuilder,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> Result<ExportSummary, Failure> {
    let s = (jsonl::SPEC.run)(&mut Job {
        data,
        parser,
        target: None,
        out,
        progress: &mut progress,
    })?;
    Ok(ExportSummary {
        keys: s.keys,
        lines: s.records,
    })
}

/// Which commands [`commands`] writes.
#[derive(Debug, Clone)]
pub struct CommandsOptions {
    /// `RESTORE` with DUMP payloads for `convert.target` (else plain commands).
    pub restore: bool,
    /// RESTORE ... REPLACE, or `DEL key` before the plain commands.
    pub replace: bool,
    /// The payload version and loss policies (RESTORE), and which commands the target has.
    pub convert: ConvertOptions,
}

/// What a command export wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CommandsSummary {
    pub keys: u64,
    pub commands: u64,
    pub bytes: u64,
    /// Keys the target cannot hold that a flag allowed to leave out.
    pub dropped: u64,
    /// Hash fields whose TTL the target has no command for (plain commands).
    pub field_ttls_dropped: u64,
    pub functions: u64,
    /// Function libraries left out (`--functions drop`, a target without functions).
    pub functions_dropped: u64,
}

/// Writes the snapshot as RESP commands for `redis-cli --pipe` (`--format resp` or
/// `--format restore`).
pub fn commands(
    data: &[u8],
    parser: &ParserBuilder,
    o: &CommandsOptions,
    out: &mut dyn Write,
    mut progress: impl FnMut(u64),
) -> Result<CommandsSummary, Failure> {
    let target = TargetOptions {
        replace: o.replace,
        convert: o.convert.clone(),
    };
    let spec = if o.restore { restore::SPEC } else { resp::SPEC };
    let s = (spec.run)(&mut Job {
        data,
        parser,
        target: Some(&target),
        out,
        progress: &mut progress,
    })?;
    Ok(CommandsSummary {
        keys: s.keys,
        commands: s.records,
        bytes: s.bytes,
        dropped: s.keys_left_out,
        field_ttls_dropped: s.field_ttls_left_out,
        functions: s.functions,
        functions_dropped: s.functions_left_out,
    })
}
