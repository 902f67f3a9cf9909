//! SAS URLs: what they grant, when they expire, and how to print them without the secret.
//!
//! ```text
//! https://acct.blob.core.windows.net/container/blob?sv=2022-11-02&sr=b&sp=rcw&se=2026-12-01T10:00:00Z&sig=<secret>
//! \___________________ base ____________________/ \______________ query (the token) ______________/
//! ```
//! Only `sig` is a secret (the HMAC of the other fields); it never leaves this process in
//! any text. [`redact`] is the one function every URL, error and log line goes through.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

/// What replaces a secret in every printed text.
pub const REDACTED: &str = "REDACTED";

/// Secrets seen at run time (SAS signatures, bearer tokens), redacted wherever they
/// appear, even outside a `sig=` pair (e.g. echoed in a service's error body).
static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Registers a secret so [`redact`] removes it from any text.
pub fn register_secret(secret: &str) {
    if secret.len() < 8 {
        return; // too short to be a real secret; redacting it would mangle ordinary text
    }
    if let Ok(mut s) = SECRETS.lock() {
        if !s.iter().any(|x| x == secret) {
            s.push(secret.to_string());
            // The URL-decoded form of a signature may show up too.
            let decoded = percent_encoding::percent_decode_str(secret)
                .decode_utf8_lossy()
                .into_owned();
            if decoded != secret {
                s.push(decoded);
            }
        }
    }
}

/// Removes SAS signatures and bearer tokens from `text`: the value of every `sig=`
/// query pair (also `sig%3D`, URL-encoded), everything after `Bearer `, and every
/// registered secret.
pub fn redact(text: &str) -> String {
    let mut out = redact_pairs(text);
    if let Ok(secrets) = SECRETS.lock() {
        for s in secrets.iter() {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), REDACTED);
            }
        }
    }
    out
}

/// Replaces the value after each `sig=`, `sig%3D` and `Bearer ` marker.
fn redact_pairs(text: &str) -> String {
    const MARKERS: [&str; 3] = ["sig=", "sig%3d", "bearer "];
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while pos < text.len() {
        let next = MARKERS
            .iter()
            .filter_map(|m| {
                let mut from = pos;
                // A marker counts only at the start of a parameter or word (not `xsig=`).
                while let Some(i) = lower.get(from..).and_then(|s| s.find(m)) {
                    let at = from + i;
                    let head = lower.get(..at).unwrap_or_default();
                    let before = head.chars().next_back();
                    // `%26` (&) and `%3f` (?) separate pairs in a URL-encoded URL.
                    if before.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '_')
                        || head.ends_with("%26")
                        || head.ends_with("%3f")
                    {
                        return Some((at, m.len()));
                    }
                    from = at + 1;
                }
                None
            })
            .min();
        let Some((at, len)) = next else { break };
        let value_start = at + len;
        let tail = lower.get(value_start..).unwrap_or_default();
        let plain_end = tail
            .find(|c: char| c == '&' || c == '"' || c == '\'' || c == '<' || c.is_whitespace())
            .unwrap_or(tail.len());
        let encoded_end = tail.find("%26").unwrap_or(tail.len());
        let value_end = value_start + plain_end.min(encoded_end);
        out.push_str(text.get(pos..value_start).unwrap_or_default());
        if value_end > value_start {
            out.push_str(REDACTED);
        }
        pos = value_end;
    }
    out.push_str(text.get(pos..).unwrap_or_default());
    out
}

/// What a SAS URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A container (`sr=c` or an account SAS): the token is valid for every blob in it.
    Container,
    /// One blob (`sr=b`, or a container or account token on the blob's path).
    Blob,
}

/// A parsed SAS URL. `Display` prints it with the signature redacted.
#[derive(Clone)]
pub struct SasUrl {
    /// `scheme://host[:port]/path`, no query.
    base: String,
    /// The raw query, without `?`.
    query: String,
    pub scope: Scope,
}

impl std::fmt::Debug for SasUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SasUrl({self})")
    }
}

