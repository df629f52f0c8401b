//! `tls_server_config` → `rustls::ServerConfig` (ring provider, HTTP/1.1 ALPN).

use crate::config::{RawTls, Scalar};
use crate::WebConfigError;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{ring, CryptoProvider, SupportedKxGroup, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    DigitallySignedStruct, DistinguishedName, RootCertStore, ServerConfig, SignatureScheme,
    SupportedCipherSuite, SupportedProtocolVersion,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The `client_auth_type` values (Go's `tls.ClientAuthType` names).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert` (the default): no certificate is requested.
    NoClientCert,
    /// `RequestClientCert`: a certificate is requested, not required, and not verified.
    RequestClientCert,
    /// `RequireAnyClientCert` (alias `RequireClientCert`): required, but not verified.
    RequireAnyClientCert,
    /// `VerifyClientCertIfGiven`: optional; if given it must chain to the client CA.
    VerifyClientCertIfGiven,
    /// `RequireAndVerifyClientCert`: required and must chain to the client CA.
    RequireAndVerifyClientCert,
}

impl ClientAuth {
    fn parse(s: &str) -> Result<ClientAuth, WebConfigError> {
        Ok(match s {
            "" | "NoClientCert" => ClientAuth::NoClientCert,
            "RequestClientCert" => ClientAuth::RequestClientCert,
            "RequireAnyClientCert" | "RequireClientCert" => ClientAuth::RequireAnyClientCert,
            "VerifyClientCertIfGiven" => ClientAuth::VerifyClientCertIfGiven,
            "RequireAndVerifyClientCert" => ClientAuth::RequireAndVerifyClientCert,
            other => {
                return Err(WebConfigError::invalid(
                    "tls_server_config.client_auth_type",
                    format!(
                        "{other:?} is not one of NoClientCert, RequestClientCert, \
                         RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
                    ),
                ))
            }
        })
    }

    /// Whether a certificate the client presents has been verified against the client CA by
    /// the time the handshake completes (only then is it an identity).
    pub fn verifies(self) -> bool {
        matches!(
            self,
            ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert
        )
    }
}

/// What the TLS section produced.
pub(crate) struct TlsBuilt {
    pub server_config: Option<Arc<ServerConfig>>,
    pub client_auth: ClientAuth,
    /// Files whose contents make up the TLS state (for change detection).
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Version {
    Tls10,
    Tls11,
    Tls12,
    Tls13,
}

fn parse_version(key: &str, s: &Scalar) -> Result<Version, WebConfigError> {
    Ok(match s.as_str() {
        "TLS10" => Version::Tls10,
        "TLS11" => Version::Tls11,
        "TLS12" => Version::Tls12,
        "TLS13" => Version::Tls13,
        other => {
            return Err(WebConfigError::invalid(
                key,
                format!("unknown TLS version {other:?} (expected TLS10, TLS11, TLS12 or TLS13)"),
            ))
        }
    })
}

/// Go's `tls.CipherSuites()` names. `Some(suite)` where the ring provider implements it, `None`
/// for a name Go accepts that rustls does not (CBC and TLS 1.3 suites: see `build`).
fn cipher_suite(name: &str) -> Option<Option<SupportedCipherSuite>> {
    use ring::cipher_suite as cs;
    Some(match name {
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            Some(cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)
        }
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            Some(cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
        }
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => Some(cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => Some(cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305" => {
            Some(cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305" => {
            Some(cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
        }
        // TLS 1.3 suites: Go ignores them in cipher_suites (TLS 1.3 suites are not
        // configurable there); so do we.
        "TLS_AES_128_GCM_SHA256" | "TLS_AES_256_GCM_SHA384" | "TLS_CHACHA20_POLY1305_SHA256" => {
            None
        }
        // Known to Go, not implemented by rustls.
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256"
        | "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_CBC_SHA256"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_RSA_WITH_RC4_128_SHA"
        | "TLS_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA"
        | "TLS_ECDHE_RSA_WITH_RC4_128_SHA" => None,
        _ => return None,
    })
}

/// exporter-toolkit's curve names. `Some(None)`: known but not offered by the ring provider.
fn curve(name: &str) -> Option<Option<&'static dyn SupportedKxGroup>> {
    Some(match name {
        "CurveP256" => Some(ring::kx_group::SECP256R1),
        "CurveP384" => Some(ring::kx_group::SECP384R1),
        "X25519" => Some(ring::kx_group::X25519),
        "CurveP521" => None,
        _ => return None,
    })
}

fn non_empty(s: &Option<Scalar>) -> Option<&str> {
    s.as_ref().map(|s| s.as_str()).filter(|s| !s.is_empty())
}

/// Go's `config_util.JoinDir`: relative paths are relative to the config file's directory.
fn join_dir(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        base.join(p)
    }
}

fn read_file(key: &str, path: &Path) -> Result<Vec<u8>, WebConfigError> {
    std::fs::read(path).map_err(|e| WebConfigError::File {
        key: key.to_string(),
        path: path.to_path_buf(),
        source: e,
    })
}

/// Loads `inline` or `file` (the file wins, as in exporter-toolkit); records read files.
fn load_source(
    base: &Path,
    inline: &Option<Scalar>,
    inline_key: &str,
    file: &Option<Scalar>,
    file_key: &str,
    files: &mut Vec<PathBuf>,
) -> Result<Option<(Vec<u8>, String)>, WebConfigError> {
    if let Some(f) = non_empty(file) {
        let path = join_dir(base, f);
        let data = read_file(file_key, &path)?;
        files.push(path.clone());
        return Ok(Some((data, format!("{file_key} {}", path.display()))));
    }
    Ok(non_empty(inline).map(|s| (s.as_bytes().to_vec(), inline_key.to_string())))
}

fn parse_certs(data: &[u8], what: &str) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs = CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| WebConfigError::Tls(format!("{what}: invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(WebConfigError::Tls(format!(
            "{what}: no PEM certificate found"
        )));
    }
    Ok(certs)
}

