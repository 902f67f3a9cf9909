//! Parsers for the values flags take: sizes, durations, db maps and "now". One of each,
//! so `--memory 6GiB` and `--block-size 8MiB` read the same way.

/// `6GB`, `6GiB`, `13000MB`, `512K`, `1073741824` -> bytes. Units are binary multiples
/// (K = 1024) whether written K, KB or KiB: servers and cloud tiers count memory that way.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_uppercase();
    let t = t
        .strip_suffix("IB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(&t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 6GB or 512MiB"))?;
    let shift = match unit.trim() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        other => return Err(format!("unknown unit {other:?} in {s:?}: use K, M, G or T")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

/// `90`, `90s`, `15m`, `2h`, `7d`, `500ms` -> milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s or 2h"))?;
    let scale = match unit {
        "ms" => 1,
        "" | "s" => 1000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        other => return Err(format!("unknown unit {other:?}: use ms, s, m, h or d")),
    };
    n.checked_mul(scale)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// `3:0` -> (3, 0).
pub fn parse_db_map(s: &str) -> Result<(u64, u64), String> {
    let (a, b) = s.split_once(':').ok_or("expected FROM:TO, e.g. 3:0")?;
    let n = |x: &str| {
        x.trim()
            .parse::<u64>()
            .map_err(|_| format!("{x:?} is not a db number"))
    };
    Ok((n(a)?, n(b)?))
}

/// A password kept in a file (`--password-file`): its first line, without the line
/// ending, so it never has to appear in a process list.
pub fn read_password_file(path: &std::path::Path) -> Result<String, rdb_cli::Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| super::input::io_context(e, path))?;
    let line = text.lines().next().unwrap_or_default();
    if line.is_empty() {
        return Err(rdb_cli::Failure::Usage(format!(
            "--password-file {}: the first line is empty",
            path.display()
        )));
    }
    Ok(line.to_owned())
}

/// The password for a server URL, from the first source that has one: `--password-file`;
/// a prompt on the terminal with `--ask-password`, or without it when the URL names a
/// user but no password, `$RDBKIT_REDIS_PASSWORD` is not set and standard input is a
/// terminal; else none (the URL's own password or `$RDBKIT_REDIS_PASSWORD` then apply).
/// A prompted password is read without echo and never printed.
pub fn password(
    url: &str,
    file: Option<&std::path::Path>,
    ask: bool,
) -> Result<Option<String>, rdb_cli::Failure> {
    use std::io::IsTerminal;
    if let Some(path) = file {
        return read_password_file(path).map(Some);
    }
    if ask && url_credentials(url).1 {
        return Err(rdb_cli::Failure::Usage(
            "--ask-password, and the URL has a password: keep one (the prompt keeps it out of \
             the process list)"
                .into(),
        ));
    }
    let env_set = std::env::var("RDBKIT_REDIS_PASSWORD").is_ok_and(|p| !p.is_empty());
    let stdin_tty = std::io::stdin().is_terminal();
    match PasswordSource::choose(url, ask, env_set, stdin_tty) {
        PasswordSource::Prompt => prompt_password(url).map(Some),
        PasswordSource::Elsewhere => Ok(None),
    }
}

/// Where the password comes from when no file gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PasswordSource {
    /// Asked on the terminal.
    Prompt,
    /// The URL, `$RDBKIT_REDIS_PASSWORD`, or none (the URL parser says what is missing).
    Elsewhere,
}

impl PasswordSource {
    fn choose(url: &str, ask: bool, env_set: bool, stdin_tty: bool) -> PasswordSource {
        let (user, password) = url_credentials(url);
        if password {
            // Given in the URL: nothing to ask (the URL parser refuses it with a file).
            PasswordSource::Elsewhere
        } else if ask || (user && !env_set && stdin_tty) {
            PasswordSource::Prompt
        } else {
            PasswordSource::Elsewhere
        }
    }
}

/// Whether `url` (`scheme://...` or `host:port`) names a user, and a password.
fn url_credentials(text: &str) -> (bool, bool) {
    let with_scheme;
    let text = if text.contains("://") {
        text
    } else {
        with_scheme = format!("redis://{text}");
        &with_scheme
    };
    match url::Url::parse(text) {
        Ok(u) => (!u.username().is_empty(), u.password().is_some()),
        Err(_) => (false, false),
    }
}

