//! `rdbkit upload FILE... --sas-url URL`: a snapshot into Azure Blob Storage as a block
//! blob (or a page blob), resumable, verified.
//!
//! ```text
//! file:  [ block 0 ][ block 1 ] ... [ block n-1 ]   block size >= ceil(size / 50,000)
//! id(i) = base64("rdbk" + 8-digit i + "-" + 32 hex of MD5(block i))   (45 bytes, fixed)
//! ```
//! An ID names the block's content, so a second run finds the blocks the first one
//! staged (Get Block List) and sends only the others, and a block whose bytes changed
//! in between gets a new ID: a stale block is never committed.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use md5::{Digest, Md5};
use rayon::prelude::*;
use serde_json::json;

use super::blob::{Blob, BlobError, MAX_BLOCK, MAX_BLOCKS, MAX_PAGE_WRITE, PAGE};
use super::http::Http;
use super::import::ImportTargetOptions;
use super::sas::{self, redact, SasUrl, Scope};
use super::PreflightOptions;
use crate::Failure;

/// Default block size: big enough for few requests, small enough to retry cheaply.
pub const DEFAULT_BLOCK: u64 = 8 << 20;
/// Most requests in flight (`--parallel`).
pub const MAX_PARALLEL: usize = 256;

/// `rdbkit upload`: where to, in what pieces, how, and what follows.
#[derive(Debug, Clone)]
pub struct UploadOptions {
    /// A container SAS (each file becomes the blob named like the file, or `name`) or a
    /// blob SAS (one file).
    pub sas: SasUrl,
    /// The blob name, with a container SAS and one file.
    pub name: Option<String>,
    /// Block size (None: [`DEFAULT_BLOCK`], or more when a file needs over 50,000 blocks).
    pub block_size: Option<u64>,
    /// Blocks (or pages) in flight at once, 1 to [`MAX_PARALLEL`].
    pub parallel: usize,
    /// Retries per request on connection errors, timeouts, 408, 429 and 5xx.
    pub retries: u32,
    /// A page blob (padded with zeros to a multiple of 512) instead of a block blob.
    pub page_blob: bool,
    pub preflight: PreflightOptions,
    /// JSON on `out` instead of text.
    pub json: bool,
    /// Import the uploaded blobs into this cache afterwards.
    pub then_import: Option<ImportTargetOptions>,
}

impl UploadOptions {
    /// An upload to `sas` with the defaults: 8 requests in flight, 6 retries, block blobs.
    pub fn new(sas: SasUrl) -> Self {
        UploadOptions {
            sas,
            name: None,
            block_size: None,
            parallel: 8,
            retries: 6,
            page_blob: false,
            preflight: PreflightOptions::default(),
            json: false,
            then_import: None,
        }
    }
}

/// What an upload reports while it runs, for the caller to draw. Called from the worker
/// threads, hence `Sync` and `&self`.
pub trait UploadProgress: Sync {
    /// Work on `file` (`total` bytes) begins, or moves on to another `phase`.
    fn phase(&self, _file: &str, _phase: Phase, _total: u64) {}
    /// `done` of the file's `total` bytes are on the service (staged ones included).
    fn sent(&self, _done: u64, _total: u64) {}
    /// A request is tried again; `line` has its secrets redacted.
    fn retry(&self, _line: &str) {}
    /// The file's data is all sent (verification follows).
    fn finish(&self) {}
}

/// What [`UploadProgress::phase`] announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Computing the blocks' MD5s (reads the whole file).
    Hashing,
    /// Sending blocks or pages.
    Sending,
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl UploadProgress for NoProgress {}

/// One file to upload: its path and bytes.
#[derive(Debug)]
pub struct Source<'data> {
    pub path: &'data Path,
    pub data: &'data [u8],
}

/// What one upload did.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub file: PathBuf,
    /// The blob URL without its token.
    pub blob: String,
    /// The blob's SAS (for a chained import; holds the signature, never printed as is).
    pub sas: SasUrl,
    pub size: u64,
    pub blob_size: u64,
    pub kind: &'static str,
    pub block_size: u64,
    pub blocks: usize,
    pub already_staged: usize,
    pub sent: usize,
    pub bytes_sent: u64,
    pub seconds: f64,
    /// The committed size was read back and matched (false: the SAS cannot read).
    pub verified: bool,
}

impl Uploaded {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "file": self.file.display().to_string(),
            "blob": self.blob,
            "kind": self.kind,
            "size": self.size,
            "blob_size": self.blob_size,
            "padding": self.blob_size - self.size,
            "block_size": self.block_size,
            "blocks": self.blocks,
            "already_staged": self.already_staged,
            "sent": self.sent,
            "bytes_sent": self.bytes_sent,
            "seconds": self.seconds,
            "verified": self.verified,
        })
    }
}

