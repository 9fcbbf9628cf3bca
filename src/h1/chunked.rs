//! The chunked transfer coding (RFC 9112 §7.1) of response bodies on the native path.
//!
//! An upstream's chunked body is decoded strictly and encoded again for the client, so what
//! the client parses is exactly what the proxy parsed: chunk extensions are dropped, sizes
//! are re-written, and trailers are passed on only to a client that sent `TE: trailers`.
//! A body delimited by the upstream closing the connection is re-framed the same way, so
//! the client connection survives it. For a client hyper serves, the same decoder hands the
//! data and the trailer section over separately instead ([`Decoder::decode_data`]).

use bytes::BytesMut;

/// Longest chunk-size line (with extensions) accepted.
const MAX_SIZE_LINE: usize = 4096;
/// Largest trailer section accepted.
const MAX_TRAILERS: usize = 16 * 1024;
/// Trailer fields accepted.
const MAX_TRAILER_FIELDS: usize = 64;

/// Why a chunked body is refused (the client connection is then aborted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A chunk-size line that is not hex, too long, or overflows.
    #[error("invalid chunk size line")]
    Size,
    /// Chunk data not followed by CRLF.
    #[error("chunk data not terminated by CRLF")]
    DataEnd,
    /// A malformed or oversized trailer section.
    #[error("invalid trailer section")]
    Trailers,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
    Done,
}

/// Decodes one chunked body incrementally, appending the client's encoding to an output.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    pass_trailers: bool,
}

impl Decoder {
    /// A decoder at the start of a body; `pass_trailers` when the client accepts trailers.
    pub fn new(pass_trailers: bool) -> Decoder {
        Decoder {
            state: State::Size,
            pass_trailers,
        }
    }

    /// The last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes what it can of `input`, appending the re-encoded body to `out`; returns the
    /// bytes consumed. Bytes left over are an incomplete line: call again with more after them.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        self.decode_with(input, out, |_| {})
    }

    /// As [`Decoder::decode`], also handing each piece of decoded data to `on_data` (the
    /// capture of a mirrored request's primary response).
    pub fn decode_with(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        on_data: impl FnMut(&[u8]),
    ) -> Result<usize, ChunkError> {
        let pass_trailers = self.pass_trailers;
        self.run(
            input,
            &mut Reencode {
                out,
                on_data,
                pass_trailers,
            },
        )
    }

    /// Consumes what it can of `input`, appending the decoded data to `data` and, at the
    /// last chunk, the raw trailer section (field lines and the final CRLF) to `trailers`:
    /// for a reader that hands the body on as frames rather than re-encoding it.
    pub fn decode_data(
        &mut self,
        input: &[u8],
        data: &mut BytesMut,
        trailers: &mut Vec<u8>,
    ) -> Result<usize, ChunkError> {
        self.run(input, &mut Split { data, trailers })
    }

    fn run(&mut self, input: &[u8], sink: &mut impl Sink) -> Result<usize, ChunkError> {
        // What is not consumed yet: always a suffix of `input`, shortened by splitting.
        let mut rest = input;
        loop {
            match self.state {
                State::Done => break,
                State::Size => match httparse::parse_chunk_size(rest) {
                    // The limit holds whether the line arrives whole or in pieces.
                    Ok(httparse::Status::Complete((len, size))) if len <= MAX_SIZE_LINE => {
                        rest = rest.get(len..).ok_or(ChunkError::Size)?;
                        self.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                    }
                    Ok(httparse::Status::Partial) if rest.len() <= MAX_SIZE_LINE => break,
                    _ => return Err(ChunkError::Size),
                },
                State::Data(left) => {
                    if rest.is_empty() {
                        break;
                    }
                    let data = prefix(rest, left);
                    sink.data(data);
                    rest = rest.get(data.len()..).unwrap_or_default();
                    let left = left.saturating_sub(data.len() as u64);
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => match rest.strip_prefix(b"\r\n") {
                    Some(after) => {
                        rest = after;
                        self.state = State::Size;
                    }
                    None if rest.is_empty() || rest == b"\r" => break,
                    None => return Err(ChunkError::DataEnd),
                },
                State::Trailers => {
                    let mut fields = [httparse::EMPTY_HEADER; MAX_TRAILER_FIELDS];
                    match httparse::parse_headers(rest, &mut fields) {
                        Ok(httparse::Status::Complete((len, _))) if len <= MAX_TRAILERS => {
                            let (section, after) =
                                rest.split_at_checked(len).ok_or(ChunkError::Trailers)?;
                            sink.end(section);
                            rest = after;
                            self.state = State::Done;
                        }
                        Ok(httparse::Status::Partial) if rest.len() <= MAX_TRAILERS => break,
                        _ => return Err(ChunkError::Trailers),
                    }
                }
            }
        }
        // `rest` is a suffix of `input`: the difference is what was consumed.
        Ok(input.len().saturating_sub(rest.len()))
    }
}

/// Where a decoder puts what it decoded.
trait Sink {
    /// A piece of chunk data.
    fn data(&mut self, data: &[u8]);
    /// The trailer section after the last chunk (field lines and the final CRLF).
    fn end(&mut self, trailers: &[u8]);
}

