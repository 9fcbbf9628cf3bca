//! The protobuf decoding's invariants, shared by the `protobuf` fuzz target and
//! `tests/prop_protobuf.rs` (`#[path]`), so both hold exactly the same check.
//!
//! Input: one settings byte (bit 0: decode with the test service's descriptor set rather
//! than by field number; bit 1: read the rest as a gRPC body of length-prefixed messages
//! rather than as one message; bit 2: with bit 1, the answer names `grpc-encoding: gzip`,
//! so compressed messages are decompressed within [`MAX_DECODED`]), then the bytes.

use serde_json::Value;
use shadowtap::compare::grpc::{document, split, Compression};
use shadowtap::compare::protobuf::{decode_wire, decode_with, Schema, MAX_DEPTH};
use std::sync::OnceLock;

/// tests/protos/echo.pb.
fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::from_bytes(include_bytes!("../../tests/protos/echo.pb")).expect("echo.pb")
    })
}

const PATH: &str = "/shadowtap.test.Echo/Unary";

/// The decompression cap the gRPC body is read with.
const MAX_DECODED: usize = 64 * 1024;

/// How deep a value nests.
fn depth(value: &Value) -> usize {
    match value {
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Never panics; what is decoded is bounded by the input: nesting by [`MAX_DEPTH`] (the
/// wire decoder; an array of repeated values adds a level per message), its printed size by
/// a fixed multiple of the input's (and of [`MAX_DECODED`] when messages are decompressed);
/// the frames of a gRPC body lie within it.
pub fn check(input: &[u8]) {
    let Some((&settings, bytes)) = input.split_first() else {
        return;
    };
    let with_schema = settings & 1 == 1;
    let as_body = settings & 2 == 2;
    let bound = 32 * bytes.len() + 64;
    if as_body {
        if let Ok(frames) = split(bytes) {
            let carried: usize = frames.iter().map(|(_, payload)| 5 + payload.len()).sum();
            assert!(carried <= bytes.len(), "frames past the body");
        }
        let schema = with_schema.then(schema);
        let gzip = settings & 4 == 4;
        let compression = Compression {
            encoding: gzip.then_some("gzip"),
            max_decoded: MAX_DECODED,
        };
        let bound = if gzip {
            bound + 32 * MAX_DECODED
        } else {
            bound
        };
        if let Some(value) = document(bytes, schema, PATH, compression) {
            assert!(value.to_string().len() <= bound, "decoded size unbounded");
        }
        return;
    }
    if with_schema {
        let descriptor = schema().response_type(PATH).expect("Unary's reply type");
        if let Some(value) = decode_with(&descriptor, bytes) {
            assert!(value.is_object());
        }
        return;
    }
    if let Some(value) = decode_wire(bytes) {
        assert!(value.is_object());
        assert!(depth(&value) <= 2 * MAX_DEPTH + 1, "nesting unbounded");
        let printed = value.to_string();
        assert!(
            printed.len() <= bound,
            "{} bytes printed from {}",
            printed.len(),
            bytes.len()
        );
        // Decoding is a function of the bytes.
        assert_eq!(decode_wire(bytes), Some(value));
    }
}
