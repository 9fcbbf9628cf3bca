#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests of the chunked decoder (`src/h1/chunked.rs`), the same invariants the
//! `chunked` fuzz target checks (fuzz/README.md), run by CI on every commit:
//! - a body we encode (random data, random chunking, size spellings, extensions and
//!   trailers) decodes back to its data and trailer section, whatever the read boundaries;
//! - any bytes (valid bodies with random damage) give the same outcome in one piece as in
//!   pieces: the same error, or the same data, trailers and bytes consumed;
//! - what the decoder re-encodes for the client decodes to the same data.

use bytes::BytesMut;
use proptest::prelude::*;
use shadowtap::h1::chunked::{ChunkError, Decoder};

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Failed(ChunkError),
    Decoded {
        done: bool,
        consumed: usize,
        data: Vec<u8>,
        trailers: Vec<u8>,
    },
}

/// Feeds `body` in reads cut at `cuts` (offsets, any order), keeping unconsumed bytes as a
/// connection's read buffer does.
fn decode_split(body: &[u8], cuts: &[usize]) -> Outcome {
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    bounds.push(body.len());
    bounds.sort_unstable();
    let mut decoder = Decoder::new(false);
    let (mut data, mut trailers, mut pending) = (BytesMut::new(), Vec::new(), Vec::new());
    let (mut consumed, mut start) = (0, 0);
    for end in bounds {
        pending.extend_from_slice(&body[start..end]);
        start = end;
        if decoder.is_done() {
            continue;
        }
        match decoder.decode_data(&pending, &mut data, &mut trailers) {
            Ok(used) => {
                consumed += used;
                pending.drain(..used);
            }
            Err(error) => return Outcome::Failed(error),
        }
    }
    Outcome::Decoded {
        done: decoder.is_done(),
        consumed,
        data: data.to_vec(),
        trailers,
    }
}

/// A chunk as sent: its data, how its size is spelled, and an extension.
#[derive(Debug, Clone)]
struct Chunk {
    data: Vec<u8>,
    upper: bool,
    zeros: usize,
    ext: Option<String>,
}

fn chunk() -> impl Strategy<Value = Chunk> {
    (
        prop::collection::vec(any::<u8>(), 1..300),
        any::<bool>(),
        0..4usize,
        prop::option::of("[a-z]{1,8}(=[a-z0-9]{0,8})?"),
    )
        .prop_map(|(data, upper, zeros, ext)| Chunk {
            data,
            upper,
            zeros,
            ext,
        })
}

fn trailers() -> impl Strategy<Value = Vec<(String, String)>> {
    prop::collection::vec(("x-[a-z]{1,10}", "[ -~]{0,20}"), 0..4)
}

/// The wire form of `chunks` and `trailers`, and the trailer section the decoder reports.
fn encode(chunks: &[Chunk], trailers: &[(String, String)]) -> (Vec<u8>, Vec<u8>) {
    let mut body = Vec::new();
    for chunk in chunks {
        let size = if chunk.upper {
            format!("{:X}", chunk.data.len())
        } else {
            format!("{:x}", chunk.data.len())
        };
        body.extend_from_slice("0".repeat(chunk.zeros).as_bytes());
        body.extend_from_slice(size.as_bytes());
        if let Some(ext) = &chunk.ext {
            body.push(b';');
            body.extend_from_slice(ext.as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(&chunk.data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n");
    let mut section = Vec::new();
    for (name, value) in trailers {
        section.extend_from_slice(format!("{name}: {}\r\n", value.trim()).as_bytes());
    }
    section.extend_from_slice(b"\r\n");
    body.extend_from_slice(&section);
    (body, section)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn encoded_bodies_round_trip_whatever_the_reads(
        chunks in prop::collection::vec(chunk(), 0..6),
        trailers in trailers(),
        tail in prop::collection::vec(any::<u8>(), 0..16),
        cuts in prop::collection::vec(any::<usize>(), 0..12),
    ) {
        let (mut body, section) = encode(&chunks, &trailers);
        let len = body.len();
        // Bytes after the body (the next response) are never consumed.
        body.extend_from_slice(&tail);
        let want: Vec<u8> = chunks.iter().flat_map(|c| c.data.clone()).collect();
        let outcome = decode_split(&body, &cuts);
        prop_assert_eq!(
            outcome,
            Outcome::Decoded { done: true, consumed: len, data: want.clone(), trailers: section.clone() }
        );

        // The client's re-encoding carries the same data, and the trailers only if accepted.
        for pass_trailers in [false, true] {
            let mut out = Vec::new();
            let used = Decoder::new(pass_trailers).decode(&body, &mut out);
            prop_assert_eq!(used, Ok(len));
            let expected_trailers = if pass_trailers { section.clone() } else { b"\r\n".to_vec() };
            prop_assert_eq!(
                decode_split(&out, &[]),
                Outcome::Decoded { done: true, consumed: out.len(), data: want.clone(), trailers: expected_trailers }
            );
        }
    }

    #[test]
    fn damaged_bodies_decode_the_same_in_one_piece_and_in_pieces(
        chunks in prop::collection::vec(chunk(), 0..4),
        trailers in trailers(),
        damage in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 1..12),
    ) {
        let (mut body, _) = encode(&chunks, &trailers);
        for (at, byte) in damage {
            let at = at % body.len();
            body[at] = byte;
        }
        let whole = decode_split(&body, &[]);
        prop_assert_eq!(&whole, &decode_split(&body, &cuts));
        let bytewise: Vec<usize> = (0..body.len()).collect();
        prop_assert_eq!(&whole, &decode_split(&body, &bytewise));
    }
}

/// The limits on a size line and on the trailer section hold however the bytes arrive: a
/// line over the limit that comes in one read is refused as when it comes in small reads
/// (before, only the partial line was measured, so one large read let any length through).
#[test]
fn size_line_and_trailer_limits_do_not_depend_on_the_reads() {
    let long_ext = format!("5;{}\r\nhello\r\n0\r\n\r\n", "e".repeat(5000));
    let long_trailers = format!("0\r\nx-long: {}\r\n\r\n", "v".repeat(20 * 1024));
    for body in [long_ext, long_trailers] {
        let body = body.as_bytes();
        let whole = decode_split(body, &[]);
        let pieces = decode_split(body, &(0..body.len()).step_by(1000).collect::<Vec<_>>());
        assert!(matches!(whole, Outcome::Failed(_)), "{whole:?}");
        assert_eq!(whole, pieces);
    }
}
