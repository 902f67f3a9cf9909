//! `rdbkit fetch --cluster`: one snapshot per master, and a manifest.
//!
//! The masters and their slots come from `CLUSTER SHARDS` (Redis 7+, Valkey), else from
//! `CLUSTER SLOTS`. Each master's snapshot is fetched as [`super::fetch_node`] does, at
//! most `jobs` at a time, into `shard-<i>.rdb` (masters in the order of their first slot)
//! in a staging directory beside the destination; `manifest.json` has the shape `convert
//! --shards` writes (file, slots, keys, bytes, SHA-256 per shard), plus each master's
//! address and node id. The directory is renamed into place only when every snapshot
//! arrived whole and checked, so it never holds part of a cluster.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use redis::Value;
use sha2::Digest;

use super::{fetch_node, FetchOptions, FetchSummary};
use crate::output::AtomicFile;
use crate::restore::conn::{error_text, int, server_error, text, tls_config, Conn};
use crate::Failure;

/// Cluster hash slots.
const SLOTS: u32 = 16384;

/// One master and the slots it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Master {
    pub host: String,
    pub port: u16,
    /// The node id, when the server said it.
    pub id: Option<String>,
    /// Inclusive ranges, sorted.
    pub slots: Vec<(u16, u16)>,
}

/// What a cluster fetch did.
#[derive(Debug, Clone)]
pub struct ClusterSummary {
    /// Per master, in file order: file name, the master, its fetch, keys, SHA-256 (hex).
    pub shards: Vec<ShardSummary>,
    /// How the masters were found: `CLUSTER SHARDS` or `CLUSTER SLOTS`.
    pub discovery: &'static str,
    pub seconds: f64,
}

#[derive(Debug, Clone)]
pub struct ShardSummary {
    pub file: String,
    pub master: Master,
    pub fetch: FetchSummary,
    pub keys: u64,
    pub sha256: String,
}

impl ClusterSummary {
    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.fetch.bytes).sum()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "discovery": self.discovery,
            "masters": self.shards.len(),
            "bytes": self.bytes(),
            "keys": self.shards.iter().map(|s| s.keys).sum::<u64>(),
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "shards": self.shards.iter().map(|s| {
                let mut v = s.fetch.to_json();
                if let Some(o) = v.as_object_mut() {
                    o.insert("file".into(), s.file.clone().into());
                    o.insert("slots".into(), slots_json(&s.master.slots));
                    o.insert("keys".into(), s.keys.into());
                    o.insert("sha256".into(), s.sha256.clone().into());
                }
                v
            }).collect::<Vec<_>>(),
        })
    }

    pub fn write_text(&self, out: &mut dyn Write, dir: &str) -> std::io::Result<()> {
        for s in &self.shards {
            let ranges: Vec<String> = s
                .master
                .slots
                .iter()
                .map(|(a, b)| format!("{a}-{b}"))
                .collect();
            writeln!(
                out,
                "{}: {} bytes, {} keys, {} from {} (slots {})",
                s.file,
                s.fetch.bytes,
                s.keys,
                s.fetch.version,
                s.fetch.node,
                ranges.join(",")
            )?;
        }
        writeln!(
            out,
            "fetched {} masters ({}), {} bytes, into {dir} with manifest.json in {:.1} s",
            self.shards.len(),
            self.discovery,
            self.bytes(),
            self.seconds
        )
    }
}

fn slots_json(slots: &[(u16, u16)]) -> serde_json::Value {
    slots
        .iter()
        .map(|(a, b)| serde_json::json!([a, b]))
        .collect()
}

