//! Test certificates, made at test time with rcgen (feature `certs`): a CA, and a server
//! certificate it signs for `localhost` and `127.0.0.1` — in memory ([`Pki`]: the CA's DER
//! for a rustls client, PEM for the rest) and as the PEM files an operator would have
//! ([`CertFiles`]: `ca.pem` to trust, `cert.pem` and `key.pem` to serve). Each [`Pki::new`]
//! is a CA of its own, so a test can make two and swap the served certificate between them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// The names the server certificate is for.
pub const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// A CA and a server certificate it issued, in memory.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate clients trust, DER.
    pub ca_der: Vec<u8>,
    /// The same, PEM.
    pub ca_pem: String,
    /// The server's certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    /// Whether the server certificate is its own CA ([`Pki::self_signed_ca`]).
    self_signed: bool,
}

/// Where a [`Pki`]'s PEM files are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFiles {
    /// The CA certificate, to trust (for [`Pki::self_signed_ca`], the server's own file).
    pub ca: PathBuf,
    /// The server certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
}

impl CertFiles {
    /// `ca.pem`, `cert.pem` and `key.pem` in `dir` (nothing is written).
    pub fn in_dir(dir: &Path) -> CertFiles {
        CertFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        }
    }
}

impl Pki {
    /// A new CA (common name `natter test CA NAME`, for signing certificates and CRLs) and
    /// a server certificate signed by it.
    pub fn new(name: &str) -> Result<Pki, rcgen::Error> {
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("natter test CA {name}"));
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let key = KeyPair::generate()?;
        let cert = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())?
            .signed_by(&key, &ca)?;
        Ok(Pki {
            ca_der: ca.der().to_vec(),
            ca_pem: ca.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            self_signed: false,
        })
    }

    /// A self-signed server certificate that calls itself a CA (basicConstraints CA:TRUE),
    /// as `openssl req -x509` makes by default: the CA is the server certificate itself.
    pub fn self_signed_ca() -> Result<Pki, rcgen::Error> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(SERVER_NAMES.map(str::to_owned).to_vec())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key)?;
        Ok(Pki {
            ca_der: cert.der().to_vec(),
            ca_pem: cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            self_signed: true,
        })
    }

    /// Writes the PEM files into `dir` (created if need be): `ca.pem`, `cert.pem` and
    /// `key.pem` — for [`Pki::self_signed_ca`] no `ca.pem`, the CA being `cert.pem`.
    pub fn write_to(&self, dir: &Path) -> std::io::Result<CertFiles> {
        std::fs::create_dir_all(dir)?;
        let mut files = CertFiles::in_dir(dir);
        if self.self_signed {
            files.ca = files.cert.clone();
        } else {
            std::fs::write(&files.ca, &self.ca_pem)?;
        }
        self.install(&files)?;
        Ok(files)
    }

    /// Writes the server's certificate and key (not the CA) to `files`: what a server
    /// serves, replaced in place for a reload.
    pub fn install(&self, files: &CertFiles) -> std::io::Result<()> {
        std::fs::write(&files.cert, &self.cert_pem)?;
        std::fs::write(&files.key, &self.key_pem)
    }
}

/// [`Pki::new`] written into `dir`: a fresh CA named `name` and a server certificate it
/// signed. Panics on failure (for tests, where that is the failure report).
pub fn generate(dir: &Path, name: &str) -> CertFiles {
    let pki = Pki::new(name).unwrap_or_else(|e| panic!("making test certificates: {e}"));
    pki.write_to(dir)
        .unwrap_or_else(|e| panic!("writing test certificates to {}: {e}", dir.display()))
}

/// [`Pki::self_signed_ca`] written into `dir`; panics on failure.
pub fn generate_self_signed_ca(dir: &Path) -> CertFiles {
    let pki = Pki::self_signed_ca().unwrap_or_else(|e| panic!("making a certificate: {e}"));
    pki.write_to(dir)
        .unwrap_or_else(|e| panic!("writing a certificate to {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir() -> PathBuf {
        std::env::temp_dir().join(crate::unique_name("natter_certs"))
    }

    #[test]
    fn the_files_are_written_and_hold_pem() {
        let dir = temp_dir();
        let files = generate(&dir, "one");
        assert_eq!(files, CertFiles::in_dir(&dir));
        let read = |p: &Path| std::fs::read_to_string(p).expect("a file");
        assert!(read(&files.ca).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(read(&files.cert).starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(read(&files.key).starts_with("-----BEGIN PRIVATE KEY-----"));
        assert_ne!(read(&files.ca), read(&files.cert));

        let own = generate_self_signed_ca(&dir.join("self"));
        assert_eq!(own.ca, own.cert);
        assert!(!dir.join("self/ca.pem").exists());
        std::fs::remove_dir_all(&dir).expect("cleaning up");
    }

    #[test]
    fn each_pki_is_a_ca_of_its_own() {
        let (a, b) = (Pki::new("A").expect("A"), Pki::new("B").expect("B"));
        assert_ne!(a.ca_der, b.ca_der);
        assert_ne!(a.key_pem, b.key_pem);
        assert!(a.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(!a.ca_der.is_empty());
    }
}
