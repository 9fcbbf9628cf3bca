#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
//! Property test of the protobuf decoding gRPC comparison runs on untrusted answers (issue 25),
//! the invariant the `protobuf` fuzz target checks (fuzz/README.md), run by CI on every
//! commit: never panics, output bounded by the input. The check is one file shared with
//! the fuzz target. Besides it, a message of distinct scalar fields decodes to exactly
//! those fields by number.

#[path = "../fuzz/fuzz_targets/protobuf_check.rs"]
mod protobuf_check;

use proptest::prelude::*;
use protobuf_check::check;
use serde_json::{json, Map, Value};
use shadowtap::compare::protobuf::decode_wire;

fn varint(mut value: u64, out: &mut Vec<u8>) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// A well-formed message: fields of every wire type, nested messages inside.
fn message(depth: u32) -> BoxedStrategy<Vec<u8>> {
    let leaf = prop_oneof![
        (1u64..40, any::<u64>()).prop_map(|(n, v)| {
            let mut out = Vec::new();
            varint(n << 3, &mut out);
            varint(v, &mut out);
            out
        }),
        (1u64..40, any::<u64>()).prop_map(|(n, v)| {
            let mut out = Vec::new();
            varint(n << 3 | 1, &mut out);
            out.extend_from_slice(&v.to_le_bytes());
            out
        }),
        (1u64..40, any::<u32>()).prop_map(|(n, v)| {
            let mut out = Vec::new();
            varint(n << 3 | 5, &mut out);
            out.extend_from_slice(&v.to_le_bytes());
            out
        }),
        (1u64..40, prop::collection::vec(any::<u8>(), 0..12)).prop_map(|(n, v)| {
            let mut out = Vec::new();
            varint(n << 3 | 2, &mut out);
            varint(v.len() as u64, &mut out);
            out.extend_from_slice(&v);
            out
        }),
    ];
    let fields = prop::collection::vec(leaf, 0..6).prop_map(|fields| fields.concat());
    if depth == 0 {
        return fields.boxed();
    }
    (
        fields,
        prop::collection::vec((1u64..40, message(depth - 1)), 0..3),
    )
        .prop_map(|(mut out, nested)| {
            for (n, inner) in nested {
                varint(n << 3 | 2, &mut out);
                varint(inner.len() as u64, &mut out);
                out.extend_from_slice(&inner);
            }
            out
        })
        .boxed()
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_hold_the_check(settings in any::<u8>(), bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut input = vec![settings];
        input.extend(bytes);
        check(&input);
    }

    #[test]
    fn messages_and_their_near_misses_hold_the_check(
        settings in any::<u8>(),
        message in message(3),
        cut in any::<prop::sample::Index>(),
        flip in any::<(prop::sample::Index, u8)>(),
    ) {
        for bytes in [
            message.clone(),
            message[..cut.index(message.len() + 1)].to_vec(),
            {
                let mut flipped = message.clone();
                if !flipped.is_empty() {
                    let at = flip.0.index(flipped.len());
                    flipped[at] ^= flip.1;
                }
                flipped
            },
            [frame(&message), frame(&message)].concat(),
        ] {
            let mut input = vec![settings];
            input.extend(bytes);
            check(&input);
        }
        // A well-formed message always decodes.
        prop_assert!(decode_wire(&message).is_some());
    }

    #[test]
    fn distinct_varint_fields_decode_to_themselves(values in prop::collection::btree_map(1u64..1000, any::<u64>(), 0..20)) {
        let mut bytes = Vec::new();
        let mut expected = Map::new();
        for (number, value) in &values {
            varint(number << 3, &mut bytes);
            varint(*value, &mut bytes);
            expected.insert(number.to_string(), json!(value));
        }
        prop_assert_eq!(decode_wire(&bytes), Some(Value::Object(expected)));
    }
}
