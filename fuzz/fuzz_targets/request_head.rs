//! The native engine's request head parser (`src/native/request.rs`, `framing`: the code
//! `prepare` runs before routing), on its own and fast: it never panics; a head it serves
//! lies within the bytes, and every shorter prefix of it is partial (a head is never served
//! before its end arrived, nor handed over halfway). `request_framing` holds the same
//! decisions to hyper's reading.
//!
//! Input: the bytes a client sent.
#![no_main]

#[path = "request_framing_check.rs"]
mod request_framing_check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    request_framing_check::check_head(bytes);
});