/// The block size for a file of `size` bytes: `requested`, checked, or the default.
pub fn choose_block_size(size: u64, requested: Option<u64>) -> Result<u64, String> {
    let least = size.div_ceil(MAX_BLOCKS).max(1);
    match requested {
        Some(b) if b < 1024 => Err(format!("--block-size {b}: use at least 1 KiB")),
        Some(b) if b > MAX_BLOCK => Err(format!(
            "--block-size {b}: the service takes blocks up to 4000 MiB"
        )),
        Some(b) if b < least => Err(format!(
            "--block-size {b}: a {size}-byte file needs blocks of at least {least} bytes \
             (a blob has at most 50,000 blocks)"
        )),
        Some(b) => Ok(b),
        None => {
            let mib = 1 << 20;
            let needed = least.div_ceil(mib) * mib;
            let b = DEFAULT_BLOCK.max(needed);
            if b > MAX_BLOCK {
                Err(format!(
                    "{size} bytes is more than a block blob holds (50,000 x 4000 MiB)"
                ))
            } else {
                Ok(b)
            }
        }
    }
}

/// Block ID `index` of a block whose MD5 is `md5`: 45 bytes before base64 (60 after, no
/// padding), so every ID of the blob has the same length (the service requires it).
/// MD5 is the service's own transfer check; the ID guards against accidental staleness,
/// not against someone who can already write to the container.
pub fn block_id(index: usize, md5: &[u8; 16]) -> String {
    let mut raw = format!("rdbk{index:08}-");
    for b in md5 {
        raw.push_str(&format!("{b:02x}"));
    }
    base64::engine::general_purpose::STANDARD.encode(raw)
}

