//! `rdbkit keys`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rdb_cli::keys::{self, Format, Source};
use rdb_cli::output::AtomicFile;
use rdb_cli::stats::memory::{Allocator, Layout, Model};
use rdb_cli::Failure;

use super::stats::{AllocatorArg, LayoutArg};
use crate::cli::args::{filter, FilterArgs, ReadOptions};
use crate::cli::input::{io_context, Input};
use crate::cli::values::resolve_now;
use crate::cli::{usage, Context};

/// `rdbkit keys` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit keys dump.rdb -o keys.parquet\n  \
    rdbkit keys shard-*.rdb --cluster prod-eu --format csv -o keys.csv\n  \
    rdbkit keys backup/ -o keys.parquet           a split or fetched directory (manifest.json)\n  \
    rdbkit keys dump.rdb --format jsonl -o - --include 'session:*' | head\n  \
    rdbkit keys dump.rdb --format rdbtools -o memory.csv   as `rdb -c memory` writes it\n  \
    duckdb -c \"SELECT type, count(*), sum(memory) FROM 'keys.parquet' GROUP BY type\"\n\n\
    Columns and their types, and example queries: docs/keys.md.\n\n\
    Exit codes: 0 written, 1 a snapshot is malformed (named with its byte offset, db and \
    key), 2 usage or I/O error.")]
pub struct KeysArgs {
    /// RDB files (`-`: standard input; gzip is decompressed), or directories holding a
    /// manifest.json (from `convert --shards`), whose files are read in its order.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The file to write, atomically; `-` writes CSV, JSON Lines or rdbtools to
    /// standard output.
    #[arg(short, long)]
    output: PathBuf,
    /// Output format (default: from the output's extension: .parquet, .csv, .jsonl).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// A label written in the `cluster` column of every record.
    #[arg(long, value_name = "NAME")]
    cluster: Option<String>,
    /// A label written in the `instance` column of every record.
    #[arg(long, value_name = "NAME")]
    instance: Option<String>,
    /// Print a summary (files, keys, keys left out, row groups) as JSON on standard output
    /// (with -o FILE).
    #[arg(long)]
    json: bool,
    /// "Now" for --expired drop and the TTL filters: Unix milliseconds, `ctime` (of the
    /// first input) or `clock` (the default).
    #[arg(long, value_name = "UNIX_MS|ctime|clock")]
    now: Option<String>,
    /// Server layout for the memory estimate (default: from each snapshot's version).
    #[arg(long, value_enum, default_value_t = LayoutArg::Auto)]
    memory_layout: LayoutArg,
    /// Allocator for the memory estimate.
    #[arg(long, value_enum, default_value_t = AllocatorArg::Jemalloc)]
    allocator: AllocatorArg,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    read: ReadOptions,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    /// Apache Parquet, SNAPPY-compressed, in row groups of up to 131072 keys.
    Parquet,
    /// CSV with a header; keys escaped (docs/keys.md).
    Csv,
    /// One JSON object per key; keys as in `export` (string, or {"base64": ...}).
    Jsonl,
    /// redis-rdb-tools' memory report: database,type,key,size_in_bytes,encoding,
    /// num_elements,len_largest_element,expiry.
    Rdbtools,
}

pub fn run(a: &KeysArgs, cx: &Context) -> Result<(), Failure> {
    let to_stdout = a.output.as_os_str() == "-";
    let format = match (a.format, Format::from_extension(&a.output)) {
        (Some(f), _) => match f {
            FormatArg::Parquet => Format::Parquet,
            FormatArg::Csv => Format::Csv,
            FormatArg::Jsonl => Format::Jsonl,
            FormatArg::Rdbtools => Format::Rdbtools,
        },
        (None, Some(f)) => f,
        (None, None) => {
            return Err(usage(format!(
                "-o {}: give --format parquet|csv|jsonl|rdbtools (the name does not end in \
                 .parquet, .csv or .jsonl)",
                a.output.display()
            )))
        }
    };
    if to_stdout && format == Format::Parquet {
        return Err(usage(
            "Parquet is not written to standard output (its footer is read first): give -o \
             FILE, or --format csv|jsonl|rdbtools for -o -"
                .into(),
        ));
    }
    if a.json && to_stdout {
        return Err(usage(
            "--json prints the summary on standard output, which carries the records here: \
             give -o FILE"
                .into(),
        ));
    }
    let paths = expand(&a.files)?;
    let inputs = Input::open_all(&paths)?;
    rdb_cli::output::check_destination(&a.output).map_err(|e| io_context(e, &a.output))?;
    let first = inputs.first().map(|i| i.bytes()).unwrap_or_default();
    let now_ms = resolve_now(a.now.as_deref(), first).map_err(usage)?;
    let mut options = keys::Options::new(format);
    options.cluster = a.cluster.clone();
    options.instance = a.instance.clone();
    options.filter = filter(&a.filter, now_ms)?;
    options.db_map = a.filter.db_map.iter().copied().collect();
    options.allocator = match a.allocator {
        AllocatorArg::Jemalloc => Allocator::Jemalloc,
        AllocatorArg::JemallocQuantum16 => Allocator::JemallocQuantum16,
        AllocatorArg::Libc => Allocator::Libc,
    };
    options.model = layout(a.memory_layout).map(|layout| Model {
        layout,
        allocator: options.allocator,
    });
    let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    let sources: Vec<Source<'_>> = names
        .iter()
        .zip(&inputs)
        .map(|(name, input)| Source {
            name,
            data: input.bytes(),
        })
        .collect();
    let total = sources.iter().map(|s| s.data.len() as u64).sum();
    let progress = cx.progress(total);
    let out = AtomicFile::create(&a.output).map_err(|e| io_context(e, &a.output))?;
    let (summary, out) = keys::write(&sources, &a.read.builder(), &options, out, progress.tick())?;
    drop(progress);
    out.commit().map_err(|e| io_context(e, &a.output))?;
    if a.json {
        let v = serde_json::json!({
            "format": format.name(),
            "files": summary.files,
            "keys": summary.keys,
            "keys_left_out": summary.left_out,
            "input_bytes": summary.input_bytes,
            "row_groups": summary.row_groups,
        });
        println!("{v}");
    } else if !cx.quiet && !to_stdout {
        eprintln!(
            "rdbkit: {} keys from {} file(s) written to {} ({}){}",
            summary.keys,
            summary.files,
            a.output.display(),
            format.name(),
            if summary.left_out > 0 {
                format!(", {} left out by the filters", summary.left_out)
            } else {
                String::new()
            }
        );
    }
    Ok(())
}

fn layout(l: LayoutArg) -> Option<Layout> {
    Some(match l {
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

/// Each argument as it is, except directories: the files their manifest.json lists.
fn expand(args: &[PathBuf]) -> Result<Vec<PathBuf>, Failure> {
    Ok(rdb_cli::parts::expand(args)?
        .into_iter()
        .map(|part| part.path)
        .collect())
}
