//! The two pattern languages a config is written in: path templates (`/users/{id}`) and
//! JSON Pointer patterns (`/items/*/id`).
//!
//! Each grammar turns text into segments, once, at the bottom of the house: config
//! validation checks a pattern with the very parser its reader runs, and the readers
//! ([`crate::router`] matching paths, [`crate::compare::json`] matching JSON walks) import no
//! config code to do it.

pub mod pointer;
pub mod template;
