//! `rdbkit check`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::check::Outcome;
use rdb_cli::Failure;

use crate::cli::args::target_profile;
use crate::cli::input::Input;
use crate::cli::values::parse_size;
use crate::cli::{print_report, Context};

/// `rdbkit check` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit check dump.rdb --target azure-cache-premium\n  \
    rdbkit check dump.rdb --target azure-managed-redis --memory 12GB --json\n  \
    rdbkit check stack.rdb --target valkey-9.0 --with-modules ReJSON-RL,ft_index0\n\n\
    It applies what the target's loader checks with sanitize-dump-payload yes: every inner \
    encoding, zipmap counts, empty nodes, duplicate members and keys, stream rules, function \
    formats, and module types and module aux data by name (it lists the modules the target \
    must have). Empty collections, which Redis 7.0+ and Valkey skip on load, are listed as \
    keys the target skips, not as an error.\n\n\
    Exit codes: 0 the target loads the file as it is; 1 it loads the output of `rdbkit \
    convert` with the flags listed (some lose data: each says so); 3 it cannot load it and no \
    conversion changes that (corrupt data, or something no flag converts); 2 usage or I/O \
    error. The codes are listed in docs/check-oracle.md with what they were tested against.")]
pub struct CheckArgs {
    /// The RDB file to check (`-`: standard input; gzip is decompressed).
    file: PathBuf,
    /// The server or service that will load it (see `rdbkit targets`).
    #[arg(long)]
    target: String,
    /// The target's memory, e.g. 6GB or 13000MiB, to compare with rdbkit's estimate of
    /// the memory the data takes once loaded (the model of `rdbkit stats`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// The module types (and module aux names) the target has loaded, comma-separated,
    /// e.g. ReJSON-RL,ft_index0 (default: none for servers and classic services, the bundled
    /// modules for services that bundle them).
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    with_modules: Option<Vec<String>>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &CheckArgs, _cx: &Context) -> Result<(), Failure> {
    let profile = target_profile(Some(&a.target), None, None)?;
    let input = Input::open(&a.file)?;
    let options = rdb_cli::check::CheckOptions {
        memory: a.memory,
        modules: a.with_modules.clone(),
    };
    let verdict = rdb_cli::check::check(input.bytes(), &profile, &options)?;
    print_report(a.json, || verdict.to_json(), |out| verdict.write_text(out))?;
    match verdict.outcome {
        Outcome::Loads => Ok(()),
        other => Err(Failure::Verdict(other.exit_code())),
    }
}
