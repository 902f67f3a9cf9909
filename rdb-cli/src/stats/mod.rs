//! `rdbkit stats`: an assessment of a snapshot from one streaming pass with flat memory:
//! keys per db/type/encoding, serialized and estimated in-memory sizes, the biggest keys,
//! key prefixes, TTLs, hash slots and shard balance, modules, functions and streams.
//! Output: a terminal report, `--json` (docs/stats-json.md) or one self-contained
//! `--html` page.

pub mod collect;
pub mod html;
pub mod json;
pub mod memory;
pub mod text;

use std::io::Write;
use std::path::PathBuf;

use rdb_parser::ParserBuilder;

pub use collect::{collect, Options, Stats};

use crate::Failure;

/// The deepest prefix breakdown `--depth` accepts.
pub const MAX_DEPTH: usize = 32;

/// The allocator the estimate rounds allocations for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AllocatorArg {
    /// jemalloc as Redis and Valkey bundle it (official builds, Docker images):
    /// `MEMORY MALLOC-STATS` says `Quantum size: 8`.
    Jemalloc,
    /// jemalloc from a distribution package built against the system library (Debian and
    /// Ubuntu `redis-server`): `MEMORY MALLOC-STATS` says `Quantum size: 16`.
    #[value(name = "jemalloc-q16")]
    JemallocQuantum16,
    /// glibc malloc (`INFO memory` says `mem_allocator:libc`).
    Libc,
}

/// The server layout the estimate follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LayoutArg {
    /// From the snapshot's redis-ver / valkey-ver.
    Auto,
    /// Redis 6.x (ziplists; reports blob lengths unrounded).
    Redis6,
    /// Redis 7.0.
    Redis70,
    /// Redis 7.2 and 7.4 (keys inside the dict entries).
    Redis74,
    /// Redis 8.0 to 8.4.
    Redis8,
    /// Redis 8.6 (keys inside the value objects; sizes as each structure tracks them).
    Redis86,
    /// Valkey 8.0 (keys inside the value objects).
    Valkey80,
    /// Valkey 8.1 (open-addressing hashtable).
    Valkey81,
    /// Valkey 9.x.
    Valkey90,
}

/// `rdbkit stats` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = "Examples:\n  \
    rdbkit stats dump.rdb                       the terminal report\n  \
    rdbkit stats dump.rdb --json > stats.json   for scripts (schema: docs/stats-json.md)\n  \
    rdbkit stats dump.rdb --html report.html    one self-contained page with charts\n  \
    rdbkit stats dump.rdb --top 50 --separators ':' --depth 2 --shards 6\n\n\
    Memory is an estimate of what `MEMORY USAGE key SAMPLES 0` reports on the server that \
    wrote the file (docs/memory-model.md gives the model and its measured error).\n\n\
    Exit codes: 0 success, 1 the snapshot is malformed, 2 usage or I/O error.")]
pub struct StatsArgs {
    /// The RDB file to read.
    pub file: PathBuf,
    /// Print JSON instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Also write a self-contained HTML report (charts, no network fetches) here,
    /// atomically: the whole page or no file.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// How many of the biggest keys to list (by bytes, by elements, by memory).
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub top: usize,
    /// ASCII bytes that end a key-prefix segment, e.g. ':|' or ':/.'; a key with none
    /// of them counts only in the total.
    #[arg(long, default_value = ":|", value_name = "CHARS")]
    pub separators: String,
    /// How many prefix segments deep the breakdown goes (0 to 32).
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub depth: usize,
    /// "Now" for expiry and TTLs: Unix time in ms, `ctime` (the default: the end of the
    /// second the snapshot's ctime AUX names; the clock when it has none) or `clock`.
    /// A key is expired once now is past its time, as the server decides.
    #[arg(long, value_name = "MS|ctime|clock")]
    pub now: Option<String>,
    /// Show how an even split into N cluster shards would balance keys and bytes.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub shards: usize,
    /// Server layout for the memory estimate.
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    pub memory_layout: LayoutArg,
    /// Allocator for the memory estimate.
    #[arg(long, value_enum, default_value_t = AllocatorArg::Jemalloc)]
    pub allocator: AllocatorArg,
}