/// Looks Go names up: `Some(Some(x))` is supported, `Some(None)` is a name Go knows that
/// rustls lacks (skipped, returned for a warning), `None` an unknown name (an error).
fn known_names<'a, T>(
    names: impl Iterator<Item = &'a str>,
    lookup: impl Fn(&str) -> Option<Option<T>>,
    key: &str,
    what: &str,
) -> Result<(Vec<T>, Vec<&'a str>), WebConfigError> {
    let (mut found, mut skipped) = (Vec::new(), Vec::new());
    for name in names {
        match lookup(name) {
            Some(Some(x)) => found.push(x),
            Some(None) => skipped.push(name),
            None => {
                return Err(WebConfigError::invalid(
                    key,
                    format!("unknown {what} {name:?}"),
                ))
            }
        }
    }
    Ok((found, skipped))
}

/// Builds the TLS server configuration. `Ok(None)` server config when the section does not
/// enable TLS (none of cert, key, client CA or client_auth_type set), like exporter-toolkit.
pub(crate) fn build(raw: &RawTls, base: &Path) -> Result<TlsBuilt, WebConfigError> {
    // Names are validated whether or not TLS ends up enabled (Go checks them while decoding).
    let names = Names::parse(raw)?;
    if !enabled(raw) {
        return Ok(TlsBuilt {
            server_config: None,
            client_auth: ClientAuth::NoClientCert,
            files: Vec::new(),
        });
    }
    let mut files = Vec::new();
    let identity = Identity::load(raw, base, &mut files)?;
    let client_ca = load_client_ca(raw, base, names.client_auth, &mut files)?;
    let versions = protocol_versions(names.min, names.max)?;
    let client_auth = names.client_auth;
    let provider = crypto_provider(raw, names);
    let verifier = client_verifier(raw, client_auth, client_ca, &provider)?;

    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| WebConfigError::Tls(format!("protocol versions: {e}")))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.certs, identity.key)
        .map_err(|e| {
            WebConfigError::Tls(format!(
                "certificate and key ({}, {}): {e}",
                identity.cert_what, identity.key_what
            ))
        })?;
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    cfg.ignore_client_order = raw.prefer_server_cipher_suites.map(|b| b.0).unwrap_or(true);
    Ok(TlsBuilt {
        server_config: Some(Arc::new(cfg)),
        client_auth,
        files,
    })
}

