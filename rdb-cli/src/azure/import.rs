//! `rdbkit import`: start the import of uploaded blobs into an Azure cache and follow it
//! to its end.
//!
//! ```text
//! Azure Managed Redis / Enterprise:  POST {arm}/subscriptions/S/resourceGroups/G/providers/
//!     Microsoft.Cache/redisEnterprise/C/databases/D/import?api-version=2025-07-01
//!     {"sasUris": ["https://acct.blob.core.windows.net/c/dump.rdb?sv=..&sig=.."]}
//! Azure Cache for Redis Premium:     POST {arm}/subscriptions/S/resourceGroups/G/providers/
//!     Microsoft.Cache/redis/N/import?api-version=2024-11-01
//!     {"files": ["https://..."], "format": "RDB"}
//! ```
//! The import DELETES all data in the cache first; the cache is unavailable meanwhile.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::arm::{check_endpoint, Arm, Polling, Token};
use super::http::Http;
use super::sas::{self, redact, SasUrl};
use super::PreflightOptions;
use crate::Failure;

/// Default api-version for `Microsoft.Cache/redisEnterprise` (body unchanged since 2022).
pub const AMR_API_VERSION: &str = "2025-07-01";
/// Default api-version for `Microsoft.Cache/redis`.
pub const PREMIUM_API_VERSION: &str = "2024-11-01";
/// Escaped in ARM path segments: everything but RFC 3986 unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// The service refuses a SAS expiring sooner than this.
const MIN_SAS_LIFETIME: i64 = 3600;
/// ... or starting later than this many seconds ago.
const MIN_SAS_AGE: i64 = 15 * 60;

/// Which cache to import into: the Azure Managed Redis (Enterprise) database or the Azure
/// Cache for Redis (Premium) cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cache {
    /// `Microsoft.Cache/redisEnterprise/{cluster}/databases/{database}`.
    Managed { cluster: String, database: String },
    /// `Microsoft.Cache/redis/{name}`.
    Premium { name: String },
}

/// Where and how to import. Shared by `import` and `upload --then-import`.
#[derive(Debug, Clone)]
pub struct ImportTargetOptions {
    pub subscription: String,
    pub resource_group: String,
    pub cache: Cache,
    /// ARM api-version (None: [`AMR_API_VERSION`] or [`PREMIUM_API_VERSION`]).
    pub api_version: Option<String>,
    /// Azure Resource Manager endpoint: https, or http on loopback (contract tests).
    pub arm_endpoint: String,
    /// Stop following the import after this long (it goes on in Azure).
    pub timeout: Duration,
    /// Longest wait between two polls, whatever Retry-After says.
    pub max_poll_interval: Duration,
    /// Print the request and the equivalent az command instead of sending it.
    pub dry_run: bool,
}

/// The public cloud's ARM endpoint.
pub const ARM_ENDPOINT: &str = "https://management.azure.com";

impl ImportTargetOptions {
    /// An import into `cache` with the defaults: public ARM, 3 h, polls at most 60 s apart.
    pub fn new(subscription: String, resource_group: String, cache: Cache) -> Self {
        ImportTargetOptions {
            subscription,
            resource_group,
            cache,
            api_version: None,
            arm_endpoint: ARM_ENDPOINT.to_string(),
            timeout: Duration::from_secs(3 * 3600),
            max_poll_interval: Duration::from_secs(60),
            dry_run: false,
        }
    }

