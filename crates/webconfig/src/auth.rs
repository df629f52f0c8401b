//! Authentication (basic auth with bcrypt, verified client certificates) and the scoped-access
//! extension (roles and push matchers).

use crate::config::{RawAccess, RawGrant};
use crate::{ClientIdentity, WebConfigError};
use base64::Engine;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use store::matcher::Selector;
use store::GroupKey;
use subtle::ConstantTimeEq;

/// What a request wants to do.
#[derive(Clone, Copy, Debug)]
pub enum Action<'a> {
    /// Scrapes, the query API, the UI, health and readiness endpoints.
    Read,
    /// PUT/POST/DELETE of the group with this grouping key.
    Push(&'a GroupKey),
    /// Wipe, bulk deletes, quit.
    Admin,
}

/// The authorization-relevant parts of a request.
#[derive(Clone, Copy, Debug)]
pub struct AuthRequest<'a> {
    /// The raw `Authorization` header, if any.
    pub authorization: Option<&'a [u8]>,
    /// The identity of the TLS peer's certificate, if one was presented. It is only trusted
    /// when `client_auth_type` verifies certificates; otherwise it is ignored.
    pub client_cert: Option<&'a ClientIdentity>,
    pub action: Action<'a>,
}

/// Who a request was authorized as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// No credentials (allowed by `access.anonymous`, or no authentication configured).
    Anonymous,
    /// A `basic_auth_users` user.
    User(String),
    /// A verified client certificate, by the name it matched in `access.client_certs` (or its
    /// CN, else first SAN, when it matched no entry).
    ClientCert(String),
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::Anonymous => f.write_str("anonymous"),
            Principal::User(u) => write!(f, "user {u:?}"),
            Principal::ClientCert(c) => write!(f, "client certificate {c:?}"),
        }
    }
}

/// Why a request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denial {
    /// 401: missing or wrong credentials; answer with `WWW-Authenticate: Basic`.
    Unauthorized,
    /// 403: authenticated (or anonymous without basic auth configured) but not allowed; the
    /// string says why.
    Forbidden(String),
}

impl Denial {
    /// 401 or 403.
    pub fn status(&self) -> http::StatusCode {
        match self {
            Denial::Unauthorized => http::StatusCode::UNAUTHORIZED,
            Denial::Forbidden(_) => http::StatusCode::FORBIDDEN,
        }
    }

    /// The `WWW-Authenticate` value to send (`Basic`, as exporter-toolkit), for 401 only.
    pub fn www_authenticate(&self) -> Option<http::HeaderValue> {
        match self {
            Denial::Unauthorized => Some(http::HeaderValue::from_static("Basic")),
            Denial::Forbidden(_) => None,
        }
    }

    /// A plain-text response body.
    pub fn body(&self) -> String {
        match self {
            Denial::Unauthorized => "Unauthorized\n".to_string(),
            Denial::Forbidden(reason) => format!("Forbidden: {reason}\n"),
        }
    }
}

impl fmt::Display for Denial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Denial::Unauthorized => f.write_str("unauthorized"),
            Denial::Forbidden(r) => write!(f, "forbidden: {r}"),
        }
    }
}

/// A role of the access extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    Push,
    Read,
    Admin,
}

impl Role {
    fn name(self) -> &'static str {
        match self {
            Role::Push => "push",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }
}

/// What a principal may do.
#[derive(Clone, Debug, Default)]
pub(crate) struct Grant {
    push: bool,
    read: bool,
    admin: bool,
    /// Empty: any group; else the key must match one selector.
    push_matchers: Vec<Selector>,
}

impl Grant {
    fn all() -> Grant {
        Grant {
            push: true,
            read: true,
            admin: true,
            push_matchers: Vec::new(),
        }
    }

    fn none() -> Grant {
        Grant::default()
    }

    fn parse(raw: &RawGrant, key: &str) -> Result<Grant, WebConfigError> {
        let mut g = Grant::none();
        for r in raw.roles.iter().flatten() {
            match r.as_str() {
                "push" => g.push = true,
                "read" => g.read = true,
                "admin" => g.admin = true,
                other => {
                    return Err(WebConfigError::invalid(
                        format!("{key}.roles"),
                        format!("unknown role {other:?} (expected push, read or admin)"),
                    ))
                }
            }
        }
        for m in raw.push_matchers.iter().flatten() {
            let sel = Selector::parse(m.as_str()).map_err(|e| {
                WebConfigError::invalid(
                    format!("{key}.push_matchers"),
                    format!("{:?}: {e}", m.as_str()),
                )
            })?;
            g.push_matchers.push(sel);
        }
        if !g.push && raw.push_matchers.is_some() {
            return Err(WebConfigError::invalid(
                key,
                "push_matchers given without the push role",
            ));
        }
        Ok(g)
    }

