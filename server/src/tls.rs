//! TLS termination: the certificate and key from PEM files, the rustls server configuration
//! (ring provider, ALPN `http/1.1` only), and reloading both files while serving.
//!
//! Owns loading and reloading; it does not own the handshake's place in a connection's life
//! (`server.rs` runs it inside each connection's task, bounded by the request timeout) nor
//! the signal that triggers a reload (`main.rs` maps SIGHUP to [`CertReloader::reload`]).
//!
//! A reload swaps the certificate that *new* handshakes get: [`ReloadableCert`] is the
//! config's certificate resolver, so the one `ServerConfig` (and every open session made
//! with it) stays as it is. A reload that fails keeps the old certificate, so a half-written
//! file or a typo never takes the server off the air.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The PEM files to serve TLS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// The private key for the first certificate (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: PathBuf,
}

/// Why the certificate or key cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("cannot read TLS {what} file {path}")]
    Read {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The file has a malformed PEM section.
    #[error("TLS {what} file {path} is not valid PEM")]
    Pem {
        /// "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// What the PEM parser said.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// No `BEGIN CERTIFICATE` section.
    #[error("no certificate in {0}; expected a PEM file with a BEGIN CERTIFICATE section")]
    NoCertificate(PathBuf),
    /// No `BEGIN PRIVATE KEY` (or RSA / EC) section.
    #[error("no private key in {0}; expected a PEM file with a BEGIN PRIVATE KEY section")]
    NoKey(PathBuf),
    /// A key rustls cannot sign with (an unsupported algorithm, or corrupt DER).
    #[error("the private key in {path} cannot be used")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The first certificate cannot be parsed.
    #[error("the certificate in {path} cannot be used")]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The key is not the one the certificate was issued for.
    #[error("the private key in {key} does not match the certificate in {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the configuration (the provider offers no usable protocol version).
    #[error("cannot build the TLS configuration")]
    Config(#[source] rustls::Error),
}

/// TLS for a listener: the acceptor every connection handshakes with, and the handle that
/// reloads its certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    reloader: CertReloader,
}

impl Tls {
    /// Reads `files` and builds the server configuration; any problem with the files is an
    /// error here, before anything listens.
    pub fn load(files: TlsFiles) -> Result<Tls, TlsError> {
        // Chosen here rather than installed as the process default, so nothing depends on
        // which crate happened to install one first.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = load_certified_key(&files, &provider)?;
        let cert = Arc::new(ReloadableCert {
            files,
            provider: Arc::clone(&provider),
            current: RwLock::new(Arc::new(current)),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&cert) as Arc<dyn ResolvesServerCert>);
        // hyper is built with http1 only: a client offering h2 alone is refused in the
        // handshake rather than served a protocol it did not ask for.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            reloader: CertReloader(cert),
        })
    }

    /// The acceptor to handshake with (cheap to clone: one `Arc`).
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }

    /// The handle that reloads the certificate and key from their files.
    pub fn reloader(&self) -> CertReloader {
        self.reloader.clone()
    }
}

/// Reloads the certificate and key that new handshakes get; clones share one certificate.
#[derive(Debug, Clone)]
pub struct CertReloader(Arc<ReloadableCert>);

impl CertReloader {
    /// Re-reads both files. On success new handshakes get the new certificate (sessions
    /// already open keep theirs) and an info line is logged; on failure the old certificate
    /// stays and a warning says why. Blocking file reads: call it off the async threads.
    pub fn reload(&self) -> Result<(), TlsError> {
        let cert = &self.0;
        match load_certified_key(&cert.files, &cert.provider) {
            Ok(new) => {
                *cert.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(new);
                tracing::info!(
                    cert = %cert.files.cert.display(),
                    key = %cert.files.key.display(),
                    "TLS certificate reloaded"
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    error = %chain(&e),
                    "TLS certificate not reloaded; still serving the previous one"
                );
                Err(e)
            }
        }
    }
}