impl std::fmt::Display for SasUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&redact(&format!("{}?{}", self.base, self.query)))
    }
}

/// Characters escaped in a blob name path segment.
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'?')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|');

/// Characters escaped in a query value (base64 block ids: `+`, `/`, `=`).
pub const QUERY_VALUE: &AsciiSet = &PATH_SEGMENT.add(b'&').add(b'+').add(b'/').add(b'=');

impl SasUrl {
    /// Parses `url`; the error never contains the signature.
    pub fn parse(url: &str) -> Result<SasUrl, String> {
        let url = url.trim();
        let (base, query) = url
            .split_once('?')
            .ok_or_else(|| format!("{}: not a SAS URL (no ?sv=...&sig=... part)", redact(url)))?;
        let after_scheme = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or_else(|| format!("{}: a SAS URL starts with https://", redact(url)))?;
        let Ok(uri) = url.parse::<ureq::http::Uri>() else {
            return Err(format!(
                "{}: not a valid URL: it holds a character that must be percent-encoded (a \
                 space is %20); copy the SAS URL as the portal or az prints it",
                redact(url)
            ));
        };
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        if authority.contains('@') {
            // `http://127.0.0.1@evil.example/...` goes to evil.example.
            return Err(format!(
                "{}: a user name or password in a SAS URL is not allowed",
                redact(url)
            ));
        }
        let host = uri.host().unwrap_or_default();
        if uri.scheme_str() == Some("http") && !is_loopback_host(host) {
            // The signature would cross the network in clear text, readable on the way.
            return Err(format!(
                "{}: plain http would send the signature unencrypted; use https (http is \
                 allowed only to this machine: 127.0.0.0/8, [::1] or localhost, e.g. Azurite)",
                redact(url)
            ));
        }
        let sas = SasUrl {
            base: base.trim_end_matches('/').to_string(),
            query: query.to_string(),
            scope: Scope::Blob,
        };
        match sas.param("sig") {
            Some(sig) if !sig.is_empty() => register_secret(sig),
            _ => {
                return Err(format!(
                    "{}: the URL has no sig= parameter; copy the full SAS URL (portal: \
                     \"Generate SAS\", az storage container generate-sas --full-uri)",
                    redact(url)
                ))
            }
        }
        let (host, path) = after_scheme.split_once('/').unwrap_or((after_scheme, ""));
        let segments = path.split('/').filter(|s| !s.is_empty()).count();
        // Path-style URLs (Azurite, IP hosts) carry the account as the first segment.
        let host_name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let path_style = host_name == "localhost"
            || host_name.starts_with('[')
            || host_name.parse::<std::net::Ipv4Addr>().is_ok();
        let container_segments = if path_style { 2 } else { 1 };
        if segments < container_segments {
            return Err(format!(
                "{sas}: the URL names no container; use a container or blob SAS URL"
            ));
        }
        // The path says what the URL names; sr= only what the token covers. A container
        // token (sr=c) on a blob path is a valid blob URL (the service reads it so, and it
        // is what `upload --then-import` hands to the import).
        let names_blob = segments > container_segments;
        match sas.param("sr") {
            None | Some("c") => {}
            Some("b") if names_blob => {}
            Some("b") => {
                return Err(format!(
                    "{sas}: a blob SAS (sr=b) on a URL without a blob name; copy the blob's \
                     full SAS URL"
                ))
            }
            Some(other) => {
                return Err(format!(
                    "{sas}: sr={other} is neither a blob (b) nor a container (c) SAS"
                ))
            }
        }
        let scope = if names_blob {
            Scope::Blob
        } else {
            Scope::Container
        };
        Ok(SasUrl { scope, ..sas })
    }

    /// The value of query parameter `name` (raw, still URL-encoded).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|p| p.split_once('=').or(Some((p, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// The URL of blob `name` in this container SAS's container.
    pub fn blob(&self, name: &str) -> SasUrl {
        let encoded: Vec<String> = name
            .split('/')
            .map(|s| utf8_percent_encode(s, PATH_SEGMENT).to_string())
            .collect();
        SasUrl {
            base: format!("{}/{}", self.base, encoded.join("/")),
            query: self.query.clone(),
            scope: Scope::Blob,
        }
    }

