//! shadowtap: a reverse proxy that serves live traffic from a primary upstream, mirrors
//! sampled copies of it to shadow upstreams, and compares their answers with the primary's.
//! The primary (live) path never waits for the mirror: every buffer on the shadow side is
//! bounded, and every copy it drops is counted with a reason.
//!
//! The modules, from the top of the house down (docs/ARCHITECTURE.md, "A request through the
//! folders", walks one through them):
//!
//! | module | role |
//! |---|---|
//! | [`demo`] | `shadowtap demo`: built-in backends, traffic and a live report |
//! | [`verdict`] | `shadowtap verdict`: a canary's pass / fail / inconclusive from one instance's API or a fleet's Prometheus, each ratio judged by its 95 % interval |
//! | [`replay`] | `shadowtap replay`: recorded traffic sent through the proxy in-process against a shadow, compared with the recorded (or a live) primary's answers, judged by the verdict |
//! | [`ctl`] | `shadowtap ctl`: the admin API's client (reload, mirror pause/resume/percent, status) |
//! | [`app`] | the composition root: binds every socket, starts the comparison engine and the first config generation, serves until a shutdown future resolves |
//! | [`generation`] | everything built from one config (router, pools, mirror, metrics' route table, both engines' [`context::Context`]) and the slot that says which generation is current |
//! | [`reload`] | hot reload on SIGHUP and `POST /api/v1/reload`: validate, bind, build the next generation, swap it in |
//! | [`listener`] | accepts connections, chooses the engine (native HTTP/1.1, or hyper for h2c and other shapes), limits, graceful drain; on a TLS listener the handshake (counted by outcome) and certificate rotation |
//! | [`native`] | the native HTTP/1.1 server engine: plain requests (mirrored or not, over TCP or TLS) without hyper, as named phases (accept head, route, plan mirror, forward, stream answer, finish) |
//! | [`proxy`] | the hyper engine: framing checks, header rules, forwarding through the [`MirrorLayer`], streamed bodies |
//! | [`context`] | what both engines read on every request: router, route targets, HTTP/1 upstreams, mirror, metrics |
//! | [`shadowing`] | the mirror side on its own ([`Shadowing`]), for a Rust service wrapped in [`MirrorLayer`] |
//! | [`layer`] | the mirror as a tower layer ([`MirrorLayer`]): tee, sample, dispatch, compare around any service |
//! | [`shadow`] | the mirror: the per-request plan (filters, sampling, breaker), bounded queues and dispatch per shadow, pairing |
//! | [`record`] | `--record`: sampled exchanges written as HAR entries (JSON Lines) off the live path, redacted, rotated; the reader `shadowtap replay` uses |
//! | [`admin`] | `/healthz`, `/readyz`, `/metrics` and `/api/v1/...` on a separate port, with the runtime controls (mirror switches, noise pins, reload) behind a bearer token |
//! | [`report`] | comparison workers, per-route and per-endpoint statistics, redacted samples, the JSONL diff log |
//! | [`supervise`] | data-path tasks whose panics are caught, logged and counted |
//! | [`connection`] | what both engines know of a client connection, and the request not yet answered |
//! | [`grpc`] | gRPC at the live edge: which requests are calls, their `grpc-timeout` deadline, the gRPC-shaped answer (200 + `grpc-status`) to a call shadowtap fails |
//! | [`error`] | live-path errors and their single mapping to 400/404/405/408/502/504 |
//! | [`forward`] | one client per upstream (HTTP/1 through [`h1`], h2c and h2 over TLS through hyper, `auto` by ALPN) and the one [`forward::ForwardError`] |
//! | [`h1`] | the HTTP/1.1 protocol layer, upstream side: one exchange core (checkout, stale retry, head, limits, body) under the native engine's, the hyper path's and the shadows' clients |
//! | [`compare`] | pure comparison of a pair: status, headers, decoded bodies (JSON, text), latency, noise |
//! | [`headers`] | the header rulebook applied to a `HeaderMap`, and the framing and Host checks both engines share |
//! | [`router`] | host + path -> route, path -> bounded metric label (templates) and endpoint name |
//! | [`telemetry`] | metric names and handles (one Prometheus recorder per instance), log setup |
//! | [`config`] | TOML + CLI flags -> validated, typed [`config::Config`]; every problem reported at once |
//! | [`message`] | the types every stage shares: captured fields, the byte budget, the capped body tee, captured responses and pairs, a shadow's head edits |
//! | [`header_rules`] | the header rulebook: field classes (hop-by-hop, forwarded, framing, request id) and `Connection` options, applied by both engines |
//! | [`pattern`] | the path template and JSON Pointer grammars, shared by config validation and their readers |
//! | [`tls`] | PEM certificate chains and keys read for listeners and upstreams, with errors that name the file; validated listener TLS settings, SNI certificate choice over a swappable set, an X.509 expiry and subject reader; each `https://` upstream's one rustls client (`tls::client`); tokio's non-blocking socket calls over a rustls stream, for both ends (`tls::io`) |
//! | [`digest`] | length + running hash of a body too large to keep, for comparison |
//! | [`pause`] | "no progress for this long" timers for client bodies and client writes |
//! | [`splice`] | an upgraded connection's two streams joined both ways: bounded buffers, half-close, an idle timeout, bytes counted as they pass |
//! | [`splices`] | the running proxy's spliced connections, each in its own task, so shutdown gives them the grace period and closes those still open at its end |
//! | [`shutdown`] | SIGINT/SIGTERM |
//!
//! Imports run down this list, never back up: a type two stages need lives below both.

pub mod admin;
pub mod app;
pub mod compare;
pub mod config;
pub mod connection;
pub mod context;
pub mod ctl;
pub mod demo;
pub mod digest;
pub mod error;
pub mod forward;
pub mod generation;
pub mod grpc;
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
pub mod record;
pub mod reload;
pub mod replay;
pub mod report;
pub mod router;
pub mod shadow;
pub mod shadowing;
pub mod shutdown;
pub mod splice;
pub mod splices;
pub mod start;
pub mod supervise;
pub mod telemetry;
pub mod tls;
pub mod verdict;

pub use app::BoundApp;
pub use config::Config;
pub use layer::MirrorLayer;
pub use shadowing::Shadowing;
