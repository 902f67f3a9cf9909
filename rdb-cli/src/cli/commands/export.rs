//! `rdbkit export`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::output::AtomicFile;
use rdb_cli::{export, Failure};

use crate::cli::args::{target_profile, CommandArgs, Format, ReadOptions};
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
    (named; --field-ttls / --functions allow leaving it out), 2 usage or I/O error.")]
pub struct ExportArgs {
    /// The RDB file to read (`-`: standard input; gzip is decompressed).
    file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    format: Format,
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

/// What an export wrote, for the summary line.
struct Written {
    keys: u64,
    lines: u64,
    dropped: u64,
    field_ttls_dropped: u64,
    functions_dropped: u64,
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
    let dest = a.output.clone().unwrap_or_else(|| PathBuf::from("-"));
    let input = Input::open(&a.file)?;
    rdb_cli::output::check_destination(&dest).map_err(|e| io_context(e, &dest))?;
    let progress = cx.progress(input.bytes().len() as u64);
    let mut out = AtomicFile::create(&dest).map_err(|e| io_context(e, &dest))?;
    let written = match a.format {
        Format::Jsonl => {
            let s = export::jsonl(input.bytes(), &a.read.builder(), &mut out, progress.tick())?;
            Written {
                keys: s.keys,
                lines: s.lines,
                dropped: 0,
                field_ttls_dropped: 0,
                functions_dropped: 0,
            }
        }
        Format::Resp | Format::Restore => {
            let o = commands_options(a, input.bytes())?;
            let s = export::commands(
                input.bytes(),
                &a.read.builder(),
                &o,
                &mut out,
                progress.tick(),
            )?;
            Written {
                keys: s.keys,
                lines: s.commands,
                dropped: s.dropped,
                field_ttls_dropped: s.field_ttls_dropped,
                functions_dropped: s.functions_dropped,
            }
        }
    };
    drop(progress);
    out.commit().map_err(|e| io_context(e, &dest))?;
    report(a, &written)
}

fn commands_options(a: &ExportArgs, data: &[u8]) -> Result<export::CommandsOptions, Failure> {
    let c = &a.commands;
    let source = rdb_parser::Parser::new(data)?.version();
    let profile = target_profile(c.target.as_deref(), c.rdb_version, Some(source.number))?;
    let mut convert = rdb_writer::convert::ConvertOptions::new(profile);
    c.losses.apply(&mut convert);
    convert.now_ms = clock_ms();
    Ok(export::CommandsOptions {
        restore: matches!(a.format, Format::Restore),
        replace: c.replace,
        convert,
    })
}

fn report(a: &ExportArgs, w: &Written) -> Result<(), Failure> {
    if a.json {
        let summary = serde_json::json!({
            "keys": w.keys,
            "lines": w.lines,
            "keys_left_out": w.dropped,
            "field_ttls_left_out": w.field_ttls_dropped,
            "functions_left_out": w.functions_dropped,
        });
        println!("{summary}");
    } else if w.dropped > 0 || w.field_ttls_dropped > 0 || w.functions_dropped > 0 {
        eprintln!(
            "rdbkit: {} keys left out (the target cannot hold them), {} hash-field TTLs left \
             out, {} function libraries left out",
            w.dropped, w.field_ttls_dropped, w.functions_dropped
        );
    }
    Ok(())
}