/// Reads a password from the terminal without echo. Only the user and host are shown in
/// the prompt.
fn prompt_password(url: &str) -> Result<String, rdb_cli::Failure> {
    let with_scheme;
    let text = if url.contains("://") {
        url
    } else {
        with_scheme = format!("redis://{url}");
        &with_scheme
    };
    let whom = url::Url::parse(text)
        .ok()
        .map(|u| {
            let user = percent_encoding::percent_decode_str(u.username())
                .decode_utf8_lossy()
                .into_owned();
            let host = u.host_str().unwrap_or_default().to_owned();
            let port = u.port().unwrap_or(6379);
            let who = if user.is_empty() { "default" } else { &user };
            format!("{who} on {host}:{port}")
        })
        .unwrap_or_else(|| "the server".to_owned());
    let mut shown = String::new();
    let _ = rdb_parser::error::write_escaped(&mut shown, whom.as_bytes());
    let password = rpassword::prompt_password(format!("Password for {shown}: ")).map_err(|e| {
        rdb_cli::Failure::Usage(format!(
            "the password prompt needs a terminal ({e}): give --password-file FILE or \
             $RDBKIT_REDIS_PASSWORD instead"
        ))
    })?;
    if password.is_empty() {
        return Err(rdb_cli::Failure::Usage("no password was entered".into()));
    }
    Ok(password)
}

/// The clock, in Unix milliseconds.
pub fn clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What `--now` says, resolved against the snapshot: Unix milliseconds, `ctime` (the end
/// of the second the snapshot's ctime AUX field names, as stats takes it) or `clock`;
/// `None` takes the clock.
/// The one place "now" is decided for convert, merge, export, restore and diff.
pub fn resolve_now(now: Option<&str>, snapshot: &[u8]) -> Result<i64, String> {
    match now.map(str::trim) {
        None | Some("clock") => Ok(clock_ms()),
        Some("ctime") => rdb_cli::now::snapshot_ms(snapshot)
            .ok_or_else(|| "--now ctime: the snapshot has no ctime AUX field".to_string()),
        Some(ms) => ms
            .parse::<i64>()
            .map_err(|_| format!("--now {ms:?}: give Unix milliseconds, `ctime` or `clock`")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// When a password is asked: with --ask-password unless the URL has one; without it,
    /// only for a URL naming a user and no password, no $RDBKIT_REDIS_PASSWORD, and a
    /// terminal on standard input.
    #[test]
    fn the_password_is_asked_only_where_it_is_missing_and_someone_can_type() {
        use PasswordSource::{Elsewhere, Prompt};
        let cases = [
            // url, --ask-password, env set, stdin a terminal
            ("redis://app@h:6379", false, false, true, Prompt),
            ("app@h:6379", false, false, true, Prompt),
            ("redis://app@h:6379", false, true, true, Elsewhere),
            ("redis://app@h:6379", false, false, false, Elsewhere),
            ("redis://h:6379", false, false, true, Elsewhere),
            ("redis://app:pw@h:6379", false, false, true, Elsewhere),
            ("redis://:pw@h:6379", true, false, true, Elsewhere),
            ("redis://h:6379", true, true, false, Prompt),
            ("rediss://app@h", true, false, false, Prompt),
        ];
        for (url, ask, env, tty, want) in cases {
            assert_eq!(
                PasswordSource::choose(url, ask, env, tty),
                want,
                "{url} ask={ask} env={env} tty={tty}"
            );
        }
        assert_eq!(url_credentials("redis://a%40b@h"), (true, false));
        assert_eq!(url_credentials("not a url"), (false, false));
        // --ask-password beside a password in the URL is refused, before any prompt.
        let e = password("redis://u:pw@h", None, true)
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("keep one") && !e.contains("pw@")));
    }

    #[test]
    fn sizes_take_every_spelling_of_a_binary_unit() {
        for (text, bytes) in [
            ("6GB", 6u64 << 30),
            ("6GiB", 6 << 30),
            ("6gib", 6 << 30),
            ("6G", 6 << 30),
            ("8MiB", 8 << 20),
            ("512k", 512 << 10),
            ("1073741824", 1 << 30),
            (" 2 TB ", 2 << 40),
        ] {
            assert_eq!(parse_size(text), Ok(bytes), "{text}");
        }
        assert!(parse_size("6XB").is_err());
        assert!(parse_size("GB").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn durations_and_db_maps() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("90"), Ok(90_000));
        assert_eq!(parse_duration_ms("2h"), Ok(7_200_000));
        assert!(parse_duration_ms("2w").is_err());
        assert_eq!(parse_db_map("3:0"), Ok((3, 0)));
        assert!(parse_db_map("3").is_err());
    }

    #[test]
    fn now_is_milliseconds_ctime_or_the_clock() {
        assert_eq!(
            resolve_now(Some("1700000000123"), b""),
            Ok(1_700_000_000_123)
        );
        assert!(resolve_now(Some("ctime"), b"").is_err());
        assert!(resolve_now(Some("yesterday"), b"").is_err());
        assert!(resolve_now(None, b"").unwrap() > 1_700_000_000_000);
    }
}
