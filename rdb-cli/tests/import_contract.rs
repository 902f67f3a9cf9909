//! CONTRACT tests for `rdbkit import`: a local HTTP server on 127.0.0.1 plays Azure
//! Resource Manager's documented long-running-operation protocol (202 +
//! Azure-AsyncOperation or Location, Retry-After, InProgress -> Succeeded / Failed /
//! Canceled bodies, 409, 401, 404). This checks rdbkit's side of the contract (URL,
//! api-version, body, headers, polling, error mapping); it is not a test against Azure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)] // a test fails by panicking

mod fake_arm;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use fake_arm::{answer, FakeArm};

const TOKEN: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOi.contract-test-token.c2lnbmF0dXJl";
const SIG: &str = "dGhpc2lzYWZha2VzaWduYXR1cmVmb3J0ZXN0cw%3D%3D";

fn iso(t: i64) -> String {
    rdb_cli::azure::sas::format_time(t)
}

/// A blob SAS URL (never contacted) expiring `lifetime` seconds from now.
fn blob_sas(name: &str, lifetime: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    format!(
        "https://acct.blob.core.windows.net/backups/{name}?sv=2022-11-02&sr=b&sp=r&se={}&spr=https&sig={SIG}",
        iso(now + lifetime).replace(':', "%3A")
    )
}

fn rdbkit(args: &[&str]) -> Output {
    rdbkit_with_env(args, &[])
}

