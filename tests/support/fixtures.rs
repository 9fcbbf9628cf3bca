//! Answers and inputs more than one test file uses, kept here so each exists once: the
//! trailers answer, the hop-by-hop answer, and a replayable random generator.

use super::{channel_body, full, Body};
use bytes::Bytes;
use http::{HeaderMap, Response};
use hyper::body::Frame;

/// The trailer section of [`trailers_response`]: `x-checksum: abc123`.
pub fn checksum_trailers() -> HeaderMap {
    let mut trailers = HeaderMap::new();
    trailers.insert("x-checksum", "abc123".parse().expect("trailer value"));
    trailers
}

/// A `200` whose body (`part one, part two`, no length known, so chunked on HTTP/1) ends in
/// [`checksum_trailers`], announced in a `Trailer` field.
pub fn trailers_response() -> Response<Body> {
    let (tx, body) = channel_body(4);
    tx.try_send(Frame::data(Bytes::from_static(b"part one, ")))
        .expect("room for the first frame");
    tx.try_send(Frame::data(Bytes::from_static(b"part two")))
        .expect("room for the second frame");
    tx.try_send(Frame::trailers(checksum_trailers()))
        .expect("room for the trailers");
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert("trailer", "x-checksum".parse().expect("header value"));
    response
}

/// A `200` with `body` and the hop-by-hop fields an upstream might wrongly send on:
/// `Connection: x-upstream-hop` naming `x-upstream-hop`, `Keep-Alive`, `Proxy-Connection`;
/// and one end-to-end field, `x-end-to-end: kept`, that must pass.
pub fn hop_by_hop_response(body: &'static str) -> Response<Body> {
    let mut response = Response::new(full(body));
    let headers = response.headers_mut();
    for (name, value) in [
        ("connection", "x-upstream-hop"),
        ("x-upstream-hop", "internal"),
        ("keep-alive", "timeout=99"),
        ("proxy-connection", "keep-alive"),
        ("x-end-to-end", "kept"),
    ] {
        headers.insert(name, value.parse().expect("header value"));
    }
    response
}

/// A tiny deterministic generator (xorshift), so a failing sequence can be replayed.
pub struct Rng(pub u64);

impl Rng {
    /// The next number below `n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}
