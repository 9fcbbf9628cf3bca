//! The admin port: liveness, readiness, Prometheus metrics, the comparison results as JSON,
//! and the runtime controls, on its own listener so a flood of live traffic (or a closed
//! live port during drain) never hides the proxy's health.
//!
//! | method and path | answer | access |
//! |---|---|---|
//! | `GET /healthz` | 200 while the process serves | open |
//! | `GET /readyz` | 200 once every listener is bound, 503 before and while draining | open |
//! | `GET /metrics` | Prometheus text format | read |
//! | `GET /api/v1/routes`, `/api/v1/endpoints` | comparison results per route and shadow (with the mirror switches), per endpoint | read |
//! | `GET /api/v1/samples` | redacted samples of divergent pairs | read |
//! | `GET /api/v1/noise` | per route: fields learned, pinned or seen by the secondary as noise | read |
//! | `GET /api/v1/mirror` | the runtime mirror switches | read |
//! | `GET /api/v1/routes/{route}/history`, `/api/v1/history` | the last hour a minute at a time ([`history_api`]) | read |
//! | `GET /api/v1/access` | whether reads and changes need the token, and whether this request carried it | open |
//! | `GET /ui/` | the web page ([`ui`]): embedded files that read the API above | open |
//! | `PUT /api/v1/mirror` | pause, resume, change a percent ([`mirror_api`]) | mutate |
//! | `PUT /api/v1/noise` | pin a field as noise or signal ([`noise_api`]) | mutate |
//! | `POST /api/v1/reload` | reload the config ([`reload_api`]) | mutate |
//!
//! [`auth`] says who may use which access; every request passes it before its handler.

pub mod auth;
pub mod history_api;
pub mod mirror_api;
pub mod noise_api;
pub mod reload_api;
pub mod reply;
pub mod ui;

use crate::config::AdminConfig;
use crate::report::Reporter;
use crate::shadow::control::MirrorControl;
use crate::telemetry::Metrics;
use auth::{Auth, Endpoint};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use reload_api::ConfigReload;
use reply::{json, text, Reply};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// State the admin endpoints read.
pub struct AdminState {
    /// Set once all listeners are bound; cleared when draining starts.
    pub ready: AtomicBool,
    /// The proxy's metrics.
    pub metrics: Arc<Metrics>,
    /// The comparison engine's results (for `/api/v1/...`) and its noise pins.
    pub report: Arc<Reporter>,
    /// The runtime mirror switches.
    pub control: Arc<MirrorControl>,
    /// Who may use what.
    auth: Auth,
    /// The app's reload, once installed; `POST /api/v1/reload` is a 404 until then.
    reload: OnceLock<Arc<dyn ConfigReload>>,
    /// The mirror's outcomes and breakers as last read from the metrics (every few
    /// seconds, by [`history_api::sample_mirror`]): `/api/v1/routes` never renders the
    /// metrics itself.
    mirrored: Arc<history_api::LastMirrorState>,
}

impl AdminState {
    /// The admin state of a running proxy, not ready yet.
    pub fn new(
        config: &AdminConfig,
        metrics: Arc<Metrics>,
        report: Arc<Reporter>,
        control: Arc<MirrorControl>,
    ) -> AdminState {
        AdminState {
            ready: AtomicBool::new(false),
            auth: Auth::new(config, &metrics),
            metrics,
            report,
            control,
            reload: OnceLock::new(),
            mirrored: Arc::default(),
        }
    }

    /// Serves `POST /api/v1/reload` with `reload` from now on (once; later calls are
    /// ignored and return false).
    pub fn install_reload(&self, reload: Arc<dyn ConfigReload>) -> bool {
        self.reload.set(reload).is_ok()
    }
}

/// Serves the admin endpoints until `shutdown` flips to true.
/// With `tls` (`[admin.tls]`), every connection is a TLS handshake first, counted on the TLS
/// metrics with `listener="admin"`.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    tls: Option<Arc<crate::listener::tls::TlsListener>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::spawn(history_api::sample_mirror(
        state.metrics.clone(),
        state.report.clone(),
        state.mirrored.clone(),
        shutdown.clone(),
    ));
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(error = %error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = crate::shutdown::flagged(&mut shutdown) => break,
        };
        let state = state.clone();
        let service = service_fn(move |request| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(respond(&state, request).await) }
        });
        let builder = builder.clone();
        let tls = tls.clone();
        let mut stop = shutdown.clone();
        tokio::spawn(async move {
            let served = async {
                let result = match tls {
                    None => {
                        builder
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                    Some(tls) => match tls.accept(stream).await {
                        Some(established) => {
                            builder
                                .serve_connection(TokioIo::new(established.stream), service)
                                .await
                        }
                        // Counted and logged by the handshake.
                        None => Ok(()),
                    },
                };
                if let Err(error) = result {
                    tracing::debug!(error = %error, "admin connection error");
                }
            };
            tokio::select! {
                () = served => {}
                _ = crate::shutdown::flagged(&mut stop) => {}
            }
        });
    }
}

