//! Vector sets against the real servers that have them (Redis 8.0 and 8.6).
//!
//! - What rdb-parser decodes from a vector set (elements, `VDIM`, attributes and the
//!   de-quantized vectors) equals what the server that wrote it answers (`VCARD`, `VDIM`,
//!   `VRANDMEMBER`, `VGETATTR`, and `VEMB` bit for bit): the committed 8.6 fixture on
//!   redis-8.6, and sets an 8.0 server writes during the test on redis-8.0.
//! - `rdbkit convert` keeps them for redis-8.0 (re-serializing 8.6's graph nodes, which
//!   8.0 refuses as they are) and the 8.0 server answers the same; an 8.0 file converted
//!   for redis-8.6 loads there the same. Targets without vector sets refuse them unless
//!   `--modules drop` (no server needed).
//!
//! Restrict with `RDBKIT_SERVERS=redis-8.0,redis-8.6`; without the servers the server
//! parts print a note and pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
mod servers;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use rdb_parser::{Item, ParserBuilder, Value};
use servers::{Entry, Reply, Resp, Server, TempDir};

/// An element's attributes and vector.
type ElementView = (Option<Vec<u8>>, Vec<f64>);

/// One vector set as a client sees it.
#[derive(Debug, Clone, PartialEq)]
struct SetView {
    dim: u64,
    elements: BTreeMap<Vec<u8>, ElementView>,
}

/// Every vector set of an RDB file, as rdb-parser decodes it.
fn decoded(data: &[u8]) -> BTreeMap<Vec<u8>, SetView> {
    let mut out = BTreeMap::new();
    let parser = ParserBuilder::new().parse(data).unwrap();
    for item in parser {
        let Item::Key(k) = item.unwrap() else {
            continue;
        };
        let Value::Module(m) = &k.value else { continue };
        let Some(set) = m.vector_set() else { continue };
        let set = set.unwrap();
        set.validate().unwrap();
        let mut elements = BTreeMap::new();
        for e in set.elements() {
            let e = e.unwrap();
            let v = e.vector().to_f32().into_iter().map(f64::from).collect();
            elements.insert(e.name().to_vec(), (e.attributes().map(<[u8]>::to_vec), v));
        }
        assert_eq!(elements.len() as u64, set.len());
        out.insert(
            k.key.to_vec(),
            SetView {
                dim: u64::from(set.dim()),
                elements,
            },
        );
    }
    out
}

fn bulk(r: &Reply) -> Option<Vec<u8>> {
    match r {
        Reply::Bulk(b) => b.clone(),
        _ => None,
    }
}

fn int(r: Reply, what: &str) -> Result<u64, String> {
    match r {
        Reply::Int(n) => u64::try_from(n).map_err(|_| format!("{what}: {n}")),
        other => Err(format!("{what}: {other:?}")),
    }
}

/// The vector sets `keys` as the server at `port` answers them.
fn from_server(port: u16, keys: &[Vec<u8>]) -> Result<BTreeMap<Vec<u8>, SetView>, String> {
    let mut c = Resp::connect(port, Duration::from_secs(10)).map_err(|e| e.to_string())?;
    let mut cmd = |args: &[&[u8]]| c.command(args).map_err(|e| e.to_string());
    let mut out = BTreeMap::new();
    for key in keys {
        let card = int(cmd(&[b"VCARD", key])?, "VCARD")?;
        let dim = int(cmd(&[b"VDIM", key])?, "VDIM")?;
        let names = match cmd(&[b"VRANDMEMBER", key, (card + 10).to_string().as_bytes()])? {
            Reply::Array(Some(items)) => items.iter().filter_map(bulk).collect::<Vec<_>>(),
            other => return Err(format!("VRANDMEMBER: {other:?}")),
        };
        if names.len() as u64 != card {
            return Err(format!(
                "VRANDMEMBER gave {} of {card} elements",
                names.len()
            ));
        }
        let mut elements = BTreeMap::new();
        for name in names {
            let attrs = bulk(&cmd(&[b"VGETATTR", key, &name])?);
            let vector = match cmd(&[b"VEMB", key, &name])? {
                Reply::Array(Some(items)) => items
                    .iter()
                    .map(|i| {
                        i.text()
                            .and_then(|t| t.parse::<f64>().ok())
                            .ok_or_else(|| format!("VEMB item {i:?}"))
                    })
                    .collect::<Result<Vec<f64>, String>>()?,
                other => return Err(format!("VEMB: {other:?}")),
            };
            elements.insert(name, (attrs, vector));
        }
        out.insert(key.clone(), SetView { dim, elements });
    }
    Ok(out)
}

