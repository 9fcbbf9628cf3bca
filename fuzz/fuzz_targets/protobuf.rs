//! The protobuf decoding gRPC comparison runs on untrusted answers (`src/compare/protobuf.rs`,
//! `src/compare/grpc.rs`): never panics, output bounded by the input. The check is
//! `protobuf_check.rs`, shared with `tests/prop_protobuf.rs`.
#![no_main]

#[path = "protobuf_check.rs"]
mod protobuf_check;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| protobuf_check::check(input));
