//! Tests of parsing, authorization, TLS handshakes and reloading.

use super::*;
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::io::Write as _;
use store::GroupKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DAVE_HASH: &str = "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq";

fn parse(yaml: &str) -> Result<WebConfig, WebConfigError> {
    WebConfig::parse(yaml, Path::new("/nonexistent"))
}

fn err(yaml: &str) -> String {
    parse(yaml).expect_err("should be refused").to_string()
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

fn hash(pass: &str) -> String {
    bcrypt::hash(pass, 4).unwrap()
}

// ---------------------------------------------------------------- PKI for the TLS tests

struct Pki {
    dir: tempfile::TempDir,
    ca: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

impl Leaf {
    fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone()]
    }
    fn key(&self) -> PrivateKeyDer<'static> {
        PrivatePkcs8KeyDer::from(self.key_der.clone()).into()
    }
}

fn ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
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

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    cn: &str,
    sans: Vec<SanType>,
    eku: ExtendedKeyUsagePurpose,
) -> Leaf {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.subject_alt_names = sans;
    p.extended_key_usages = vec![eku];
    let key = KeyPair::generate().unwrap();
    let cert = p.signed_by(&key, issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
        key_der: key.serialize_der(),
    }
}

fn dns(s: &str) -> SanType {
    SanType::DnsName(s.try_into().unwrap())
}

impl Pki {
    /// A CA (`ca.crt`) and a server certificate for localhost (`server.crt`, `server.key`).
    fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca("test CA");
        let server = leaf(
            &ca,
            "localhost",
            vec![dns("localhost")],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let pki = Pki { dir, ca };
        pki.write("ca.crt", &pki.ca.pem());
        pki.write("server.crt", &server.cert_pem);
        pki.write("server.key", &server.key_pem);
        pki
    }

    fn write(&self, name: &str, content: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        p
    }

    fn client(&self, cn: &str, sans: Vec<SanType>) -> Leaf {
        leaf(&self.ca, cn, sans, ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// Writes `web.yml` and loads it.
    fn load(&self, yaml: &str) -> Result<WebConfig, WebConfigError> {
        WebConfig::load(&self.write("web.yml", yaml))
    }

    fn client_config(
        &self,
        versions: &[&'static rustls::SupportedProtocolVersion],
        cert: Option<&Leaf>,
    ) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let b = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
        let mut c = match cert {
            Some(l) => b.with_client_auth_cert(l.chain(), l.key()).unwrap(),
            None => b.with_no_client_auth(),
        };
        c.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(c)
    }
}

const SERVER_TLS: &str = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n";

struct Outcome {
    server: Result<Option<Vec<CertificateDer<'static>>>, String>,
    client: Result<(), String>,
    alpn: Option<Vec<u8>>,
    version: Option<rustls::ProtocolVersion>,
    suite: Option<rustls::CipherSuite>,
}

/// A TLS handshake over an in-memory pipe, then one server→client message.
async fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
) -> Outcome {
    let (a, b) = tokio::io::duplex(64 * 1024);
    let acceptor = tokio_rustls::TlsAcceptor::from(server);
    let connector = tokio_rustls::TlsConnector::from(client);
    let mut info = (None, None, None);
    let srv = async {
        let mut s = acceptor.accept(a).await.map_err(|e| e.to_string())?;
        let conn = s.get_ref().1;
        let peer = conn.peer_certificates().map(|c| c.to_vec());
        info = (
            conn.alpn_protocol().map(|p| p.to_vec()),
            conn.protocol_version(),
            conn.negotiated_cipher_suite().map(|s| s.suite()),
        );
        s.write_all(b"hi").await.map_err(|e| e.to_string())?;
        s.flush().await.map_err(|e| e.to_string())?;
        Ok(peer)
    };
    let cli = async {
        let name = ServerName::try_from("localhost").unwrap();
        let mut c = connector
            .connect(name, b)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 2];
        c.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"hi");
        Ok(())
    };
    let (server, client) = tokio::join!(srv, cli);
    Outcome {
        server,
        client,
        alpn: info.0,
        version: info.1,
        suite: info.2,
    }
}

// ---------------------------------------------------------------- parsing

#[test]
fn conformance_file_with_dave() {
    let c = parse(&format!("basic_auth_users:\n  dave: {DAVE_HASH}\n")).unwrap();
    assert!(c.tls().is_none());
    assert!(c.has_users());
    let ok = basic("dave", "dave123");
    fn req(h: Option<&[u8]>) -> AuthRequest<'_> {
        AuthRequest {
            authorization: h,
            client_cert: None,
            action: Action::Read,
        }
    }
    assert_eq!(
        c.authorize(&req(Some(ok.as_bytes()))),
        Ok(Principal::User("dave".into()))
    );
    // Cached: the second check is fast and gives the same answer.
    let t = std::time::Instant::now();
    assert!(c.authorize(&req(Some(ok.as_bytes()))).is_ok());
    assert!(t.elapsed() < std::time::Duration::from_millis(20));
    let bad = basic("dave", "dave124");
    assert_eq!(
        c.authorize(&req(Some(bad.as_bytes()))),
        Err(Denial::Unauthorized)
    );
    assert_eq!(c.authorize(&req(None)), Err(Denial::Unauthorized));
    // Exporter-toolkit's dummy password does not let an unknown user in.
    let fake = basic("mallory", "fakepassword");
    assert_eq!(
        c.authorize(&req(Some(fake.as_bytes()))),
        Err(Denial::Unauthorized)
    );
}

