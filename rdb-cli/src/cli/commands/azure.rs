//! `rdbkit upload` and `rdbkit import`: their arguments, resolved into the library's
//! [`UploadOptions`] and [`ImportOptions`], and the progress bar of an upload.

mod secrets;

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use clap::Args;
use rdb_cli::azure::import::{Cache, ImportOptions, ImportTargetOptions, ARM_ENDPOINT};
use rdb_cli::azure::sas::SasUrl;
use rdb_cli::azure::upload::{Phase, Source, UploadOptions, UploadProgress};
use rdb_cli::azure::PreflightOptions;
use rdb_cli::Failure;

use crate::cli::input::Input;
use crate::cli::progress::Progress;
use crate::cli::values::{parse_duration_ms, parse_size};
use crate::cli::Context;
use secrets::SasArgument;

/// The local pre-flight shared by upload and import.
#[derive(Args, Debug, Clone, Default)]
pub struct PreflightArgs {
    /// Check each file with `rdbkit check` for this target first (e.g. azure-managed-redis,
    /// azure-cache-premium; see `rdbkit targets`) and refuse one it will not load.
    #[arg(long, value_name = "PROFILE")]
    pub target: Option<String>,
    /// Go on although the pre-flight (file check, SAS validity) found a problem.
    #[arg(long)]
    pub force: bool,
}

impl PreflightArgs {
    fn options(&self) -> PreflightOptions {
        PreflightOptions {
            target: self.target.clone(),
            force: self.force,
        }
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rdbkit upload dump.rdb --sas-url 'https://acct.blob.core.windows.net/backups?sv=...&sr=c&sp=rcw&sig=...'\n  \
    rdbkit upload shard-*.rdb --sas-url \"$CONTAINER_SAS\" --target azure-managed-redis\n  \
    rdbkit upload dump.rdb --sas-url \"$SAS\" --then-import --subscription S --resource-group G --cluster C\n  \
    RDBKIT_SAS_URL=\"$SAS\" rdbkit upload dump.rdb    the URL stays out of the process list\n\n\
    The SAS needs w (and c) to upload, r to resume and verify, r for the import. Quote the URL: \
    it holds '&'. The signature (sig=) is never printed; the blob URL is shown without its token.\n\
    Run it again after an interruption: blocks already staged are not sent again.\n\n\
    Exit codes: 0 uploaded and verified, 1 refused by the pre-flight, 2 usage, I/O or service error.")]
pub struct UploadArgs {
    /// The RDB file(s) to upload (never modified).
    #[arg(required = true, num_args = 1..)]
    pub files: Vec<PathBuf>,
    /// A container SAS URL (each file becomes the blob named like the file, or --name) or a
    /// blob SAS URL (one file). Generate one with
    /// `az storage container generate-sas --permissions rcw --expiry ... --full-uri`.
    /// Visible in the process list (a warning says so): prefer $RDBKIT_SAS_URL or
    /// --sas-url-file. `@FILE` reads it from a file.
    #[arg(long, value_name = "URL")]
    pub sas_url: Option<SasArgument>,
    /// Read the SAS URL from FILE (one line); default: $RDBKIT_SAS_URL.
    #[arg(long, value_name = "FILE", conflicts_with = "sas_url")]
    pub sas_url_file: Option<PathBuf>,
    /// The blob name, with a container SAS and one file (default: the file's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Block size, e.g. 8MiB, 64MiB (default: 8 MiB, or more when the file needs over
    /// 50,000 blocks; at most 4000 MiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub block_size: Option<u64>,
    /// Blocks (or pages) in flight at once (1 to 256).
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub parallel: usize,
    /// Retries per request on connection errors, timeouts, 408, 429 and 5xx (exponential
    /// backoff with jitter).
    #[arg(long, value_name = "N", default_value_t = 6)]
    pub retries: u32,
    /// Upload a page blob instead (512-byte pages: the blob is padded with zeros to a
    /// multiple of 512, which the RDB loader ignores after the checksum). Only for tools
    /// that need page blobs; every Azure Redis import reads block blobs.
    #[arg(long)]
    pub page_blob: bool,
    #[command(flatten)]
    pub preflight: PreflightArgs,
    /// After the upload, start the import into the cache named by the import options
    /// below, as `rdbkit import` does, with the uploaded blobs' URLs.
    #[arg(long)]
    pub then_import: bool,
    /// Print JSON instead of text.
    // Before the flattened group: clap files every later option under its heading.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub import: ImportTargetArgs,
}

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
    #[arg(long, value_name = "URL", default_value = ARM_ENDPOINT)]
    pub arm_endpoint: String,
    /// Give up following the import after this long (it goes on in Azure), e.g. 90m, 3h.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms, default_value = "3h")]
    pub timeout: i64,
    /// Longest wait between two polls, whatever Retry-After says, e.g. 60s.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms, default_value = "60s")]
    pub max_poll_interval: i64,
    /// Print the import request and the equivalent az command (signatures redacted)
    /// instead of sending it; needs no token. With `upload --then-import`, the upload
    /// itself still happens.
    #[arg(long)]
    pub dry_run: bool,
}

