//! The command line: arguments (clap), their resolution into the library's option
//! structs, inputs, outputs and progress. Binary-private: the library takes option
//! structs and writers, never clap types.

pub mod args;
pub mod commands;
pub mod input;
pub mod progress;
pub mod values;

use std::io::Write;

use clap::{Parser, Subcommand};
use rdb_cli::Failure;

use commands::{
    azure, check, completions, convert, diff, export, fetch, info, restore, stats, targets, verify,
};
use progress::{Progress, ProgressMode};

/// The most worker threads `--threads` and RAYON_NUM_THREADS may ask for: more than any
/// machine has cores only costs memory and start-up time, and can exhaust the process's
/// thread limit.
pub const MAX_THREADS: usize = 256;

#[derive(Parser)]
#[command(
    name = "rdbkit",
    version,
    about = "Inspect, convert, split, verify and move Redis / Valkey RDB snapshot files (dump.rdb).",
    long_about = "Inspect, convert, split, verify and move Redis / Valkey RDB snapshot files (dump.rdb).\n\n\
        A migration, step by step: stats (assess), check --target (will it load?), convert \
        (re-encode, filter, --shards split), verify, upload + import (Azure) or restore (live \
        server), diff (prove nothing was lost).\n\n\
        Reads every format a released server writes: REDIS0001-REDIS0013 (Redis 2.x to 8.6, \
        Valkey 7.2/8.x) and VALKEY080 (Valkey 9). The file is memory-mapped and never modified.",
    after_help = "Examples:\n  \
        rdbkit info dump.rdb                      version, aux fields, keys per db/type/encoding\n  \
        rdbkit info dump.rdb --json               the same, for scripts\n  \
        rdbkit stats dump.rdb --html report.html  sizes, memory, biggest keys, prefixes, TTLs, slots\n  \
        rdbkit export dump.rdb > dump.jsonl       every key and value as JSON Lines\n  \
        rdbkit export dump.rdb -o dump.jsonl      written atomically: whole file or none\n  \
        rdbkit convert dump.rdb -o for-6.rdb --target azure-cache-premium\n  \
        rdbkit restore dump.rdb --to redis://127.0.0.1:6379   RESTORE into a live server\n  \
        rdbkit export dump.rdb --format resp | redis-cli --pipe\n  \
        rdbkit targets                            the target profiles convert knows\n\n\
        Exit codes: 0 success; 1 the snapshot is malformed, a check found problems, the files differ\n\
        or the target refused; 2 usage, I/O or network error; 130 interrupted (SIGINT, SIGTERM or\n\
        SIGHUP: unfinished outputs are removed, finished ones stay whole)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Worker threads, 1 to 256 (default: RAYON_NUM_THREADS, else one per core). 1 runs
    /// everything in sequence.
    #[arg(long, global = true, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=MAX_THREADS as u64))]
    pub threads: Option<usize>,
    /// Progress on standard error: a bar on a terminal, a plain line every few seconds
    /// elsewhere (auto: only for long work), or none.
    #[arg(long, global = true, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
    /// No progress and no summary on standard error (errors are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Subcommand)]
