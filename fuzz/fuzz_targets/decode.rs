//! The `Content-Encoding` decoders before comparison (`src/compare/decode.rs`).
//!
//! Input: one byte choosing the coding list and the cap, then the encoded body.
//! Invariants: it never panics; a decoded body is never larger than the cap (a bomb costs at
//! most the cap); and a body we encode ourselves decodes back to what was encoded (or is
//! refused as too large when it is).
#![no_main]

use bytes::Bytes;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;
use libfuzzer_sys::fuzz_target;
use shadowtap::compare::decode::{decode, DecodeError};
use shadowtap::shadow::fields::Fields;
use std::io::Write;

const CODINGS: [&str; 8] = [
    "gzip",
    "deflate",
    "br",
    "x-gzip",
    "gzip, gzip",
    "br, identity",
    "deflate, gzip",
    "identity",
];
const CAPS: [usize; 4] = [0, 64, 4096, 1 << 20];

fuzz_target!(|input: &[u8]| {
    let Some((&settings, body)) = input.split_first() else {
        return;
    };
    let coding = CODINGS[usize::from(settings) % CODINGS.len()];
    let cap = CAPS[usize::from(settings >> 3) % CAPS.len()];
    let headers = Fields::from_pairs([("content-encoding", coding)]);

    // Arbitrary bytes as an encoded body: any result, but never more than the cap.
    if let Ok(decoded) = decode(&headers, &Bytes::copy_from_slice(body), cap) {
        let identity = coding == "identity";
        assert!(
            identity || decoded.len() <= cap,
            "{coding}: {} bytes decoded past a cap of {cap}",
            decoded.len()
        );
    }

    // The body as plain data, encoded by flate2: decoding gives it back, or TooLarge.
    let (name, encoded) = match (settings >> 5) & 3 {
        0 => {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            let _ = e.write_all(body);
            ("gzip", e.finish())
        }
        1 => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::fast());
            let _ = e.write_all(body);
            ("deflate", e.finish())
        }
        _ => {
            // Raw deflate, which some servers send for `deflate`.
            let mut e = DeflateEncoder::new(Vec::new(), Compression::fast());
            let _ = e.write_all(body);
            ("deflate", e.finish())
        }
    };
    let Ok(encoded) = encoded else { return };
    let headers = Fields::from_pairs([("content-encoding", name)]);
    match decode(&headers, &Bytes::from(encoded), cap) {
        Ok(decoded) => assert_eq!(&decoded[..], body, "{name} did not round-trip"),
        Err(DecodeError::TooLarge) => assert!(body.len() > cap, "{name}: TooLarge under the cap"),
        Err(DecodeError::Corrupt) => panic!("{name}: our own encoding called corrupt"),
    }
});
