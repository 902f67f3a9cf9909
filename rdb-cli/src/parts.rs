//! Several snapshots read as one: a cluster's shard backups given one by one, or a
//! directory written by `convert --shards` or `fetch --cluster` with its `manifest.json`.
//! Each part keeps the slot ranges its manifest gives, so a command can report keys that
//! sit outside them (a shard that holds keys it does not own loses them on import).

use std::path::{Component, Path, PathBuf};

use rdb_writer::slot::{key_slot, SlotRange};

use crate::Failure;

/// One input of a multi-file run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Where to read it (`-` is standard input).
    pub path: PathBuf,
    /// The slot ranges its manifest gives, inclusive; `None` without a manifest.
    pub slots: Option<Vec<SlotRange>>,
}

impl Part {
    /// A file given on its own: no slot ranges to check.
    pub fn file(path: impl Into<PathBuf>) -> Part {
        Part {
            path: path.into(),
            slots: None,
        }
    }

    /// The name reports use for this part: the path as the user gave it.
    pub fn name(&self) -> String {
        self.path.display().to_string()
    }

    /// Whether `key` hashes to a slot this part owns (always, without a manifest).
    pub fn owns(&self, key: &[u8]) -> bool {
        match &self.slots {
            None => true,
            Some(ranges) => {
                let slot = key_slot(key);
                ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&slot))
            }
        }
    }
}

/// Each argument as a part, except directories: the files their `manifest.json` lists
/// (`shards[].file`, relative to the directory, in its order) with their `slots`.
pub fn expand(args: &[PathBuf]) -> Result<Vec<Part>, Failure> {
    let mut out = Vec::new();
    for arg in args {
        if arg.as_os_str() != "-" && arg.is_dir() {
            out.extend(read_manifest(arg)?);
        } else {
            out.push(Part::file(arg.clone()));
        }
    }
    Ok(out)
}

/// The parts `dir/manifest.json` lists.
pub fn read_manifest(dir: &Path) -> Result<Vec<Part>, Failure> {
    let path = dir.join("manifest.json");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Failure::Usage(format!(
                "{}: a directory without manifest.json; give its .rdb files",
                dir.display()
            ))
        } else {
            Failure::Io(std::io::Error::new(
                e.kind(),
                format!("{}: {e}", path.display()),
            ))
        }
    })?;
    parse_manifest(dir, &text).map_err(|why| Failure::Usage(format!("{}: {why}", path.display())))
}

fn parse_manifest(dir: &Path, text: &str) -> Result<Vec<Part>, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let shards = v
        .get("shards")
        .and_then(|s| s.as_array())
        .ok_or("no \"shards\" list")?;
    let mut parts = Vec::new();
    for s in shards {
        let name = s
            .get("file")
            .and_then(|f| f.as_str())
            .ok_or("a shard without a \"file\" name")?;
        // Only names inside the directory: a manifest must not point elsewhere.
        let inside = Path::new(name)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
        if !inside {
            return Err(format!("shard file {name:?} is not inside the directory"));
        }
        let slots = match s.get("slots") {
            None | Some(serde_json::Value::Null) => None,
            Some(list) => Some(slot_ranges(list).ok_or_else(|| {
                format!("shard {name:?}: \"slots\" is not a list of [first, last] slot pairs")
            })?),
        };
        parts.push(Part {
            path: dir.join(name),
            slots,
        });
    }
    if parts.is_empty() {
        return Err("lists no shard files".into());
    }
    Ok(parts)
}

/// `[[lo, hi], ...]` with 0 ≤ lo ≤ hi ≤ 16383.
fn slot_ranges(list: &serde_json::Value) -> Option<Vec<SlotRange>> {
    let slot = |v: &serde_json::Value| v.as_u64().filter(|&n| n < 16384).map(|n| n as u16);
    list.as_array()?
        .iter()
        .map(|pair| match pair.as_array()?.as_slice() {
            [lo, hi] => {
                let (lo, hi) = (slot(lo)?, slot(hi)?);
                (lo <= hi).then_some((lo, hi))
            }
            _ => None,
        })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_gives_files_and_slots() {
        let text = r#"{"shards": [
            {"file": "shard-0.rdb", "slots": [[0, 5460]]},
            {"file": "shard-1.rdb", "slots": [[5461, 10922], [16000, 16383]]},
            {"file": "shard-2.rdb"}
        ]}"#;
        let parts = parse_manifest(Path::new("d"), text).unwrap();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[0].path, Path::new("d/shard-0.rdb"));
        assert_eq!(parts[1].slots, Some(vec![(5461, 10922), (16000, 16383)]));
        assert_eq!(parts[2].slots, None);
        // "foo" is slot 12182: shard 1 does not own it, a part without slots owns all.
        assert!(!parts[0].owns(b"foo"));
        assert!(!parts[1].owns(b"foo"));
        assert!(parts[2].owns(b"foo"));
        assert!(parts[0].owns(b"{user1000}.following")); // slot 3443
    }

    #[test]
    fn a_manifest_is_refused_when_it_points_outside_or_lies() {
        let bad = [
            r#"{"shards": [{"file": "../x.rdb"}]}"#,
            r#"{"shards": [{"file": "/etc/passwd"}]}"#,
            r#"{"shards": [{"file": "a.rdb", "slots": [[10, 5]]}]}"#,
            r#"{"shards": [{"file": "a.rdb", "slots": [[0, 16384]]}]}"#,
            r#"{"shards": []}"#,
            r#"{"files": []}"#,
            "not json",
        ];
        for text in bad {
            assert!(parse_manifest(Path::new("d"), text).is_err(), "{text}");
        }
    }
}
