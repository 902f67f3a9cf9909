//! `rdbkit check`: the verdict for every committed fixture against every target profile,
//! with the expectation computed independently from the fixture's export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::{export, fixtures_dir, keys, rdb_files};
use rdb_cli::check::{check, loads_version, CheckOptions};
use rdb_writer::PROFILES;

#[test]
fn verdicts_for_every_fixture_and_profile() {
    let mut table = 0;
    for dir in std::fs::read_dir(fixtures_dir())
        .into_iter()
        .flatten()
        .flatten()
    {
        for rdb in rdb_files(&dir.path()) {
            let name = rdb.display().to_string();
            let data = std::fs::read(&rdb).unwrap_or_default();
            let version = rdb_parser::header(&data).unwrap_or_else(|e| panic!("{e}"));
            let lines = export(&data).unwrap_or_else(|e| panic!("{e}"));
            let ks = keys(&lines);
            let has_field_ttls = ks.iter().any(|k| {
                k["type"] == "hash"
                    && k["value"].as_array().is_some_and(|fs| {
                        fs.iter()
                            .any(|f| f.as_array().is_some_and(|p| p.len() == 3))
                    })
            });
            let has_functions = lines.iter().any(|l| l["kind"] == "function");
            let has_modules = ks.iter().any(|k| k["type"] == "module")
                || lines.iter().any(|l| l["kind"] == "module_aux");
            // Vector sets are built into the profiles that have them (Redis 8.0+).
            let only_vector_sets =
                ks.iter().filter(|k| k["type"] == "module").all(|k| {
                    k.pointer("/value/module").and_then(|m| m.as_str()) == Some("vectorset")
                }) && !lines.iter().any(|l| l["kind"] == "module_aux");
            let other_dbs = ks.iter().any(|k| k["db"] != 0);
            for p in PROFILES {
                let v = check(&data, p, &CheckOptions::default())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let kinds: Vec<&str> = v.findings.iter().map(|f| f.kind).collect();
                let want = |kind: &str, present: bool| {
                    assert_eq!(
                        kinds.contains(&kind),
                        present,
                        "{name} -> {}: {kind} ({kinds:?})",
                        p.name
                    );
                };
                want("field_ttls", has_field_ttls && !p.field_ttls());
                want("functions", has_functions && !p.functions());
                // No profile has every module of a redis-stack file (scdtype00 is stack's own).
                want(
                    "modules",
                    has_modules && !(only_vector_sets && p.vector_sets.is_some()),
                );
                want("dbs", other_dbs && p.databases == Some(1));
                want("version", !loads_version(version, p.version));
                let lossless = !kinds.iter().any(|k| *k != "version");
                assert_eq!(v.loads_after_convert, lossless, "{name} -> {}", p.name);
                assert_eq!(
                    v.loads_as_is,
                    lossless && loads_version(version, p.version),
                    "{name} -> {}",
                    p.name
                );
                table += 1;
            }
        }
    }
    assert!(table > 800, "{table}");
}

#[test]
fn the_cli_exits_by_verdict() {
    let bin = env!("CARGO_BIN_EXE_rdbkit");
    let run = |file: &str, target: &str| {
        std::process::Command::new(bin)
            .args([
                "check",
                &fixtures_dir().join(file).display().to_string(),
                "--target",
                target,
                "--json",
            ])
            .output()
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let ok = run("redis-6.2/big.rdb", "redis-7.0");
    assert_eq!(ok.status.code(), Some(0));
    let refused = run("redis-7.4/types.rdb", "azure-cache-premium");
    assert_eq!(refused.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&refused.stdout).unwrap_or_default();
    assert_eq!(v.get("loads_as_is"), Some(&serde_json::Value::Bool(false)));
    assert!(v
        .get("findings")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|f| f.iter().any(|x| x["kind"] == "version")));
}

fn write(version: rdb_parser::Version, keys: &[(u8, &[u8], Vec<u8>)]) -> Vec<u8> {
    let mut w = rdb_writer::Writer::new(Vec::new(), version).unwrap_or_else(|e| panic!("{e}"));
    w.select_db(0).unwrap_or_else(|e| panic!("{e}"));
    for (t, k, v) in keys {
        w.key_value(*t, k, v).unwrap_or_else(|e| panic!("{e}"));
    }
    w.finish().unwrap_or_else(|e| panic!("{e}"))
}

