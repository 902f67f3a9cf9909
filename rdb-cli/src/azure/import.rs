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
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::arm::{check_endpoint, Arm, Polling, Token};
use super::http::Http;
use super::sas::{self, redact, SasUrl};
use super::{parse_secs, PreflightArgs};
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

/// Which cache to import into. Shared by `import` and `upload --then-import`.
#[derive(Args, Debug, Clone, Default)]
#[command(next_help_heading = "Import target")]
pub struct ImportTargetArgs {
    /// The subscription ID of the cache.
    #[arg(long, value_name = "ID")]
    pub subscription: Option<String>,
    /// The cache's resource group.
    #[arg(long, value_name = "NAME")]
    pub resource_group: Option<String>,
    /// Azure Managed Redis (or Enterprise) cluster name: imports with redisEnterprise.
    #[arg(long, value_name = "NAME", conflicts_with = "cache")]
    pub cluster: Option<String>,
    /// The database of --cluster.
    #[arg(long, value_name = "NAME", default_value = "default")]
    pub database: String,
    /// Azure Cache for Redis (Premium) cache name: imports with Microsoft.Cache/redis.
    #[arg(long, value_name = "NAME")]
    pub cache: Option<String>,
    /// ARM api-version (default: 2025-07-01 for --cluster, 2024-11-01 for --cache).
    #[arg(long, value_name = "VERSION")]
    pub api_version: Option<String>,
    /// Azure Resource Manager endpoint (sovereign clouds; plain http only to loopback,
    /// for contract tests).
    #[arg(
        long,
        value_name = "URL",
        default_value = "https://management.azure.com"
    )]
    pub arm_endpoint: String,
    /// Give up following the import after this long (it goes on in Azure), e.g. 90m, 3h.
    #[arg(long, value_name = "DURATION", value_parser = parse_secs, default_value = "3h")]
    pub timeout: u64,
    /// Longest wait between two polls, whatever Retry-After says, e.g. 60s.
    #[arg(long, value_name = "DURATION", value_parser = parse_secs, default_value = "60s")]
    pub max_poll_interval: u64,
    /// Print the import request and the equivalent az command (signatures redacted)
    /// instead of sending it; needs no token. With `upload --then-import`, the upload
    /// itself still happens.
    #[arg(long)]
    pub dry_run: bool,
}

impl ImportTargetArgs {
    /// Some option naming an import (those without a default) was given.
    pub fn any_given(&self) -> bool {
        self.subscription.is_some()
            || self.resource_group.is_some()
            || self.cluster.is_some()
            || self.cache.is_some()
            || self.api_version.is_some()
            || self.dry_run
    }

    /// The arguments name exactly one cache.
    pub fn validate(&self) -> Result<(), String> {
        if self.subscription.is_none() || self.resource_group.is_none() {
            return Err("the import needs --subscription and --resource-group".into());
        }
        if self.cluster.is_none() == self.cache.is_none() {
            return Err(
                "name the cache: --cluster NAME (Azure Managed Redis / Enterprise) or --cache NAME \
                 (Azure Cache for Redis Premium)"
                    .into(),
            );
        }
        check_endpoint(&self.arm_endpoint)?;
        Ok(())
    }