#[test]
fn empty_and_null_sections() {
    for y in [
        "",
        "# nothing\n",
        "tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n",
        "tls_server_config: {}\nbasic_auth_users: {}\naccess: {}\n",
    ] {
        let c = parse(y).unwrap();
        assert!(
            c.tls().is_none() && !c.has_users() && c.headers().is_empty(),
            "{y}"
        );
        assert!(c.http2());
        assert_eq!(c.rate_limit(), None);
        let r = AuthRequest {
            authorization: None,
            client_cert: None,
            action: Action::Admin,
        };
        assert_eq!(c.authorize(&r), Ok(Principal::Anonymous));
    }
}

#[test]
fn unknown_keys_are_errors() {
    assert!(err("foo: 1\n").contains("foo"));
    assert!(err("tls_server_config:\n  cert_filse: server.crt\n").contains("cert_filse"));
    assert!(err("http_server_config:\n  http3: true\n").contains("http3"));
    assert!(err("access:\n  user: {}\n").contains("user"));
    assert!(err("access:\n  default: { role: [read] }\n").contains("role"));
    assert!(err("rate_limit:\n  bursts: 1\n").contains("bursts"));
    assert!(err("hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n").contains("parsing web config"));
}

#[test]
fn headers() {
    let c = parse(
        "http_server_config:\n  http2: false\n  headers:\n    X-Frame-Options: deny\n    \
         Strict-Transport-Security: max-age=31536000; includeSubDomains\n    \
         X-Content-Type-Options: nosniff\n    X-XSS-Protection: 1\n    \
         Content-Security-Policy: \"default-src 'self' *.test.example.net\"\n",
    )
    .unwrap();
    assert!(!c.http2());
    let h: Vec<(String, String)> = c
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        h,
        [
            ("x-frame-options", "deny"),
            (
                "strict-transport-security",
                "max-age=31536000; includeSubDomains"
            ),
            ("x-content-type-options", "nosniff"),
            ("x-xss-protection", "1"),
            (
                "content-security-policy",
                "default-src 'self' *.test.example.net"
            ),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    let e = err("http_server_config:\n  headers:\n    Content-Type: foo\n");
    assert!(e.contains("\"Content-Type\" can not be configured"), "{e}");
    // Names are matched exactly, as in exporter-toolkit.
    assert!(
        err("http_server_config:\n  headers:\n    x-frame-options: deny\n").contains("can not")
    );
    let e = err("http_server_config:\n  headers:\n    X-Frame-Options: foo\n");
    assert!(
        e.contains("X-Frame-Options") && e.contains("sameorigin"),
        "{e}"
    );
    assert!(
        err("http_server_config:\n  headers:\n    X-Content-Type-Options: sniff\n")
            .contains("nosniff")
    );
    assert!(
        err("http_server_config:\n  headers:\n    X-XSS-Protection: \"a\\nb\"\n")
            .contains("invalid header value")
    );
    // Blank: unset.
    let c = parse("http_server_config:\n  headers:\n    X-XSS-Protection: \"\"\n").unwrap();
    assert!(c.headers().is_empty());
}

#[test]
fn bad_bcrypt_hashes() {
    let e = err("basic_auth_users:\n  john: doe\n");
    assert!(
        e.contains("basic_auth_users.john") && e.contains("bcrypt"),
        "{e}"
    );
    assert!(err(
        "basic_auth_users:\n  john: $2y$99$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq\n"
    )
    .contains("cost"));
    for prefix in ["$2a$", "$2b$", "$2y$"] {
        parse(&format!(
            "basic_auth_users:\n  u: {}\n",
            DAVE_HASH.replacen("$2y$", prefix, 1)
        ))
        .unwrap();
    }
    assert!(err(&format!(
        "basic_auth_users:\n  u: {DAVE_HASH}\n  u: {DAVE_HASH}\n"
    ))
    .contains("duplicate"));
}

#[test]
fn rate_limit() {
    let c = parse("rate_limit:\n  interval: \"1s\"\n  burst: 20\n").unwrap();
    assert_eq!(
        c.rate_limit(),
        Some(RateLimit {
            interval: Duration::from_secs(1),
            burst: 20
        })
    );
    assert_eq!(
        parse("rate_limit:\n  interval: 0\n  burst: 2\n")
            .unwrap()
            .rate_limit(),
        None
    );
    assert!(err("rate_limit:\n  interval: soon\n").contains("invalid duration"));
    assert!(err("rate_limit:\n  interval: 1s\n  burst: -1\n").contains("rate_limit.burst"));
}

#[test]
fn access_section_errors() {
    let users = format!("basic_auth_users:\n  ci: {DAVE_HASH}\n");
    let e = err(&format!(
        "{users}access:\n  users:\n    ci: {{ roles: [write] }}\n"
    ));
    assert!(
        e.contains("access.users.ci.roles") && e.contains("write"),
        "{e}"
    );
    let e = err(&format!(
        "{users}access:\n  users:\n    ci: {{ roles: [push], push_matchers: ['job=\"x\"'] }}\n"
    ));
    assert!(e.contains("access.users.ci.push_matchers"), "{e}");
    let e = err(&format!(
        "{users}access:\n  users:\n    ci: {{ roles: [read], push_matchers: ['{{job=\"x\"}}'] }}\n"
    ));
    assert!(e.contains("without the push role"), "{e}");
    let e = err(&format!(
        "{users}access:\n  users:\n    bob: {{ roles: [read] }}\n"
    ));
    assert!(
        e.contains("access.users.bob") && e.contains("basic_auth_users"),
        "{e}"
    );
    let e = err("access:\n  client_certs:\n    a.example.org: { roles: [read] }\n");
    assert!(
        e.contains("access.client_certs") && e.contains("client_auth_type"),
        "{e}"
    );
}

#[test]
fn tls_parse_errors() {
    let pki = Pki::new();
    let e = pki
        .load("tls_server_config:\n  cert_file: server.crt\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing one of key or key_file"), "{e}");
    let e = pki
        .load("tls_server_config:\n  key_file: server.key\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing one of cert or cert_file"), "{e}");
    let e = pki
        .load("tls_server_config:\n  cert_file: \"\"\n  key_file: \"\"\n  client_auth_type: x\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("client_auth_type"), "{e}");
    let e = pki
        .load(&format!("{SERVER_TLS}  client_auth_type: RequireCert\n"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("tls_server_config.client_auth_type") && e.contains("RequireCert"),
        "{e}"
    );
    let e = pki
        .load("tls_server_config:\n  cert_file: somefile\n  key_file: server.key\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("cert_file") && e.contains("somefile"), "{e}");
    let e = pki
        .load("tls_server_config:\n  cert_file: server.crt\n  key_file: somefile\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("key_file") && e.contains("somefile"), "{e}");
    // The key of another certificate.
    let other = pki.client("x", vec![]);
    pki.write("other.key", &other.key_pem);
    assert!(pki
        .load("tls_server_config:\n  cert_file: server.crt\n  key_file: other.key\n")
        .is_err());
    // Not PEM.
    pki.write("junk.crt", "junk");
    let e = pki
        .load("tls_server_config:\n  cert_file: junk.crt\n  key_file: server.key\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("junk.crt"), "{e}");
    // A client CA without a client auth policy.
    let e = pki
        .load(&format!("{SERVER_TLS}  client_ca_file: ca.crt\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("without a Client Auth Policy"), "{e}");
    let e = pki
        .load(&format!("{SERVER_TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: nofile\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("client_ca_file") && e.contains("nofile"), "{e}");
    let e = pki
        .load(&format!(
            "{SERVER_TLS}  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA2048]\n"
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown cipher"), "{e}");
    let e = pki
        .load(&format!("{SERVER_TLS}  curve_preferences: [CurveP257]\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("unknown curve"), "{e}");
    let e = pki
        .load(&format!("{SERVER_TLS}  min_version: TLS111\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_version") && e.contains("TLS111"), "{e}");
    let e = pki
        .load(&format!("{SERVER_TLS}  max_version: TLS11\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_version"), "{e}");
    let e = pki
        .load(&format!(
            "{SERVER_TLS}  min_version: TLS13\n  max_version: TLS12\n"
        ))
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_version"), "{e}");
    // Names are checked even when TLS is not enabled (Go checks them while decoding).
    assert!(err("tls_server_config:\n  min_version: TLS9\n").contains("TLS9"));
}

#[test]
fn tls_parse_every_key() {
    let pki = Pki::new();
    let c = pki
        .load(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
             client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: [a.example.org]\n  min_version: TLS10\n  max_version: TLS13\n  \
             cipher_suites:\n  - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  \
             - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n  - TLS_AES_128_GCM_SHA256\n  \
             curve_preferences: [CurveP256, CurveP384, CurveP521, X25519]\n  \
             prefer_server_cipher_suites: false\n\
             http_server_config:\n  http2: true\n",
        )
        .unwrap();
    let tls = c.tls().unwrap();
    assert_eq!(c.client_auth(), ClientAuth::RequireAndVerifyClientCert);
    assert_eq!(tls.alpn_protocols, vec![b"http/1.1".to_vec()]);
    assert!(!tls.ignore_client_order);
    let files: Vec<_> = c
        .files()
        .iter()
        .map(|p| p.file_name().unwrap().to_owned())
        .collect();
    assert_eq!(files, ["web.yml", "server.crt", "server.key", "ca.crt"]);
    // Go names for all client_auth_type values, including the legacy alias.
    for t in [
        "NoClientCert",
        "RequestClientCert",
        "RequireAnyClientCert",
        "RequireClientCert",
        "VerifyClientCertIfGiven",
        "RequireAndVerifyClientCert",
    ] {
        let ca = if t == "NoClientCert" {
            ""
        } else {
            "  client_ca_file: ca.crt\n"
        };
        pki.load(&format!("{SERVER_TLS}  client_auth_type: {t}\n{ca}"))
            .unwrap_or_else(|e| panic!("{t}: {e}"));
    }
    // exporter-toolkit's "good" test files: all Go cipher names, only P-521, no client CA.
    pki.load(&format!(
        "{SERVER_TLS}  client_auth_type: VerifyClientCertIfGiven\n  cipher_suites:\n  \
         - TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384\n  \
         - TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n  - TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384\n  \
         - TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256\n  \
         - TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256\n  - TLS_AES_128_GCM_SHA256\n  \
         - TLS_AES_256_GCM_SHA384\n  - TLS_CHACHA20_POLY1305_SHA256\n  \
         - TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA\n  - TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA\n  \
         - TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA\n  - TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA\n"
    ))
    .unwrap();
    pki.load(&format!(
        "{SERVER_TLS}  client_auth_type: VerifyClientCertIfGiven\n  min_version: TLS13\n  \
         curve_preferences:\n  - CurveP521\n"
    ))
    .unwrap();
    // Inline PEM instead of files.
    let cert = std::fs::read_to_string(pki.dir.path().join("server.crt")).unwrap();
    let key = std::fs::read_to_string(pki.dir.path().join("server.key")).unwrap();
    let indent = |s: &str| s.lines().map(|l| format!("    {l}\n")).collect::<String>();
    let c = parse(&format!(
        "tls_server_config:\n  cert: |\n{}  key: |\n{}  client_ca: |\n{}  client_auth_type: RequireAnyClientCert\n",
        indent(&cert),
        indent(&key),
        indent(&pki.ca.pem())
    ))
    .unwrap();
    assert!(c.tls().is_some());
    assert!(c.files().is_empty());
    // TLS-looking settings without cert/key/CA/client_auth_type do not enable TLS (as in Go).
    assert!(parse("tls_server_config:\n  min_version: TLS13\n")
        .unwrap()
        .tls()
        .is_none());
}

#[test]
fn relative_paths_are_relative_to_the_config_file() {
    let pki = Pki::new();
    let sub = pki.dir.path().join("conf");
    std::fs::create_dir(&sub).unwrap();
    let path = sub.join("web.yml");
    std::fs::write(
        &path,
        "tls_server_config:\n  cert_file: ../server.crt\n  key_file: ../server.key\n",
    )
    .unwrap();
    let c = WebConfig::load(&path).unwrap();
    assert!(c.tls().is_some());
    assert_eq!(c.files()[1], sub.join("../server.crt"));
    // Absolute paths stay as they are.
    let abs = pki.dir.path().join("server.key");
    std::fs::write(
        &path,
        format!(
            "tls_server_config:\n  cert_file: ../server.crt\n  key_file: {}\n",
            abs.display()
        ),
    )
    .unwrap();
    assert_eq!(WebConfig::load(&path).unwrap().files()[2], abs);
    let e = WebConfig::load(&sub.join("missing.yml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.yml"), "{e}");
}

// ---------------------------------------------------------------- authorization

struct Ctx {
    c: WebConfig,
}

impl Ctx {
    fn run(
        &self,
        auth: Option<&str>,
        cert: Option<&ClientIdentity>,
        action: Action<'_>,
    ) -> Result<Principal, Denial> {
        self.c.authorize(&AuthRequest {
            authorization: auth.map(str::as_bytes),
            client_cert: cert,
            action,
        })
    }
}

fn key(job: &str) -> GroupKey {
    GroupKey::new([("job", job), ("instance", "a")])
}

#[test]
fn no_users_allows_everything() {
    let ctx = Ctx {
        c: parse("").unwrap(),
    };
    let k = key("x");
    for a in [Action::Read, Action::Push(&k), Action::Admin] {
        assert_eq!(ctx.run(None, None, a), Ok(Principal::Anonymous));
        // An Authorization header is ignored without users (as in exporter-toolkit).
        assert_eq!(ctx.run(Some("Basic !!"), None, a), Ok(Principal::Anonymous));
    }
}

#[test]
fn users_without_access_section_get_everything() {
    let ctx = Ctx {
        c: parse(&format!(
            "basic_auth_users:\n  alice: {}\n  bob: {}\n",
            hash("a1"),
            hash("b1")
        ))
        .unwrap(),
    };
    let k = key("x");
    let alice = basic("alice", "a1");
    for a in [Action::Read, Action::Push(&k), Action::Admin] {
        assert_eq!(
            ctx.run(Some(&alice), None, a),
            Ok(Principal::User("alice".into()))
        );
        assert_eq!(ctx.run(None, None, a), Err(Denial::Unauthorized));
    }
    assert_eq!(
        ctx.run(Some(&basic("bob", "b1")), None, Action::Admin),
        Ok(Principal::User("bob".into()))
    );
    // Wrong password, another user's password, unknown user, malformed headers.
    for h in [
        basic("alice", "b1"),
        basic("alice", ""),
        basic("alice", "a1 "),
        basic("carol", "a1"),
        basic("", ""),
        "Basic".into(),
        "Basic !!!".into(),
        "Bearer abc".into(),
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("alice")
        ),
    ] {
        assert_eq!(
            ctx.run(Some(&h), None, Action::Read),
            Err(Denial::Unauthorized),
            "{h}"
        );
    }
    // Case-insensitive scheme, as Go.
    assert!(ctx
        .run(
            Some(&alice.replacen("Basic", "BASIC", 1)),
            None,
            Action::Read
        )
        .is_ok());
}

#[test]
fn denials_map_to_responses() {
    assert_eq!(Denial::Unauthorized.status(), 401);
    assert_eq!(Denial::Unauthorized.www_authenticate().unwrap(), "Basic");
    let f = Denial::Forbidden("nope".into());
    assert_eq!(f.status(), 403);
    assert!(f.www_authenticate().is_none());
    assert!(f.body().contains("nope"));
}

fn scoped() -> Ctx {
    let yaml = format!(
        "basic_auth_users:\n  ci: {}\n  ops: {}\n  viewer: {}\n  other: {}\n\
         access:\n  users:\n    ci: {{ roles: [push], push_matchers: ['{{job=~\"ci-.*\"}}', '{{job=\"deploy\",env!=\"prod\"}}'] }}\n    \
         ops: {{ roles: [push, read, admin] }}\n    viewer: {{ roles: [read] }}\n  \
         default: {{ roles: [read] }}\n  anonymous: {{ roles: [] }}\n",
        hash("ci"),
        hash("ops"),
        hash("viewer"),
        hash("other"),
    );
    Ctx {
        c: parse(&yaml).unwrap(),
    }
}

#[test]
fn roles_and_push_matchers() {
    let ctx = scoped();
    let ci = basic("ci", "ci");
    let ops = basic("ops", "ops");
    let viewer = basic("viewer", "viewer");
    let other = basic("other", "other");
    let (k_ci, k_x) = (key("ci-build"), key("nightly"));
    let k_deploy_dev = GroupKey::new([("job", "deploy"), ("env", "dev")]);
    let k_deploy_prod = GroupKey::new([("job", "deploy"), ("env", "prod")]);
    let user = |u: &str| Ok(Principal::User(u.into()));

    assert_eq!(ctx.run(Some(&ci), None, Action::Push(&k_ci)), user("ci"));
    assert_eq!(
        ctx.run(Some(&ci), None, Action::Push(&k_deploy_dev)),
        user("ci")
    );
    for k in [&k_x, &k_deploy_prod] {
        match ctx.run(Some(&ci), None, Action::Push(k)) {
            Err(Denial::Forbidden(r)) => {
                assert!(
                    r.contains("user \"ci\"") && r.contains("may not push"),
                    "{r}"
                );
                assert!(r.contains("job=~\"ci-.*\""), "{r}");
            }
            other => panic!("{other:?}"),
        }
    }
    // The regex is anchored: "xci-1" does not match.
    assert!(matches!(
        ctx.run(Some(&ci), None, Action::Push(&key("xci-1"))),
        Err(Denial::Forbidden(_))
    ));
    match ctx.run(Some(&ci), None, Action::Read) {
        Err(Denial::Forbidden(r)) => assert!(r.contains("read role"), "{r}"),
        other => panic!("{other:?}"),
    }
    match ctx.run(Some(&ci), None, Action::Admin) {
        Err(Denial::Forbidden(r)) => assert!(r.contains("admin role"), "{r}"),
        other => panic!("{other:?}"),
    }
    for a in [Action::Read, Action::Push(&k_x), Action::Admin] {
        assert_eq!(ctx.run(Some(&ops), None, a), user("ops"));
    }
    assert_eq!(ctx.run(Some(&viewer), None, Action::Read), user("viewer"));
    assert!(matches!(
        ctx.run(Some(&viewer), None, Action::Push(&k_ci)),
        Err(Denial::Forbidden(_))
    ));
    // "other" is not listed: access.default (read).
    assert_eq!(ctx.run(Some(&other), None, Action::Read), user("other"));
    assert!(matches!(
        ctx.run(Some(&other), None, Action::Admin),
        Err(Denial::Forbidden(_))
    ));
    // A wrong password is 401 even where the role would be missing.
    assert_eq!(
        ctx.run(Some(&basic("ci", "x")), None, Action::Admin),
        Err(Denial::Unauthorized)
    );
    assert_eq!(ctx.run(None, None, Action::Read), Err(Denial::Unauthorized));
}

#[test]
fn anonymous_access_next_to_users() {
    let c = parse(&format!(
        "basic_auth_users:\n  ci: {}\naccess:\n  anonymous: {{ roles: [read] }}\n",
        hash("ci")
    ))
    .unwrap();
    let ctx = Ctx { c };
    let k = key("x");
    assert_eq!(ctx.run(None, None, Action::Read), Ok(Principal::Anonymous));
    // Not allowed anonymously: 401, since credentials would help.
    assert_eq!(
        ctx.run(None, None, Action::Push(&k)),
        Err(Denial::Unauthorized)
    );
    // Bad credentials are not downgraded to anonymous.
    assert_eq!(
        ctx.run(Some(&basic("ci", "no")), None, Action::Read),
        Err(Denial::Unauthorized)
    );
    assert_eq!(
        ctx.run(Some(&basic("ci", "ci")), None, Action::Push(&k)),
        Ok(Principal::User("ci".into()))
    );
}

#[test]
fn anonymous_restricted_without_users() {
    let ctx = Ctx {
        c: parse("access:\n  anonymous: { roles: [push, read] }\n").unwrap(),
    };
    assert_eq!(ctx.run(None, None, Action::Read), Ok(Principal::Anonymous));
    match ctx.run(None, None, Action::Admin) {
        Err(Denial::Forbidden(r)) => assert!(r.contains("anonymous") && r.contains("admin"), "{r}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_certificate_identities() {
    let pki = Pki::new();
    let yaml = format!(
        "{SERVER_TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n\
         access:\n  client_certs:\n    batch.example.org: {{ roles: [push], push_matchers: ['{{job=\"batch\"}}'] }}\n    \
         admin-cn: {{ roles: [read, admin] }}\n"
    );
    let ctx = Ctx {
        c: pki.load(&yaml).unwrap(),
    };
    let batch =
        ClientIdentity::from_der(&pki.client("some-cn", vec![dns("batch.example.org")]).der)
            .unwrap();
    assert_eq!(batch.common_name.as_deref(), Some("some-cn"));
    assert_eq!(batch.sans, ["batch.example.org"]);
    let admin = ClientIdentity {
        common_name: Some("admin-cn".into()),
        sans: vec![],
    };
    let stranger = ClientIdentity {
        common_name: Some("stranger".into()),
        sans: vec!["x.example.org".into()],
    };
    let cp = |n: &str| Ok(Principal::ClientCert(n.into()));
    assert_eq!(
        ctx.run(None, Some(&batch), Action::Push(&key("batch"))),
        cp("batch.example.org")
    );
    assert!(matches!(
        ctx.run(None, Some(&batch), Action::Push(&key("other"))),
        Err(Denial::Forbidden(_))
    ));
    assert!(matches!(
        ctx.run(None, Some(&batch), Action::Read),
        Err(Denial::Forbidden(_))
    ));
    assert_eq!(ctx.run(None, Some(&admin), Action::Admin), cp("admin-cn"));
    // Unlisted certificate: access.default (all roles) since there are no basic-auth users.
    assert_eq!(
        ctx.run(None, Some(&stranger), Action::Admin),
        cp("stranger")
    );
    // No certificate: anonymous has no role once client_certs are configured.
    match ctx.run(None, None, Action::Read) {
        Err(Denial::Forbidden(r)) => assert!(r.contains("client certificate"), "{r}"),
        other => panic!("{other:?}"),
    }

    // With basic-auth users: a listed certificate authenticates, an unlisted one does not.
    let yaml = format!(
        "{SERVER_TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
         basic_auth_users:\n  ops: {}\n\
         access:\n  client_certs:\n    batch.example.org: {{ roles: [push] }}\n",
        hash("ops")
    );
    let ctx = Ctx {
        c: pki.load(&yaml).unwrap(),
    };
    assert_eq!(
        ctx.run(None, Some(&batch), Action::Push(&key("x"))),
        cp("batch.example.org")
    );
    assert_eq!(
        ctx.run(None, Some(&stranger), Action::Read),
        Err(Denial::Unauthorized)
    );
    // Credentials take precedence over the certificate.
    assert_eq!(
        ctx.run(Some(&basic("ops", "ops")), Some(&batch), Action::Admin),
        Ok(Principal::User("ops".into()))
    );
    assert_eq!(
        ctx.run(
            Some(&basic("ops", "no")),
            Some(&batch),
            Action::Push(&key("x"))
        ),
        Err(Denial::Unauthorized)
    );

    // Without an access section, certificates never replace basic auth (exporter-toolkit).
    let yaml = format!(
        "{SERVER_TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n\
         basic_auth_users:\n  ops: {}\n",
        hash("ops")
    );
    let ctx = Ctx {
        c: pki.load(&yaml).unwrap(),
    };
    assert_eq!(
        ctx.run(None, Some(&batch), Action::Read),
        Err(Denial::Unauthorized)
    );

    // Unverified certificates (RequireAnyClientCert) are no identity.
    let ctx = Ctx {
        c: pki
            .load(&format!(
                "{SERVER_TLS}  client_auth_type: RequireAnyClientCert\naccess:\n  anonymous: {{ roles: [read] }}\n"
            ))
            .unwrap(),
    };
    assert_eq!(
        ctx.run(None, Some(&admin), Action::Read),
        Ok(Principal::Anonymous)
    );
    assert!(ctx.run(None, Some(&admin), Action::Admin).is_err());
}

#[test]
fn identity_from_der_reads_all_san_kinds() {
    let pki = Pki::new();
    let l = pki.client(
        "cn1",
        vec![
            SanType::URI("spiffe://example.org/job".try_into().unwrap()),
            dns("a.example.org"),
            SanType::IpAddress("10.0.0.1".parse().unwrap()),
            SanType::Rfc822Name("ops@example.org".try_into().unwrap()),
        ],
    );
    let id = ClientIdentity::from_der(&l.der).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("cn1"));
    assert_eq!(
        id.sans,
        [
            "a.example.org",
            "ops@example.org",
            "10.0.0.1",
            "spiffe://example.org/job"
        ]
    );
    assert_eq!(id.names().collect::<Vec<_>>()[0], "cn1");
    assert!(ClientIdentity::from_der(b"junk").is_err());
}

// ---------------------------------------------------------------- TLS handshakes

use rustls::version::{TLS12, TLS13};

#[tokio::test]
async fn server_only_tls() {
    let pki = Pki::new();
    let c = pki.load(SERVER_TLS).unwrap();
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13, &TLS12], None)).await;
    assert_eq!(o.server.unwrap(), None);
    o.client.unwrap();
    assert_eq!(o.alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(o.version, Some(rustls::ProtocolVersion::TLSv1_3));
    // TLS 1.2 works too (the default minimum).
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS12], None)).await;
    o.client.unwrap();
    assert_eq!(o.version, Some(rustls::ProtocolVersion::TLSv1_2));
}

#[tokio::test]
async fn require_and_verify_client_cert() {
    let pki = Pki::new();
    let c = pki
        .load(&format!(
            "{SERVER_TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        ))
        .unwrap();
    let good = pki.client("batch", vec![dns("batch.example.org")]);
    let o = handshake(
        c.tls().unwrap(),
        pki.client_config(&[&TLS13, &TLS12], Some(&good)),
    )
    .await;
    o.client.unwrap();
    let peer = o.server.unwrap().unwrap();
    let id = ClientIdentity::from_der(&peer[0]).unwrap();
    assert_eq!(id.common_name.as_deref(), Some("batch"));

    // No certificate.
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13, &TLS12], None)).await;
    assert!(o.server.is_err());
    assert!(o.client.is_err());

    // A certificate from another CA.
    let other_ca = ca("other CA");
    let stranger = leaf(
        &other_ca,
        "batch",
        vec![],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let o = handshake(
        c.tls().unwrap(),
        pki.client_config(&[&TLS13], Some(&stranger)),
    )
    .await;
    assert!(o.server.is_err());
    assert!(o.client.is_err());
    // ... and over TLS 1.2.
    let o = handshake(
        c.tls().unwrap(),
        pki.client_config(&[&TLS12], Some(&stranger)),
    )
    .await;
    assert!(o.server.is_err());
}

#[tokio::test]
async fn verify_client_cert_if_given_and_unverified_modes() {
    let pki = Pki::new();
    let c = pki
        .load(&format!(
            "{SERVER_TLS}  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"
        ))
        .unwrap();
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13], None)).await;
    assert_eq!(o.server.unwrap(), None);
    let other_ca = ca("other CA");
    let stranger = leaf(&other_ca, "s", vec![], ExtendedKeyUsagePurpose::ClientAuth);
    let o = handshake(
        c.tls().unwrap(),
        pki.client_config(&[&TLS13], Some(&stranger)),
    )
    .await;
    assert!(o.server.is_err());

    // RequireAnyClientCert takes any certificate but needs one.
    let c = pki
        .load(&format!(
            "{SERVER_TLS}  client_auth_type: RequireAnyClientCert\n"
        ))
        .unwrap();
    let o = handshake(
        c.tls().unwrap(),
        pki.client_config(&[&TLS13], Some(&stranger)),
    )
    .await;
    assert_eq!(o.server.unwrap().unwrap()[0], stranger.der);
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13], None)).await;
    assert!(o.server.is_err());

    // RequestClientCert: optional and unverified.
    let c = pki
        .load(&format!(
            "{SERVER_TLS}  client_auth_type: RequestClientCert\n"
        ))
        .unwrap();
    let o = handshake(
        c.tls().unwrap(),
        pki.client_config(&[&TLS12], Some(&stranger)),
    )
    .await;
    assert_eq!(o.server.unwrap().unwrap()[0], stranger.der);
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13], None)).await;
    assert_eq!(o.server.unwrap(), None);
}

