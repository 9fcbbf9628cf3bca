//! Who may use the admin port: the bearer token and the rules for asking for it.
//!
//! - Mutating endpoints (reload, mirror control, noise pins) need `Authorization: Bearer
//!   <token>` whenever `admin.token_file` is set. Config validation refuses a non-loopback
//!   admin address without one, so off loopback they always need it.
//! - Read-only endpoints (`/metrics`, `GET /api/v1/...`) need it too when a token is set,
//!   unless `admin.read_only_open = true`.
//! - `/healthz` and `/readyz` are always open: probes carry no data and must not need a
//!   secret.
//!
//! - Mutating endpoints refuse a browser's cross-site request (403), token or not: with no
//!   token a page on any other site could otherwise make a visitor's browser `POST` a
//!   reload to a loopback admin port, since a plain form or text `POST` needs no preflight.
//!   The rule is Go's `CrossOriginProtection`: `Sec-Fetch-Site` when the browser sends it,
//!   else `Origin` against `Host`; clients that send neither (curl, `shadowtap ctl`) pass.
//!
//! A missing or wrong token is a 401 with `WWW-Authenticate: Bearer`; either refusal is
//! counted on `shadowtap_admin_unauthorized_total{endpoint}`. The token is compared in
//! constant time and never logged.

use crate::config::{AdminConfig, AdminToken};
use crate::telemetry::metrics::ADMIN_UNAUTHORIZED_TOTAL;
use crate::telemetry::Metrics;
use http::header::{HeaderMap, AUTHORIZATION};
use metrics::Counter;
use subtle::ConstantTimeEq;

/// What an admin request asks for: the `endpoint` label of the unauthorized counter (a
/// fixed set, never the raw path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/healthz`, `/readyz`.
    Health,
    /// `/metrics`.
    Metrics,
    /// Read-only `GET /api/v1/...` (routes, endpoints, samples, noise, mirror).
    Api,
    /// `PUT /api/v1/mirror`.
    Mirror,
    /// `PUT /api/v1/noise`.
    Noise,
    /// `POST /api/v1/reload`.
    Reload,
    /// The web page's files under `/ui/` and `GET /api/v1/access`: they carry no data (the
    /// page reads the API, with the token when one is needed).
    Page,
}

impl Endpoint {
    /// Every endpoint, in label order.
    pub const ALL: [Endpoint; 7] = [
        Endpoint::Health,
        Endpoint::Metrics,
        Endpoint::Api,
        Endpoint::Mirror,
        Endpoint::Noise,
        Endpoint::Reload,
        Endpoint::Page,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Health => "health",
            Endpoint::Metrics => "metrics",
            Endpoint::Api => "api",
            Endpoint::Mirror => "mirror",
            Endpoint::Noise => "noise",
            Endpoint::Reload => "reload",
            Endpoint::Page => "page",
        }
    }

    /// What the endpoint may do, which decides whether it needs the token.
    pub fn access(self) -> Access {
        match self {
            Endpoint::Health | Endpoint::Page => Access::Open,
            Endpoint::Metrics | Endpoint::Api => Access::Read,
            Endpoint::Mirror | Endpoint::Noise | Endpoint::Reload => Access::Mutate,
        }
    }
}

/// How much an endpoint can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Probes: never need the token.
    Open,
    /// Reads: need the token when one is set, unless `admin.read_only_open`.
    Read,
    /// Changes the running proxy: needs the token when one is set.
    Mutate,
}

/// The admin port's access rules and the counter of refusals.
pub struct Auth {
    /// Whether a token file is configured: then the rules apply even if the token could not
    /// be read (the app refuses to start so; this fails closed should it start anyway).
    protected: bool,
    token: Option<AdminToken>,
    read_only_open: bool,
    refused: [Counter; Endpoint::ALL.len()],
    /// The refusal log lines, at most one a second: a client hammering the port with bad
    /// tokens is counted in full but cannot flood the log.
    log: RefusalLog,
}

/// Rate-limits the refusal line, counting what it leaves out.
struct RefusalLog {
    start: std::time::Instant,
    /// Milliseconds since `start` of the last line (0: none yet).
    last_ms: std::sync::atomic::AtomicU64,
    /// Refusals since the last line.
    unlogged: std::sync::atomic::AtomicU64,
}