pub enum Command {
    /// Summarize a snapshot: format version, aux fields, checksum, keys per db, type and encoding.
    Info(Box<info::InfoArgs>),
    /// Assess a snapshot: sizes, estimated memory, biggest keys, prefixes, TTLs, slots.
    Stats(Box<stats::StatsCommand>),
    /// Write every item of a snapshot in a line-oriented format (schema: docs/export-jsonl.md).
    Export(Box<export::ExportArgs>),
    /// One record per key (file, db, key, type, encoding, sizes, memory, elements, expiry,
    /// slot...) as Parquet, CSV, JSON Lines or redis-rdb-tools' memory CSV (docs/keys.md).
    Keys(Box<commands::keys::KeysArgs>),
    /// Send every key to a live server (or cluster) as RESTORE commands, with payloads
    /// for the server's own version; values above its proto-max-bulk-len go as plain
    /// commands in batches. Filters and --db-map as for convert.
    Restore(Box<restore::RestoreArgs>),
    /// Take a snapshot from a live server as a replica does (PSYNC or SYNC), verify its
    /// CRC64 and write it atomically.
    Fetch(Box<fetch::FetchArgs>),
    /// Re-encode a snapshot so a given (older or newer) server can load it. Whatever the
    /// target cannot hold stops the conversion with an error naming the key, unless a flag
    /// chooses the loss; every loss is counted, and listed per key with --report.
    Convert(Box<convert::ConvertArgs>),
    /// Join several snapshots (e.g. a cluster's per-shard backups) into one, with the same
    /// target, filters and loss flags as convert. AUX fields come from the first file.
    Merge(Box<convert::MergeArgs>),
    /// Pre-flight: will a target server or service load this file? Lists what stops it
    /// (format version, field TTLs, functions, modules, databases, oversized values,
    /// memory) and the convert flags that deal with each. Exit 0: loads as it is; 1: not.
    Check(Box<check::CheckArgs>),
    /// List the target profiles `convert` knows.
    Targets(targets::TargetsArgs),
    /// Upload snapshot(s) to Azure Blob Storage with a SAS URL: parallel, resumable block
    /// blob (or --page-blob), per-block MD5, verified; optionally --then-import.
    Upload(Box<azure::UploadArgs>),
    /// Import uploaded blob(s) into Azure Managed Redis (--cluster) or Azure Cache for
    /// Redis Premium (--cache) and follow the operation to its end. Deletes the cache's data.
    Import(Box<azure::ImportArgs>),
    /// Compare two snapshots key by key, whatever their versions and encodings: keys only
    /// in A or only in B, type, value and TTL differences. Works on files larger than
    /// memory (temporary bucket files, removed on exit). Exit 0: equal; 1: different.
    Diff(Box<diff::DiffArgs>),
    /// Check a snapshot in depth, as redis-check-rdb and sanitize-dump-payload do: the
    /// CRC64, every inner encoding, intset order, NaN scores, duplicate members, fields and
    /// keys, stream IDs and consumer groups, empty collections, stray opcodes. Every
    /// problem is listed with its byte offset, db and key. Exit 0: no errors; 1: errors.
    Verify(Box<verify::VerifyArgs>),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(completions::CompletionsArgs),
    /// Print the manual page (roff), of rdbkit or of one subcommand.
    Man(completions::ManArgs),
}

/// What every command gets besides its own arguments.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    pub progress: ProgressMode,
    pub quiet: bool,
}

impl Context {
    /// Progress for work over `total` input bytes.
    pub fn progress(&self, total: u64) -> Progress {
        let mode = if self.quiet {
            ProgressMode::Never
        } else {
            self.progress
        };
        Progress::new(total, mode)
    }