    /// The ARM path of the import action, with its api-version.
    pub fn path(&self) -> String {
        let seg = |s: &str| utf8_percent_encode(s, SEGMENT).to_string();
        let base = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Cache",
            seg(self.subscription.as_deref().unwrap_or_default()),
            seg(self.resource_group.as_deref().unwrap_or_default())
        );
        match (&self.cluster, &self.cache) {
            (Some(c), _) => format!(
                "{base}/redisEnterprise/{}/databases/{}/import?api-version={}",
                seg(c),
                seg(&self.database),
                self.api_version.as_deref().unwrap_or(AMR_API_VERSION)
            ),
            (None, c) => format!(
                "{base}/redis/{}/import?api-version={}",
                seg(c.as_deref().unwrap_or_default()),
                self.api_version.as_deref().unwrap_or(PREMIUM_API_VERSION)
            ),
        }
    }

    /// The request body, signatures included (never printed as is).
    pub fn body(&self, urls: &[SasUrl]) -> Value {
        let list: Vec<String> = urls.iter().map(SasUrl::secret_url).collect();
        if self.cluster.is_some() {
            json!({ "sasUris": list })
        } else {
            json!({ "files": list, "format": "RDB" })
        }
    }

    /// The az CLI command doing the same, with the signatures redacted.
    pub fn az_command(&self, urls: &[SasUrl]) -> String {
        let quoted: Vec<String> = urls.iter().map(|u| format!("'{u}'")).collect();
        let sub = self.subscription.as_deref().unwrap_or_default();
        let rg = self.resource_group.as_deref().unwrap_or_default();
        match (&self.cluster, &self.cache) {
            (Some(c), _) => format!(
                "az redisenterprise database import --subscription {sub} --resource-group {rg} \
                 --cluster-name {c} --database-name {} --sas-uris {}",
                self.database,
                quoted.join(" ")
            ),
            (None, c) => format!(
                "az redis import --subscription {sub} --resource-group {rg} --name {} \
                 --file-format RDB --files {}",
                c.as_deref().unwrap_or_default(),
                quoted.join(" ")
            ),
        }
    }

    fn kind(&self) -> &'static str {
        if self.cluster.is_some() {
            "Azure Managed Redis"
        } else {
            "Azure Cache for Redis"
        }
    }

    fn name(&self) -> String {
        match (&self.cluster, &self.cache) {
            (Some(c), _) => format!("{c}/{}", self.database),
            (None, c) => c.clone().unwrap_or_default(),
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rdbkit import --sas-url \"$BLOB_SAS\" --subscription S --resource-group G --cluster my-amr\n  \
    rdbkit import --sas-url \"$BLOB_SAS\" --subscription S --resource-group G --cache my-premium \\\n      \
    --file dump.rdb --target azure-cache-premium\n  \
    rdbkit import --sas-url \"$A\" --sas-url \"$B\" ... --dry-run     print the request and the az command\n\n\
    Token: $AZURE_ACCESS_TOKEN, else `az account get-access-token`. It is never printed.\n\
    The blob SAS needs r, must expire at least 1 hour from now and, if it has st=, start at least \
    15 minutes ago; the storage account must allow public network access.\n\
    WARNING: the import deletes all data in the cache, which is unavailable until it ends.\n\n\
    Exit codes: 0 import succeeded, 1 refused by the pre-flight, 2 usage error or the import failed.")]
pub struct ImportArgs {
    /// A blob SAS URL to import (repeat for several files, e.g. one per shard), or a
    /// container SAS URL with the blob's name added to its path; `@FILE` reads it from a
    /// file.
    #[arg(long = "sas-url", value_name = "URL", required = true)]
    pub sas_urls: Vec<sas::SasArgument>,
    /// The local copy of a blob, checked with the --target pre-flight before the import
    /// (repeatable).
    #[arg(long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub preflight: PreflightArgs,
    /// Print JSON instead of text.
    // Before the flattened group: clap files every later option under its heading.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: ImportTargetArgs,
}

/// `rdbkit import`: pre-flight the local files, then [`start`].
pub fn run(
    args: &ImportArgs,
    files: &[(&Path, &[u8])],
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), Failure> {
    let urls = args
        .sas_urls
        .iter()
        .map(|u| u.resolve().and_then(|u| SasUrl::parse(&u)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(Failure::Usage)?;
    if let Some(u) = urls.iter().find(|u| u.scope != sas::Scope::Blob) {
        return Err(Failure::Usage(format!(
            "{u}: a container SAS; the import needs one blob SAS URL per file"
        )));
    }
    args.target.validate().map_err(Failure::Usage)?;
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
    start(&args.target, &urls, &args.preflight, args.json, out, log)
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
    target: &ImportTargetArgs,
    urls: &[SasUrl],
    pre: &PreflightArgs,
    json_out: bool,
    out: &mut dyn Write,
    log: &mut dyn Write,
) -> Result<(), Failure> {
    target.validate().map_err(Failure::Usage)?;
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
        default_wait: Duration::from_secs(10).min(Duration::from_secs(target.max_poll_interval)),
        max_wait: Duration::from_secs(target.max_poll_interval),
        timeout: Duration::from_secs(target.timeout),
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

    fn target() -> ImportTargetArgs {
        ImportTargetArgs {
            subscription: Some("0000-1111".into()),
            resource_group: Some("rg one".into()),
            cluster: Some("amr".into()),
            database: "default".into(),
            arm_endpoint: "https://management.azure.com".into(),
            ..Default::default()
        }
    }

    #[test]
    fn debug_of_the_arguments_hides_the_signature() {
        #[derive(clap::Parser, Debug)]
        struct Cli {
            #[command(flatten)]
            import: ImportArgs,
        }
        use clap::Parser;
        let url = "https://a.blob.core.windows.net/c/d.rdb?sr=b&sp=r&sig=dontshowthissignature";
        let cli = Cli::try_parse_from(["import", "--sas-url", url, "--cache", "c"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("dontshowthissignature"), "{shown}");
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
        let p = ImportTargetArgs {
            cluster: None,
            cache: Some("prem".into()),
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
        let none = ImportTargetArgs {
            cluster: None,
            ..target()
        };
        assert!(none.validate().is_err());
    }
}
