//! gRPC answers compared: `grpc-status` as a status, and the messages of the call
//! structurally, each decoded by [`super::protobuf`] into the tree the JSON diff walks.
//!
//! A captured gRPC answer's fields hold its trailers too (the capture appends them), so the
//! status is found whether the server sent it in the trailers or, in the Trailers-Only form,
//! in the head; the other trailers are compared as headers, under the same ignore list.
//!
//! A call that answered one message on each side is compared as that message (`/item/price`);
//! otherwise as the array of its messages in order (`/1/item/price`), so a different count is
//! a `length_changed` difference at the root.

// Decodes untrusted bytes: no indexing that can panic.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use super::decode::{decode_coding, DecodeError};
use super::protobuf::{self, Schema};
use crate::digest::BodyDigest;
use crate::message::fields::Fields;
use serde_json::Value;

/// The field that carries a call's status.
pub const STATUS_FIELD: &str = "grpc-status";

/// Whether an answer is a gRPC one (`content-type: application/grpc…`).
pub fn is_grpc(headers: &Fields) -> bool {
    headers.get("content-type").is_some_and(|value| {
        value
            .get(..16)
            .is_some_and(|head| head.eq_ignore_ascii_case(b"application/grpc"))
    })
}

/// A call's `grpc-status` with its name (`14 UNAVAILABLE`); `missing` when it has none.
pub fn status_text(fields: &Fields) -> String {
    let Some(code) = fields
        .get(STATUS_FIELD)
        .and_then(|value| std::str::from_utf8(value).ok())
    else {
        return "missing".to_string();
    };
    match code.trim().parse::<u8>().ok().and_then(code_name) {
        Some(name) => format!("{} {name}", code.trim()),
        None => code.to_string(),
    }
}

fn code_name(code: u8) -> Option<&'static str> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES.get(usize::from(code)).copied()
}

/// Why a body is not a sequence of gRPC messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// The body ends inside a message's 5-byte prefix or its payload.
    #[error("a gRPC message is cut short")]
    Truncated,
}

/// The payloads of a body's length-prefixed messages (flag byte, 4-byte big-endian length,
/// payload). A compressed payload (flag 1) is returned as is, marked; grpc-web trailer
/// frames (flag bit 0x80) are skipped.
pub fn split(mut body: &[u8]) -> Result<Vec<(bool, &[u8])>, FramingError> {
    let mut messages = Vec::new();
    while !body.is_empty() {
        let (prefix, rest) = body
            .split_first_chunk::<5>()
            .ok_or(FramingError::Truncated)?;
        let [flag, length @ ..] = *prefix;
        let length = usize::try_from(u32::from_be_bytes(length)).unwrap_or(usize::MAX);
        let (payload, rest) = rest
            .split_at_checked(length)
            .ok_or(FramingError::Truncated)?;
        body = rest;
        if flag & 0x80 == 0 {
            messages.push((flag & 1 == 1, payload));
        }
    }
    Ok(messages)
}

/// How a call's compressed messages are read: the `grpc-encoding` its answer names, and the
/// bytes all its messages may decompress to together (`compare.max_decoded_bytes`), so a
/// compression bomb costs at most that.
#[derive(Debug, Clone, Copy)]
pub struct Compression<'a> {
    /// The answer's `grpc-encoding` (lowercase expected; `None` when it names none).
    pub encoding: Option<&'a str>,
    /// The cap on the decompressed bytes of all the call's messages.
    pub max_decoded: usize,
}

