//! Output files that appear whole or not at all.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread::JoinHandle;

/// Temporary outputs (files and staging directories) to remove if the process is
/// interrupted: on SIGINT, SIGTERM or SIGHUP no destructor runs.
static UNFINISHED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Creates `path` with `create` and marks it for removal should the process be interrupted
/// before [`finished`] is called with it. Creating under the lock the signal handler holds
/// means the handler sees every temporary output that exists, and no new one appears
/// while it removes them (the shards inside a staging directory included).
pub fn create_unfinished<T>(
    path: &Path,
    create: impl FnOnce(&Path) -> std::io::Result<T>,
) -> std::io::Result<T> {
    let mut paths = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    let created = create(path)?;
    paths.push(path.to_path_buf());
    Ok(created)
}

/// `path` is renamed into place or removed: an interruption leaves it alone now.
pub fn finished(path: &Path) {
    let mut paths = UNFINISHED.lock().unwrap_or_else(|e| e.into_inner());
    paths.retain(|p| p != path);
}

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

/// A file written under a temporary name in the destination's directory and renamed into
/// place by [`AtomicFile::commit`]. Dropped without committing, it is removed, so a failed
/// or interrupted command never leaves a partial output behind.
#[derive(Debug)]
pub struct AtomicFile {
    temp: PathBuf,
    dest: PathBuf,
    writer: Option<BackgroundWriter>,
}

impl AtomicFile {
    pub fn create(dest: &Path) -> std::io::Result<Self> {
        let dir = match dest.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "out".into());
        let temp = dir.join(format!(".{name}.rdbkit-{}.tmp", std::process::id()));
        let file = create_unfinished(&temp, |p| File::create(p))?;
        Ok(AtomicFile {
            temp,
            dest: dest.to_path_buf(),
            writer: Some(BackgroundWriter::new(file)?),
        })
    }

    /// Flushes, syncs and renames the file into place; on failure the temporary file is
    /// removed too.
    pub fn commit(mut self) -> std::io::Result<()> {
        let result = self.flush_sync_rename();
        if result.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        finished(&self.temp);
        result
    }

    fn flush_sync_rename(&mut self) -> std::io::Result<()> {
        if let Some(w) = self.writer.take() {
            let file = w.finish()?;
            file.sync_all()?;
        }
        std::fs::rename(&self.temp, &self.dest)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.writer {
            Some(w) => w.write(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.write_all(buf),
            None => Err(std::io::Error::other("file already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.writer {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            // The thread stops before the file goes; what is still buffered is not written.
            w.abandon();
            let _ = std::fs::remove_file(&self.temp);
            finished(&self.temp);
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
