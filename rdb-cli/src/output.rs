//! Output files that appear whole or not at all, and never in place of an input.
//!
//! The policy every writing command follows:
//! - an output that is one of the command's inputs (same device and inode, through
//!   symlinks and hard links), or a directory that holds one, is refused before any work;
//! - `-` is standard output; a FIFO or a character device (`/dev/stdout` included) is
//!   written to directly and never replaced; any other file that is not a regular file is
//!   refused;
//! - a regular output is written to a temporary file in the destination's directory, with a
//!   random name, created exclusively without following links and given the mode (and,
//!   where permitted, the owner) of the file it replaces; it is flushed, synced and renamed
//!   into place, then the directory is synced. A symlink to a regular file is followed: the
//!   file it points to is replaced and the link stays.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Temporary outputs (files and staging directories) to remove if the process is
/// interrupted: on SIGINT, SIGTERM or SIGHUP no destructor runs.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// (device, inode) of every file this process reads.
static INPUTS: Mutex<Vec<(u64, u64)>> = Mutex::new(Vec::new());

/// Registers an input: an output that turns out to be this file is refused.
pub fn protect_input(meta: &std::fs::Metadata) {
    let mut inputs = INPUTS.lock().unwrap_or_else(|e| e.into_inner());
    let id = (meta.dev(), meta.ino());
    if !inputs.contains(&id) {
        inputs.push(id);
    }
}

fn is_input(meta: &std::fs::Metadata) -> bool {
    let inputs = INPUTS.lock().unwrap_or_else(|e| e.into_inner());
    inputs.contains(&(meta.dev(), meta.ino()))
}

/// A refused output; the caller names the path, as for any I/O error.
fn refused(why: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string())
}

/// Where an output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// `-`: standard output.
    Stdout,
    /// A FIFO or character device: written to directly.
    Stream(PathBuf),
    /// A regular file (new, or replaced whole): the path after following symlinks.
    File(PathBuf),
}

/// Applies the output policy to `path` without creating anything: the command calls it
/// for each of its outputs before it starts, so a refused output costs no work.
pub fn check_destination(path: &Path) -> std::io::Result<Destination> {
    if path.as_os_str() == "-" {
        return Ok(Destination::Stdout);
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(path).is_ok() {
                return Err(refused(
                    "is a symbolic link to nothing; give the file it should create",
                ));
            }
            return Ok(Destination::File(path.to_path_buf()));
        }
        Err(e) => return Err(e),
    };
    if is_input(&meta) {
        return Err(refused(
            "is an input of this command (the same file, maybe through a link); write the \
             output somewhere else",
        ));
    }
    let kind = meta.file_type();
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() || kind.is_char_device() {
        Ok(Destination::Stream(path.to_path_buf()))
    } else if kind.is_file() {
        Ok(Destination::File(std::fs::canonicalize(path)?))
    } else if kind.is_dir() {
        Err(refused("is a directory; give a file name"))
    } else {
        Err(refused(
            "is neither a regular file, a FIFO nor a character device",
        ))
    }
}

