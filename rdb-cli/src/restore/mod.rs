//! `rdbkit restore`: send a snapshot's keys to a live server as `RESTORE` commands.
//!
//! Each key becomes `RESTORE key ttl payload [ABSTTL] [REPLACE] [IDLETIME|FREQ]` with a DUMP
//! payload for the server's own RDB version (read from `INFO server`), built by
//! `rdb_writer::convert::dump_body` on all cores. A payload above the server's
//! `proto-max-bulk-len` is sent as plain commands instead (RPUSH, SADD, HSET, ... in
//! batches, then PEXPIREAT; see `resp.rs`).
//!
//! Why these crates, and not the `redis` client itself: the client's pipelines are
//! all-or-nothing batches, while a restore needs a window of commands in flight per node
//! and a decision per reply (BUSYKEY, MOVED, ASK, TRYAGAIN) while more commands are queued.
//! So the connection is our own `TcpStream` (or `rustls::StreamOwned` over it), commands
//! are framed in place (`resp.rs`), and replies are parsed by the `redis` crate's
//! incremental `Parser`, which handles every RESP2/RESP3 reply shape. TLS is rustls (pure
//! Rust, with the `ring` provider, which builds quickly and needs no cmake), with the
//! Mozilla roots from `webpki-roots` so that a managed service's certificate verifies
//! without a system store, plus `--tls-ca` PEM files read by `rustls-pki-types`
//! (`rustls-pemfile` is unmaintained; its code moved there). `url` parses the target URL.
//!
//! Cluster mode: the slot map comes from `CLUSTER SLOTS`, one connection per master.
//! `MOVED` updates the slot's owner, re-sends the command there and refreshes the map;
//! `ASK` re-sends it once after `ASKING`.
//!
//! Resuming: keys are numbered in file order. The checkpoint holds the number of the last
//! key whose every command was acknowledged, and a bound on the keys that may have been
//! sent after it. `--resume` skips the former; a key up to the bound that is on the target
//! is compared with what this restore writes (window.rs) and left to `--on-exists` unless
//! it is an exact copy, so that each key ends up on the target exactly once and no key the
//! user chose to keep is replaced. A key counts as acknowledged only when every reply of it
//! came back without an error. The checkpoint also holds digests of the file and of the
//! options that select keys, and the target's run ids and a count of the keys it was given
//! (checkpoint.rs); `--resume` refuses others.
//!
//! Modules: `url` (the target URL, redaction), `conn` (one connection: TCP/TLS, AUTH,
//! replies), `checkpoint` (the file and the target's identity), `run` (keys in file order),
//! `inflight` (the window of commands in flight and what each reply means), `chunked`
//! (values sent as plain commands under a temporary key), `window` (the resume window).

mod checkpoint;
mod chunked;
pub(crate) mod conn;
mod inflight;
mod run;
mod url;
mod window;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rdb_parser::ParserBuilder;
use rdb_writer::convert::ConvertOptions;
use rdb_writer::TargetProfile;

use crate::Failure;

pub use checkpoint::{selection_digest, source_digest, Checkpoint};
pub use conn::profile_for_server;
pub use url::TargetUrl;

use conn::{tls_config, Conn};
use run::Run;

/// Cluster hash slots.
pub(super) const SLOTS: usize = 16384;
/// Unflushed bytes per connection before they are written out.
pub(super) const FLUSH_BYTES: usize = 256 << 10;
/// proto-max-bulk-len when the server does not say (its default).
pub(super) const DEFAULT_MAX_BULK: u64 = 512 << 20;

#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM certificates to trust besides the Mozilla roots.
    pub ca: Option<PathBuf>,
    /// Accept any certificate (self-signed test servers only).
    pub insecure: bool,
}

/// What happens when a key already exists on the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExists {
    /// Stop with an error naming the key.
    Error,
    /// Leave the target's key alone, and count it.
    Skip,
    /// Overwrite it (RESTORE ... REPLACE).
    Replace,
}

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    pub url: TargetUrl,
    pub tls: TlsOptions,
    pub on_exists: OnExists,
    /// Most commands in flight per connection.
    pub window_commands: usize,
    /// Most bytes in flight per connection.
    pub window_bytes: usize,
    pub cluster: bool,
    /// The target's proto-max-bulk-len when CONFIG GET is refused (managed services).
    pub max_bulk: Option<u64>,
    pub checkpoint: Option<PathBuf>,
    /// Write the checkpoint after every this many acknowledged keys.
    pub checkpoint_every: u64,
    pub resume: bool,
    /// `--resume` against a target whose run_id or key count says it is not the one the
    /// checkpoint was made against.
    pub resume_any_target: bool,
    /// Payload encoding, filters, db map and loss policies; its `target` is replaced by
    /// the profile the server's version maps to unless `target_override` is set.
    pub convert: ConvertOptions,
    pub target_override: Option<TargetProfile>,
    pub timeout: Duration,
}

/// What a restore did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RestoreSummary {
    /// `redis 7.0.15`, `valkey 8.1.1`.
    pub server: String,
    /// The profile (RDB version) payloads were built for.
    pub profile: String,
    pub rdb_version: u32,
    pub keys_read: u64,
    /// Keys restored with RESTORE.
    pub restored: u64,
    /// Keys sent as plain commands (their payload exceeded proto-max-bulk-len).
    pub chunked: u64,
    pub skipped_existing: u64,
    pub skipped_expired: u64,
    pub filtered: u64,
    /// Keys the target cannot hold that a flag allowed to leave out.
    pub dropped: u64,
    /// Keys skipped because the checkpoint says they were acknowledged before.
    pub resumed_past: u64,
    /// Keys of the resume window found on the target exactly as this restore writes them
    /// (the interrupted run's copy); counted in `restored` or `chunked` too.
    pub already_restored: u64,
    pub functions: u64,
    /// Function libraries left out (--functions drop, on a target without functions).
    pub functions_dropped: u64,
    pub commands: u64,
    pub bytes_sent: u64,
    pub seconds: f64,
    /// Cluster redirects followed.
    pub moved: u64,
    pub asked: u64,
}

