//! Telemetry: metrics (names, handles, rendering), reading them back from the Prometheus
//! text format, and log setup.

pub mod exposition;
pub mod logging;
pub mod metrics;

pub use self::metrics::{
    ErrorReason, Metrics, MirrorOutcome, PairResult, RouteMetrics, ShadowGauges,
};
