//! `rdbkit diff`.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use rdb_cli::output::AtomicFile;
use rdb_cli::Failure;

use crate::cli::args::{filter, FilterArgs, ReadOptions};
use crate::cli::input::{io_context, Input};
use crate::cli::values::clock_ms;
use crate::cli::{usage, Context};

/// Differences shown on the terminal; `--jsonl FILE` has them all.
const SHOWN: usize = 20;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit diff source.rdb target.rdb                     summary and the first differences\n  \
    rdbkit diff a.rdb b.rdb --jsonl diff.jsonl             every difference (docs/diff-jsonl.md)\n  \
    rdbkit diff src.rdb exported.rdb --ttl-tolerance 5s    TTLs within 5 s are equal\n  \
    rdbkit diff src.rdb dst.rdb --db-map 3:0 --include 'user:*'\n\n\
    Filters apply to both files (--db names A's databases; B is filtered on their mapped \
    numbers); --db-map renumbers A's databases (A is the source). --encoding, --min-bytes \
    and --max-bytes are refused: they depend on how each file stores a value.\n\
    A key twice in one db of one side (servers refuse such a file) stops the comparison, \
    naming it. Function libraries and module aux data are compared too, by name, \
    whatever the filters.\n\
    Exit codes: 0 equal, 1 different, 2 usage, I/O or unreadable snapshot.")]
pub struct DiffArgs {
    /// The first snapshot (for a migration: the source).
    a: PathBuf,
    /// The second snapshot (for a migration: the target's export).
    b: PathBuf,
    /// Expiry times at most this far apart count as equal, e.g. 5s or 500ms.
    #[arg(long, value_name = "DURATION", value_parser = crate::cli::values::parse_duration_ms, default_value = "0")]
    ttl_tolerance: i64,
    /// Do not compare expiry times at all.
    #[arg(long)]
    ignore_ttl: bool,
    /// Write every difference as a JSON line to this file (docs/diff-jsonl.md), atomically.
    #[arg(long, value_name = "FILE")]
    jsonl: Option<PathBuf>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
    /// Memory for the records of one bucket, e.g. 256MB or 2GB: the input is split into as
    /// many temporary bucket files as this needs.
    #[arg(long, value_name = "SIZE", value_parser = crate::cli::values::parse_size, default_value = "256MB")]
    memory_limit: u64,
    /// Directory for the temporary bucket files (default: the system temporary directory).
    #[arg(long, value_name = "DIR")]
    temp_dir: Option<PathBuf>,
    /// Force this many buckets per side (1 keeps everything in memory).
    #[arg(long, value_name = "N", hide = true)]
    buckets: Option<usize>,
    /// "Now" for --expired drop and TTL bounds, in Unix milliseconds (default: the clock).
    #[arg(long, value_name = "UNIX_MS")]
    now: Option<i64>,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    read: ReadOptions,
}

pub fn run(args: &DiffArgs, cx: &Context) -> Result<(), Failure> {
    use rdb_cli::diff::{diff, DiffOptions};
    let inputs = Input::open_all(&[args.a.clone(), args.b.clone()])?;
    let [a, b] = inputs.as_slice() else {
        return Err(usage("diff compares two files".into()));
    };
    if let Some(path) = &args.jsonl {
        rdb_cli::output::check_destination(path).map_err(|e| io_context(e, path))?;
    }
    let now_ms = args.now.unwrap_or_else(clock_ms);
    // Encodings and stored sizes differ between two copies of the same data (that is what
    // diff sees through), so a filter on them would select different keys on each side.
    let f = &args.filter;
    if !f.encodings.is_empty() || f.min_bytes.is_some() || f.max_bytes.is_some() {
        return Err(usage(
            "diff compares logical values: --encoding, --min-bytes and --max-bytes depend on \
             how each file stores a value and would keep different keys on each side; use \
             --type or --min-elements/--max-elements instead"
                .into(),
        ));
    }
    let mut db_map = std::collections::HashMap::new();
    for &(from, to) in &f.db_map {
        if let Some(other) = db_map.insert(from, to).filter(|&other| other != to) {
            return Err(usage(format!(
                "--db-map maps db {from} twice (to {other} and to {to})"
            )));
        }
    }
    let opts = DiffOptions {
        filter: filter(&args.filter, now_ms)?,
        db_map,
        ttl_tolerance_ms: args.ttl_tolerance,
        ignore_ttl: args.ignore_ttl,
        memory_limit: args.memory_limit.max(1 << 20),
        buckets: args.buckets,
        temp_dir: args.temp_dir.clone(),
        parser: args.read.builder(),
    };
    let progress = cx.progress((a.bytes().len() + b.bytes().len()) as u64);
    let mut tick = progress.tick();
    let mut shown = 0usize;
    let mut first = Vec::new();
    let mut line = Vec::new();
    let summary = match &args.jsonl {
        Some(path) => {
            let mut out = AtomicFile::create(path).map_err(|e| io_context(e, path))?;
            let summary = diff(
                a.bytes(),
                b.bytes(),
                &opts,
                &mut |d| {
                    line.clear();
                    d.write_json(&mut line);
                    line.push(b'\n');
                    out.write_all(&line).map_err(|e| {
                        std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
                    })
                },
                &mut tick,
            )?;
            out.commit().map_err(|e| io_context(e, path))?;
            summary
        }
        None => diff(
            a.bytes(),
            b.bytes(),
            &opts,
            &mut |d| {
                shown += 1;
                if !args.json && shown <= SHOWN {
                    d.write_text(&mut first)?;
                }
                Ok(())
            },
            &mut tick,
        )?,
    };
    drop(tick);
    drop(progress);
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let text =
            serde_json::to_string_pretty(&summary.to_json()).map_err(|e| Failure::Io(e.into()))?;
        writeln!(stdout, "{text}").map_err(Failure::Io)?;
    } else {
        stdout.write_all(&first).map_err(Failure::Io)?;
        if shown > SHOWN {
            writeln!(
                stdout,
                "... {} more (--jsonl FILE lists them all)",
                shown - SHOWN
            )
            .map_err(Failure::Io)?;
        }
        summary.write_text(&mut stdout).map_err(Failure::Io)?;
    }
    if summary.equal_snapshots() {
        Ok(())
    } else {
        Err(Failure::Verdict(1))
    }
}
