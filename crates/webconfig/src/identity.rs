//! The identity in a (verified) client certificate: subject CN and SANs.

use crate::WebConfigError;
use x509_parser::extensions::GeneralName;

/// Names from a client certificate, as used by `access.client_certs` and `client_allowed_sans`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject's first common name (CN), if any.
    pub common_name: Option<String>,
    /// Subject alternative names as text, in Go's order: DNS names, e-mail addresses, IP
    /// addresses, URIs.
    pub sans: Vec<String>,
}

impl ClientIdentity {
    /// Parses a DER certificate (the first of the TLS peer's chain, i.e. the end entity).
    pub fn from_der(der: &[u8]) -> Result<ClientIdentity, WebConfigError> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| WebConfigError::Tls(format!("unparsable client certificate: {e}")))?;
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_string);
        let (mut dns, mut email, mut ip, mut uri) = (vec![], vec![], vec![], vec![]);
        if let Ok(Some(ext)) = cert.subject_alternative_name() {
            for name in &ext.value.general_names {
                match name {
                    GeneralName::DNSName(s) => dns.push(s.to_string()),
                    GeneralName::RFC822Name(s) => email.push(s.to_string()),
                    GeneralName::URI(s) => uri.push(s.to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            ip.push(std::net::Ipv4Addr::from(a).to_string());
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            ip.push(std::net::Ipv6Addr::from(a).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut sans = dns;
        sans.append(&mut email);
        sans.append(&mut ip);
        sans.append(&mut uri);
        Ok(ClientIdentity { common_name, sans })
    }

    /// The names to look up in `access.client_certs`: the CN first, then the SANs.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.common_name
            .as_deref()
            .into_iter()
            .chain(self.sans.iter().map(String::as_str))
    }
}