/// What a request asks for, found from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Healthz,
    Readyz,
    Metrics,
    Routes,
    Endpoints,
    Samples,
    Noise,
    Mirror,
    SetMirror,
    SetNoise,
    Reload,
    /// `/api/v1/routes/{route}/history` (the route is read from the path again).
    RouteHistory,
    /// `/api/v1/history`.
    History,
    /// `/api/v1/access`.
    Access,
    /// `/ui`, `/ui/...` (the path is read again).
    Page,
}

impl Action {
    /// The routing table. `Err` names the methods the path is served with, or none.
    fn of(method: &Method, path: &str) -> Result<Action, NotServed> {
        let read = method == Method::GET || method == Method::HEAD;
        let action = match (path, read) {
            ("/healthz", true) => Action::Healthz,
            ("/readyz", true) => Action::Readyz,
            ("/metrics", true) => Action::Metrics,
            ("/api/v1/routes", true) => Action::Routes,
            ("/api/v1/endpoints", true) => Action::Endpoints,
            ("/api/v1/samples", true) => Action::Samples,
            ("/api/v1/noise", true) => Action::Noise,
            ("/api/v1/mirror", true) => Action::Mirror,
            ("/api/v1/history", true) => Action::History,
            ("/api/v1/access", true) => Action::Access,
            (path, true) if ui::is_page(path) => Action::Page,
            (path, true) if history_api::route_of(path).is_some() => Action::RouteHistory,
            // Mutating endpoints: each one arm here and one in `Action::endpoint`.
            ("/api/v1/mirror", false) if method == Method::PUT => Action::SetMirror,
            ("/api/v1/noise", false) if method == Method::PUT => Action::SetNoise,
            ("/api/v1/reload", false) if method == Method::POST => Action::Reload,
            (
                "/healthz" | "/readyz" | "/metrics" | "/api/v1/routes" | "/api/v1/endpoints"
                | "/api/v1/samples",
                false,
            ) => return Err(NotServed::Method("use GET\n")),
            ("/api/v1/mirror" | "/api/v1/noise", _) => {
                return Err(NotServed::Method("use GET or PUT\n"))
            }
            ("/api/v1/reload", _) => return Err(NotServed::Method("use POST\n")),
            ("/api/v1/history" | "/api/v1/access", false) => {
                return Err(NotServed::Method("use GET\n"))
            }
            (path, false) if ui::is_page(path) => return Err(NotServed::Method("use GET\n")),
            (path, false) if history_api::route_of(path).is_some() => {
                return Err(NotServed::Method("use GET\n"))
            }
            _ => return Err(NotServed::Path),
        };
        Ok(action)
    }

    /// The endpoint it counts as, which decides whether it needs the token.
    fn endpoint(self) -> Endpoint {
        match self {
            Action::Healthz | Action::Readyz => Endpoint::Health,
            Action::Metrics => Endpoint::Metrics,
            Action::Routes
            | Action::Endpoints
            | Action::Samples
            | Action::Noise
            | Action::Mirror
            | Action::RouteHistory
            | Action::History => Endpoint::Api,
            Action::Access | Action::Page => Endpoint::Page,
            Action::SetMirror => Endpoint::Mirror,
            Action::SetNoise => Endpoint::Noise,
            Action::Reload => Endpoint::Reload,
        }
    }
}

/// Why the routing table has no action for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NotServed {
    /// No such path (404).
    Path,
    /// The path, not with this method (405, saying which).
    Method(&'static str),
}

fn not_found() -> Reply {
    text(
        StatusCode::NOT_FOUND,
        "not found: try /ui/, /healthz, /readyz, /metrics, /api/v1/routes, /api/v1/endpoints, /api/v1/samples, /api/v1/noise, /api/v1/mirror\n",
    )
}

async fn respond(state: &AdminState, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let action = match Action::of(&parts.method, parts.uri.path()) {
        Ok(action) => action,
        Err(NotServed::Path) => return not_found(),
        Err(NotServed::Method(which)) => return text(StatusCode::METHOD_NOT_ALLOWED, which),
    };
    match state.auth.admit(action.endpoint(), &parts.headers) {
        Ok(()) => {}
        Err(auth::Refused::Unauthorized) => return reply::unauthorized(),
        Err(auth::Refused::CrossSite) => return reply::cross_site(),
    }
    match action {
        Action::Healthz => text(StatusCode::OK, "ok\n"),
        Action::Readyz => {
            if state.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
            }
        }
        Action::Metrics => {
            state.metrics.collect_process();
            let mut response = Response::new(Full::new(Bytes::from(state.metrics.render())));
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        Action::Routes => routes(state),
        Action::Endpoints => json(&state.report.endpoints()),
        Action::Noise => json(&state.report.noise()),
        Action::Samples => {
            let query = parts.uri.query().unwrap_or("");
            let route = reply::query_param(query, "route").filter(|route| !route.is_empty());
            let limit = reply::query_param(query, "limit")
                .and_then(|limit| limit.parse::<usize>().ok())
                .unwrap_or(DEFAULT_SAMPLE_LIMIT);
            json(&state.report.samples(route.as_deref(), limit))
        }
        Action::Mirror => mirror_api::get(&state.control),
        Action::History => history_api::get_all(&state.report),
        Action::Access => json(&state.auth.view(&parts.headers)),
        Action::Page => ui::get(parts.uri.path()),
        Action::RouteHistory => match history_api::route_of(parts.uri.path()) {
            Some(route) => history_api::get_route(&state.report, &route),
            None => not_found(),
        },
        Action::SetMirror => match reply::read_body(body).await {
            Ok(body) => mirror_api::put(&state.control, &body),
            Err(refusal) => refusal.reply(),
        },
        Action::SetNoise => match reply::read_body(body).await {
            Ok(body) => noise_api::put(&state.report, &body),
            Err(refusal) => refusal.reply(),
        },
        Action::Reload => match state.reload.get() {
            Some(reload) => reload_api::post(reload.as_ref()).await,
            None => not_found(),
        },
    }
}