/// The names in the section (versions, cipher suites, curves, client auth type), checked.
struct Names<'a> {
    min: Version,
    max: Version,
    /// The TLS 1.2 suites asked for that rustls has, in order.
    suites12: Vec<SupportedCipherSuite>,
    /// Suites Go knows that rustls lacks.
    skipped_suites: Vec<&'a str>,
    /// The curves asked for that the ring provider has, in order.
    groups: Vec<&'static dyn SupportedKxGroup>,
    /// Curves Go knows that the ring provider lacks.
    skipped_curves: Vec<&'a str>,
    client_auth: ClientAuth,
}

impl<'a> Names<'a> {
    fn parse(raw: &'a RawTls) -> Result<Names<'a>, WebConfigError> {
        let min = match &raw.min_version {
            Some(v) if !v.as_str().is_empty() => parse_version("tls_server_config.min_version", v)?,
            _ => Version::Tls12,
        };
        let max = match &raw.max_version {
            Some(v) if !v.as_str().is_empty() => parse_version("tls_server_config.max_version", v)?,
            _ => Version::Tls13,
        };
        let (suites12, skipped_suites) = known_names(
            raw.cipher_suites.iter().flatten().map(|n| n.as_str()),
            cipher_suite,
            "tls_server_config.cipher_suites",
            "cipher",
        )?;
        let (groups, skipped_curves) = known_names(
            raw.curve_preferences.iter().flatten().map(|n| n.as_str()),
            curve,
            "tls_server_config.curve_preferences",
            "curve",
        )?;
        let client_auth = ClientAuth::parse(
            raw.client_auth_type
                .as_ref()
                .map(|s| s.as_str())
                .unwrap_or(""),
        )?;
        Ok(Names {
            min,
            max,
            suites12,
            skipped_suites,
            groups,
            skipped_curves,
            client_auth,
        })
    }
}

/// Whether the section enables TLS: any of cert, key, client CA or client_auth_type set.
fn enabled(raw: &RawTls) -> bool {
    [
        &raw.cert,
        &raw.key,
        &raw.client_ca,
        &raw.cert_file,
        &raw.key_file,
        &raw.client_ca_file,
        &raw.client_auth_type,
    ]
    .iter()
    .any(|s| non_empty(s).is_some())
}

/// The server's certificate chain and private key, with where each came from (for errors).
struct Identity {
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_what: String,
    key_what: String,
}

impl Identity {
    fn load(
        raw: &RawTls,
        base: &Path,
        files: &mut Vec<PathBuf>,
    ) -> Result<Identity, WebConfigError> {
        if non_empty(&raw.cert_file).is_none() && non_empty(&raw.cert).is_none() {
            return Err(WebConfigError::invalid(
                "tls_server_config",
                "missing one of cert or cert_file",
            ));
        }
        if non_empty(&raw.key_file).is_none() && non_empty(&raw.key).is_none() {
            return Err(WebConfigError::invalid(
                "tls_server_config",
                "missing one of key or key_file",
            ));
        }
        let (cert_pem, cert_what) = load_source(
            base,
            &raw.cert,
            "tls_server_config.cert",
            &raw.cert_file,
            "tls_server_config.cert_file",
            files,
        )?
        .expect("checked above");
        let (key_pem, key_what) = load_source(
            base,
            &raw.key,
            "tls_server_config.key",
            &raw.key_file,
            "tls_server_config.key_file",
            files,
        )?
        .expect("checked above");
        let certs = parse_certs(&cert_pem, &cert_what)?;
        let key = PrivateKeyDer::from_pem_slice(&key_pem)
            .map_err(|e| WebConfigError::Tls(format!("{key_what}: no usable private key: {e}")))?;
        Ok(Identity {
            certs,
            key,
            cert_what,
            key_what,
        })
    }
}

/// The client CA (PEM and where it came from), refused without a client auth policy.
fn load_client_ca(
    raw: &RawTls,
    base: &Path,
    client_auth: ClientAuth,
    files: &mut Vec<PathBuf>,
) -> Result<Option<(Vec<u8>, String)>, WebConfigError> {
    let client_ca = load_source(
        base,
        &raw.client_ca,
        "tls_server_config.client_ca",
        &raw.client_ca_file,
        "tls_server_config.client_ca_file",
        files,
    )?;
    if client_ca.is_some() && client_auth == ClientAuth::NoClientCert {
        return Err(WebConfigError::invalid(
            "tls_server_config",
            "client CA's have been configured without a Client Auth Policy \
             (set client_auth_type, e.g. RequireAndVerifyClientCert)",
        ));
    }
    Ok(client_ca)
}

/// The protocol versions between `min` and `max`: rustls implements TLS 1.2 and 1.3 only.
fn protocol_versions(
    min: Version,
    max: Version,
) -> Result<Vec<&'static SupportedProtocolVersion>, WebConfigError> {
    if max < Version::Tls12 {
        return Err(WebConfigError::invalid(
            "tls_server_config.max_version",
            "TLS10 and TLS11 are not supported (rustls implements TLS 1.2 and 1.3 only)",
        ));
    }
    if min > max {
        return Err(WebConfigError::invalid(
            "tls_server_config",
            format!("min_version {min:?} is above max_version {max:?}"),
        ));
    }
    if min < Version::Tls12 {
        tracing::warn!(
            "tls_server_config.min_version {min:?}: TLS 1.0/1.1 are not supported, \
             TLS 1.2 is the minimum"
        );
    }
    let mut versions: Vec<&'static SupportedProtocolVersion> = Vec::new();
    if max >= Version::Tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if min <= Version::Tls12 {
        versions.push(&rustls::version::TLS12);
    }
    Ok(versions)
}

