//! `rdbkit upload` against a real Azurite blob emulator (installed by
//! scripts/install-azurite.sh), with a test-only fault-injecting proxy for the resume and
//! retry cases. Every run of the binary is checked for the SAS signature in its output.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // a test fails by panicking

mod azurite;
mod common;
mod fake_arm;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::Ordering;

use azurite::{account_sas, account_sas_with_key, signature_forms, Azurite, Fault, Proxy};
use common::temp_dir;

fn rdbkit_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_rdbkit"))
}

fn fixture(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(rel)
}

/// Runs rdbkit with `args`; fails the test if stdout or stderr holds any form of a
/// signature in `secrets`.
fn rdbkit(args: &[&str], secrets: &[&str]) -> Output {
    rdbkit_with_token(args, secrets, None)
}

fn rdbkit_with_token(args: &[&str], secrets: &[&str], token: Option<&str>) -> Output {
    let env: Vec<(&str, &str)> = token
        .map(|t| ("AZURE_ACCESS_TOKEN", t))
        .into_iter()
        .collect();
    rdbkit_with_env(args, secrets, &env)
}

/// As [`rdbkit`], with only the given Azure variables set (the caller's are removed).
fn rdbkit_with_env(args: &[&str], secrets: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(rdbkit_bin());
    cmd.args(args)
        .env_remove("AZURE_ACCESS_TOKEN")
        .env_remove("RDBKIT_SAS_URL")
        .envs(env.iter().copied());
    let out = cmd.output().expect("run rdbkit");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for s in secrets {
        for form in signature_forms(s) {
            assert!(
                !form.is_empty() && !text.contains(&form),
                "output shows a signature:\n{text}"
            );
        }
    }
    out
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A valid RDB 11 snapshot of about `bytes` bytes, of incompressible strings.
fn generated_rdb(dir: &Path, name: &str, bytes: usize) -> PathBuf {
    let mut w =
        rdb_writer::Writer::new(Vec::new(), rdb_parser::Version::redis(11)).expect("writer");
    w.aux(b"redis-ver", b"7.2.4").expect("aux");
    w.select_db(0).expect("db");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut i = 0;
    let mut total = 0;
    while total < bytes {
        let value: Vec<u8> = (0..4000)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let mut enc = Vec::new();
        rdb_writer::encode::string(&mut enc, &value, rdb_writer::Compression::None);
        w.key_value(0, format!("key:{i}").as_bytes(), &enc)
            .expect("key");
        total += value.len() + 16;
        i += 1;
    }
    let data = w.finish().expect("finish");
    let path = dir.join(name);
    std::fs::write(&path, data).expect("write rdb");
    path
}

#[test]
fn small_file_round_trips_byte_identical() {
    let Some(az) = Azurite::shared() else { return };
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 3600);
    let file = fixture("servers/redis-7.4/big.rdb");
    let out = rdbkit(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--target",
            "azure-managed-redis",
        ],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The blob URL, without its token.
    let blob_url = format!("{}/{c}/big.rdb", az.account_url());
    assert!(stdout.contains(&format!("-> {blob_url} (")), "{stdout}");
    assert!(
        !stdout.contains("sv=") && !stdout.contains("sig"),
        "{stdout}"
    );
    assert!(
        text(&out).contains("loads on azure-managed-redis as it is"),
        "{}",
        text(&out)
    );
    assert_eq!(az.download(&c, "big.rdb"), std::fs::read(&file).unwrap());
}

