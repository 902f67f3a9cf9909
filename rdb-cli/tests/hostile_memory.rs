//! Peak memory on small hostile files: each file is valid, a few KB to a few MB on disk,
//! and built here (LZF makes tiny files with huge logical sizes). Each command runs as the
//! real `rdbkit` binary and its peak resident memory is read from the kernel's own
//! accounting of the child (`wait4` rusage `ru_maxrss`), then compared with the bound of
//! issue 17: 64 MB plus the values the command must hold at once (one per worker thread).
//!
//! `ru_maxrss` of a child spawned with vfork (as std does) starts at this process's own
//! peak (the kernel records the old address space's high-water mark at exec). So the
//! files are built without large buffers (LZF runs written by hand, big files written in
//! pieces), and when `ru_maxrss` is not above this process's peak, the child's own
//! `VmHWM`, polled every 5 ms from /proc while it runs, stands in for it.
#![allow(unsafe_code)] // `wait4`, for the child's rusage: std does not expose it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdb_parser::format::type_id;
use rdb_parser::Version;
use rdb_writer::encode::{self, Compression};
use rdb_writer::{ListpackBuilder, Writer};

mod common;

const MB: u64 = 1 << 20;
/// The fixed part of the bound.
const BASE: u64 = 64 * MB;
/// Worker threads every run uses, so the bound does not depend on the machine.
const THREADS: u64 = 2;
/// Slack for the allocator's rounding and the binary's own pages.
const MARGIN: u64 = 8 * MB;

fn rdbkit() -> &'static str {
    env!("CARGO_BIN_EXE_rdbkit")
}