/// The ring provider with the cipher suites and curves asked for. TLS 1.3 suites are always
/// all enabled (as in Go); cipher_suites selects and orders the TLS 1.2 ones.
fn crypto_provider(raw: &RawTls, names: Names<'_>) -> Arc<CryptoProvider> {
    let default = ring::default_provider();
    if !names.skipped_suites.is_empty() {
        tracing::warn!(
            "tls_server_config.cipher_suites: not supported by rustls, ignored: {}",
            names.skipped_suites.join(", ")
        );
    }
    let mut cipher_suites: Vec<SupportedCipherSuite> = default
        .cipher_suites
        .iter()
        .filter(|s| s.version() == &rustls::version::TLS13)
        .copied()
        .collect();
    if names.suites12.is_empty() {
        if raw.cipher_suites.as_ref().is_some_and(|v| {
            v.iter()
                .any(|n| !n.as_str().starts_with("TLS_AES") && !n.as_str().starts_with("TLS_CHA"))
        }) && names.min <= Version::Tls12
        {
            tracing::warn!(
                "tls_server_config.cipher_suites: none of the TLS 1.2 suites is supported by \
                 rustls; using rustls' defaults"
            );
        }
        cipher_suites.extend(
            default
                .cipher_suites
                .iter()
                .filter(|s| s.version() == &rustls::version::TLS12)
                .copied(),
        );
    } else {
        cipher_suites.extend(names.suites12);
    }
    if !names.skipped_curves.is_empty() {
        tracing::warn!(
            "tls_server_config.curve_preferences: not supported by rustls' ring provider, \
             ignored: {}",
            names.skipped_curves.join(", ")
        );
    }
    let kx_groups = if names.groups.is_empty() {
        default.kx_groups.clone()
    } else {
        names.groups
    };
    Arc::new(CryptoProvider {
        cipher_suites,
        kx_groups,
        ..default
    })
}

