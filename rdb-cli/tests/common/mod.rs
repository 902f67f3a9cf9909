//! Helpers shared by the CLI integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

use rdb_parser::ParserBuilder;
use serde_json::Value;

/// `../shared/fixtures/peers` beside the repository, or `None` with a message when this
/// checkout has no `shared/` folder (a user's fresh clone): every test that needs the
/// peer files then says it skipped them and passes on what it could check.
pub fn peers_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/peers");
    if dir.is_dir() {
        return Some(dir);
    }
    let msg = format!(
        "peer fixtures not found at {}: these tests read RDB files from other projects that \
         live beside the repository in shared/fixtures/peers; skipping",
        dir.display()
    );
    eprintln!("{msg}");
    None
}

/// The per-server fixture folders: the committed `fixtures/servers`, or the freshly
/// regenerated copy named by `RDBKIT_FIXTURES` (scripts/test.sh sets it).
pub fn fixtures_dir() -> PathBuf {
    match std::env::var_os("RDBKIT_FIXTURES") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/servers"),
    }
}

/// A fresh, empty folder for one test, named by `tag` and this process.
pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rdbkit-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
    d
}

/// Exports `data` and returns the parsed lines.
pub fn export(data: &[u8]) -> Result<Vec<Value>, rdb_cli::Failure> {
    export_with(data, &ParserBuilder::new())
}

pub fn export_with(data: &[u8], parser: &ParserBuilder) -> Result<Vec<Value>, rdb_cli::Failure> {
    let mut out = Vec::new();
    rdb_cli::export::jsonl(data, parser, &mut out, |_| {})?;
    Ok(out
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("bad JSON line: {e}")))
        .collect())
}

/// The `key` lines only.
pub fn keys(lines: &[Value]) -> Vec<&Value> {
    lines.iter().filter(|l| l["kind"] == "key").collect()
}

/// A value in a canonical order: sets sorted, hashes sorted by field, zsets by (score,
/// member), scores as f64 numbers. Lists and strings unchanged.
pub fn canonical(ty: &str, value: &Value) -> Value {
    let text = |v: &Value| v.to_string();
    match (ty, value) {
        ("set", Value::Array(items)) => {
            let mut v = items.clone();
            v.sort_by_key(text);
            Value::Array(v)
        }
        ("hash", Value::Array(items)) => {
            let mut v = items.clone();
            v.sort_by_key(|p| text(&p[0]));
            Value::Array(v)
        }
        ("zset", Value::Array(items)) => {
            let mut v: Vec<(f64, String, Value)> = items
                .iter()
                .map(|p| (score(&p[1]), text(&p[0]), p[0].clone()))
                .collect();
            v.sort_by(|a, b| a.0.total_cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
            Value::Array(
                v.into_iter()
                    .map(|(s, _, m)| serde_json::json!([m, score_value(s)]))
                    .collect(),
            )
        }
        _ => value.clone(),
    }
}

pub fn score(v: &Value) -> f64 {
    match v {
        Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn score_value(s: f64) -> Value {
    if s.is_finite() {
        serde_json::json!(s)
    } else {
        Value::String(if s > 0.0 { "inf" } else { "-inf" }.into())
    }
}

/// Compares `got` against the ground truth `want` the way tests/fixtures.rs does: `want`
/// may omit object fields a server does not report (subset matching), and `*_time_ms`
/// numbers may differ by up to 1000 ms (Redis 5.0 consumer times are derived from idle
/// times). Object fields named in `optional` are compared only when `got` has them too
/// (metadata an older format cannot store). The error names the first differing path.
pub fn matches_truth(
    want: &Value,
    got: &Value,
    path: &str,
    optional: &[&str],
) -> Result<(), String> {
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            for (k, wv) in w {
                let Some(gv) = g.get(k) else {
                    if optional.contains(&k.as_str()) {
                        continue;
                    }
                    return Err(format!("{path}.{k}: missing"));
                };
                matches_truth(wv, gv, &format!("{path}.{k}"), optional)?;
            }
            Ok(())
        }
        (Value::Array(w), Value::Array(g)) => {
            if w.len() != g.len() {
                return Err(format!(
                    "{path}: {} items expected, {} found",
                    w.len(),
                    g.len()
                ));
            }
            for (i, (wv, gv)) in w.iter().zip(g).enumerate() {
                matches_truth(wv, gv, &format!("{path}[{i}]"), optional)?;
            }
            Ok(())
        }
        (Value::Number(w), Value::Number(g)) => {
            let (w, g) = (
                w.as_f64().unwrap_or(f64::NAN),
                g.as_f64().unwrap_or(f64::NAN),
            );
            let tolerance = if path.ends_with("_time_ms") {
                1000.0
            } else {
                0.0
            };
            if w == g || (w - g).abs() <= tolerance {
                Ok(())
            } else {
                Err(format!("{path}: {w} expected, {g} found"))
            }
        }
        (w, g) if w == g => Ok(()),
        (w, g) => Err(format!("{path}: {w} expected, {g} found")),
    }
}

/// The `.rdb` files directly in `dir`, sorted.
pub fn rdb_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut rdbs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "rdb"))
        .collect();
    rdbs.sort();
    rdbs
}
