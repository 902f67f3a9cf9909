//! `rdbkit targets`.

use std::io::Write;

use clap::Args;
use rdb_cli::Failure;

/// `rdbkit targets` arguments.
#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit targets                     name, format version and what each profile is for\n  \
    rdbkit targets --json | jq -r '.[].name'\n\n\
    Exit codes: 0 always (2 if standard output cannot be written).")]
pub struct TargetsArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &TargetsArgs) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    if a.json {
        let list: Vec<serde_json::Value> = rdb_writer::PROFILES
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name,
                    "rdb_version": p.version.number,
                    "format": p.version.to_string(),
                    "description": p.description,
                })
            })
            .collect();
        let text = serde_json::to_string_pretty(&list).map_err(|e| Failure::Io(e.into()))?;
        return writeln!(out, "{text}").map_err(Failure::Io);
    }
    let name_width = rdb_writer::PROFILES
        .iter()
        .map(|p| p.name.len())
        .max()
        .unwrap_or(0);
    let headers: Vec<String> = rdb_writer::PROFILES
        .iter()
        .map(|p| p.version.to_string())
        .collect();
    let header_width = headers.iter().map(String::len).max().unwrap_or(0).max(6);
    writeln!(
        out,
        "{:<name_width$}  {:<header_width$}  DESCRIPTION",
        "PROFILE", "FORMAT"
    )
    .map_err(Failure::Io)?;
    for (p, header) in rdb_writer::PROFILES.iter().zip(&headers) {
        writeln!(
            out,
            "{:<name_width$}  {:<header_width$}  {}",
            p.name, header, p.description
        )
        .map_err(Failure::Io)?;
    }
    Ok(())
}