/// Re-encodes for the client of the native engine.
struct Reencode<'o, F> {
    out: &'o mut Vec<u8>,
    on_data: F,
    pass_trailers: bool,
}

impl<F: FnMut(&[u8])> Sink for Reencode<'_, F> {
    fn data(&mut self, data: &[u8]) {
        push_chunk(self.out, data);
        (self.on_data)(data);
    }

    fn end(&mut self, trailers: &[u8]) {
        self.out.extend_from_slice(b"0\r\n");
        if self.pass_trailers {
            self.out.extend_from_slice(trailers);
        } else {
            self.out.extend_from_slice(b"\r\n");
        }
    }
}

/// Keeps the data and the trailer section apart.
struct Split<'o> {
    data: &'o mut BytesMut,
    trailers: &'o mut Vec<u8>,
}

impl Sink for Split<'_> {
    fn data(&mut self, data: &[u8]) {
        self.data.extend_from_slice(data);
    }

    fn end(&mut self, trailers: &[u8]) {
        self.trailers.extend_from_slice(trailers);
    }
}

/// Appends `data` as one chunk (nothing for empty data: an empty chunk would end the body).
pub fn push_chunk(out: &mut Vec<u8>, data: &[u8]) {
    if data.is_empty() {
        return;
    }
    push_size_line(out, data.len());
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

/// Appends the size line (`hex-size CRLF`) of a chunk of `len` bytes.
pub fn push_size_line(out: &mut Vec<u8>, len: usize) {
    // Hex digits, most significant first; at least one (`0`).
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1);
    for digit in (0..digits).rev() {
        let nibble = (len >> (4 * digit)) & 0xf;
        out.push(HEX_DIGITS.get(nibble).copied().unwrap_or(b'0'));
    }
    out.extend_from_slice(b"\r\n");
}

/// Lowercase hex digits by value.
const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The last chunk with no trailers.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// The first `at_most` bytes of `bytes`, or all of them when there are fewer: a body's next
/// piece, its length derived from the slice rather than computed beside it.
pub(crate) fn prefix(bytes: &[u8], at_most: u64) -> &[u8] {
    let at_most = usize::try_from(at_most).unwrap_or(usize::MAX);
    bytes.get(..at_most).unwrap_or(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(body: &[u8], piece: usize, trailers: bool) -> Result<Vec<u8>, ChunkError> {
        let mut decoder = Decoder::new(trailers);
        let mut out = Vec::new();
        let mut pending = Vec::new();
        for part in body.chunks(piece) {
            pending.extend_from_slice(part);
            let used = decoder.decode(&pending, &mut out)?;
            pending.drain(..used);
        }
        assert!(decoder.is_done(), "body incomplete");
        assert!(pending.is_empty(), "bytes after the body");
        Ok(out)
    }

    #[test]
    fn re_encodes_whatever_the_read_boundaries() {
        let body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 1\r\n\r\n";
        for piece in 1..body.len() {
            let out = decode_in_pieces(body, piece, true).unwrap();
            let text = String::from_utf8(out).unwrap();
            // Chunk boundaries may differ; the data and trailers may not.
            let data: String = text
                .split("\r\n")
                .collect::<Vec<_>>()
                .chunks(2)
                .filter(|pair| pair.len() == 2 && !pair[0].starts_with('0'))
                .map(|pair| pair[1])
                .collect();
            assert_eq!(data, "hello world", "piece {piece}: {text:?}");
            assert!(
                text.ends_with("0\r\nx-sum: 1\r\n\r\n"),
                "piece {piece}: {text:?}"
            );
            assert!(!text.contains("ext"));
        }
    }

    #[test]
    fn trailers_dropped_unless_accepted() {
        let body = b"2\r\nhi\r\n0\r\nx-sum: 1\r\n\r\n";
        let out = decode_in_pieces(body, body.len(), false).unwrap();
        assert_eq!(out, b"2\r\nhi\r\n0\r\n\r\n");
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let mut out = Vec::new();
        assert_eq!(
            Decoder::new(false).decode(b"zz\r\n", &mut out),
            Err(ChunkError::Size)
        );
        assert_eq!(
            Decoder::new(false).decode(b"2\r\nhiX\r\n", &mut out),
            Err(ChunkError::DataEnd)
        );
        assert_eq!(
            Decoder::new(false).decode(b"fffffffffffffffff\r\n", &mut out),
            Err(ChunkError::Size)
        );
    }

    #[test]
    fn size_lines_are_the_lowercase_hex_of_the_length() {
        let edges = [
            usize::MAX,
            usize::MAX / 16,
            1 << 32,
            (1 << 32) - 1,
            0x10,
            0xf,
        ];
        for len in (0..5000).chain(edges) {
            let mut out = Vec::new();
            push_size_line(&mut out, len);
            assert_eq!(out, format!("{len:x}\r\n").into_bytes(), "{len}");
        }
    }

    #[test]
    fn chunk_sizes_are_hex() {
        let mut out = Vec::new();
        push_chunk(&mut out, &[b'a'; 255]);
        assert!(out.starts_with(b"ff\r\n"));
        out.clear();
        push_chunk(&mut out, b"");
        assert!(out.is_empty());
    }
}
