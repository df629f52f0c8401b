//! Routing with the observable behaviour of the official server: Go's `ServeMux` path cleaning
//! (301 to the cleaned path for any method), its `/api/v1` subtree redirect, and httprouter's
//! trailing-slash redirects (301 for GET, 307 otherwise), 405 with a sorted `Allow` list, OPTIONS
//! answered from the route table, and no implicit HEAD.

use hyper::{Method, StatusCode};

/// A matched endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A push/delete path; `rest` is everything after the job segment's route
    /// (`/<job>{/<name>/<value>}`), `base64` when the route was `job@base64`, `accumulate`
    /// when the path began with `/accumulate` (pushes there add to the group).
    Push {
        base64: bool,
        rest: String,
        accumulate: bool,
    },
    Scrape,
    Healthy,
    Ready,
    Quit,
    /// `GET /-/quit` at the root, answered with a custom 405 by the official server.
    QuitGet,
    Static(String),
    Ui,
    ApiStatus,
    ApiMetrics,
    /// `GET /api/v1/metrics/job/<job>{/<name>/<value>}` (and `job@base64`): one group, as one
    /// element of `/api/v1/metrics`'s `data` (an extension); `rest` as in [`Route::Push`].
    ApiGroup {
        base64: bool,
        rest: String,
    },
    ApiOptions,
    ApiWipe,
    /// `GET /api/v1/groups`: groups with ages and TTLs (an extension).
    ApiGroups,
    /// `DELETE /api/v1/admin/groups`: bulk delete by matchers and age (an extension).
    ApiAdminGroups,
    /// `POST /api/v1/otlp/v1/metrics`: OTLP/HTTP metrics (`--web.enable-otlp-receiver`).
    OtlpMetrics,
}

