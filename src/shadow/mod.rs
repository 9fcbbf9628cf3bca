//! Mirroring: sampled copies of live requests sent to shadow upstreams, off the live path.

pub mod breaker;
pub mod sample;
