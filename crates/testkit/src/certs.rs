//! Test certificates (feature `tls`): a CA and leaf certificates made with rcgen at test
//! time, and [`Pki`], a temporary directory holding a CA, a `localhost` server certificate
//! and a client identity, with clients that trust the CA. Nothing is committed: every run
//! makes new keys.

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A self-signed CA that may sign certificates (and CRLs) with this common name.
pub fn ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, cn);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap()
}

/// `(cert PEM, key PEM)` for `cn` (also its DNS name) with one extended key usage, signed
/// by `ca`.
pub fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    eku: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = vec![SanType::DnsName(cn.try_into().unwrap())];
    p.extended_key_usages = vec![eku];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, ca).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// A temporary directory with `ca.crt`, `server.crt` and `server.key` (for `localhost`), and
/// a client identity (`batch.example.org`) from the same CA.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca_pem: String,
    /// Client certificate and key, PEM.
    pub client_pem: String,
}

/// The `tls_server_config` of a web config file that uses the [`Pki`]'s server certificate.
pub const TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("test CA");
        let (server, server_key) = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        let (client, client_key) = leaf(
            &ca,
            "batch.example.org",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        std::fs::write(dir.path().join("ca.crt"), ca.pem()).unwrap();
        std::fs::write(dir.path().join("server.crt"), server).unwrap();
        std::fs::write(dir.path().join("server.key"), server_key).unwrap();
        Pki {
            ca_pem: ca.pem(),
            client_pem: format!("{client}{client_key}"),
            dir,
        }
    }

    /// Writes `web.yml` (atomically) into the directory, so relative paths find the files.
    pub fn config(&self, yaml: &str) -> PathBuf {
        let p = self.dir.path().join("web.yml");
        write_atomically(&p, yaml);
        p
    }

    /// A blocking client that trusts the CA, with the client identity if `with_cert`.
    pub fn client(&self, with_cert: bool) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_secs(10))
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap());
        if with_cert {
            b = b.identity(reqwest::Identity::from_pem(self.client_pem.as_bytes()).unwrap());
        }
        b.build().unwrap()
    }
}

impl Default for Pki {
    fn default() -> Self {
        Pki::new()
    }
}

/// Writes `text` to a temporary file beside `p` and renames it over `p` (a reloading reader
/// never sees half a file).
pub fn write_atomically(p: &Path, text: &str) {
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, p).unwrap();
}
