//! The upstream response head parser (`src/h1/response.rs`).
//!
//! Input: one byte of settings (the request was HEAD, the client connection closes), then
//! the bytes an upstream sent.
//! Invariants:
//! - it never panics;
//! - its three entry points (`parse` for the client, `inspect` for the shadow client,
//!   `inspect_map` for hyper) and `answered` agree on what the bytes are;
//! - an accepted head has one unambiguous framing: the head written for the client carries
//!   at most one of `Content-Length` and `Transfer-Encoding`, no two different lengths, and
//!   parses back (as the client will parse it) to the framing the proxy sends the body in;
//! - a body delimited by close never leaves the upstream connection reusable.
#![no_main]

use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use shadowtap::h1::response::{answered, inspect, inspect_map, parse, Framing, HeadError, Parsed};
use shadowtap::shadow::fields::Fields;

/// The comparable part of a parse result.
fn summary(parsed: &Result<Parsed, impl std::fmt::Debug>) -> String {
    match parsed {
        Ok(Parsed::Final(head)) => format!(
            "final len={} status={} framing={:?} keep_alive={}",
            head.len, head.status, head.framing, head.keep_alive
        ),
        Ok(Parsed::Interim(len)) => format!("interim {len}"),
        Ok(Parsed::Partial) => "partial".to_string(),
        Err(error) => format!("error {error:?}"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&settings, buf)) = input.split_first() else {
        return;
    };
    let is_head = settings & 1 == 1;
    let close = settings & 2 == 2;

    let mut out = Vec::new();
    let mut kept = Fields::default();
    let parsed = parse(buf, is_head, close, None, &mut out, Some(&mut kept));
    let mut fields = Fields::default();
    let inspected = inspect(buf, is_head, &mut fields);
    let mut map = HeaderMap::new();
    let mapped = inspect_map(buf, is_head, &mut map);
    assert_eq!(summary(&parsed), summary(&inspected), "parse vs inspect");
    assert_eq!(summary(&parsed), summary(&mapped), "parse vs inspect_map");
    // `answered` says a complete answer (or junk) is there whenever parse is not Partial
    // with a head under the limit.
    let limit = 64 * 1024;
    if !matches!(parsed, Ok(Parsed::Partial) | Ok(Parsed::Interim(_))) {
        assert!(answered(buf, limit), "a final head or junk is not 'answered'");
    }

    let Ok(Parsed::Final(head)) = parsed else {
        return;
    };
    assert!(head.len <= buf.len());
    assert!((200..=999).contains(&head.status), "status {}", head.status);
    if head.framing == Framing::UntilClose {
        assert!(!head.keep_alive, "a close-delimited body left the connection reusable");
    }

    // The client's head: one framing, and the one the body is sent in.
    let mut client = Fields::default();
    let reparsed = inspect(&out, is_head, &mut client);
    // The head for the client may have a field or two more than the upstream's (`date`,
    // `transfer-encoding`, `connection`), so an upstream head at our field limit gives a
    // client head over it: that limit is the client's to set, not a framing question.
    if let Err(HeadError::Malformed("too many header fields")) = reparsed {
        return;
    }
    let Ok(Parsed::Final(client_head)) = reparsed else {
        panic!(
            "the client's head does not parse: {:?}\n{}",
            summary(&reparsed),
            String::from_utf8_lossy(&out)
        );
    };
    assert_eq!(client_head.len, out.len(), "bytes after the client's head");
    assert_eq!(client_head.status, head.status);
    let lengths: Vec<&[u8]> = client.get_all("content-length").collect();
    let codings = client.get_all("transfer-encoding").count();
    assert!(
        lengths.is_empty() || codings == 0,
        "client head has both Content-Length and Transfer-Encoding:\n{}",
        String::from_utf8_lossy(&out)
    );
    assert!(
        lengths.windows(2).all(|w| w[0] == w[1]),
        "client head has two different lengths"
    );
    let sent_as = match head.framing {
        Framing::Chunked | Framing::UntilClose => Framing::Chunked,
        other => other,
    };
    // A 204/304/HEAD answer has no body whatever its fields say, on both sides.
    assert_eq!(
        client_head.framing, sent_as,
        "the client would read the body another way:\n{}",
        String::from_utf8_lossy(&out)
    );
});
