//! shadowtap: a reverse proxy that serves live traffic from a primary upstream, mirrors
//! sampled copies of it to shadow upstreams, and compares their answers with the primary's.
//! The primary (live) path never waits for the mirror: every buffer on the shadow side is
//! bounded, and every copy it drops is counted with a reason.
//!
//! The modules follow the life of a request (docs/ARCHITECTURE.md, "A request through the
//! folders", walks one through them):
//!
//! | module | role |
//! |---|---|
//! | [`config`] | TOML + CLI flags -> validated, typed [`config::Config`]; every problem reported at once |
//! | [`app`] | binds every socket, builds the shared parts, serves until a shutdown future resolves |
//! | [`listener`] | accepts connections, chooses the engine (native HTTP/1.1, or hyper for h2c and other shapes), limits, graceful drain |
//! | [`h1`] | the native HTTP/1.1 engine: plain requests (mirrored or not) without hyper, and every exchange with an HTTP/1 upstream (live, hyper path, shadows) |
//! | [`proxy`] | the live path under hyper: framing checks, header rules, forwarding, streamed bodies |
//! | [`router`] | host + path -> route, path -> bounded metric label (templates) and endpoint name |
//! | [`pause`] | "no progress for this long" timers for client bodies and client writes |
//! | [`pattern`] | the path template and JSON Pointer grammars, shared by config validation and their readers |
//! | [`header_rules`] | the header rulebook: field classes (hop-by-hop, forwarded, framing, request id) and `Connection` options, applied by both engines |
//! | [`error`] | live-path errors and their single mapping to 400/404/405/408/502/504 |
//! | [`tee`] | a capped copy of a body as it streams past, for the mirror; the live body is never delayed |
//! | [`digest`] | length + running hash of a body too large to keep, for comparison |
//! | [`shadow`] | the mirror: the per-request plan (filters, sampling, breaker), the shadow's copy, bounded queues and dispatch per shadow, the byte budget, pairing |
//! | [`layer`] | the mirror as a tower layer ([`MirrorLayer`]): tee, sample, dispatch, compare around any service |
//! | [`shadowing`] | the mirror side on its own ([`Shadowing`]), for a Rust service wrapped in [`MirrorLayer`] |
//! | [`compare`] | pure comparison of a pair: status, headers, decoded bodies (JSON, text), latency, noise |
//! | [`report`] | comparison workers, per-route and per-endpoint statistics, redacted samples, the JSONL diff log |
//! | [`telemetry`] | metric names and handles (one Prometheus recorder per instance), log setup |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` and `/api/v1/...` on a separate port |
//! | [`supervise`] | data-path tasks whose panics are caught, logged and counted |
//! | [`shutdown`] | SIGINT/SIGTERM |
//! | [`demo`] | `shadowtap demo`: built-in backends, traffic and a live report |

pub mod admin;
pub mod app;
pub mod compare;
pub mod config;
pub mod connection;
pub mod context;
pub mod demo;
pub mod digest;
pub mod error;
pub mod forward;
pub mod h1;
pub mod header_rules;
pub mod headers;
pub mod layer;
pub mod listener;
pub mod message;
pub mod native;
pub mod pattern;
pub mod pause;
pub mod proxy;
pub mod report;
pub mod router;
pub mod shadow;
pub mod shadowing;
pub mod shutdown;
pub mod supervise;
pub mod telemetry;

pub use app::BoundApp;
pub use config::Config;
pub use layer::MirrorLayer;
pub use shadowing::Shadowing;