/// What to do with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Dispatch {
    Handle(Route),
    Redirect(StatusCode, String),
    Options(Vec<&'static str>),
    MethodNotAllowed(Vec<&'static str>),
    NotFound,
}

/// The paths the server answers on.
#[derive(Debug, Clone)]
pub struct Routes {
    /// Route prefix, `""` or `/something` without a trailing slash.
    pub prefix: String,
    /// Full scrape path (prefix joined with `--web.telemetry-path`).
    pub telemetry: String,
    pub admin_api: bool,
    /// `--web.enable-otlp-receiver`: route `POST /api/v1/otlp/v1/metrics`.
    pub otlp: bool,
}

/// Computes the trailing-slash redirect target for a method, if any.
type TsrFn<'a> = &'a dyn Fn(&str) -> Option<String>;

const METHODS: [&str; 5] = ["DELETE", "GET", "OPTIONS", "POST", "PUT"];

/// Go's `path.Clean`, keeping a trailing slash (as `ServeMux`'s `cleanPath` does).
/// True when [`clean_path`] would return `p` unchanged (the usual case, checked without
/// allocating): rooted, no empty, `.` or `..` segment (a trailing `/` is kept).
fn is_clean(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    let mut segments = rest.split('/').peekable();
    while let Some(seg) = segments.next() {
        let last = segments.peek().is_none();
        if (seg.is_empty() && !last) || seg == "." || seg == ".." {
            return false;
        }
    }
    true
}

pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let rooted = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in rooted.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(rooted.len());
    for s in &parts {
        out.push('/');
        out.push_str(s);
    }
    if out.is_empty() {
        out.push('/');
    }
    if rooted.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

impl Routes {
    /// The push route (`DELETE`, `POST` and `PUT`) `path` matches, if any.
    fn push_route(&self, path: &str) -> Option<Route> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        // The prefixes exclude each other: at most one matches.
        for (route, base64, accumulate) in [
            ("/metrics/job@base64/", true, false),
            ("/metrics/job/", false, false),
            ("/accumulate/metrics/job@base64/", true, true),
            ("/accumulate/metrics/job/", false, true),
        ] {
            if let Some(after) = rest.strip_prefix(route) {
                // `:job` must be a non-empty segment.
                let job_len = after.find('/').unwrap_or(after.len());
                if job_len > 0 {
                    // `after` with the `/` before it.
                    let rest = &path[path.len() - after.len() - 1..];
                    return Some(Route::Push {
                        base64,
                        rest: rest.to_string(),
                        accumulate,
                    });
                }
            }
        }
        None
    }

    /// Which route each method has for `path` in the main (non-API) router.
    fn main_routes(&self, path: &str) -> Vec<(&'static str, Route)> {
        let mut out = Vec::new();
        let p = &self.prefix;
        if let Some(rest) = path.strip_prefix(p.as_str()) {
            if let Some(r) = self.push_route(path) {
                for m in ["DELETE", "POST", "PUT"] {
                    out.push((m, r.clone()));
                }
            }
            match rest {
                "/-/healthy" => out.push(("GET", Route::Healthy)),
                "/-/ready" => out.push(("GET", Route::Ready)),
                "/-/quit" => {
                    out.push(("POST", Route::Quit));
                    out.push(("PUT", Route::Quit));
                }
                "/" | "/status" => out.push(("GET", Route::Ui)),
                _ => {}
            }
            if let Some(file) = rest.strip_prefix("/static/") {
                out.push(("GET", Route::Static(file.to_string())));
            }
        }
        if path == self.telemetry {
            out.push(("GET", Route::Scrape));
        }
        if path == "/-/quit" && !out.iter().any(|(m, _)| *m == "GET") {
            out.push(("GET", Route::QuitGet));
        }
        out
    }

    fn api_routes(&self, rest: &str) -> Vec<(&'static str, Route)> {
        let mut out = vec![("OPTIONS", Route::ApiOptions)];
        match rest {
            "/status" => out.push(("GET", Route::ApiStatus)),
            "/metrics" => out.push(("GET", Route::ApiMetrics)),
            "/admin/wipe" if self.admin_api => out.push(("PUT", Route::ApiWipe)),
            "/groups" => out.push(("GET", Route::ApiGroups)),
            "/admin/groups" if self.admin_api => out.push(("DELETE", Route::ApiAdminGroups)),
            "/otlp/v1/metrics" if self.otlp => out.push(("POST", Route::OtlpMetrics)),
            _ => {
                // One group, addressed like a push (`:job` a non-empty segment).
                for (route, base64) in [("/metrics/job@base64/", true), ("/metrics/job/", false)] {
                    if let Some(after) = rest.strip_prefix(route) {
                        if after.find('/').unwrap_or(after.len()) > 0 {
                            let rest = format!("/{after}");
                            out.push(("GET", Route::ApiGroup { base64, rest }));
                        }
                    }
                }
            }
        }
        out
    }

    /// Routes a request given its method and percent-decoded path.
    pub fn dispatch(&self, method: &Method, path: &str) -> Dispatch {
        if method != Method::CONNECT && !is_clean(path) {
            let cleaned = clean_path(path);
            if cleaned != path {
                return Dispatch::Redirect(StatusCode::MOVED_PERMANENTLY, cleaned);
            }
        }
        match path
            .strip_prefix(self.prefix.as_str())
            .and_then(|r| r.strip_prefix("/api/v1"))
        {
            Some("") => {
                return Dispatch::Redirect(StatusCode::MOVED_PERMANENTLY, format!("{path}/"));
            }
            Some(rest) if rest.starts_with('/') => {
                let routes = self.api_routes(rest);
                return Self::resolve(method, routes, |_| false, None);
            }
            _ => {}
        }
        // A push needs no other route: push routes come first in `main_routes`, so the one
        // `resolve` would pick is the push route.
        if *method == Method::PUT || *method == Method::POST || *method == Method::DELETE {
            if let Some(r) = self.push_route(path) {
                return Dispatch::Handle(r);
            }
        }
        let routes = self.main_routes(path);
        let tsr = |m: &str| -> Option<String> {
            let alt = match path.strip_suffix('/') {
                Some(p) if !p.is_empty() => p.to_string(),
                Some(_) => return None,
                None => format!("{path}/"),
            };
            // httprouter's tree suggests `/metrics/job` for `/metrics/job/` (which then 404s).
            let quirk = ["/metrics/job/", "/accumulate/metrics/job/"]
                .iter()
                .any(|s| path == format!("{}{}", self.prefix, s))
                && ["PUT", "POST", "DELETE"].contains(&m);
            if quirk || self.main_routes(&alt).iter().any(|(am, _)| *am == m) {
                Some(alt)
            } else {
                None
            }
        };
        Self::resolve(method, routes, |m| tsr(m).is_some(), Some(&tsr))
    }

    fn resolve(
        method: &Method,
        routes: Vec<(&'static str, Route)>,
        has_tsr: impl Fn(&str) -> bool,
        tsr: Option<TsrFn<'_>>,
    ) -> Dispatch {
        let m = method.as_str();
        if let Some((_, r)) = routes.iter().find(|(rm, _)| *rm == m) {
            return Dispatch::Handle(r.clone());
        }
        if let Some(tsr) = tsr.filter(|_| has_tsr(m)) {
            if let Some(alt) = tsr(m) {
                let code = if m == "GET" {
                    StatusCode::MOVED_PERMANENTLY
                } else {
                    StatusCode::TEMPORARY_REDIRECT
                };
                return Dispatch::Redirect(code, alt);
            }
        }
        let mut allow: Vec<&'static str> = routes
            .iter()
            .map(|(rm, _)| *rm)
            .filter(|rm| *rm != m && *rm != "OPTIONS")
            .collect();
        if allow.is_empty() {
            return Dispatch::NotFound;
        }
        allow.push("OPTIONS");
        allow.sort_unstable();
        allow.dedup();
        let allow: Vec<&'static str> = METHODS
            .iter()
            .copied()
            .filter(|x| allow.contains(x))
            .collect();
        if method == Method::OPTIONS {
            Dispatch::Options(allow)
        } else {
            Dispatch::MethodNotAllowed(allow)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn routes(prefix: &str) -> Routes {
        Routes {
            prefix: prefix.into(),
            telemetry: format!("{prefix}/metrics"),
            admin_api: true,
            otlp: false,
        }
    }

    #[test]
    fn path_cleaning_redirects() {
        let r = routes("");
        assert_eq!(
            r.dispatch(&Method::PUT, "/metrics/job/foo/label//bar"),
            Dispatch::Redirect(
                StatusCode::MOVED_PERMANENTLY,
                "/metrics/job/foo/label/bar".into()
            )
        );
        assert_eq!(clean_path("/a/./b/../c/"), "/a/c/");
        assert_eq!(clean_path("/"), "/");
    }

    /// The allocation-free check agrees with `clean_path` on every path it calls clean.
    #[test]
    fn is_clean_only_for_paths_clean_path_keeps() {
        let paths = [
            "",
            "/",
            "//",
            "/a",
            "/a/",
            "/a//",
            "//a",
            "/a//b",
            "/.",
            "/./",
            "/..",
            "/../a",
            "/a/.",
            "/a/..",
            "/a/./b",
            "/a/../b",
            "/a/.b",
            "/a/..b/",
            "/a/b.",
            "a",
            "a/b",
            "/metrics/job/x/instance/y",
            "/metrics/job/x/",
            "/.../",
            "/a/b/c/",
        ];
        for p in paths {
            assert_eq!(is_clean(p), clean_path(p) == p, "{p:?}");
        }
    }

    #[test]
    fn push_routes_and_trailing_slashes() {
        let r = routes("");
        assert_eq!(
            r.dispatch(&Method::PUT, "/metrics/job/a/"),
            Dispatch::Handle(Route::Push {
                base64: false,
                rest: "/a/".into(),
                accumulate: false,
            })
        );
        assert_eq!(
            r.dispatch(&Method::POST, "/accumulate/metrics/job@base64/YQ/x/1"),
            Dispatch::Handle(Route::Push {
                base64: true,
                rest: "/YQ/x/1".into(),
                accumulate: true,
            })
        );
        assert_eq!(
            r.dispatch(&Method::PUT, "/accumulate/metrics/job/"),
            Dispatch::Redirect(
                StatusCode::TEMPORARY_REDIRECT,
                "/accumulate/metrics/job".into()
            )
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/accumulate/metrics/job/x"),
            Dispatch::MethodNotAllowed(vec!["DELETE", "OPTIONS", "POST", "PUT"])
        );
        assert_eq!(
            r.dispatch(&Method::PUT, "/metrics/job/"),
            Dispatch::Redirect(StatusCode::TEMPORARY_REDIRECT, "/metrics/job".into())
        );
        assert_eq!(r.dispatch(&Method::PUT, "/metrics/job"), Dispatch::NotFound);
        assert_eq!(
            r.dispatch(&Method::GET, "/metrics/"),
            Dispatch::Redirect(StatusCode::MOVED_PERMANENTLY, "/metrics".into())
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/metrics/job/x"),
            Dispatch::MethodNotAllowed(vec!["DELETE", "OPTIONS", "POST", "PUT"])
        );
        assert_eq!(
            r.dispatch(&Method::OPTIONS, "/metrics/job/x"),
            Dispatch::Options(vec!["DELETE", "OPTIONS", "POST", "PUT"])
        );
        assert_eq!(
            r.dispatch(&Method::HEAD, "/metrics"),
            Dispatch::MethodNotAllowed(vec!["GET", "OPTIONS"])
        );
        assert_eq!(
            r.dispatch(&Method::PUT, "/metrics"),
            Dispatch::MethodNotAllowed(vec!["GET", "OPTIONS"])
        );
    }

    /// A push's route, found without building the route table, is the one the table gives.
    #[test]
    fn push_fast_path_agrees_with_the_route_table() {
        for prefix in ["", "/pg"] {
            let r = routes(prefix);
            for p in [
                "/metrics/job/a",
                "/metrics/job/a/",
                "/metrics/job/a/b/c",
                "/metrics/job@base64/YQ",
                "/metrics/job@base64/",
                "/metrics/job/",
                "/metrics/job",
                "/accumulate/metrics/job/a/x/y",
                "/accumulate/metrics/job@base64/YQ/",
                "/metrics",
                "/-/quit",
                "/api/v1/metrics/job/a",
            ] {
                let path = format!("{prefix}{p}");
                for m in [Method::PUT, Method::POST, Method::DELETE] {
                    let table = Routes::resolve(&m, r.main_routes(&path), |_| false, None);
                    let got = r.dispatch(&m, &path);
                    if let Dispatch::Handle(Route::Push { .. }) = table {
                        assert_eq!(got, table, "{m} {path}");
                    } else {
                        assert!(
                            !matches!(got, Dispatch::Handle(Route::Push { .. })),
                            "{m} {path}: {got:?}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn api_subtree() {
        let r = routes("");
        assert_eq!(
            r.dispatch(&Method::GET, "/api/v1"),
            Dispatch::Redirect(StatusCode::MOVED_PERMANENTLY, "/api/v1/".into())
        );
        assert_eq!(r.dispatch(&Method::GET, "/api/v1/"), Dispatch::NotFound);
        assert_eq!(
            r.dispatch(&Method::OPTIONS, "/api/v1/anything"),
            Dispatch::Handle(Route::ApiOptions)
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/api/v1/metrics/job@base64/YQ/x/1"),
            Dispatch::Handle(Route::ApiGroup {
                base64: true,
                rest: "/YQ/x/1".into(),
            })
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/api/v1/metrics/job/a"),
            Dispatch::Handle(Route::ApiGroup {
                base64: false,
                rest: "/a".into(),
            })
        );
        assert_eq!(
            r.dispatch(&Method::DELETE, "/api/v1/metrics/job/a"),
            Dispatch::MethodNotAllowed(vec!["GET", "OPTIONS"])
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/api/v1/metrics/job/"),
            Dispatch::NotFound
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/api/v1/metrics/job"),
            Dispatch::NotFound
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/api/v1/admin/wipe"),
            Dispatch::MethodNotAllowed(vec!["OPTIONS", "PUT"])
        );
        // The OTLP receiver's route exists only with --web.enable-otlp-receiver.
        assert_eq!(
            r.dispatch(&Method::POST, "/api/v1/otlp/v1/metrics"),
            Dispatch::NotFound
        );
        let r = Routes { otlp: true, ..r };
        assert_eq!(
            r.dispatch(&Method::POST, "/api/v1/otlp/v1/metrics"),
            Dispatch::Handle(Route::OtlpMetrics)
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/api/v1/otlp/v1/metrics"),
            Dispatch::MethodNotAllowed(vec!["OPTIONS", "POST"])
        );
    }

    #[test]
    fn route_prefix_and_quit() {
        let r = routes("/pg");
        assert_eq!(
            r.dispatch(&Method::GET, "/pg/metrics"),
            Dispatch::Handle(Route::Scrape)
        );
        assert_eq!(r.dispatch(&Method::GET, "/metrics"), Dispatch::NotFound);
        assert_eq!(
            r.dispatch(&Method::GET, "/pg"),
            Dispatch::Redirect(StatusCode::MOVED_PERMANENTLY, "/pg/".into())
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/-/quit"),
            Dispatch::Handle(Route::QuitGet)
        );
        assert_eq!(
            r.dispatch(&Method::GET, "/pg/-/quit"),
            Dispatch::MethodNotAllowed(vec!["OPTIONS", "POST", "PUT"])
        );
        assert_eq!(r.dispatch(&Method::GET, "/-/healthy"), Dispatch::NotFound);
    }
}
