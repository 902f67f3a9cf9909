//! The output policy, for every command that writes a file: an output that is an input
//! (by path, symlink or hard link) is refused before any work and the input stays byte for
//! byte; `-o -` streams to standard output; a FIFO (and a `/dev/stdout`-like symlink to
//! one) is written to, never replaced; stale temporary files do not break a run; a
//! replaced output keeps its mode.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn rdbkit(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn sample() -> Vec<u8> {
    std::fs::read(common::fixtures_dir().join("redis-7.4/types.rdb")).unwrap()
}

/// Every way a command can name a file it writes, with `OUT` standing for the output and
/// `IN` for the input. Each must refuse an output that is the input.
const WRITERS: &[&[&str]] = &[
    &["convert", "IN", "-o", "OUT", "--target", "redis-7.4"],
    &[
        "convert",
        "IN",
        "-o",
        "{dir}/x.rdb",
        "--target",
        "redis-7.4",
        "--report",
        "OUT",
    ],
    &[
        "convert",
        "IN",
        "-o",
        "{dir}/y.rdb",
        "--target",
        "redis-6.2",
        "--functions",
        "drop",
        "--field-ttls",
        "drop",
        "--modules",
        "drop",
        "--functions-file",
        "OUT",
    ],
    &["merge", "IN", "-o", "OUT", "--target", "redis-7.4"],
    &["export", "IN", "-o", "OUT"],
    &["export", "IN", "-o", "OUT", "--format", "resp"],
    &["stats", "IN", "--html", "OUT"],
    &["diff", "IN", "IN", "--jsonl", "OUT"],
    &[
        "restore",
        "IN",
        "--to",
        "127.0.0.1:1",
        "--checkpoint",
        "OUT",
    ],
];

fn fill(args: &[&str], input: &Path, out: &Path, dir: &Path) -> Vec<String> {
    args.iter()
        .map(|a| match *a {
            "IN" => input.display().to_string(),
            "OUT" => out.display().to_string(),
            other => other.replace("{dir}", &dir.display().to_string()),
        })
        .collect()
}