    /// The ARM path of the import action, with its api-version.
    pub fn path(&self) -> String {
        let seg = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
        let base = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Cache",
            seg(&self.subscription),
            seg(&self.resource_group)
        );
        match &self.cache {
            Cache::Managed { cluster, database } => format!(
                "{base}/redisEnterprise/{}/databases/{}/import?api-version={}",
                seg(cluster),
                seg(database),
                self.api_version.as_deref().unwrap_or(AMR_API_VERSION)
            ),
            Cache::Premium { name } => format!(
                "{base}/redis/{}/import?api-version={}",
                seg(name),
                self.api_version.as_deref().unwrap_or(PREMIUM_API_VERSION)
            ),
        }
    }

    /// The request body, signatures included (never printed as is).
    pub fn body(&self, urls: &[SasUrl]) -> Value {
        let list: Vec<String> = urls.iter().map(SasUrl::secret_url).collect();
        match self.cache {
            Cache::Managed { .. } => json!({ "sasUris": list }),
            Cache::Premium { .. } => json!({ "files": list, "format": "RDB" }),
        }
    }

    /// The az CLI command doing the same, with the signatures redacted.
    pub fn az_command(&self, urls: &[SasUrl]) -> String {
        let quoted: Vec<String> = urls.iter().map(|u| format!("'{u}'")).collect();
        let sub = &self.subscription;
        let rg = &self.resource_group;
        match &self.cache {
            Cache::Managed { cluster, database } => format!(
                "az redisenterprise database import --subscription {sub} --resource-group {rg} \
                 --cluster-name {cluster} --database-name {database} --sas-uris {}",
                quoted.join(" ")
            ),
            Cache::Premium { name } => format!(
                "az redis import --subscription {sub} --resource-group {rg} --name {name} \
                 --file-format RDB --files {}",
                quoted.join(" ")
            ),
        }
    }

    fn kind(&self) -> &'static str {
        match self.cache {
            Cache::Managed { .. } => "Azure Managed Redis",
            Cache::Premium { .. } => "Azure Cache for Redis",
        }
    }

    fn name(&self) -> String {
        match &self.cache {
            Cache::Managed { cluster, database } => format!("{cluster}/{database}"),
            Cache::Premium { name } => name.clone(),
        }
    }
}

/// `rdbkit import`: which blobs, checked how, printed how.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// One blob SAS URL per file to import.
    pub sas_urls: Vec<SasUrl>,
    pub preflight: PreflightOptions,
    /// JSON on `out` instead of text.
    pub json: bool,
    pub target: ImportTargetOptions,
}

/// `rdbkit import`: pre-flight the local files, then [`start`].
pub fn run(
    args: &ImportOptions,
    files: &[(&Path, &[u8])],
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), Failure> {
    let urls = &args.sas_urls;
    if let Some(u) = urls.iter().find(|u| u.scope != sas::Scope::Blob) {
        return Err(Failure::Usage(format!(
            "{u}: a container SAS; the import needs one blob SAS URL per file"
        )));
    }
    check_endpoint(&args.target.arm_endpoint).map_err(Failure::Usage)?;
    if files.is_empty() && args.preflight.target.is_some() {
        writeln!(
            log,
            "note: no --file given, so the blobs are not checked against --target"
        )
        .map_err(Failure::Io)?;
    }
    for (path, data) in files {
        super::preflight(path, data, &args.preflight, log)?;
    }
    start(&args.target, urls, &args.preflight, args.json, out, log)
}

/// Why the service would refuse this SAS for an import: expired or expiring within the
/// hour, starting less than 15 minutes ago, or no read permission.
pub fn sas_problems(u: &SasUrl, now: i64) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(p) = u.time_problem(now) {
        problems.push(p);
    }
    if let Some(Ok(se)) = u.expiry() {
        if se > now && se < now + MIN_SAS_LIFETIME {
            problems.push(format!(
                "the SAS expires at {} ({} from now); the service wants at least 1 hour",
                sas::format_time(se),
                sas::human_duration(se - now)
            ));
        }
    }
    if let Some(Ok(st)) = u.start() {
        if st <= now && st > now - MIN_SAS_AGE {
            problems.push(format!(
                "the SAS starts at {} (st=); the service wants a start at least 15 minutes in \
                 the past, or none",
                sas::format_time(st)
            ));
        }
    }
    if u.lacks('r') {
        problems.push(format!(
            "the SAS has sp={} and the service needs r (read)",
            u.permissions().unwrap_or_default()
        ));
    }
    problems
}

