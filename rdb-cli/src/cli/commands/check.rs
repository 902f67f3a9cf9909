//! `rdbkit check`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::Failure;

use crate::cli::args::{target_profile, ReadOptions};
use crate::cli::input::Input;
use crate::cli::values::parse_size;
use crate::cli::{print_report, Context};

/// `rdbkit check` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit check dump.rdb --target azure-cache-premium\n  \
    rdbkit check dump.rdb --target azure-managed-redis --memory 12GB --json\n\n\
    Exit codes: 0 the target loads the file as it is; 1 it does not (the reasons and the \
    convert flags that deal with them are listed); 2 usage or I/O error.")]
pub struct CheckArgs {
    /// The RDB file to check (`-`: standard input; gzip is decompressed).
    file: PathBuf,
    /// The server or service that will load it (see `rdbkit targets`).
    #[arg(long)]
    target: String,
    /// The target's memory, e.g. 6GB or 13000MiB, to compare with the file's size.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    read: ReadOptions,
}

pub fn run(a: &CheckArgs, _cx: &Context) -> Result<(), Failure> {
    let profile = target_profile(Some(&a.target), None, None)?;
    let input = Input::open(&a.file)?;
    let verdict = rdb_cli::check::check(input.bytes(), &a.read.builder(), &profile, a.memory)?;
    print_report(a.json, || verdict.to_json(), |out| verdict.write_text(out))?;
    if verdict.loads_as_is {
        Ok(())
    } else {
        Err(Failure::Refused(String::new()))
    }
}
