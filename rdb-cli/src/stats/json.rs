//! `rdbkit stats --json`: the schema is `docs/stats-json.md`.

use serde_json::{json, Map, Value};

use super::collect::{SizeHistogram, Stats, TopKey, Totals, TTL_BUCKETS};
use super::whole::{PartStats, Report};

/// Schema version of the document; bumped when a field changes meaning or goes away.
pub const SCHEMA: u32 = 1;

/// A byte string the way docs/export-jsonl.md writes one: text when UTF-8, else base64.
pub fn bytes_value(b: &[u8]) -> Value {
    let mut out = Vec::new();
    crate::json::bytes(&mut out, b);
    serde_json::from_slice(&out).unwrap_or(Value::Null)
}

fn totals(t: &Totals) -> Value {
    json!({"keys": t.keys, "elements": t.elements, "bytes": t.bytes, "memory": t.memory})
}

fn sizes(h: &SizeHistogram) -> Value {
    json!({
        "count": h.count,
        "quantile_error": SizeHistogram::QUANTILE_ERROR,
        "sum": h.sum,
        "mean": (h.mean() * 10.0).round() / 10.0,
        "p50": h.quantile(0.5),
        "p90": h.quantile(0.9),
        "p99": h.quantile(0.99),
        "max": h.max,
        "histogram": h.octaves().iter().map(|&(lo, hi, n)| json!([lo, hi, n])).collect::<Vec<_>>(),
    })
}

fn top(keys: &[TopKey]) -> Value {
    Value::Array(
        keys.iter()
            .map(|k| {
                let mut v = json!({
                    "db": k.db,
                    "key": bytes_value(&k.key),
                    "type": k.type_name,
                    "encoding": k.encoding,
                    "bytes": k.bytes,
                    "elements": k.elements,
                    "memory": k.memory,
                });
                if let (Some(digest), Some(o)) = (k.key_digest, v.as_object_mut()) {
                    // Only for a name longer than top_key_prefix: other lists are unchanged.
                    o.insert("key_shortened".into(), json!(true));
                    o.insert("key_length".into(), json!(k.key_len));
                    o.insert("key_xxh3_128".into(), json!(format!("{digest:032x}")));
                }
                v
            })
            .collect(),
    )
}

