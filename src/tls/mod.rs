//! TLS: the PEM files that listeners and upstreams name, read into rustls' types.
//!
//! Listener TLS (certificates chosen by SNI, rotation, client certificates) and upstream TLS
//! (trust roots, client certificates for meshes) both start from files an operator or
//! cert-manager writes; this module reads them once, with errors that name the file and say
//! what was wrong, so `check` and a reload report the same reason. It also holds what both
//! the config and the listener use: the validated settings, the SNI choice over a swappable
//! set, and the two X.509 fields read by hand; and `client`, which builds an upstream's one
//! rustls client from them and does its handshakes; and `io`, tokio's non-blocking socket
//! calls over a rustls stream, which both ends' HTTP/1 code uses; and `endpoint`, the one
//! `http(s)://` client of the command-line tools (`ctl`, `verdict`), with their `--cacert`
//! and token rules. The listener's handshake and rotation live in `listener/`, above the
//! config and the metrics.

pub mod certificates;
pub mod client;
pub mod endpoint;
pub mod io;
pub mod pem;
pub mod settings;
pub mod x509;
