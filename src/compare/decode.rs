//! `Content-Encoding` decoding before comparison, capped so a decompression bomb costs
//! at most the cap (it is then counted and the body is not compared).
// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use crate::message::fields::Fields;
use bytes::Bytes;
use std::io::Read;

/// Why a body could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Decoded size passed the cap.
    #[error("decoded body is larger than the cap")]
    TooLarge,
    /// The encoded bytes are corrupt.
    #[error("body is not valid for its Content-Encoding")]
    Corrupt,
}

/// The `Content-Encoding` codings applied, in order, lowercased, without `identity`: two
/// answers whose lists are equal encode equal content as equal bytes.
pub fn codings(headers: &Fields) -> Vec<String> {
    headers
        .get_all("content-encoding")
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(|value| value.split(','))
        .map(|coding| coding.trim().to_ascii_lowercase())
        .filter(|coding| !coding.is_empty() && coding != "identity")
        .collect()
}

/// The body with every listed `Content-Encoding` removed (innermost last), or the bytes as
/// they are for `identity` or an encoding we do not know (then compared as opaque bytes).
pub fn decode(headers: &Fields, body: &Bytes, max_decoded: usize) -> Result<Bytes, DecodeError> {
    let codings = codings(headers);
    let mut current = body.clone();
    // Codings are listed in the order they were applied: undo them last to first.
    for coding in codings.iter().rev() {
        current = match decode_coding(coding, &current, max_decoded) {
            Some(decoded) => decoded?,
            None => return Ok(current),
        };
    }
    Ok(current)
}

/// `bytes` with one coding (`gzip`, `deflate`, `br`; lowercase) removed, within `max_decoded`;
/// `None` for a coding we do not know. gRPC's message compression names the same codings.
pub fn decode_coding(
    coding: &str,
    bytes: &[u8],
    max_decoded: usize,
) -> Option<Result<Bytes, DecodeError>> {
    let decoded = match coding {
        "gzip" | "x-gzip" => read_capped(flate2::read::MultiGzDecoder::new(bytes), max_decoded),
        "deflate" => match read_capped(flate2::read::ZlibDecoder::new(bytes), max_decoded) {
            // Some servers send raw deflate despite RFC 9110 saying zlib. Only a corrupt
            // zlib stream is retried: a zlib body over the cap is too large.
            Err(DecodeError::Corrupt) => {
                read_capped(flate2::read::DeflateDecoder::new(bytes), max_decoded)
            }
            decoded => decoded,
        },
        "br" => read_capped(
            brotli_decompressor::Decompressor::new(bytes, 8192),
            max_decoded,
        ),
        _ => return None,
    };
    Some(decoded)
}

fn read_capped(reader: impl Read, cap: usize) -> Result<Bytes, DecodeError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|_| DecodeError::Corrupt)?;
    if out.len() > cap {
        return Err(DecodeError::TooLarge);
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn headers(encoding: &'static str) -> Fields {
        Fields::from_pairs([("Content-Encoding", encoding)])
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    #[test]
    fn gzip_and_deflate_are_decoded() {
        let text = b"{\"hello\":\"world\"}";
        assert_eq!(
            decode(&headers("gzip"), &gzip(text), 1024).unwrap(),
            &text[..]
        );
        let mut zlib = ZlibEncoder::new(Vec::new(), Compression::fast());
        zlib.write_all(text).unwrap();
        let zlib = Bytes::from(zlib.finish().unwrap());
        assert_eq!(decode(&headers("deflate"), &zlib, 1024).unwrap(), &text[..]);
        assert_eq!(
            decode(&Fields::default(), &Bytes::from_static(text), 1024).unwrap(),
            &text[..]
        );
    }

    #[test]
    fn brotli_is_decoded() {
        // "hello" compressed with brotli (quality 11, window 22), produced offline.
        let compressed =
            Bytes::from_static(&[0x0b, 0x02, 0x80, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x03]);
        assert_eq!(decode(&headers("br"), &compressed, 1024).unwrap(), "hello");
    }

    #[test]
    fn a_bomb_stops_at_the_cap_and_corrupt_input_is_an_error() {
        let bomb = gzip(&vec![0u8; 10 * 1024 * 1024]);
        assert!(
            bomb.len() < 64 * 1024,
            "10 MiB of zeros compresses to {} bytes",
            bomb.len()
        );
        assert_eq!(
            decode(&headers("gzip"), &bomb, 1024 * 1024),
            Err(DecodeError::TooLarge)
        );
        assert_eq!(
            decode(&headers("gzip"), &Bytes::from_static(b"not gzip"), 1024),
            Err(DecodeError::Corrupt)
        );
    }
}