impl Stats {
    pub fn to_json(&self) -> Value {
        let dbs: Map<String, Value> = self
            .sections
            .dbs
            .iter()
            .map(|(n, d)| {
                (
                    n.to_string(),
                    json!({"keys": d.keys, "expires": d.expires, "expired": d.expired,
                           "bytes": d.bytes, "memory": d.memory}),
                )
            })
            .collect();
        let mut types = Map::new();
        for (t, tot) in &self.sections.kinds.types {
            let mut v = totals(tot);
            let encodings: Map<String, Value> = self
                .sections
                .kinds
                .encodings
                .iter()
                .filter(|((ty, _), _)| ty == t)
                .map(|((_, e), tot)| ((*e).to_owned(), totals(tot)))
                .collect();
            if let Some(o) = v.as_object_mut() {
                o.insert("encodings".into(), Value::Object(encodings));
            }
            types.insert((*t).to_owned(), v);
        }
        let ttl: Map<String, Value> = TTL_BUCKETS
            .iter()
            .zip(self.sections.ttl.iter())
            .map(|(n, c)| ((*n).to_owned(), json!(c)))
            .collect();
        let prefixes: Vec<Value> = self
            .sections
            .prefixes
            .biggest(self.options.top.max(10))
            .iter()
            .map(|(depth, p, t)| {
                json!({"prefix": bytes_value(p), "depth": depth, "keys": t.keys,
                       "bytes": t.bytes, "memory": t.memory})
            })
            .collect();
        let shards = self.shard_balance(self.options.shards).map(|b| {
            json!({
                "count": b.keys.len(),
                "ranges": b.ranges.iter().map(|r| r.iter().map(|&(a, z)| json!([a, z])).collect::<Vec<_>>()).collect::<Vec<_>>(),
                "keys": b.keys,
                "bytes": b.bytes,
                "memory": b.memory,
                "keys_max_over_mean": round3(b.keys_ratio),
                "bytes_max_over_mean": round3(b.bytes_ratio),
                "memory_max_over_mean": round3(b.memory_ratio),
            })
        });
        let used_slots = self.sections.slots.keys.iter().filter(|&&k| k > 0).count();
        json!({
            "schema": SCHEMA,
            "file_bytes": self.file_bytes,
            "magic": self.magic,
            "rdb_version": self.rdb_version,
            "aux": self.aux.iter().map(|(k, v)| json!([bytes_value(k), bytes_value(v)])).collect::<Vec<_>>(),
            "checksum": self.checksum,
            "now_ms": self.now_ms,
            "now_source": self.now_source,
            "memory_model": {
                "layout": format!("{:?}", self.model.layout),
                "allocator": format!("{:?}", self.model.allocator),
            },
            "keys": self.keys,
            "bytes": self.bytes(),
            "memory": self.memory(),
            "dbs": dbs,
            "types": types,
            "key_sizes": sizes(&self.sections.sizes.keys),
            "value_sizes": sizes(&self.sections.sizes.values),
            "memory_sizes": sizes(&self.sections.sizes.memory),
            "element_counts": sizes(&self.sections.sizes.elements),
            "top_by_bytes": top(&self.sections.top.bytes.sorted()),
            "top_by_elements": top(&self.sections.top.elements.sorted()),
            "top_by_memory": top(&self.sections.top.memory.sorted()),
            "prefixes": {
                "separators": bytes_value(&self.options.separators),
                "depth": self.options.depth,
                "nodes": self.sections.prefixes.live_nodes(),
                "collapsed_keys": self.sections.prefixes.collapsed_keys,
                "overflowed_keys": self.sections.prefixes.overflowed,
                "biggest": prefixes,
            },
            "ttl": ttl,
            "slots": {
                "used": used_slots,
                "hottest": self.hottest_slots(10).iter().map(|&(s, k, b)| json!({"slot": s, "keys": k, "bytes": b})).collect::<Vec<_>>(),
                "keys": self.sections.slots.keys.iter().enumerate().filter(|(_, &k)| k > 0).map(|(s, &k)| json!([s, k, self.sections.slots.bytes.get(s).copied().unwrap_or(0)])).collect::<Vec<_>>(),
                "tagged_keys": self.sections.tags.tagged_keys,
                "distinct_tags": self.sections.tags.map.len(),
                "untracked_tag_keys": self.sections.tags.untracked_keys,
                "top_tags": self.top_tags(10).iter().map(|(t, k, b)| json!({"tag": bytes_value(t), "keys": k, "bytes": b})).collect::<Vec<_>>(),
            },
            "shards": shards,
            "modules": {
                "types": self.sections.modules.0,
                "aux": self.module_aux,
            },
            "functions": {"libraries": self.functions.len(), "names": self.functions},
            "hash_field_ttls": {
                "keys": self.sections.field_ttls.keys,
                "fields_with_ttl": self.sections.field_ttls.fields,
                "fields_in_ttl_capable_hashes": self.sections.field_ttls.fields_in_capable_hashes,
            },
            "streams": {
                "keys": self.sections.streams.keys,
                "entries": self.sections.streams.entries,
                "groups": self.sections.streams.groups,
                "consumers": self.sections.streams.consumers,
                "pending": self.sections.streams.pending,
                "max_group_pending": self.sections.streams.max_pending,
            },
        })
    }
}

impl Report {
    /// The whole's document; with several files it adds `parts`.
    pub fn to_json(&self) -> Value {
        let mut v = self.whole.to_json();
        if !self.parts.is_empty() {
            if let Some(o) = v.as_object_mut() {
                let parts = self.parts.iter().map(PartStats::to_json).collect();
                o.insert("parts".into(), Value::Array(parts));
            }
        }
        v
    }
}

fn ranges(r: &[(u16, u16)]) -> Value {
    Value::Array(r.iter().map(|&(a, z)| json!([a, z])).collect())
}

impl PartStats {
    pub fn to_json(&self) -> Value {
        let outside = self.manifest_slots.as_ref().map(|_| {
            json!({
                "keys": self.outside.keys,
                "examples": self.outside.examples.iter().map(|(db, key, slot)| {
                    json!({"db": db, "key": bytes_value(key), "slot": slot})
                }).collect::<Vec<_>>(),
            })
        });
        json!({
            "file": self.name,
            "file_bytes": self.file_bytes,
            "magic": self.magic,
            "rdb_version": self.rdb_version,
            "checksum": self.checksum,
            "keys": self.keys,
            "bytes": self.bytes,
            "memory": self.memory,
            "slots": ranges(&self.slots),
            "manifest_slots": self.manifest_slots.as_deref().map(ranges),
            "outside_manifest": outside,
        })
    }
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
