//! Telemetry: metrics (names, handles, rendering) and log setup.

pub mod logging;
pub mod metrics;

pub use self::metrics::{
    ErrorReason, Metrics, MirrorOutcome, PairResult, RouteMetrics, ShadowGauges,
};