impl StatsArgs {
    /// The collection options these flags describe.
    pub fn options(&self) -> Result<Options, Failure> {
        let now_ms = match self.now.as_deref() {
            None | Some("ctime") => None,
            Some("clock") => Some(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0),
            ),
            Some(ms) => Some(ms.trim().parse::<i64>().map_err(|_| {
                Failure::Usage(format!(
                    "--now {ms:?}: give Unix milliseconds, `ctime` or `clock`"
                ))
            })?),
        };
        if self.shards == 0 || self.shards > rdb_writer::slot::SLOTS {
            return Err(Failure::Usage(format!(
                "--shards {}: give between 1 and 16384",
                self.shards
            )));
        }
        if self.depth > MAX_DEPTH {
            // The breakdown is walked recursively; a key of 100k separators at an
            // unbounded depth overflowed the stack.
            return Err(Failure::Usage(format!(
                "--depth {}: give between 0 and {MAX_DEPTH}",
                self.depth
            )));
        }
        if self.separators.is_empty() && self.depth > 0 {
            return Err(Failure::Usage(
                "--separators is empty: give at least one byte, or --depth 0".into(),
            ));
        }
        if let Some(c) = self.separators.chars().find(|c| !c.is_ascii()) {
            // Each byte of a multi-byte character would split keys in mid-character.
            return Err(Failure::Usage(format!(
                "--separators: {c:?} is not ASCII; give single-byte separators"
            )));
        }
        let allocator = match self.allocator {
            AllocatorArg::Jemalloc => memory::Allocator::Jemalloc,
            AllocatorArg::JemallocQuantum16 => memory::Allocator::JemallocQuantum16,
            AllocatorArg::Libc => memory::Allocator::Libc,
        };
        let layout = match self.memory_layout {
            LayoutArg::Auto => None,
            LayoutArg::Redis6 => Some(memory::Layout::Redis6),
            LayoutArg::Redis70 => Some(memory::Layout::Redis70),
            LayoutArg::Redis74 => Some(memory::Layout::Redis74),
            LayoutArg::Redis8 => Some(memory::Layout::Redis8),
            LayoutArg::Redis86 => Some(memory::Layout::Redis86),
            LayoutArg::Valkey80 => Some(memory::Layout::Valkey80),
            LayoutArg::Valkey81 => Some(memory::Layout::Valkey81),
            LayoutArg::Valkey90 => Some(memory::Layout::Valkey90),
        };
        Ok(Options {
            top: self.top,
            separators: self.separators.as_bytes().to_vec(),
            depth: self.depth,
            now_ms,
            shards: self.shards,
            model: layout.map(|layout| memory::Model { layout, allocator }),
            allocator,
        })
    }
}

/// Collects the statistics of `data` and writes the report(s) as `args` asks.
pub fn run(
    data: &[u8],
    parser: &ParserBuilder,
    args: &StatsArgs,
    out: &mut dyn Write,
    progress: impl FnMut(u64) + Send,
) -> Result<Stats, Failure> {
    let options = args.options()?;
    let stats = collect(data, parser, &options, progress)?;
    if let Some(path) = &args.html {
        let title = args
            .file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "snapshot".into());
        let mut file = crate::output::AtomicFile::create(path).map_err(|e| io_at(e, path))?;
        html::write(&stats, &title, &mut file).map_err(|e| io_at(e, path))?;
        file.commit().map_err(|e| io_at(e, path))?;
    }
    if args.json {
        let text =
            serde_json::to_string_pretty(&stats.to_json()).map_err(|e| Failure::Io(e.into()))?;
        writeln!(out, "{text}").map_err(Failure::Io)?;
    } else {
        text::write(&stats, out).map_err(Failure::Io)?;
    }
    out.flush().map_err(Failure::Io)?;
    Ok(stats)
}

fn io_at(e: std::io::Error, path: &std::path::Path) -> Failure {
    Failure::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}
