//! The shared context both engines serve with: the router, each route's primary upstream,
//! the native engine's view of each HTTP/1 upstream, the mirror and the metrics.
//!
//! [`crate::app`] builds it once (it is the composition root) and hands it to the hyper
//! engine ([`crate::proxy::Proxy`]) and the native HTTP/1 engine ([`crate::native::serve`]) as
//! equals: neither engine builds the parts the other reads, and neither reaches into the
//! other for them. Reading through a `&Context` costs what reading through the engine did.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::config::{Config, UpstreamConfig};
use crate::h1::pool::RawPool;
use crate::router::Router;
use crate::shadow::Mirror;
use crate::splices::Splices;
use crate::telemetry::Metrics;
use http::header::HeaderValue;
use std::sync::Arc;
use std::time::Duration;

/// Per-route settings both engines need on every request, resolved once at start.
pub(crate) struct RouteTarget {
    /// The primary upstream's index (the order of `config.upstreams`, which ids index).
    pub(crate) upstream: usize,
    /// The Host the route rewrites to, if it does.
    pub(crate) host_rewrite: Option<HeaderValue>,
    /// How long an upgraded connection may be idle both ways.
    pub(crate) upgrade_idle_timeout: Duration,
}

/// An HTTP/1 upstream as the native engine reaches it: what it reads of the upstream's
/// config per request, and the pool of sockets it shares with the hyper path's client.
pub struct NativeUpstream {
    /// The upstream's name, for logs and errors.
    pub name: String,
    /// Time allowed from sending a request to its response head (exceeded: 504).
    pub response_timeout: Duration,
    /// Its idle keep-alive sockets (shared with the hyper path's client of the upstream).
    pub pool: Arc<RawPool>,
}

impl NativeUpstream {
    /// The native engine's view of an HTTP/1 upstream whose idle sockets are `pool`.
    pub fn new(name: &str, config: &UpstreamConfig, pool: Arc<RawPool>) -> NativeUpstream {
        NativeUpstream {
            name: name.to_string(),
            response_timeout: config.response_timeout,
            pool,
        }
    }
}

/// What every request on either engine reads: built once by the app, shared by all
/// connections of all listeners.
pub struct Context {
    router: Router,
    routes: Vec<RouteTarget>,
    /// The upstreams for the native engine, in id order; `None` for h2c upstreams (hyper's).
    upstreams: Vec<Option<NativeUpstream>>,
    mirror: Arc<Mirror>,
    metrics: Arc<Metrics>,
    /// The spliced connections, shared by every generation (the shutdown drains them).
    splices: Arc<Splices>,
    max_response_body_bytes: usize,
}

impl Context {
    /// The context of `config`: `pools` holds, in `config.upstreams` order, the idle
    /// sockets of each HTTP/1 upstream (`None` for an h2c one), which both engines share.
    pub fn new(
        config: &Config,
        router: Router,
        pools: impl IntoIterator<Item = Option<Arc<RawPool>>>,
        mirror: Arc<Mirror>,
        metrics: Arc<Metrics>,
        splices: Arc<Splices>,
    ) -> Context {
        let upstreams = config
            .upstreams
            .iter()
            .zip(pools)
            .map(|((name, upstream), pool)| {
                pool.map(|pool| NativeUpstream::new(name, upstream, pool))
            })
            .collect();
        let routes = config
            .routes
            .iter()
            .map(|route| RouteTarget {
                // Upstreams are built in `config.upstreams` order: the order ids index.
                upstream: route.primary.id().index(),
                host_rewrite: route
                    .host_rewrite
                    .as_deref()
                    .and_then(|host| HeaderValue::from_str(host).ok()),
                upgrade_idle_timeout: route.upgrade_idle_timeout,
            })
            .collect();
        Context {
            router,
            routes,
            upstreams,
            mirror,
            metrics,
            splices,
            max_response_body_bytes: config.mirror.max_response_body_bytes,
        }
    }

    /// The router both engines route with.
    pub fn router(&self) -> &Router {
        &self.router
    }

    /// The primary upstream and Host rewrite of route `route`.
    pub(crate) fn route(&self, route: usize) -> Option<&RouteTarget> {
        self.routes.get(route)
    }

    /// For the native engine: the upstream index and Host rewrite of a route it may serve
    /// itself — one towards an HTTP/1 upstream.
    pub(crate) fn native_target(&self, route: usize) -> Option<(usize, Option<&[u8]>)> {
        let target = self.routes.get(route)?;
        self.upstreams.get(target.upstream)?.as_ref()?;
        Some((
            target.upstream,
            target.host_rewrite.as_ref().map(HeaderValue::as_bytes),
        ))
    }

    /// The native engine's view of an upstream (`None` for an h2c upstream).
    pub(crate) fn native_upstream(&self, upstream: usize) -> Option<&NativeUpstream> {
        self.upstreams.get(upstream)?.as_ref()
    }

    /// The mirroring engine (its dispatchers are started by the app).
    pub fn mirror(&self) -> &Arc<Mirror> {
        &self.mirror
    }

    /// The metrics both engines record into (rendered by the admin port).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The spliced (upgraded) connections, which the shutdown waits for.
    pub fn splices(&self) -> &Arc<Splices> {
        &self.splices
    }

    /// Cap on the primary response body kept for comparison.
    pub fn max_response_body_bytes(&self) -> usize {
        self.max_response_body_bytes
    }
}