    /// A convert or merge summary: JSON on standard output with `--json`, else text on
    /// standard error (unless `--quiet`).
    pub fn summary(
        &self,
        s: &rdb_writer::convert::ConvertSummary,
        target: &str,
        json: bool,
    ) -> Result<(), Failure> {
        if json {
            let v = rdb_cli::convert::summary_json(s, target);
            let text = serde_json::to_string_pretty(&v).map_err(|e| Failure::Io(e.into()))?;
            println!("{text}");
            Ok(())
        } else if self.quiet {
            Ok(())
        } else {
            rdb_cli::convert::write_summary(&mut std::io::stderr(), s, target).map_err(Failure::Io)
        }
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let cx = Context {
        progress: cli.progress,
        quiet: cli.quiet,
    };
    match &cli.command {
        Command::Info(a) => info::run(a, &cx),
        Command::Stats(a) => stats::run(a, &cx),
        Command::Export(a) => export::run(a, &cx),
        Command::Keys(a) => commands::keys::run(a, &cx),
        Command::Restore(a) => restore::run(a, &cx),
        Command::Fetch(a) => fetch::run(a, &cx),
        Command::Convert(a) => convert::convert(a, &cx),
        Command::Merge(a) => convert::merge(a, &cx),
        Command::Check(a) => check::run(a, &cx),
        Command::Targets(a) => targets::run(a),
        Command::Upload(a) => azure::upload(a, &cx),
        Command::Import(a) => azure::import(a, &cx),
        Command::Diff(a) => diff::run(a, &cx),
        Command::Verify(a) => verify::run(a, &cx),
        Command::Completions(a) => completions::completions(a),
        Command::Man(a) => completions::man(a),
    }
}

/// Prints a report on stdout: pretty JSON with `--json`, else its text form.
pub fn print_report(
    json: bool,
    as_json: impl FnOnce() -> serde_json::Value,
    as_text: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    if json {
        let text = serde_json::to_string_pretty(&as_json()).map_err(|e| Failure::Io(e.into()))?;
        writeln!(out, "{text}").map_err(Failure::Io)
    } else {
        as_text(&mut out).map_err(Failure::Io)
    }
}

pub fn usage(msg: String) -> Failure {
    Failure::Usage(msg)
}

pub fn unknown_target(name: &str) -> Failure {
    usage(format!(
        "unknown target {name:?}; `rdbkit targets` lists the profiles"
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use clap::{CommandFactory, Parser};

    /// Clap's own consistency checks over every subcommand and argument.
    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }

    /// `--threads` is refused outside 1..=MAX_THREADS: 0 would be no worker at all, and
    /// 99,999 threads once made `info` of a small file run for minutes and starve every
    /// other process of threads.
    #[test]
    fn threads_are_bounded() {
        let parse = |n: &str| super::Cli::try_parse_from(["rdbkit", "--threads", n, "targets"]);
        assert!(parse("1").is_ok() && parse("256").is_ok());
        for bad in ["0", "257", "99999", "-1"] {
            assert!(parse(bad).is_err(), "--threads {bad}");
        }
    }

    /// The `rdbkit ...` commands of the README's code blocks, one per entry: continuation
    /// lines joined, comments, pipes, redirections and `&&` chains cut off.
    fn readme_commands() -> Vec<String> {
        let readme = include_str!("../../../README.md");
        let mut commands = Vec::new();
        let mut in_block = false;
        let mut pending = String::new();
        for line in readme.lines() {
            if line.trim_start().starts_with("```") {
                in_block = !in_block;
                continue;
            }
            if !in_block {
                continue;
            }
            let line = line.trim();
            let command_line = line.starts_with("rdbkit ") || line.starts_with("./setup.sh &&");
            if pending.is_empty() && command_line {
                pending = line.to_string();
            } else if !pending.is_empty() {
                pending.push(' ');
                pending.push_str(line);
            } else {
                continue;
            }
            if pending.ends_with('\\') {
                pending.pop();
                continue;
            }
            for part in pending.split("&&") {
                let part = part.trim();
                if !part.starts_with("rdbkit ") {
                    continue;
                }
                let cut = part.find(['#', '|', '>', '<']).unwrap_or(part.len());
                commands.push(part[..cut].trim().to_string());
            }
            pending.clear();
        }
        commands
    }

    /// Splits like a shell for the README's simple quoting ('...' and "...").
    fn words(command: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut word = String::new();
        let mut quote = None;
        let mut any = false;
        for c in command.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    any = true;
                }
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => {
                    if any {
                        out.push(std::mem::take(&mut word));
                        any = false;
                    }
                }
                (_, c) => {
                    word.push(c);
                    any = true;
                }
            }
        }
        if any {
            out.push(word);
        }
        out
    }

    /// Every example in the README parses: its subcommand and flags exist, and the
    /// required ones are there (a README that shows `merge A B -o OUT` without a target
    /// would fail here).
    #[test]
    fn every_readme_example_parses() {
        let commands = readme_commands();
        assert!(
            commands.len() >= 12,
            "only {} README commands found",
            commands.len()
        );
        for command in &commands {
            let argv = words(command);
            if let Err(e) = super::Cli::try_parse_from(&argv) {
                panic!("README example `{command}` does not parse:\n{e}");
            }
        }
    }

    /// Every subcommand's help shows examples and its exit codes.
    #[test]
    fn every_subcommand_has_examples_and_exit_codes() {
        let mut cli = super::Cli::command();
        cli.build();
        for sub in cli.get_subcommands().filter(|s| s.get_name() != "help") {
            let help = sub
                .get_after_help()
                .or_else(|| sub.get_after_long_help())
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Examples:"),
                "{} --help has no examples",
                sub.get_name()
            );
            assert!(
                help.contains("Exit codes:"),
                "{} --help has no exit codes",
                sub.get_name()
            );
        }
    }

    /// Every loss kind; the match fails to compile when the writer adds one, so a new
    /// kind cannot miss its hints.
    fn every_loss_kind() -> Vec<rdb_writer::convert::LossKind> {
        use rdb_writer::convert::LossKind::*;
        let all = vec![
            FieldTtls,
            ExpiredFields,
            Functions,
            ModuleValue,
            ModuleAux,
            Databases,
            ClusterDatabases,
            DuplicateKey,
            EmptyKey,
            FieldExpiryRange,
            Type,
            StreamIdmp,
            KeyMeta,
        ];
        for k in &all {
            match k {
                FieldTtls | ExpiredFields | Functions | ModuleValue | ModuleAux | Databases
                | ClusterDatabases | DuplicateKey | EmptyKey | FieldExpiryRange | Type
                | StreamIdmp | KeyMeta => {}
            }
        }
        all
    }

    /// The `--flag` words of a hint.
    fn flags_named(text: &str) -> Vec<&str> {
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .collect()
    }

    /// Every flag a loss hint names is one the subcommand reporting it accepts: convert,
    /// merge, export and restore each get their own hints; check's fixes are convert
    /// commands (`rdbkit convert <hint>`), so they are convert's.
    #[test]
    fn every_flag_a_hint_names_exists_on_its_subcommand() {
        use rdb_cli::convert::{remedy, HintFor};
        let cli = super::Cli::command();
        let subcommands = [
            ("convert", HintFor::Convert),
            ("merge", HintFor::Merge),
            ("export", HintFor::Export),
            ("restore", HintFor::Restore),
            ("check", HintFor::Convert),
        ];
        let mut wrong = Vec::new();
        let mut named = 0;
        for (name, hints) in subcommands {
            // check's fixes run convert.
            let runs = if name == "check" { "convert" } else { name };
            let sub = cli
                .find_subcommand(runs)
                .unwrap_or_else(|| panic!("no subcommand {runs}"));
            let accepted: Vec<&str> = sub.get_arguments().filter_map(|a| a.get_long()).collect();
            for kind in every_loss_kind() {
                let hint = remedy(kind, hints);
                for flag in flags_named(hint) {
                    named += 1;
                    if !accepted.contains(&flag.trim_start_matches('-')) {
                        wrong.push(format!("{name}: {kind:?}: {flag} (\"{hint}\")"));
                    }
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "flags the subcommand does not take: {wrong:#?}"
        );
        assert!(named > 40, "only {named} flags named");
        // The words are found: the test would see a wrong one.
        assert_eq!(
            flags_named("a --dbs x, --on-conflict first|last"),
            ["--dbs", "--on-conflict"]
        );
    }

    /// The loss policies are declared once and taken by every command that writes values
    /// for a target.
    #[test]
    fn loss_policy_flags_are_shared() {
        let cli = super::Cli::command();
        for name in ["convert", "merge", "export", "restore"] {
            let sub = cli
                .find_subcommand(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
            for flag in ["field-ttls", "stream-idmp", "functions"] {
                let arg = sub.get_arguments().find(|a| a.get_long() == Some(flag));
                let help = arg.and_then(|a| a.get_help()).map(|h| h.to_string());
                assert!(help.is_some(), "{name} --{flag}");
            }
        }
    }
}
