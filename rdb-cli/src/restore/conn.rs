//! One connection to a server: TCP or TLS, AUTH, replies read with the `redis` crate's
//! parser; and what `INFO server` says about the server.

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rdb_writer::server::ServerVersion;
use rdb_writer::TargetProfile;
use redis::Value;

use super::inflight::Pending;
use super::{TargetUrl, TlsOptions};
use crate::resp;
use crate::Failure;

pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Transport::Plain(s) => s.flush(),
            Transport::Tls(s) => s.flush(),
        }
    }
}

/// Accepts any server certificate (`--tls-insecure`), still checking the handshake's
/// signatures so that the connection is at least encrypted to whoever answered.
#[derive(Debug)]
pub(super) struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub(crate) fn tls_config(o: &TlsOptions) -> Result<Arc<rustls::ClientConfig>, Failure> {
    use rustls_pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Failure::Usage(format!("TLS: {e}")))?;
    let config = if o.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = &o.ca {
            let bad = |e: String| Failure::Usage(format!("--tls-ca {}: {e}", path.display()));
            let mut added = 0;
            for cert in rustls_pki_types::CertificateDer::pem_file_iter(path)
                .map_err(|e| bad(e.to_string()))?
            {
                let cert = cert.map_err(|e| bad(e.to_string()))?;
                roots.add(cert).map_err(|e| bad(e.to_string()))?;
                added += 1;
            }
            if added == 0 {
                return Err(bad("no PEM certificate in the file".into()));
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The most commands and bytes in flight on one connection.
pub(crate) struct Conn {
    /// host:port, for messages.
    pub(crate) addr: String,
    pub(crate) io: Transport,
    pub(super) parser: redis::Parser,
    pub(super) out: Vec<u8>,
    pub(super) inflight: VecDeque<Pending>,
    pub(super) inflight_bytes: usize,
    pub(super) db: Option<u64>,
    /// The socket's read and write timeout (`--timeout`), for messages.
    pub(super) timeout: Duration,
}

/// Connects to the first of `socks` that answers: a name often resolves to an IPv6
/// address first that the network does not route, and the IPv4 one works.
pub(super) fn connect_any(
    addr: &str,
    socks: &[std::net::SocketAddr],
    timeout: Duration,
) -> Result<TcpStream, Failure> {
    let mut errors = Vec::new();
    for sock in socks {
        match TcpStream::connect_timeout(sock, timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => errors.push(format!("{sock}: {e}")),
        }
    }
    if errors.is_empty() {
        return Err(io_err(addr, "cannot resolve", "no address"));
    }
    Err(io_err(addr, "cannot connect", errors.join("; ")))
}

/// A socket timeout (EAGAIN, "Resource temporarily unavailable") said as what it is.
fn timed_out(e: std::io::Error, timeout: Duration, what: &str) -> String {
    if matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    ) {
        format!(
            "the server accepted no data for {} s (--timeout) during a {what}",
            timeout.as_secs_f64()
        )
    } else {
        e.to_string()
    }
}

pub(crate) fn io_err(addr: &str, what: &str, e: impl std::fmt::Display) -> Failure {
    Failure::Io(std::io::Error::other(format!("{addr}: {what}: {e}")))
}

impl Conn {
    pub(crate) fn open(
        host: &str,
        port: u16,
        url: &TargetUrl,
        tls: Option<&Arc<rustls::ClientConfig>>,
        timeout: Duration,
    ) -> Result<Conn, Failure> {
        let addr = format!("{host}:{port}");
        let socks: Vec<std::net::SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|e| io_err(&addr, "cannot resolve", e))?
            .collect();
        let tcp = connect_any(&addr, &socks, timeout)?;
        tcp.set_read_timeout(Some(timeout))
            .and_then(|()| tcp.set_write_timeout(Some(timeout)))
            .and_then(|()| tcp.set_nodelay(true))
            .map_err(|e| io_err(&addr, "socket", e))?;
        let io = match tls {
            None => Transport::Plain(tcp),
            Some(config) => {
                // SNI and verification use the URL's host name when a cluster node is
                // announced by IP (managed services' certificates name the endpoint).
                let name_host = if host.parse::<std::net::IpAddr>().is_ok() {
                    url.host.as_str()
                } else {
                    host
                };
                let name = rustls_pki_types::ServerName::try_from(name_host.to_owned())
                    .map_err(|e| io_err(&addr, "TLS server name", e))?;
                let conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| io_err(&addr, "TLS", e))?;
                let mut stream = rustls::StreamOwned::new(conn, tcp);
                // Handshake now, so a certificate problem is reported as one.
                while stream.conn.is_handshaking() {
                    stream
                        .conn
                        .complete_io(&mut stream.sock)
                        .map_err(|e| io_err(&addr, "TLS handshake", e))?;
                }
                Transport::Tls(Box::new(stream))
            }
        };
        let mut c = Conn {
            addr,
            io,
            parser: redis::Parser::new(),
            out: Vec::new(),
            inflight: VecDeque::new(),
            inflight_bytes: 0,
            db: None,
            timeout,
        };
        if let Some(pass) = &url.password {
            let mut cmd = resp::Cmd::new("AUTH");
            if let Some(user) = &url.user {
                cmd.arg(user.as_bytes());
            }
            cmd.arg(pass.as_bytes());
            if let Some(e) = server_error(&c.call(&cmd.finish())?) {
                // A server where AUTH is renamed answers "unknown command 'AUTH', with
                // args beginning with: '<the password>'".
                let shown = super::url::redact(&error_text(&e), &[pass]);
                return Err(Failure::Refused(format!(
                    "{}: AUTH refused: {shown} (the password is not shown)",
                    c.addr
                )));
            }
        }
        Ok(c)
    }

    pub(super) fn flush(&mut self) -> Result<(), Failure> {
        if !self.out.is_empty() {
            let timeout = self.timeout;
            self.io
                .write_all(&self.out)
                .and_then(|()| self.io.flush())
                .map_err(|e| io_err(&self.addr, "write", timed_out(e, timeout, "write")))?;
            self.out.clear();
        }
        Ok(())
    }

    /// Writes `bytes` now, after whatever `out` holds.
    pub(super) fn write_now(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        self.flush()?;
        let timeout = self.timeout;
        self.io
            .write_all(bytes)
            .and_then(|()| self.io.flush())
            .map_err(|e| io_err(&self.addr, "write", timed_out(e, timeout, "write")))
    }

    pub(super) fn read_reply(&mut self) -> Result<Value, Failure> {
        self.flush()?;
        let timeout = self.timeout;
        let waiting = self.inflight.len().max(1);
        self.parser.parse_value(&mut self.io).map_err(|e| {
            if e.is_timeout() {
                io_err(
                    &self.addr,
                    "reading a reply",
                    format!(
                        "the server sent no reply within {} s ({waiting} command(s) \
                         waiting; --timeout SECONDS waits longer)",
                        timeout.as_secs_f64()
                    ),
                )
            } else {
                io_err(&self.addr, "reading a reply", e)
            }
        })
    }

    /// One command, waited for; only with nothing else in flight.
    pub(crate) fn call(&mut self, command: &[u8]) -> Result<Value, Failure> {
        self.out.extend_from_slice(command);
        self.read_reply()
    }
}

