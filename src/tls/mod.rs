//! TLS: the PEM files that listeners and upstreams name, read into rustls' types.
//!
//! Listener TLS (certificates chosen by SNI, rotation, client certificates) and upstream TLS
//! (trust roots, client certificates for meshes) both start from files an operator or
//! cert-manager writes; this module reads them once, with errors that name the file and say
//! what was wrong, so `check` and a reload report the same reason.

pub mod certificates;
pub mod pem;
pub mod reload;
pub mod server;
pub mod x509;

pub use server::{Established, TlsListener, TlsSetupError};
