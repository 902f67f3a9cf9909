//! Getting a snapshot into Azure: `rdbkit upload` (a block or page blob through a SAS
//! URL) and `rdbkit import` (the ARM import action of Azure Managed Redis or Azure Cache
//! for Redis Premium, followed to its end).
//!
//! No secret is ever printed: SAS signatures and bearer tokens pass through
//! [`sas::redact`] in every message, URL and error.

pub mod arm;
pub mod blob;
pub mod http;
pub mod import;
pub mod sas;
pub mod upload;

use std::io::Write;
use std::path::Path;

use crate::Failure;

/// The local pre-flight shared by upload and import.
#[derive(Debug, Clone, Default)]
pub struct PreflightOptions {
    /// The target profile each file must load on as it is (None: only read the header).
    pub target: Option<String>,
    /// Report what the pre-flight (file check, SAS validity) found and go on.
    pub force: bool,
}

/// Checks `data` (the file at `path`) against `--target`, or only reads its header when
/// no target is given. Reports to `log`; refuses unless `--force`.
pub fn preflight(
    path: &Path,
    data: &[u8],
    args: &PreflightOptions,
    log: &mut dyn Write,
) -> Result<(), Failure> {
    let name = path.display();
    let io = Failure::Io;
    if data.starts_with(&[0x1f, 0x8b]) {
        // Redis Enterprise / AMR exports are gzip'd RDB; AMR imports them as they are.
        writeln!(
            log,
            "{name}: gzip-compressed; the RDB inside is not checked"
        )
        .map_err(io)?;
        if args
            .target
            .as_deref()
            .is_some_and(|t| t.starts_with("azure-cache-premium"))
        {
            return refuse_unless(args.force, format!(
                "{name}: Azure Cache for Redis Premium does not import gzip'd (Enterprise) exports; \
                 gunzip it first"
            ), log);
        }
        return Ok(());
    }
    let version = match rdb_parser::header(data) {
        Ok(v) => v,
        Err(e) => {
            return refuse_unless(args.force, format!("{name}: not an RDB snapshot: {e}"), log)
        }
    };
    let Some(target) = args.target.as_deref() else {
        writeln!(
            log,
            "{name}: {version} (no --target given: not checked against a target)"
        )
        .map_err(io)?;
        return Ok(());
    };
    let profile = rdb_writer::TargetProfile::named(target).ok_or_else(|| {
        Failure::Usage(format!(
            "unknown target {target:?}; `rdbkit targets` lists the profiles"
        ))
    })?;
    let verdict = crate::check::check(data, profile, &Default::default())?;
    if verdict.loads_as_is {
        writeln!(log, "{name}: {version}, loads on {target} as it is").map_err(io)?;
        return Ok(());
    }
    write!(log, "{name}: ").map_err(io)?;
    verdict.write_text(log).map_err(io)?;
    refuse_unless(
        args.force,
        format!(
            "{name} will not load on {target} as it is (see above); fix it with the suggested \
                 `rdbkit convert`, or pass --force"
        ),
        log,
    )
}

fn refuse_unless(force: bool, why: String, log: &mut dyn Write) -> Result<(), Failure> {
    if force {
        writeln!(log, "warning: {why} (going on: --force)").map_err(Failure::Io)?;
        Ok(())
    } else {
        Err(Failure::Refused(why))
    }
}