    /// The blob name: the last path segment.
    pub fn blob_name(&self) -> &str {
        self.base.rsplit('/').next().unwrap_or_default()
    }

    /// The URL without the token: safe to print, and what the blob is called.
    pub fn without_token(&self) -> &str {
        &self.base
    }

    /// The full URL with extra query pairs (already encoded) before the token. For
    /// requests only: it holds the signature.
    pub fn request_url(&self, extra: &str) -> String {
        if extra.is_empty() {
            format!("{}?{}", self.base, self.query)
        } else {
            format!("{}?{extra}&{}", self.base, self.query)
        }
    }

    /// The full URL, signature included: for request bodies handed to the service.
    pub fn secret_url(&self) -> String {
        self.request_url("")
    }

    /// Permissions (`sp`), if the SAS states them (a stored access policy may hold them).
    pub fn permissions(&self) -> Option<&str> {
        self.param("sp")
    }

    /// Whether the SAS lacks permission `p`, as far as the URL tells.
    pub fn lacks(&self, p: char) -> bool {
        self.permissions().is_some_and(|sp| !sp.contains(p))
    }

    /// Expiry (`se`) as Unix seconds.
    pub fn expiry(&self) -> Option<Result<i64, String>> {
        self.param("se").map(parse_time)
    }

    /// Start (`st`) as Unix seconds.
    pub fn start(&self) -> Option<Result<i64, String>> {
        self.param("st").map(parse_time)
    }

    /// A reason the SAS cannot work now (expired or not yet valid), checked against the
    /// local clock.
    pub fn time_problem(&self, now: i64) -> Option<String> {
        match self.expiry() {
            Some(Ok(se)) if se <= now => {
                return Some(format!(
                    "the SAS expired at {} (se=), {} ago; generate a new one",
                    format_time(se),
                    human_duration(now - se)
                ))
            }
            Some(Err(e)) => return Some(e),
            _ => {}
        }
        match self.start() {
            Some(Ok(st)) if st > now => Some(format!(
                "the SAS is not valid before {} (st=), {} from now (or this machine's clock is off)",
                format_time(st),
                human_duration(st - now)
            )),
            Some(Err(e)) => Some(e),
            _ => None,
        }
    }
}

/// Whether `host` (a URL's host, IPv6 in brackets) is this machine: 127.0.0.0/8, ::1
/// (also as ::ffff:127.x.y.z) or `localhost`. Nothing else, not even a name resolving
/// there: DNS can change between this check and the request.
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok_and(|ip| {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        });
    }
    host.parse::<std::net::Ipv4Addr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// The local clock, in Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `2026-12-01T10:00:00Z` (also URL-encoded `%3A`, fractional seconds, a date alone,
/// `+00:00`) -> Unix seconds. SAS times are always UTC.
pub fn parse_time(value: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    let v = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
    let v = v.trim();
    let bad = || format!("SAS time {v:?} is not an ISO-8601 UTC time like 2026-12-01T10:00:00Z");
    // Azure also accepts a date alone and a seconds-less time; RFC 3339 wants both parts.
    let full = match v.split_once('T') {
        None => format!("{v}T00:00:00Z"),
        Some((date, t)) if t.trim_end_matches('Z').matches(':').count() == 1 => {
            format!("{date}T{}:00Z", t.trim_end_matches('Z'))
        }
        Some(_) => v.to_owned(),
    };
    time::OffsetDateTime::parse(&full, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| bad())
}

/// Unix seconds -> `2026-12-01T10:00:00Z` (a time out of the calendar's range prints as
/// the bare number).
pub fn format_time(t: i64) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| d.format(&Rfc3339).ok())
        .unwrap_or_else(|| format!("@{t}"))
}