/// For outputs that are directories (`--shards`, `fetch --cluster`): refuses one that is
/// not a directory or holds an input.
pub fn check_directory(path: &Path) -> std::io::Result<()> {
    if path.as_os_str() == "-" {
        return Err(refused("a directory output cannot be standard output"));
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    if !meta.is_dir() {
        return Err(refused("exists and is not a directory"));
    }
    // Directory outputs are written only into a new or empty directory, so a directory
    // with anything below its top level is refused anyway; naming an input among its
    // entries just says why more usefully.
    for entry in std::fs::read_dir(path)?.flatten() {
        let Ok(m) = std::fs::metadata(entry.path()) else {
            continue;
        };
        if is_input(&m) {
            return Err(refused(&format!(
                "holds {}, an input of this command; write the shards somewhere else",
                entry.path().display()
            )));
        }
    }
    Ok(())
}

/// Creates `path` with `create` and marks it for removal should the process be interrupted
/// before [`commit_rename`] or [`finished`] is called with it. Creating under the lock the
/// signal handler holds means the handler sees every temporary output that exists, and no
/// new one appears while it removes them (the shards inside a staging directory included).
pub fn create_unfinished<T>(
    path: &Path,
    create: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut paths = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    let created = create(path)?;
    paths.push(path.to_path_buf());
    Ok(created)
}

/// `path` was removed: an interruption leaves it alone now.
pub fn finished(path: &Path) {
    let mut paths = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    paths.retain(|p| p != path);
}

/// Renames the unfinished `temp` to `dest` under the lock the signal handler takes, so an
/// interruption either removes `temp` before the rename or finds it committed: it never
/// runs between the two. `before` runs under the lock too (e.g. removing an empty
/// directory the rename replaces).
pub fn commit_rename(
    temp: &Path,
    dest: &Path,
    before: impl FnOnce() -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut paths = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    before()?;
    std::fs::rename(temp, dest)?;
    paths.retain(|p| p != temp);
    drop(paths);
    sync_parent(dest);
    Ok(())
}

/// Syncs the directory holding `path`, so a rename survives a crash (best effort: some
/// file systems refuse to sync a directory).
fn sync_parent(path: &Path) {
    if let Ok(dir) = File::open(parent_of(path)) {
        let _ = dir.sync_all();
    }
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A name beside `dest` no one can guess: `.<name>.<random>.rdbkit.tmp`.
pub fn temp_name(dest: &Path) -> PathBuf {
    use std::hash::{BuildHasher, Hasher};
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    // RandomState is seeded from the OS's random source once per process, then counted
    // up; mixing in the time and a counter makes each name of the process differ.
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    parent_of(dest).join(format!(".{name}.{:016x}.rdbkit.tmp", h.finish()))
}

/// Creates a new temporary file beside `dest`: exclusively (an existing file or a planted
/// symlink of that name fails the call instead of being written through), with the mode
/// and owner of the file it will replace, or 0666 less the umask for a new one.
fn create_temp(dest: &Path) -> std::io::Result<(PathBuf, File)> {
    let old = std::fs::metadata(dest).ok();
    let mut last = None;
    for _ in 0..16 {
        let temp = temp_name(dest);
        let opened = create_unfinished(&temp, |p| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o666)
                .custom_flags(O_NOFOLLOW | O_CLOEXEC)
                .open(p)
        });
        match opened {
            Ok(file) => {
                if let Some(old) = &old {
                    // As root: keep the replaced file's owner; elsewhere this may be refused,
                    // and the new file is the caller's, as a fresh write would be.
                    let _ = std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()));
                    file.set_permissions(std::fs::Permissions::from_mode(old.mode() & 0o7777))?;
                }
                return Ok((temp, file));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no free temporary name")))
}

// Linux's values (the same on every architecture Rust supports there but alpha/parisc/
// sparc, where rdbkit is not built): std has no constants and libc is no dependency.
const O_NOFOLLOW: i32 = 0o400000;
const O_CLOEXEC: i32 = 0o2000000;

/// On SIGINT, SIGTERM or SIGHUP: removes every unfinished output and exits with 130, so an
/// interrupted command leaves no temporary file behind (a committed output stays whole).
pub fn clean_up_when_interrupted() -> Result<(), ctrlc::Error> {
    ctrlc::set_handler(|| {
        // Held until exit: no thread creates or commits an output meanwhile.
        let paths = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
        for path in paths.iter() {
            let _ = if path.is_dir() {
                std::fs::remove_dir_all(path)
            } else {
                std::fs::remove_file(path)
            };
        }
        eprintln!("rdbkit: interrupted; unfinished outputs removed");
        std::process::exit(130);
    })
}

/// An output that appears whole or not at all (see the module doc for the policy): a
/// regular file is written under a temporary name and renamed into place by
/// [`AtomicFile::commit`]; dropped without committing, it is removed, so a failed or
/// interrupted command never leaves a partial output behind. Standard output, FIFOs and
/// character devices are written to directly.
#[derive(Debug)]
pub struct AtomicFile {
    sink: Sink,
}

#[derive(Debug)]
enum Sink {
    Replace {
        temp: PathBuf,
        dest: PathBuf,
        writer: Option<BackgroundWriter>,
    },
    Stream(std::io::BufWriter<Box<dyn WriteDebug>>),
}

/// `Write` that can be shown in `Debug` output.
trait WriteDebug: Write + Send + std::fmt::Debug {}
impl<T: Write + Send + std::fmt::Debug> WriteDebug for T {}

impl AtomicFile {
    /// Opens the output `dest` as the policy says; refuses an input of this process.
    pub fn create(dest: &Path) -> std::io::Result<Self> {
        let sink = match check_destination(dest)? {
            Destination::Stdout => Sink::Stream(std::io::BufWriter::with_capacity(
                1 << 20,
                Box::new(std::io::stdout()),
            )),
            Destination::Stream(path) => {
                let file = std::fs::OpenOptions::new().write(true).open(&path)?;
                Sink::Stream(std::io::BufWriter::with_capacity(1 << 20, Box::new(file)))
            }
            Destination::File(dest) => {
                let (temp, file) = create_temp(&dest)?;
                let writer = match BackgroundWriter::new(file) {
                    Ok(w) => w,
                    Err(e) => {
                        let _ = std::fs::remove_file(&temp);
                        finished(&temp);
                        return Err(e);
                    }
                };
                Sink::Replace {
                    temp,
                    dest,
                    writer: Some(writer),
                }
            }
        };
        Ok(AtomicFile { sink })
    }

    /// Flushes, syncs and renames the file into place; on failure the temporary file is
    /// removed too.
    pub fn commit(mut self) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Stream(w) => w.flush(),
            Sink::Replace { temp, dest, writer } => {
                let result = match writer.take() {
                    Some(w) => w.finish().and_then(|file| file.sync_all()),
                    None => Ok(()),
                }
                .and_then(|()| commit_rename(temp, dest, || Ok(())));
                if result.is_err() {
                    let _ = std::fs::remove_file(&*temp);
                    finished(temp);
                }
                result
            }
        }
    }

    fn writer(&mut self) -> std::io::Result<&mut dyn Write> {
        match &mut self.sink {
            Sink::Stream(w) => Ok(w),
            Sink::Replace {
                writer: Some(w), ..
            } => Ok(w),
            Sink::Replace { writer: None, .. } => {
                Err(std::io::Error::other("file already committed"))
            }
        }
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writer()?.write(buf)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.writer()?.write_all(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.sink {
            Sink::Replace { writer: None, .. } => Ok(()),
            _ => self.writer()?.flush(),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        match &mut self.sink {
            // What reached a stream cannot be taken back; send what is buffered.
            Sink::Stream(w) => {
                let _ = w.flush();
            }
            Sink::Replace { temp, writer, .. } => {
                if let Some(w) = writer.take() {
                    // The thread stops before the file goes; what is still buffered is
                    // not written.
                    w.abandon();
                    let _ = std::fs::remove_file(&*temp);
                    finished(temp);
                }
            }
        }
    }
}

/// Bytes per buffer handed to the writing thread.
const BUFFER_BYTES: usize = 4 << 20;
/// A write at least this large goes to the file at once, from the caller: copying it into
/// buffers first would cost more than the overlap gains (a passthrough's runs of keys).
const DIRECT_BYTES: usize = 1 << 20;
/// Buffers in flight: the memory bound is (IN_FLIGHT + 2) * BUFFER_BYTES.
const IN_FLIGHT: usize = 2;

/// A buffered file writer whose system calls run on a thread of its own: the caller only
/// copies into a buffer, and the kernel's copy of a full buffer (a third of an export's
/// time) overlaps the caller's next work instead of stalling it. Every write is
/// positioned (`pwrite`), so the thread's buffers and the caller's direct writes land in
/// place in any order.
#[derive(Debug)]
struct BackgroundWriter {
    file: File,
    buf: Vec<u8>,
    /// Where `buf` goes in the file.
    at: u64,
    full: Option<SyncSender<(u64, Vec<u8>)>>,
    empty: Receiver<Vec<u8>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl BackgroundWriter {
    fn new(file: File) -> std::io::Result<Self> {
        let (full, full_rx) = sync_channel::<(u64, Vec<u8>)>(IN_FLIGHT);
        let (empty_tx, empty) = sync_channel::<Vec<u8>>(IN_FLIGHT + 1);
        let theirs = file.try_clone()?;
        let thread = std::thread::Builder::new()
            .name("rdbkit-writer".into())
            .spawn(move || {
                for (at, mut buf) in full_rx {
                    // On error the thread ends: the next hand-over fails and reports it.
                    theirs.write_all_at(&buf, at)?;
                    buf.clear();
                    let _ = empty_tx.try_send(buf);
                }
                Ok(())
            })?;
        Ok(BackgroundWriter {
            file,
            buf: Vec::with_capacity(BUFFER_BYTES),
            at: 0,
            full: Some(full),
            empty,
            thread: Some(thread),
        })
    }

    /// Hands the buffer to the thread and takes a spare one back.
    fn hand_over(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let spare = self
            .empty
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(BUFFER_BYTES));
        let buf = std::mem::replace(&mut self.buf, spare);
        let at = self.at;
        self.at += buf.len() as u64;
        let sent = self.full.as_ref().map(|tx| tx.send((at, buf)).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped: its error says why.
        Err(match self.join() {
            Err(e) => e,
            Ok(()) => std::io::Error::other("the writing thread stopped"),
        })
    }

    fn join(&mut self) -> std::io::Result<()> {
        self.full = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("the writing thread panicked"))),
            None => Err(std::io::Error::other("the writing thread stopped")),
        }
    }

    /// Drops what is buffered and waits for the thread to end.
    fn abandon(mut self) {
        self.buf.clear();
        let _ = self.join();
    }

    /// Writes what is buffered, waits for the thread and returns the file.
    fn finish(mut self) -> std::io::Result<File> {
        self.hand_over()?;
        self.join()?;
        Ok(self.file)
    }
}

