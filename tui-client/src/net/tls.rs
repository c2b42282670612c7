//! What the client trusts when it speaks TLS (`https://`, `wss://`), and how a refusal reads.
//!
//! One [`Tls`] is built per process from the command line (`--ca-file`) and handed to both
//! halves of the protocol, so REST (reqwest) and the socket (tokio-tungstenite) trust exactly
//! the same certificates: the system's root store (what curl and git trust; `SSL_CERT_FILE`
//! and `SSL_CERT_DIR` are honoured) plus every certificate in `--ca-file`, for a server with
//! a self-signed certificate or a private CA. rustls runs on the ring provider, the one the
//! server uses too.
//!
//! [`refusal`] reads a failed connection's error chain for rustls' verdict on the server's
//! certificate, so that the one line a user sees says what is wrong and what to do about it
//! (`--ca-file`) instead of "connection failed". [`cleartext_warning`] is the warning for
//! `http://` to anything but this machine: the token and every message travel in clear.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{CertificateError, ClientConfig, RootCertStore};

use crate::net::ServerUrl;

/// The TLS settings both transports use.
#[derive(Debug, Clone)]
pub struct Tls {
    config: Arc<ClientConfig>,
}

/// Why the TLS settings cannot be built (in practice: why `--ca-file` cannot be used).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read.
    #[error("--ca-file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file holds no `BEGIN CERTIFICATE` block (or a broken one).
    #[error("--ca-file {}: {why}; expected PEM certificates (-----BEGIN CERTIFICATE-----)", path.display())]
    NotPem {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        why: String,
    },
    /// rustls refused the configuration (the ring provider supports every default
    /// version, so this is not expected).
    #[error("cannot set up TLS: {0}")]
    Config(#[from] rustls::Error),
}

impl Tls {
    /// The settings for `server`: system roots and the certificates in `ca_file`. For an
    /// `http://` server nothing is loaded (the system store costs a few milliseconds to
    /// parse), though `ca_file` is still checked, so a typo is found before it matters.
    pub fn new(server: &ServerUrl, ca_file: Option<&Path>) -> Result<Tls, TlsError> {
        let extra = match ca_file {
            Some(path) => read_ca_file(path)?,
            None => Vec::new(),
        };
        let mut roots = RootCertStore::empty();
        if server.is_tls() {
            let native = rustls_native_certs::load_native_certs();
            for e in &native.errors {
                tracing::warn!(error = %e, "reading the system's root certificates");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, ignored, "system root certificates");
        }
        for cert in extra {
            // A CA file may hold a certificate webpki cannot use as a root (a v1 certificate,
            // say); it is then not trusted, which the handshake's error says.
            if let Err(e) = roots.add(cert) {
                tracing::warn!(error = %e, "a --ca-file certificate cannot be a root");
            }
        }
        // Also the process's default, for any client built without these settings (it
        // would panic without one); a second call finds it installed, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Tls {
            config: Arc::new(config),
        })
    }

    /// The rustls configuration, for reqwest and tokio-tungstenite.
    pub fn client_config(&self) -> Arc<ClientConfig> {
        Arc::clone(&self.config)
    }
}

/// Every certificate in the PEM file at `path` (at least one).
fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let not_pem = |why: String| TlsError::NotPem {
        path: path.to_owned(),
        why,
    };
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| not_pem(format!("unreadable PEM ({e})")))?;
    if certs.is_empty() {
        return Err(not_pem("no certificate in it".to_owned()));
    }
    Ok(certs)
}

