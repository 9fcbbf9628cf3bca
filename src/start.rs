//! Why the proxy could not start: one error for every step of binding and setting up
//! (listeners, TLS, the admin port, the comparison engine), shared by the app and the
//! listener set a reload prepares with.

use crate::report::ReportError;
use std::net::SocketAddr;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener address could not be bound (in use, no permission).
    #[error("cannot listen on {address} ({what})")]
    Bind {
        /// The address from the config.
        address: SocketAddr,
        /// `listeners[0]` or `admin`.
        what: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A TLS listener's certificates or settings could not be used.
    #[error("cannot set up TLS on {address} ({what})")]
    Tls {
        /// The listener's bound address.
        address: SocketAddr,
        /// `listeners[0]`.
        what: String,
        /// Which file, and why.
        #[source]
        source: crate::tls::certificates::TlsSetupError,
    },
    /// The admin port's token file named in the config cannot be read.
    #[error("cannot start the admin port: {0}")]
    AdminToken(String),
    /// The comparison engine could not start (diff log, worker threads).
    #[error("cannot start the comparison engine")]
    Report(#[from] ReportError),
}
