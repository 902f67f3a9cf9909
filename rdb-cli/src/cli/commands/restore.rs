//! `rdbkit restore`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use rdb_cli::Failure;

use crate::cli::args::{filter, target_profile, FilterArgs, LossArgs, ReadOptions};
use crate::cli::input::{io_context, Input};
use crate::cli::values::resolve_now;
use crate::cli::{usage, Context};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit restore dump.rdb --to redis://127.0.0.1:6379\n  \
    rdbkit restore dump.rdb --to 127.0.0.1:6379 --on-exists skip\n  \
    rdbkit restore dump.rdb --to rediss://:PASSWORD@cache.example.net:6380 --on-exists skip\n  \
    RDBKIT_REDIS_PASSWORD=... rdbkit restore dump.rdb --to rediss://host:10000 --cluster\n  \
    rdbkit restore dump.rdb --to redis://h:6379 --checkpoint ck.json   (interrupted? add --resume)\n\n\
    The password is never printed: URLs are shown as redis://user:***@host:port/db. A password \
    in the URL is visible to other users in `ps` (rdbkit warns): prefer --password-file FILE, \
    $RDBKIT_REDIS_PASSWORD or --ask-password (a prompt without echo).\n\
    Exit codes: 0 every key restored or skipped as asked, 1 the target refused a key \
    or the snapshot is malformed, 2 usage, connection or I/O error.")]