/// The least time between two refusal lines.
const REFUSAL_LOG_INTERVAL_MS: u64 = 1000;

impl RefusalLog {
    fn new() -> RefusalLog {
        RefusalLog {
            start: std::time::Instant::now(),
            last_ms: Default::default(),
            unlogged: Default::default(),
        }
    }

    /// Logs a refusal unless one was logged within the interval; the line carries how many
    /// refusals went unlogged since the previous one.
    fn refused(&self, endpoint: Endpoint) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.refused_at(endpoint, now);
    }

    /// [`RefusalLog::refused`] at `now` milliseconds since `start`.
    fn refused_at(&self, endpoint: Endpoint, now: u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = now.max(1);
        let last = self.last_ms.load(Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= REFUSAL_LOG_INTERVAL_MS;
        if !due
            || self
                .last_ms
                .compare_exchange(last, now, Relaxed, Relaxed)
                .is_err()
        {
            self.unlogged.fetch_add(1, Relaxed);
            return;
        }
        let unlogged = self.unlogged.swap(0, Relaxed);
        tracing::warn!(
            endpoint = endpoint.as_str(),
            unlogged_since_last = unlogged,
            "admin request refused: missing or wrong bearer token"
        );
    }
}

/// Why the rules refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// No token, or the wrong one (answered 401).
    Unauthorized,
    /// A browser's cross-site request to a mutating endpoint (answered 403).
    CrossSite,
}

impl Auth {
    /// The rules of `config`; the refusal counters are registered (at 0) in `metrics`.
    pub fn new(config: &AdminConfig, metrics: &Metrics) -> Auth {
        Auth {
            protected: config.token_file.is_some(),
            token: config.token.clone(),
            read_only_open: config.read_only_open,
            refused: Endpoint::ALL.map(|endpoint| {
                metrics.counter(ADMIN_UNAUTHORIZED_TOTAL, &[("endpoint", endpoint.as_str())])
            }),
            log: RefusalLog::new(),
        }
    }

    /// Lets the request through, or counts it and refuses it.
    pub fn admit(&self, endpoint: Endpoint, headers: &HeaderMap) -> Result<(), Refused> {
        if endpoint.access() == Access::Mutate && cross_site(headers) {
            self.count(endpoint);
            return Err(Refused::CrossSite);
        }
        if !self.protected {
            // No token file: validation has made sure the port is on loopback.
            return Ok(());
        }
        let needed = match endpoint.access() {
            Access::Open => false,
            Access::Read => !self.read_only_open,
            Access::Mutate => true,
        };
        let matches = |token: &AdminToken| {
            presented(headers).is_some_and(|given| same(given, token.expose()))
        };
        if !needed || self.token.as_ref().is_some_and(matches) {
            return Ok(());
        }
        self.count(endpoint);
        Err(Refused::Unauthorized)
    }

    /// Counts a refusal and logs it (rate-limited).
    fn count(&self, endpoint: Endpoint) {
        let index = Endpoint::ALL
            .iter()
            .position(|known| *known == endpoint)
            .unwrap_or(0);
        if let Some(counter) = self.refused.get(index) {
            counter.increment(1);
        }
        self.log.refused(endpoint);
    }
}

/// Whether a browser sent this request on behalf of another site: `Sec-Fetch-Site` other
/// than `same-origin` or `none` (typed in the address bar), or, from a browser too old to
/// send it, an `Origin` whose host is not this request's `Host`.
pub fn cross_site(headers: &HeaderMap) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        return !(site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none"));
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return false;
    };
    let origin = origin.as_bytes();
    let host = origin
        .windows(3)
        .position(|window| window == b"://")
        .and_then(|at| origin.get(at + 3..));
    match (host, headers.get(http::header::HOST)) {
        (Some(host), Some(expected)) => !host.eq_ignore_ascii_case(expected.as_bytes()),
        // `Origin: null` (a sandboxed frame, a file) or no Host to compare with.
        _ => true,
    }
}

