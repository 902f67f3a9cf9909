//! `rdbkit check`: the verdict for every committed fixture against every target profile,
//! with the expectation computed independently from the fixture's export.

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
                want("modules", has_modules);
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
    assert_eq!(v["loads_as_is"], false);
    assert!(v["findings"]
        .as_array()
        .is_some_and(|f| f.iter().any(|x| x["kind"] == "version")));
}
