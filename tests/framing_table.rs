#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The Transfer-Encoding / Content-Length decision table (README, "Message framing"), run
//! on both HTTP/1.1 engines with a raw TCP client and a recording upstream.
//!
//! Every request shape either gets exactly 400 with the connection closed and nothing
//! forwarded, or reaches the upstream as exactly one request carrying exactly the body the
//! client framed. Every response shape from the upstream either gets 502 (and its connection
//! is not reused), or is framed one way. A property test generates framing fields and
//! holds both engines to the same invariant on the same input.

mod support;

use proptest::prelude::*;
use std::time::Duration;
use support::*;

/// What a shape must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// 400, the connection closed, nothing forwarded.
    Refused,
    /// Forwarded once, the upstream reading exactly `hello` as the body.
    Hello,
    /// Forwarded once with an empty body.
    NoBody,
}

const CHUNKED_HELLO: &str = "5\r\nhello\r\n0\r\n\r\n";

/// `(shape, raw request, expectation)`. Requests ask for `Connection: close` so a forwarded
/// one ends the exchange; each is followed by a second request that must never be served.
fn request_table() -> Vec<(&'static str, String, Expect)> {
    use Expect::*;
    let post = |fields: &str, body: &str| {
        format!("POST /t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n{fields}\r\n{body}")
    };
    let te = |value: &str| post(&format!("Transfer-Encoding: {value}\r\n"), CHUNKED_HELLO);
    let cl = |value: &str| post(&format!("Content-Length: {value}\r\n"), "hello");
    vec![
        // Accepted: exactly one `chunked`, any case, optional whitespace around it.
        ("TE chunked", te("chunked"), Hello),
        ("TE Chunked", te("Chunked"), Hello),
        ("TE CHUNKED", te("CHUNKED"), Hello),
        ("TE chunked with spaces around", te("  chunked  "), Hello),
        ("TE chunked with tabs around", te("\tchunked\t"), Hello),
        (
            "chunk extension",
            post("Transfer-Encoding: chunked\r\n", "5;a=b\r\nhello\r\n0\r\n\r\n"),
            Hello,
        ),
        // Refused: lists, repeats, other codings, codings after chunked, empty values.
        ("TE chunked, chunked", te("chunked, chunked"), Refused),
        ("TE chunked,chunked", te("chunked,chunked"), Refused),
        ("TE Chunked , CHUNKED", te("Chunked , CHUNKED"), Refused),
        (
            "TE chunked twice in two fields",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                CHUNKED_HELLO,
            ),
            Refused,
        ),
        (
            "TE empty field then chunked",
            post(
                "Transfer-Encoding: \r\nTransfer-Encoding: chunked\r\n",
                CHUNKED_HELLO,
            ),
            Refused,
        ),
        (
            "TE chunked then identity in two fields",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
                CHUNKED_HELLO,
            ),
            Refused,
        ),
        ("TE gzip, chunked", te("gzip, chunked"), Refused),
        ("TE identity, chunked", te("identity, chunked"), Refused),
        ("TE chunked, identity", te("chunked, identity"), Refused),
        ("TE chunked, gzip", te("chunked, gzip"), Refused),
        ("TE identity", te("identity"), Refused),
        ("TE unknown coding", te("x-shadowtap"), Refused),
        ("TE xchunked", te("xchunked"), Refused),
        ("TE chunked with a parameter", te("chunked;q=1"), Refused),
        ("TE leading empty element", te(", chunked"), Refused),
        ("TE trailing empty element", te("chunked,"), Refused),
        ("TE empty", te(""), Refused),
        ("TE vertical tab", te("\x0bchunked"), Refused),
        (
            "TE space before colon",
            post("Transfer-Encoding : chunked\r\n", CHUNKED_HELLO),
            Refused,
        ),
        (
            "TE obs-fold",
            post("Transfer-Encoding:\r\n chunked\r\n", CHUNKED_HELLO),
            Refused,
        ),
        (
            "TE folded into a list",
            post("Transfer-Encoding: chunked\r\n chunked\r\n", CHUNKED_HELLO),
            Refused,
        ),
        (
            "TE on HTTP/1.0",
            format!(
                "POST /t HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{CHUNKED_HELLO}"
            ),
            Refused,
        ),
        // TE with CL, in either order, whatever the spelling.
        (
            "CL then TE",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                CHUNKED_HELLO,
            ),
            Refused,
        ),
        (
            "TE then CL",
            post(
                "transfer-encoding: chunked\r\ncontent-length: 5\r\n",
                CHUNKED_HELLO,
            ),
            Refused,
        ),
        (
            "CL zero with TE",
            post(
                "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
                CHUNKED_HELLO,
            ),
            Refused,
        ),
        // Content-Length: exactly one field of plain digits.
        ("CL 5", cl("5"), Hello),
        ("CL 5 with whitespace around", cl("  5\t"), Hello),
        ("CL list of equal values", cl("5, 5"), Refused),
        ("CL list of different values", cl("5, 6"), Refused),
        (
            "CL equal values in two fields",
            post("Content-Length: 5\r\nContent-Length: 5\r\n", "hello"),
            Refused,
        ),
        (
            "CL different values in two fields",
            post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
            Refused,
        ),
        ("CL plus sign", cl("+5"), Refused),
        ("CL minus sign", cl("-5"), Refused),
        ("CL leading zero", cl("05"), Refused),
        ("CL leading zeros", cl("0005"), Refused),
        ("CL inner space", cl("5 5"), Refused),
        ("CL hex", cl("0x5"), Refused),
        ("CL empty", cl(""), Refused),
        ("CL overflow", cl("99999999999999999999"), Refused),
        (
            "CL obs-fold",
            post("Content-Length: 5\r\n 5\r\n", "hello"),
            Refused,
        ),
        // Bare LF line ends: recognised as line ends (RFC 9112 §2.2), with the same rules.
        (
            "bare LF, CL",
            "POST /t HTTP/1.1\nHost: a\nConnection: close\nContent-Length: 5\n\nhello".into(),
            Hello,
        ),
        (
            "bare LF, CL with TE",
            format!(
                "POST /t HTTP/1.1\nHost: a\nContent-Length: 5\nTransfer-Encoding: chunked\n\n{CHUNKED_HELLO}"
            ),
            Refused,
        ),
        (
            "bare LF, chunked twice",
            format!("POST /t HTTP/1.1\nHost: a\nTransfer-Encoding: chunked, chunked\n\n{CHUNKED_HELLO}"),
            Refused,
        ),
        // No framing field: no body.
        (
            "GET without framing",
            "GET /t HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".into(),
            NoBody,
        ),
        ("CL 0", cl("0").replace("hello", ""), NoBody),
    ]
}