impl ImportTargetArgs {
    /// Some option naming an import (those without a default) was given.
    fn any_given(&self) -> bool {
        self.subscription.is_some()
            || self.resource_group.is_some()
            || self.cluster.is_some()
            || self.cache.is_some()
            || self.api_version.is_some()
            || self.dry_run
    }

    /// The options, when the arguments name exactly one cache.
    fn options(&self) -> Result<ImportTargetOptions, String> {
        let (Some(subscription), Some(resource_group)) = (&self.subscription, &self.resource_group)
        else {
            return Err("the import needs --subscription and --resource-group".into());
        };
        let cache =
            match (&self.cluster, &self.cache) {
                (Some(cluster), None) => Cache::Managed {
                    cluster: cluster.clone(),
                    database: self.database.clone(),
                },
                (None, Some(name)) => Cache::Premium { name: name.clone() },
                _ => return Err(
                    "name the cache: --cluster NAME (Azure Managed Redis / Enterprise) or --cache \
                     NAME (Azure Cache for Redis Premium)"
                        .into(),
                ),
            };
        let duration = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        Ok(ImportTargetOptions {
            api_version: self.api_version.clone(),
            arm_endpoint: self.arm_endpoint.clone(),
            timeout: duration(self.timeout),
            max_poll_interval: duration(self.max_poll_interval),
            dry_run: self.dry_run,
            ..ImportTargetOptions::new(subscription.clone(), resource_group.clone(), cache)
        })
    }
}

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
    rdbkit import --sas-url \"$BLOB_SAS\" --subscription S --resource-group G --cluster my-amr\n  \
    rdbkit import --sas-url \"$BLOB_SAS\" --subscription S --resource-group G --cache my-premium \\\n      \
    --file dump.rdb --target azure-cache-premium\n  \
    rdbkit import --sas-url \"$A\" --sas-url \"$B\" ... --dry-run     print the request and the az command\n  \
    RDBKIT_SAS_URL=\"$A $B\" rdbkit import ...      the URLs stay out of the process list\n\n\
    Token: $AZURE_ACCESS_TOKEN, else `az account get-access-token`. It is never printed.\n\
    The blob SAS needs r, must expire at least 1 hour from now and, if it has st=, start at least \
    15 minutes ago; the storage account must allow public network access.\n\
    WARNING: the import deletes all data in the cache, which is unavailable until it ends.\n\n\
    Exit codes: 0 import succeeded, 1 refused by the pre-flight, 2 usage error or the import failed.")]
pub struct ImportArgs {
    /// A blob SAS URL to import (repeat for several files, e.g. one per shard), or a
    /// container SAS URL with the blob's name added to its path; `@FILE` reads it from a
    /// file. Visible in the process list (a warning says so): prefer $RDBKIT_SAS_URL
    /// (URLs separated by white space) or --sas-url-file.
    #[arg(long = "sas-url", value_name = "URL")]
    pub sas_urls: Vec<SasArgument>,
    /// Read the SAS URLs from FILE, one per line (repeatable); default: $RDBKIT_SAS_URL.
    #[arg(
        long = "sas-url-file",
        value_name = "FILE",
        conflicts_with = "sas_urls"
    )]
    pub sas_url_files: Vec<PathBuf>,
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

/// The SAS URLs from the arguments or the environment, parsed.
fn sas_urls(args: &[SasArgument], files: &[&Path]) -> Result<Vec<SasUrl>, Failure> {
    let env = std::env::var_os(secrets::SAS_ENV);
    secrets::resolve(args, files, env, &mut std::io::stderr())
        .and_then(|urls| urls.iter().map(|u| SasUrl::parse(u)).collect())
        .map_err(Failure::Usage)
}

impl UploadArgs {
    fn options(&self) -> Result<UploadOptions, Failure> {
        let urls = sas_urls(
            self.sas_url.as_slice(),
            self.sas_url_file.as_deref().as_slice(),
        )?;
        let [sas] = <[SasUrl; 1]>::try_from(urls).map_err(|urls| {
            Failure::Usage(format!(
                "{} SAS URLs given; upload takes one (a container SAS for several files)",
                urls.len()
            ))
        })?;
        let then_import = if self.then_import {
            Some(self.import.options().map_err(Failure::Usage)?)
        } else if self.import.any_given() {
            // Ignored, they would leave an upload that exits 0 with no import started.
            return Err(Failure::Usage(
                "--subscription, --resource-group, --cluster, --cache, --api-version and \
                 --dry-run are import options: add --then-import to import after the upload, \
                 or drop them"
                    .into(),
            ));
        } else {
            None
        };
        Ok(UploadOptions {
            name: self.name.clone(),
            block_size: self.block_size,
            parallel: self.parallel,
            retries: self.retries,
            page_blob: self.page_blob,
            preflight: self.preflight.options(),
            json: self.json,
            then_import,
            ..UploadOptions::new(sas)
        })
    }
}

impl ImportArgs {
    fn options(&self) -> Result<ImportOptions, Failure> {
        let files: Vec<&Path> = self.sas_url_files.iter().map(PathBuf::as_path).collect();
        let sas_urls = sas_urls(&self.sas_urls, &files)?;
        Ok(ImportOptions {
            sas_urls,
            preflight: self.preflight.options(),
            json: self.json,
            target: self.target.options().map_err(Failure::Usage)?,
        })
    }
}

