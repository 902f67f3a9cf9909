//! `rdbkit stats`.

use clap::Args;
use rdb_cli::Failure;

use crate::cli::args::ReadOptions;
use crate::cli::input::Input;
use crate::cli::Context;

/// `rdbkit stats` arguments.
#[derive(Args)]
pub struct StatsCommand {
    #[command(flatten)]
    args: rdb_cli::stats::StatsArgs,
    #[command(flatten)]
    read: ReadOptions,
}

pub fn run(a: &StatsCommand, cx: &Context) -> Result<(), Failure> {
    let input = Input::open(&a.args.file)?;
    if let Some(html) = &a.args.html {
        rdb_cli::output::check_destination(html)
            .map_err(|e| crate::cli::input::io_context(e, html))?;
    }
    let progress = cx.progress(input.bytes().len() as u64);
    let mut out = std::io::stdout().lock();
    rdb_cli::stats::run(
        input.bytes(),
        &a.read.builder(),
        &a.args,
        &mut out,
        progress.tick(),
    )?;
    Ok(())
}