/// The masters of the cluster `o.url` belongs to, sorted by first slot; every slot must
/// have one. Also the profile name `INFO server` maps to, when the server answers it.
pub fn discover(o: &FetchOptions) -> Result<(Vec<Master>, &'static str, Option<String>), Failure> {
    let tls = if o.url.tls {
        Some(tls_config(&o.tls)?)
    } else {
        None
    };
    let mut c = Conn::open(&o.url.host, o.url.port, &o.url, tls.as_ref(), o.timeout)?;
    let addr = c.addr.clone();
    let profile = text(&c.call(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")?)
        .and_then(|info| crate::restore::profile_for_server(&info).ok())
        .map(|(p, _)| p.name.to_owned());
    let shards = c.call(b"*2\r\n$7\r\nCLUSTER\r\n$6\r\nSHARDS\r\n")?;
    let (mut masters, how) = if server_error(&shards).is_none() {
        (
            from_shards(&shards, o.url.tls, &o.url.host),
            "CLUSTER SHARDS",
        )
    } else {
        let slots = c.call(b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n")?;
        if let Some(e) = server_error(&slots) {
            return Err(Failure::Refused(format!(
                "{addr}: CLUSTER SLOTS: {} (is it a cluster? without --cluster, rdbkit fetches \
                 one server)",
                error_text(&e)
            )));
        }
        (from_slots(&slots, &o.url.host), "CLUSTER SLOTS")
    };
    drop(c);
    masters.retain(|m| !m.slots.is_empty());
    for m in &mut masters {
        m.slots.sort_unstable();
    }
    masters.sort_by_key(|m| m.slots.first().copied());
    let mut covered = vec![false; SLOTS as usize];
    for m in &masters {
        for &(a, b) in &m.slots {
            for s in a..=b.min((SLOTS - 1) as u16) {
                if let Some(c) = covered.get_mut(usize::from(s)) {
                    *c = true;
                }
            }
        }
    }
    if masters.is_empty() {
        return Err(Failure::Refused(format!(
            "{addr}: {how} names no master with slots"
        )));
    }
    if let Some(s) = covered.iter().position(|c| !c) {
        return Err(Failure::Refused(format!(
            "{addr}: {how}: slot {s} has no master; the cluster is not complete, so its \
             snapshots would not hold all its data"
        )));
    }
    Ok((masters, how, profile))
}

/// The fields of a RESP2 flat key-value array or a RESP3 map.
fn fields(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(items) => items
            .chunks(2)
            .filter_map(|kv| match kv {
                [k, v] => Some((text(k)?, v)),
                _ => None,
            })
            .collect(),
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| Some((text(k)?, v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn field<'v>(f: &[(String, &'v Value)], name: &str) -> Option<&'v Value> {
    f.iter().find(|(k, _)| k == name).map(|(_, v)| *v)
}

/// A usable host: the announced one, else the address the user gave (a node that does
/// not know its own address says "?" or nothing).
fn host_or(announced: Option<String>, fallback: &str) -> String {
    announced
        .filter(|h| !h.is_empty() && h != "?")
        .unwrap_or_else(|| fallback.to_owned())
}

fn from_shards(reply: &Value, tls: bool, fallback: &str) -> Vec<Master> {
    let Value::Array(shards) = reply else {
        return Vec::new();
    };
    let mut masters = Vec::new();
    for shard in shards {
        let f = fields(shard);
        let bounds: Vec<i64> = match field(&f, "slots") {
            Some(Value::Array(b)) => b.iter().filter_map(int).collect(),
            _ => Vec::new(),
        };
        let slots: Vec<(u16, u16)> = bounds
            .chunks(2)
            .filter_map(|p| match p {
                [a, b] => Some((u16::try_from(*a).ok()?, u16::try_from(*b).ok()?)),
                _ => None,
            })
            .collect();
        let Some(Value::Array(nodes)) = field(&f, "nodes") else {
            continue;
        };
        for node in nodes {
            let n = fields(node);
            let get = |k: &str| field(&n, k).and_then(text);
            if get("role").as_deref() != Some("master") {
                continue;
            }
            let port_of = |k: &str| {
                field(&n, k)
                    .and_then(int)
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|&p| p != 0)
            };
            let port = if tls {
                port_of("tls-port").or_else(|| port_of("port"))
            } else {
                port_of("port").or_else(|| port_of("tls-port"))
            };
            let Some(port) = port else { continue };
            let host = host_or(get("endpoint").or_else(|| get("ip")), fallback);
            masters.push(Master {
                host,
                port,
                id: get("id"),
                slots: slots.clone(),
            });
        }
    }
    masters
}

fn from_slots(reply: &Value, fallback: &str) -> Vec<Master> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut masters: Vec<Master> = Vec::new();
    for r in ranges {
        let Value::Array(parts) = r else { continue };
        let (Some(a), Some(b), Some(Value::Array(node))) = (
            parts.first().and_then(int),
            parts.get(1).and_then(int),
            parts.get(2),
        ) else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u16::try_from(a), u16::try_from(b)) else {
            continue;
        };
        let host = host_or(node.first().and_then(text), fallback);
        let Some(port) = node
            .get(1)
            .and_then(int)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        let id = node.get(2).and_then(text);
        match masters
            .iter_mut()
            .find(|m| m.host == host && m.port == port)
        {
            Some(m) => m.slots.push((a, b)),
            None => masters.push(Master {
                host,
                port,
                id,
                slots: vec![(a, b)],
            }),
        }
    }
    masters
}