/// `GET /api/v1/access`: what a client (the web page) needs to know to offer only what it
/// may do. It says nothing about the token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AccessView {
    /// Changes need the bearer token (`admin.token_file` is set).
    pub changes_need_token: bool,
    /// Reads need it too (a token is set and `admin.read_only_open` is false).
    pub reads_need_token: bool,
    /// This request carried the right token.
    pub token_accepted: bool,
}

impl Auth {
    /// What `headers` may do here (`GET /api/v1/access`).
    pub fn view(&self, headers: &HeaderMap) -> AccessView {
        let accepted = self.token.as_ref().is_some_and(|token| {
            presented(headers).is_some_and(|given| same(given, token.expose()))
        });
        AccessView {
            changes_need_token: self.protected,
            reads_need_token: self.protected && !self.read_only_open,
            token_accepted: accepted,
        }
    }
}

/// The credentials of an `Authorization: Bearer <token>` field (the scheme is
/// case-insensitive, RFC 7235).
fn presented(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at_checked(7)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    Some(rest.trim_ascii())
}

/// Whether the presented token is the configured one, in time that depends on neither
/// content: `subtle`'s comparison (the RustCrypto crate, already in the dependency tree)
/// is written so the compiler cannot turn it into an early-exit loop, which a hand-written
/// `fold` gives no guarantee of. Only a length mismatch returns early, and the length is
/// not the secret.
fn same(given: &[u8], token: &[u8]) -> bool {
    given.ct_eq(token).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn auth(token: Option<&str>, read_only_open: bool) -> Auth {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut text = format!("[admin]\nread_only_open = {read_only_open}\n");
        if let Some(token) = token {
            let path = dir.path().join("token");
            std::fs::write(&path, format!("  {token}\n")).expect("write token");
            text.push_str(&format!("token_file = {:?}\n", path.display().to_string()));
        }
        let overrides = crate::config::Overrides {
            primary: Some("http://127.0.0.1:1".to_string()),
            ..Default::default()
        };
        let config = crate::config::Config::from_toml(&text, &overrides).expect("valid config");
        Auth::new(&config.admin, &Metrics::new(&[], &[]))
    }

    fn bearer(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("value"));
        headers
    }

    /// Every shape of browser header against the rule: `Sec-Fetch-Site` decides when
    /// present, else `Origin` against `Host`, else (no browser headers) the request passes.
    #[test]
    fn cross_site_decision_table() {
        // (Sec-Fetch-Site, Origin, Host, cross-site?)
        type Row = (
            Option<&'static str>,
            Option<&'static str>,
            Option<&'static str>,
            bool,
        );
        let rows: &[Row] = &[
            (None, None, Some("127.0.0.1:9901"), false),
            (None, None, None, false),
            (Some("same-origin"), None, None, false),
            (
                Some("SAME-ORIGIN"),
                Some("https://evil.example"),
                None,
                false,
            ),
            (Some("none"), None, None, false),
            (Some("same-site"), None, None, true),
            (
                Some("cross-site"),
                Some("http://127.0.0.1:9901"),
                Some("127.0.0.1:9901"),
                true,
            ),
            (Some("garbage"), None, None, true),
            (
                None,
                Some("http://127.0.0.1:9901"),
                Some("127.0.0.1:9901"),
                false,
            ),
            (
                None,
                Some("HTTP://LocalHost:9901"),
                Some("localhost:9901"),
                false,
            ),
            (
                None,
                Some("http://127.0.0.1:9902"),
                Some("127.0.0.1:9901"),
                true,
            ),
            (
                None,
                Some("https://evil.example"),
                Some("127.0.0.1:9901"),
                true,
            ),
            (None, Some("null"), Some("127.0.0.1:9901"), true),
            (None, Some("http://127.0.0.1:9901"), None, true),
        ];
        for (site, origin, host, expected) in rows {
            let mut headers = HeaderMap::new();
            for (name, value) in [("sec-fetch-site", site), ("origin", origin), ("host", host)] {
                if let Some(value) = value {
                    headers.insert(name, HeaderValue::from_str(value).expect("value"));
                }
            }
            assert_eq!(
                cross_site(&headers),
                *expected,
                "{site:?} {origin:?} {host:?}"
            );
        }
    }

    #[test]
    fn a_cross_site_change_is_refused_and_a_cross_site_read_is_not() {
        let mut headers = HeaderMap::new();
        headers.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        for token in [None, Some("s3cret")] {
            let auth = auth(token, true);
            for endpoint in [Endpoint::Reload, Endpoint::Mirror, Endpoint::Noise] {
                assert_eq!(auth.admit(endpoint, &headers), Err(Refused::CrossSite));
            }
            assert_eq!(auth.admit(Endpoint::Metrics, &headers), Ok(()));
        }
    }

    #[test]
    fn refusals_are_logged_at_most_once_a_second_with_the_count_left_out() {
        use std::sync::atomic::Ordering::Relaxed;
        let log = RefusalLog::new();
        for now in 0..1000 {
            log.refused_at(Endpoint::Reload, now);
        }
        // The first is logged; the other 999 wait for the next line.
        assert_eq!(log.unlogged.load(Relaxed), 999);
        // A second after the first line, the next refusal is logged, carrying them.
        log.refused_at(Endpoint::Reload, 1000);
        assert_eq!(
            log.unlogged.load(Relaxed),
            1000,
            "not yet: 999 ms after the first"
        );
        log.refused_at(Endpoint::Reload, 1001);
        assert_eq!(log.unlogged.load(Relaxed), 0);
        assert_eq!(log.last_ms.load(Relaxed), 1001);
    }

    #[test]
    fn without_a_token_everything_is_open() {
        let auth = auth(None, false);
        for endpoint in Endpoint::ALL {
            assert_eq!(auth.admit(endpoint, &HeaderMap::new()), Ok(()));
        }
    }

    #[test]
    fn with_a_token_mutations_and_reads_need_it() {
        let auth = auth(Some("s3cret"), false);
        let none = HeaderMap::new();
        assert_eq!(auth.admit(Endpoint::Health, &none), Ok(()));
        for endpoint in [
            Endpoint::Metrics,
            Endpoint::Api,
            Endpoint::Mirror,
            Endpoint::Reload,
        ] {
            assert_eq!(auth.admit(endpoint, &none), Err(Refused::Unauthorized));
            assert_eq!(
                auth.admit(endpoint, &bearer("Bearer wrong")),
                Err(Refused::Unauthorized)
            );
            assert_eq!(
                auth.admit(endpoint, &bearer("Bearer s3cre")),
                Err(Refused::Unauthorized)
            );
            assert_eq!(
                auth.admit(endpoint, &bearer("Basic s3cret")),
                Err(Refused::Unauthorized)
            );
            assert_eq!(auth.admit(endpoint, &bearer("Bearer s3cret")), Ok(()));
            assert_eq!(auth.admit(endpoint, &bearer("bearer  s3cret ")), Ok(()));
        }
    }

    #[test]
    fn read_only_open_opens_reads_only() {
        let auth = auth(Some("s3cret"), true);
        let none = HeaderMap::new();
        assert_eq!(auth.admit(Endpoint::Metrics, &none), Ok(()));
        assert_eq!(auth.admit(Endpoint::Api, &none), Ok(()));
        assert_eq!(
            auth.admit(Endpoint::Noise, &none),
            Err(Refused::Unauthorized)
        );
    }

    #[test]
    fn the_access_view_says_what_a_client_may_do_and_the_page_is_open() {
        let open = auth(None, false).view(&HeaderMap::new());
        assert_eq!(
            (
                open.changes_need_token,
                open.reads_need_token,
                open.token_accepted
            ),
            (false, false, false)
        );
        let guarded = auth(Some("s3cret"), true);
        let without = guarded.view(&HeaderMap::new());
        assert_eq!(
            (
                without.changes_need_token,
                without.reads_need_token,
                without.token_accepted
            ),
            (true, false, false)
        );
        assert!(guarded.view(&bearer("Bearer s3cret")).token_accepted);
        assert!(!guarded.view(&bearer("Bearer wrong")).token_accepted);
        assert!(
            auth(Some("s3cret"), false)
                .view(&HeaderMap::new())
                .reads_need_token
        );
        assert_eq!(guarded.admit(Endpoint::Page, &HeaderMap::new()), Ok(()));
    }

    #[test]
    fn the_comparison_is_exact() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"ab", b"abc"));
        assert!(!same(b"", b"abc"));
    }
}
