//! `rdbkit check`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::check::{Outcome, Verdicts};
use rdb_cli::Failure;

use super::info::open_parts;
use crate::cli::args::target_profile;
use crate::cli::input::Input;
use crate::cli::values::parse_size;
use crate::cli::{print_report, Context};

/// `rdbkit check` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit check dump.rdb --target azure-cache-premium\n  \
    rdbkit check dump.rdb --target azure-managed-redis --memory 12GB --json\n  \
    rdbkit check stack.rdb --target valkey-9.0 --with-modules ReJSON-RL,ft_index0\n  \
    rdbkit check shards/ --target redis-7.2 --memory 4GB     each part of a split or fetched directory\n\n\
    It applies what the target's loader checks with sanitize-dump-payload yes: every inner \
    encoding, zipmap counts, empty nodes, duplicate members and keys, stream rules, function \
    formats, and module types and module aux data by name (it lists the modules the target \
    must have). Empty collections, which Redis 7.0+ and Valkey skip on load, are listed as \
    keys the target skips, not as an error.\n\
    Several files (a cluster's shards) or a directory with manifest.json: each part gets its \
    own verdict (--memory is then one node's memory, compared with each part), the whole \
    the worst part's; with a manifest, keys outside a part's slot ranges are an \
    outside_slots finding (loads after a re-split).\n\n\
    Exit codes: 0 the target loads the file as it is; 1 it loads the output of `rdbkit \
    convert` with the flags listed (some lose data: each says so); 3 it cannot load it and no \
    conversion changes that (corrupt data, or something no flag converts); 2 usage or I/O \
    error. With several files, the worst part's code. The codes are listed in \
    docs/check-oracle.md with what they were tested against.")]
pub struct CheckArgs {
    /// The RDB file(s) to check (`-`: standard input; gzip is decompressed), or a
    /// directory with manifest.json (from `convert --shards` or `fetch --cluster`).
    #[arg(required = true, num_args = 1..)]
    files: Vec<PathBuf>,
    /// The server or service that will load it (see `rdbkit targets`).
    #[arg(long)]
    target: String,
    /// The target's memory, e.g. 6GB or 13000MiB, to compare with rdbkit's estimate of
    /// the memory the data takes once loaded (the model of `rdbkit stats`). With several
    /// files: one node's memory, compared with each part.
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
    let options = rdb_cli::check::CheckOptions {
        memory: a.memory,
        modules: a.with_modules.clone(),
    };
    let Some(parts) = open_parts(&a.files)? else {
        let input = Input::open(a.files.first().map_or("-".as_ref(), |p| p.as_path()))?;
        let verdict = rdb_cli::check::check(input.bytes(), &profile, &options)?;
        print_report(a.json, || verdict.to_json(), |out| verdict.write_text(out))?;
        return exit(verdict.outcome);
    };
    let mut whole = Verdicts {
        target: profile.name.to_string(),
        parts: Vec::new(),
    };
    for (part, input) in &parts {
        let one = rdb_cli::check::check_one_of_several(input.bytes(), part, &profile, &options);
        whole.parts.push(one?);
    }
    print_report(a.json, || whole.to_json(), |out| whole.write_text(out))?;
    exit(whole.outcome())
}

fn exit(outcome: Outcome) -> Result<(), Failure> {
    match outcome {
        Outcome::Loads => Ok(()),
        other => Err(Failure::Verdict(other.exit_code())),
    }
}