/// Uploads every source; writes a line per file (or JSON) to `out`, notes to `log`,
/// progress and retry notices to `progress`.
pub fn run(
    args: &UploadOptions,
    sources: &[Source<'_>],
    progress: &dyn UploadProgress,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<Vec<Uploaded>, Failure> {
    let base = &args.sas;
    if base.scope == Scope::Blob && sources.len() > 1 {
        return Err(Failure::Usage(format!(
            "{} is a blob SAS: it names one blob, and {} files were given; use a container SAS",
            base.without_token(),
            sources.len()
        )));
    }
    if args.name.is_some() && (sources.len() > 1 || base.scope == Scope::Blob) {
        return Err(Failure::Usage(
            "--name goes with one file and a container SAS".into(),
        ));
    }
    if let Some(n) = &args.name {
        if n.is_empty() || n.ends_with('/') {
            return Err(Failure::Usage(format!(
                "--name {n:?} names no blob; give a name like backups/dump.rdb"
            )));
        }
    }
    if !(1..=MAX_PARALLEL).contains(&args.parallel) {
        // One thread per request in flight: a huge number only fails to spawn.
        return Err(Failure::Usage(format!(
            "--parallel {}: give 1 to {MAX_PARALLEL}",
            args.parallel
        )));
    }
    if let Some(why) = base.time_problem(sas::now()) {
        return Err(Failure::Refused(format!("{}: {why}", base.without_token())));
    }
    if base.lacks('w') {
        return Err(Failure::Refused(format!(
            "{}: the SAS has sp={}, and uploading needs w (write); generate one with rcw",
            base.without_token(),
            base.permissions().unwrap_or_default()
        )));
    }
    if let Some(target) = &args.then_import {
        super::arm::check_endpoint(&target.arm_endpoint).map_err(Failure::Usage)?;
        // Refuse now rather than after a long upload.
        for p in super::import::sas_problems(base, sas::now()) {
            let why = format!("{} (for the import): {p}", base.without_token());
            if args.preflight.force {
                writeln!(log, "warning: {why} (going on: --force)").map_err(Failure::Io)?;
            } else {
                return Err(Failure::Refused(why));
            }
        }
    }
    for s in sources {
        super::preflight(s.path, s.data, &args.preflight, log)?;
    }
    // A request may take as long as its block needs at a slow 64 KiB/s, and at least 10 min.
    let biggest_block = sources
        .iter()
        .filter_map(|s| choose_block_size(s.data.len() as u64, args.block_size).ok())
        .max()
        .unwrap_or(DEFAULT_BLOCK);
    let http = Http::new(
        Duration::from_secs((biggest_block >> 16).max(600)),
        args.retries,
    );
    let mut urls: Vec<SasUrl> = Vec::with_capacity(sources.len());
    for s in sources {
        let url = match base.scope {
            Scope::Blob => base.clone(),
            Scope::Container => {
                let name = match &args.name {
                    Some(n) => n.clone(),
                    None => s
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .ok_or_else(|| {
                            Failure::Usage(format!(
                                "{}: no file name; use --name",
                                s.path.display()
                            ))
                        })?,
                };
                base.blob(&name)
            }
        };
        // `node-1/dump.rdb node-2/dump.rdb`: the second would overwrite the first.
        if let Some(i) = urls
            .iter()
            .position(|u| u.without_token() == url.without_token())
        {
            let first = sources
                .get(i)
                .map_or_else(String::new, |f| f.path.display().to_string());
            return Err(Failure::Usage(format!(
                "{first} and {} both become the blob {}; upload them in separate runs, each \
                 with its own --name",
                s.path.display(),
                url.without_token()
            )));
        }
        urls.push(url);
    }
    let mut done = Vec::new();
    for (s, url) in sources.iter().zip(&urls) {
        let url = url.clone();
        let up = if args.page_blob {
            upload_page_blob(args, s, &url, &http, progress, log)
        } else {
            upload_block_blob(args, s, &url, &http, progress, log)
        }
        .map_err(|e| Failure::Io(std::io::Error::other(redact(&e.to_string()))))?;
        if !args.json {
            write_line(out, &up).map_err(Failure::Io)?;
        }
        done.push(up);
    }
    if args.json {
        let v: Vec<_> = done.iter().map(Uploaded::to_json).collect();
        let text = serde_json::to_string_pretty(&v).map_err(|e| Failure::Io(e.into()))?;
        writeln!(out, "{}", redact(&text)).map_err(Failure::Io)?;
    }
    if let Some(target) = &args.then_import {
        let urls: Vec<SasUrl> = done.iter().map(|u| u.sas.clone()).collect();
        super::import::start(target, &urls, &args.preflight, args.json, out, log)?;
    }
    Ok(done)
}

fn write_line(out: &mut dyn Write, u: &Uploaded) -> std::io::Result<()> {
    let rate = u.bytes_sent as f64 / u.seconds.max(1e-6) / (1 << 20) as f64;
    let mut line = format!(
        "uploaded {} -> {} ({} bytes, {} blob",
        u.file.display(),
        u.blob,
        u.size,
        u.kind
    );
    if u.kind == "block" {
        line.push_str(&format!(
            ", {} blocks of {} bytes, {} already staged, {} sent",
            u.blocks, u.block_size, u.already_staged, u.sent
        ));
    } else if u.blob_size > u.size {
        line.push_str(&format!(
            ", padded with {} zero bytes to {} (a multiple of 512)",
            u.blob_size - u.size,
            u.blob_size
        ));
    }
    line.push_str(&format!(", {rate:.1} MiB/s)"));
    if u.verified {
        line.push_str(&format!("; verified: the blob holds {} bytes", u.blob_size));
    } else {
        line.push_str("; NOT verified (the SAS cannot read)");
    }
    writeln!(out, "{}", redact(&line))
}

/// The retry notice handed to `progress`, secrets redacted.
fn retry_logger(progress: &dyn UploadProgress) -> impl Fn(&str, u32, &str) + Sync + '_ {
    move |what: &str, attempt: u32, why: &str| {
        progress.retry(&redact(&format!("rdbkit: {what}: {why}; retry {attempt}")));
    }
}

/// Runs `work(i)` for each index in `todo` on `parallel` threads; stops handing out
/// work after the first error, which it returns.
fn in_parallel<E: Send>(
    todo: &[usize],
    parallel: usize,
    work: &(dyn Fn(usize) -> Result<(), E> + Sync),
) -> Result<(), E> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let first_error: Mutex<Option<E>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..parallel.min(todo.len()).max(1) {
            scope.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&i) = todo.get(n) else { break };
                    if let Err(e) = work(i) {
                        failed.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = first_error.lock() {
                            slot.get_or_insert(e);
                        }
                        break;
                    }
                }
            });
        }
    });
    match first_error.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn upload_block_blob(
    args: &UploadOptions,
    s: &Source<'_>,
    url: &SasUrl,
    http: &Http,
    progress: &dyn UploadProgress,
    log: &mut dyn Write,
) -> Result<Uploaded, BlobError> {
    let started = Instant::now();
    let size = s.data.len() as u64;
    let block_size = choose_block_size(size, args.block_size).map_err(|m| BlobError {
        what: "plan".into(),
        status: None,
        code: None,
        message: m,
    })?;
    let name = s
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let chunks: Vec<&[u8]> = if s.data.is_empty() {
        Vec::new()
    } else {
        s.data
            .chunks(usize::try_from(block_size).unwrap_or(usize::MAX))
            .collect()
    };
    // The digests name the blocks (see the module doc) and are each Put Block's
    // Content-MD5; computed before anything is sent, so a block changed under us (the
    // file rewritten during the upload) fails with Md5Mismatch instead of mixing.
    progress.phase(&name, Phase::Hashing, size);
    let md5s: Vec<[u8; 16]> = chunks.par_iter().map(|c| Md5::digest(c).into()).collect();
    let ids: Vec<String> = md5s
        .iter()
        .enumerate()
        .map(|(i, m)| block_id(i, m))
        .collect();
    progress.phase(&name, Phase::Sending, size);
    let on_retry = retry_logger(progress);
    let blob = Blob {
        url,
        http,
        on_retry: &on_retry,
    };
    // Resume: blocks with our IDs and the right sizes are already there.
    let staged = match blob.block_list() {
        Ok(list) => list,
        // A write-only SAS cannot list blocks: upload everything instead.
        Err(e) if e.code.as_deref() == Some("AuthorizationPermissionMismatch") => {
            let _ = writeln!(
                log,
                "note: cannot list staged blocks ({}); sending every block",
                e.code.as_deref().unwrap_or("403")
            );
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let staged: HashSet<(&str, u64)> = staged.iter().map(|b| (b.id.as_str(), b.size)).collect();
    let todo: Vec<usize> = chunks
        .iter()
        .zip(&ids)
        .enumerate()
        .filter(|(_, (c, id))| !staged.contains(&(id.as_str(), c.len() as u64)))
        .map(|(i, _)| i)
        .collect();
    let already = chunks.len() - todo.len();
    if already > 0 {
        let _ = writeln!(
            log,
            "{name}: resuming: {already} of {} blocks already staged, sending {}",
            chunks.len(),
            todo.len()
        );
    }
    let bytes_sent: u64 = todo
        .iter()
        .filter_map(|&i| chunks.get(i))
        .map(|c| c.len() as u64)
        .sum();
    // The staged blocks count as done from the start.
    let done = AtomicU64::new(size - bytes_sent);
    progress.sent(done.load(Ordering::Relaxed), size);
    in_parallel(&todo, args.parallel, &|i| {
        let (Some(chunk), Some(id), Some(md5)) = (chunks.get(i), ids.get(i), md5s.get(i)) else {
            return Ok(());
        };
        blob.put_block(id, chunk, md5)?;
        let now = done.fetch_add(chunk.len() as u64, Ordering::Relaxed) + chunk.len() as u64;
        progress.sent(now, size);
        Ok(())
    })?;
    blob.put_block_list(&ids)?;
    progress.finish();
    let finish = |blob_size| {
        uploaded(
            s,
            url,
            size,
            blob_size,
            "block",
            block_size,
            chunks.len(),
            already,
            todo.len(),
            bytes_sent,
            started,
        )
    };
    let Some((blob_size, kind)) = verify_properties(&blob, log)? else {
        return Ok(Uploaded {
            verified: false,
            ..finish(size)
        });
    };
    if blob_size != size {
        return Err(BlobError {
            what: "verify".into(),
            status: None,
            code: None,
            message: format!(
                "verification failed: {} holds {blob_size} bytes after the commit, the file has {size}",
                url.without_token()
            ),
        });
    }
    if !kind.eq_ignore_ascii_case("BlockBlob") {
        let _ = writeln!(log, "warning: the service reports blob type {kind}");
    }
    Ok(finish(blob_size))
}

/// Get Blob Properties, or None (with a warning) when the SAS may not read.
fn verify_properties(
    blob: &Blob<'_>,
    log: &mut dyn Write,
) -> Result<Option<(u64, String)>, BlobError> {
    match blob.properties() {
        // HEAD answers carry no body, so a permission error may come without a code.
        Ok(p) => Ok(Some(p)),
        Err(e)
            if matches!(e.code.as_deref(), Some("AuthorizationPermissionMismatch"))
                || (e.status == Some(403) && e.code.is_none() && blob.url.lacks('r')) =>
        {
            let _ = writeln!(
                log,
                "warning: not verified: the SAS may not read the blob's properties (sp={}); add r to verify",
                blob.url.permissions().unwrap_or("?")
            );
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[allow(clippy::too_many_arguments)]
fn uploaded(
    s: &Source<'_>,
    url: &SasUrl,
    size: u64,
    blob_size: u64,
    kind: &'static str,
    block_size: u64,
    blocks: usize,
    already_staged: usize,
    sent: usize,
    bytes_sent: u64,
    started: Instant,
) -> Uploaded {
    Uploaded {
        file: s.path.to_path_buf(),
        blob: url.without_token().to_string(),
        sas: url.clone(),
        size,
        blob_size,
        kind,
        block_size,
        blocks,
        already_staged,
        sent,
        bytes_sent,
        seconds: started.elapsed().as_secs_f64(),
        verified: true,
    }
}

fn upload_page_blob(
    args: &UploadOptions,
    s: &Source<'_>,
    url: &SasUrl,
    http: &Http,
    progress: &dyn UploadProgress,
    log: &mut dyn Write,
) -> Result<Uploaded, BlobError> {
    let started = Instant::now();
    let size = s.data.len() as u64;
    let padded = size.div_ceil(PAGE) * PAGE;
    let name = s
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    progress.phase(&name, Phase::Sending, size);
    let done = AtomicU64::new(0);
    let on_retry = retry_logger(progress);
    let blob = Blob {
        url,
        http,
        on_retry: &on_retry,
    };
    blob.create_page_blob(padded)?;
    let chunk = usize::try_from(MAX_PAGE_WRITE).unwrap_or(usize::MAX);
    let ranges: Vec<&[u8]> = s.data.chunks(chunk).collect();
    let todo: Vec<usize> = (0..ranges.len()).collect();
    in_parallel(&todo, args.parallel, &|i| {
        let Some(&range) = ranges.get(i) else {
            return Ok(());
        };
        let offset = i as u64 * MAX_PAGE_WRITE;
        let aligned = (range.len() as u64).div_ceil(PAGE) * PAGE;
        if aligned == range.len() as u64 {
            blob.put_page(offset, range)?;
        } else {
            // Only the last range is short: pad it with zeros to whole pages.
            let mut last = range.to_vec();
            last.resize(usize::try_from(aligned).unwrap_or(usize::MAX), 0);
            blob.put_page(offset, &last)?;
        }
        let now = done.fetch_add(range.len() as u64, Ordering::Relaxed) + range.len() as u64;
        progress.sent(now, size);
        Ok(())
    })?;
    progress.finish();
    let finish = |blob_size| {
        uploaded(
            s,
            url,
            size,
            blob_size,
            "page",
            MAX_PAGE_WRITE,
            ranges.len(),
            0,
            ranges.len(),
            padded,
            started,
        )
    };
    let Some((blob_size, kind)) = verify_properties(&blob, log)? else {
        return Ok(Uploaded {
            verified: false,
            ..finish(padded)
        });
    };
    if blob_size != padded || !kind.eq_ignore_ascii_case("PageBlob") {
        return Err(BlobError {
            what: "verify".into(),
            status: None,
            code: None,
            message: format!(
                "verification failed: {} is a {kind} of {blob_size} bytes, expected a PageBlob of {padded}",
                url.without_token()
            ),
        });
    }
    if padded > size {
        let _ = writeln!(
            log,
            "{}: page blob padded with {} zero bytes after the RDB checksum",
            s.path.display(),
            padded - size
        );
    }
    Ok(finish(blob_size))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn block_sizes() {
        assert_eq!(choose_block_size(1000, None), Ok(DEFAULT_BLOCK));
        // 1 TiB: ceil(2^40 / 50,000) = 21,990,233 bytes -> 21 MiB rounded up.
        assert_eq!(choose_block_size(1 << 40, None), Ok(21 << 20));
        assert!(choose_block_size(1 << 40, Some(8 << 20)).is_err());
        assert!(choose_block_size(10, Some(100)).is_err());
        assert!(choose_block_size(10, Some(MAX_BLOCK + 1)).is_err());
        assert_eq!(choose_block_size(10 << 20, Some(64 << 10)), Ok(64 << 10));
        assert!(choose_block_size(50_000 * MAX_BLOCK + 1, None).is_err());
    }

    #[test]
    fn block_ids_are_fixed_length_and_name_the_content() {
        let a: [u8; 16] = Md5::digest(b"one block").into();
        let b: [u8; 16] = Md5::digest(b"another block").into();
        let ids = [block_id(0, &a), block_id(1, &a), block_id(49_999, &b)];
        assert!(
            ids.iter().all(|id| id.len() == 60 && !id.contains('=')),
            "{ids:?}"
        );
        assert_ne!(ids[0], ids[1], "the index is part of the ID");
        assert_ne!(block_id(1, &a), block_id(1, &b), "so is the content");
        assert_eq!(block_id(7, &a), block_id(7, &a));
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&ids[2])
            .unwrap();
        assert!(raw.len() <= 64 && raw.starts_with(b"rdbk00049999-"));
    }
}
