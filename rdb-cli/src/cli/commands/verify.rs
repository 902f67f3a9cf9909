//! `rdbkit verify`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::Failure;

use crate::cli::input::Input;
use crate::cli::Context;

/// `rdbkit verify` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit verify dump.rdb                 one line per problem, then a verdict\n  \
    rdbkit verify dump.rdb --json          the same as JSON (docs/verify-json.md)\n  \
    rdbkit verify dump.rdb --json | jq -r '.problems[] | select(.severity == \"error\") | .key'\n\n\
    A problem line reads:\n  \
    error at byte 4211, db 0, key \"user:7\" [duplicate-member]: 1 duplicate members: \"a\"\n\
    [name] is the check (docs/verify-json.md lists them). An error is what a server refuses \
    or loads wrongly; a warning is what servers load but a healthy server does not write \
    (empty quicklist nodes, bytes after the trailer, ...). A value that is corrupt inside \
    its known extent is reported and the walk goes on; a broken length ends it (the verdict \
    then says the walk stopped before EOF).\n\
    Memory: the duplicate-key check keeps 8 to 16 bytes per key (100 M keys: 0.8 to 1.6 GB); \
    a file with duplicate keys is walked once more to name them, with about 40 bytes more \
    for each key stored twice.\n\
    Shallower and nearly twice as fast: `rdbkit info` checks the CRC64 and the file's framing \
    (every key and value length), not what is inside the values.\n\n\
    Exit codes: 0 no errors (warnings allowed), 1 errors found, 2 the file cannot be read.")]
pub struct VerifyArgs {
    /// The RDB file to verify (`-`: standard input; gzip is decompressed).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// List at most this many problems; the rest are counted (errors and warnings stay
    /// exact), so a file broken in every key does not fill memory.
    #[arg(long, value_name = "N", default_value_t = rdb_cli::verify::DEFAULT_MAX_PROBLEMS)]
    max_problems: usize,
}

pub fn run(a: &VerifyArgs, cx: &Context) -> Result<(), Failure> {
    let input = Input::open(&a.file)?;
    let progress = cx.progress(input.bytes().len() as u64);
    let report = rdb_cli::verify::verify_with(input.bytes(), a.max_problems, progress.tick());
    drop(progress);
    // Written a problem at a time: a report of many problems is never built as one value.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if a.json {
        report.write_json(&mut out).map_err(Failure::Io)?;
    } else {
        report.write_text(&mut out).map_err(Failure::Io)?;
    }
    std::io::Write::flush(&mut out).map_err(Failure::Io)?;
    if report.ok() {
        Ok(())
    } else {
        Err(Failure::Verdict(1))
    }
}
