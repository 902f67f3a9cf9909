//! Azure Resource Manager: a bearer token, one POST, and the long-running-operation
//! protocol that follows it.
//!
//! ```text
//! POST {resource}/import?api-version=V   -> 202 Accepted
//!      Azure-AsyncOperation: {status URL}   (preferred)  | Location: {result URL}
//!      Retry-After: seconds
//! GET  {status URL}  -> 200 {"status": "InProgress" | "Succeeded" | "Failed" | "Canceled", "error": {...}}
//! GET  {result URL}  -> 202 (running) | 200/204 (done) | >= 400 {"error": {...}}
//! ```
//! The token goes only to the ARM endpoint's own origin and is never printed.

use std::io::Write;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::http::{Http, HttpError, Reply};
use super::sas::{redact, register_secret};

/// Where the token came from, which decides whether it can be renewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// `AZURE_ACCESS_TOKEN`.
    Env,
    /// `az account get-access-token`.
    AzCli,
}

/// An ARM bearer token. `Debug` does not show it.
#[derive(Clone)]
pub struct Token {
    secret: String,
    pub source: TokenSource,
    /// The audience asked for (see [`token_resource`]), for a renewal.
    resource: String,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({:?}, REDACTED)", self.source)
    }
}

/// The environment variable holding a ready token.
pub const TOKEN_ENV: &str = "AZURE_ACCESS_TOKEN";
const RESOURCE: &str = "https://management.azure.com/";

/// The audience of a token for `endpoint`: the endpoint itself (what the Azure SDKs ask
/// for, `{endpoint}/.default`), so sovereign clouds get a token their ARM accepts; public
/// Azure for a plain-http loopback endpoint (contract tests).
pub fn token_resource(endpoint: &str) -> String {
    match endpoint.strip_prefix("https://") {
        Some(host) => format!("https://{}/", host.trim_end_matches('/')),
        None => RESOURCE.to_string(),
    }
}

impl Token {
    /// `$AZURE_ACCESS_TOKEN`, else the Azure CLI's token for `resource`.
    pub fn obtain(resource: &str) -> Result<Token, String> {
        match std::env::var(TOKEN_ENV) {
            Ok(t) if !t.trim().is_empty() => {
                let secret = t.trim().to_string();
                register_secret(&secret);
                Ok(Token {
                    secret,
                    source: TokenSource::Env,
                    resource: resource.to_string(),
                })
            }
            _ => Token::from_az(resource),
        }
    }

    fn from_az(resource: &str) -> Result<Token, String> {
        let out = std::process::Command::new("az")
            .args([
                "account",
                "get-access-token",
                "--resource",
                resource,
                "--output",
                "json",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .map_err(|e| {
                format!(
                    "no ARM token: {TOKEN_ENV} is not set and the Azure CLI could not run ({e}); \
                     set {TOKEN_ENV} (e.g. from `az account get-access-token --resource {resource} \
                     --query accessToken -o tsv` on another machine) or install az and `az login`"
                )
            })?;
        let text = String::from_utf8_lossy(&out.stdout);
        let parsed: Option<String> = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            v.get("accessToken")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        match parsed {
            Some(secret) if out.status.success() => {
                register_secret(&secret);
                Ok(Token {
                    secret,
                    source: TokenSource::AzCli,
                    resource: resource.to_string(),
                })
            }
            _ => {
                let err = String::from_utf8_lossy(&out.stderr);
                Err(redact(&format!(
                    "no ARM token: `az account get-access-token` failed: {}; run `az login` or set {TOKEN_ENV}",
                    err.lines().find(|l| !l.trim().is_empty()).unwrap_or("no output").trim()
                )))
            }
        }
    }

    fn header(&self) -> String {
        format!("Bearer {}", self.secret)
    }
}

/// The ARM endpoint: https, or http on a loopback address (for contract tests). Parsed
/// as a URI, so `http://127.0.0.1:80@evil.example` is seen for the `evil.example` it is;
/// userinfo is refused outright (no ARM endpoint has one).
pub fn check_endpoint(endpoint: &str) -> Result<String, String> {
    let e = endpoint.trim().trim_end_matches('/');
    let uri: ureq::http::Uri = e
        .parse()
        .map_err(|err| format!("--arm-endpoint {e}: not a URL ({err})"))?;
    let authority = uri
        .authority()
        .ok_or_else(|| format!("--arm-endpoint {e}: give an https:// URL"))?;
    if authority.as_str().contains('@') {
        return Err(format!(
            "--arm-endpoint {}: a user name or password in the URL is not allowed",
            redact(e)
        ));
    }
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") => {
            let host = authority.host();
            if !(host == "127.0.0.1" || host == "localhost" || host == "[::1]") {
                return Err(format!(
                    "--arm-endpoint {e}: plain http is allowed only to 127.0.0.1, [::1] or \
                     localhost; use https"
                ));
            }
        }
        _ => return Err(format!("--arm-endpoint {e}: give an https:// URL")),
    }
    Ok(e.to_string())
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after = url.find("://").map_or(0, |i| i + 3);
    let end = url
        .get(after..)
        .and_then(|s| s.find('/'))
        .map_or(url.len(), |i| after + i);
    url.get(..end).unwrap_or(url)
}

