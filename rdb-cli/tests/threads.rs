//! The thread count changes how fast rdbkit runs, never what it writes: one thread (the
//! main thread outside the pool, stages taking turns) and two or three (the main thread a
//! worker of the pool, batches overlapping) give byte-identical reports and files.

mod common;

use std::path::Path;
use std::process::Command;

use rdb_parser::format::type_id;
use rdb_parser::Version;
use rdb_writer::{value, Compression, Writer};

/// Keys for several of the pipelines' batches, of several types, some with an
/// expiry, and a key stored twice near the end: verify reports it from a late batch.
fn snapshot() -> Vec<u8> {
    let keys = 3 * rdb_pipeline::BATCH_ITEMS as u32 + 500;
    let build = || -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut w = Writer::new(Vec::new(), Version::redis(11))?;
        w.select_db(0)?;
        for i in 0..keys {
            let key = format!("user:{{{}}}:{i}", i % 97);
            if i % 5 == 0 {
                w.expire_ms(1_700_000_000_000 + i64::from(i) * 1000)?;
            }
            match i % 4 {
                0 => {
                    let text = format!("{i}-").repeat(1 + (i % 40) as usize);
                    let v = value::string(text.as_bytes(), Compression::Lzf);
                    w.key_value(type_id::STRING, key.as_bytes(), &v)?;
                }
                1 => {
                    let v = value::string(i.to_string().as_bytes(), Compression::None);
                    w.key_value(type_id::STRING, key.as_bytes(), &v)?;
                }
                2 => {
                    let fields: Vec<(String, String)> = (0..1 + i % 9)
                        .map(|f| (format!("f{f}"), format!("v{}", f * i)))
                        .collect();
                    let v = value::hash_listpack(&fields, Compression::Lzf)?;
                    w.key_value(type_id::HASH_LISTPACK, key.as_bytes(), &v)?;
                }
                _ => {
                    let members: Vec<(String, f64)> = (0..1 + i % 7)
                        .map(|m| (format!("m{m}"), f64::from(m) * 1.5))
                        .collect();
                    let v = value::zset_listpack(&members, Compression::None)?;
                    w.key_value(type_id::ZSET_LISTPACK, key.as_bytes(), &v)?;
                }
            }
        }
        let again = value::string(b"second copy", Compression::None);
        w.key_value(type_id::STRING, b"user:{1}:1", &again)?;
        Ok(w.finish()?)
    };
    build().unwrap_or_else(|e| panic!("writing the snapshot: {e}"))
}

/// rdbkit's stdout and exit code with `threads` threads, and the bytes of the file it wrote
/// at `output` when one is given.
fn run(threads: usize, args: &[&str], output: Option<&Path>) -> (Vec<u8>, Option<i32>, Vec<u8>) {
    if let Some(out) = output {
        let _ = std::fs::remove_file(out);
    }
    let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .arg("--threads")
        .arg(threads.to_string())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("rdbkit {args:?}: {e}"));
    let written = output.map(|p| {
        std::fs::read(p).unwrap_or_else(|e| {
            panic!(
                "{p:?}: {e}; rdbkit --threads {threads} {args:?} exited {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    });
    (out.stdout, out.status.code(), written.unwrap_or_default())
}

#[test]
fn one_two_and_three_threads_give_identical_output() {
    let d = common::temp_dir("threads");
    let input = d.join("in.rdb");
    std::fs::write(&input, snapshot()).unwrap_or_else(|e| panic!("{e}"));
    let file = input.to_str().unwrap_or_default();
    let converted = d.join("out.rdb");
    let out = converted.to_str().unwrap_or_default();
    let commands: [(&str, Vec<&str>, Option<&Path>); 5] = [
        // A fixed "now": the file has no ctime, and the clock moves between runs.
        (
            "stats",
            vec!["stats", "--json", "--now", "1700000000000", file],
            None,
        ),
        ("verify", vec!["verify", "--json", file], None),
        ("export", vec!["export", file], None),
        (
            "convert",
            // The file holds a duplicate key, which convert refuses unless told.
            vec![
                "convert",
                file,
                "-o",
                out,
                "--rdb-version",
                "9",
                "--on-conflict",
                "last",
            ],
            Some(&converted),
        ),
        ("info", vec!["info", "--json", file], None),
    ];
    for (name, args, output) in &commands {
        let one = run(1, args, *output);
        assert!(!one.0.is_empty() || !one.2.is_empty(), "{name}: no output");
        for threads in [2, 3] {
            let many = run(threads, args, *output);
            assert_eq!(one.1, many.1, "{name}: exit code, 1 vs {threads} threads");
            assert!(
                one.0 == many.0,
                "{name}: stdout differs, 1 vs {threads} threads"
            );
            assert!(
                one.2 == many.2,
                "{name}: written file differs, 1 vs {threads} threads"
            );
        }
    }
    // The duplicate in the last batch is found, whatever the thread count.
    let (report, code, _) = run(2, &["verify", "--json", file], None);
    assert_eq!(code, Some(1), "verify exit code");
    let text = String::from_utf8_lossy(&report);
    assert!(text.contains("duplicate-key"), "{text}");
    let _ = std::fs::remove_dir_all(&d);
}