/// Checks the SAS URLs, then sends the import (or prints it with --dry-run) and follows
/// it to its end.
pub fn start(
    target: &ImportTargetOptions,
    urls: &[SasUrl],
    pre: &PreflightOptions,
    json_out: bool,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), Failure> {
    let endpoint = check_endpoint(&target.arm_endpoint).map_err(Failure::Usage)?;
    let now = sas::now();
    for u in urls {
        for p in sas_problems(u, now) {
            let why = format!("{}: {p}", u.without_token());
            if pre.force {
                writeln!(log, "warning: {why} (going on: --force)").map_err(Failure::Io)?;
            } else {
                return Err(Failure::Refused(why));
            }
        }
    }
    let path = target.path();
    let body = target.body(urls);
    let shown_body = redact(&serde_json::to_string_pretty(&body).unwrap_or_default());
    if target.dry_run {
        if json_out {
            let v = json!({
                "method": "POST",
                "url": format!("{endpoint}{path}"),
                "body": serde_json::from_str::<Value>(&shown_body).unwrap_or(Value::Null),
                "az": target.az_command(urls),
            });
            writeln!(out, "{}", redact(&v.to_string())).map_err(Failure::Io)?;
        } else {
            writeln!(out, "POST {endpoint}{path}").map_err(Failure::Io)?;
            writeln!(
                out,
                "Authorization: Bearer <token: ${}, else az; not shown>",
                super::arm::TOKEN_ENV
            )
            .map_err(Failure::Io)?;
            writeln!(out, "Content-Type: application/json\n\n{shown_body}\n")
                .map_err(Failure::Io)?;
            writeln!(out, "equivalent az command:\n  {}", target.az_command(urls))
                .map_err(Failure::Io)?;
        }
        return Ok(());
    }
    writeln!(
        log,
        "WARNING: importing into {} {} deletes ALL its existing data; the cache is unavailable until the import ends",
        target.kind(),
        target.name()
    )
    .map_err(Failure::Io)?;
    let token = Token::obtain(&super::arm::token_resource(&endpoint))
        .map_err(|m| Failure::Usage(redact(&m)))?;
    let http = Http::new(Duration::from_secs(120), 4);
    let mut arm = Arm::new(endpoint, token, http);
    let polling = Polling {
        default_wait: Duration::from_secs(10).min(target.max_poll_interval),
        max_wait: target.max_poll_interval,
        timeout: target.timeout,
    };
    writeln!(
        log,
        "starting the import of {} blob(s) into {}",
        urls.len(),
        target.name()
    )
    .map_err(Failure::Io)?;
    let outcome = arm
        .post_and_follow(&path, &body, polling, log)
        .map_err(|e| Failure::Io(std::io::Error::other(redact(&e.to_string()))))?;
    if json_out {
        let v = json!({
            "status": outcome.status,
            "target": target.name(),
            "blobs": urls.iter().map(|u| u.without_token().to_string()).collect::<Vec<_>>(),
            "polls": outcome.polls,
            "seconds": outcome.seconds,
            "operation": outcome.operation,
        });
        writeln!(out, "{}", redact(&v.to_string())).map_err(Failure::Io)?;
    } else {
        writeln!(
            out,
            "import into {} {}: {} after {:.0}s ({} polls)",
            target.kind(),
            target.name(),
            outcome.status,
            outcome.seconds,
            outcome.polls
        )
        .map_err(Failure::Io)?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn target() -> ImportTargetOptions {
        ImportTargetOptions::new(
            "0000-1111".into(),
            "rg one".into(),
            Cache::Managed {
                cluster: "amr".into(),
                database: "default".into(),
            },
        )
    }

    #[test]
    fn paths_bodies_and_az_commands() {
        let u =
            SasUrl::parse("https://a.blob.core.windows.net/c/d.rdb?sr=b&sp=r&sig=secretsignature")
                .unwrap();
        let t = target();
        assert_eq!(
            t.path(),
            "/subscriptions/0000-1111/resourceGroups/rg%20one/providers/Microsoft.Cache/redisEnterprise/amr/databases/default/import?api-version=2025-07-01"
        );
        assert_eq!(
            t.body(std::slice::from_ref(&u))["sasUris"][0],
            u.secret_url()
        );
        assert!(!t
            .az_command(std::slice::from_ref(&u))
            .contains("secretsignature"));
        let p = ImportTargetOptions {
            cache: Cache::Premium {
                name: "prem".into(),
            },
            ..target()
        };
        assert!(
            p.path()
                .ends_with("/redis/prem/import?api-version=2024-11-01"),
            "{}",
            p.path()
        );
        assert_eq!(p.body(std::slice::from_ref(&u))["format"], "RDB");
        assert!(p.az_command(&[u]).starts_with("az redis import"));
    }
}