pub struct RestoreArgs {
    /// The RDB file to read (never modified).
    file: PathBuf,
    /// The target: redis://host:port/db (user:pass@ before the host to log in), or
    /// rediss:// for TLS. Source db 0 goes into /db (default 0). Without a password in the
    /// URL: --password-file, else a prompt (--ask-password), else $RDBKIT_REDIS_PASSWORD.
    #[arg(long, value_name = "URL")]
    to: String,
    /// Read the password from this file (its first line) instead of the URL, where other
    /// users see it in `ps`.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Ask for the password on the terminal, without echo. Without this flag it is asked
    /// when the URL names a user but no password, $RDBKIT_REDIS_PASSWORD is not set and
    /// standard input is a terminal.
    #[arg(long, conflicts_with = "password_file")]
    ask_password: bool,
    /// The target is a Redis Cluster: route each key to its slot's master (CLUSTER SLOTS),
    /// following MOVED and ASK.
    #[arg(long)]
    cluster: bool,
    /// TLS: trust the certificates in this PEM file (besides the Mozilla roots).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// TLS: accept any certificate (self-signed test servers only).
    #[arg(long)]
    tls_insecure: bool,
    /// Overwrite keys that exist on the target (same as --on-exists replace).
    #[arg(long, conflicts_with = "on_exists")]
    replace: bool,
    /// A key that exists on the target: stop with an error naming it, leave it, or
    /// overwrite it.
    #[arg(long, value_enum)]
    on_exists: Option<OnExistsArg>,
    /// Most commands in flight per connection.
    #[arg(long, value_name = "N", default_value_t = 256)]
    window: usize,
    /// Most bytes in flight per connection (e.g. 64M).
    #[arg(long, value_name = "SIZE", value_parser = crate::cli::values::parse_size, default_value = "64M")]
    window_bytes: u64,
    /// The target's proto-max-bulk-len, where CONFIG GET is refused (managed services);
    /// payloads above it are sent as plain commands.
    #[arg(long, value_name = "SIZE", value_parser = crate::cli::values::parse_size)]
    max_bulk: Option<u64>,
    /// Build payloads for this profile instead of the one the server's version maps to.
    #[arg(long)]
    target: Option<String>,
    /// Record progress here (atomically): the last key acknowledged, in file order.
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Write the checkpoint after every N acknowledged keys.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    checkpoint_every: u64,
    /// Continue after the key the checkpoint names. Keys the interrupted run may have sent
    /// after it are compared with the target's copy and follow --on-exists unless equal.
    #[arg(long, requires = "checkpoint")]
    resume: bool,
    /// With --resume: continue although the target's run_id or key count says it is not
    /// the server the checkpoint was made against (it restarted, or was flushed).
    #[arg(long, requires = "resume")]
    resume_any_target: bool,
    /// Seconds to wait for the server (connect, each reply).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    #[command(flatten)]
    losses: LossArgs,
    /// "Now" for skipping expired keys and TTL filters: Unix ms, `ctime` (the end of the
    /// second the snapshot's ctime AUX field names) or `clock` (the default).
    #[arg(long, value_name = "UNIX_MS|ctime|clock")]
    now: Option<String>,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    filter: FilterArgs,
    #[command(flatten)]
    read: ReadOptions,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnExistsArg {
    Error,
    Skip,
    Replace,
}

pub fn run(a: &RestoreArgs, cx: &Context) -> Result<(), Failure> {
    use rdb_cli::restore::{OnExists, RestoreOptions, TargetUrl, TlsOptions};
    let password = crate::cli::values::password(&a.to, a.password_file.as_deref(), a.ask_password)?;
    let url = TargetUrl::parse_with(&a.to, password).map_err(usage)?;
    if url.password_in_url {
        eprintln!(
            "rdbkit: warning: the password in --to can be read by other users of this machine \
             (ps, /proc/PID/cmdline); put it in a file for --password-file FILE, in \
             $RDBKIT_REDIS_PASSWORD, or use --ask-password"
        );
    }
    let input = Input::open(&a.file)?;
    if let Some(path) = &a.checkpoint {
        rdb_cli::output::check_destination(path).map_err(|e| io_context(e, path))?;
    }
    let target_override = match &a.target {
        Some(name) => Some(target_profile(Some(name), None, None)?),
        None => None,
    };
    // The target profile is set from the server's version once connected.
    let placeholder = rdb_writer::TargetProfile::for_version(9)
        .ok_or_else(|| usage("no RDB 9 profile".into()))?;
    let mut convert =
        rdb_writer::convert::ConvertOptions::new(target_override.clone().unwrap_or(placeholder));
    a.losses.apply(&mut convert);
    convert.modules = rdb_writer::convert::ModulePolicy::Keep;
    convert.now_ms = resolve_now(a.now.as_deref(), input.bytes()).map_err(usage)?;
    convert.db_map = a.filter.db_map.iter().copied().collect();
    convert.filter = filter(&a.filter, convert.now_ms)?;
    let on_exists = match (a.replace, a.on_exists) {
        (true, _) | (_, Some(OnExistsArg::Replace)) => OnExists::Replace,
        (_, Some(OnExistsArg::Skip)) => OnExists::Skip,
        _ => OnExists::Error,
    };
    let o = RestoreOptions {
        url,
        tls: TlsOptions {
            ca: a.tls_ca.clone(),
            insecure: a.tls_insecure,
        },
        on_exists,
        window_commands: a.window.max(1),
        window_bytes: usize::try_from(a.window_bytes).unwrap_or(usize::MAX),
        cluster: a.cluster,
        max_bulk: a.max_bulk,
        checkpoint: a.checkpoint.clone(),
        checkpoint_every: a.checkpoint_every.max(1),
        resume: a.resume,
        resume_any_target: a.resume_any_target,
        convert,
        target_override,
        timeout: std::time::Duration::from_secs(a.timeout.max(1)),
    };
    let progress = cx.progress(input.bytes().len() as u64);
    let mut tick = progress.tick();
    let result = rdb_cli::restore::restore(input.bytes(), &a.read.builder(), &o, &mut tick);
    drop(tick);
    drop(progress);
    let summary = result?;
    if a.json {
        let text =
            serde_json::to_string_pretty(&summary.to_json()).map_err(|e| Failure::Io(e.into()))?;
        println!("{text}");
    } else {
        summary
            .write_text(&mut std::io::stderr(), &o.url)
            .map_err(Failure::Io)?;
    }
    Ok(())
}