/// rustls' verdict on the server's certificate, if that is why `error` happened, as one
/// line that says what to do. `None` for every other failure (a network one, usually).
pub fn refusal(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let verdict = find_rustls_error(error)?;
    let rustls::Error::InvalidCertificate(why) = verdict else {
        return None;
    };
    let advice = "pass --ca-file PEM (or set NATTER_CA_FILE) with the certificate of the CA \
                  that signed it, or the server's own if it is self-signed";
    Some(match why {
        CertificateError::UnknownIssuer => {
            format!("the server's certificate is not trusted (unknown issuer); {advice}")
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server's certificate is not valid for this host name; connect with a name \
             the certificate lists (see docs/deploy.md)"
                .to_owned()
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server's certificate has expired; renew it on the server (natter-server \
             reloads it on SIGHUP)"
                .to_owned()
        }
        // webpki's verdict on a certificate that says it is a CA (basicConstraints
        // CA:TRUE, as `openssl req -x509` makes by default) serving as the server's own.
        // rustls passes it on only as an opaque error, and webpki's Display is its name.
        CertificateError::Other(other) if other.0.to_string() == "CaUsedAsEndEntity" => {
            "the server's certificate is a CA certificate (basicConstraints CA:TRUE), which              cannot be a server's own; make it with CA:FALSE (see docs/deploy.md)"
                .to_owned()
        }
        other => format!("the server's certificate is not trusted ({other}); {advice}"),
    })
}

/// The first `rustls::Error` in `error`'s chain. An `io::Error` hides the error it wraps
/// from `source()` (it reports the wrapped error's own source instead), and tokio-rustls
/// wraps rustls' errors in one, so each `io::Error` is looked inside too.
fn find_rustls_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a rustls::Error> {
    let mut next = Some(error);
    // Bounded: error chains are short, but a cycle must not hang the client.
    for _ in 0..16 {
        let e = next?;
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
        {
            if let Some(found) = inner.downcast_ref::<rustls::Error>() {
                return Some(found);
            }
            next = Some(inner);
            continue;
        }
        next = e.source();
    }
    None
}

/// The warning for a server reached over plain `http://` that is not this machine: what
/// is at stake and what to do. `None` for `https://` and for loopback.
pub fn cleartext_warning(server: &ServerUrl) -> Option<String> {
    if server.is_tls() || is_loopback(&server.hostname()) {
        return None;
    }
    Some(format!(
        "warning: {server} is plain http, so your token and messages cross the network in \
         clear; use https:// (see docs/deploy.md)"
    ))
}

/// Whether `host` (a URL's host, IPv6 in brackets) is this machine.
fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host.to_ascii_lowercase().ends_with(".localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ServerUrl {
        ServerUrl::parse(s).expect("a valid URL")
    }

    #[test]
    fn cleartext_is_warned_about_off_this_machine_only() {
        for quiet in [
            "127.0.0.1:8000",
            "http://localhost:8000",
            "http://[::1]:8000",
            "http://127.8.9.10:1",
            "https://chat.example.com",
            "wss://10.0.0.1:8443",
        ] {
            assert_eq!(cleartext_warning(&url(quiet)), None, "{quiet}");
        }
        for loud in [
            "http://chat.example.com:8000",
            "10.0.0.1:8000",
            "ws://[2001:db8::1]:80",
        ] {
            let w = cleartext_warning(&url(loud)).expect(loud);
            assert!(w.contains("in clear") && w.contains("https://"), "{w}");
        }
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = url("https://localhost:1");
        let missing = dir.path().join("missing.pem");
        let e = Tls::new(&server, Some(&missing)).expect_err("missing");
        assert!(e.to_string().starts_with("--ca-file "), "{e}");

        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate\n").expect("write");
        let e = Tls::new(&server, Some(&junk)).expect_err("junk");
        assert!(e.to_string().contains("no certificate"), "{e}");

        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("a certificate");
        let good = dir.path().join("ca.pem");
        std::fs::write(&good, cert.cert.pem()).expect("write");
        Tls::new(&server, Some(&good)).expect("a PEM certificate is accepted");
    }

    #[test]
    fn refusals_are_found_inside_io_errors() {
        let rustls = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        let io = std::io::Error::other(rustls);
        let line = refusal(&io).expect("found through the io::Error");
        assert!(line.contains("--ca-file"), "{line}");
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(refusal(&plain), None);
    }
}
