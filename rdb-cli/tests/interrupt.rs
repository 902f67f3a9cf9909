//! An interrupted command (SIGINT, SIGTERM) leaves nothing behind: the temporary output
//! file, or a split's staging directory, is removed, no destination appears, and the exit
//! code is 130. Destructors do not run on a signal; the handler in `output.rs` does this.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdb_writer::{value, Compression, Writer};

/// ~48 MB of incompressible strings: long enough to export that a signal lands mid-way.
fn write_input(path: &Path) {
    let mut w = Writer::new(Vec::new(), rdb_parser::Version::redis(11)).unwrap();
    w.select_db(0).unwrap();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..12_000u32 {
        let v: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let key = format!("key:{i}");
        w.key_value(0, key.as_bytes(), &value::string(&v, Compression::None))
            .unwrap();
    }
    std::fs::write(path, w.finish().unwrap()).unwrap();
}

/// Runs rdbkit with `args`, sends `signal` once something appears in `out_dir`, and
/// returns the exit code; `None` when the command finished before it could be signalled.
fn interrupt(args: &[&str], out_dir: &Path, signal: &str) -> Option<i32> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            return None;
        }
        if std::fs::read_dir(out_dir).unwrap().next().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "no output appeared");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Let it write for a moment, then signal.
    std::thread::sleep(Duration::from_millis(50));
    let pid = child.id().to_string();
    let sent = Command::new("kill").args([signal, &pid]).status().unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    if out.status.code() == Some(0) {
        return None; // finished first after all
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    out.status.code()
}

fn leaves_nothing(what: &str, args_for: impl Fn(&Path) -> Vec<String>, signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.rdb");
    write_input(&input);
    let mut signalled = 0;
    for attempt in 0..3 {
        let out_dir = dir.path().join(format!("out-{attempt}"));
        std::fs::create_dir(&out_dir).unwrap();
        let args: Vec<String> = args_for(&input)
            .into_iter()
            .map(|a| a.replace("OUT", &out_dir.to_string_lossy()))
            .collect();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match interrupt(&args, &out_dir, signal) {
            None => continue,
            Some(code) => {
                assert_eq!(code, 130, "{what}");
                let left: Vec<_> = std::fs::read_dir(&out_dir)
                    .unwrap()
                    .flatten()
                    .map(|e| e.path())
                    .collect();
                assert!(left.is_empty(), "{what} left {left:?}");
                signalled += 1;
            }
        }
    }
    assert!(
        signalled > 0,
        "{what} always finished before the signal: make the input larger"
    );
}

#[test]
fn an_interrupted_export_leaves_no_temporary_file() {
    leaves_nothing(
        "export",
        |input| {
            ["export", &input.to_string_lossy(), "-o", "OUT/dump.jsonl"]
                .map(String::from)
                .to_vec()
        },
        "-INT",
    );
}

#[test]
fn an_interrupted_split_leaves_no_staging_directory() {
    leaves_nothing(
        "split",
        |input| {
            [
                "convert",
                &input.to_string_lossy(),
                "-o",
                "OUT/shards",
                "--shards",
                "3",
                "--rdb-version",
                "9",
            ]
            .map(String::from)
            .to_vec()
        },
        "-TERM",
    );
}