/// (code, details) of an error reply. (The crate does not export its error type's name.)
pub(crate) fn server_error(v: &Value) -> Option<(String, String)> {
    match v {
        Value::ServerError(e) => Some((
            e.code().to_owned(),
            e.details().unwrap_or_default().to_owned(),
        )),
        _ => None,
    }
}

pub(crate) fn error_text((code, details): &(String, String)) -> String {
    if details.is_empty() {
        code.clone()
    } else {
        format!("{code} {details}")
    }
}

pub(crate) fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::VerbatimString { text, .. } => Some(text.clone()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(n) => Some(*n),
        other => text(other).and_then(|t| t.parse().ok()),
    }
}

/// The profile for what `INFO server` says, and the server as shown (`redis 7.4.1`).
pub fn profile_for_server(info: &str) -> Result<(&'static TargetProfile, String), String> {
    let server = ServerVersion::from_info(info).ok_or("INFO server has no redis_version")?;
    let profile = server.profile().ok_or_else(|| {
        format!(
            "the target runs Redis {}.{}.{}; RESTORE with ABSTTL needs Redis 5.0 or newer",
            server.major, server.minor, server.patch
        )
    })?;
    Ok((profile, server.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connecting_tries_every_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let open = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        // A port just freed: nothing listens there.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap_or_else(|e| panic!("{e}"));
        let t = Duration::from_secs(5);
        let tcp = connect_any("h:1", &[closed, open], t).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(tcp.peer_addr().ok(), Some(open));
        let e = connect_any("h:1", &[closed], t)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(
                |e| e.contains("h:1: cannot connect") && e.contains(&closed.to_string())
            ),
            "{e:?}"
        );
    }

    #[test]
    fn server_versions_map_to_profiles() {
        let p = |info: &str| {
            profile_for_server(info)
                .map(|(p, _)| p.name)
                .unwrap_or("error")
        };
        assert_eq!(p("redis_version:5.0.7\r\n"), "redis-5.0");
        assert_eq!(p("redis_version:6.2.5\r\n"), "redis-6.2");
        assert_eq!(p("redis_version:7.0.15\r\n"), "redis-7.0");
        assert_eq!(p("redis_version:7.4.1\r\n"), "redis-7.4");
        assert_eq!(p("redis_version:8.0.2\r\n"), "redis-8.0");
        assert_eq!(p("redis_version:8.6.3\r\n"), "redis-8.6");
        assert_eq!(
            p("redis_version:7.2.4\r\nserver_name:valkey\r\nvalkey_version:8.0.1\r\n"),
            "valkey-8.0"
        );
        assert_eq!(
            p("redis_version:7.2.4\r\nvalkey_version:9.1.2\r\n"),
            "valkey-9.0"
        );
        assert_eq!(
            p("redis_version:7.2.4\r\nserver_name:valkey\r\n"),
            "valkey-7.2"
        );
        assert_eq!(p("redis_version:4.0.9\r\n"), "error");
    }
}