/// `/api/v1/routes`: the comparison results, each with its (route, shadow)'s mirror
/// switches under `mirror` (absent for a secondary or a route no longer configured), what
/// became of its mirrored requests under `mirror_outcomes`, and its shadow's `breaker`.
fn routes(state: &AdminState) -> Reply {
    let mirrored = state.mirrored.get();
    let entries: Vec<serde_json::Value> = state
        .report
        .routes()
        .into_iter()
        .map(|summary| {
            let switches = state.control.for_label(&summary.route, &summary.shadow);
            let mut value = serde_json::to_value(&summary).unwrap_or_default();
            if let (Some(object), Some(switches)) = (value.as_object_mut(), switches) {
                object.insert(
                    "mirror".to_string(),
                    serde_json::to_value(switches).unwrap_or_default(),
                );
            }
            if let Some(object) = value.as_object_mut() {
                let key = (summary.route.clone(), summary.shadow.clone());
                let outcomes = mirrored.outcomes.get(&key).copied().unwrap_or_default();
                object.insert(
                    "mirror_outcomes".to_string(),
                    serde_json::to_value(history_api::outcome_map(&outcomes)).unwrap_or_default(),
                );
                if let Some(name) = state.control.route_name_of(&summary.route) {
                    object.insert("route_name".to_string(), name.into());
                }
                if let Some(breaker) = mirrored.breakers.get(&summary.shadow) {
                    object.insert("breaker".to_string(), (*breaker).into());
                }
            }
            value
        })
        .collect();
    json(&entries)
}

/// Samples returned when `limit` is not given.
const DEFAULT_SAMPLE_LIMIT: usize = 20;

#[cfg(test)]
mod tests {
    use super::auth::Access;
    use super::*;

    /// The whole routing table, every path against every method: reads answer GET and HEAD
    /// only, and whatever else a path accepts counts as a mutating endpoint, so the token
    /// guards it. A new mutating arm that forgot its endpoint fails here.
    #[test]
    fn only_get_and_head_read_and_everything_else_needs_the_token() {
        let paths = [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/routes",
            "/api/v1/endpoints",
            "/api/v1/samples",
            "/api/v1/noise",
            "/api/v1/mirror",
            "/api/v1/reload",
            "/api/v1/other",
            "/",
        ];
        let methods = [
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ];
        let mut served = 0;
        for path in paths {
            for method in &methods {
                let read = *method == Method::GET || *method == Method::HEAD;
                match Action::of(method, path) {
                    Ok(action) => {
                        served += 1;
                        let access = action.endpoint().access();
                        assert_eq!(
                            access == Access::Mutate,
                            !read,
                            "{method} {path}: {action:?} is {access:?}"
                        );
                    }
                    Err(NotServed::Method(_)) => {
                        assert!(!["/", "/api/v1/other"].contains(&path), "{method} {path}")
                    }
                    Err(NotServed::Path) => {
                        assert!(["/", "/api/v1/other"].contains(&path), "{method} {path}")
                    }
                }
            }
        }
        // 8 read paths x GET and HEAD, plus PUT mirror, PUT noise and POST reload.
        assert_eq!(served, 8 * 2 + 3);
    }

    /// History paths read like the other API paths: GET and HEAD with the read access, any
    /// other method a 405.
    #[test]
    fn history_paths_are_reads() {
        for path in ["/api/v1/history", "/api/v1/routes/%2Fa%2F%7Bid%7D/history"] {
            for method in [Method::GET, Method::HEAD] {
                let action = Action::of(&method, path).expect("served");
                assert_eq!(action.endpoint().access(), Access::Read, "{path}");
            }
            assert_eq!(
                Action::of(&Method::PUT, path),
                Err(NotServed::Method("use GET\n"))
            );
        }
        assert_eq!(
            Action::of(&Method::GET, "/api/v1/routes/x/historyx"),
            Err(NotServed::Path)
        );
    }
}