#[tokio::test]
async fn client_allowed_sans() {
    let pki = Pki::new();
    let c = pki
        .load(&format!(
            "{SERVER_TLS}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  \
             client_allowed_sans: [one, test3, two]\n"
        ))
        .unwrap();
    let ok = pki.client("x", vec![dns("test3")]);
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13], Some(&ok))).await;
    o.server.unwrap();
    let bad = pki.client("test3", vec![dns("bad")]);
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13], Some(&bad))).await;
    assert!(o.server.unwrap_err().contains("allowed SANs"));
}

#[tokio::test]
async fn min_version_tls13_refuses_tls12_client() {
    let pki = Pki::new();
    let c = pki
        .load(&format!("{SERVER_TLS}  min_version: TLS13\n"))
        .unwrap();
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS12], None)).await;
    assert!(o.server.is_err());
    assert!(o.client.is_err());
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13], None)).await;
    o.client.unwrap();
    // And max_version TLS12 keeps to 1.2, with the configured suite.
    let c = pki
        .load(&format!(
            "{SERVER_TLS}  max_version: TLS12\n  cipher_suites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n"
        ))
        .unwrap();
    let o = handshake(c.tls().unwrap(), pki.client_config(&[&TLS13, &TLS12], None)).await;
    o.client.unwrap();
    assert_eq!(o.version, Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(
        o.suite,
        Some(rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)
    );
}

