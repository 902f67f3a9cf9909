//! The checkpoint file of `--checkpoint` / `--resume`.

use std::io::Write;
use std::path::Path;

use super::conn::{error_text, server_error, text};
use super::run::Run;
use super::RestoreOptions;
use crate::output::AtomicFile;
use crate::resp;
use crate::Failure;

/// What `--checkpoint FILE` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checkpoint {
    /// The snapshot's size, to refuse a checkpoint of another file.
    pub source_bytes: u64,
    /// [`source_digest`] of the snapshot: another file of the same size is refused too.
    pub source_digest: u64,
    /// [`selection_digest`] of the options that decide which keys go where: a resume
    /// with other filters, db map or target would skip keys the first run never sent.
    pub selection_digest: u64,
    /// Every key numbered up to this one (file order, from 0) was acknowledged.
    pub last_acked: Option<u64>,
    /// No key numbered above this was sent.
    pub reserved: Option<u64>,
    pub complete: bool,
    /// The `run_id` of every server written to (sorted): one that restarted, or another
    /// server at the same address, has a new one.
    pub run_ids: Vec<String>,
    /// Keys without a TTL that this restore wrote and the target acknowledged, among those
    /// numbered up to `last_acked`: the target holds at least this many keys without a
    /// TTL unless it lost some.
    pub persistent_written: u64,
}

impl Checkpoint {
    pub fn read(path: &Path) -> Result<Checkpoint, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let v: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a checkpoint ({e})", path.display()))?;
        let n = |k: &str| v.get(k).and_then(serde_json::Value::as_u64);
        let required =
            |k: &str| n(k).ok_or_else(|| format!("{}: not a checkpoint (no {k})", path.display()));
        Ok(Checkpoint {
            source_bytes: required("source_bytes")?,
            source_digest: required("source_digest")?,
            selection_digest: required("selection_digest")?,
            last_acked: n("last_acked"),
            reserved: n("reserved"),
            complete: v.get("complete").and_then(serde_json::Value::as_bool) == Some(true),
            run_ids: v
                .get("run_ids")
                .and_then(serde_json::Value::as_array)
                .map(|ids| {
                    ids.iter()
                        .filter_map(|i| i.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
            persistent_written: n("persistent_written").unwrap_or(0),
        })
    }

    /// Whether a checkpoint read for `--resume` is of the same file and key selection as
    /// `fresh`, the one this run would write.
    pub(super) fn matches(&self, fresh: &Checkpoint, path: &Path) -> Result<(), String> {
        if self.source_bytes != fresh.source_bytes || self.source_digest != fresh.source_digest {
            return Err(format!(
                "{}: the checkpoint is of another file ({} bytes, digest {:016x}; this one has \
                 {} bytes, digest {:016x}); --resume continues the same snapshot only",
                path.display(),
                self.source_bytes,
                self.source_digest,
                fresh.source_bytes,
                fresh.source_digest
            ));
        }
        if self.selection_digest != fresh.selection_digest {
            return Err(format!(
                "{}: the checkpoint was made with other filters, --db-map, target db or \
                 target server; keys the first run left out would never be sent. Resume with \
                 the first run's options, or start again without --resume",
                path.display()
            ));
        }
        Ok(())
    }

    pub(super) fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut f = AtomicFile::create(path)?;
        let v = serde_json::json!({
            "source_bytes": self.source_bytes,
            "source_digest": self.source_digest,
            "selection_digest": self.selection_digest,
            "last_acked": self.last_acked,
            "reserved": self.reserved,
            "complete": self.complete,
            "run_ids": self.run_ids,
            "persistent_written": self.persistent_written,
        });
        writeln!(f, "{v}")?;
        f.commit()
    }
}

/// xxh3 of the snapshot's size, its first and its last MiB (the last 8 bytes are its
/// CRC64 when the server computed one): cheap on a 50 GB file, and a different file of
/// the same size differs in its header, AUX fields or checksum.
pub fn source_digest(data: &[u8]) -> u64 {
    const EDGE: usize = 1 << 20;
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(data.len() as u64).to_le_bytes());
    h.update(data.get(..EDGE).unwrap_or(data));
    h.update(data.get(data.len().saturating_sub(EDGE)..).unwrap_or(data));
    h.digest()
}

/// xxh3 of the options that decide which key is sent and into which database: the
/// filters (without their "now"), the db map, the target db and, outside a cluster (where
/// any node may seed the map), the target host and port.
pub fn selection_digest(o: &RestoreOptions) -> u64 {
    pub(super) fn sorted<T: std::fmt::Debug + Ord>(
        set: &Option<std::collections::HashSet<T>>,
    ) -> String {
        let mut v: Vec<&T> = set.iter().flatten().collect();
        v.sort();
        format!("{v:?}")
    }
    let f = &o.convert.filter;
    let mut modules: Vec<&String> = f.exclude_modules.iter().collect();
    modules.sort();
    let target = if o.cluster {
        format!("cluster db {}", o.url.db)
    } else {
        format!("{}:{}/{}", o.url.host, o.url.port, o.url.db)
    };
    let text = format!(
        "include {:?}\nexclude {:?}\ndbs {}\ntypes {}\nencodings {}\ndrop_expired {}\n\
         ttl {:?} {:?} {:?}\nbytes {:?} {:?}\nelements {:?} {:?}\nmodules {} {modules:?}\n\
         db_map {:?}\ntarget {target}",
        f.include,
        f.exclude,
        sorted(&f.dbs),
        sorted(&f.types),
        sorted(&f.encodings),
        f.drop_expired,
        f.ttl,
        f.min_ttl_ms,
        f.max_ttl_ms,
        f.min_bytes,
        f.max_bytes,
        f.min_elements,
        f.max_elements,
        sorted(&f.include_modules),
        o.convert.db_map,
    );
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

/// What the target is: the sorted `run_id`s of its servers, and how many keys without a
/// TTL they hold (INFO keyspace: `keys` minus `expires`, every db).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) run_ids: Vec<String>,
    pub(super) persistent_keys: u64,
}

