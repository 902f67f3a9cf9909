//! The target URL.

/// `redis://[user:pass@]host:port[/db]` or `rediss://...` (TLS).
#[derive(Clone)]
pub struct TargetUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The password was written in the URL itself: visible in `ps` and /proc.
    pub password_in_url: bool,
    pub db: u64,
}

impl std::fmt::Debug for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

impl TargetUrl {
    /// Parses a target URL. A URL without a password takes `$RDBKIT_REDIS_PASSWORD`, so
    /// the secret need not appear in a process list.
    pub fn parse(text: &str) -> Result<TargetUrl, String> {
        TargetUrl::parse_with(text, None)
    }

    /// As [`TargetUrl::parse`], with `password` (from `--password-file`) used before
    /// `$RDBKIT_REDIS_PASSWORD` when the URL has none; a URL that has one is refused
    /// then, as two passwords are one too many.
    pub fn parse_with(text: &str, password: Option<String>) -> Result<TargetUrl, String> {
        // `host:port` (as redis-cli -h/-p users write it) means redis://host:port.
        let with_scheme;
        let text = if text.contains("://") {
            text
        } else {
            with_scheme = format!("redis://{text}");
            &with_scheme
        };
        // Never echo `text`: it may hold the password.
        let url = url::Url::parse(text)
            .map_err(|e| format!("--to: not a URL like redis://host:6379/0 ({e})"))?;
        let tls = match url.scheme() {
            "redis" => false,
            "rediss" => true,
            other => return Err(format!("--to: scheme {other:?}: use redis:// or rediss://")),
        };
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("--to: the URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| "--to: the user or password is not UTF-8 after %-decoding".to_owned())
        };
        let user = Some(decode(url.username())?).filter(|u| !u.is_empty());
        let password_in_url = url.password().is_some();
        let password = match (url.password(), password) {
            (Some(_), Some(_)) => {
                return Err("--to has a password and --password-file gives another: \
                     keep one (the file keeps it out of the process list)"
                    .to_owned())
            }
            (Some(p), None) => Some(decode(p)?),
            (None, Some(p)) => Some(p),
            (None, None) => std::env::var("RDBKIT_REDIS_PASSWORD")
                .ok()
                .filter(|p| !p.is_empty()),
        };
        if user.is_some() && password.is_none() {
            // Not echoed: `redis://SECRET@host` is a common slip for `redis://:SECRET@host`.
            return Err("--to: the URL names a user but no password; use \
                 redis://USER:PASSWORD@host, --password-file, $RDBKIT_REDIS_PASSWORD or \
                 --ask-password (a prompt), or redis://:PASSWORD@host for the default user. Without a password rdbkit would \
                 connect as the default user, not the one named"
                .to_owned());
        }
        let path = url.path().trim_matches('/');
        let db = if path.is_empty() {
            0
        } else {
            path.parse::<u64>()
                .map_err(|_| format!("--to: the path /{path} is not a db number"))?
        };
        Ok(TargetUrl {
            tls,
            host,
            port: url.port().unwrap_or(6379),
            user,
            password,
            password_in_url,
            db,
        })
    }
}

/// `text` with every occurrence of each secret replaced by `***`, and anything after
/// "args beginning with" (where Redis echoes a refused command's arguments, cut to 128
/// bytes, so that a long password may appear only in part) left out.
pub(super) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = match text.find("args beginning with") {
        Some(at) => format!(
            "{}args beginning with: (not shown)",
            text.get(..at).unwrap_or_default()
        ),
        None => text.to_owned(),
    };
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(*s, "***");
    }
    out
}

/// The URL with the password replaced by `***`: the only form ever printed.
impl std::fmt::Display for TargetUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.tls { "rediss" } else { "redis" };
        write!(f, "{scheme}://")?;
        match (&self.user, &self.password) {
            (Some(u), Some(_)) => write!(f, "{u}:***@")?,
            (None, Some(_)) => write!(f, ":***@")?,
            (Some(u), None) => write!(f, "{u}@")?,
            (None, None) => {}
        }
        write!(f, "{}:{}/{}", self.host, self.port, self.db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoed_passwords_are_redacted() {
        let echo = "ERR unknown command 'AUTH', with args beginning with: 'hunter2-long' ";
        let shown = redact(echo, &["hunter2-long"]);
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("unknown command 'AUTH'"), "{shown}");
        // Redis cuts echoed arguments at 128 bytes: part of a long password is cut too.
        let long = "p".repeat(200);
        let echo = format!(
            "ERR unknown command 'AUTH', with args beginning with: '{}'",
            &long[..100]
        );
        assert!(!redact(&echo, &[&long]).contains("ppppp"));
        assert_eq!(
            redact("WRONGPASS s3cret x s3cret", &["s3cret", ""]),
            "WRONGPASS *** x ***"
        );
    }

    #[test]
    fn urls_parse_and_never_show_the_password() {
        let u = TargetUrl::parse("rediss://app:s%40cret@cache.example.net:6380/2")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(u.tls);
        assert_eq!(u.host, "cache.example.net");
        assert_eq!(u.port, 6380);
        assert_eq!(u.user.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("s@cret"));
        assert_eq!(u.db, 2);
        let shown = format!("{u} {u:?}");
        assert!(!shown.contains("cret"), "{shown}");
        assert_eq!(u.to_string(), "rediss://app:***@cache.example.net:6380/2");
        let e = TargetUrl::parse("http://:hunter2@h/x")
            .err()
            .unwrap_or_default();
        assert!(!e.contains("hunter2"), "{e}");
        let e = TargetUrl::parse("redis://:hunter2@h/x")
            .err()
            .unwrap_or_default();
        assert!(!e.contains("hunter2") && e.contains("db number"), "{e}");
        assert!(TargetUrl::parse("redis://:pw@h").is_ok_and(|u| u.password_in_url));
        let u = TargetUrl::parse_with("redis://app@h", Some("from-file".into()));
        assert!(u.is_ok_and(|u| !u.password_in_url && u.password.as_deref() == Some("from-file")));
        let e = TargetUrl::parse_with("redis://:pw@h", Some("x".into()))
            .err()
            .unwrap_or_default();
        assert!(e.contains("--password-file") && !e.contains("pw@"), "{e}");
        // A user without a password would connect as the default user, and the "user" is
        // often the password written without its colon.
        if std::env::var_os("RDBKIT_REDIS_PASSWORD").is_none() {
            let e = TargetUrl::parse("redis://hunter2@h:6379")
                .err()
                .unwrap_or_default();
            assert!(!e.contains("hunter2") && e.contains("no password"), "{e}");
        }
    }
}
