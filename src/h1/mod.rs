//! The HTTP/1.1 protocol layer, the upstream side: one exchange core and the three clients
//! built on it.
//!
//! Everything that speaks HTTP/1.1 to an upstream lives here, below both engines and the
//! mirror, in the spirit of pingora's `protocols/http/v1`: the pooled connections ([`pool`],
//! each a plain or TLS [`stream`]),
//! response-head parsing ([`response`]), chunked framing ([`chunked`]), the request-body
//! upload (`upload`) and one exchange core ([`exchange`]: checkout, the stale-connection
//! retry rule, head write and read, limits, body, and one error type). Its three callers
//! plug in only what differs: the native engine ([`crate::native`]) writes the client's
//! bytes, the hyper path's client ([`upstream`]) a `HeaderMap`, and the shadows' client
//! ([`client`]) captured fields. None of it knows about routes or either server engine.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod chunked;
pub mod client;
pub mod exchange;
pub mod pool;
pub mod response;
pub mod stream;
pub(crate) mod upload;
pub mod upstream;
