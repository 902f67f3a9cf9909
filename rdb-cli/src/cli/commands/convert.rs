//! `rdbkit convert` and `rdbkit merge`.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use rdb_cli::convert::HintFor;
use rdb_cli::Failure;

use crate::cli::args::{convert_options, slot_map, CommonArgs, SplitArgs};
use crate::cli::input::{io_context, Input};
use crate::cli::Context;

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit convert dump.rdb -o for-azure.rdb --target azure-cache-premium\n  \
    rdbkit convert dump.rdb -o for-6.rdb --rdb-version 9 --field-ttls drop --report losses.jsonl\n  \
    rdbkit convert dump.rdb -o shards/ --shards 3 --target redis-7.0\n  \
    rdbkit convert dump.rdb -o users.rdb --target redis-7.4 --include 'user:*' --expired drop\n\n\
    The input is never modified; an output that is the input is refused. The output (or the \
    shard directory) appears whole or not at all.\n\
    A value a loader would refuse (a corrupt inner encoding, a wrong zipmap count, an empty \
    PLAIN node...) stops the conversion before anything is written: it is never copied under \
    a fresh checksum. Duplicate keys stop it unless --on-conflict first|last.\n\
    Exit codes: 0 converted; 1 the snapshot is malformed or holds what the target cannot and \
    no flag allowed the loss (the error names the key and the flag); 2 usage or I/O error.")]
pub struct ConvertArgs {
    /// The RDB file to read (never modified).
    pub file: PathBuf,
    /// A key found twice where its copies land in one db (stored twice in the file, or
    /// brought together by --dbs merge-into-0 or --db-map): stop with an error naming it,
    /// or keep the first or the last copy (each dropped copy is reported). first and last
    /// keep every key name in memory.
    #[arg(long, value_enum, default_value_t = OnConflict::Error)]
    on_conflict: OnConflict,
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    split: SplitArgs,
}

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit merge shard-0.rdb shard-1.rdb shard-2.rdb -o all.rdb --target redis-7.4\n  \
    rdbkit merge a.rdb b.rdb -o ab.rdb --rdb-version 9 --on-conflict last\n\n\
    Exit codes: 0 merged; 1 a malformed input, a key in several inputs (without \
    --on-conflict first|last) or a loss no flag allowed; 2 usage or I/O error.")]
