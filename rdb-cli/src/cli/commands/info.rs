//! `rdbkit info`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::parts::Part;
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
    redis-cli --rdb - | rdbkit info -    - reads standard input\n  \
    rdbkit info shards/                  a split or fetched directory (manifest.json): the sums,\n                                       \
    then each part with the slots its keys hash to and keys outside its ranges\n  \
    rdbkit info node-1.rdb node-2.rdb    several files: the same, without slot ranges\n\n\
    Exit codes: 0 the file reads to its end, 1 the snapshot is malformed (with several files: \
    one is, and the error names it), 2 usage or I/O error.")]
pub struct InfoArgs {
    /// The RDB file(s) to read (`-`: standard input; gzip is decompressed), or a directory
    /// with manifest.json (from `convert --shards` or `fetch --cluster`).
    #[arg(required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadOptions,
}

pub fn run(a: &InfoArgs, cx: &Context) -> Result<(), Failure> {
    let Some(parts) = open_parts(&a.files)? else {
        let input = Input::open(a.files.first().map_or("-".as_ref(), |p| p.as_path()))?;
        let progress = cx.progress(input.bytes().len() as u64);
        let info = info::collect(input.bytes(), &a.read.builder(), progress.tick())?;
        drop(progress);
        return print_report(a.json, || info.to_json(), |out| info.write_text(out));
    };
    let progress = cx.progress(total_bytes(&parts));
    let builder = a.read.builder();
    let mut whole = info::InfoParts::default();
    let mut done = 0;
    for (part, input) in &parts {
        progress.message(part.shown());
        let mut tick = progress.tick();
        let data = input.bytes();
        whole
            .parts
            .push(info::collect_part(data, &builder, part, |at| {
                tick(done + at)
            })?);
        done += data.len() as u64;
    }
    drop(progress);
    print_report(a.json, || whole.to_json(), |out| whole.write_text(out))
}

/// The parts of a run over several files (or a directory with manifest.json), each
/// opened, all before any is read (a missing one stops the run before any output);
/// `None` for one file, which keeps its single-file report.
pub fn open_parts(files: &[PathBuf]) -> Result<Option<Vec<(Part, Input)>>, Failure> {
    if let [one] = files {
        if one.as_os_str() == "-" || !one.is_dir() {
            return Ok(None);
        }
    }
    let parts = rdb_cli::parts::expand(files)?;
    let paths: Vec<PathBuf> = parts.iter().map(|p| p.path.clone()).collect();
    let inputs = Input::open_all(&paths)?;
    Ok(Some(parts.into_iter().zip(inputs).collect()))
}

/// The bytes of every part, for the progress bar.
pub fn total_bytes(parts: &[(Part, Input)]) -> u64 {
    parts.iter().map(|(_, i)| i.bytes().len() as u64).sum()
}
