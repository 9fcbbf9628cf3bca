#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests of the upstream response head parser (`src/h1/response.rs`), the
//! invariants the `response_head` fuzz target checks (fuzz/README.md), run by CI on every
//! commit: every status line and framing field combination either is refused, or is
//! accepted with a status the client can parse and one framing, which the head written for
//! the client announces the same way.

use proptest::prelude::*;
use shadowtap::h1::response::{inspect, parse, Framing, Parsed};
use shadowtap::shadow::fields::Fields;

/// A status code in the first two digits' worth of tricky spots, as three digits.
fn status() -> impl Strategy<Value = u16> {
    prop_oneof![
        0..1000u16,
        Just(99),
        Just(100),
        Just(101),
        Just(204),
        Just(304)
    ]
}

fn framing_field() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Content-Length: 5",
        "Content-Length: 0",
        "Content-Length: 05",
        "Content-Length: +5",
        "Content-Length: 5, 5",
        "Content-Length: 7",
        "Transfer-Encoding: chunked",
        "Transfer-Encoding: gzip, chunked",
        "Transfer-Encoding: chunked, gzip",
        "Transfer-Encoding: identity",
        "Transfer-Encoding: CHUNKED",
        "Connection: close",
        "Connection: keep-alive",
    ])
    .prop_map(str::to_string)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn accepted_heads_are_valid_for_the_client_and_framed_one_way(
        code in status(),
        version in prop::sample::select(vec!["HTTP/1.1", "HTTP/1.0"]),
        fields in prop::collection::vec(framing_field(), 0..4),
        is_head in any::<bool>(),
        close in any::<bool>(),
    ) {
        let head = format!("{version} {code:03} Reason\r\n{}\r\n", fields.iter().map(|f| format!("{f}\r\n")).collect::<String>());
        let mut out = Vec::new();
        let Ok(Parsed::Final(parsed)) = parse(head.as_bytes(), is_head, close, None, &mut out, None) else {
            return Ok(());
        };
        prop_assert!((200..1000).contains(&parsed.status), "status {}", parsed.status);
        if parsed.framing == Framing::UntilClose {
            prop_assert!(!parsed.keep_alive);
        }
        let mut client = Fields::default();
        let reparsed = inspect(&out, is_head, &mut client);
        let Ok(Parsed::Final(client_head)) = reparsed else {
            return Err(TestCaseError::fail(format!("client head does not parse: {}", String::from_utf8_lossy(&out))));
        };
        prop_assert_eq!(client_head.status, parsed.status);
        let lengths = client.get_all("content-length").count();
        let codings = client.get_all("transfer-encoding").count();
        prop_assert!(lengths == 0 || codings == 0, "both framings: {}", String::from_utf8_lossy(&out));
        let sent_as = match parsed.framing {
            Framing::Chunked | Framing::UntilClose => Framing::Chunked,
            other => other,
        };
        prop_assert_eq!(client_head.framing, sent_as, "{}", String::from_utf8_lossy(&out));
    }
}

/// A status under 100 (`099`, which httparse reads as three digits) was passed on as
/// `HTTP/1.1 99`, a status line no client can parse (hyper's client refuses such a code);
/// it is a malformed head, as any status httparse refuses.
#[test]
fn a_status_under_100_is_refused() {
    for code in ["000", "099", "042"] {
        let head = format!("HTTP/1.1 {code} Odd\r\nContent-Length: 0\r\n\r\n");
        let mut out = Vec::new();
        assert!(
            parse(head.as_bytes(), false, false, None, &mut out, None).is_err(),
            "{code} accepted"
        );
    }
}
