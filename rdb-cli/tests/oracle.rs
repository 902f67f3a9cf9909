//! The oracle: `rdbkit check --target T` says "loads" (exit 0) only when the real server T,
//! started with `sanitize-dump-payload yes`, loads the file; whenever `rdbkit convert
//! --target T` exits 0, T loads its output. Table-driven over committed fixtures and
//! mutations built here (each written under a freshly computed CRC64), on every server
//! of the manifest that has a profile. The table is `docs/check-oracle.md`: written with
//! `RDBKIT_BLESS=1`, compared otherwise (when every server is installed and selected).

mod common;
mod servers;

use std::path::{Path, PathBuf};
use std::process::Command;

use rdb_parser::format::type_id;
use rdb_parser::Version;
use rdb_writer::{encode, value, Compression, Writer, ZiplistBuilder};
use servers::{Entry, Server, TempDir};

/// The module types of the redis-stack build the redis-7.4 entry loads.
const STACK_MODULES: &str =
    "ReJSON-RL,ft_index0,MBbloom--,MBbloomCF,TopK-TYPE,CMSk-TYPE,TDIS-TYPE,TSDB-TYPE,scdtype00";

fn file(version: Version, keys: &[(u8, &[u8], Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), version).unwrap_or_else(|e| panic!("{e}"));
    w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
    for (t, k, v) in keys {
        w.key_value(*t, k, v).unwrap_or_else(|e| panic!("{e}"));
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// Replaces the first occurrence of `from` in `bytes` by `to` (same length).
fn patch(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let at = bytes
        .windows(from.len())
        .position(|w| w == from)
        .unwrap_or_else(|| panic!("{from:?} not found"));
    bytes
        .get_mut(at..at + to.len())
        .unwrap_or_else(|| panic!("{to:?} does not fit"))
        .copy_from_slice(to);
    bytes
}

fn string(s: &[u8]) -> Vec<u8> {
    value::string(s, Compression::None)
}

/// `redis-7.0/types.rdb` with its stream's stored length one more than its entries,
/// under a fresh CRC64 (Valkey 9 refuses such a stream).
fn stream_length_off() -> Vec<u8> {
    let path = servers::repo_root().join("fixtures/servers/redis-7.0/types.rdb");
    let mut data = std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut at = None;
    for item in rdb_parser::Parser::new(&data).unwrap_or_else(|e| panic!("{e}")) {
        if let Ok(rdb_parser::Item::Key(e)) = item {
            if let rdb_parser::Value::Stream(st) = &e.value {
                // Layout: node count, the nodes, then the length.
                let start = e.raw_value.as_ptr() as usize - data.as_ptr() as usize;
                let pos = start + encode::length_size(st.node_count()) + st.nodes_raw().len();
                at = Some((pos, st.length));
                break;
            }
        }
    }
    let (pos, len) = at.unwrap_or_else(|| panic!("no stream in {}", path.display()));
    let (mut old, mut new) = (Vec::new(), Vec::new());
    encode::length(&mut old, len);
    encode::length(&mut new, len + 1);
    assert_eq!(
        data.get(pos..pos + old.len()),
        Some(&old[..]),
        "stream layout"
    );
    assert_eq!(old.len(), new.len());
    data.get_mut(pos..pos + new.len())
        .unwrap_or_else(|| panic!("short"))
        .copy_from_slice(&new);
    let body = data.len() - 8;
    let crc = rdb_parser::crc64(0, data.get(..body).unwrap_or_default());
    data.get_mut(body..)
        .unwrap_or_else(|| panic!("short"))
        .copy_from_slice(&crc.to_le_bytes());
    data
}

/// A Redis 7.0 release-candidate function library (opcode 246) beside one key.
fn pre_ga_function() -> Vec<u8> {
    let mut w = Writer::new(Vec::new(), Version::redis(10)).unwrap_or_else(|e| panic!("{e}"));
    let mut f = vec![rdb_parser::format::opcode::FUNCTION_PRE_GA];
    encode::string(&mut f, b"mylib", Compression::None);
    encode::string(&mut f, b"LUA", Compression::None);
    encode::length(&mut f, 0);
    encode::string(
        &mut f,
        b"redis.register_function('f', function() return 1 end)",
        Compression::None,
    );
    w.raw(&f).unwrap_or_else(|e| panic!("{e}"));
    w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
    w.key_value(type_id::STRING, b"plain", &string(b"value"))
        .unwrap_or_else(|e| panic!("{e}"));
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

/// The mutations, one per encoding class: (name, file).
fn mutations() -> Vec<(&'static str, Vec<u8>)> {
    let ok = |e: Result<Vec<u8>, rdb_writer::Error>| e.unwrap_or_else(|e| panic!("{e}"));
    let plain = (type_id::STRING, &b"plain"[..], string(b"value"));
    // A listpack entry "f1" whose back-length says 4 bytes instead of 3.
    let lp = ok(value::hash_listpack(
        &[("f1", "v1"), ("f2", "v2")],
        Compression::None,
    ));
    let lp_bad = patch(lp, &[0x82, b'f', b'1', 0x03], &[0x82, b'f', b'1', 0x04]);
    // A ziplist entry whose previous-entry length is 5 instead of 3.
    let mut zl = ZiplistBuilder::new();
    for e in [&b"a"[..], b"x1", b"b", b"x2"] {
        zl.push(e);
    }
    let zl = ok(zl.finish());
    let zl_bad = patch(
        zl.clone(),
        &[0x00, 0x01, b'a', 0x03],
        &[0x00, 0x01, b'a', 0x05],
    );
    let mut zl_val = Vec::new();
    encode::string(&mut zl_val, &zl_bad, Compression::None);
    // An LZF string whose back-reference reaches before the start of the output.
    let lzf = {
        let data = [0x00, b'a', 0x20, 0x05];
        let mut v = vec![0xC3];
        encode::length(&mut v, data.len() as u64);
        encode::length(&mut v, 4);
        v.extend_from_slice(&data);
        v
    };
    // A zipmap declaring 2 pairs and holding 1.
    let zipmap = string(&[2, 1, b'f', 1, 0, b'v', 0xFF]);
    // A quicklist v2 with one PLAIN node of 0 bytes.
    let mut plain_node = Vec::new();
    encode::length(&mut plain_node, 1);
    encode::length(&mut plain_node, 1);
    encode::length(&mut plain_node, 0);
    // An empty set (KeyDB writes such keys): Redis 7.0+ skips it on load.
    let mut empty_set = Vec::new();
    encode::length(&mut empty_set, 0);
    let v9 = Version::redis(9);
    let v10 = Version::redis(10);
    vec![
        ("clean-rdb9", file(v9, std::slice::from_ref(&plain))),
        (
            "listpack-backlen",
            file(
                v10,
                &[plain.clone(), (type_id::HASH_LISTPACK, b"h", lp_bad)],
            ),
        ),
        (
            "ziplist-prevlen",
            file(v9, &[plain.clone(), (type_id::HASH_ZIPLIST, b"h", zl_val)]),
        ),
        (
            "lzf-backref",
            file(v9, &[plain.clone(), (type_id::STRING, b"s", lzf)]),
        ),
        (
            "zipmap-count",
            file(v9, &[plain.clone(), (type_id::HASH_ZIPMAP, b"h", zipmap)]),
        ),
        (
            "plain-node-empty",
            file(
                v10,
                &[plain.clone(), (type_id::LIST_QUICKLIST_2, b"l", plain_node)],
            ),
        ),
        (
            "duplicate-key",
            file(
                v9,
                &[
                    plain.clone(),
                    (type_id::STRING, b"k", string(b"1")),
                    (type_id::STRING, b"k", string(b"2")),
                ],
            ),
        ),
        ("stream-length", stream_length_off()),
        ("function-pre-ga", pre_ga_function()),
        (
            "empty-set",
            file(v9, &[plain, (type_id::SET, b"empty", empty_set)]),
        ),
    ]
}

/// The committed fixtures in the table: every server's richest file, and the module file.
fn fixtures() -> Vec<(String, Vec<u8>)> {
    let root = servers::repo_root().join("fixtures/servers");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        for name in ["types.rdb", "modules.rdb"] {
            let p = dir.join(name);
            if let Ok(data) = std::fs::read(&p) {
                let label = p.strip_prefix(&root).unwrap_or(&p).display().to_string();
                out.push((label, data));
            }
        }
    }
    out
}

fn rdbkit(args: &[&str]) -> std::process::Output {
    Command::new(servers::rdbkit_bin())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Whether `entry`'s server loads `data`.
fn loads(entry: &Entry, data: &[u8], tag: &str) -> Result<(), String> {
    let dir = TempDir::new(tag);
    std::fs::write(dir.path().join("dump.rdb"), data).unwrap_or_else(|e| panic!("{e}"));
    Server::start(entry, dir.path()).map(drop)
}

struct Row {
    file: String,
    server: String,
    check: i32,
    server_loads: bool,
    convert: i32,
    converted_loads: Option<bool>,
    /// With every loss allowed (the flags `check` names for exit 1).
    lossy: i32,
    lossy_loads: Option<bool>,
}

/// Every flag that accepts a loss.
const LOSSY_FLAGS: &[&str] = &[
    "--on-conflict",
    "last",
    "--allow-empty-keys",
    "--field-ttls",
    "drop",
    "--functions",
    "drop",
    "--modules",
    "drop",
];

fn run_case(entry: &Entry, label: &str, data: &[u8], work: &Path) -> Row {
    let input = work.join("in.rdb");
    std::fs::write(&input, data).unwrap_or_else(|e| panic!("{e}"));
    let input_s = input.display().to_string();
    let mut args = vec!["check", &input_s, "--target", &entry.name];
    if !entry.modules.is_empty() {
        args.extend(["--with-modules", STACK_MODULES]);
    }
    let check = rdbkit(&args).status.code().unwrap_or(-1);
    let server_loads = loads(entry, data, "oracle").is_ok();
    let convert = |extra: &[&str]| -> (i32, Option<bool>) {
        let output = work.join("out.rdb");
        let _ = std::fs::remove_file(&output);
        let out_s = output.display().to_string();
        let mut args = vec!["convert", &input_s, "-o", &out_s, "--target", &entry.name];
        args.extend(extra);
        let code = rdbkit(&args).status.code().unwrap_or(-1);
        let loads = (code == 0).then(|| {
            let out = std::fs::read(&output).unwrap_or_else(|e| panic!("{e}"));
            loads(entry, &out, "oracle-out").is_ok()
        });
        (code, loads)
    };
    // The server loads redis-stack's modules: say so, as a user would.
    let keep: &[&str] = if entry.modules.is_empty() {
        &[]
    } else {
        &["--modules", "keep"]
    };
    let (convert_code, converted_loads) = convert(keep);
    let (lossy, lossy_loads) = convert(LOSSY_FLAGS);
    Row {
        file: label.to_string(),
        server: entry.name.clone(),
        check,
        server_loads,
        convert: convert_code,
        converted_loads,
        lossy,
        lossy_loads,
    }
}

fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "# `rdbkit check` and `rdbkit convert` against real servers\n\n\
         Generated by `rdb-cli/tests/oracle.rs` (`RDBKIT_BLESS=1 cargo test -p rdb-cli --test \
         oracle`); the test fails when the verdicts change. Every server runs with \
         `sanitize-dump-payload yes` where it has the setting (Redis 6.2+, Valkey).\n\n\
         `check` exit codes: 0 loads as it is, 1 loads after `rdbkit convert` (with the flags \
         it lists), 3 cannot load, 2 usage or I/O error. The rule the test enforces: `check` \
         exits 0 only where the server loads the file, and wherever `convert --target` (no \
         other flag) exits 0 the server loads its output. A `check` of 1 or 3 where the server \
         loads the file is allowed (the pre-flight may be stricter than a loader; e.g. Redis \
         before 6.2 has no deep sanitization).\n\n\
         Mutations (built by the test, each under a fresh CRC64): `listpack-backlen` (a hash \
         listpack entry's back-length), `ziplist-prevlen` (a hash ziplist entry's previous \
         length), `lzf-backref` (an LZF back-reference before the output's start), \
         `zipmap-count` (a zipmap's header count), `plain-node-empty` (a quicklist PLAIN node \
         of 0 bytes), `duplicate-key`, `empty-set` (KeyDB's empty keys), `stream-length` \
         (redis-7.0/types.rdb with its stream's stored length one more than its entries), \
         `function-pre-ga` (a Redis 7.0 release-candidate function library), `clean-rdb9` (a \
         control).\n\n\
         `convert, lossy` runs with every flag that accepts a loss (`--on-conflict last \
         --allow-empty-keys --field-ttls drop --functions drop --modules drop`).\n\n\
         | file | server | check exit | server loads | convert exit | server loads it | \
         convert, lossy | server loads it |\n\
         |---|---|---|---|---|---|---|---|\n",
    );
    for r in rows {
        let shown = |l: Option<bool>| match l {
            Some(true) => "yes",
            Some(false) => "NO",
            None => "-",
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
            r.file,
            r.server,
            r.check,
            if r.server_loads { "yes" } else { "no" },
            r.convert,
            shown(r.converted_loads),
            r.lossy,
            shown(r.lossy_loads),
        ));
    }
    s
}