    /// `Ok(())` or the reason for a 403.
    fn check(&self, who: &Principal, action: &Action<'_>) -> Result<(), String> {
        let missing = |role: Role| {
            Err(format!(
                "{who} lacks the {} role required for this request",
                role.name()
            ))
        };
        match action {
            Action::Read if !self.read => missing(Role::Read),
            Action::Admin if !self.admin => missing(Role::Admin),
            Action::Push(_) if !self.push => missing(Role::Push),
            Action::Push(key) => {
                if self.push_matchers.is_empty()
                    || self.push_matchers.iter().any(|s| s.matches(key))
                {
                    Ok(())
                } else {
                    let allowed: Vec<String> =
                        self.push_matchers.iter().map(|s| s.to_string()).collect();
                    Err(format!(
                        "{who} may not push to group {} (allowed: {})",
                        key_text(key),
                        allowed.join(" or ")
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

fn key_text(key: &GroupKey) -> String {
    let parts: Vec<String> = key
        .labels()
        .iter()
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// The parsed `access` section with its defaults applied.
#[derive(Debug)]
pub(crate) struct Access {
    users: HashMap<String, Grant>,
    client_certs: Vec<(String, Grant)>,
    default: Grant,
    anonymous: Grant,
}

impl Access {
    pub(crate) fn parse(
        raw: Option<&RawAccess>,
        users: &HashMap<String, String>,
    ) -> Result<Access, WebConfigError> {
        let empty = RawAccess::default();
        let raw = raw.unwrap_or(&empty);
        let mut access_users = HashMap::new();
        for (name, g) in raw.users.iter().flat_map(|m| m.0.iter()) {
            if !users.contains_key(name) {
                return Err(WebConfigError::invalid(
                    format!("access.users.{name}"),
                    "not a user of basic_auth_users",
                ));
            }
            access_users.insert(
                name.clone(),
                Grant::parse(g, &format!("access.users.{name}"))?,
            );
        }
        let mut client_certs = Vec::new();
        for (name, g) in raw.client_certs.iter().flat_map(|m| m.0.iter()) {
            client_certs.push((
                name.clone(),
                Grant::parse(g, &format!("access.client_certs.{name}"))?,
            ));
        }
        let default = match &raw.default {
            Some(g) => Grant::parse(g, "access.default")?,
            None => Grant::all(),
        };
        let anonymous = match &raw.anonymous {
            Some(g) => Grant::parse(g, "access.anonymous")?,
            // Without any way to authenticate, everything is open (the official behaviour).
            None if users.is_empty() && client_certs.is_empty() => Grant::all(),
            None => Grant::none(),
        };
        Ok(Access {
            users: access_users,
            client_certs,
            default,
            anonymous,
        })
    }

    pub(crate) fn has_client_certs(&self) -> bool {
        !self.client_certs.is_empty()
    }

    fn cert_grant(&self, id: &ClientIdentity) -> Option<(&str, &Grant)> {
        id.names().find_map(|n| {
            self.client_certs
                .iter()
                .find(|(k, _)| k == n)
                .map(|(k, g)| (k.as_str(), g))
        })
    }
}

/// bcrypt hash of "fakepassword" (exporter-toolkit's): unknown users cost as much as known ones.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// Verified (user, sha256(password)) pairs. Successes and failures are kept apart so that a
/// flood of wrong passwords cannot evict the entries real clients rely on. Digests are compared
/// in constant time.
#[derive(Default)]
struct CheckCache {
    ok: HashMap<String, Vec<[u8; 32]>>,
    bad: HashMap<String, Vec<[u8; 32]>>,
    bad_len: usize,
}

/// Per-user positive entries kept (a user whose password rotates has old and new for a while).
const OK_PER_USER: usize = 4;
/// Negative entries kept in all; the negative cache is emptied when it is full.
const BAD_MAX: usize = 1024;

fn ct_contains(list: Option<&Vec<[u8; 32]>>, d: &[u8; 32]) -> bool {
    let mut found = subtle::Choice::from(0);
    for e in list.into_iter().flatten() {
        found |= e.ct_eq(d);
    }
    found.into()
}

impl CheckCache {
    fn get(&self, user: &str, d: &[u8; 32]) -> Option<bool> {
        if ct_contains(self.ok.get(user), d) {
            Some(true)
        } else if ct_contains(self.bad.get(user), d) {
            Some(false)
        } else {
            None
        }
    }

    fn put(&mut self, user: &str, d: [u8; 32], ok: bool) {
        if ok {
            let v = self.ok.entry(user.to_string()).or_default();
            if v.len() >= OK_PER_USER {
                v.remove(0);
            }
            v.push(d);
        } else {
            if self.bad_len >= BAD_MAX {
                self.bad.clear();
                self.bad_len = 0;
            }
            self.bad.entry(user.to_string()).or_default().push(d);
            self.bad_len += 1;
        }
    }
}

/// Basic-auth users with their bcrypt hashes and the verification cache.
pub(crate) struct Users {
    hashes: HashMap<String, String>,
    cache: Mutex<CheckCache>,
    /// bcrypt runs one at a time (as in exporter-toolkit): it is CPU-bound and slow.
    bcrypt: Mutex<()>,
}

impl Users {
    pub(crate) fn new(hashes: HashMap<String, String>) -> Users {
        Users {
            hashes,
            cache: Mutex::new(CheckCache::default()),
            bcrypt: Mutex::new(()),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    pub(crate) fn names(&self) -> &HashMap<String, String> {
        &self.hashes
    }

    /// Whether `pass` is `user`'s password.
    fn check(&self, user: &str, pass: &[u8]) -> bool {
        let digest: [u8; 32] = Sha256::digest(pass).into();
        if let Some(ok) = self.cache.lock().get(user, &digest) {
            return ok;
        }
        let _one_at_a_time = self.bcrypt.lock();
        // Another request may have done this check while we waited.
        if let Some(ok) = self.cache.lock().get(user, &digest) {
            return ok;
        }
        let (hash, known) = match self.hashes.get(user) {
            Some(h) => (h.as_str(), true),
            None => (DUMMY_HASH, false),
        };
        let ok = bcrypt::verify(pass, hash).unwrap_or(false) && known;
        self.cache.lock().put(user, digest, ok);
        ok
    }
}

/// Validates a bcrypt hash (the `$2a$`, `$2b$`, `$2x$` and `$2y$` variants, cost 4..31) at
/// load time, so that a bad hash is a start-up error rather than a user who can never log in.
pub(crate) fn validate_hash(user: &str, hash: &str) -> Result<(), WebConfigError> {
    let bad = |why: &str| {
        WebConfigError::invalid(
            format!("basic_auth_users.{user}"),
            format!("not a bcrypt hash: {why}"),
        )
    };
    let rest = hash
        .strip_prefix("$2")
        .ok_or_else(|| bad("expected a $2a$, $2b$ or $2y$ prefix"))?;
    let rest = match rest.as_bytes().first() {
        Some(b'a' | b'b' | b'x' | b'y') if rest.as_bytes().get(1) == Some(&b'$') => &rest[2..],
        _ => return Err(bad("expected a $2a$, $2b$ or $2y$ prefix")),
    };
    let (cost, salt_hash) = rest.split_once('$').ok_or_else(|| bad("missing cost"))?;
    let cost: u32 = match cost.len() {
        2 => cost.parse().map_err(|_| bad("invalid cost"))?,
        _ => return Err(bad("invalid cost")),
    };
    if !(4..=31).contains(&cost) {
        return Err(bad(&format!("cost {cost} is outside 4..31")));
    }
    if salt_hash.len() != 53
        || !salt_hash
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'/')
    {
        return Err(bad("expected 53 characters of salt and hash"));
    }
    hash.parse::<bcrypt::HashParts>()
        .map_err(|e| bad(&e.to_string()))?;
    Ok(())
}

/// Parses `Basic base64(user:pass)` like Go's `Request.BasicAuth`.
fn parse_basic(header: &[u8]) -> Option<(String, Vec<u8>)> {
    const PREFIX: &[u8] = b"Basic ";
    if header.len() < PREFIX.len() || !header[..PREFIX.len()].eq_ignore_ascii_case(PREFIX) {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&header[PREFIX.len()..])
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

/// The decision procedure; see the crate documentation.
pub(crate) fn authorize(
    users: &Users,
    access: &Access,
    certs_verified: bool,
    req: &AuthRequest<'_>,
) -> Result<Principal, Denial> {
    let decide = |who: Principal, grant: &Grant| {
        grant
            .check(&who, &req.action)
            .map(|()| who)
            .map_err(Denial::Forbidden)
    };
    if !users.is_empty() {
        if let Some(h) = req.authorization {
            let Some((user, pass)) = parse_basic(h) else {
                return Err(Denial::Unauthorized);
            };
            if !users.check(&user, &pass) {
                return Err(Denial::Unauthorized);
            }
            let grant = access.users.get(&user).unwrap_or(&access.default);
            return decide(Principal::User(user), grant);
        }
    }
    if let Some(id) = req.client_cert.filter(|_| certs_verified) {
        if let Some((name, grant)) = access.cert_grant(id) {
            return decide(Principal::ClientCert(name.to_string()), grant);
        }
        if users.is_empty() {
            let name = id.names().next().unwrap_or("").to_string();
            return decide(Principal::ClientCert(name), &access.default);
        }
    }
    match access.anonymous.check(&Principal::Anonymous, &req.action) {
        Ok(()) => Ok(Principal::Anonymous),
        Err(_) if !users.is_empty() => Err(Denial::Unauthorized),
        Err(reason) if access.has_client_certs() || req.client_cert.is_some() => {
            Err(Denial::Forbidden(format!(
                "{reason}; present a client certificate listed in access.client_certs"
            )))
        }
        Err(reason) => Err(Denial::Forbidden(reason)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_header_parsing() {
        let enc = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(
            parse_basic(enc("dave:dave123").as_bytes()),
            Some(("dave".into(), b"dave123".to_vec()))
        );
        assert_eq!(
            parse_basic(enc("dave:a:b").as_bytes()),
            Some(("dave".into(), b"a:b".to_vec()))
        );
        assert_eq!(
            parse_basic(enc("dave:").as_bytes()),
            Some(("dave".into(), vec![]))
        );
        let lower = enc("a:b").replacen("Basic", "basic", 1);
        assert!(parse_basic(lower.as_bytes()).is_some());
        assert_eq!(parse_basic(enc("nocolon").as_bytes()), None);
        assert_eq!(parse_basic(b"Bearer abc"), None);
        assert_eq!(parse_basic(b"Basic !!!"), None);
        assert_eq!(parse_basic(b"Basic"), None);
        assert_eq!(parse_basic(b""), None);
    }

    #[test]
    fn hash_validation() {
        let good = "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq";
        validate_hash("u", good).unwrap();
        validate_hash("u", &good.replace("$2y$", "$2a$")).unwrap();
        validate_hash("u", &good.replace("$2y$", "$2b$")).unwrap();
        for bad in [
            "doe",
            "",
            "$1$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq",
            "$2$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq",
            "$2y$1$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq",
            "$2y$03$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmXq",
            "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLmX",
            "$2y$10$2UXri9cIDdgeKjBo4Rlpx.U3ZLDV8X1IxKmsfOvhcM5oXQt/mLm!q",
        ] {
            let e = validate_hash("u", bad).unwrap_err().to_string();
            assert!(e.contains("basic_auth_users.u"), "{e}");
        }
    }

    #[test]
    fn cache_is_bounded_and_separates_outcomes() {
        let mut c = CheckCache::default();
        c.put("a", [1; 32], true);
        for i in 0..(BAD_MAX + 10) {
            let mut d = [0u8; 32];
            d[..8].copy_from_slice(&(i as u64).to_le_bytes());
            c.put("a", d, false);
        }
        assert!(c.bad_len <= BAD_MAX);
        assert_eq!(c.get("a", &[1; 32]), Some(true));
        for i in 0..10u8 {
            c.put("b", [i; 32], true);
        }
        assert_eq!(c.ok["b"].len(), OK_PER_USER);
        assert_eq!(c.get("b", &[9; 32]), Some(true));
        assert_eq!(c.get("b", &[0; 32]), None);
    }
}