/// A session with ARM.
#[derive(Debug)]
pub struct Arm {
    pub endpoint: String,
    pub http: Http,
    token: Token,
}

/// How a long-running operation ended badly, or why it could not be followed.
#[derive(Debug, Clone)]
pub struct ArmError {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub message: String,
}

impl std::fmt::Display for ArmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&self.message))
    }
}

/// The polling rules.
#[derive(Debug, Clone, Copy)]
pub struct Polling {
    /// Wait when the service sends no Retry-After.
    pub default_wait: Duration,
    /// Longest Retry-After obeyed.
    pub max_wait: Duration,
    /// The whole operation's limit.
    pub timeout: Duration,
}

/// The operation's end.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: String,
    pub polls: u32,
    pub seconds: f64,
    /// The status URL polled (no secret in it).
    pub operation: Option<String>,
}

impl Arm {
    pub fn new(endpoint: String, token: Token, http: Http) -> Arm {
        Arm {
            endpoint,
            http,
            token,
        }
    }

    fn send(&self, method: &str, url: &str, body: Option<&[u8]>) -> Result<Reply, HttpError> {
        let auth = self.token.header();
        let quiet = |_: u32, _: &str| {};
        self.http.call(
            &|agent| match (method, body) {
                ("POST", b) => agent
                    .post(url)
                    .header("Authorization", &auth)
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json")
                    .send(b.unwrap_or_default()),
                _ => agent
                    .get(url)
                    .header("Authorization", &auth)
                    .header("Accept", "application/json")
                    .call(),
            },
            &quiet,
        )
    }

