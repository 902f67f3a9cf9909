//! `rdbkit fetch`.

use std::path::PathBuf;

use clap::Args;
use rdb_cli::Failure;

use crate::cli::input::io_context;
use crate::cli::{usage, Context};

#[derive(Args)]
#[command(after_help = "Examples:\n  \
    rdbkit fetch redis://127.0.0.1:6379 -o dump.rdb\n  \
    rdbkit fetch 10.0.0.5:6379 -o dump.rdb --json\n  \
    rdbkit fetch rediss://app@cache.example.net:6380 --password-file pw.txt --tls-ca ca.pem -o dump.rdb\n  \
    rdbkit fetch redis://h:6379 -o - | rdbkit info -      (standard output: written as it arrives)\n  \
    rdbkit fetch redis://10.0.0.5:7000 --cluster -o shards/   (one file per master + manifest.json)\n\n\
    The server sends its snapshot as it would to a new replica (PSYNC ? -1, or SYNC): it \
    runs a BGSAVE (or streams one, with repl-diskless-sync yes). The file appears only when \
    the whole snapshot arrived and its CRC64 matched. Managed services (ElastiCache, Azure \
    Cache for Redis, Memorystore, ...) refuse replication: use the service's own export or \
    backup. The password is never printed; a password in the URL is visible in `ps`: \
    prefer --password-file FILE, $RDBKIT_REDIS_PASSWORD or --ask-password (a prompt without \
    echo).\n\
    Exit codes: 0 the snapshot was fetched and verified, 1 the server refused replication \
    or the password, 2 usage, connection, checksum or I/O error (no file is left then), \
    130 interrupted.")]
pub struct FetchArgs {
    /// The server: redis://host:port (user:pass@ before the host to log in), rediss:// for
    /// TLS, or host:port. Without a password in the URL: --password-file, else a prompt
    /// (--ask-password), else $RDBKIT_REDIS_PASSWORD.
    #[arg(value_name = "URL")]
    url: String,
    /// Where to write the snapshot (`-` for standard output); with --cluster, a new or
    /// empty directory.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Read the password from this file (its first line) instead of the URL, where other
    /// users see it in `ps`.
    #[arg(long, value_name = "FILE")]
    password_file: Option<PathBuf>,
    /// Ask for the password on the terminal, without echo. Without this flag it is asked
    /// when the URL names a user but no password, $RDBKIT_REDIS_PASSWORD is not set and
    /// standard input is a terminal.
    #[arg(long, conflicts_with = "password_file")]
    ask_password: bool,
    /// TLS: trust the certificates in this PEM file (besides the Mozilla roots).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// TLS: accept any certificate (self-signed test servers only).
    #[arg(long)]
    tls_insecure: bool,
    /// Seconds to wait for the server (connect, each reply, silence during the transfer).
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// The server is a cluster node: fetch one snapshot per master (found with CLUSTER
    /// SHARDS, else CLUSTER SLOTS) into -o DIR as shard-N.rdb, with manifest.json (slots,
    /// keys, bytes, SHA-256 per file, as convert --shards writes). The directory appears
    /// only when every snapshot arrived whole.
    #[arg(long)]
    cluster: bool,
    /// With --cluster: most snapshots fetched at once (each one forks its master).
    #[arg(long, value_name = "N", default_value_t = 4, requires = "cluster")]
    jobs: usize,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    json: bool,
}

pub fn run(a: &FetchArgs, cx: &Context) -> Result<(), Failure> {
    use rdb_cli::fetch::FetchOptions;
    use rdb_cli::restore::{TargetUrl, TlsOptions};
    let password =
        crate::cli::values::password(&a.url, a.password_file.as_deref(), a.ask_password)?;
    let url =
        TargetUrl::parse_with(&a.url, password).map_err(|e| usage(e.replacen("--to", "URL", 1)))?;
    if url.password_in_url {
        eprintln!(
            "rdbkit: warning: the password in the URL can be read by other users of this \
             machine (ps, /proc/PID/cmdline); put it in a file for --password-file FILE, in \
             $RDBKIT_REDIS_PASSWORD, or use --ask-password"
        );
    }
    if a.json && a.output.as_os_str() == "-" {
        return Err(usage(
            "--json prints on standard output, where -o - writes the snapshot: choose one".into(),
        ));
    }
    let o = FetchOptions {
        url,
        tls: TlsOptions {
            ca: a.tls_ca.clone(),
            insecure: a.tls_insecure,
        },
        timeout: std::time::Duration::from_secs(a.timeout.max(1)),
    };
    if a.cluster {
        return run_cluster(a, cx, &o);
    }
    // Checked (and the temporary file created) before connecting: a bad output costs no
    // snapshot on the server.
    let mut out =
        rdb_cli::output::AtomicFile::create(&a.output).map_err(|e| io_context(e, &a.output))?;
    let mut bar = None;
    let mut progress = |done: u64, total: Option<u64>| {
        bar.get_or_insert_with(|| cx.progress(total.unwrap_or(0)))
            .set(done);
    };
    let result = rdb_cli::fetch::fetch(&o, &mut out, &mut progress);
    drop(bar);
    // On error `out` is dropped uncommitted: the temporary file is removed.
    let summary = result?;
    out.commit().map_err(|e| io_context(e, &a.output))?;
    if a.json {
        let text =
            serde_json::to_string_pretty(&summary.to_json()).map_err(|e| Failure::Io(e.into()))?;
        println!("{text}");
    } else if !cx.quiet {
        let shown = if a.output.as_os_str() == "-" {
            "standard output".to_owned()
        } else {
            a.output.display().to_string()
        };
        summary
            .write_text(&mut std::io::stderr(), &shown)
            .map_err(Failure::Io)?;
    }
    Ok(())
}

fn run_cluster(
    a: &FetchArgs,
    cx: &Context,
    o: &rdb_cli::fetch::FetchOptions,
) -> Result<(), Failure> {
    let progress = cx.progress(0);
    let result =
        rdb_cli::fetch::cluster::fetch_cluster(o, &a.output, a.jobs, &|done| progress.set(done));
    drop(progress);
    let summary = result?;
    if a.json {
        let text =
            serde_json::to_string_pretty(&summary.to_json()).map_err(|e| Failure::Io(e.into()))?;
        println!("{text}");
    } else if !cx.quiet {
        summary
            .write_text(&mut std::io::stderr(), &a.output.display().to_string())
            .map_err(Failure::Io)?;
    }
    Ok(())
}