/// The certificate resolver: whatever was loaded last, for every client hello.
#[derive(Debug)]
struct ReloadableCert {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    // A std lock, held only to clone or replace the `Arc` (never across an await or a file
    // read): every handshake reads it, and a reload writes it once.
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        Some(Arc::clone(&current))
    }
}

/// The certificate chain and signing key from `files`, checked to belong together.
fn load_certified_key(
    files: &TlsFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(&files.cert, "certificate")?;
    let key_pem = read(&files.key, "key")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what: "certificate",
            path: files.cert.clone(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(files.cert.clone()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsError::NoKey(files.key.clone()),
        source => TlsError::Pem {
            what: "key",
            path: files.key.clone(),
            source,
        },
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::BadKey {
            path: files.key.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // ring's keys all know their public half, so `Unknown` does not happen; were it to,
        // the handshake would still fail for a wrong key, just later and less clearly.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(source) => Err(TlsError::BadCertificate {
            path: files.cert.clone(),
            source,
        }),
    }
}

/// The whole file, or why not.
fn read(path: &Path, what: &'static str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// `e` and its causes in one line, as `main` prints start-up errors.
fn chain(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{CertReloader, Tls, TlsError, TlsFiles};

    /// A self-signed certificate for localhost and its key, as PEM.
    fn self_signed() -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
            .expect("generating a certificate");
        (c.cert.pem(), c.signing_key.serialize_pem())
    }

    /// Writes `cert` and `key` into `dir` and returns their paths.
    fn files(dir: &Path, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        std::fs::write(&files.cert, cert).expect("writing cert.pem");
        std::fs::write(&files.key, key).expect("writing key.pem");
        files
    }

    fn load_error(files: TlsFiles) -> TlsError {
        match Tls::load(files) {
            Ok(_) => panic!("loaded"),
            Err(e) => e,
        }
    }

    /// Each way the files can be wrong is its own error, naming the file.
    #[test]
    fn bad_files_are_specific_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert, key) = self_signed();
        let (_, other_key) = self_signed();
        let missing = TlsFiles {
            cert: dir.path().join("absent.pem"),
            key: dir.path().join("key.pem"),
        };
        assert!(matches!(
            load_error(missing),
            TlsError::Read {
                what: "certificate",
                ..
            }
        ));
        let e = load_error(files(dir.path(), &key, &key));
        assert!(matches!(e, TlsError::NoCertificate(_)), "{e}");
        let e = load_error(files(dir.path(), &cert, &cert));
        assert!(matches!(e, TlsError::NoKey(_)), "{e}");
        let e = load_error(files(dir.path(), &cert, &other_key));
        assert!(matches!(e, TlsError::KeyMismatch { .. }), "{e}");
        assert!(e.to_string().contains("does not match"), "{e}");
        let torn = &cert[..cert.len() / 2];
        let e = load_error(files(dir.path(), torn, &key));
        assert!(
            matches!(
                e,
                TlsError::Pem {
                    what: "certificate",
                    ..
                }
            ),
            "{e}"
        );
        assert!(Tls::load(files(dir.path(), &cert, &key)).is_ok());
        // One file holding both sections serves as either.
        let both = format!("{cert}{key}");
        assert!(Tls::load(files(dir.path(), &both, &both)).is_ok());
    }

    /// The certificate the resolver hands out, as DER.
    fn served(reloader: &CertReloader) -> Vec<u8> {
        let current = reloader.0.current.read().expect("lock");
        current.cert[0].to_vec()
    }

    /// A reload picks up new files; a failed one keeps the certificate it had.
    #[test]
    fn reload_swaps_or_keeps_the_certificate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (cert_a, key_a) = self_signed();
        let (cert_b, key_b) = self_signed();
        let tls = Tls::load(files(dir.path(), &cert_a, &key_a)).expect("loading A");
        let reloader = tls.reloader();
        let a = served(&reloader);
        files(dir.path(), &cert_b, "not a key");
        assert!(matches!(reloader.reload(), Err(TlsError::NoKey(_))));
        assert_eq!(served(&reloader), a);
        files(dir.path(), &cert_b, &key_b);
        reloader.reload().expect("reloading B");
        assert_ne!(served(&reloader), a);
    }
}
