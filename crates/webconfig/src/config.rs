//! The YAML shape of the web configuration file, decoded strictly (unknown keys and duplicate keys
//! are errors, as with Go's `yaml.UnmarshalStrict`), plus the scalar leniency of Go's yaml.v2
//! (a number or bool where a string is expected is taken as its text; `yes`/`on` are booleans).

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub tls_server_config: Option<RawTls>,
    #[serde(default)]
    pub http_server_config: Option<RawHttp>,
    #[serde(default)]
    pub basic_auth_users: Option<StrictMap<Scalar>>,
    #[serde(default)]
    pub rate_limit: Option<RawRateLimit>,
    #[serde(default)]
    pub access: Option<RawAccess>,
}

/// `tls_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    #[serde(default)]
    pub cert: Option<Scalar>,
    #[serde(default)]
    pub key: Option<Scalar>,
    #[serde(default)]
    pub client_ca: Option<Scalar>,
    #[serde(default)]
    pub cert_file: Option<Scalar>,
    #[serde(default)]
    pub key_file: Option<Scalar>,
    #[serde(default)]
    pub client_auth_type: Option<Scalar>,
    #[serde(default)]
    pub client_ca_file: Option<Scalar>,
    #[serde(default)]
    pub cipher_suites: Option<Vec<Scalar>>,
    #[serde(default)]
    pub curve_preferences: Option<Vec<Scalar>>,
    #[serde(default)]
    pub min_version: Option<Scalar>,
    #[serde(default)]
    pub max_version: Option<Scalar>,
    #[serde(default)]
    pub prefer_server_cipher_suites: Option<GoBool>,
    #[serde(default)]
    pub client_allowed_sans: Option<Vec<Scalar>>,
}

/// `http_server_config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHttp {
    #[serde(default)]
    pub http2: Option<GoBool>,
    #[serde(default)]
    pub headers: Option<StrictMap<Scalar>>,
}

/// `rate_limit` (newer exporter-toolkit releases): parsed and exposed, enforced by the server.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRateLimit {
    #[serde(default)]
    pub burst: Option<i64>,
    #[serde(default)]
    pub interval: Option<GoDuration>,
}

/// `access` (this project's extension).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAccess {
    #[serde(default)]
    pub users: Option<StrictMap<RawGrant>>,
    #[serde(default)]
    pub client_certs: Option<StrictMap<RawGrant>>,
    #[serde(default)]
    pub default: Option<RawGrant>,
    #[serde(default)]
    pub anonymous: Option<RawGrant>,
}

/// One entry of `access`: `{ roles: [...], push_matchers: [...] }`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawGrant {
    #[serde(default)]
    pub roles: Option<Vec<Scalar>>,
    #[serde(default)]
    pub push_matchers: Option<Vec<Scalar>>,
}

/// A YAML scalar read as text, like yaml.v2 does for Go `string` fields (`X-XSS-Protection: 1`
/// is the string "1"). A null is the empty string.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Scalar(pub String);

impl Scalar {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(String::new()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A boolean with YAML 1.1 spellings (`yes`, `on`, `y`, ...), as yaml.v2 accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoBool(pub bool);

impl<'de> Deserialize<'de> for GoBool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoBool;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a boolean")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<GoBool, E> {
                Ok(GoBool(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoBool, E> {
                match v {
                    "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True"
                    | "TRUE" => Ok(GoBool(true)),
                    "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
                    | "FALSE" => Ok(GoBool(false)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A Go `time.Duration` as yaml.v2 decodes it: a string for `time.ParseDuration` ("1s",
/// "1m30s", "250ms") or an integer number of nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GoDuration(pub Duration);

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = GoDuration;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1s\" or \"250ms\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GoDuration, E> {
                u64::try_from(v)
                    .map(|n| GoDuration(Duration::from_nanos(n)))
                    .map_err(|_| E::custom(format!("negative duration {v}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GoDuration, E> {
                Ok(GoDuration(Duration::from_nanos(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GoDuration, E> {
                parse_go_duration(v).map(GoDuration).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// Go's duration syntax (`time.ParseDuration`); negative durations are refused.
pub(crate) use store::ttl::parse_go_duration;

/// A string-keyed map in file order that refuses duplicate keys (yaml.v2 UnmarshalStrict does).
#[derive(Debug)]
pub(crate) struct StrictMap<T>(pub Vec<(String, T)>);

impl<T> Default for StrictMap<T> {
    fn default() -> Self {
        StrictMap(Vec::new())
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for StrictMap<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = StrictMap<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }
            fn visit_unit<E: de::Error>(self) -> Result<StrictMap<T>, E> {
                Ok(StrictMap(Vec::new()))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<StrictMap<T>, A::Error> {
                let mut seen = BTreeMap::new();
                let mut out = Vec::new();
                while let Some(Scalar(k)) = m.next_key::<Scalar>()? {
                    if seen.insert(k.clone(), ()).is_some() {
                        return Err(de::Error::custom(format!("duplicate key {k:?}")));
                    }
                    let v = m.next_value::<T>()?;
                    out.push((k, v));
                }
                Ok(StrictMap(out))
            }
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// Decodes the file. An empty file (or one of only comments) is the empty configuration.
pub(crate) fn decode(yaml: &str) -> Result<RawConfig, String> {
    let v: Option<RawConfig> = serde_norway::from_str(yaml).map_err(|e| e.to_string())?;
    Ok(v.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_go_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(
            parse_go_duration("1.5h").unwrap(),
            Duration::from_secs(5400)
        );
        for bad in ["", "1", "s", "1x", "-1s", "1s2"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn empty_documents() {
        assert!(decode("").unwrap().basic_auth_users.is_none());
        assert!(decode("# only a comment\n")
            .unwrap()
            .tls_server_config
            .is_none());
        assert!(decode("---\n").unwrap().tls_server_config.is_none());
    }

    #[test]
    fn lenient_scalars_and_bools() {
        let c = decode("http_server_config:\n  http2: no\n  headers:\n    X-XSS-Protection: 1\n")
            .unwrap();
        let h = c.http_server_config.unwrap();
        assert_eq!(h.http2, Some(GoBool(false)));
        assert_eq!(h.headers.unwrap().0[0].1, Scalar("1".into()));
    }

    #[test]
    fn strict_decoding() {
        let e = decode("tls_server_config:\n  cert_filse: x\n").unwrap_err();
        assert!(e.contains("cert_filse"), "{e}");
        let e = decode("basic_auth_users:\n  a: x\n  a: y\n").unwrap_err();
        assert!(e.contains("duplicate"), "{e}");
        assert!(decode("hWkNKCp3fvIx3jKnsaBI\nTuEjdwNS8A2vYdFbiKqr\n").is_err());
        assert!(decode("tls_server_config: 3\n").is_err());
        assert!(decode("basic_auth_users: [a, b]\n").is_err());
    }
}
