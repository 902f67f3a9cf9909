//! `rdbkit completions SHELL` and `rdbkit man`: generated from the same clap definitions
//! the parser uses, so they never drift from the real flags.

use std::io::Write;

use clap::{Args, CommandFactory};
use rdb_cli::Failure;

/// `rdbkit completions` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit completions bash > /etc/bash_completion.d/rdbkit\n  \
    rdbkit completions zsh > \"${fpath[1]}/_rdbkit\"\n  \
    rdbkit completions fish > ~/.config/fish/completions/rdbkit.fish\n\n\
    Exit codes: 0 written, 2 usage or I/O error.")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// `rdbkit man` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit man > rdbkit.1 && man ./rdbkit.1\n  \
    rdbkit man convert | man -l -\n\n\
    Exit codes: 0 written, 2 usage or I/O error.")]
pub struct ManArgs {
    /// A subcommand's page instead of the main one.
    subcommand: Option<String>,
}

pub fn completions(a: &CompletionsArgs) -> Result<(), Failure> {
    let mut cmd = crate::cli::Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "rdbkit", &mut out);
    out.flush().map_err(Failure::Io)
}

pub fn man(a: &ManArgs) -> Result<(), Failure> {
    let cmd = crate::cli::Cli::command();
    let page = match &a.subcommand {
        None => cmd,
        Some(name) => cmd
            .find_subcommand(name)
            .cloned()
            .map(|c| {
                // The page's title: leaked once per run, as clap keeps names 'static.
                let full: &'static str = Box::leak(format!("rdbkit-{}", c.get_name()).into());
                c.name(full)
            })
            .ok_or_else(|| crate::cli::usage(format!("no subcommand {name:?}")))?,
    };
    let mut out = std::io::stdout().lock();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(Failure::Io)?;
    out.flush().map_err(Failure::Io)
}
