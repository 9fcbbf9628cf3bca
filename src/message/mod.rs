//! The message types every stage shares, at the bottom of the house: a request's or
//! response's captured fields ([`fields`]), the byte budget that bounds every shadow-side
//! copy ([`budget`]), the capped body tee ([`tee`]), the captured primary answer and the
//! completed pair ([`pair`]), and the edits a shadow's head gets ([`copy`]).
//!
//! They sit below the HTTP/1 protocol layer, both engines, the mirror and the comparison,
//! so each of those can speak in them without importing another stage.

// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod budget;
pub mod copy;
pub mod fields;
pub mod pair;
pub mod tee;