/// How client certificates are checked: by `client_auth_type`, against the client CA, then
/// (if `client_allowed_sans` is set) for one of the allowed SANs.
fn client_verifier(
    raw: &RawTls,
    client_auth: ClientAuth,
    client_ca: Option<(Vec<u8>, String)>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let allowed_sans: Option<Vec<String>> = raw
        .client_allowed_sans
        .as_ref()
        .map(|v| v.iter().map(|s| s.0.clone()).collect());
    let verifier: Arc<dyn ClientCertVerifier> = match client_auth {
        ClientAuth::NoClientCert => WebPkiClientVerifier::no_client_auth(),
        ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert => {
            any_cert_verifier(client_auth, client_ca, provider)?
        }
        ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert => {
            webpki_verifier(client_auth, client_ca, provider)?
        }
    };
    Ok(match allowed_sans {
        Some(sans) if client_auth != ClientAuth::NoClientCert => Arc::new(SanCheck {
            inner: verifier,
            sans,
        }),
        _ => verifier,
    })
}

/// `RequestClientCert` / `RequireAnyClientCert`: any certificate; the client CA's subjects
/// only serve as hints.
fn any_cert_verifier(
    client_auth: ClientAuth,
    client_ca: Option<(Vec<u8>, String)>,
    provider: &CryptoProvider,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let hints = match &client_ca {
        Some((pem, what)) => parse_certs(pem, what)?
            .iter()
            .filter_map(|c| {
                x509_parser::parse_x509_certificate(c).ok().map(|(_, x)| {
                    DistinguishedName::from(x.tbs_certificate.subject.as_raw().to_vec())
                })
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Arc::new(AcceptAnyClientCert {
        mandatory: client_auth == ClientAuth::RequireAnyClientCert,
        algs: provider.signature_verification_algorithms,
        hints,
    }))
}

/// `VerifyClientCertIfGiven` / `RequireAndVerifyClientCert`: chains verified against the
/// client CA (else the web PKI roots, as Go uses the system roots).
fn webpki_verifier(
    client_auth: ClientAuth,
    client_ca: Option<(Vec<u8>, String)>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, WebConfigError> {
    let mut roots = RootCertStore::empty();
    match &client_ca {
        Some((pem, what)) => {
            for c in parse_certs(pem, what)? {
                roots.add(c).map_err(|e| {
                    WebConfigError::Tls(format!("{what}: unusable CA certificate: {e}"))
                })?;
            }
        }
        None => {
            // Go verifies against the system roots when no client CA is configured.
            tracing::warn!(
                "tls_server_config: client_auth_type {client_auth:?} without \
                 client_ca_file: client certificates are verified against the public \
                 web PKI roots"
            );
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
    }
    let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
    let b = if client_auth == ClientAuth::VerifyClientCertIfGiven {
        b.allow_unauthenticated()
    } else {
        b
    };
    b.build()
        .map_err(|e| WebConfigError::Tls(format!("client certificate verifier: {e}")))
}

/// `RequestClientCert` / `RequireAnyClientCert`: takes any certificate, only checking that the
/// handshake signature was made with its key.
#[derive(Debug)]
struct AcceptAnyClientCert {
    mandatory: bool,
    algs: WebPkiSupportedAlgorithms,
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for AcceptAnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// `client_allowed_sans`: after the inner verifier, the end-entity certificate must carry one
/// of the listed SANs (DNS, e-mail, IP or URI), compared exactly.
#[derive(Debug)]
struct SanCheck {
    inner: Arc<dyn ClientCertVerifier>,
    sans: Vec<String>,
}

impl ClientCertVerifier for SanCheck {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }
    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let ok = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let id = crate::ClientIdentity::from_der(end_entity)
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        if id.sans.iter().any(|s| self.sans.contains(s)) {
            Ok(ok)
        } else {
            Err(rustls::Error::General(format!(
                "could not find allowed SANs in client cert, found: {:?}",
                id.sans
            )))
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}