    /// POSTs `body` to `path` (below the endpoint, with its query) and follows the
    /// operation to a terminal state; status changes go to `log`.
    pub fn post_and_follow(
        &mut self,
        path: &str,
        body: &Value,
        polling: Polling,
        log: &mut dyn Write,
    ) -> Result<Outcome, ArmError> {
        let started = Instant::now();
        let url = format!("{}{path}", self.endpoint);
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let reply = self
            .send("POST", &url, Some(&bytes))
            .map_err(|e| explain("starting the import", e, &self.token.resource))?;
        if reply.status == 200
            || reply.status == 204
            || reply.status == 201
                && reply.header("azure-asyncoperation").is_none()
                && reply.header("location").is_none()
        {
            return Ok(Outcome {
                status: "Succeeded".into(),
                polls: 0,
                seconds: started.elapsed().as_secs_f64(),
                operation: None,
            });
        }
        let (poll_url, via_async) = match (
            reply.header("azure-asyncoperation"),
            reply.header("location"),
        ) {
            (Some(a), _) => (a.to_string(), true),
            (None, Some(l)) => (l.to_string(), false),
            (None, None) => {
                return Err(ArmError {
                    status: Some(reply.status),
                    code: None,
                    message: format!(
                        "ARM answered {} without Azure-AsyncOperation or Location, so rdbkit \
                         cannot follow the import; it was accepted and may be running: watch the \
                         cache's provisioningState (portal, or `az redisenterprise show` / \
                         `az redis show`) before trying again{}",
                        reply.status,
                        ids(&reply)
                    ),
                })
            }
        };
        // The token goes only where the import was sent.
        if origin(&poll_url) != origin(&self.endpoint) {
            return Err(ArmError {
                status: None,
                code: None,
                message: format!(
                    "the operation URL {} is not on {}; not sending the token there",
                    redact(&poll_url),
                    self.endpoint
                ),
            });
        }
        let _ = writeln!(log, "import accepted; following {}", redact(&poll_url));
        let mut wait = self.wait_for(&reply, polling);
        let mut polls = 0u32;
        let mut last_status = String::from("Accepted");
        let mut renewed = false;
        loop {
            let left = polling.timeout.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(ArmError {
                    status: None,
                    code: Some("Timeout".into()),
                    message: format!(
                        "the import is still {last_status} after {}s (--timeout); it goes on in Azure: \
                         follow it with `az rest --method get --url '{}'`",
                        polling.timeout.as_secs(),
                        redact(&poll_url)
                    ),
                });
            }
            std::thread::sleep(wait.min(left));
            polls += 1;
            let reply = match self.send("GET", &poll_url, None) {
                Ok(r) => r,
                Err(HttpError::Status(r))
                    if r.status == 401 && !renewed && self.token.source == TokenSource::AzCli =>
                {
                    // Long imports outlive a token: get a fresh one once.
                    self.token = Token::from_az(&self.token.resource).map_err(|m| ArmError {
                        status: Some(401),
                        code: None,
                        message: m,
                    })?;
                    renewed = true;
                    continue;
                }
                Err(e) => return Err(explain("polling the import", e, &self.token.resource)),
            };
            wait = self.wait_for(&reply, polling);
            if via_async {
                let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
                // An answer without a status (a proxy's page, an empty body) tells
                // nothing about the import: say so rather than poll on as "InProgress".
                let Some(status) = v.get("status").and_then(Value::as_str).map(str::to_string)
                else {
                    let shown: String = reply.text().chars().take(200).collect();
                    return Err(ArmError {
                        status: Some(reply.status),
                        code: None,
                        message: redact(&format!(
                            "polling the import: HTTP {} from {} is not an operation status \
                             (no JSON \"status\"): {:?}; the import may still be running in \
                             Azure: check the cache's provisioning state{}",
                            reply.status,
                            poll_url,
                            shown.trim(),
                            ids(&reply)
                        )),
                    });
                };
                if status != last_status {
                    let _ = writeln!(log, "import: {status} ({}s)", started.elapsed().as_secs());
                    last_status.clone_from(&status);
                }
                // Compared as the Azure SDKs do: case does not matter.
                match status.to_ascii_lowercase().as_str() {
                    "succeeded" => {
                        return Ok(Outcome {
                            status: "Succeeded".into(),
                            polls,
                            seconds: started.elapsed().as_secs_f64(),
                            operation: Some(redact(&poll_url)),
                        })
                    }
                    "failed" | "canceled" | "cancelled" => return Err(failed(&status, &v, &reply)),
                    _ => {}
                }
            } else if reply.status == 202 {
                if last_status != "InProgress" {
                    let _ = writeln!(log, "import: InProgress ({}s)", started.elapsed().as_secs());
                    last_status = "InProgress".into();
                }
            } else {
                return Ok(Outcome {
                    status: "Succeeded".into(),
                    polls,
                    seconds: started.elapsed().as_secs_f64(),
                    operation: Some(redact(&poll_url)),
                });
            }
        }
    }

    fn wait_for(&self, reply: &Reply, p: Polling) -> Duration {
        reply
            .retry_after()
            .map_or(p.default_wait, |w| w.min(p.max_wait))
    }
}

/// `x-ms-request-id` and the correlation id, for a support case.
fn ids(reply: &Reply) -> String {
    let mut s = String::new();
    for h in ["x-ms-request-id", "x-ms-correlation-request-id"] {
        if let Some(v) = reply.header(h) {
            s.push_str(&format!("; {h} {v}"));
        }
    }
    s
}

/// `{"error": {"code", "message"}}` (ARM errors and failed operations).
fn error_of(v: &Value) -> (Option<String>, String) {
    let e = v.get("error").unwrap_or(v);
    let code = e.get("code").and_then(Value::as_str).map(str::to_string);
    let msg = e
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    (code, msg)
}

fn failed(status: &str, v: &Value, reply: &Reply) -> ArmError {
    let (code, msg) = error_of(v);
    let hint = hint_for_message(&msg);
    ArmError {
        status: Some(reply.status),
        code: code.clone(),
        message: redact(&format!(
            "the import {}: {}: {msg}{hint}{}",
            status.to_ascii_lowercase(),
            code.as_deref().unwrap_or("no error code"),
            ids(reply)
        )),
    }
}

/// What to do about the usual failure messages of the import itself.
fn hint_for_message(msg: &str) -> &'static str {
    let m = msg.to_ascii_lowercase();
    if m.contains("sas")
        && (m.contains("end time") || m.contains("expir") || m.contains("start time"))
    {
        "\n  hint: the service wants a SAS that expires at least 1 hour from now and starts (st=) at \
         least 15 minutes in the past (or has no st=); generate a new read SAS"
    } else if m.contains("authorizationfailure")
        || m.contains("not authorized to perform")
        || m.contains("firewall")
    {
        "\n  hint: the storage account's firewall or disabled public network access blocks the \
         cache; open the account to public access for the import (a SAS import needs the public \
         endpoint), or use a Premium cache with managed identity and trusted services"
    } else if m.contains("rdb") && (m.contains("version") || m.contains("format")) {
        "\n  hint: the file's RDB version is newer than the cache reads; run `rdbkit check --target ...`"
    } else {
        ""
    }
}

