//! The checkpoint file of `--checkpoint` / `--resume`.

use std::io::Write;
use std::path::Path;

use super::RestoreOptions;
use crate::output::AtomicFile;

/// What `--checkpoint FILE` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