/// The server named `name` in the manifest (restricted by `RDBKIT_SERVERS`), or `None`
/// with a note.
fn server_entry(name: &str) -> Option<Entry> {
    let found = servers::manifest()?.into_iter().find(|e| e.name == name);
    if found.is_none() {
        eprintln!("{name} is not among the servers of this run; skipping its part");
    }
    found
}

/// Starts `entry` on a copy of `rdb` and compares its vector sets with `want`.
fn load_and_compare(entry: &Entry, rdb: &Path, want: &BTreeMap<Vec<u8>, SetView>) {
    servers::check_rdb(entry, rdb).unwrap_or_else(|e| panic!("{e}"));
    let dir = TempDir::new(&format!("vsets-{}", entry.name));
    std::fs::copy(rdb, dir.path().join("dump.rdb")).unwrap();
    let server = Server::start(entry, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let keys: Vec<Vec<u8>> = want.keys().cloned().collect();
    let got = from_server(server.port(), &keys).unwrap_or_else(|e| panic!("{}: {e}", entry.name));
    drop(server);
    assert_same(want, &got, &entry.name);
}

/// Equal sets, vectors bit for bit (both sides are the same f32 values).
fn assert_same(want: &BTreeMap<Vec<u8>, SetView>, got: &BTreeMap<Vec<u8>, SetView>, on: &str) {
    for (key, w) in want {
        let g = &got[key];
        assert_eq!(w.dim, g.dim, "{on}: VDIM of {key:?}");
        assert_eq!(
            w.elements.keys().collect::<Vec<_>>(),
            g.elements.keys().collect::<Vec<_>>(),
            "{on}: elements of {key:?}"
        );
        for (name, (wa, wv)) in &w.elements {
            let (ga, gv) = &g.elements[name];
            assert_eq!(wa, ga, "{on}: VGETATTR {key:?} {name:?}");
            assert_eq!(wv, gv, "{on}: VEMB {key:?} {name:?}");
        }
    }
    assert_eq!(want.len(), got.len(), "{on}: set count");
}

fn fixture_8_6() -> std::path::PathBuf {
    common::fixtures_dir().join("redis-8.6/vectorsets.rdb")
}

fn rdbkit(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(servers::rdbkit_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn the_8_6_fixture_decodes_as_the_8_6_server_reads_it() {
    let Some(entry) = server_entry("redis-8.6") else {
        return;
    };
    let source = fixture_8_6();
    let want = decoded(&std::fs::read(&source).unwrap());
    assert_eq!(want.len(), 7);
    load_and_compare(&entry, &source, &want);
}

#[test]
fn converted_for_redis_8_0_the_sets_load_there_equal() {
    let Some(entry) = server_entry("redis-8.0") else {
        return;
    };
    let source = fixture_8_6();
    let want = decoded(&std::fs::read(&source).unwrap());
    let dir = TempDir::new("vsets-convert-8.0");
    let out = dir.path().join("out.rdb");
    // The default --modules (auto): vector sets are no module a redis-8.0 operator loads.
    let run = rdbkit(&[
        "convert".as_ref(),
        source.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--target".as_ref(),
        "redis-8.0".as_ref(),
        "--stream-idmp".as_ref(),
        "drop".as_ref(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let converted = std::fs::read(&out).unwrap();
    assert_eq!(&converted[..9], b"REDIS0012");
    // Same sets as the source, now in 8.0's node format.
    assert_eq!(decoded(&converted), want);
    load_and_compare(&entry, &out, &want);
}

#[test]
fn a_set_written_by_8_0_decodes_as_8_0_reads_it_and_converts_for_8_6() {
    let Some(r80) = server_entry("redis-8.0") else {
        return;
    };
    let dir = TempDir::new("vsets-written-by-8.0");
    let server = Server::start(&r80, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut c = Resp::connect(server.port(), Duration::from_secs(10)).unwrap();
    let vector = |i: usize, dim: usize| -> Vec<String> {
        (0..dim)
            .map(|j| format!("{}", ((i * 5 + j * 3) % 13) as f64 / 6.0 - 1.0))
            .collect()
    };
    for i in 0..40 {
        let name = format!("item:{i}");
        let v = vector(i, 8);
        let attrs = format!("{{\"i\":{i}}}");
        for (key, extra) in [
            ("v:q8", vec![]),
            ("v:nq", vec!["NOQUANT", "SETATTR", attrs.as_str()]),
            ("v:bin", vec!["BIN", "M", "8"]),
        ] {
            let mut args: Vec<&[u8]> = vec![b"VADD", key.as_bytes(), b"VALUES", b"8"];
            args.extend(v.iter().map(|x| x.as_bytes()));
            args.push(name.as_bytes());
            args.extend(extra.iter().map(|x| x.as_bytes()));
            let r = c.command(&args).unwrap();
            assert_eq!(r, Reply::Int(1), "VADD {key}");
        }
        let mut args: Vec<&[u8]> = vec![b"VADD", b"v:reduce", b"REDUCE", b"3", b"VALUES", b"8"];
        args.extend(v.iter().map(|x| x.as_bytes()));
        args.push(name.as_bytes());
        assert_eq!(c.command(&args).unwrap(), Reply::Int(1), "VADD REDUCE");
    }
    for i in [3, 17, 29] {
        let name = format!("item:{i}");
        assert_eq!(
            c.command(&[b"VREM", b"v:nq", name.as_bytes()]).unwrap(),
            Reply::Int(1)
        );
    }
    assert_eq!(c.command(&[b"SAVE"]).unwrap(), Reply::Status("OK".into()));
    let dump = dir.path().join("dump.rdb");
    let data = std::fs::read(&dump).unwrap();
    let want = decoded(&data);
    assert_eq!(want.len(), 4);
    assert_eq!(want[&b"v:nq"[..]].elements.len(), 37);
    assert_eq!(want[&b"v:reduce"[..]].dim, 3);
    let keys: Vec<Vec<u8>> = want.keys().cloned().collect();
    let live = from_server(server.port(), &keys).unwrap();
    drop(server);
    assert_same(&want, &live, "redis-8.0 (live)");

    // 8.0 -> 8.6: the stored sets are loaded as they are.
    let Some(r86) = server_entry("redis-8.6") else {
        return;
    };
    let out = dir.path().join("for-8.6.rdb");
    let run = rdbkit(&[
        "convert".as_ref(),
        dump.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--target".as_ref(),
        "redis-8.6".as_ref(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    load_and_compare(&r86, &out, &want);
}

#[test]
fn targets_without_vector_sets_refuse_them_unless_modules_drop() {
    let source = fixture_8_6();
    let dir = TempDir::new("vsets-refuse");
    for target in ["redis-7.4", "valkey-9.0", "azure-managed-redis"] {
        let out = dir.path().join(format!("{target}.rdb"));
        let args = |extra: &[&str]| -> Vec<std::ffi::OsString> {
            let mut a: Vec<std::ffi::OsString> = vec![
                "convert".into(),
                source.clone().into(),
                "-o".into(),
                out.clone().into(),
                "--target".into(),
                target.into(),
                "--stream-idmp".into(),
                "drop".into(),
            ];
            a.extend(extra.iter().map(Into::into));
            a
        };
        let os = |v: &[std::ffi::OsString]| -> Output {
            let refs: Vec<&std::ffi::OsStr> = v.iter().map(|s| s.as_os_str()).collect();
            rdbkit(&refs)
        };
        let refused = os(&args(&[]));
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(!refused.status.success(), "{target}: converted");
        assert!(
            err.contains("vector set") && err.contains("--modules drop"),
            "{target}: {err}"
        );
        assert!(!out.exists(), "{target}: an output was left");

        let report = dir.path().join(format!("{target}.report.jsonl"));
        let mut a = args(&["--modules", "drop", "--report"]);
        a.push(report.clone().into());
        let dropped = os(&a);
        assert!(
            dropped.status.success(),
            "{target}: {}",
            String::from_utf8_lossy(&dropped.stderr)
        );
        let text = std::fs::read_to_string(&report).unwrap();
        let lines = text.lines().filter(|l| l.contains("vector set")).count();
        assert_eq!(lines, 7, "{target}: {text}");
        // Only the plain string is left.
        let keys: Vec<Vec<u8>> = ParserBuilder::new()
            .parse(&std::fs::read(&out).unwrap())
            .unwrap()
            .filter_map(|i| match i.unwrap() {
                Item::Key(k) => Some(k.key.to_vec()),
                _ => None,
            })
            .collect();
        assert_eq!(keys, [b"plain:str".to_vec()], "{target}");
    }
}

/// `verify` decodes vector sets: a set whose header declares a dimension its vectors do
/// not have is a problem at that set's bytes, in that key.
#[test]
fn verify_finds_a_corrupt_vector_set() {
    let mut data = std::fs::read(fixture_8_6()).unwrap();
    let key = b"\x07vset:q8";
    let at = data.windows(key.len()).position(|w| w == key).unwrap() + key.len();
    // Module id (0x81 + 8 bytes), then opcode 2 and the dimension, 4.
    assert_eq!(&data[at + 9..at + 11], &[2, 4]);
    data[at + 10] = 3;
    let n = data.len();
    let crc = rdb_parser::crc64(0, &data[..n - 8]);
    data[n - 8..].copy_from_slice(&crc.to_le_bytes());
    let dir = TempDir::new("vsets-verify");
    let bad = dir.path().join("bad.rdb");
    std::fs::write(&bad, &data).unwrap();
    let out = rdbkit(&["verify".as_ref(), bad.as_os_str(), "--json".as_ref()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = json.to_string();
    assert!(text.contains("a vector of 4 bytes, 3 expected"), "{text}");
    assert_eq!(
        json.pointer("/problems/0/key").cloned().unwrap_or_default(),
        "vset:q8"
    );
    let offset = json
        .pointer("/problems/0/offset")
        .and_then(serde_json::Value::as_u64);
    assert!(offset.is_some_and(|o| o as usize > at), "{text}");
    // The fixture itself verifies clean.
    let good = rdbkit(&["verify".as_ref(), fixture_8_6().as_os_str()]);
    assert_eq!(
        good.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
}

// ---------------------------------------------------------------------------------------
// export

/// A JSON byte string (`B`): a string, or `{"base64": ...}`.
fn json_bytes(v: &serde_json::Value) -> Vec<u8> {
    match v {
        serde_json::Value::String(s) => s.as_bytes().to_vec(),
        other => {
            let b64 = other["base64"].as_str().unwrap();
            base64_decode(b64)
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            _ => 63,
        }
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk
            .iter()
            .map(|&c| if c == b'=' { 0 } else { val(c) })
            .fold(0u32, |acc, v| acc << 6 | v);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

#[test]
fn export_jsonl_carries_the_decoded_sets() {
    let source = fixture_8_6();
    let want = decoded(&std::fs::read(&source).unwrap());
    let dir = TempDir::new("vsets-jsonl");
    let out = dir.path().join("out.jsonl");
    let run = rdbkit(&[
        "export".as_ref(),
        source.as_os_str(),
        "--format".as_ref(),
        "jsonl".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let mut got = BTreeMap::new();
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["type"] != "module" {
            continue;
        }
        let value = &v["value"];
        assert_eq!(value["module"], "vectorset", "{line}");
        assert!(value.get("raw").is_none(), "{line}");
        let set = &value["vector_set"];
        let mut elements = BTreeMap::new();
        for e in set["elements"].as_array().unwrap() {
            // Each number is the shortest form of a 32-bit float: read back as one.
            let vector = e["vector"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| f64::from(x.as_f64().unwrap() as f32))
                .collect();
            let attrs = (!e["attributes"].is_null()).then(|| json_bytes(&e["attributes"]));
            elements.insert(json_bytes(&e["element"]), (attrs, vector));
        }
        let key = json_bytes(&v["key"]);
        if key == b"vset:reduce" {
            assert_eq!(set["reduce"]["input_dim"], 4, "{line}");
            assert_eq!(
                set["reduce"]["matrix"].as_array().unwrap().len(),
                8,
                "{line}"
            );
        } else {
            assert!(set["reduce"].is_null(), "{line}");
        }
        let quant = set["quantization"].as_str().unwrap();
        let expected = match key.as_slice() {
            b"vset:noquant" | b"vset:deleted" => "NOQUANT",
            b"vset:bin" => "BIN",
            _ => "Q8",
        };
        assert_eq!(quant, expected, "{line}");
        got.insert(
            key,
            SetView {
                dim: set["dim"].as_u64().unwrap(),
                elements,
            },
        );
    }
    assert_same(&want, &got, "export --format jsonl");
}

/// Splits a RESP stream of requests into their arguments.
fn requests(mut bytes: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line<'a>(b: &mut &'a [u8]) -> &'a [u8] {
        let end = b.windows(2).position(|w| w == b"\r\n").unwrap();
        let (l, rest) = b.split_at(end);
        *b = &rest[2..];
        l
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let head = line(&mut bytes);
        assert_eq!(head[0], b'*');
        let n: usize = std::str::from_utf8(&head[1..]).unwrap().parse().unwrap();
        let mut args = Vec::new();
        for _ in 0..n {
            let len_line = line(&mut bytes);
            let len: usize = std::str::from_utf8(&len_line[1..])
                .unwrap()
                .parse()
                .unwrap();
            args.push(bytes[..len].to_vec());
            bytes = &bytes[len + 2..];
        }
        out.push(args);
    }
    out
}

/// `export --format F --target T` fed to an empty T: the same sets; vectors bit for bit
/// from RESTORE payloads, within the quantization's error from VADD commands.
fn export_recreates_on(entry: &Entry, format: &str) {
    let source = fixture_8_6();
    let want = decoded(&std::fs::read(&source).unwrap());
    let dir = TempDir::new(&format!("vsets-{format}-{}", entry.name));
    let out = dir.path().join("out.resp");
    let run = rdbkit(&[
        "export".as_ref(),
        source.as_os_str(),
        "--format".as_ref(),
        format.as_ref(),
        "--target".as_ref(),
        entry.name.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let commands = requests(&std::fs::read(&out).unwrap());
    let (verb, wanted) = if format == "restore" {
        ("RESTORE", want.len())
    } else {
        (
            "VADD",
            want.values().map(|s| s.elements.len()).sum::<usize>(),
        )
    };
    let sent = commands.iter().filter(|c| c[0] == verb.as_bytes()).count();
    assert!(sent >= wanted, "{sent} {verb} for {wanted}");
    let server = Server::start(entry, dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let mut c = Resp::connect(server.port(), Duration::from_secs(10)).unwrap();
    for cmd in &commands {
        let args: Vec<&[u8]> = cmd.iter().map(Vec::as_slice).collect();
        let reply = c.command(&args).unwrap();
        assert!(
            !matches!(reply, Reply::Error(_)),
            "{:?}: {reply:?}",
            String::from_utf8_lossy(&cmd.concat())
        );
    }
    let keys: Vec<Vec<u8>> = want.keys().cloned().collect();
    let got = from_server(server.port(), &keys).unwrap_or_else(|e| panic!("{e}"));
    drop(server);
    if format == "restore" {
        assert_same(&want, &got, &format!("{} (RESTORE)", entry.name));
        return;
    }
    for (key, w) in &want {
        let g = &got[key];
        assert_eq!(w.dim, g.dim, "{}: VDIM {key:?}", entry.name);
        assert_eq!(
            w.elements.keys().collect::<Vec<_>>(),
            g.elements.keys().collect::<Vec<_>>(),
            "{}: elements of {key:?}",
            entry.name
        );
        for (name, (wa, wv)) in &w.elements {
            let (ga, gv) = &g.elements[name];
            assert_eq!(wa, ga, "{}: VGETATTR {key:?} {name:?}", entry.name);
            // Q8 keeps 127 steps of the largest component; NOQUANT float rounding.
            let scale = wv.iter().fold(0f64, |m, x| m.max(x.abs()));
            let tol = if key.as_slice() == b"vset:noquant" || key.as_slice() == b"vset:deleted" {
                1e-6 * scale
            } else {
                2.0 * scale / 127.0
            };
            for (a, b) in wv.iter().zip(gv) {
                assert!(
                    (a - b).abs() <= tol,
                    "{}: VEMB {key:?} {name:?}: {wv:?} vs {gv:?}",
                    entry.name
                );
            }
        }
    }
}

#[test]
fn export_resp_recreates_the_sets_on_8_6_and_8_0() {
    for name in ["redis-8.6", "redis-8.0"] {
        if let Some(entry) = server_entry(name) {
            export_recreates_on(&entry, "resp");
        }
    }
}

/// RESTORE payloads for 8.0 carry the graph re-serialized as 8.0 reads it.
#[test]
fn export_restore_payloads_load_on_8_6_and_8_0() {
    for name in ["redis-8.6", "redis-8.0"] {
        if let Some(entry) = server_entry(name) {
            export_recreates_on(&entry, "restore");
        }
    }
}

#[test]
fn export_resp_for_a_target_without_vector_sets_is_refused() {
    let dir = TempDir::new("vsets-resp-refused");
    let out = dir.path().join("out.resp");
    let run = rdbkit(&[
        "export".as_ref(),
        fixture_8_6().as_os_str(),
        "--format".as_ref(),
        "resp".as_ref(),
        "--target".as_ref(),
        "redis-7.4".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        err.contains("vector set") && err.contains("no VADD"),
        "{err}"
    );
}
