//! `rdbkit export`.

use std::path::PathBuf;

use clap::builder::{PossibleValue, PossibleValuesParser};
use clap::Args;
use rdb_cli::export::{self, FormatSpec, Job, TargetOptions};
use rdb_cli::output::AtomicFile;
use rdb_cli::Failure;

use crate::cli::args::{target_profile, CommandArgs, ReadOptions};
use crate::cli::input::{io_context, Input};
use crate::cli::values::clock_ms;
use crate::cli::Context;

/// `rdbkit export` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit export dump.rdb -o dump.jsonl\n  \
    rdbkit export dump.rdb --format resp | redis-cli -h HOST --pipe\n  \
    rdbkit export dump.rdb --format resp --target redis-6.2 --field-ttls drop -o cmds.resp\n  \
    rdbkit export dump.rdb --format restore --target redis-7.0 | redis-cli -h HOST --pipe\n  \
    zcat dump.rdb.gz | rdbkit export - -o dump.jsonl\n\n\
    Exit codes: 0 written, 1 the snapshot is malformed or holds what the target cannot \
    (named; --field-ttls / --functions / --stream-idmp allow leaving it out), 2 usage or \
    I/O error.")]
pub struct ExportArgs {
    /// The RDB file to read (`-`: standard input; gzip is decompressed).
    file: PathBuf,
    /// Output format.
    #[arg(long, default_value = "jsonl", value_parser = formats())]
    format: String,
    /// Write here (atomically) instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Print a summary (keys, lines, what was left out) as JSON on standard output
    /// (with -o FILE).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    commands: CommandArgs,
    #[command(flatten)]
    read: ReadOptions,
}

/// `--format`'s values: the library's list of formats.
fn formats() -> PossibleValuesParser {
    PossibleValuesParser::new(
        export::FORMATS
            .iter()
            .map(|f| PossibleValue::new(f.name).help(f.help)),
    )
}

pub fn run(a: &ExportArgs, cx: &Context) -> Result<(), Failure> {
    let to_stdout = a.output.as_deref().is_none_or(|p| p.as_os_str() == "-");
    if a.json && to_stdout {
        return Err(crate::cli::usage(
            "--json prints the summary on standard output, which carries the export here: \
             give -o FILE"
                .into(),
        ));
    }
    let format = FormatSpec::named(&a.format)
        .ok_or_else(|| crate::cli::usage(format!("no export format {:?}", a.format)))?;
    let dest = a.output.clone().unwrap_or_else(|| PathBuf::from("-"));
    let input = Input::open(&a.file)?;
    rdb_cli::output::check_destination(&dest).map_err(|e| io_context(e, &dest))?;
    let progress = cx.progress(input.bytes().len() as u64);
    let mut out = AtomicFile::create(&dest).map_err(|e| io_context(e, &dest))?;
    let target = if format.for_target {
        Some(target_options(a, input.bytes())?)
    } else {
        None
    };
    let written = (format.run)(&mut Job {
        data: input.bytes(),
        parser: &a.read.builder(),
        target: target.as_ref(),
        out: &mut out,
        progress: &mut progress.tick(),
    })?;
    drop(progress);
    out.commit().map_err(|e| io_context(e, &dest))?;
    report(a, &written)
}

fn target_options(a: &ExportArgs, data: &[u8]) -> Result<TargetOptions, Failure> {
    let c = &a.commands;
    let source = rdb_parser::Parser::new(data)?.version();
    let profile = target_profile(c.target.as_deref(), c.rdb_version, Some(source.number))?;
    let mut convert = rdb_writer::convert::ConvertOptions::new(profile);
    c.losses.apply(&mut convert);
    convert.now_ms = clock_ms();
    Ok(TargetOptions {
        replace: c.replace,
        convert,
    })
}

fn report(a: &ExportArgs, w: &export::Summary) -> Result<(), Failure> {
    if a.json {
        let summary = serde_json::json!({
            "keys": w.keys,
            "lines": w.records,
            "keys_left_out": w.keys_left_out,
            "field_ttls_left_out": w.field_ttls_left_out,
            "functions_left_out": w.functions_left_out,
            "streams_idmp_left_out": w.streams_idmp_left_out,
            "key_meta_left_out": w.key_meta_left_out,
        });
        println!("{summary}");
        return Ok(());
    }
    if w.keys_left_out > 0 || w.field_ttls_left_out > 0 || w.functions_left_out > 0 {
        eprintln!(
            "rdbkit: {} keys left out (the target cannot hold them), {} hash-field TTLs left \
             out, {} function libraries left out",
            w.keys_left_out, w.field_ttls_left_out, w.functions_left_out
        );
    }
    if w.streams_idmp_left_out > 0 || w.key_meta_left_out > 0 {
        eprintln!(
            "rdbkit: {} streams written without their IDMP state, {} keys' module key \
             metadata left out (the target cannot hold them)",
            w.streams_idmp_left_out, w.key_meta_left_out
        );
    }
    Ok(())
}