impl RestoreSummary {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "server": self.server,
            "profile": self.profile,
            "rdb_version": self.rdb_version,
            "keys_read": self.keys_read,
            "restored": self.restored,
            "chunked": self.chunked,
            "skipped_existing": self.skipped_existing,
            "skipped_expired": self.skipped_expired,
            "filtered": self.filtered,
            "dropped": self.dropped,
            "resumed_past": self.resumed_past,
            "already_restored": self.already_restored,
            "functions": self.functions,
            "functions_dropped": self.functions_dropped,
            "commands": self.commands,
            "bytes_sent": self.bytes_sent,
            "seconds": self.seconds,
            "moved": self.moved,
            "asked": self.asked,
        })
    }

    pub fn write_text(&self, out: &mut dyn Write, url: &TargetUrl) -> std::io::Result<()> {
        let rate = if self.seconds > 0.0 {
            self.bytes_sent as f64 / self.seconds / 1e6
        } else {
            0.0
        };
        writeln!(
            out,
            "restored into {url} ({}, payloads for {} / RDB {}): {} keys with RESTORE, {} as \
             plain commands, {} skipped (already there), {} skipped (expired), {} left out by \
             filters, {} dropped; {} functions ({} dropped); {} commands, {} bytes in {:.2}s ({rate:.1} MB/s)",
            self.server,
            self.profile,
            self.rdb_version,
            self.restored,
            self.chunked,
            self.skipped_existing,
            self.skipped_expired,
            self.filtered,
            self.dropped,
            self.functions,
            self.functions_dropped,
            self.commands,
            self.bytes_sent,
            self.seconds
        )?;
        if self.resumed_past > 0 {
            writeln!(
                out,
                "resumed: {} keys acknowledged by the earlier run were not sent again",
                self.resumed_past
            )?;
        }
        if self.already_restored > 0 {
            writeln!(
                out,
                "resumed: {} keys the earlier run may have sent were found on the target as \
                 this restore writes them",
                self.already_restored
            )?;
        }
        if self.moved + self.asked > 0 {
            writeln!(
                out,
                "cluster redirects followed: {} MOVED, {} ASK",
                self.moved, self.asked
            )?;
        }
        Ok(())
    }
}

/// Restores the snapshot `data` as `o` says. `progress` gets the input offset of each key.
pub fn restore(
    data: &[u8],
    parser: &ParserBuilder,
    o: &RestoreOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<RestoreSummary, Failure> {
    // Whatever a server answered, a password it echoed is not printed.
    let secret = o.url.password.as_deref().unwrap_or_default();
    run_restore(data, parser, o, progress).map_err(|f| match f {
        _ if secret.is_empty() => f,
        Failure::Refused(m) => Failure::Refused(m.replace(secret, "***")),
        Failure::Usage(m) => Failure::Usage(m.replace(secret, "***")),
        Failure::Io(e) => Failure::Io(std::io::Error::new(
            e.kind(),
            e.to_string().replace(secret, "***"),
        )),
        other => other,
    })
}

fn run_restore(
    data: &[u8],
    parser: &ParserBuilder,
    o: &RestoreOptions,
    progress: &mut dyn FnMut(u64),
) -> Result<RestoreSummary, Failure> {
    let started = Instant::now();
    let tls = if o.url.tls {
        Some(tls_config(&o.tls)?)
    } else {
        None
    };
    let first = Conn::open(&o.url.host, o.url.port, &o.url, tls.as_ref(), o.timeout)?;
    let fresh = Checkpoint {
        source_bytes: data.len() as u64,
        source_digest: source_digest(data),
        selection_digest: selection_digest(o),
        ..Checkpoint::default()
    };
    let mut run = Run::new(o, tls, first, fresh);
    let mut copts = o.convert.clone();
    run.probe(&mut copts)?;
    if o.cluster {
        run.load_slot_map()?;
    }
    let identity = if o.checkpoint.is_some() {
        run.identity()?
    } else {
        checkpoint::Identity::default()
    };
    run.checkpoint.run_ids = identity.run_ids.clone();
    let resume_from = if o.resume {
        let path = o
            .checkpoint
            .as_deref()
            .ok_or_else(|| Failure::Usage("--resume needs --checkpoint FILE".into()))?;
        let c = Checkpoint::read(path)
            .and_then(|c| c.matches(&run.checkpoint, path).map(|()| c))
            .map_err(Failure::Usage)?;
        if !o.resume_any_target {
            checkpoint::same_target(&c, &identity, path).map_err(Failure::Usage)?;
        }
        // The keys written before, as far as the target still shows them.
        run.checkpoint.persistent_written = c.persistent_written.min(identity.persistent_keys);
        Some(c)
    } else {
        None
    };
    let result = run.send_all(data, parser, &copts, resume_from, progress);
    // Whatever happened, record how far the target acknowledged.
    let finish = result.and_then(|()| run.drain_all());
    if finish.is_err() {
        run.drop_temps();
    }
    let acked = run.acked();
    run.checkpoint.last_acked = acked;
    run.checkpoint.complete = finish.is_ok();
    if let Some(path) = &o.checkpoint {
        let written = run.save_checkpoint(path);
        if finish.is_ok() {
            written?;
        }
    }
    finish?;
    run.s.seconds = started.elapsed().as_secs_f64();
    Ok(run.s)
}