/// Runs `rdbkit --threads 2 args...` with its output thrown away; returns the exit status
/// and the child's peak resident bytes. A child past `kill_above` is killed (the test
/// fails either way; this keeps a regression from eating the machine).
fn peak_of(args: &[&str], kill_above: u64) -> (Option<i32>, u64) {
    let threads = THREADS.to_string();
    let child = Command::new(rdbkit())
        .arg("--threads")
        .arg(&threads)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn rdbkit: {e}"));
    let own = vm_hwm(std::process::id() as libc::pid_t).unwrap_or(u64::MAX);
    let pid = child.id() as libc::pid_t;
    let _ = child; // reaped by wait4 below, not by std
    let mut killed = false;
    let mut polled = 0;
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: an all-zero rusage is a valid value of this plain C struct.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `pid` is our own unreaped child; both pointers are to live locals.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            // ru_maxrss is in KiB on Linux.
            let rusage = (usage.ru_maxrss as u64) * 1024;
            // No sample (a child done within 5 ms): the masked figure, an upper bound.
            let peak = if rusage > own || polled == 0 {
                rusage
            } else {
                polled
            };
            let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
            if killed {
                return (None, peak.max(kill_above));
            }
            return (code, peak);
        }
        assert!(r == 0, "wait4: {}", std::io::Error::last_os_error());
        let hwm = vm_hwm(pid).unwrap_or(0);
        polled = polled.max(hwm);
        if !killed && hwm > kill_above {
            // Not reaped yet, so the pid is still this child's.
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The peak resident size so far, from /proc (only to stop a runaway child early).
fn vm_hwm(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs each command on `file` and checks its peak against 64 MB + what that command
/// must hold at once. Reports every command before failing.
fn check(name: &str, file: &Path, commands: &[(&[&str], u64)]) {
    let path = file
        .to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 temp path"));
    let mut failures = Vec::new();
    for &(args, held) in commands {
        let bound = BASE + held + MARGIN;
        let mut full: Vec<&str> = args.to_vec();
        full.insert(1, path);
        let (code, peak) = peak_of(&full, bound * 4);
        eprintln!(
            "{name}: rdbkit {}: exit {code:?}, peak {:.1} MB (bound {:.1} MB)",
            args.join(" "),
            peak as f64 / MB as f64,
            bound as f64 / MB as f64,
        );
        if code != Some(0) {
            failures.push(format!("{}: exit {code:?}", args.join(" ")));
        } else if peak > bound {
            failures.push(format!(
                "{}: peak {} MB over the bound {} MB",
                args.join(" "),
                peak / MB,
                bound / MB
            ));
        }
    }
    assert!(failures.is_empty(), "{name}: {failures:?}");
}

fn write_file(tag: &str, bytes: &[u8]) -> PathBuf {
    let dir = common::temp_dir(tag);
    let path = dir.join("hostile.rdb");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A stream value of type 15 with one node and no groups, around `listpack`.
fn stream_value(listpack: &[u8], entries: u64, compression: Compression) -> Vec<u8> {
    let mut v = Vec::new();
    encode::length(&mut v, 1);
    encode::raw_string(&mut v, &[0u8; 16]);
    encode::string(&mut v, listpack, compression);
    encode::length(&mut v, entries);
    encode::length(&mut v, entries); // last ID: the last entry's, ENTRIES-0
    encode::length(&mut v, 0);
    encode::length(&mut v, 0); // groups
    v
}

/// One stream node whose master field is reused (SAMEFIELDS) by 4,000 entries: a few KB
/// compressed, each entry logically the field's size. (Issue 17 measured a 1 MB field,
/// 3.9 GB; 256 KB keeps a debug build's export of 1 GB of JSON to under a minute.)
#[test]
fn stream_node_with_a_big_shared_master_field() {
    const FIELD: usize = 256 << 10;
    const ENTRIES: i64 = 4000;
    let mut lp = ListpackBuilder::new();
    lp.push_int(ENTRIES); // live
    lp.push_int(0); // deleted
    lp.push_int(1); // master fields
    lp.push_str(&vec![b'f'; FIELD]);
    lp.push_int(0);
    for i in 0..ENTRIES {
        lp.push_int(2); // SAMEFIELDS
        lp.push_int(i + 1); // ms delta
        lp.push_int(0); // seq delta
        lp.push_str(b"v");
        lp.push_int(4); // lp-count: 1 field + 3
    }
    let lp = ok(lp.finish());
    let mut w = ok(Writer::new(Vec::new(), Version::redis(9)));
    ok(w.select_db(0));
    let value = stream_value(&lp, ENTRIES as u64, Compression::Lzf);
    ok(w.key_value(type_id::STREAM_LISTPACKS, b"s", &value));
    let file = ok(w.finish());
    assert!(file.len() < 64 << 10, "{} bytes", file.len());
    let path = write_file("hostile-stream-master", &file);
    // The node decompressed once, one entry, and one entry's output line.
    let held = 3 * FIELD as u64;
    check(
        "stream master field",
        &path,
        &[
            (&["verify"], held),
            (&["export"], held),
            (&["info"], held),
            (&["stats", "--json"], held),
        ],
    );
}

/// An LZF string (RDB encoding included) of `n` bytes: `byte` repeated, then `last`.
/// Written by hand, a back-reference of 264 bytes at a time, so that the name never
/// exists in this process.
fn lzf_run(byte: u8, n: usize, last: u8) -> Vec<u8> {
    assert!(n >= 8);
    let mut packed = vec![0x00, byte]; // a literal of one byte
    let mut left = n - 2; // the first byte is out, the last one comes after
    while left > 0 {
        let mut take = left.min(264);
        if (1..3).contains(&(left - take)) {
            take -= 3; // leave at least a minimal back-reference for the end
        }
        if take < 3 {
            packed.push((take - 1) as u8);
            packed.extend(std::iter::repeat_n(byte, take));
        } else if take - 2 < 7 {
            packed.extend_from_slice(&[((take - 2) << 5) as u8, 0]);
        } else {
            packed.extend_from_slice(&[0xE0, (take - 9) as u8, 0]);
        }
        left -= take;
    }
    packed.extend_from_slice(&[0x00, last]);
    let mut out = vec![0xC3];
    encode::length(&mut out, packed.len() as u64);
    encode::length(&mut out, n as u64);
    out.extend_from_slice(&packed);
    out
}

/// Ten keys whose names are 16 MB each, LZF-compressed to about 190 KB. (Issue 17
/// measured 100 MB names, 9 GB; 16 MB keeps a debug build's run short, and the top
/// lists' copies would still take 480 MB.)
#[test]
fn huge_key_names_in_the_top_lists() {
    const KEY: usize = 16 << 20;
    let mut w = ok(Writer::new(Vec::new(), Version::redis(9)));
    ok(w.select_db(0));
    for i in 0..10u8 {
        let raw_key = lzf_run(b'k', KEY, b'0' + i);
        let mut value = Vec::new();
        encode::raw_string(&mut value, b"value");
        ok(w.raw_entry(type_id::STRING, &raw_key, &value));
    }
    let file = ok(w.finish());
    assert!(file.len() < 4 << 20, "{} bytes", file.len());
    let path = write_file("hostile-key-names", &file);
    drop(file);
    // A key name decoded by each worker at once.
    let held = THREADS * KEY as u64;
    let export = held;
    check(
        "huge key names",
        &path,
        &[
            (&["stats"], held),
            (&["stats", "--json"], held),
            (&["info"], held),
            (&["verify"], held),
            (&["export"], export),
        ],
    );
}

/// One million SELECTDB opcodes, each to a different db, with a key only in the last.
#[test]
fn a_million_db_switches() {
    let path = common::temp_dir("hostile-selectdb").join("hostile.rdb");
    let out = std::io::BufWriter::new(ok(std::fs::File::create(&path)));
    let mut w = ok(Writer::new(out, Version::redis(9)));
    for db in 0..1_000_000u64 {
        ok(w.select_db(db));
    }
    ok(w.key_value(type_id::STRING, b"k", &[1, b'v']));
    ok(ok(w.finish()).into_inner().map_err(|e| e.into_error()));
    check(
        "1M SELECTDB",
        &path,
        &[
            (&["info"], 0),
            (&["info", "--json"], 0),
            (&["stats"], 0),
            (&["stats", "--json"], 0),
            (&["verify"], 0),
            (&["export"], 0),
        ],
    );
}

/// One stream with a group of 3 million consumers (names of 8 bytes, no pending IDs).
/// When `Stream::parse` collected every consumer this took 494 MB (export), 374 MB
/// (verify) and 271 MB (info, stats); groups, consumers and PELs are now read from the
/// file as they are walked, and verify finds repeated names without keeping them.
#[test]
fn three_million_stream_consumers() {
    const CONSUMERS: u64 = 3_000_000;
    let mut lp = ListpackBuilder::new();
    for v in [1, 0, 1] {
        lp.push_int(v);
    }
    lp.push_str(b"f");
    lp.push_int(0);
    for v in [2, 1, 0] {
        lp.push_int(v);
    }
    lp.push_str(b"v");
    lp.push_int(4);
    let lp = ok(lp.finish());
    let path = common::temp_dir("hostile-consumers").join("hostile.rdb");
    let out = std::io::BufWriter::new(ok(std::fs::File::create(&path)));
    let mut w = ok(Writer::new(out, Version::redis(9)));
    ok(w.select_db(0));
    // The value goes out in pieces: 54 MB held here would show in the child's ru_maxrss.
    let mut v = vec![type_id::STREAM_LISTPACKS];
    encode::raw_string(&mut v, b"s");
    encode::length(&mut v, 1);
    encode::raw_string(&mut v, &[0u8; 16]);
    encode::raw_string(&mut v, &lp);
    encode::length(&mut v, 1);
    encode::length(&mut v, 1);
    encode::length(&mut v, 0);
    encode::length(&mut v, 1); // groups
    encode::raw_string(&mut v, b"g");
    encode::length(&mut v, 1);
    encode::length(&mut v, 0);
    encode::length(&mut v, 0); // PEL
    encode::length(&mut v, CONSUMERS);
    ok(w.raw(&v));
    for c in 0..CONSUMERS {
        v.clear();
        encode::raw_string(&mut v, format!("c{c:07}").as_bytes());
        encode::ms_time(&mut v, 1_700_000_000_000);
        encode::length(&mut v, 0);
        ok(w.raw(&v));
    }
    ok(ok(w.finish()).into_inner().map_err(|e| e.into_error()));
    // The file is mapped: its pages count as resident once read.
    let held = ok(std::fs::metadata(&path)).len();
    check(
        "3M consumers",
        &path,
        &[
            (&["export"], held),
            (&["verify"], held),
            (&["info"], held),
            (&["stats", "--json"], held),
        ],
    );
}

/// A module opcode stream's unsigned field (opcode 2).
fn module_uint(out: &mut Vec<u8>, n: u64) {
    encode::length(out, 2);
    encode::length(out, n);
}

/// A module opcode stream's string field (opcode 5) holding `encoded`, an RDB string.
fn module_string(out: &mut Vec<u8>, encoded: &[u8]) {
    encode::length(out, 5);
    out.extend_from_slice(encoded);
}

/// One vector set (Redis 8.6) of 100,000 elements of 300 dimensions NOQUANT, whose
/// vectors are LZF runs: about 7 MB on disk, 120 MB of vectors decoded, 335 MB as JSON and as
/// `VADD` commands. The graph is a chain (each node linked to the next, both ways), which
/// the parser's loader-like checks accept. When the jsonl line was built whole, export
/// took 690 MB on twice as many elements; when the VADDs came from every element
/// collected at once (to reverse them), 310 MB. Both now go out element by element: about
/// 35 MB whatever the count.
#[test]
fn a_vector_set_of_100k_elements() {
    const ELEMENTS: u64 = 100_000;
    const DIM: u64 = 300;
    let path = common::temp_dir("hostile-vectorset").join("hostile.rdb");
    let out = std::io::BufWriter::new(ok(std::fs::File::create(&path)));
    let mut w = ok(Writer::new(out, Version::redis(13)));
    ok(w.select_db(0));
    let id = ok(rdb_parser::ModuleId::from_name("vectorset", 0).ok_or("module id"));
    let mut v = vec![type_id::MODULE_2];
    encode::raw_string(&mut v, b"vs");
    encode::length(&mut v, id.0);
    module_uint(&mut v, DIM);
    module_uint(&mut v, ELEMENTS);
    module_uint(&mut v, 16 << 8); // NOQUANT, M 16
    module_uint(&mut v, 0); // no projection, no attributes
    ok(w.raw(&v));
    // 0x3e3e3e3e: about 0.19 in every component.
    let vector = lzf_run(0x3e, 4 * DIM as usize, 0x3e);
    let l2_and_range = u64::from(1.0f32.to_bits());
    for node in 1..=ELEMENTS {
        v.clear();
        let mut name = Vec::new();
        encode::raw_string(&mut name, format!("e{node:06}").as_bytes());
        module_string(&mut v, &name);
        module_string(&mut v, &vector);
        let links: Vec<u64> = [node - 1, node + 1]
            .into_iter()
            .filter(|n| (1..=ELEMENTS).contains(n))
            .collect();
        // id, version 1 and level 0, one layer (links, capacity, ids, worst link), l2.
        let mut params = vec![node, 1 << 24, links.len() as u64, 32];
        params.extend(&links);
        params.extend([0, l2_and_range]);
        module_uint(&mut v, params.len() as u64);
        for p in params {
            module_uint(&mut v, p);
        }
        ok(w.raw(&v));
    }
    v.clear();
    encode::length(&mut v, 0); // the module value's EOF opcode
    ok(w.raw(&v));
    ok(ok(w.finish()).into_inner().map_err(|e| e.into_error()));
    let size = ok(std::fs::metadata(&path)).len();
    assert!(size < 32 << 20, "{size} bytes");
    // The file is mapped: its pages count as resident once read. One element's vector,
    // line piece and command are a few KB.
    let held = size;
    check(
        "vector set",
        &path,
        &[
            (&["export"], held),
            (
                &["export", "--format", "resp", "--target", "redis-8.6"],
                held,
            ),
            (&["verify"], held),
            (&["stats"], held),
        ],
    );
}