#[test]
fn an_output_that_is_an_input_is_refused_by_every_writer() {
    let dir = common::temp_dir("out-is-in");
    let input = dir.join("in.rdb");
    let original = sample();
    std::fs::write(&input, &original).unwrap();
    let symlink = dir.join("link.rdb");
    std::os::unix::fs::symlink(&input, &symlink).unwrap();
    let hard = dir.join("hard.rdb");
    std::fs::hard_link(&input, &hard).unwrap();
    for args in WRITERS {
        for out in [&input, &symlink, &hard] {
            let argv = fill(args, &input, out, &dir);
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let run = rdbkit(&argv);
            let stderr = String::from_utf8_lossy(&run.stderr);
            assert_eq!(run.status.code(), Some(2), "{argv:?}: {stderr}");
            assert!(
                stderr.contains("is an input of this command"),
                "{argv:?}: {stderr}"
            );
            assert!(
                std::fs::read(&input).unwrap() == original,
                "{argv:?} changed the input"
            );
            assert!(std::fs::symlink_metadata(&symlink)
                .unwrap()
                .file_type()
                .is_symlink());
        }
    }
    // Nothing else was created: no temporary file, no partial output.
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["hard.rdb", "in.rdb", "link.rdb"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_shard_directory_that_holds_the_input_is_refused() {
    let dir = common::temp_dir("shards-hold-in");
    let input = dir.join("in.rdb");
    std::fs::write(&input, sample()).unwrap();
    let run = rdbkit(&[
        "convert",
        input.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
        "--shards",
        "2",
        "--target",
        "redis-7.4",
    ]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("an input of this command"), "{stderr}");
    assert!(std::fs::read(&input).unwrap() == sample());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn dash_streams_to_standard_output() {
    let dir = common::temp_dir("dash");
    let input = dir.join("in.rdb");
    std::fs::write(&input, sample()).unwrap();
    let to_file = dir.join("a.rdb");
    let run = rdbkit(&[
        "convert",
        input.to_str().unwrap(),
        "-o",
        to_file.to_str().unwrap(),
        "--target",
        "redis-7.4",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let run = rdbkit(&[
        "convert",
        input.to_str().unwrap(),
        "-o",
        "-",
        "--target",
        "redis-7.4",
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.stdout == std::fs::read(&to_file).unwrap(),
        "the same bytes on stdout"
    );
    let run = rdbkit(&["export", input.to_str().unwrap(), "-o", "-"]);
    assert!(run.status.success());
    assert!(run.stdout.starts_with(b"{\"kind\":\"header\""));
    assert!(
        !Path::new("-").exists() && !dir.join("-").exists(),
        "no file named -"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

fn mkfifo(path: &Path) {
    let ok = Command::new("mkfifo").arg(path).status().unwrap().success();
    assert!(ok, "mkfifo {}", path.display());
}

/// Reads the FIFO on a thread while rdbkit writes it; returns what came through.
fn read_fifo(path: PathBuf) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || std::fs::read(&path).unwrap())
}

#[test]
fn a_fifo_and_a_symlink_to_one_are_written_to_not_replaced() {
    let dir = common::temp_dir("fifo");
    let input = dir.join("in.rdb");
    std::fs::write(&input, sample()).unwrap();
    let expected = rdbkit(&["export", input.to_str().unwrap()]).stdout;
    let fifo = dir.join("pipe");
    mkfifo(&fifo);
    // As /dev/stdout is a symlink to /proc/self/fd/1.
    let link = dir.join("stdout-like");
    std::os::unix::fs::symlink(&fifo, &link).unwrap();
    for out in [&fifo, &link] {
        let reader = read_fifo(fifo.clone());
        let run = rdbkit(&[
            "export",
            input.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        assert!(
            reader.join().unwrap() == expected,
            "the pipe got the export"
        );
        use std::os::unix::fs::FileTypeExt;
        assert!(std::fs::metadata(&fifo).unwrap().file_type().is_fifo());
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn other_special_files_are_refused() {
    let dir = common::temp_dir("special");
    let input = dir.join("in.rdb");
    std::fs::write(&input, sample()).unwrap();
    let run = rdbkit(&[
        "export",
        input.to_str().unwrap(),
        "-o",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("is a directory"));
    // /dev/null is a character device: written to, left in place.
    let run = rdbkit(&["export", input.to_str().unwrap(), "-o", "/dev/null"]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn stale_temporary_files_do_not_break_a_run_and_modes_are_kept() {
    let dir = common::temp_dir("stale");
    let input = dir.join("in.rdb");
    std::fs::write(&input, sample()).unwrap();
    let out = dir.join("out.jsonl");
    // What a killed run of an older rdbkit, or of this one, may have left, and a planted
    // symlink under the old predictable name pointing at a file to protect.
    let victim = dir.join("victim");
    std::fs::write(&victim, b"keep me").unwrap();
    for pid in [std::process::id(), std::process::id() + 1] {
        std::os::unix::fs::symlink(&victim, dir.join(format!(".out.jsonl.rdbkit-{pid}.tmp")))
            .unwrap();
    }
    std::fs::write(dir.join(".out.jsonl.0123456789abcdef.rdbkit.tmp"), b"stale").unwrap();
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o600)).unwrap();
    let run = rdbkit(&[
        "export",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(std::fs::read(&victim).unwrap(), b"keep me");
    assert!(std::fs::read(&out)
        .unwrap()
        .starts_with(b"{\"kind\":\"header\""));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the replaced output keeps its mode");
    // Only what was there before and the new output: no temporary file of this run.
    let temps = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp")
        })
        .count();
    assert_eq!(temps, 3);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_symlinked_output_replaces_the_file_it_points_to() {
    let dir = common::temp_dir("follow");
    let input = dir.join("in.rdb");
    std::fs::write(&input, sample()).unwrap();
    let real = dir.join("real.jsonl");
    std::fs::write(&real, b"old").unwrap();
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let run = rdbkit(&[
        "export",
        input.to_str().unwrap(),
        "-o",
        link.to_str().unwrap(),
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read(&real)
        .unwrap()
        .starts_with(b"{\"kind\":\"header\""));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn gzip_and_standard_input_read_as_the_file_does() {
    let dir = common::temp_dir("gzip");
    let input = dir.join("in.rdb");
    std::fs::write(&input, sample()).unwrap();
    let gz = dir.join("in.rdb.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "gzip -c '{}' > '{}'",
            input.display(),
            gz.display()
        ))
        .status()
        .unwrap();
    assert!(status.success());
    for cmd in [
        &["info", "--json"][..],
        &["export"],
        &["verify", "--json"],
        &["stats", "--json"],
    ] {
        let plain = rdbkit(&[cmd, &[input.to_str().unwrap()]].concat());
        let zipped = rdbkit(&[cmd, &[gz.to_str().unwrap()]].concat());
        assert!(plain.status.success(), "{cmd:?}");
        let piped = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
            .args(cmd)
            .arg("-")
            .stdin(std::fs::File::open(&input).unwrap())
            .output()
            .unwrap();
        let normalise = |o: &Output| {
            String::from_utf8_lossy(&o.stdout)
                .replace(gz.to_str().unwrap(), "F")
                .replace(input.to_str().unwrap(), "F")
                .replace("\"-\"", "\"F\"")
        };
        assert_eq!(normalise(&plain), normalise(&zipped), "{cmd:?} on gzip");
        assert_eq!(normalise(&plain), normalise(&piped), "{cmd:?} on stdin");
    }
    // A .gz without an RDB inside says so.
    let not_rdb = dir.join("notes.gz");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("echo hello | gzip -c > '{}'", not_rdb.display()))
        .status()
        .unwrap();
    assert!(status.success());
    let run = rdbkit(&["info", not_rdb.to_str().unwrap()]);
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("holds no RDB snapshot"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A stream that does not start as a snapshot is refused after its first bytes, not
/// copied whole to the temporary directory first (`rdbkit info /dev/zero` once wrote 1 GB
/// a second into /tmp until the disk was full).
#[test]
fn a_stream_that_is_no_snapshot_is_refused_at_its_first_bytes() {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(["info", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 4 GiB of zeros at most: rdbkit must close the pipe long before.
    let writer = std::thread::spawn(move || {
        let chunk = vec![0u8; 1 << 20];
        let mut sent: u64 = 0;
        while sent < 4 << 30 {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    let sent = writer.join().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not an RDB file header"),
        "{out:?}"
    );
    assert!(sent < 64 << 20, "rdbkit read {sent} bytes before refusing");
}