fn profile(name: &str) -> &'static rdb_writer::TargetProfile {
    rdb_writer::TargetProfile::named(name).unwrap_or_else(|| panic!("{name}"))
}

/// A corrupt value under a valid checksum cannot load anywhere (exit 3); a duplicate key
/// loads after convert --on-conflict (exit 1); empty keys are skipped by 7.0+.
#[test]
fn verdicts_follow_the_loader_rules() {
    use rdb_cli::check::{Class, Outcome};
    use rdb_parser::format::type_id;
    let s = |b: &[u8]| rdb_writer::value::string(b, rdb_writer::Compression::None);
    let v9 = rdb_parser::Version::redis(9);
    // A zipmap declaring 2 pairs and holding 1.
    let zipmap = write(
        v9,
        &[(
            type_id::HASH_ZIPMAP,
            b"h",
            s(&[2, 1, b'f', 1, 0, b'v', 0xFF]),
        )],
    );
    let v = check(&zipmap, profile("redis-7.0"), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.outcome, Outcome::CannotLoad, "{v:?}");
    assert_eq!(v.outcome.exit_code(), 3);
    assert!(v
        .findings
        .iter()
        .any(|f| f.kind == "zipmap-count" && f.class == Class::Fatal));

    let dup = write(
        v9,
        &[
            (type_id::STRING, b"k", s(b"1")),
            (type_id::STRING, b"k", s(b"2")),
        ],
    );
    let v = check(&dup, profile("redis-7.0"), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.outcome, Outcome::AfterConvert, "{v:?}");
    let f = v.findings.iter().find(|f| f.kind == "duplicate_keys");
    assert!(f.is_some_and(|f| f.fix.contains("--on-conflict")), "{v:?}");

    let empty = write(
        v9,
        &[
            (type_id::SET, b"e", vec![0]),
            (type_id::STRING, b"k", s(b"1")),
        ],
    );
    let v = check(&empty, profile("redis-7.0"), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((v.outcome, v.skipped_keys), (Outcome::Loads, 1), "{v:?}");
    let v = check(&empty, profile("redis-6.2"), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.outcome, Outcome::AfterConvert, "{v:?}");
}

/// A compressed string declaring length 0: Redis 6.2+ and Valkey load it as the empty
/// string, 6.0 and older refuse it (verify's loader-agreement test holds both to the real
/// servers), so check says so per target.
#[test]
fn an_lzf_string_of_length_0_loads_on_6_2_and_later_only() {
    use rdb_cli::check::Outcome;
    use rdb_parser::format::type_id;
    let mut lzf_empty = vec![0xC3, 2, 0];
    lzf_empty.extend_from_slice(&[0x00, b'x']);
    let data = write(
        rdb_parser::Version::redis(9),
        &[(type_id::STRING, b"k", lzf_empty)],
    );
    for (target, want) in [
        ("redis-5.0", Outcome::CannotLoad),
        ("redis-6.0", Outcome::CannotLoad),
        ("azure-cache-premium", Outcome::CannotLoad),
        ("redis-6.2", Outcome::Loads),
        ("redis-7.4", Outcome::Loads),
        ("valkey-8.0", Outcome::Loads),
    ] {
        let v = check(&data, profile(target), &CheckOptions::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(v.outcome, want, "{target}: {v:?}");
        if want == Outcome::CannotLoad {
            let f = v.findings.iter().find(|f| f.kind == "lzf");
            assert!(f.is_some_and(|f| f.fix.contains("6.2")), "{target}: {v:?}");
        }
    }
}

/// Module data is judged by name: the modules the target must have are listed, and a
/// target that has them (--with-modules) loads the file as it is.
#[test]
fn module_names_decide_and_are_listed() {
    use rdb_cli::check::Outcome;
    let data = std::fs::read(fixtures_dir().join("redis-7.4/modules.rdb"))
        .unwrap_or_else(|e| panic!("{e}"));
    let v = check(&data, profile("valkey-9.0"), &CheckOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.outcome, Outcome::AfterConvert);
    assert!(v.modules_required.iter().any(|m| m == "scdtype00"), "{v:?}");
    let all = CheckOptions {
        modules: Some(v.modules_required.clone()),
        ..CheckOptions::default()
    };
    let v = check(&data, profile("redis-7.4"), &all).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v.outcome, Outcome::Loads, "{v:?}");
}

/// --memory compares rdbkit's estimate of the loaded data, not the file's size.
#[test]
fn memory_compares_the_estimate() {
    let data =
        std::fs::read(fixtures_dir().join("redis-7.0/big.rdb")).unwrap_or_else(|e| panic!("{e}"));
    let opts = |m| CheckOptions {
        memory: Some(m),
        ..CheckOptions::default()
    };
    let v = check(&data, profile("redis-7.0"), &opts(u64::MAX)).unwrap_or_else(|e| panic!("{e}"));
    let estimate = v.memory_estimate.unwrap_or(0);
    assert!(
        estimate > data.len() as u64,
        "{estimate} vs {} bytes",
        data.len()
    );
    // A target with more memory than the file but less than the estimate does not fit.
    let v =
        check(&data, profile("redis-7.0"), &opts(estimate - 1)).unwrap_or_else(|e| panic!("{e}"));
    assert!(v.findings.iter().any(|f| f.kind == "memory"), "{v:?}");
}

/// One part of several: keys outside its manifest's slot ranges are a lossless finding,
/// and the whole's verdict is its worst part's.
#[test]
fn parts_are_judged_each_and_the_worst_decides() {
    use rdb_cli::check::{check_one_of_several, check_part, Outcome, Verdicts};
    use rdb_cli::parts::Part;
    let v = rdb_writer::value::string(b"v", rdb_writer::Compression::None);
    let t = rdb_parser::format::type_id::STRING;
    // "foo" is slot 12182, outside the part's ranges; "{user1000}.following" 3443 is in.
    let data = write(
        rdb_parser::Version::redis(11),
        &[
            (t, b"{user1000}.following", v.clone()),
            (t, b"foo", v.clone()),
        ],
    );
    let ranged = Part {
        slots: Some(vec![(0, 5460)]),
        ..Part::file("d/shard-0.rdb")
    };
    let target = profile("redis-7.2");
    let options = CheckOptions::default();
    let verdict = check_part(&data, &ranged, target, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(verdict.outcome, Outcome::AfterConvert);
    assert!(verdict.loads_after_convert);
    let f = &verdict.findings[0];
    assert_eq!(
        (f.kind, f.count, f.example.as_deref()),
        ("outside_slots", 1, Some(&b"foo"[..]))
    );
    assert!(
        f.detail.contains("(0-5460)") && f.detail.contains("\"foo\" (slot 12182)"),
        "{}",
        f.detail
    );
    // Alone, or with ranges that hold both keys, the file loads as it is.
    let alone = check(&data, target, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(alone.outcome, Outcome::Loads);
    let all = Part {
        slots: Some(vec![(0, 16383)]),
        ..Part::file("d/shard-0.rdb")
    };
    let whole_range = check_part(&data, &all, target, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(whole_range, alone);
    // A part that is no snapshot cannot load; the whole is the worst part's.
    let garbage = Part::file("g.rdb");
    let parts = vec![
        check_one_of_several(&data, &all, target, &options).unwrap_or_else(|e| panic!("{e}")),
        check_one_of_several(&data, &ranged, target, &options).unwrap_or_else(|e| panic!("{e}")),
    ];
    let mut whole = Verdicts {
        target: "redis-7.2".into(),
        parts,
    };
    assert_eq!(whole.outcome(), Outcome::AfterConvert);
    let deciding =
        |w: &Verdicts| -> Vec<String> { w.deciding().iter().map(|p| p.name()).collect() };
    assert_eq!(deciding(&whole), vec!["d/shard-0.rdb".to_string()]);
    assert_eq!(whole.keys_outside_slots(), 1);
    whole.parts.push(
        check_one_of_several(b"REDIS", &garbage, target, &options)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    assert_eq!(whole.outcome(), Outcome::CannotLoad);
    assert_eq!(deciding(&whole), vec!["g.rdb".to_string()]);
    assert_eq!(whole.to_json()["exit_code"], 3);
}