// ---------------------------------------------------------------- reloading

#[test]
fn reload_picks_up_changes_and_keeps_last_good() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    let write = |s: &str| {
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(s.as_bytes()).unwrap();
    };
    write(&format!("basic_auth_users:\n  alice: {}\n", hash("a")));
    let r = ReloadingWebConfig::start(&path).unwrap();
    let read = |auth: &str| {
        r.current().authorize(&AuthRequest {
            authorization: Some(auth.as_bytes()),
            client_cert: None,
            action: Action::Read,
        })
    };
    assert!(read(&basic("alice", "a")).is_ok());
    assert!(!r.reload_now().unwrap());

    write(&format!("basic_auth_users:\n  bob: {}\n", hash("b")));
    assert!(r.reload_now().unwrap());
    assert!(read(&basic("bob", "b")).is_ok());
    assert_eq!(read(&basic("alice", "a")), Err(Denial::Unauthorized));
    assert!(!r.reload_now().unwrap());

    write("basic_auth_users:\n  bob: not-a-hash\n");
    let e = r.reload_now().unwrap_err().to_string();
    assert!(e.contains("basic_auth_users.bob"), "{e}");
    assert!(
        read(&basic("bob", "b")).is_ok(),
        "the last good config stays"
    );

    write("basic_auth_users: [\n");
    assert!(r.reload_now().is_err());
    std::fs::remove_file(&path).unwrap();
    assert!(r.reload_now().is_err());
    assert!(read(&basic("bob", "b")).is_ok());
    r.stop();
}

