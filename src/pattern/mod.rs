//! The two pattern languages a config is written in: path templates (`/users/{id}`) and
//! JSON Pointer patterns (`/items/*/id`).
//!
//! They sit at the bottom of the house so that config validation parses a pattern with the
//! very code its reader runs, and imports no reader to do it: the router matches paths with
//! a [`template::PathTemplate`] that validation made, and [`crate::compare::json`] builds its
//! pointer patterns from [`pointer::parse`].

pub mod pointer;
pub mod template;
