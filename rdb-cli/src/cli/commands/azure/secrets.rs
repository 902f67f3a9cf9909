//! Where a SAS URL comes from: `$RDBKIT_SAS_URL`, `--sas-url-file FILE`, or `--sas-url
//! URL`. The last is readable by every user of the machine (`ps`, /proc/PID/cmdline) and
//! stays in the shell history, so it gets a warning; the other two keep the signature out
//! of both.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::Path;

use rdb_cli::azure::sas::redact;

/// The environment variable holding the SAS URL (for import: one or more, separated by
/// white space).
pub const SAS_ENV: &str = "RDBKIT_SAS_URL";

/// A SAS file larger than this is not a SAS file (and `/dev/zero` must not fill memory).
const MAX_FILE: u64 = 1 << 20;

/// A `--sas-url` value as given: a URL with its signature, or `@FILE`. `Debug` shows it
/// redacted; there is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SasArgument(String);

impl From<String> for SasArgument {
    fn from(value: String) -> Self {
        SasArgument(value)
    }
}

impl std::fmt::Debug for SasArgument {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", redact(&self.0))
    }
}

/// The SAS URL(s), from the first source given: `--sas-url` (`@FILE` reads the first
/// non-empty line of FILE), `--sas-url-file` (every non-empty line), then `env` (the value
/// of [`SAS_ENV`]; white space separates URLs). Warns on `warn` when a URL itself is on
/// the command line. Errors never hold a URL: the caller's parse redacts it.
pub fn resolve(
    args: &[SasArgument],
    files: &[&Path],
    env: Option<OsString>,
    warn: &mut dyn Write,
) -> Result<Vec<String>, String> {
    if !args.is_empty() {
        if args.iter().any(|a| !a.0.starts_with('@')) {
            // Best effort: a closed stderr must not stop the upload.
            let _ = writeln!(
                warn,
                "rdbkit: warning: a SAS URL given with --sas-url can be read by other users of \
                 this machine (ps) and stays in the shell history; pass it in ${SAS_ENV} or \
                 with --sas-url-file FILE"
            );
        }
        return args
            .iter()
            .map(|a| match a.0.strip_prefix('@') {
                Some(path) => read_urls(Path::new(path), "--sas-url @")
                    .map(|urls| urls.into_iter().next().unwrap_or_default()),
                None => Ok(a.0.clone()),
            })
            .collect();
    }
    if !files.is_empty() {
        let mut urls = Vec::new();
        for f in files {
            urls.extend(read_urls(f, "--sas-url-file ")?);
        }
        return Ok(urls);
    }
    match env {
        Some(value) if !value.is_empty() => {
            let value = value
                .into_string()
                .map_err(|_| format!("${SAS_ENV} is not valid UTF-8"))?;
            let urls: Vec<String> = value.split_whitespace().map(str::to_string).collect();
            if urls.is_empty() {
                return Err(format!("${SAS_ENV} holds only white space"));
            }
            Ok(urls)
        }
        _ => Err(format!(
            "no SAS URL: set ${SAS_ENV}, or give --sas-url-file FILE (or --sas-url URL, \
             visible in the process list)"
        )),
    }
}

/// The non-empty lines of the SAS file at `path`, trimmed; `flag` names it in errors.
fn read_urls(path: &Path, flag: &str) -> Result<Vec<String>, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("{flag}{shown}: {e}"))?;
    let mut text = String::new();
    file.take(MAX_FILE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{flag}{shown}: {e}"))?;
    if text.len() as u64 > MAX_FILE {
        return Err(format!(
            "{flag}{shown}: over 1 MiB; a SAS file holds one URL per line"
        ));
    }
    let urls: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(format!("{flag}{shown}: the file is empty"));
    }
    Ok(urls)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const URL: &str = "https://a.blob.core.windows.net/c?sr=c&sp=rcw&sig=topsecretsignature";

    fn arg(s: &str) -> SasArgument {
        SasArgument(s.to_string())
    }

    #[test]
    fn a_url_on_the_command_line_is_used_with_a_warning() {
        let mut warn = Vec::new();
        let env = Some(OsString::from("https://ignored?sig=x"));
        let urls = resolve(&[arg(URL)], &[], env, &mut warn).unwrap();
        assert_eq!(urls, [URL]);
        let warn = String::from_utf8(warn).unwrap();
        assert!(
            warn.contains("warning") && warn.contains(SAS_ENV) && warn.contains("--sas-url-file"),
            "{warn}"
        );
        assert!(!warn.contains("topsecretsignature"), "{warn}");
        assert!(!format!("{:?}", arg(URL)).contains("topsecretsignature"));
    }

    #[test]
    fn files_and_the_environment_give_urls_without_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let one = dir.path().join("one.sas");
        std::fs::write(&one, format!("\n  {URL}  \n\n")).unwrap();
        let two = dir.path().join("two.sas");
        std::fs::write(&two, format!("{URL}\r\n{URL}2\n")).unwrap();
        let mut warn = Vec::new();
        let at = format!("@{}", one.display());
        assert_eq!(resolve(&[arg(&at)], &[], None, &mut warn).unwrap(), [URL]);
        assert_eq!(
            resolve(&[], &[one.as_path(), two.as_path()], None, &mut warn).unwrap(),
            [URL.to_string(), URL.to_string(), format!("{URL}2")]
        );
        let env = Some(OsString::from(format!(" {URL}\n{URL}2 ")));
        assert_eq!(
            resolve(&[], &[], env, &mut warn).unwrap(),
            [URL.to_string(), format!("{URL}2")]
        );
        assert!(warn.is_empty(), "{}", String::from_utf8_lossy(&warn));
    }

    #[test]
    fn missing_empty_and_huge_sources_are_errors_without_the_url() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.sas");
        std::fs::write(&empty, "\n \n").unwrap();
        let huge = dir.path().join("huge.sas");
        std::fs::write(&huge, vec![b'a'; (MAX_FILE + 1) as usize]).unwrap();
        let mut warn = Vec::new();
        let e = resolve(&[], &[], None, &mut warn).unwrap_err();
        assert!(e.contains(SAS_ENV) && e.contains("--sas-url-file"), "{e}");
        assert!(resolve(&[], &[], Some(OsString::new()), &mut warn).is_err());
        assert!(resolve(&[], &[], Some(OsString::from(" \n")), &mut warn).is_err());
        let e = resolve(&[], &[empty.as_path()], None, &mut warn).unwrap_err();
        assert!(e.contains("empty"), "{e}");
        let e = resolve(&[], &[huge.as_path()], None, &mut warn).unwrap_err();
        assert!(e.contains("1 MiB"), "{e}");
        let gone = dir.path().join("gone.sas");
        let e = resolve(&[], &[gone.as_path()], None, &mut warn).unwrap_err();
        assert!(e.starts_with("--sas-url-file "), "{e}");
    }
}