/// A request that must never reach the upstream: sent behind every shape on the same
/// connection.
const FOLLOWER: &str = "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// What one exchange showed.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// 400 and the connection closed, nothing forwarded.
    Refused,
    /// The bodies the upstream received (one per forwarded request) and the status.
    Forwarded(u16, Vec<Vec<u8>>),
    /// Anything else, described.
    Other(String),
}

/// Sends `request` (then [`FOLLOWER`]) on a new connection and reports what happened.
async fn exchange(proxy: &Shadowtap, upstream: &Upstream, request: &str) -> Outcome {
    let before = upstream.count();
    let mut bytes = request.as_bytes().to_vec();
    bytes.extend_from_slice(FOLLOWER.as_bytes());
    let (answer, closed) = raw_exchange_within(proxy.addr, &bytes, Duration::from_secs(2)).await;
    // Let a wrongly forwarded request arrive before looking.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let received: Vec<Received> = upstream.received().into_iter().skip(before).collect();
    let responses = answer.matches("HTTP/1.1 ").count() + answer.matches("HTTP/1.0 ").count();
    let status = answer
        .strip_prefix("HTTP/1.0 ")
        .or_else(|| answer.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok());
    match (status, received.is_empty()) {
        (Some(400), true) if responses == 1 && closed => Outcome::Refused,
        (Some(status), false) if received.iter().all(|r| r.uri.path() == "/t") => {
            Outcome::Forwarded(status, received.iter().map(|r| r.body.to_vec()).collect())
        }
        _ => Outcome::Other(format!(
            "answer {answer:?}, closed: {closed}, upstream received {:?}",
            received
                .iter()
                .map(|r| (r.uri.to_string(), r.body.clone()))
                .collect::<Vec<_>>()
        )),
    }
}

async fn recording_upstream() -> Upstream {
    upstream()
        .always(http::StatusCode::OK, "forwarded\n")
        .start()
        .await
}

