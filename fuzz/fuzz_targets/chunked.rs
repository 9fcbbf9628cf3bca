//! The chunked decoder (`src/h1/chunked.rs`) on hostile bytes.
//!
//! Input: two bytes of settings (`pass_trailers`, read size), then the body bytes.
//! Invariants:
//! - it never panics;
//! - the same bytes fed in pieces (as socket reads deliver them) give the same outcome as in
//!   one piece: the same error, or the same data, trailers and bytes consumed;
//! - what it re-encodes for the client is itself a valid chunked body carrying the same data,
//!   and the trailers only when the client accepts them.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use shadowtap::h1::chunked::{ChunkError, Decoder};

/// What decoding gave: the error, or (done, consumed, data, trailers).
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

/// Feeds `body` to a data/trailer decoder in reads of `piece` bytes (0: all at once),
/// keeping unconsumed bytes as a connection's read buffer does.
fn split_decode(body: &[u8], piece: usize) -> Outcome {
    let mut decoder = Decoder::new(false);
    let mut data = BytesMut::new();
    let mut trailers = Vec::new();
    let mut pending = Vec::new();
    let mut consumed = 0;
    let pieces: Vec<&[u8]> = if piece == 0 {
        vec![body]
    } else {
        body.chunks(piece).collect()
    };
    for part in pieces {
        if decoder.is_done() {
            break;
        }
        pending.extend_from_slice(part);
        match decoder.decode_data(&pending, &mut data, &mut trailers) {
            Ok(used) => {
                assert!(used <= pending.len(), "consumed more than it was given");
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

fuzz_target!(|input: &[u8]| {
    let Some((&settings, body)) = input.split_first() else {
        return;
    };
    let pass_trailers = settings & 1 == 1;
    let piece = usize::from(settings >> 1) + 1;

    let whole = split_decode(body, 0);
    let pieces = split_decode(body, piece);
    let bytewise = split_decode(body, 1);
    assert_eq!(whole, pieces, "read size {piece} changed the outcome");
    assert_eq!(whole, bytewise, "byte-at-a-time reads changed the outcome");

    // The re-encoding decoder agrees with the data/trailer one, and its output decodes
    // to the same data.
    let mut reencoder = Decoder::new(pass_trailers);
    let mut out = Vec::new();
    let mut captured = Vec::new();
    let result = reencoder.decode_with(body, &mut out, |data| captured.extend_from_slice(data));
    match (&whole, result) {
        (Outcome::Failed(want), Err(got)) => assert_eq!(*want, got),
        (
            Outcome::Decoded {
                done,
                consumed,
                data,
                trailers,
            },
            Ok(used),
        ) => {
            assert_eq!(*consumed, used);
            assert_eq!(*done, reencoder.is_done());
            assert_eq!(data, &captured);
            if *done {
                match split_decode(&out, 0) {
                    Outcome::Decoded {
                        done: true,
                        consumed,
                        data: again,
                        trailers: trailers_again,
                    } => {
                        assert_eq!(consumed, out.len(), "re-encoded body has bytes after its end");
                        assert_eq!(&again, data, "re-encoded body carries other data");
                        let want: &[u8] = if pass_trailers { trailers } else { b"\r\n" };
                        assert_eq!(trailers_again, want, "re-encoded trailers");
                    }
                    other => panic!("re-encoded body does not decode: {other:?}"),
                }
            }
        }
        (whole, result) => panic!("decoders disagree: {whole:?} vs {result:?}"),
    }
});
