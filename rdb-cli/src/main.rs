//! `rdbkit`: argument parsing, file mapping and exit codes. The work happens in the
//! library modules.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use rdb_cli::output::AtomicFile;
use rdb_cli::{export, info, Failure};
use rdb_parser::ParserBuilder;

#[derive(Parser)]
#[command(
    name = "rdbkit",
    version,
    about = "Inspect, export and check Redis / Valkey RDB snapshot files (dump.rdb).",
    long_about = "Inspect, export and check Redis / Valkey RDB snapshot files (dump.rdb).\n\n\
        Reads every format a released server writes: REDIS0001-REDIS0012 (Redis 2.x to 8.x, \
        Valkey 7.2/8.x) and VALKEY080 (Valkey 9). The file is memory-mapped and never modified.",
    after_help = "Examples:\n  \
        rdbkit info dump.rdb                      version, aux fields, keys per db/type/encoding\n  \
        rdbkit info dump.rdb --json               the same, for scripts\n  \
        rdbkit export dump.rdb > dump.jsonl       every key and value as JSON Lines\n  \
        rdbkit export dump.rdb -o dump.jsonl      written atomically: whole file or none\n\n\
        Exit codes: 0 success, 1 the snapshot is malformed, 2 usage or I/O error."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarize a snapshot: format version, aux fields, checksum, keys per db, type and encoding.
    Info {
        /// The RDB file to read.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        read: ReadOptions,
    },
    /// Write every item of a snapshot in a line-oriented format (schema: docs/export-jsonl.md).
    Export {
        /// The RDB file to read.
        file: PathBuf,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
        /// Write here (atomically) instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
        #[command(flatten)]
        read: ReadOptions,
    },
}

#[derive(Args)]
struct ReadOptions {
    /// Do not verify the CRC64 trailer (it is verified by default).
    #[arg(long)]
    no_verify_checksum: bool,
    /// Read keys whose collection is empty (written by old server bugs) instead of failing.
    #[arg(long)]
    allow_empty_keys: bool,
}

impl ReadOptions {
    fn builder(&self) -> ParserBuilder {
        let mut b = ParserBuilder::new();
        b.verify_checksum(!self.no_verify_checksum)
            .allow_empty_keys(self.allow_empty_keys);
        b
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// One JSON object per line, binary-safe.
    Jsonl,
}

/// The input file's bytes: memory-mapped when possible, read otherwise.
enum Input {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Input {
    fn open(path: &Path) -> std::io::Result<Input> {
        let file = std::fs::File::open(path)?;
        // SAFETY: the map is read-only and lives as long as `Input`. If another process
        // truncates the file while we read it, the kernel may raise SIGBUS; rdbkit is meant
        // for snapshots that are no longer being written (a finished SAVE/BGSAVE output).
        #[allow(unsafe_code)]
        let mapped = unsafe { memmap2::Mmap::map(&file) };
        match mapped {
            Ok(m) => Ok(Input::Mapped(m)),
            // Pipes and some special files cannot be mapped.
            Err(_) => std::fs::read(path).map(Input::Read),
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Read(v) => v,
        }
    }
}

/// A progress bar on stderr when it is a terminal and the file is big enough to wait for.
fn progress_bar(total: u64) -> Option<indicatif::ProgressBar> {
    if !std::io::stderr().is_terminal() || total < 64 << 20 {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

/// Updates the bar at most every 4 MiB of input, so the hot loop stays cheap.
fn tick(bar: &Option<indicatif::ProgressBar>) -> impl FnMut(u64) + '_ {
    let mut next = 0u64;
    move |offset| {
        if let Some(bar) = bar {
            if offset >= next {
                bar.set_position(offset);
                next = offset + (4 << 20);
            }
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Info { file, json, read } => {
            let input = Input::open(&file).map_err(|e| io_context(e, &file))?;
            let bar = progress_bar(input.bytes().len() as u64);
            let info = info::collect(input.bytes(), &read.builder(), tick(&bar))?;
            if let Some(bar) = bar {
                bar.finish_and_clear();
            }
            let mut out = std::io::stdout().lock();
            if json {
                let text = serde_json::to_string_pretty(&info.to_json())
                    .map_err(|e| Failure::Io(e.into()))?;
                writeln!(out, "{text}").map_err(Failure::Io)?;
            } else {
                info.write_text(&mut out).map_err(Failure::Io)?;
            }
            Ok(())
        }
        Command::Export {
            file,
            format: Format::Jsonl,
            output,
            read,
        } => {
            let input = Input::open(&file).map_err(|e| io_context(e, &file))?;
            let bar = progress_bar(input.bytes().len() as u64);
            let summary = match output {
                Some(path) => {
                    let mut out = AtomicFile::create(&path).map_err(|e| io_context(e, &path))?;
                    let s = export::jsonl(input.bytes(), &read.builder(), &mut out, tick(&bar))?;
                    out.commit().map_err(|e| io_context(e, &path))?;
                    s
                }
                None => {
                    let stdout = std::io::stdout().lock();
                    let mut out = std::io::BufWriter::with_capacity(1 << 20, stdout);
                    export::jsonl(input.bytes(), &read.builder(), &mut out, tick(&bar))?
                }
            };
            if let Some(bar) = bar {
                bar.finish_and_clear();
                eprintln!("exported {} keys ({} lines)", summary.keys, summary.lines);
            }
            Ok(())
        }
    }
}

fn io_context(e: std::io::Error, path: &Path) -> Failure {
    Failure::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // A closed pipe (`rdbkit export ... | head`) is not an error.
        Err(Failure::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rdbkit: error: {e}");
            match e {
                Failure::Data(_) => ExitCode::from(1),
                Failure::Io(_) => ExitCode::from(2),
            }
        }
    }
}
