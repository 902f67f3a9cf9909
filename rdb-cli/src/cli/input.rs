//! Snapshot inputs: a file (memory-mapped), `-` (standard input), or either of them
//! gzip-compressed, recognised by its magic bytes. Streams and compressed files are
//! spooled to an unlinked temporary file that is then mapped, so every command sees one
//! `&[u8]` and memory stays flat whatever the size. Every input is registered with the
//! output policy, which then refuses to write over it.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use rdb_cli::Failure;

/// gzip's first two bytes (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Set once an input was decompressed: byte offsets in errors then count in the
/// decompressed data, and the error says so.
static DECOMPRESSED: AtomicBool = AtomicBool::new(false);

/// Whether any input of this run was decompressed.
pub fn any_decompressed() -> bool {
    DECOMPRESSED.load(Ordering::Relaxed)
}

/// One input's bytes.
#[derive(Debug)]
pub struct Input {
    bytes: Bytes,
}

#[derive(Debug)]
enum Bytes {
    Mapped(memmap2::Mmap),
    Read(Vec<u8>),
}

impl Input {
    /// Opens `path` (`-` is standard input), decompressing gzip.
    pub fn open(path: &Path) -> Result<Input, Failure> {
        let at = |e: std::io::Error| io_context(e, path);
        if path.as_os_str() == "-" {
            let stdin = std::io::stdin();
            if std::io::IsTerminal::is_terminal(&stdin) {
                // Reading would wait for a snapshot typed on the keyboard.
                return Err(Failure::Usage(
                    "- reads a snapshot from standard input, which is a terminal here: pipe \
                     one in, e.g. `redis-cli --rdb - | rdbkit info -`"
                        .into(),
                ));
            }
            #[cfg(unix)]
            {
                use std::os::fd::AsFd;
                if let Ok(owned) = stdin.as_fd().try_clone_to_owned() {
                    if let Ok(meta) = File::from(owned).metadata() {
                        rdb_cli::output::protect_input(&meta);
                    }
                }
            }
            let mut reader = std::io::BufReader::with_capacity(1 << 20, stdin.lock());
            return Input::spooled(&mut reader).map_err(at);
        }
        let mut file = File::open(path).map_err(at)?;
        let meta = file.metadata().map_err(at)?;
        if meta.is_dir() {
            return Err(Failure::Usage(format!(
                "{}: is a directory, not a snapshot file",
                path.display()
            )));
        }
        rdb_cli::output::protect_input(&meta);
        let mut magic = [0u8; 2];
        let got = read_up_to(&mut file, &mut magic).map_err(at)?;
        if got == 2 && magic == GZIP_MAGIC {
            file.seek(SeekFrom::Start(0)).map_err(at)?;
            return Input::spooled(&mut std::io::BufReader::new(file)).map_err(at);
        }
        if !meta.is_file() {
            // A FIFO or a device: read it as a stream (the two bytes above included).
            let head = std::io::Cursor::new(magic.get(..got).unwrap_or_default().to_vec());
            let mut stream = std::io::BufReader::new(head.chain(file));
            return Input::spooled(&mut stream).map_err(at);
        }
        Ok(Input {
            bytes: map_or_read(&file).map_err(at)?,
        })
    }

    /// Opens `path` as it is, compressed or not (upload sends files byte for byte).
    pub fn open_as_is(path: &Path) -> Result<Input, Failure> {
        let at = |e: std::io::Error| io_context(e, path);
        let file = File::open(path).map_err(at)?;
        let meta = file.metadata().map_err(at)?;
        if !meta.is_file() {
            return Err(Failure::Usage(format!(
                "{}: not a regular file; upload sends files whose size is known",
                path.display()
            )));
        }
        rdb_cli::output::protect_input(&meta);
        Ok(Input {
            bytes: map_or_read(&file).map_err(at)?,
        })
    }

    /// Opens each of `paths`.
    pub fn open_all(paths: &[PathBuf]) -> Result<Vec<Input>, Failure> {
        if paths.iter().filter(|p| p.as_os_str() == "-").count() > 1 {
            return Err(Failure::Usage(
                "standard input (-) can be read only once".into(),
            ));
        }
        paths.iter().map(|p| Input::open(p)).collect()
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.bytes {
            Bytes::Mapped(m) => m,
            Bytes::Read(v) => v,
        }
    }