#[test]
fn multi_block_file_round_trips_and_reports_json() {
    let Some(az) = Azurite::shared() else { return };
    let dir = temp_dir("multi");
    let file = generated_rdb(&dir, "big.rdb", 1_300_000);
    let size = std::fs::metadata(&file).unwrap().len();
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 3600);
    let out = rdbkit(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--name",
            "dir/snap.rdb",
            "--block-size",
            "64K",
            "--parallel",
            "4",
            "--json",
        ],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let blocks = size.div_ceil(64 << 10) as usize;
    assert_eq!(v[0]["blocks"], blocks as u64);
    assert_eq!(v[0]["sent"], blocks as u64);
    assert_eq!(v[0]["verified"], true);
    assert_eq!(
        v[0]["blob"],
        format!("{}/{c}/dir/snap.rdb", az.account_url())
    );
    assert_eq!(az.committed_blocks(&c, "dir/snap.rdb"), blocks);
    assert_eq!(
        az.download(&c, "dir/snap.rdb"),
        std::fs::read(&file).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn interrupted_upload_resumes_sending_only_missing_blocks() {
    let Some(az) = Azurite::shared() else { return };
    let proxy = Proxy::start(az.port);
    let dir = temp_dir("resume");
    let file = generated_rdb(&dir, "dump.rdb", 1_000_000);
    let size = std::fs::metadata(&file).unwrap().len();
    let blocks = size.div_ceil(64 << 10) as usize;
    let c = az.new_container();
    let sas = proxy.via(&az.container_sas(&c, "rcw", 3600), &az);
    let args = [
        "upload",
        file.to_str().unwrap(),
        "--sas-url",
        &sas,
        "--block-size",
        "64K",
        "--parallel",
        "3",
    ];

    // First run: the proxy lets 5 blocks through and fails every other one.
    proxy.set(Fault::FailBlocksAfter(5));
    let mut first = args.to_vec();
    first.extend(["--retries", "1"]);
    let out = rdbkit(&first, &[&sas]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("HTTP 500 ServerBusy"), "{}", text(&out));
    assert_eq!(proxy.blocks_forwarded.load(Ordering::SeqCst), 5);

    // Second run: everything passes; only the missing blocks are sent.
    proxy.set(Fault::None);
    let out = rdbkit(&args, &[&sas]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains(&format!(
            "resuming: 5 of {blocks} blocks already staged, sending {}",
            blocks - 5
        )),
        "{}",
        text(&out)
    );
    assert_eq!(proxy.blocks_seen.load(Ordering::SeqCst), blocks - 5);
    assert_eq!(az.download(&c, "dump.rdb"), std::fs::read(&file).unwrap());

    // Third run over the finished blob: nothing to send, same blob.
    proxy.set(Fault::None);
    let out = rdbkit(&args, &[&sas]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        proxy.blocks_seen.load(Ordering::SeqCst),
        0,
        "{}",
        text(&out)
    );
    assert_eq!(az.download(&c, "dump.rdb"), std::fs::read(&file).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_busy_and_dropped_connections_are_retried() {
    let Some(az) = Azurite::shared() else { return };
    let proxy = Proxy::start(az.port);
    let dir = temp_dir("retry");
    let file = generated_rdb(&dir, "dump.rdb", 400_000);
    let c = az.new_container();
    let sas = proxy.via(&az.container_sas(&c, "rcw", 3600), &az);
    for fault in [Fault::ServerBusyFirst(3), Fault::DropFirst(2)] {
        proxy.set(fault);
        let name = format!("{fault:?}.rdb").replace(['(', ')'], "");
        let out = rdbkit(
            &[
                "upload",
                file.to_str().unwrap(),
                "--sas-url",
                &sas,
                "--name",
                &name,
                "--block-size",
                "64K",
            ],
            &[&sas],
        );
        assert!(out.status.success(), "{fault:?}: {}", text(&out));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("retry 1"),
            "{}",
            text(&out)
        );
        assert_eq!(
            az.download(&c, &name),
            std::fs::read(&file).unwrap(),
            "{fault:?}"
        );
    }
    // Retries are bounded: a service that stays busy fails the upload.
    proxy.set(Fault::ServerBusyFirst(usize::MAX));
    let out = rdbkit(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--retries",
            "2",
        ],
        &[&sas],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(
        proxy.blocks_seen.load(Ordering::SeqCst) % 3,
        0,
        "each block tried 1 + 2 times"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_sas_urls_fail_clearly() {
    let Some(az) = Azurite::shared() else { return };
    let c = az.new_container();
    let file = fixture("servers/redis-6.2/types.rdb");
    let f = file.to_str().unwrap();

    // Expired: refused before any request, saying when.
    let expired = az.container_sas(&c, "rcw", -7200);
    let out = rdbkit(&["upload", f, "--sas-url", &expired], &[&expired]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("the SAS expired at") && text(&out).contains("2h"),
        "{}",
        text(&out)
    );

    // Signed with another key: the service's AuthenticationFailed, explained.
    let other_key =
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2d3h5ejAxMjM0NTY3ODk=";
    let forged = format!(
        "{}/{c}?{}",
        az.account_url(),
        account_sas_with_key("rcw", 3600, other_key)
    );
    let out = rdbkit(&["upload", f, "--sas-url", &forged], &[&forged]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("403 AuthenticationFailed")
            && text(&out).contains("signature is not valid"),
        "{}",
        text(&out)
    );

    // No write permission: refused before any request.
    let read_only = az.container_sas(&c, "r", 3600);
    let out = rdbkit(&["upload", f, "--sas-url", &read_only], &[&read_only]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("uploading needs w"), "{}", text(&out));

    // A container that does not exist.
    let missing = format!(
        "{}/no-such-container?{}",
        az.account_url(),
        account_sas("rcw", 3600)
    );
    let out = rdbkit(&["upload", f, "--sas-url", &missing], &[&missing]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("404 ContainerNotFound") && text(&out).contains("create it first"),
        "{}",
        text(&out)
    );

    // Not a SAS at all: a usage error that does not echo secrets.
    let out = rdbkit(
        &[
            "upload",
            f,
            "--sas-url",
            "https://acct.blob.core.windows.net/c",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("not a SAS URL"), "{}", text(&out));
}

#[test]
fn write_only_sas_uploads_without_resume_or_verification() {
    let Some(az) = Azurite::shared() else { return };
    let c = az.new_container();
    let sas = az.container_sas(&c, "cw", 3600);
    let file = fixture("servers/redis-7.4/lfu.rdb");
    let out = rdbkit(
        &["upload", file.to_str().unwrap(), "--sas-url", &sas],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("cannot list staged blocks"),
        "{}",
        text(&out)
    );
    assert!(text(&out).contains("NOT verified"), "{}", text(&out));
    assert_eq!(az.download(&c, "lfu.rdb"), std::fs::read(&file).unwrap());
}

#[test]
fn preflight_refuses_what_the_target_rejects() {
    let Some(az) = Azurite::shared() else { return };
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 3600);
    // A Redis 7.4 file (RDB 12) for Azure Cache Premium (reads RDB 9).
    let file = fixture("servers/redis-7.4/types.rdb");
    let f = file.to_str().unwrap();
    let out = rdbkit(
        &[
            "upload",
            f,
            "--sas-url",
            &sas,
            "--target",
            "azure-cache-premium",
        ],
        &[&sas],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("will not load on azure-cache-premium"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("rdbkit convert --target azure-cache-premium"),
        "{}",
        text(&out)
    );
    let out = rdbkit(
        &[
            "upload",
            f,
            "--sas-url",
            &sas,
            "--target",
            "azure-cache-premium",
            "--force",
        ],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("going on: --force"), "{}", text(&out));
}

#[test]
fn page_blob_is_padded_to_512_bytes() {
    let Some(az) = Azurite::shared() else { return };
    let dir = temp_dir("page");
    let file = generated_rdb(&dir, "page.rdb", 4_500_000); // more than one 4 MiB Put Page
    let data = std::fs::read(&file).unwrap();
    assert_ne!(data.len() % 512, 0);
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 3600);
    let out = rdbkit(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--page-blob",
        ],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    let padded = data.len().div_ceil(512) * 512;
    assert!(
        text(&out).contains(&format!("padded with {} zero bytes", padded - data.len())),
        "{}",
        text(&out)
    );
    let blob = az.download(&c, "page.rdb");
    assert_eq!(blob.len(), padded);
    assert_eq!(&blob[..data.len()], &data[..]);
    assert!(blob[data.len()..].iter().all(|&b| b == 0));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn then_import_dry_run_shows_the_request_without_secrets() {
    let Some(az) = Azurite::shared() else { return };
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 7200);
    let file = fixture("servers/redis-7.4/types.rdb");
    let out = rdbkit(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--then-import",
            "--dry-run",
            "--subscription",
            "sub-1",
            "--resource-group",
            "rg",
            "--cluster",
            "amr",
        ],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("POST https://management.azure.com/subscriptions/sub-1/resourceGroups/rg/providers/Microsoft.Cache/redisEnterprise/amr/databases/default/import?api-version=2025-07-01"), "{stdout}");
    assert!(
        stdout.contains(&format!("{}/{c}/types.rdb?sv=", az.account_url())),
        "{stdout}"
    );
    assert!(stdout.contains("sig=REDACTED"), "{stdout}");
    assert!(
        stdout.contains("az redisenterprise database import"),
        "{stdout}"
    );
}

#[test]
fn several_files_and_a_blob_sas() {
    let Some(az) = Azurite::shared() else { return };
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 3600);
    let a = fixture("servers/redis-7.4/lfu.rdb");
    let b = fixture("servers/redis-7.4/lru.rdb");
    let out = rdbkit(
        &[
            "upload",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--sas-url",
            &sas,
        ],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(az.download(&c, "lfu.rdb"), std::fs::read(&a).unwrap());
    assert_eq!(az.download(&c, "lru.rdb"), std::fs::read(&b).unwrap());
    // A SAS on one blob's URL names that blob, whatever the file is called; here it is
    // read from a file (--sas-url @FILE).
    let blob_sas = format!(
        "{}/{c}/named-by-url.rdb?{}",
        az.account_url(),
        account_sas("rcw", 3600)
    );
    let dir = temp_dir("several");
    let sas_file = dir.join("sas.txt");
    std::fs::write(&sas_file, format!("\n{blob_sas}\n")).unwrap();
    let at_file = format!("@{}", sas_file.display());
    let out = rdbkit(
        &["upload", a.to_str().unwrap(), "--sas-url", &at_file],
        &[&blob_sas],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        az.download(&c, "named-by-url.rdb"),
        std::fs::read(&a).unwrap()
    );
    // ... and cannot take two files.
    let out = rdbkit(
        &[
            "upload",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--sas-url",
            &blob_sas,
        ],
        &[&blob_sas],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("is a blob SAS"), "{}", text(&out));
}

/// Upload to the real Azurite, then the import against a CONTRACT fake of ARM.
#[test]
fn then_import_contract_chains_upload_and_import() {
    let Some(az) = Azurite::shared() else { return };
    let token = "eyJhbGciOi.upload-chain-token.sig";
    let op = "http://127.0.0.1:{port}/subscriptions/s/providers/Microsoft.Cache/locations/l/operationsStatus/op?api-version=2025-07-01";
    let arm = fake_arm::FakeArm::start(vec![
        fake_arm::answer(
            202,
            &[("Azure-AsyncOperation", op), ("Retry-After", "0")],
            "",
        ),
        fake_arm::answer(200, &[], r#"{"status":"Succeeded"}"#),
    ]);
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 7200);
    let file = fixture("servers/redis-7.4/big.rdb");
    let endpoint = arm.endpoint();
    let out = rdbkit_with_token(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--target",
            "azure-managed-redis",
            "--then-import",
            "--subscription",
            "s",
            "--resource-group",
            "g",
            "--cluster",
            "amr",
            "--arm-endpoint",
            &endpoint,
        ],
        &[&sas],
        Some(token),
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("upload-chain-token"), "{}", text(&out));
    assert!(
        text(&out).contains("deletes ALL its existing data"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Succeeded"),
        "{}",
        text(&out)
    );
    assert_eq!(az.download(&c, "big.rdb"), std::fs::read(&file).unwrap());
    let seen = arm.seen();
    assert_eq!(seen.len(), 2);
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    let blob_sas = body["sasUris"][0].as_str().unwrap().to_string();
    assert_eq!(
        blob_sas,
        format!(
            "{}/{c}/big.rdb?{}",
            az.account_url(),
            sas.split_once('?').unwrap().1
        )
    );
    // The URL the service gets really reads the blob.
    let got = ureq::get(&blob_sas)
        .header("x-ms-version", azurite::SV)
        .call()
        .unwrap()
        .into_body()
        .with_config()
        .limit(1 << 30)
        .read_to_vec()
        .unwrap();
    assert_eq!(got, std::fs::read(&file).unwrap());
}

/// Two files with one name (e.g. `node-1/dump.rdb node-2/dump.rdb`) would become the
/// same blob, the second overwriting the first: refused before anything is sent.
#[test]
fn two_files_with_one_blob_name_are_refused() {
    let dir = temp_dir("samename");
    for node in ["node-1", "node-2"] {
        std::fs::create_dir_all(dir.join(node)).unwrap();
        std::fs::copy(
            fixture("servers/redis-7.4/lfu.rdb"),
            dir.join(node).join("dump.rdb"),
        )
        .unwrap();
    }
    // Nothing listens on port 1: reaching the network would fail differently.
    let sas = format!(
        "http://127.0.0.1:1/devstoreaccount1/c?{}",
        account_sas("rcw", 3600)
    );
    let a = dir.join("node-1/dump.rdb");
    let b = dir.join("node-2/dump.rdb");
    let out = rdbkit(
        &[
            "upload",
            a.to_str().unwrap(),
            b.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--retries",
            "0",
        ],
        &[&sas],
    );
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("both become the blob") && !text(&out).contains("Connection refused"),
        "{}",
        text(&out)
    );
}

/// A file rewritten between an interrupted run and its resume, with the same name, size
/// and modification time (as `cp -p` or `rsync -t` leave it), and changed only in the
/// middle: the blocks staged from the old content must not be committed.
#[test]
fn resume_after_the_file_changed_never_commits_stale_blocks() {
    let Some(az) = Azurite::shared() else { return };
    let proxy = Proxy::start(az.port);
    let dir = temp_dir("stale");
    let file = generated_rdb(&dir, "dump.rdb", 1_000_000);
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let c = az.new_container();
    let sas = proxy.via(&az.container_sas(&c, "rcw", 3600), &az);
    let args = [
        "upload",
        file.to_str().unwrap(),
        "--sas-url",
        &sas,
        "--block-size",
        "64K",
        "--parallel",
        "1",
        "--retries",
        "0",
    ];
    // First run: blocks 0..5 staged, then the upload fails.
    proxy.set(Fault::FailBlocksAfter(5));
    let out = rdbkit(&args, &[&sas]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    // The file changes inside blocks 1..4 only; size and mtime stay.
    let mut data = std::fs::read(&file).unwrap();
    for b in &mut data[(64 << 10) + 100..(4 << 16) + 100] {
        *b ^= 0x5a;
    }
    std::fs::write(&file, &data).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(mtime)
        .unwrap();

    proxy.set(Fault::None);
    let out = rdbkit(&args, &[&sas]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        az.download(&c, "dump.rdb") == data,
        "the blob holds stale blocks of the old file:\n{}",
        text(&out)
    );
    // Block 0 did not change: it is still reused.
    assert!(text(&out).contains("resuming: 1 of"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A zero-byte file and files of exactly N blocks (or N pages) round-trip as block and
/// as page blobs (no empty trailing block, no padding where none is needed).
#[test]
fn edge_sizes_round_trip() {
    let Some(az) = Azurite::shared() else { return };
    let dir = temp_dir("edges");
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 3600);
    for (len, page) in [
        (0usize, false),
        (0, true),
        (2 << 16, false),
        (3 * 512, true),
    ] {
        let name = format!("f{len}-{page}.bin");
        let file = dir.join(&name);
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        std::fs::write(&file, &data).unwrap();
        let mut args = vec![
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--block-size",
            "64K",
            "--force", // not RDB snapshots
            "--json",
        ];
        if page {
            args.push("--page-blob");
        }
        let out = rdbkit(&args, &[&sas]);
        assert!(out.status.success(), "{name}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v[0]["blob_size"], len as u64, "{name}");
        assert_eq!(v[0]["padding"], 0, "{name}");
        if !page {
            assert_eq!(v[0]["blocks"], (len as u64).div_ceil(64 << 10), "{name}");
        }
        assert_eq!(az.download(&c, &name), data, "{name}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn parallel_out_of_range_is_a_usage_error() {
    let sas = format!(
        "http://127.0.0.1:1/devstoreaccount1/c?{}",
        account_sas("rcw", 3600)
    );
    let file = fixture("servers/redis-7.4/lfu.rdb");
    for n in ["0", "100000"] {
        let out = rdbkit(
            &[
                "upload",
                file.to_str().unwrap(),
                "--sas-url",
                &sas,
                "--parallel",
                n,
            ],
            &[&sas],
        );
        assert_eq!(out.status.code(), Some(2), "{n}: {}", text(&out));
        assert!(text(&out).contains("give 1 to 256"), "{n}: {}", text(&out));
    }
}

/// A SAS URL in the wrong place (`--sas-url` forgotten, or given as the FILE) must not
/// be echoed by the argument parser or by the file-not-found error.
#[test]
fn a_sas_url_in_the_wrong_place_is_not_echoed() {
    let sas = format!(
        "https://acct.blob.core.windows.net/c?{}",
        account_sas("rcw", 3600)
    );
    let cases: [&[&str]; 3] = [
        &[
            "import",
            &sas,
            "--subscription",
            "s",
            "--resource-group",
            "g",
            "--cluster",
            "c",
        ],
        &["upload", &sas, "--sas-url", &sas],
        &[
            "import",
            "--sas-url",
            &sas,
            "--file",
            &sas,
            "--subscription",
            "s",
            "--resource-group",
            "g",
            "--cluster",
            "c",
        ],
    ];
    for args in cases {
        // rdbkit() fails the test if any form of the signature shows.
        let out = rdbkit(args, &[&sas]);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("sig=REDACTED"),
            "{args:?}: {}",
            text(&out)
        );
    }
    // The parser's other answers are untouched: --help still goes to stdout with 0.
    let out = rdbkit(&["upload", "--help"], &[]);
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Examples:"));
}

/// Put Block List committed on the service but its answer lost: the retry commits the
/// same list again (`<Latest>` now finds the committed blocks) and the upload succeeds.
#[test]
fn a_commit_whose_answer_was_lost_is_retried_safely() {
    let Some(az) = Azurite::shared() else { return };
    let proxy = Proxy::start(az.port);
    let dir = temp_dir("lostcommit");
    let file = generated_rdb(&dir, "dump.rdb", 300_000);
    let c = az.new_container();
    let sas = proxy.via(&az.container_sas(&c, "rcw", 3600), &az);
    proxy.set(Fault::LoseBlockListAnswers(1));
    let out = rdbkit(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--block-size",
            "64K",
        ],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Put Block List") && text(&out).contains("retry 1"),
        "{}",
        text(&out)
    );
    assert_eq!(proxy.block_lists_seen.load(Ordering::SeqCst), 2);
    assert_eq!(az.download(&c, "dump.rdb"), std::fs::read(&file).unwrap());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_blob_name_without_a_name_is_a_usage_error() {
    let sas = format!(
        "http://127.0.0.1:1/devstoreaccount1/c?{}",
        account_sas("rcw", 3600)
    );
    let file = fixture("servers/redis-7.4/lfu.rdb");
    for name in ["", "dir/", "/"] {
        let out = rdbkit(
            &[
                "upload",
                file.to_str().unwrap(),
                "--sas-url",
                &sas,
                "--name",
                name,
                "--retries",
                "0",
            ],
            &[&sas],
        );
        assert_eq!(out.status.code(), Some(2), "{name:?}: {}", text(&out));
        assert!(
            text(&out).contains("--name") && !text(&out).contains("Connection refused"),
            "{name:?}: {}",
            text(&out)
        );
    }
}

/// Import options without --then-import would be ignored: an upload that exits 0 while
/// the user thinks the cache is being loaded. Refused before anything is sent.
#[test]
fn import_options_without_then_import_are_a_usage_error() {
    let sas = format!(
        "http://127.0.0.1:1/devstoreaccount1/c?{}",
        account_sas("rcw", 7200)
    );
    let file = fixture("servers/redis-7.4/lfu.rdb");
    let out = rdbkit(
        &[
            "upload",
            file.to_str().unwrap(),
            "--sas-url",
            &sas,
            "--subscription",
            "s",
            "--resource-group",
            "g",
            "--cluster",
            "amr",
            "--retries",
            "0",
        ],
        &[&sas],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("--then-import") && !text(&out).contains("Connection refused"),
        "{}",
        text(&out)
    );
}

/// The SAS URL from $RDBKIT_SAS_URL or --sas-url-file uploads as --sas-url does, without
/// the warning --sas-url gets (its URL shows in `ps`); every source is checked for the
/// signature in the output.
#[test]
fn sas_url_from_the_environment_or_a_file_and_a_warning_for_the_command_line() {
    let Some(az) = Azurite::shared() else { return };
    let c = az.new_container();
    let sas = az.container_sas(&c, "rcw", 3600);
    let file = fixture("servers/redis-7.4/lfu.rdb");
    let f = file.to_str().unwrap();
    let dir = temp_dir("sasfile");
    let sas_file = dir.join("sas.txt");
    std::fs::write(&sas_file, format!("{sas}\n")).unwrap();
    let sas_path = sas_file.to_str().unwrap();
    let warning = "can be read by other users";

    let out = rdbkit_with_env(
        &["upload", f, "--name", "from-env.rdb"],
        &[&sas],
        &[("RDBKIT_SAS_URL", &sas)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(warning), "{}", text(&out));
    assert_eq!(
        az.download(&c, "from-env.rdb"),
        std::fs::read(&file).unwrap()
    );

    // The file wins over the environment (here a SAS that could not upload).
    let read_only = az.container_sas(&c, "r", 3600);
    let out = rdbkit_with_env(
        &[
            "upload",
            f,
            "--name",
            "from-file.rdb",
            "--sas-url-file",
            sas_path,
        ],
        &[&sas, &read_only],
        &[("RDBKIT_SAS_URL", &read_only)],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains(warning), "{}", text(&out));
    assert_eq!(
        az.download(&c, "from-file.rdb"),
        std::fs::read(&file).unwrap()
    );

    let out = rdbkit(
        &["upload", f, "--name", "from-argv.rdb", "--sas-url", &sas],
        &[&sas],
    );
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(warning)
            && stderr.contains("$RDBKIT_SAS_URL")
            && stderr.contains("--sas-url-file"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(warning));
    assert_eq!(
        az.download(&c, "from-argv.rdb"),
        std::fs::read(&file).unwrap()
    );

    // No source, two URLs for one upload, two flags at once: usage errors.
    let out = rdbkit(&["upload", f], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("no SAS URL: set $RDBKIT_SAS_URL"),
        "{}",
        text(&out)
    );
    let two = dir.join("two.txt");
    std::fs::write(&two, format!("{sas}\n{sas}\n")).unwrap();
    let out = rdbkit(
        &["upload", f, "--sas-url-file", two.to_str().unwrap()],
        &[&sas],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("upload takes one"), "{}", text(&out));
    let out = rdbkit(
        &["upload", f, "--sas-url-file", sas_path, "--sas-url", &sas],
        &[&sas],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

/// An http:// SAS to a host that is not this machine would send the signature in clear
/// text: refused before any connection, from every source. Azurite on 127.0.0.1 (every
/// other test here) is allowed.
#[test]
fn plain_http_sas_to_another_host_is_refused() {
    let file = fixture("servers/redis-7.4/lfu.rdb");
    let f = file.to_str().unwrap();
    // 192.0.2.0/24 is TEST-NET-1: never routed, so nothing could answer anyway.
    let sas = format!(
        "http://192.0.2.1:10000/devstoreaccount1/c?{}",
        account_sas("rcw", 3600)
    );
    let started = std::time::Instant::now();
    for (args, env) in [
        (vec!["upload", f, "--sas-url", sas.as_str()], vec![]),
        (vec!["upload", f], vec![("RDBKIT_SAS_URL", sas.as_str())]),
    ] {
        let out = rdbkit_with_env(&args, &[&sas], &env);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert!(
            text(&out).contains("plain http would send the signature unencrypted"),
            "{}",
            text(&out)
        );
        assert!(text(&out).contains("sig=REDACTED"), "{}", text(&out));
    }
    // No connection attempt: a connect to TEST-NET would hang until its timeout.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

/// Off a terminal, `--progress always` prints a plain line every 2 s while blocks go out
/// (drawn by the CLI from the library's progress callbacks); `--progress never` prints none.
#[test]
fn progress_off_a_terminal_is_plain_lines() {
    let Some(az) = Azurite::shared() else { return };
    let proxy = Proxy::start(az.port);
    let dir = temp_dir("progress");
    // 7 blocks of 64 KiB, one at a time, each held 500 ms: about 3.5 s.
    let file = generated_rdb(&dir, "dump.rdb", 400_000);
    let c = az.new_container();
    let sas = proxy.via(&az.container_sas(&c, "rcw", 3600), &az);
    proxy.set(Fault::SlowBlocks(500));
    for (mode, name) in [("always", "always.rdb"), ("never", "never.rdb")] {
        let out = rdbkit(
            &[
                "--progress",
                mode,
                "upload",
                file.to_str().unwrap(),
                "--sas-url",
                &sas,
                "--name",
                name,
                "--block-size",
                "64K",
                "--parallel",
                "1",
            ],
            &[&sas],
        );
        assert!(out.status.success(), "{mode}: {}", text(&out));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines = stderr
            .lines()
            .filter(|l| l.starts_with("rdbkit: ") && l.contains(" MB (") && l.contains("MB/s"))
            .count();
        if mode == "always" {
            assert!(lines >= 1, "{stderr}");
        } else {
            assert_eq!(lines, 0, "{stderr}");
        }
        assert_eq!(az.download(&c, name), std::fs::read(&file).unwrap());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
