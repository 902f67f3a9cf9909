//! `rdbkit stats`: its flags, and their resolution into `rdb_cli::stats::Options`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rdb_cli::stats::memory::{Allocator, Layout, Model};
use rdb_cli::stats::{Options, Source};
use rdb_cli::Failure;

use crate::cli::args::ReadOptions;
use crate::cli::input::Input;
use crate::cli::values::clock_ms;
use crate::cli::Context;

/// The allocator the estimate rounds allocations for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

impl AllocatorArg {
    pub fn allocator(self) -> Allocator {
        match self {
            AllocatorArg::Jemalloc => Allocator::Jemalloc,
            AllocatorArg::JemallocQuantum16 => Allocator::JemallocQuantum16,
            AllocatorArg::Libc => Allocator::Libc,
        }
    }
}

/// The server layout the estimate follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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

impl LayoutArg {
    /// The layout asked for; `None` for `auto` (each snapshot's own version decides).
    pub fn layout(self) -> Option<Layout> {
        Some(match self {
            LayoutArg::Auto => return None,
            LayoutArg::Redis6 => Layout::Redis6,
            LayoutArg::Redis70 => Layout::Redis70,
            LayoutArg::Redis74 => Layout::Redis74,
            LayoutArg::Redis8 => Layout::Redis8,
            LayoutArg::Redis86 => Layout::Redis86,
            LayoutArg::Valkey80 => Layout::Valkey80,
            LayoutArg::Valkey81 => Layout::Valkey81,
            LayoutArg::Valkey90 => Layout::Valkey90,
        })
    }
}

/// `rdbkit stats` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit stats dump.rdb                       the terminal report\n  \
    rdbkit stats dump.rdb --json > stats.json   for scripts (schema: docs/stats-json.md)\n  \
    rdbkit stats dump.rdb --html report.html    one self-contained page with charts\n  \
    rdbkit stats dump.rdb --top 50 --separators ':' --depth 2 --shards 6\n  \
    rdbkit stats shard-*.rdb                    a cluster's shards: the whole and each part\n  \
    rdbkit stats backup/                        a split or fetched directory (manifest.json)\n\n\
    Memory is an estimate of what `MEMORY USAGE key SAMPLES 0` reports on the server that \
    wrote the file (docs/memory-model.md gives the model and its measured error).\n\n\
    Exit codes: 0 success, 1 a snapshot is malformed, 2 usage or I/O error.")]
pub struct StatsCommand {
    /// The RDB files to read (`-`: standard input; gzip is decompressed), or directories
    /// holding a manifest.json (from `convert --shards` or `fetch --cluster`). Several
    /// are reported as one whole and part by part.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print JSON instead of the text report.
    #[arg(long)]
    json: bool,
    /// Also write a self-contained HTML report (charts, no network fetches) here,
    /// atomically: the whole page or no file.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// How many of the biggest keys to list (by bytes, by elements, by memory).
    #[arg(long, default_value_t = 20, value_name = "N")]
    top: usize,
    /// ASCII bytes that end a key-prefix segment, e.g. ':|' or ':/.'; a key with none
    /// of them counts only in the total.
    #[arg(long, default_value = ":|", value_name = "CHARS")]
    separators: String,
    /// How many prefix segments deep the breakdown goes (0 to 32).
    #[arg(long, default_value_t = 3, value_name = "N")]
    depth: usize,
    /// "Now" for expiry and TTLs: Unix time in ms, `ctime` (the default: the end of the
    /// second the snapshot's ctime AUX names; the clock when it has none) or `clock`.
    /// A key is expired once now is past its time, as the server decides.
    #[arg(long, value_name = "MS|ctime|clock")]
    now: Option<String>,
    /// Show how an even split into N cluster shards would balance keys and bytes.
    #[arg(long, default_value_t = 3, value_name = "N")]
    shards: usize,
    /// Server layout for the memory estimate.
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    memory_layout: LayoutArg,
    /// Allocator for the memory estimate.
    #[arg(long, value_enum, default_value_t = AllocatorArg::Jemalloc)]
    allocator: AllocatorArg,
    #[command(flatten)]
    read: ReadOptions,
}

impl StatsCommand {
    /// The library's options these flags describe.
    fn options(&self) -> Result<Options, Failure> {
        // Unset and `ctime` leave "now" to each snapshot's ctime AUX field.
        let now_ms = match self.now.as_deref() {
            None | Some("ctime") => None,
            Some("clock") => Some(clock_ms()),
            Some(ms) => Some(ms.trim().parse::<i64>().map_err(|_| {
                Failure::Usage(format!(
                    "--now {ms:?}: give Unix milliseconds, `ctime` or `clock`"
                ))
            })?),
        };
        if let Some(c) = self.separators.chars().find(|c| !c.is_ascii()) {
            // Each byte of a multi-byte character would split keys in mid-character.
            return Err(Failure::Usage(format!(
                "--separators: {c:?} is not ASCII; give single-byte separators"
            )));
        }
        let allocator = self.allocator.allocator();
        let options = Options {
            top: self.top,
            separators: self.separators.as_bytes().to_vec(),
            depth: self.depth,
            now_ms,
            shards: self.shards,
            model: self
                .memory_layout
                .layout()
                .map(|layout| Model { layout, allocator }),
            allocator,
            json: self.json,
            html: self.html.clone(),
        };
        options.check()?;
        Ok(options)
    }
}

pub fn run(a: &StatsCommand, cx: &Context) -> Result<(), Failure> {
    let options = a.options()?;
    let parts = rdb_cli::parts::expand(&a.files)?;
    let paths: Vec<PathBuf> = parts.iter().map(|p| p.path.clone()).collect();
    let inputs = Input::open_all(&paths)?;
    if let Some(html) = &a.html {
        rdb_cli::output::check_destination(html)
            .map_err(|e| crate::cli::input::io_context(e, html))?;
    }
    let sources: Vec<Source<'_>> = parts
        .iter()
        .zip(&inputs)
        .map(|(part, input)| Source {
            part,
            data: input.bytes(),
        })
        .collect();
    let total = sources.iter().map(|s| s.data.len() as u64).sum();
    let progress = cx.progress(total);
    let mut out = std::io::stdout().lock();
    rdb_cli::stats::run(
        &sources,
        &a.read.builder(),
        &options,
        &mut out,
        progress.tick(),
    )?;
    Ok(())
}
