//! The native engine's request framing against hyper's, on the same bytes (issue 25): a head
//! the native engine serves must be read by hyper with the same method, target and body;
//! the native head parser's own invariants hold too. The check is
//! `request_framing_check.rs`, shared with `tests/prop_request_framing.rs`.
//!
//! Input: the bytes a client sent.
#![no_main]

#[path = "request_framing_check.rs"]
mod request_framing_check;

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// One runtime for every input: hyper's server needs one, and building it per input would
/// cost more than the check.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fuzz_target!(|bytes: &[u8]| {
    runtime().block_on(request_framing_check::check(bytes));
});
