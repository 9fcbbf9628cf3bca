//! shadowtap: a reverse proxy that serves live traffic from a primary upstream and (in
//! later stages) mirrors sampled copies to shadow upstreams and compares the answers.
//!
//! The modules follow the life of a request:
//!
//! | module | role |
//! |---|---|
//! | [`config`] | TOML + CLI flags -> validated, typed [`config::Config`]; every problem reported at once |
//! | [`listener`] | accepts connections (HTTP/1.1 + h2c), limits, graceful drain |
//! | [`pause`] | "no progress for this long" timers for client bodies and client writes |
//! | [`router`] | host + path -> route, path -> bounded metric label (templates) |
//! | [`h1`] | the native HTTP/1.1 engine: plain requests (mirrored or not) without hyper, and every exchange with an HTTP/1 upstream |
//! | [`layer`] | the mirror as a tower layer ([`MirrorLayer`]): tee, sample, dispatch, compare around any service |
//! | [`shadowing`] | the mirror side on its own ([`Shadowing`]), for a Rust service wrapped in [`MirrorLayer`] |
//! | [`proxy`] | the live path under hyper: framing checks, header rules, pooled forwarding, streamed bodies, mirroring |
//! | [`digest`] | length + running hash of a body too large to keep, for comparison |
//! | [`error`] | live-path errors and their single mapping to 400/404/405/408/502/504 |
//! | [`telemetry`] | metric names and handles (one Prometheus recorder per instance), log setup |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` on a separate port |
//! | [`app`] | binds everything, serves until a shutdown future resolves |
//! | [`shutdown`] | SIGINT/SIGTERM |
//! | [`supervise`] | data-path tasks whose panics are caught, logged and counted |
//! | [`demo`] | `shadowtap demo`: built-in backends, traffic and a live report |

pub mod admin;
pub mod app;
pub mod compare;
pub mod config;
pub mod demo;
pub mod digest;
pub mod error;
pub mod h1;
pub mod layer;
pub mod listener;
pub mod pause;
pub mod proxy;
pub mod report;
pub mod router;
pub mod shadow;
pub mod shadowing;
pub mod shutdown;
pub mod supervise;
pub mod tee;
pub mod telemetry;

pub use app::BoundApp;
pub use config::Config;
pub use layer::MirrorLayer;
pub use shadowing::Shadowing;