#[test]
fn reload_follows_certificate_files_and_refuses_tls_toggle() {
    let pki = Pki::new();
    let path = pki.write("web.yml", SERVER_TLS);
    let r = ReloadingWebConfig::without_watcher(&path).unwrap();
    let before = r.current().tls().unwrap();
    // Rotate the server certificate: the config file itself is unchanged.
    let new = leaf(
        &pki.ca,
        "localhost",
        vec![dns("localhost")],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    pki.write("server.crt", &new.cert_pem);
    pki.write("server.key", &new.key_pem);
    assert!(r.reload_now().unwrap());
    assert!(!Arc::ptr_eq(&before, &r.current().tls().unwrap()));
    // A broken key file: error, the previous configuration stays.
    pki.write("server.key", "junk");
    assert!(r.reload_now().is_err());
    assert!(r.current().tls().is_some());
    pki.write("server.key", &new.key_pem);
    // Switching TLS off is refused.
    pki.write("web.yml", "");
    assert!(matches!(r.reload_now(), Err(WebConfigError::TlsToggled)));
    assert!(r.current().tls().is_some());
}

#[test]
fn background_thread_reloads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, "").unwrap();
    let r = ReloadingWebConfig::start(&path).unwrap();
    assert!(!r.current().has_users());
    std::fs::write(&path, format!("basic_auth_users:\n  a: {DAVE_HASH}\n")).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !r.current().has_users() {
        assert!(std::time::Instant::now() < deadline, "not reloaded");
        std::thread::sleep(Duration::from_millis(50));
    }
}