impl Write for BackgroundWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.write_all(data)?;
        Ok(data.len())
    }

    fn write_all(&mut self, mut data: &[u8]) -> std::io::Result<()> {
        if data.len() >= DIRECT_BYTES {
            self.hand_over()?;
            self.file.write_all_at(data, self.at)?;
            self.at += data.len() as u64;
            return Ok(());
        }
        while !data.is_empty() {
            let room = BUFFER_BYTES.saturating_sub(self.buf.len());
            let (now, rest) = data.split_at(room.min(data.len()));
            self.buf.extend_from_slice(now);
            data = rest;
            if self.buf.len() >= BUFFER_BYTES {
                self.hand_over()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.hand_over()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    /// Small writes (buffered, written by the thread) and large ones (written at once)
    /// interleaved land in order.
    #[test]
    fn mixed_writes_land_in_order_and_appear_on_commit() {
        let dir = std::env::temp_dir().join(format!("rdbkit-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("out.bin");
        let mut expected = Vec::new();
        let mut out = AtomicFile::create(&dest).unwrap();
        for i in 0..200u32 {
            let len = match i % 7 {
                0 => DIRECT_BYTES + i as usize,
                3 => BUFFER_BYTES / 3,
                _ => 1 + (i as usize * 37) % 5000,
            };
            let piece: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
            out.write_all(&piece).unwrap();
            expected.extend_from_slice(&piece);
        }
        assert!(!dest.exists(), "nothing at the destination before commit");
        out.commit().unwrap();
        assert!(std::fs::read(&dest).unwrap() == expected);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn dropped_uncommitted_leaves_nothing() {
        let dir = std::env::temp_dir().join(format!("rdbkit-output-drop-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut out = AtomicFile::create(&dir.join("out.bin")).unwrap();
        out.write_all(&vec![7u8; BUFFER_BYTES * 3]).unwrap();
        drop(out);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A write error on the thread reaches the caller (at a later write or at the end).
    #[test]
    fn the_threads_write_error_is_reported() {
        let full = File::options().write(true).open("/dev/full").unwrap();
        let mut w = BackgroundWriter::new(full).unwrap();
        let mut failed = false;
        for _ in 0..16 {
            if w.write_all(&[1u8; 100_000]).is_err() {
                failed = true;
                break;
            }
        }
        let at_end = w.finish();
        assert!(failed || at_end.is_err());
        if let Err(e) = at_end {
            assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
        }
    }
}