/// As [`rdbkit`], with `env` set and the caller's $RDBKIT_SAS_URL removed.
fn rdbkit_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(args)
        .env("AZURE_ACCESS_TOKEN", TOKEN)
        .env_remove("RDBKIT_SAS_URL")
        .envs(env.iter().copied())
        .output()
        .expect("run rdbkit");
    let all = text(&out);
    for secret in [
        TOKEN,
        SIG,
        "dGhpc2lzYWZha2VzaWduYXR1cmVmb3J0ZXN0cw==",
        "contract-test-token",
    ] {
        assert!(!all.contains(secret), "output shows a secret:\n{all}");
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

const AMR_PATH: &str = "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Cache/redisEnterprise/amr-1/databases/default/import?api-version=2025-07-01";
const OP: &str = "http://127.0.0.1:{port}/subscriptions/sub-1/providers/Microsoft.Cache/locations/westeurope/operationsStatus/op-1?api-version=2025-07-01";

fn amr_args<'a>(arm: &'a str, sas: &'a [String]) -> Vec<&'a str> {
    let mut a = vec![
        "import",
        "--subscription",
        "sub-1",
        "--resource-group",
        "rg-1",
        "--cluster",
        "amr-1",
        "--arm-endpoint",
        arm,
    ];
    for s in sas {
        a.extend(["--sas-url", s.as_str()]);
    }
    a
}

#[test]
fn contract_amr_import_polls_azure_asyncoperation_until_succeeded() {
    let arm = FakeArm::start(vec![
        answer(
            202,
            &[
                ("Azure-AsyncOperation", OP),
                ("Location", "http://127.0.0.1:{port}/result"),
                ("Retry-After", "1"),
            ],
            "",
        ),
        answer(
            200,
            &[("Retry-After", "1")],
            r#"{"name":"op-1","status":"InProgress","startTime":"2026-12-01T10:00:00Z"}"#,
        ),
        answer(
            200,
            &[],
            r#"{"name":"op-1","status":"Succeeded","endTime":"2026-12-01T10:02:00Z"}"#,
        ),
    ]);
    let sas = vec![blob_sas("shard-0.rdb", 7200), blob_sas("shard-1.rdb", 7200)];
    let endpoint = arm.endpoint();
    let out = rdbkit(&amr_args(&endpoint, &sas));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("deletes ALL its existing data"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Succeeded after"),
        "{}",
        text(&out)
    );

    let seen = arm.seen();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let post = &seen[0];
    assert_eq!(post.method, "POST");
    assert_eq!(post.target, AMR_PATH);
    assert_eq!(
        post.header("Authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    assert_eq!(post.header("Content-Type"), Some("application/json"));
    let body: serde_json::Value = serde_json::from_str(&post.body).expect("json body");
    assert_eq!(body, serde_json::json!({ "sasUris": sas }));
    for poll in &seen[1..] {
        assert_eq!(poll.method, "GET");
        assert_eq!(poll.target, "/subscriptions/sub-1/providers/Microsoft.Cache/locations/westeurope/operationsStatus/op-1?api-version=2025-07-01");
        assert_eq!(
            poll.header("Authorization"),
            Some(format!("Bearer {TOKEN}").as_str())
        );
    }
    // Retry-After: 1 was honoured before each poll.
    assert!(
        seen[1].at - seen[0].at >= Duration::from_millis(900),
        "{:?}",
        seen[1].at - seen[0].at
    );
    assert!(seen[2].at - seen[1].at >= Duration::from_millis(900));
}

#[test]
fn contract_premium_import_polls_location_until_done() {
    let arm = FakeArm::start(vec![
        answer(202, &[("Location", "http://127.0.0.1:{port}/subscriptions/sub-1/providers/Microsoft.Cache/locations/westeurope/operationResults/op-2?api-version=2024-11-01"), ("Retry-After", "0")], ""),
        answer(202, &[("Retry-After", "0")], ""),
        answer(204, &[], ""),
    ]);
    let sas = blob_sas("dump.rdb", 7200);
    let endpoint = arm.endpoint();
    let out = rdbkit(&[
        "import",
        "--subscription",
        "sub-1",
        "--resource-group",
        "rg-1",
        "--cache",
        "prem-1",
        "--arm-endpoint",
        &endpoint,
        "--sas-url",
        &sas,
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["status"], "Succeeded");
    assert_eq!(v["polls"], 2);
    assert_eq!(
        v["blobs"][0],
        "https://acct.blob.core.windows.net/backups/dump.rdb"
    );
    let seen = arm.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(seen[0].target, "/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Cache/redis/prem-1/import?api-version=2024-11-01");
    let body: serde_json::Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(body, serde_json::json!({ "files": [sas], "format": "RDB" }));
    assert!(seen[1].target.contains("/operationResults/op-2"));
}

#[test]
fn contract_failed_and_canceled_operations_report_code_and_message() {
    let cases = [
        (
            r#"{"status":"Failed","error":{"code":"ImportFailed","message":"One of the SAS URIs provided could not be used for the following reason: The SAS token end time (se) must be at least 1 hour from now and the start time (st), if given, must be at least 15 minutes in the past."}}"#,
            [
                "import failed: ImportFailed: One of the SAS URIs",
                "expires at least 1 hour from now",
            ],
        ),
        (
            r#"{"status":"Failed","error":{"code":"OperationFailed","message":"AuthorizationFailure: This request is not authorized to perform this operation."}}"#,
            ["OperationFailed: AuthorizationFailure", "firewall"],
        ),
        (
            r#"{"status":"Canceled","error":{"code":"OperationCanceled","message":"The operation was canceled."}}"#,
            ["import canceled: OperationCanceled", "was canceled"],
        ),
    ];
    for (status_body, expect) in cases {
        let arm = FakeArm::start(vec![
            answer(
                202,
                &[("Azure-AsyncOperation", OP), ("Retry-After", "0")],
                "",
            ),
            answer(200, &[("x-ms-request-id", "req-42")], status_body),
        ]);
        let sas = vec![blob_sas("dump.rdb", 7200)];
        let endpoint = arm.endpoint();
        let out = rdbkit(&amr_args(&endpoint, &sas));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        for e in expect {
            assert!(text(&out).contains(e), "missing {e:?} in:\n{}", text(&out));
        }
        assert!(
            text(&out).contains("x-ms-request-id req-42"),
            "{}",
            text(&out)
        );
    }
}

#[test]
fn contract_post_errors_409_401_404_403_are_explained() {
    let cases = [
        (
            409,
            r#"{"error":{"code":"Conflict","message":"The resource 'amr-1' is busy processing a previous update request or is undergoing system maintenance."}}"#,
            "busy with another operation",
        ),
        (
            401,
            r#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token expiry UTC time is earlier than current UTC time."}}"#,
            "ARM token was rejected",
        ),
        (
            404,
            r#"{"error":{"code":"ResourceNotFound","message":"The Resource 'Microsoft.Cache/redisEnterprise/amr-1' under resource group 'rg-1' was not found."}}"#,
            "check --subscription, --resource-group",
        ),
        (
            403,
            r#"{"error":{"code":"AuthorizationFailed","message":"The client does not have authorization to perform action."}}"#,
            "import/action",
        ),
    ];
    for (status, body, expect) in cases {
        let arm = FakeArm::start(vec![answer(
            status,
            &[("x-ms-correlation-request-id", "corr-7")],
            body,
        )]);
        let sas = vec![blob_sas("dump.rdb", 7200)];
        let endpoint = arm.endpoint();
        let out = rdbkit(&amr_args(&endpoint, &sas));
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        let t = text(&out);
        assert!(
            t.contains(&format!("HTTP {status}")) && t.contains(expect) && t.contains("corr-7"),
            "{status}: {t}"
        );
        assert_eq!(arm.seen().len(), 1, "{status}: no retry on a 4xx");
    }
}

#[test]
fn contract_429_while_polling_honours_retry_after() {
    let arm = FakeArm::start(vec![
        answer(
            202,
            &[("Azure-AsyncOperation", OP), ("Retry-After", "0")],
            "",
        ),
        answer(
            429,
            &[("Retry-After", "1")],
            r#"{"error":{"code":"TooManyRequests","message":"slow down"}}"#,
        ),
        answer(200, &[], r#"{"status":"Succeeded"}"#),
    ]);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let out = rdbkit(&amr_args(&endpoint, &sas));
    assert!(out.status.success(), "{}", text(&out));
    let seen = arm.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen[2].at - seen[1].at >= Duration::from_millis(900));
}

#[test]
fn contract_timeout_stops_following_and_says_so() {
    let mut script = vec![answer(
        202,
        &[("Azure-AsyncOperation", OP), ("Retry-After", "1")],
        "",
    )];
    for _ in 0..10 {
        script.push(answer(
            200,
            &[("Retry-After", "1")],
            r#"{"status":"InProgress"}"#,
        ));
    }
    let arm = FakeArm::start(script);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let mut args = amr_args(&endpoint, &sas);
    args.extend(["--timeout", "3s"]);
    let started = Instant::now();
    let out = rdbkit(&args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("still InProgress after 3s"),
        "{}",
        text(&out)
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn contract_token_is_not_sent_to_another_origin() {
    let arm = FakeArm::start(vec![answer(
        202,
        &[
            ("Azure-AsyncOperation", "http://127.0.0.2:9/steal?x=1"),
            ("Retry-After", "0"),
        ],
        "",
    )]);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let out = rdbkit(&amr_args(&endpoint, &sas));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("not sending the token there"),
        "{}",
        text(&out)
    );
}

#[test]
fn contract_refusals_send_nothing() {
    let arm = FakeArm::start(vec![]);
    let endpoint = arm.endpoint();
    // A SAS expiring in 30 minutes: the service wants at least an hour.
    let short = vec![blob_sas("dump.rdb", 1800)];
    let out = rdbkit(&amr_args(&endpoint, &short));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("wants at least 1 hour"),
        "{}",
        text(&out)
    );
    // An expired one.
    let expired = vec![blob_sas("dump.rdb", -60)];
    let out = rdbkit(&amr_args(&endpoint, &expired));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("the SAS expired at"), "{}", text(&out));
    // A local file the target cannot load (RDB 12 into Premium's RDB 9).
    let file =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/servers/redis-7.4/big.rdb");
    let ok = [blob_sas("big.rdb", 7200)];
    let mut args = vec![
        "import",
        "--subscription",
        "s",
        "--resource-group",
        "g",
        "--cache",
        "prem",
        "--arm-endpoint",
        &endpoint,
        "--sas-url",
        &ok[0],
        "--file",
        file.to_str().unwrap(),
        "--target",
        "azure-cache-premium",
    ];
    let out = rdbkit(&args);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("will not load on azure-cache-premium"),
        "{}",
        text(&out)
    );
    // Plain http to anything but loopback.
    args[8] = "http://management.example.com";
    let out = rdbkit(&args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("plain http is allowed only to 127.0.0.1"),
        "{}",
        text(&out)
    );
    assert!(arm.seen().is_empty(), "{:?}", arm.seen());
}

#[test]
fn contract_dry_run_prints_request_and_az_command_redacted() {
    let sas = [blob_sas("dump.rdb", 7200)];
    let out = rdbkit(&[
        "import",
        "--subscription",
        "sub-1",
        "--resource-group",
        "rg-1",
        "--cache",
        "prem-1",
        "--sas-url",
        &sas[0],
        "--dry-run",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("POST https://management.azure.com/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Cache/redis/prem-1/import?api-version=2024-11-01"), "{s}");
    assert!(
        s.contains("\"format\": \"RDB\"") && s.contains("sig=REDACTED"),
        "{s}"
    );
    assert!(s.contains("az redis import --subscription sub-1 --resource-group rg-1 --name prem-1 --file-format RDB --files 'https://acct.blob.core.windows.net/backups/dump.rdb?"), "{s}");
}

#[test]
fn contract_post_503_is_retried_and_location_failure_is_reported() {
    let arm = FakeArm::start(vec![
        answer(
            503,
            &[("Retry-After", "0")],
            r#"{"error":{"code":"ServiceUnavailable","message":"try again"}}"#,
        ),
        answer(
            202,
            &[
                ("Location", "http://127.0.0.1:{port}/operationResults/op-3"),
                ("Retry-After", "0"),
            ],
            "",
        ),
        answer(
            400,
            &[("x-ms-request-id", "req-9")],
            r#"{"error":{"code":"InvalidBlob","message":"The RDB file format version is not supported."}}"#,
        ),
    ]);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let out = rdbkit(&amr_args(&endpoint, &sas));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("polling the import: HTTP 400 InvalidBlob")
            && t.contains("format version is not supported"),
        "{t}"
    );
    assert!(t.contains("rdbkit check --target"), "{t}");
    let seen = arm.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[0].body, seen[1].body,
        "the retried POST is the same request"
    );
    assert_eq!(seen[2].target, "/operationResults/op-3");
}

#[test]
fn contract_a_redirected_post_is_not_taken_for_success() {
    // Followed as a GET (what HTTP clients do with a 302 to a POST), the 200 that comes
    // back would read as "import Succeeded" although nothing was imported.
    let arm = FakeArm::start(vec![
        answer(
            302,
            &[("Location", "http://127.0.0.1:{port}/somewhere-else")],
            "",
        ),
        answer(200, &[], "{}"),
    ]);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let out = rdbkit(&amr_args(&endpoint, &sas));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(!text(&out).contains("Succeeded"), "{}", text(&out));
    assert!(
        text(&out).contains("HTTP 302") && text(&out).contains("redirect"),
        "{}",
        text(&out)
    );
    assert_eq!(arm.seen().len(), 1, "the redirect was followed");
}

#[test]
fn contract_retry_after_as_an_http_date_is_honoured() {
    // RFC 9110 allows `Retry-After: <HTTP-date>`; 2 s from now means a wait of 1-2 s,
    // not the 10 s default for a missing header.
    let when = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let arm = FakeArm::start(vec![
        answer(
            202,
            &[("Azure-AsyncOperation", OP), ("Retry-After", when.as_str())],
            "",
        ),
        answer(200, &[], r#"{"status":"Succeeded"}"#),
    ]);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let out = rdbkit(&amr_args(&endpoint, &sas));
    assert!(out.status.success(), "{}", text(&out));
    let seen = arm.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "waited {waited:?} for Retry-After: {when}"
    );
}

#[test]
fn contract_a_status_answer_that_is_not_json_is_an_error() {
    // E.g. a proxy's HTML page with 200: it says nothing about the import, so rdbkit
    // must not report "InProgress" and poll on until --timeout.
    let mut script = vec![answer(
        202,
        &[("Azure-AsyncOperation", OP), ("Retry-After", "0")],
        "",
    )];
    for _ in 0..20 {
        script.push(answer(
            200,
            &[("Retry-After", "0")],
            "<html><body>Gateway says hello</body></html>",
        ));
    }
    let arm = FakeArm::start(script);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let mut args = amr_args(&endpoint, &sas);
    args.extend(["--timeout", "3s"]);
    let out = rdbkit(&args);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(!t.contains("InProgress"), "{t}");
    assert!(
        t.contains("not an operation status") && t.contains("Gateway says hello"),
        "{t}"
    );
    assert_eq!(arm.seen().len(), 2, "one poll is enough to know");
}

/// A stand-in `az` on PATH (CONTRACT test of the Azure CLI token path): it records its
/// arguments and hands out a new token on each call.
fn fake_az(dir: &std::path::Path) -> std::path::PathBuf {
    let script = dir.join("az");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> '{0}/args'\nn=$(wc -l < '{0}/args' | tr -d ' ')\n\
             printf '{{\"accessToken\": \"eyJ.fake-az-token-%s.c2ln\", \"tokenType\": \"Bearer\"}}' \"$n\"\n",
            dir.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir.join("args")
}

#[test]
fn contract_az_cli_token_is_renewed_once_on_a_401_while_polling() {
    let dir = std::env::temp_dir().join(format!("rdbkit-fake-az-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let args_file = fake_az(&dir);
    let arm = FakeArm::start(vec![
        answer(
            202,
            &[("Azure-AsyncOperation", OP), ("Retry-After", "0")],
            "",
        ),
        answer(
            401,
            &[],
            r#"{"error":{"code":"ExpiredAuthenticationToken","message":"The access token has expired."}}"#,
        ),
        answer(200, &[], r#"{"status":"Succeeded"}"#),
    ]);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_rdbkit"))
        .args(amr_args(&endpoint, &sas))
        .env_remove("AZURE_ACCESS_TOKEN")
        .env("PATH", path)
        .output()
        .unwrap();
    let calls = std::fs::read_to_string(&args_file).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!text(&out).contains("fake-az-token"), "{}", text(&out));
    let seen = arm.seen();
    assert_eq!(seen.len(), 3);
    assert_eq!(
        seen[1].header("Authorization"),
        Some("Bearer eyJ.fake-az-token-1.c2ln")
    );
    assert_eq!(
        seen[2].header("Authorization"),
        Some("Bearer eyJ.fake-az-token-2.c2ln")
    );
    // A loopback endpoint stands in for public Azure: the public ARM audience.
    assert_eq!(calls.lines().count(), 2, "{calls}");
    assert!(
        calls
            .lines()
            .all(|l| l.contains("get-access-token --resource https://management.azure.com/")),
        "{calls}"
    );
}

#[test]
fn contract_sync_answers_and_a_bare_202() {
    // 200 and 204 to the POST: done at once, nothing to poll.
    for status in [200, 204] {
        let arm = FakeArm::start(vec![answer(status, &[], "")]);
        let sas = vec![blob_sas("dump.rdb", 7200)];
        let endpoint = arm.endpoint();
        let mut args = amr_args(&endpoint, &sas);
        args.push("--json");
        let out = rdbkit(&args);
        assert!(out.status.success(), "{status}: {}", text(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(v["status"], "Succeeded");
        assert_eq!(v["polls"], 0);
        assert_eq!(arm.seen().len(), 1);
    }
    // 202 with nothing to follow: accepted, so the import may well be running; running
    // rdbkit again would only meet a 409.
    let arm = FakeArm::start(vec![answer(202, &[("x-ms-request-id", "req-5")], "")]);
    let sas = vec![blob_sas("dump.rdb", 7200)];
    let endpoint = arm.endpoint();
    let out = rdbkit(&amr_args(&endpoint, &sas));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("without Azure-AsyncOperation or Location")
            && t.contains("may be running")
            && t.contains("req-5"),
        "{t}"
    );
}

#[test]
fn contract_a_container_sas_on_a_blob_path_is_importable() {
    // What `upload --then-import` itself sends, and what a container SAS copied from the
    // portal plus "/dump.rdb" gives: the token (sr=c) covers every blob of the container.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let url = format!(
        "https://acct.blob.core.windows.net/backups/dump.rdb?sv=2022-11-02&sr=c&sp=rl&se={}&sig={SIG}",
        iso(now + 7200).replace(':', "%3A")
    );
    let out = rdbkit(&[
        "import",
        "--subscription",
        "s",
        "--resource-group",
        "g",
        "--cluster",
        "amr",
        "--sas-url",
        &url,
        "--dry-run",
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let sent = v["body"]["sasUris"][0].as_str().unwrap();
    assert!(
        sent.starts_with("https://acct.blob.core.windows.net/backups/dump.rdb?sv=2022-11-02&sr=c"),
        "{sent}"
    );
}

#[test]
fn contract_operation_statuses_are_matched_case_insensitively() {
    // The Azure SDKs lower-case the status before comparing; a "succeeded" must end the
    // poll, not run on to --timeout.
    for (body, ok) in [
        (r#"{"status":"succeeded"}"#, true),
        (
            r#"{"status":"FAILED","error":{"code":"X","message":"broken"}}"#,
            false,
        ),
    ] {
        let mut script = vec![answer(
            202,
            &[("Azure-AsyncOperation", OP), ("Retry-After", "0")],
            "",
        )];
        for _ in 0..5 {
            script.push(answer(200, &[("Retry-After", "1")], body));
        }
        let arm = FakeArm::start(script);
        let sas = vec![blob_sas("dump.rdb", 7200)];
        let endpoint = arm.endpoint();
        let mut args = amr_args(&endpoint, &sas);
        args.extend(["--timeout", "3s"]);
        let out = rdbkit(&args);
        assert_eq!(out.status.success(), ok, "{body}: {}", text(&out));
        assert_eq!(arm.seen().len(), 2, "{body}: {}", text(&out));
    }
}

/// Several blob SAS URLs from $RDBKIT_SAS_URL (white space between them) or from
/// --sas-url-file (one a line) all go into the request, with no warning; --sas-url warns.
#[test]
fn contract_sas_urls_from_the_environment_or_a_file() {
    let urls = [blob_sas("shard-1.rdb", 7200), blob_sas("shard-2.rdb", 7200)];
    let dry_run = [
        "import",
        "--subscription",
        "sub-1",
        "--resource-group",
        "rg-1",
        "--cluster",
        "amr-1",
        "--dry-run",
        "--json",
    ];
    let warning = "can be read by other users";
    let request = |out: &Output| -> serde_json::Value {
        assert!(out.status.success(), "{}", text(out));
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let env = format!("{}\n {}", urls[0], urls[1]);
    let out = rdbkit_with_env(&dry_run, &[("RDBKIT_SAS_URL", &env)]);
    let v = request(&out);
    let sent = v["body"]["sasUris"].as_array().unwrap();
    assert_eq!(sent.len(), 2, "{v}");
    assert!(sent[1].as_str().unwrap().contains("/shard-2.rdb?"), "{v}");
    assert!(!text(&out).contains(warning), "{}", text(&out));

    let dir = std::env::temp_dir().join(format!("rdbkit-sasfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (one, two) = (dir.join("one.txt"), dir.join("two.txt"));
    std::fs::write(&one, format!("{}\n\n{}\n", urls[0], urls[1])).unwrap();
    std::fs::write(&two, format!("{}\n", urls[1])).unwrap();
    let mut args = dry_run.to_vec();
    args.extend(["--sas-url-file", one.to_str().unwrap()]);
    args.extend(["--sas-url-file", two.to_str().unwrap()]);
    let out = rdbkit(&args);
    let _ = std::fs::remove_dir_all(&dir);
    let v = request(&out);
    assert_eq!(v["body"]["sasUris"].as_array().unwrap().len(), 3, "{v}");
    assert!(!text(&out).contains(warning), "{}", text(&out));

    let mut args = dry_run.to_vec();
    args.extend(["--sas-url", &urls[0]]);
    let out = rdbkit(&args);
    request(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(warning) && stderr.contains("$RDBKIT_SAS_URL"),
        "{stderr}"
    );

    let out = rdbkit(&dry_run);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no SAS URL"), "{}", text(&out));
}

/// A blob SAS over plain http to a host other than this machine is refused before ARM is
/// called (ARM would hand the signature to the storage service unencrypted).
#[test]
fn contract_plain_http_blob_sas_is_refused() {
    let arm = FakeArm::start(vec![]);
    let endpoint = arm.endpoint();
    let http = [blob_sas("dump.rdb", 7200).replace("https://", "http://")];
    let out = rdbkit(&amr_args(&endpoint, &http));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("plain http would send the signature unencrypted"),
        "{}",
        text(&out)
    );
    assert!(arm.seen().is_empty(), "{:?}", arm.seen());
}
