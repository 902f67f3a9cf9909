//! `rdbkit verify`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::verify::{PartReport, Whole};
use rdb_cli::Failure;

use super::info::{open_parts, total_bytes};
use crate::cli::input::Input;
use crate::cli::Context;

/// `rdbkit verify` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit verify dump.rdb                 one line per problem, then a verdict\n  \
    rdbkit verify dump.rdb --json          the same as JSON (docs/verify-json.md)\n  \
    rdbkit verify dump.rdb --json | jq -r '.problems[] | select(.severity == \"error\") | .key'\n  \
    rdbkit verify shards/                  each part of a split or fetched directory, then the \
    whole\n\n\
    A problem line reads:\n  \
    error at byte 4211, db 0, key \"user:7\" [duplicate-member]: 1 duplicate members: \"a\"\n\
    [name] is the check (docs/verify-json.md lists them). An error is what a server refuses \
    or loads wrongly; a warning is what servers load but a healthy server does not write \
    (empty quicklist nodes, bytes after the trailer, ...). A value that is corrupt inside \
    its known extent is reported and the walk goes on; a broken length ends it (the verdict \
    then says the walk stopped before EOF).\n\
    Several files (a cluster's shards) or a directory with manifest.json: each part is \
    verified and reported under its name, then one verdict line for the whole; with a \
    manifest, keys outside a part's slot ranges are an outside-slots warning.\n\
    Memory: the duplicate-key check keeps 8 to 16 bytes per key (100 M keys: 0.8 to 1.6 GB); \
    a file with duplicate keys is walked once more to name them, with about 40 bytes more \
    for each key stored twice.\n\
    Shallower and nearly twice as fast: `rdbkit info` checks the CRC64 and the file's framing \
    (every key and value length), not what is inside the values.\n\n\
    Exit codes: 0 no errors (warnings allowed), 1 errors found (with several files: in any \
    part), 2 a file cannot be read.")]
pub struct VerifyArgs {
    /// The RDB file(s) to verify (`-`: standard input; gzip is decompressed), or a
    /// directory with manifest.json (from `convert --shards` or `fetch --cluster`).
    #[arg(required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// List at most this many problems (per file); the rest are counted (errors and
    /// warnings stay exact), so a file broken in every key does not fill memory.
    #[arg(long, value_name = "N", default_value_t = rdb_cli::verify::DEFAULT_MAX_PROBLEMS)]
    max_problems: usize,
}

pub fn run(a: &VerifyArgs, cx: &Context) -> Result<(), Failure> {
    let Some(parts) = open_parts(&a.files)? else {
        let input = Input::open(a.files.first().map_or("-".as_ref(), |p| p.as_path()))?;
        let progress = cx.progress(input.bytes().len() as u64);
        let report = rdb_cli::verify::verify_with(input.bytes(), a.max_problems, progress.tick());
        drop(progress);
        // Written a problem at a time: a report of many problems is never built as one value.
        write(|out| {
            if a.json {
                report.write_json(out)
            } else {
                report.write_text(out)
            }
        })?;
        return verdict(report.ok());
    };
    let progress = cx.progress(total_bytes(&parts));
    let mut whole = Whole::default();
    let mut done = 0;
    for (part, input) in &parts {
        progress.message(part.shown());
        let mut tick = progress.tick();
        let data = input.bytes();
        let report = rdb_cli::verify::verify_part(data, part, a.max_problems, |at| tick(done + at));
        whole.parts.push(PartReport {
            part: part.clone(),
            report,
        });
        done += data.len() as u64;
    }
    drop(progress);
    write(|out| {
        if a.json {
            whole.write_json(out)
        } else {
            whole.write_text(out)
        }
    })?;
    verdict(whole.ok())
}

fn write(
    report: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    report(&mut out).map_err(Failure::Io)?;
    std::io::Write::flush(&mut out).map_err(Failure::Io)
}

fn verdict(ok: bool) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(Failure::Verdict(1))
    }
}