/// A writer that hashes what passes through it.
struct Hashing<'a> {
    inner: &'a mut AtomicFile,
    hasher: sha2::Sha256,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(buf.get(..n).unwrap_or_default());
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Keys in a fetched file (every database): the manifest says how many each holds.
fn count_keys(path: &Path) -> Result<u64, Failure> {
    let file = std::fs::File::open(path).map_err(Failure::Io)?;
    // SAFETY: the file is ours, in a staging directory with a random name; nothing else
    // writes to it while it is mapped.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(Failure::Io)?;
    let mut keys = 0;
    for item in rdb_parser::ParserBuilder::new().parse(&map)? {
        if let rdb_parser::Item::Key(_) = item? {
            keys += 1;
        }
    }
    Ok(keys)
}

/// Fetches every master of the cluster into `dir` (new or empty) with `manifest.json`.
/// `progress(bytes)` gets the bytes received over all masters so far.
pub fn fetch_cluster(
    o: &FetchOptions,
    dir: &Path,
    jobs: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ClusterSummary, Failure> {
    let started = Instant::now();
    let named = |e: std::io::Error| {
        Failure::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", dir.display()),
        ))
    };
    // Checked before any snapshot is asked for.
    let staging = crate::convert::Staging::new(dir).map_err(named)?;
    let (masters, discovery, profile) = discover(o)?;
    let names: Vec<String> = (0..masters.len())
        .map(|i| format!("shard-{i}.rdb"))
        .collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let received = AtomicU64::new(0);
    let results: Mutex<Vec<Option<Result<ShardSummary, Failure>>>> =
        Mutex::new((0..masters.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, masters.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let (Some(master), Some(name)) = (masters.get(i), names.get(i)) else {
                    return;
                };
                // After one failure the directory will not be kept: start no more.
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let result = fetch_one(o, master, &staging.path.join(name), &received, progress)
                    .map(|(fetch, keys, sha256)| ShardSummary {
                        file: name.clone(),
                        master: master.clone(),
                        fetch,
                        keys,
                        sha256,
                    });
                if result.is_err() {
                    failed.store(true, Ordering::Relaxed);
                }
                let mut all = results.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(slot) = all.get_mut(i) {
                    *slot = Some(result);
                }
            });
        }
    });
    let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
    let mut shards = Vec::new();
    for r in results.into_iter().flatten() {
        shards.push(r?);
    }
    if shards.len() != masters.len() {
        return Err(Failure::Io(std::io::Error::other(format!(
            "{}: {} of {} snapshots fetched",
            dir.display(),
            shards.len(),
            masters.len()
        ))));
    }
    let rdb_version = shards.first().map(|s| s.fetch.version.number);
    let manifest = serde_json::json!({
        "target": profile,
        "rdb_version": rdb_version,
        "source": o.url.to_string(),
        "shards": shards.iter().map(|s| serde_json::json!({
            "file": s.file,
            "slots": slots_json(&s.master.slots),
            "keys": s.keys,
            "bytes": s.fetch.bytes,
            "sha256": s.sha256,
            "node": s.fetch.node,
            "node_id": s.master.id,
            "rdb_version": s.fetch.version.to_string(),
        })).collect::<Vec<_>>(),
    });
    let mut file = AtomicFile::create(&staging.path.join("manifest.json")).map_err(named)?;
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| Failure::Io(e.into()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.commit())
        .map_err(named)?;
    staging.commit().map_err(named)?;
    Ok(ClusterSummary {
        shards,
        discovery,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// One master into `path`: (its fetch, keys, SHA-256).
fn fetch_one(
    o: &FetchOptions,
    master: &Master,
    path: &Path,
    received: &AtomicU64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(FetchSummary, u64, String), Failure> {
    let named = |e: std::io::Error| {
        Failure::Io(std::io::Error::new(
            e.kind(),
            format!("{}: {e}", path.display()),
        ))
    };
    let mut file = AtomicFile::create(path).map_err(named)?;
    let mut out = Hashing {
        inner: &mut file,
        hasher: sha2::Sha256::new(),
    };
    let mut last = 0;
    let summary = fetch_node(&master.host, master.port, o, &mut out, &mut |done, _| {
        let all = received.fetch_add(done - last, Ordering::Relaxed) + (done - last);
        last = done;
        progress(all);
    })?;
    let digest = out.hasher.finalize();
    file.commit().map_err(named)?;
    let keys = count_keys(path).map_err(|e| match e {
        Failure::Data(e) => Failure::Io(std::io::Error::other(format!(
            "{} (from {}): {e}",
            path.display(),
            summary.node
        ))),
        other => other,
    })?;
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((summary, keys, hex))
}
