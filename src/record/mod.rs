//! Recording live traffic for `shadowtap replay`: sampled exchanges (the request as the
//! primary got it, the primary's answer, its timing) written as HAR 1.2 entries, one per
//! line, off the live path, redacted before they are written, rotated within a disk cap.
//!
//! | module | role |
//! |---|---|
//! | [`har`] | the format: HAR 1.2 `entry` serde types, body and time encodings |
//! | [`read`] | reading recordings (JSON Lines, or a browser's `.har`), bad lines skipped and reported |
//! | [`entry`] | a captured exchange made into a redacted entry |
//! | [`recorder`] | sampling, the bounded hand-off and the writer thread |
// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod entry;
pub mod har;
pub mod read;
pub mod recorder;

pub use har::Entry;
pub use read::{read_files, Loaded, Skipped};
pub use recorder::{Dropped, Recorder};
