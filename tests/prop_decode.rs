#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests of the body decoders before comparison (`src/compare/decode.rs`), the
//! invariants the `decode` fuzz target checks (fuzz/README.md), run by CI on every commit:
//! the decompression-bomb cap is always honoured (a decoded body is never larger than the
//! cap, whatever the bytes), and what we encode decodes back, or is refused as too large.

use bytes::Bytes;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
use flate2::Compression;
use proptest::prelude::*;
use shadowtap::compare::decode::{decode, DecodeError};
use shadowtap::shadow::fields::Fields;
use std::io::Write;

/// 16 MiB of zero bytes as brotli (quality 11): 27 bytes, produced offline with the
/// reference encoder's Python binding (no brotli encoder is a dependency here).
const BR_BOMB_16_MIB: [u8; 27] = [
    0xcb, 0xff, 0xff, 0x3f, 0xf8, 0x27, 0x00, 0xe2, 0xb1, 0x40, 0x20, 0xf7, 0xfe, 0x8f, 0xff, 0xff,
    0x7f, 0xf0, 0x4f, 0x00, 0xc4, 0x61, 0x11, 0x80, 0xee, 0xfd, 0xdf,
];

fn encoded(coding: usize, data: &[u8]) -> (&'static str, Vec<u8>) {
    let result = match coding {
        0 => {
            let mut e = GzEncoder::new(Vec::new(), Compression::fast());
            e.write_all(data)
                .map(|_| e)
                .and_then(|e| e.finish())
                .map(|b| ("gzip", b))
        }
        1 => {
            let mut e = ZlibEncoder::new(Vec::new(), Compression::fast());
            e.write_all(data)
                .map(|_| e)
                .and_then(|e| e.finish())
                .map(|b| ("deflate", b))
        }
        _ => {
            let mut e = DeflateEncoder::new(Vec::new(), Compression::fast());
            e.write_all(data)
                .map(|_| e)
                .and_then(|e| e.finish())
                .map(|b| ("deflate", b))
        }
    };
    result.unwrap()
}

fn headers(coding: &str) -> Fields {
    Fields::from_pairs([("content-encoding", coding)])
}

/// Data that is sometimes random, sometimes one byte repeated many times (a bomb).
fn data() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..2048),
        (any::<u8>(), 0..(1usize << 20)).prop_map(|(byte, len)| vec![byte; len]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn what_we_encode_decodes_back_or_is_too_large(
        data in data(),
        coding in 0..3usize,
        cap in prop_oneof![0..64usize, 0..(2usize << 20)],
    ) {
        let (name, body) = encoded(coding, &data);
        match decode(&headers(name), &Bytes::from(body), cap) {
            Ok(decoded) => prop_assert!(decoded.len() <= cap && decoded[..] == data[..]),
            Err(DecodeError::TooLarge) => prop_assert!(data.len() > cap),
            Err(DecodeError::Corrupt) => prop_assert!(false, "{} called corrupt", name),
        }
    }

    #[test]
    fn no_bytes_decode_past_the_cap(
        body in prop::collection::vec(any::<u8>(), 0..512),
        coding in prop::sample::select(vec!["gzip", "deflate", "br", "gzip, br", "deflate, gzip"]),
        cap in 0..4096usize,
    ) {
        if let Ok(decoded) = decode(&headers(coding), &Bytes::from(body), cap) {
            prop_assert!(decoded.len() <= cap);
        }
    }

    #[test]
    fn a_brotli_bomb_stops_at_any_cap(cap in prop_oneof![0..64usize, 0..(4usize << 20)]) {
        let bomb = Bytes::from_static(&BR_BOMB_16_MIB);
        prop_assert_eq!(decode(&headers("br"), &bomb, cap), Err(DecodeError::TooLarge));
    }
}

#[test]
fn the_brotli_bomb_fixture_is_16_mib_of_zeros() {
    let bomb = Bytes::from_static(&BR_BOMB_16_MIB);
    let decoded = decode(&headers("br"), &bomb, 16 << 20).unwrap();
    assert_eq!(decoded.len(), 16 << 20);
    assert!(decoded.iter().all(|b| *b == 0));
}

/// A zlib (`deflate`) body over the cap is too large, not corrupt: the raw-deflate retry
/// used to replace the zlib decoder's TooLarge with its own Corrupt.
#[test]
fn a_zlib_body_over_the_cap_is_too_large_not_corrupt() {
    let (name, body) = encoded(1, &[7u8; 4096]);
    assert_eq!(
        decode(&headers(name), &Bytes::from(body), 1024),
        Err(DecodeError::TooLarge)
    );
}