impl Run<'_> {
    /// Writes the checkpoint with `last_acked`, first folding the written keys it now
    /// covers into its count.
    pub(super) fn save_checkpoint(&mut self, path: &Path) -> Result<(), Failure> {
        let beyond = match self.checkpoint.last_acked {
            Some(a) => self.written_beyond.split_off(&(a + 1)),
            None => std::mem::take(&mut self.written_beyond),
        };
        let covered = std::mem::replace(&mut self.written_beyond, beyond);
        self.checkpoint.persistent_written += covered.len() as u64;
        self.checkpoint
            .write(path)
            .map_err(|e| super::conn::io_err(&path.display().to_string(), "checkpoint", e))
    }

    /// The target's identity, asked on every connection open now (with nothing in
    /// flight): the first server, or every master of a cluster.
    pub(super) fn identity(&mut self) -> Result<Identity, Failure> {
        let mut id = Identity::default();
        for i in 0..self.conns.len() {
            self.drain(i)?;
            let c = self.conn(i)?;
            let mut info = |section: &[u8]| -> Result<String, Failure> {
                let reply = c.call(&resp::Cmd::new("INFO").arg(section).finish_ref())?;
                match server_error(&reply) {
                    Some(e) => Err(Failure::Refused(format!(
                        "{}: INFO {}: {} (--resume and --checkpoint record the target's \
                         run_id and key count)",
                        c.addr,
                        String::from_utf8_lossy(section),
                        error_text(&e)
                    ))),
                    None => Ok(text(&reply).unwrap_or_default()),
                }
            };
            let server = info(b"server")?;
            let keyspace = info(b"keyspace")?;
            if let Some(run_id) = info_field(&server, "run_id") {
                id.run_ids.push(run_id.to_owned());
            }
            id.persistent_keys += persistent_keys(&keyspace);
        }
        id.run_ids.sort();
        id.run_ids.dedup();
        Ok(id)
    }
}

fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
        .map(str::trim)
}

/// The keys without a TTL in an `INFO keyspace` reply (`db0:keys=5,expires=2,...`).
fn persistent_keys(keyspace: &str) -> u64 {
    let mut total = 0u64;
    for line in keyspace.lines().filter(|l| l.starts_with("db")) {
        let Some((_, fields)) = line.split_once(':') else {
            continue;
        };
        let field = |name: &str| {
            fields
                .split(',')
                .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        total += field("keys").saturating_sub(field("expires"));
    }
    total
}

/// `--resume`: the checkpoint `c` was made against `then`'s servers; `now` is what the
/// target is. A server that restarted (new run_id) may have lost what was acknowledged,
/// and a target with fewer keys without a TTL than the restore wrote has lost some.
pub(super) fn same_target(c: &Checkpoint, now: &Identity, path: &Path) -> Result<(), String> {
    let force = "--resume-any-target continues anyway (keys acknowledged before are then \
                 not checked), or start again without --resume";
    if !c.run_ids.is_empty() && c.run_ids != now.run_ids {
        return Err(format!(
            "{}: the target is not the server the checkpoint was made against: run_id {} \
             then, {} now. It restarted (and may have lost the keys acknowledged before) or \
             --to names another server; {force}",
            path.display(),
            c.run_ids.join(","),
            now.run_ids.join(",")
        ));
    }
    if now.persistent_keys < c.persistent_written {
        return Err(format!(
            "{}: the target holds {} keys without a TTL, fewer than the {} this restore \
             wrote and had acknowledged before it stopped: it was flushed or lost keys; \
             {force}",
            path.display(),
            now.persistent_keys,
            c.persistent_written
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyspace_counts_keys_without_ttl() {
        let info =
            "# Keyspace\r\ndb0:keys=10,expires=3,avg_ttl=5\r\ndb9:keys=4,expires=0,avg_ttl=0\r\n";
        assert_eq!(persistent_keys(info), 11);
        assert_eq!(persistent_keys("# Keyspace\r\n"), 0);
        let then = Checkpoint {
            run_ids: vec!["a".into()],
            persistent_written: 11,
            ..Checkpoint::default()
        };
        let p = Path::new("ck.json");
        let now = |id: &str, keys| Identity {
            run_ids: vec![id.into()],
            persistent_keys: keys,
        };
        assert!(same_target(&then, &now("a", 11), p).is_ok());
        let e = same_target(&then, &now("b", 11), p)
            .err()
            .unwrap_or_default();
        assert!(
            e.contains("run_id a then, b now") && e.contains("--resume-any-target"),
            "{e}"
        );
        let e = same_target(&then, &now("a", 10), p)
            .err()
            .unwrap_or_default();
        assert!(e.contains("holds 10 keys") && e.contains("the 11"), "{e}");
    }
}