#[test]
fn check_never_says_loads_where_the_server_refuses() {
    let Some(entries) = servers::manifest() else {
        return;
    };
    let filtered = std::env::var_os("RDBKIT_SERVERS").is_some();
    let entries: Vec<Entry> = entries
        .into_iter()
        .filter(|e| rdb_writer::TargetProfile::named(&e.name).is_some())
        .collect();
    let mut cases: Vec<(String, Vec<u8>)> = fixtures();
    cases.extend(mutations().into_iter().map(|(n, d)| (n.to_string(), d)));
    let work = TempDir::new("oracle-work");
    let mut rows = Vec::new();
    let mut wrong = Vec::new();
    for entry in &entries {
        for (label, data) in &cases {
            let row = run_case(entry, label, data, work.path());
            if row.check == 0 && !row.server_loads {
                wrong.push(format!(
                    "{label} on {}: check says loads, the server refuses",
                    row.server
                ));
            }
            if row.converted_loads == Some(false) || row.lossy_loads == Some(false) {
                wrong.push(format!(
                    "{label} on {}: convert exited 0, the server refuses its output",
                    row.server
                ));
            }
            if ![0, 1, 3].contains(&row.check) {
                wrong.push(format!(
                    "{label} on {}: check exited {}",
                    row.server, row.check
                ));
            }
            rows.push(row);
        }
    }
    let text = table(&rows);
    let doc = servers::repo_root().join("docs/check-oracle.md");
    if std::env::var_os("RDBKIT_BLESS").is_some() {
        std::fs::write(&doc, &text).unwrap_or_else(|e| panic!("{e}"));
    } else if !filtered {
        let committed = std::fs::read_to_string(&doc).unwrap_or_default();
        assert!(
            committed == text,
            "docs/check-oracle.md differs from this run's table (run with RDBKIT_BLESS=1 to \
             rewrite it):\n{text}"
        );
    }
    assert!(wrong.is_empty(), "{}\n\n{text}", wrong.join("\n"));
}
