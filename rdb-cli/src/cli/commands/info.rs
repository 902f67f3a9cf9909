//! `rdbkit info`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::{info, Failure};

use crate::cli::args::ReadOptions;
use crate::cli::input::Input;
use crate::cli::{print_report, Context};

/// `rdbkit info` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit info dump.rdb                 version, aux fields, checksum, keys per db/type/encoding\n  \
    rdbkit info dump.rdb --json          the same, for scripts\n  \
    rdbkit info dump.rdb.gz              gzip is recognised by its magic bytes\n  \
    redis-cli --rdb - | rdbkit info -    - reads standard input\n\n\
    Exit codes: 0 the file reads to its end, 1 the snapshot is malformed, 2 usage or I/O error.")]
pub struct InfoArgs {
    /// The RDB file to read (`-`: standard input; gzip is decompressed).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadOptions,
}

pub fn run(a: &InfoArgs, cx: &Context) -> Result<(), Failure> {
    let input = Input::open(&a.file)?;
    let progress = cx.progress(input.bytes().len() as u64);
    let info = info::collect(input.bytes(), &a.read.builder(), progress.tick())?;
    drop(progress);
    print_report(a.json, || info.to_json(), |out| info.write_text(out))
}
