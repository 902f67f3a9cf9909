//! One HTTP exchange with bounded retries: exponential backoff with full jitter on
//! connection errors, timeouts, 408, 429 and 5xx; `Retry-After` honoured (capped).
//! Every text that leaves here has gone through [`redact`].

use std::time::Duration;

use ureq::http::Response;
use ureq::Body;

use super::sas::redact;

/// Longest `Retry-After` obeyed between two attempts.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// Longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(20);
/// Biggest response body read (errors, block lists, status documents). A block list of
/// 100,000 uncommitted + 50,000 committed blocks with 60-character IDs is about 16 MB.
const MAX_BODY: u64 = 64 << 20;

/// A complete response: status, headers, body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    /// A header by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `Retry-After`: seconds (what ARM and Storage send) or an HTTP-date (RFC 9110
    /// allows both); a date in the past means no wait.
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.header("retry-after")?.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        let at = httpdate::parse_http_date(v).ok()?;
        Some(
            at.duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    }
}

/// Why an exchange failed after its retries.
#[derive(Debug)]
pub enum HttpError {
    /// The service answered with an error status (not retryable, or retries used up).
    Status(Reply),
    /// No answer: connection refused or reset, timeout, TLS, DNS. Redacted text.
    Transport(String),
}

/// An agent plus the retry policy.
#[derive(Debug, Clone)]
pub struct Http {
    agent: ureq::Agent,
    /// Attempts after the first.
    pub retries: u32,
    /// First backoff; doubles per attempt.
    pub base_delay: Duration,
}

impl Http {
    pub fn new(timeout: Duration, retries: u32) -> Http {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Neither Blob Storage nor ARM redirects. Followed, a 302 to a PUT or POST
            // becomes a GET whose 200 would pass for a staged block or a finished import.
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_global(Some(timeout))
            .max_idle_connections_per_host(64)
            .max_idle_connections(128)
            .user_agent(concat!("rdbkit/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Http {
            agent,
            retries,
            base_delay: Duration::from_millis(250),
        }
    }

    pub fn agent(&self) -> &ureq::Agent {
        &self.agent
    }

    /// Runs `send` until it gets a non-retryable answer or the retries are used up.
    /// `on_retry` hears about each retry (for a log line), with a redacted reason.
    pub fn call(
        &self,
        send: &dyn Fn(&ureq::Agent) -> Result<Response<Body>, ureq::Error>,
        on_retry: &dyn Fn(u32, &str),
    ) -> Result<Reply, HttpError> {
        let mut attempt = 0u32;
        loop {
            let outcome =
                send(&self.agent).map_err(|e| (retryable_error(&e), redact(&e.to_string())));
            let (retry, wait_hint, reason, result) = match outcome {
                Ok(resp) => match read_reply(resp) {
                    Ok(reply) if reply.status < 300 => return Ok(reply),
                    Ok(reply) => {
                        let retry = retryable_status(reply.status);
                        let hint = reply.retry_after();
                        let reason = format!("HTTP {}", reply.status);
                        (retry, hint, reason, HttpError::Status(reply))
                    }
                    Err(e) => (true, None, e.clone(), HttpError::Transport(e)),
                },
                Err((retry, text)) => (retry, None, text.clone(), HttpError::Transport(text)),
            };
            if !retry || attempt >= self.retries {
                return Err(result);
            }
            attempt += 1;
            on_retry(attempt, &reason);
            let wait = wait_hint
                .map(|w| w.min(MAX_RETRY_AFTER))
                .unwrap_or_else(|| backoff(self.base_delay, attempt));
            std::thread::sleep(wait);
        }
    }
}

fn read_reply(resp: Response<Body>) -> Result<Reply, String> {
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .into_body()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| redact(&format!("reading the response: {e}")))?;
    Ok(Reply {
        status,
        headers,
        body,
    })
}

fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

fn retryable_error(e: &ureq::Error) -> bool {
    matches!(
        e,
        ureq::Error::Io(_)
            | ureq::Error::Timeout(_)
            | ureq::Error::ConnectionFailed
            | ureq::Error::Protocol(_)
    )
}

/// Full jitter: a random wait in [delay/2, delay], delay = base * 2^(attempt-1), capped.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let delay = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(MAX_BACKOFF);
    let half = delay / 2;
    let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_micros(random_u64() % span)
}

/// A random number from the standard library's per-process SipHash keys; enough for
/// spreading retries, not for anything secret.
fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        for attempt in 1..30 {
            let d = backoff(base, attempt);
            let full = (base * (1 << (attempt - 1).min(16))).min(MAX_BACKOFF);
            assert!(
                d >= full / 2 && d <= full,
                "attempt {attempt}: {d:?} vs {full:?}"
            );
        }
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        let reply = |v: &str| Reply {
            status: 429,
            headers: vec![("Retry-After".into(), v.into())],
            body: Vec::new(),
        };
        assert_eq!(reply("7").retry_after(), Some(Duration::from_secs(7)));
        let soon = httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(30));
        let wait = reply(&soon).retry_after().unwrap();
        assert!(
            wait > Duration::from_secs(28) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert_eq!(
            reply("Wed, 21 Oct 2015 07:28:00 GMT").retry_after(),
            Some(Duration::ZERO)
        );
        assert_eq!(reply("soon").retry_after(), None);
    }

    #[test]
    fn which_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 409, 412] {
            assert!(!retryable_status(s), "{s}");
        }
    }
}