/// Draws an upload's progress: one [`Progress`] per file, retry notices above it.
struct UploadBar<'a> {
    cx: &'a Context,
    current: Mutex<Option<Progress>>,
}

impl UploadBar<'_> {
    fn with<R>(&self, f: impl FnOnce(&mut Option<Progress>) -> R) -> R {
        // A worker that panicked while drawing left nothing to protect: go on drawing.
        let mut guard = self.current.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut guard)
    }
}

impl UploadProgress for UploadBar<'_> {
    fn phase(&self, file: &str, phase: Phase, total: u64) {
        self.with(|current| {
            let p = match current {
                Some(p) if phase != Phase::Hashing => p,
                _ => current.insert(self.cx.progress(total)),
            };
            p.message(match phase {
                Phase::Hashing => format!("{file} (hashing) "),
                Phase::Sending => format!("{file} "),
            });
        });
    }

    fn sent(&self, done: u64, _total: u64) {
        self.with(|current| {
            if let Some(p) = current {
                p.set(done);
            }
        });
    }

    fn retry(&self, line: &str) {
        self.with(|current| match current {
            Some(p) => p.println(line),
            None => eprintln!("{line}"),
        });
    }

    fn finish(&self) {
        // Dropping it clears the bar.
        self.with(|current| current.take());
    }
}

pub fn upload(args: &UploadArgs, cx: &Context) -> Result<(), Failure> {
    let options = args.options()?;
    let inputs = args
        .files
        .iter()
        .map(|f| Input::open_as_is(f))
        .collect::<Result<Vec<_>, _>>()?;
    let sources: Vec<Source<'_>> = args
        .files
        .iter()
        .zip(&inputs)
        .map(|(path, input)| Source {
            path,
            data: input.bytes(),
        })
        .collect();
    let bar = UploadBar {
        cx,
        current: Mutex::new(None),
    };
    let mut out = std::io::stdout().lock();
    rdb_cli::azure::upload::run(&options, &sources, &bar, &mut out, &mut std::io::stderr())
        .map(drop)
}

pub fn import(args: &ImportArgs, _cx: &Context) -> Result<(), Failure> {
    let options = args.options()?;
    let inputs = args
        .files
        .iter()
        .map(|f| Input::open_as_is(f))
        .collect::<Result<Vec<_>, _>>()?;
    let files: Vec<(&Path, &[u8])> = args
        .files
        .iter()
        .zip(&inputs)
        .map(|(p, i)| (p.as_path(), i.bytes()))
        .collect();
    let mut out = std::io::stdout().lock();
    rdb_cli::azure::import::run(&options, &files, &mut out, &mut std::io::stderr())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Upload {
        #[command(flatten)]
        upload: UploadArgs,
    }

    #[derive(Parser, Debug)]
    struct Import {
        #[command(flatten)]
        import: ImportArgs,
    }

    #[test]
    fn debug_of_the_arguments_hides_the_signature() {
        let url =
            "https://a.blob.core.windows.net/c?sv=2022-11-02&sr=c&sp=rcw&sig=dontshowthissignature";
        let cli = Upload::try_parse_from(["upload", "dump.rdb", "--sas-url", url]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("dontshowthissignature"), "{shown}");
        assert!(shown.contains("sig=REDACTED"), "{shown}");
        let url = "https://a.blob.core.windows.net/c/d.rdb?sr=b&sp=r&sig=dontshowthissignature";
        let cli = Import::try_parse_from(["import", "--sas-url", url, "--cache", "c"]).unwrap();
        let shown = format!("{cli:?}");
        assert!(!shown.contains("dontshowthissignature"), "{shown}");
    }

    #[test]
    fn import_arguments_name_exactly_one_cache() {
        let url = "https://a.blob.core.windows.net/c/d.rdb?sr=b&sp=r&sig=abcdefghijkl";
        let parse = |extra: &[&str]| {
            let mut argv = vec!["import", "--sas-url", url];
            argv.extend_from_slice(extra);
            Import::try_parse_from(argv).unwrap().import.options()
        };
        let o = parse(&[
            "--subscription",
            "s",
            "--resource-group",
            "g",
            "--cluster",
            "c",
            "--timeout",
            "90m",
        ])
        .unwrap();
        assert_eq!(
            o.target.cache,
            Cache::Managed {
                cluster: "c".into(),
                database: "default".into()
            }
        );
        assert_eq!(o.target.timeout, Duration::from_secs(90 * 60));
        assert_eq!(o.target.max_poll_interval, Duration::from_secs(60));
        let o = parse(&[
            "--subscription",
            "s",
            "--resource-group",
            "g",
            "--cache",
            "p",
        ])
        .unwrap();
        assert_eq!(o.target.cache, Cache::Premium { name: "p".into() });
        assert!(parse(&["--subscription", "s", "--resource-group", "g"]).is_err());
        assert!(parse(&["--subscription", "s", "--cache", "p"]).is_err());
    }
}