fn explain(doing: &str, e: HttpError, resource: &str) -> ArmError {
    match e {
        HttpError::Transport(t) => ArmError {
            status: None,
            code: None,
            message: format!("{doing}: no answer from Azure Resource Manager ({t})"),
        },
        HttpError::Status(reply) => {
            let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
            let (code, msg) = error_of(&v);
            let c = code.as_deref().unwrap_or_default();
            let what = match (reply.status, c) {
                (401, _) => format!(
                    "the ARM token was rejected (expired or for another audience); get a new one \
                     (`az account get-access-token --resource {resource}`; tokens last about an hour)"
                ),
                (403, _) => "the signed-in identity may not import into this cache: it needs \
                    Microsoft.Cache/.../import/action (Contributor or Redis Cache Contributor)"
                    .into(),
                (404, _) => "no such resource: check --subscription, --resource-group and \
                    --cache / --cluster / --database"
                    .into(),
                (409, _) => "the cache is busy with another operation (an import or export, \
                    scaling, patching); wait until its provisioningState is Succeeded and run \
                    this again"
                    .into(),
                (400, "InvalidApiVersionParameter") | (400, "NoRegisteredProviderFound") => {
                    "ARM does not know this api-version here; pass another with --api-version".into()
                }
                (429, _) => "ARM throttled the request and retries were used up; wait and retry".into(),
                (300..=399, _) => format!(
                    "ARM does not redirect, and rdbkit does not follow redirects (this one points \
                     to {}); check --arm-endpoint",
                    redact(reply.header("location").unwrap_or("nowhere"))
                ),
                (s, _) if s >= 500 => "Azure Resource Manager failed; retries were used up".into(),
                _ => "ARM refused the request".into(),
            };
            let hint = hint_for_message(&msg);
            ArmError {
                status: Some(reply.status),
                code: code.clone(),
                message: redact(&format!(
                    "{doing}: HTTP {} {}: {what}{}{hint}{}",
                    reply.status,
                    code.as_deref().unwrap_or("no error code"),
                    if msg.is_empty() {
                        String::new()
                    } else {
                        format!("; ARM said: {msg}")
                    },
                    ids(&reply)
                )),
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_https_or_loopback() {
        assert!(check_endpoint("https://management.azure.com/").is_ok());
        assert!(check_endpoint("http://127.0.0.1:8080").is_ok());
        assert!(check_endpoint("http://localhost:1").is_ok());
        assert!(check_endpoint("http://[::1]:9").is_ok());
        assert!(check_endpoint("http://10.0.0.1").is_err());
        assert!(check_endpoint("http://127.0.0.1.evil.example").is_err());
        assert!(check_endpoint("ftp://x").is_err());
        // Userinfo makes the real host the part after '@': never loopback then.
        for tricky in [
            "http://127.0.0.1@evil.example",
            "http://127.0.0.1:80@evil.example",
            "http://[::1]@evil.example/",
            "http://localhost:1@evil.example:80",
            "http://localhost.evil.example",
            "http://127.0.0.2",
            "http://user:pw@127.0.0.1:9",
        ] {
            assert!(check_endpoint(tricky).is_err(), "{tricky} was accepted");
        }
        assert_eq!(origin("http://127.0.0.1:9/a/b?x"), "http://127.0.0.1:9");
        assert_eq!(
            origin("https://management.azure.com"),
            "https://management.azure.com"
        );
    }

    #[test]
    fn the_token_audience_follows_the_endpoint() {
        // Sovereign clouds only accept tokens for their own ARM.
        assert_eq!(
            token_resource("https://management.usgovcloudapi.net"),
            "https://management.usgovcloudapi.net/"
        );
        assert_eq!(
            token_resource("https://management.chinacloudapi.cn"),
            "https://management.chinacloudapi.cn/"
        );
        assert_eq!(
            token_resource("https://management.azure.com"),
            "https://management.azure.com/"
        );
        // A loopback contract-test endpoint plays public Azure.
        assert_eq!(
            token_resource("http://127.0.0.1:8080"),
            "https://management.azure.com/"
        );
    }

    #[test]
    fn token_debug_hides_the_secret() {
        let t = Token {
            secret: "eyJsecret".into(),
            source: TokenSource::Env,
            resource: RESOURCE.into(),
        };
        assert!(!format!("{t:?}").contains("eyJsecret"));
    }
}