impl<'a> Compression<'a> {
    /// The compression an answer's head names.
    pub fn of(headers: &'a Fields, max_decoded: usize) -> Compression<'a> {
        let encoding = headers
            .get("grpc-encoding")
            .and_then(|value| std::str::from_utf8(value).ok())
            .map(str::trim);
        Compression {
            encoding,
            max_decoded,
        }
    }
}

/// A call's answer as one value: its only message, or the array of its messages. A
/// compressed message is decompressed by the answer's `grpc-encoding` (gzip, deflate) and
/// decoded like any; one in an encoding we do not read, or past the cap, stands as its
/// length and hash. `None` when the framing is broken or a message does not decode.
pub fn document(
    body: &[u8],
    schema: Option<&Schema>,
    path: &str,
    compression: Compression<'_>,
) -> Option<Value> {
    let messages = split(body).ok()?;
    let descriptor = schema.and_then(|schema| schema.response_type(path));
    let decode = |payload: &[u8]| match &descriptor {
        Some(descriptor) => protobuf::decode_with(descriptor, payload),
        None => protobuf::decode_wire(payload),
    };
    let mut budget = compression.max_decoded;
    let mut values = Vec::with_capacity(messages.len());
    for (compressed, payload) in messages {
        if !compressed {
            values.push(decode(payload)?);
            continue;
        }
        let encoding = compression.encoding.unwrap_or("identity");
        let value = match decode_coding(&encoding.to_ascii_lowercase(), payload, budget) {
            Some(Ok(decompressed)) => {
                budget = budget.saturating_sub(decompressed.len());
                decode(&decompressed)?
            }
            Some(Err(DecodeError::Corrupt)) => return None,
            Some(Err(DecodeError::TooLarge)) => Value::String(format!(
                "compressed message ({encoding}) decompressing past max_decoded_bytes, {}",
                BodyDigest::of(payload)
            )),
            None => Value::String(format!(
                "compressed message ({encoding}), {}",
                BodyDigest::of(payload)
            )),
        };
        values.push(value);
    }
    match <[Value; 1]>::try_from(values) {
        Ok([only]) => Some(only),
        Err(values) => Some(Value::Array(values)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: Compression<'static> = Compression {
        encoding: None,
        max_decoded: 1 << 20,
    };

    fn frame(flag: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![flag];
        out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn frames_split_and_cut_ones_are_refused() {
        let mut body = frame(0, b"\x08\x01");
        body.extend(frame(0x80, b"grpc-status: 0\r\n"));
        body.extend(frame(1, b"zz"));
        assert_eq!(
            split(&body).unwrap(),
            vec![(false, &b"\x08\x01"[..]), (true, &b"zz"[..])]
        );
        assert_eq!(split(&body[..body.len() - 1]), Err(FramingError::Truncated));
        assert_eq!(split(&[0, 0, 0]), Err(FramingError::Truncated));
        assert_eq!(split(b""), Ok(vec![]));
    }

    #[test]
    fn one_message_is_the_document_and_several_an_array() {
        let one = frame(0, b"\x08\x05");
        assert_eq!(
            document(&one, None, "/a.B/C", PLAIN),
            Some(serde_json::json!({"1": 5}))
        );
        let mut two = one.clone();
        two.extend(frame(0, b"\x08\x06"));
        assert_eq!(
            document(&two, None, "/a.B/C", PLAIN),
            Some(serde_json::json!([{"1": 5}, {"1": 6}]))
        );
        assert_eq!(
            document(b"", None, "/a.B/C", PLAIN),
            Some(serde_json::json!([]))
        );
        assert_eq!(document(&frame(0, b"\x07"), None, "/a.B/C", PLAIN), None);
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    /// Compressed messages read by the answer's grpc-encoding: decoded like plain ones when
    /// it is one we read, as length and hash when not or past the cap, and a corrupt one
    /// makes the answer undecodable.
    #[test]
    fn compressed_messages_are_decompressed_within_the_cap() {
        let gzipped = |max_decoded| Compression {
            encoding: Some("gzip"),
            max_decoded,
        };
        let body = [frame(1, &gzip(b"\x08\x05")), frame(0, b"\x08\x06")].concat();
        assert_eq!(
            document(&body, None, "/a.B/C", gzipped(1024)),
            Some(serde_json::json!([{"1": 5}, {"1": 6}]))
        );
        let zlib = {
            use std::io::Write;
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            encoder.write_all(b"\x08\x07").unwrap();
            encoder.finish().unwrap()
        };
        let deflate = Compression {
            encoding: Some("Deflate"),
            max_decoded: 1024,
        };
        assert_eq!(
            document(&frame(1, &zlib), None, "/a.B/C", deflate),
            Some(serde_json::json!({"1": 7}))
        );
        // The cap counts every message of the call: the second passes it.
        let big = [0x0a, 0x7f]
            .into_iter()
            .chain([b'x'; 127])
            .collect::<Vec<u8>>();
        let two = [frame(1, &gzip(&big)), frame(1, &gzip(&big))].concat();
        let Some(serde_json::Value::Array(values)) = document(&two, None, "/a.B/C", gzipped(200))
        else {
            panic!("two messages")
        };
        assert!(values[0].is_object(), "{values:?}");
        assert!(
            values[1]
                .as_str()
                .is_some_and(|text| text.contains("past max_decoded_bytes")),
            "{values:?}"
        );
        for unread in [Some("snappy"), Some("identity"), None] {
            let compression = Compression {
                encoding: unread,
                max_decoded: 1024,
            };
            let value = document(&frame(1, &gzip(b"\x08\x05")), None, "/a.B/C", compression);
            assert!(
                value
                    .as_ref()
                    .and_then(|value| value.as_str())
                    .is_some_and(|text| text.starts_with("compressed message (")),
                "{unread:?}: {value:?}"
            );
        }
        assert_eq!(
            document(&frame(1, b"not gzip"), None, "/a.B/C", gzipped(1024)),
            None
        );
    }

    #[test]
    fn statuses_are_named() {
        let fields = |v: &'static str| Fields::from_pairs([("grpc-status", v)]);
        assert_eq!(status_text(&fields("14")), "14 UNAVAILABLE");
        assert_eq!(status_text(&fields("0")), "0 OK");
        assert_eq!(status_text(&fields("99")), "99");
        assert_eq!(status_text(&Fields::default()), "missing");
    }
}