pub struct MergeArgs {
    /// The RDB files to join (e.g. one per cluster shard), in order.
    #[arg(required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// A key in more than one input: stop with an error naming it, or keep the copy of the
    /// first or of the last input holding it (each dropped copy is reported).
    #[arg(long, value_enum, default_value_t = OnConflict::Error)]
    on_conflict: OnConflict,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnConflict {
    Error,
    First,
    Last,
}

impl OnConflict {
    fn policy(self) -> rdb_writer::convert::ConflictPolicy {
        use rdb_writer::convert::ConflictPolicy;
        match self {
            OnConflict::Error => ConflictPolicy::Error,
            OnConflict::First => ConflictPolicy::First,
            OnConflict::Last => ConflictPolicy::Last,
        }
    }
}

/// `--modules auto` for the CLI: a self-hosted server loads only the modules its operator
/// loaded, which its profile cannot know, and refuses module data no module claims; so
/// module data stops the conversion there unless `--modules keep` says the target has them.
fn modules_auto(opts: &mut rdb_writer::convert::ConvertOptions) {
    use rdb_writer::convert::ModulePolicy;
    if opts.modules == ModulePolicy::Auto
        && opts.target.modules == rdb_writer::ModuleSupport::Loaded
    {
        opts.modules = ModulePolicy::Error;
    }
}

/// What stops the conversion of these inputs ([`rdb_cli::convert::Guard`]), with the read
/// flags.
fn guard(
    paths: &[&Path],
    c: &CommonArgs,
    conflict: rdb_writer::convert::ConflictPolicy,
    target: &rdb_writer::TargetProfile,
) -> rdb_cli::convert::Guard {
    rdb_cli::convert::Guard {
        names: paths.iter().map(|p| p.display().to_string()).collect(),
        conflict,
        checksum: !c.read.no_verify_checksum,
        empty_keys: c.read.allow_empty_keys,
        empty_lzf_refused: rdb_cli::check::refuses_empty_lzf(target),
    }
}

fn convert_failure(
    e: rdb_writer::convert::ConvertError,
    output: &Path,
    for_: rdb_cli::convert::HintFor,
) -> Failure {
    match e {
        rdb_writer::convert::ConvertError::Parse(p) => Failure::Data(p),
        rdb_writer::convert::ConvertError::Io(io) if rdb_cli::convert::refusal(&io).is_none() => {
            io_context(io, output)
        }
        other => rdb_cli::convert::failure(other, for_),
    }
}

/// Applies the output policy to every file the command will write, before any work.
fn check_outputs(c: &CommonArgs, directory: bool) -> Result<(), Failure> {
    let out = &c.output;
    if directory {
        rdb_cli::output::check_directory(out).map_err(|e| io_context(e, out))?;
    } else {
        rdb_cli::output::check_destination(out).map_err(|e| io_context(e, out))?;
    }
    for side in [&c.report, &c.functions_file].into_iter().flatten() {
        if side == out {
            return Err(crate::cli::usage(format!(
                "{}: given both as the output and as a side file",
                side.display()
            )));
        }
        rdb_cli::output::check_destination(side).map_err(|e| io_context(e, side))?;
    }
    Ok(())
}

pub fn convert(args: &ConvertArgs, cx: &Context) -> Result<(), Failure> {
    let c = &args.common;
    let input = Input::open(&args.file)?;
    let mut opts = convert_options(c, input.bytes())?;
    opts.conflict = args.on_conflict.policy();
    modules_auto(&mut opts);
    let slots = slot_map(&args.split)?;
    check_outputs(c, slots.is_some())?;
    let guard = guard(&[&args.file], c, opts.conflict, &opts.target);
    let progress = cx.progress(input.bytes().len() as u64);
    let mut tick = progress.tick();
    let files = rdb_cli::convert::SideFiles {
        report: c.report.as_deref(),
        functions: c.functions_file.as_deref(),
    };
    let result = match &slots {
        Some(slots) => rdb_cli::convert::run_split(
            input.bytes(),
            &c.read.builder(),
            &opts,
            slots,
            &c.output,
            &files,
            &mut tick,
            &guard,
        ),
        None => rdb_cli::convert::run(
            input.bytes(),
            &c.read.builder(),
            &opts,
            &c.output,
            &files,
            &mut tick,
            &guard,
        ),
    };
    drop(tick);
    drop(progress);
    let summary = result.map_err(|e| convert_failure(e, &c.output, HintFor::Convert))?;
    cx.summary(&summary, opts.target.name, c.json)
}

pub fn merge(args: &MergeArgs, cx: &Context) -> Result<(), Failure> {
    let c = &args.common;
    let inputs = Input::open_all(&args.files)?;
    let datas: Vec<&[u8]> = inputs.iter().map(Input::bytes).collect();
    let mut opts = convert_options(c, datas.first().copied().unwrap_or_default())?;
    modules_auto(&mut opts);
    check_outputs(c, false)?;
    let conflict = args.on_conflict.policy();
    let paths: Vec<&Path> = args.files.iter().map(|p| p.as_path()).collect();
    let guard = guard(&paths, c, conflict, &opts.target);
    let progress = cx.progress(datas.iter().map(|d| d.len() as u64).sum());
    let mut tick = progress.tick();
    let files = rdb_cli::convert::SideFiles {
        report: c.report.as_deref(),
        functions: c.functions_file.as_deref(),
    };
    let result = rdb_cli::convert::run_merge(
        &datas,
        &c.read.builder(),
        &opts,
        conflict,
        &c.output,
        &files,
        &mut tick,
        &guard,
    );
    drop(tick);
    drop(progress);
    let summary = result.map_err(|e| convert_failure(e, &c.output, HintFor::Merge))?;
    cx.summary(&summary, opts.target.name, c.json)
}
