//! Config generations: everything both engines serve with, built from one config, and the
//! one slot that says which generation is current.
//!
//! A reload builds a whole new [`Generation`] beside the running one (reusing what has not
//! changed: an upstream's pool, a shadow's queue and breaker, the metric registry, the
//! comparison engine's statistics and learned noise) and swaps it in at once. A request is
//! served by the generation that was current when it started, to its end: the engines take
//! the current generation per request (the native engine looks at a counter per request and
//! takes a new generation only when it changed), and the old one is dropped when its last
//! request finishes.

use crate::config::{settings_text, Config};
use crate::context::Context;
use crate::forward::UpstreamClient;
use crate::proxy::{Proxy, RequestBody};
use crate::report::Reporter;
use crate::router::Router;
use crate::shadow::Mirror;
use crate::telemetry::Metrics;
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// One primary upstream's client and the settings it was built from.
struct BuiltClient {
    name: String,
    /// The upstream's settings, serialized: equal settings keep the client and its pool.
    settings: String,
    client: Arc<UpstreamClient<RequestBody>>,
}

/// Everything built from one config.
pub struct Generation {
    /// 1 for the config the process started with, then one more per reload.
    number: u64,
    config: Arc<Config>,
    proxy: Arc<Proxy>,
    clients: Vec<BuiltClient>,
}

impl Generation {
    /// The instance's metric registry, with the route table of `config` (the start's).
    pub fn registry(config: &Config) -> Arc<Metrics> {
        let router = Router::new(&config.routes);
        Arc::new(Metrics::new(
            router.labels(),
            &Mirror::route_shadow_names(config),
        ))
    }

    /// The first generation, counting in `metrics` (from [`Generation::registry`]).
    pub fn first(config: Config, metrics: Arc<Metrics>, report: &Arc<Reporter>) -> Generation {
        let router = Router::new(&config.routes);
        Generation::build(config, router, metrics, report, None)
    }

    /// The generation after `self` for a reloaded `config`: the same registry (every series
    /// carries on) and the same comparison engine; upstream clients and shadow targets whose
    /// settings are unchanged are kept, with their idle connections and queues.
    pub fn next(&self, config: Config, report: &Arc<Reporter>) -> Generation {
        let router = Router::new(&config.routes);
        let metrics = Arc::new(
            self.metrics()
                .with_routes(router.labels(), &Mirror::route_shadow_names(&config)),
        );
        Generation::build(config, router, metrics, report, Some(self))
    }

    fn build(
        config: Config,
        router: Router,
        metrics: Arc<Metrics>,
        report: &Arc<Reporter>,
        previous: Option<&Generation>,
    ) -> Generation {
        let sink = report.sink(&config, router.labels(), metrics.clone());
        let mirror = Arc::new(Mirror::new(
            &config,
            metrics.clone(),
            Some(sink),
            previous.map(|previous| previous.context().mirror().as_ref()),
        ));
        // In `config.upstreams` order: the order upstream ids index.
        let clients: Vec<BuiltClient> = config
            .upstreams
            .iter()
            .map(|(name, upstream)| {
                let settings = settings_text(upstream);
                let kept = previous.and_then(|previous| {
                    previous
                        .clients
                        .iter()
                        .find(|built| built.name == *name && built.settings == settings)
                });
                let client = match kept {
                    Some(kept) => kept.client.clone(),
                    None => Arc::new(UpstreamClient::new(name, upstream)),
                };
                BuiltClient {
                    name: name.clone(),
                    settings,
                    client,
                }
            })
            .collect();
        // Both engines use one set of idle sockets per HTTP/1 upstream.
        let pools = clients
            .iter()
            .map(|built| built.client.native_pool().cloned());
        let splices = previous.map_or_else(Arc::default, |previous| {
            previous.context().splices().clone()
        });
        let context = Arc::new(Context::new(
            &config, router, pools, mirror, metrics, splices,
        ));
        let proxy = Arc::new(Proxy::new(
            context,
            clients.iter().map(|built| built.client.clone()).collect(),
        ));
        Generation {
            number: previous.map_or(1, |previous| previous.number + 1),
            config: Arc::new(config),
            proxy,
            clients,
        }
    }

    /// The generation's number (1 at start, one more per reload).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// The config it was built from.
    pub fn config(&self) -> &Arc<Config> {
        &self.config
    }

    /// The hyper engine (the native engine is started per connection with its context).
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// What both engines read.
    pub fn context(&self) -> &Context {
        self.proxy.context()
    }

    /// Its route table of the instance's metric registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        self.context().metrics()
    }
}

/// The current generation, swapped atomically by a reload.
pub struct Current {
    generation: ArcSwap<Generation>,
    /// The current generation's number, read per request by the native engine: a plain
    /// load, where taking the generation itself would be a reference count.
    number: AtomicU64,
}

impl Current {
    /// Starts with `generation`.
    pub fn new(generation: Generation) -> Current {
        let number = generation.number;
        Current {
            generation: ArcSwap::from_pointee(generation),
            number: AtomicU64::new(number),
        }
    }

    /// The current generation, for a request (or a connection's run of requests).
    pub fn load(&self) -> Arc<Generation> {
        self.generation.load_full()
    }

    /// The current generation's number.
    pub fn number(&self) -> u64 {
        self.number.load(Ordering::Acquire)
    }

    /// Makes `next` current; returns the generation it replaces (requests under way keep
    /// theirs until they finish).
    pub fn replace(&self, next: Generation) -> Arc<Generation> {
        let number = next.number;
        let previous = self.generation.swap(Arc::new(next));
        self.number.store(number, Ordering::Release);
        previous
    }
}