#[tokio::test]
async fn every_request_framing_shape_is_refused_or_framed_one_way_on_both_engines() {
    let upstream = recording_upstream().await;
    let mut failures = Vec::new();
    for engine in ENGINES {
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        for (shape, request, expect) in request_table() {
            let outcome = exchange(&proxy, &upstream, &request).await;
            let ok = match expect {
                Expect::Refused => outcome == Outcome::Refused,
                Expect::Hello => outcome == Outcome::Forwarded(200, vec![b"hello".to_vec()]),
                Expect::NoBody => outcome == Outcome::Forwarded(200, vec![Vec::new()]),
            };
            if !ok {
                failures.push(format!(
                    "{engine}: {shape}: expected {expect:?}, got {outcome:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// The finding of issue 17, as a client would exploit it: the body is chunked twice, so a
/// hop that applies both codings reads `GET /smuggled` as body, while a hop that decodes
/// once (as shadowtap did) serves it as a second request of its own.
#[tokio::test]
async fn chunked_twice_is_refused_and_smuggles_nothing() {
    let upstream = recording_upstream().await;
    // Inner chunked stream: a chunk that announces 0x40 bytes, of which only the first few
    // are in the outer body; the rest follows the outer body on the wire.
    let inner = "40\r\nxxxx";
    let outer = format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len());
    let request = format!(
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n{outer}\
         GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"
    );
    for engine in ENGINES {
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        let (answer, closed) =
            raw_exchange_within(proxy.addr, request.as_bytes(), Duration::from_secs(2)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let paths = upstream.paths();
        assert!(paths.is_empty(), "{engine}: forwarded {paths:?}\n{answer}");
        assert_eq!(raw_status(&answer), Some(400), "{engine}: {answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{engine}: {answer}");
        assert!(closed, "{engine}: the connection stayed open");
        assert!(
            proxy.proxy_errors("bad_request").await >= 1.0,
            "{engine}: the refusal was not counted"
        );
    }
}

/// The bad response shapes: each must become a 502.
const BAD_RESPONSES: [(&str, &str); 13] = [
    ("chunked twice", "Transfer-Encoding: chunked, chunked"),
    (
        "chunked in two fields",
        "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
    ),
    ("gzip, chunked", "Transfer-Encoding: gzip, chunked"),
    ("identity", "Transfer-Encoding: identity"),
    ("chunked, identity", "Transfer-Encoding: chunked, identity"),
    ("unknown coding", "Transfer-Encoding: x-unknown"),
    ("empty TE", "Transfer-Encoding: "),
    (
        "CL with TE",
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
    ),
    ("CL list", "Content-Length: 5, 5"),
    ("CL twice", "Content-Length: 5\r\nContent-Length: 5"),
    ("CL sign", "Content-Length: +5"),
    ("CL leading zero", "Content-Length: 05"),
    ("CL inner space", "Content-Length: 5 5"),
];

fn scripted_answer(line: &str) -> Vec<u8> {
    // `GET /bad/N HTTP/1.1` gets bad shape N; anything else a plain answer.
    let shape = line
        .strip_prefix("GET /bad/")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| BAD_RESPONSES.get(n));
    match shape {
        Some((_, fields)) => {
            format!("HTTP/1.1 200 OK\r\n{fields}\r\n\r\n5\r\nhello\r\n0\r\n\r\n").into_bytes()
        }
        None => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
    }
}

#[tokio::test]
async fn every_bad_response_framing_is_a_502_and_its_connection_is_not_reused() {
    let mut failures = Vec::new();
    for engine in ENGINES {
        let upstream = scripted_upstream(scripted_answer).await;
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        let client = http1_client();
        // A good exchange first, so a pooled connection exists to be (wrongly) reused.
        let reply = send(&client, get_request(&proxy.url("/good")))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{engine}");
        for (n, (shape, _)) in BAD_RESPONSES.iter().enumerate() {
            let reply = send(&client, get_request(&proxy.url(&format!("/bad/{n}"))))
                .await
                .unwrap();
            let after = send(&client, get_request(&proxy.url("/good")))
                .await
                .unwrap();
            let log = upstream.requests();
            let connection_of = |path: &str| {
                log.iter()
                    .rev()
                    .find(|(_, line)| line.contains(path))
                    .map(|(connection, _)| *connection)
            };
            let bad_connection = connection_of(&format!("/bad/{n} "));
            if reply.status != 502 || after.status != 200 {
                failures.push(format!(
                    "{engine}: {shape}: got {} ({:?}), then {}",
                    reply.status,
                    reply.text(),
                    after.status
                ));
            }
            // The request after it came on another connection than the bad answer's.
            let good_connection = log.last().map(|(connection, _)| *connection);
            if bad_connection.is_none() || bad_connection == good_connection {
                failures.push(format!(
                    "{engine}: {shape}: connection reused after a refused answer: {log:?}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Framing fields a generated request may carry.
fn framing_field() -> impl Strategy<Value = String> {
    let te = prop::sample::select(vec![
        "chunked",
        "Chunked",
        " chunked ",
        "\tchunked",
        "chunked, chunked",
        "gzip, chunked",
        "chunked, gzip",
        "identity",
        "",
        "chunked,",
        "x",
    ]);
    let cl = prop::sample::select(vec!["5", " 5", "05", "+5", "5, 5", "5,5", "5 5", ""]);
    prop_oneof![
        te.prop_map(|v| format!("Transfer-Encoding: {v}")),
        cl.prop_map(|v| format!("Content-Length: {v}")),
    ]
}

/// The README's table, written independently of the proxy's code: whether a request with
/// these framing fields is forwarded.
fn policy_accepts(fields: &[String], http10: bool) -> bool {
    let values = |name: &str| -> Vec<String> {
        fields
            .iter()
            .filter_map(|field| field.strip_prefix(name))
            .map(|value| value.trim_matches([' ', '\t']).to_string())
            .collect()
    };
    let (te, cl) = (values("Transfer-Encoding: "), values("Content-Length: "));
    let plain_number = |v: &str| {
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0'))
    };
    match (te.as_slice(), cl.as_slice()) {
        ([], []) => true,
        ([], [length]) => plain_number(length),
        ([coding], []) => !http10 && coding.eq_ignore_ascii_case("chunked"),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Any mix of framing fields, HTTP/1.0 or 1.1, bare LF or CRLF: both engines either
    /// refuse (400, close, nothing forwarded) or forward exactly one request whose body is
    /// exactly `hello`; which of the two is the README's policy, and both engines decide
    /// the same.
    #[test]
    fn generated_framing_fields_are_refused_or_forwarded_exactly(
        fields in prop::collection::vec(framing_field(), 0..4),
        http10 in any::<bool>(),
        bare_lf in any::<bool>(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let upstream = recording_upstream().await;
            let chunked = fields.iter().any(|f| f.starts_with("Transfer"));
            let body = if chunked { CHUNKED_HELLO } else { "hello" };
            let version = if http10 { "1.0" } else { "1.1" };
            let eol = if bare_lf { "\n" } else { "\r\n" };
            let mut request = format!("POST /t HTTP/{version}{eol}Host: a{eol}Connection: close{eol}");
            for field in &fields {
                request.push_str(field);
                request.push_str(eol);
            }
            request.push_str(eol);
            request.push_str(body);
            let mut outcomes = Vec::new();
            for engine in ENGINES {
                let proxy = shadowtap_with_engine(upstream.addr, engine).await;
                let outcome = exchange(&proxy, &upstream, &request).await;
                let framed = fields.iter().any(|f| f.starts_with("Content") || f.starts_with("Transfer"));
                let ok = match &outcome {
                    Outcome::Refused => true,
                    Outcome::Forwarded(200, bodies) if framed => bodies == &[b"hello".to_vec()],
                    Outcome::Forwarded(200, bodies) => bodies == &[Vec::<u8>::new()],
                    _ => false,
                };
                prop_assert!(ok, "{engine}: {request:?}: {outcome:?}");
                prop_assert_eq!(
                    outcome != Outcome::Refused,
                    policy_accepts(&fields, http10),
                    "{}: {:?}: {:?} against the policy", engine, request, outcome
                );
                outcomes.push(outcome);
            }
            prop_assert_eq!(&outcomes[0], &outcomes[1], "engines disagree on {:?}", request);
            Ok(())
        })?;
    }
}

/// A shadow's answer goes through the same rule: an ambiguous one is a failed exchange
/// (`error`, never compared), and the shadow's connection is not reused after it.
#[tokio::test]
async fn a_shadow_answer_with_bad_framing_is_an_error_and_its_connection_is_not_reused() {
    use support::shadow::{eventually, mirrored, outcomes, Policy};
    let primary = recording_upstream().await;
    let shadow = scripted_upstream(scripted_answer).await;
    let proxy = mirrored(primary.addr, shadow.addr, &Policy::default()).await;
    let client = http1_client();
    let mut completed = 0;
    let mut errors = 0;
    let _ = send(&client, get_request(&proxy.url("/good")))
        .await
        .unwrap();
    completed += 1;
    eventually(&proxy, "the first copy", |m| {
        outcomes(m)["completed"] == completed
    })
    .await;
    // Three shapes, each between good answers (so the breaker stays closed).
    for n in [0usize, 7, 8] {
        let reply = send(&client, get_request(&proxy.url(&format!("/bad/{n}"))))
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "the primary's answer is the client's");
        errors += 1;
        eventually(&proxy, "the bad copy to fail", |m| {
            outcomes(m)["error"] == errors
        })
        .await;
        let _ = send(&client, get_request(&proxy.url("/good")))
            .await
            .unwrap();
        completed += 1;
        eventually(&proxy, "the next copy", |m| {
            outcomes(m)["completed"] == completed
        })
        .await;
        let log = shadow.requests();
        let bad = log
            .iter()
            .find(|(_, line)| line.contains(&format!("/bad/{n} ")));
        let next = log.last();
        assert!(
            bad.is_some() && bad.map(|b| b.0) != next.map(|n| n.0),
            "{}: connection reused: {log:?}",
            BAD_RESPONSES[n].0
        );
    }
}

/// h2c frames bodies itself, but a `content-length` it carries is forwarded to an HTTP/1
/// upstream's world: the same rule holds for it.
#[tokio::test]
async fn h2c_content_length_follows_the_same_rule() {
    let upstream = recording_upstream().await;
    let proxy = Shadowtap::in_front_of(upstream.addr).await;
    for (value, expect) in [("5", 200), ("05", 400), ("5, 5", 400), ("+5", 400)] {
        let mut sender = h2_connection(proxy.addr).await;
        let mut request = post_request("http://a/t", "hello");
        request
            .headers_mut()
            .insert(http::header::CONTENT_LENGTH, value.parse().unwrap());
        let status = match within("h2c request", sender.send_request(request)).await {
            Ok(response) => response.status().as_u16(),
            // The h2 layer itself may refuse to carry the shape: nothing forwarded either.
            Err(_) => 400,
        };
        assert_eq!(status, expect, "content-length: {value}");
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let bodies: Vec<_> = upstream.received().iter().map(|r| r.body.clone()).collect();
    assert_eq!(bodies, [bytes::Bytes::from_static(b"hello")]);
}

/// Chunk-size and chunk-line tricks (hex prefixes, signs, separators, a bare CR in an
/// extension, a missing CRLF after the data): the body is decoded by one parser and re-chunked for
/// the upstream, so whatever the client wrote never reaches it as written. Each must end
/// the connection without serving the request behind it; the primary never sees a body
/// that decoded cleanly.
#[tokio::test]
async fn malformed_chunk_lines_never_smuggle_on_both_engines() {
    let upstream = recording_upstream().await;
    let bodies = [
        ("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
        ("plus sign", "+5\r\nhello\r\n0\r\n\r\n"),
        ("minus sign", "-5\r\nhello\r\n0\r\n\r\n"),
        ("underscore", "0_5\r\nhello\r\n0\r\n\r\n"),
        ("empty size line", "\r\n\r\n"),
        ("bare CR in an extension", "5;a\rb\r\nhello\r\n0\r\n\r\n"),
        ("LF in an extension", "5;a\nb\r\nhello\r\n0\r\n\r\n"),
        ("no CRLF after the data", "5\r\nhelloXX0\r\n\r\n"),
        ("size overflow", "fffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ];
    let mut failures = Vec::new();
    for engine in ENGINES {
        let proxy = shadowtap_with_engine(upstream.addr, engine).await;
        for (shape, body) in bodies {
            let before = upstream.count();
            let request = format!(
                "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n{body}{FOLLOWER}"
            );
            let (answer, closed) =
                raw_exchange_within(proxy.addr, request.as_bytes(), Duration::from_secs(2)).await;
            tokio::time::sleep(Duration::from_millis(30)).await;
            let received: Vec<Received> = upstream.received().into_iter().skip(before).collect();
            let smuggled = received.iter().any(|r| r.uri.path() != "/t");
            let clean_body = received.iter().any(|r| r.body.as_ref() != b"<body error>");
            if smuggled || clean_body || !closed || raw_status(&answer) == Some(200) {
                failures.push(format!(
                    "{engine}: {shape}: closed {closed}, answer {answer:?}, upstream got {:?}",
                    received
                        .iter()
                        .map(|r| (r.uri.to_string(), r.body.clone()))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