    /// Copies `reader` (decompressing gzip) into an unlinked temporary file and maps it.
    fn spooled(reader: &mut dyn std::io::BufRead) -> std::io::Result<Input> {
        let gzip = reader.fill_buf()?.starts_with(&GZIP_MAGIC);
        let mut spool = tempfile::tempfile()?;
        {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, &mut spool);
            if gzip {
                // Concatenated members, as gzip -c a b > c writes, decode as one stream.
                let mut decoder = flate2::bufread::MultiGzDecoder::new(reader);
                spool_copy(&mut decoder, &mut out, "gzip data is corrupt")?;
            } else {
                spool_copy(reader, &mut out, "reading")?;
            }
            out.flush()?;
        }
        let input = Input {
            bytes: map_or_read(&spool)?,
        };
        if gzip {
            DECOMPRESSED.store(true, Ordering::Relaxed);
            let head = input.bytes().get(..9).unwrap_or(input.bytes());
            if !head.starts_with(b"REDIS") && !head.starts_with(b"VALKEY") {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the gzip data holds no RDB snapshot (it starts with {:?}, not REDIS \
                         or VALKEY)",
                        String::from_utf8_lossy(head)
                    ),
                ));
            }
        }
        Ok(input)
    }
}

/// Copies `from` to the spool, saying which side failed: a corrupt input and a full disk
/// under the temporary directory call for different fixes.
///
/// A stream that does not begin as a snapshot does (REDIS or VALKEY) is copied no further
/// than its first bytes, which the parser then reports: `/dev/zero` or a wrong pipe must
/// not fill the temporary directory first.
fn spool_copy(from: &mut dyn Read, to: &mut dyn Write, reading: &str) -> std::io::Result<()> {
    let mut buf = vec![0u8; 1 << 16];
    let mut head: Vec<u8> = Vec::with_capacity(9);
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(std::io::Error::new(e.kind(), format!("{reading}: {e}"))),
        };
        if head.len() < 9 {
            let more = buf.get(..n.min(9 - head.len())).unwrap_or_default();
            head.extend_from_slice(more);
            // Decided once the header's 9 bytes are in: enough for the parser's message.
            if head.len() == 9 && !head.starts_with(b"REDIS") && !head.starts_with(b"VALKEY") {
                return to.write_all(buf.get(..n.min(64)).unwrap_or_default());
            }
        }
        to.write_all(buf.get(..n).unwrap_or_default())
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "writing the temporary copy in {}: {e} (set TMPDIR to a roomier place)",
                        std::env::temp_dir().display()
                    ),
                )
            })?;
    }
}

fn read_up_to(file: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(buf.get_mut(got..).unwrap_or_default())? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn map_or_read(file: &File) -> std::io::Result<Bytes> {
    // An empty file cannot be mapped; the parser reports it as truncated.
    if file.metadata()?.len() == 0 {
        return Ok(Bytes::Read(Vec::new()));
    }
    // SAFETY: the map is read-only and lives as long as `Input`. If another process
    // truncates the file while we read it, the kernel may raise SIGBUS; rdbkit is meant
    // for snapshots that are no longer being written (a finished SAVE/BGSAVE output), and
    // the spooled copies of streams are unlinked files no other process can reach.
    #[allow(unsafe_code)]
    let mapped = unsafe { memmap2::Mmap::map(file) };
    match mapped {
        Ok(m) => Ok(Bytes::Mapped(m)),
        Err(_) => {
            let mut v = Vec::new();
            let mut f = file.try_clone()?;
            f.seek(SeekFrom::Start(0))?;
            f.read_to_end(&mut v)?;
            Ok(Bytes::Read(v))
        }
    }
}

/// An I/O error with the path it concerns (SAS URLs given as paths are redacted).
pub fn io_context(e: std::io::Error, path: &Path) -> Failure {
    // Escaped as part names are: a file name cannot send terminal escape sequences.
    let shown = rdb_cli::parts::Part::file(path).shown();
    let shown = rdb_cli::azure::sas::redact(&shown);
    Failure::Io(std::io::Error::new(e.kind(), format!("{shown}: {e}")))
}
