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