/// `3h 5m`, `42s`.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn redact_removes_signature_values_everywhere() {
        let url =
            "https://a.blob.core.windows.net/c/d.rdb?sv=2022-11-02&sr=b&sp=r&sig=AbC%2Bdef%3D&x=1";
        assert_eq!(
            redact(url),
            "https://a.blob.core.windows.net/c/d.rdb?sv=2022-11-02&sr=b&sp=r&sig=REDACTED&x=1"
        );
        // In free text, quoted, at the end, URL-encoded as a whole, upper case.
        assert_eq!(
            redact("error for \"http://h/c?sig=s3cr3tvalue\": 403"),
            "error for \"http://h/c?sig=REDACTED\": 403"
        );
        assert_eq!(
            redact("u=http%3A%2F%2Fh%2Fc%3Fsv%3D1%26sig%3Dsecretvalue%26x"),
            "u=http%3A%2F%2Fh%2Fc%3Fsv%3D1%26sig%3DREDACTED%26x"
        );
        assert_eq!(redact("?SIG=abcdefghij"), "?SIG=REDACTED");
        assert_eq!(
            redact("Authorization: Bearer eyJ0eXAi.abc.def"),
            "Authorization: Bearer REDACTED"
        );
        // Not a marker inside a longer name; not a value-less pair.
        assert_eq!(redact("xsig=keep&sig="), "xsig=keep&sig=");
        assert_eq!(redact("no secrets here"), "no secrets here");
    }

    #[test]
    fn registered_secrets_are_redacted_outside_pairs() {
        register_secret("Zm9vYmFyYmF6cXV1eA%3D%3D");
        let text = "the service said: signature Zm9vYmFyYmF6cXV1eA== did not match";
        assert!(
            !redact(text).contains("Zm9vYmFyYmF6cXV1eA"),
            "{}",
            redact(text)
        );
    }

    #[test]
    fn parse_container_and_blob_sas() {
        let c = SasUrl::parse("https://acct.blob.core.windows.net/backups?sv=2022-11-02&sr=c&sp=rcw&se=2030-01-01T00:00:00Z&sig=c2VjcmV0c2lnbmF0dXJl").unwrap();
        assert_eq!(c.scope, Scope::Container);
        let b = c.blob("dir/dump 1.rdb");
        assert_eq!(
            b.without_token(),
            "https://acct.blob.core.windows.net/backups/dir/dump%201.rdb"
        );
        assert_eq!(b.blob_name(), "dump%201.rdb");
        assert!(!b.to_string().contains("c2VjcmV0"));
        assert!(b.secret_url().contains("sig=c2VjcmV0c2lnbmF0dXJl"));
        assert!(!c.lacks('w') && c.lacks('d'));
        // Azurite: path style, account first; account SAS without sr.
        let a = SasUrl::parse("http://127.0.0.1:10000/devstoreaccount1/c?sv=2022-11-02&ss=b&srt=sco&sp=rwc&se=2030-01-01T00:00:00Z&sig=abcdefghijkl").unwrap();
        assert_eq!(a.scope, Scope::Container);
        let a = SasUrl::parse("http://127.0.0.1:10000/devstoreaccount1/c/x.rdb?sv=2022-11-02&ss=b&srt=sco&sp=rwc&sig=abcdefghijkl").unwrap();
        assert_eq!(a.scope, Scope::Blob);
        // A container token on a blob path names that blob; a blob token needs one.
        let cb = SasUrl::parse(
            "https://acct.blob.core.windows.net/backups/d.rdb?sr=c&sp=r&sig=abcdefghijkl",
        )
        .unwrap();
        assert_eq!(cb.scope, Scope::Blob);
        assert_eq!(
            cb.without_token(),
            "https://acct.blob.core.windows.net/backups/d.rdb"
        );
        assert!(
            SasUrl::parse("https://acct.blob.core.windows.net/backups?sr=b&sig=abcdefghijkl")
                .is_err()
        );
        // What no HTTP request can carry is a usage error here, not "no answer" later.
        let e =
            SasUrl::parse("https://acct.blob.core.windows.net/my backups?sr=c&sig=abcdefghijkl")
                .unwrap_err();
        assert!(e.contains("not a valid URL") && e.contains("%20"), "{e}");
        // Errors never echo the signature.
        let e =
            SasUrl::parse("https://acct.blob.core.windows.net/?sv=1&sig=topsecretsig").unwrap_err();
        assert!(!e.contains("topsecretsig"), "{e}");
        assert!(SasUrl::parse("https://acct.blob.core.windows.net/c").is_err());
        assert!(SasUrl::parse("https://acct.blob.core.windows.net/c?sv=1").is_err());
    }

    #[test]
    fn plain_http_only_to_this_machine() {
        let q = "?sv=2022-11-02&sr=c&sp=rcw&sig=plainhttpsignature";
        for ok in [
            "http://127.0.0.1:10000/devstoreaccount1/c",
            "http://127.0.0.2:10000/devstoreaccount1/c",
            "http://127.255.255.254/devstoreaccount1/c",
            "http://localhost:10000/devstoreaccount1/c",
            "http://LOCALHOST/devstoreaccount1/c",
            "http://[::1]:10000/devstoreaccount1/c",
            "http://[::ffff:127.0.0.1]:10000/devstoreaccount1/c",
            "https://acct.blob.core.windows.net/c",
            "https://10.0.0.1/devstoreaccount1/c",
        ] {
            let url = format!("{ok}{q}");
            assert!(SasUrl::parse(&url).is_ok(), "{url} was refused");
        }
        for bad in [
            "http://acct.blob.core.windows.net/c",
            "http://10.0.0.1:10000/devstoreaccount1/c",
            "http://128.0.0.1/devstoreaccount1/c",
            "http://[::2]/devstoreaccount1/c",
            "http://[::ffff:10.0.0.1]/devstoreaccount1/c",
            "http://localhost.evil.example/c",
            "http://127.0.0.1.evil.example/c",
            "http://0.0.0.0/devstoreaccount1/c",
        ] {
            let e = SasUrl::parse(&format!("{bad}{q}")).unwrap_err();
            assert!(
                e.contains("plain http") && e.contains("https"),
                "{bad}: {e}"
            );
            assert!(!e.contains("plainhttpsignature"), "{e}");
        }
        // Userinfo hides the real host after '@': refused whatever the scheme.
        for tricky in [
            "http://127.0.0.1@evil.example/devstoreaccount1/c",
            "http://127.0.0.1:80@evil.example/devstoreaccount1/c",
            "https://user:pw@acct.blob.core.windows.net/c",
        ] {
            let e = SasUrl::parse(&format!("{tricky}{q}")).unwrap_err();
            assert!(e.contains("user name or password"), "{tricky}: {e}");
            assert!(!e.contains("plainhttpsignature"), "{e}");
        }
    }

    #[test]
    fn times_round_trip_and_expiry_is_checked() {
        let t = parse_time("2026-12-01T10%3A00%3A00Z").unwrap();
        assert_eq!(format_time(t), "2026-12-01T10:00:00Z");
        assert_eq!(parse_time("1970-01-01T00:00:00Z").unwrap(), 0);
        assert_eq!(parse_time("2000-03-01").unwrap(), 951_868_800);
        assert_eq!(
            parse_time("2024-02-29T23:59:59.1234567Z").unwrap(),
            1_709_251_199
        );
        assert!(parse_time("tomorrow").is_err());
        let s = SasUrl::parse(
            "https://a.blob.core.windows.net/c?sr=c&se=2020-01-01T00:00:00Z&sig=abcdefghijkl",
        )
        .unwrap();
        let msg = s
            .time_problem(parse_time("2020-01-01T03:00:00Z").unwrap())
            .unwrap();
        assert!(
            msg.contains("expired at 2020-01-01T00:00:00Z") && msg.contains("3h"),
            "{msg}"
        );
        assert!(s
            .time_problem(parse_time("2019-12-31T00:00:00Z").unwrap())
            .is_none());
    }
}
