#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property test of the header rulebook (`src/header_rules.rs`): its two forms, the native
//! engine's byte-level writer ([`shadowtap::native::request::write_fields`]) and the hyper
//! path's `HeaderMap` editor ([`shadowtap::headers::forward_request_headers`]), run
//! on the same generated request head, must forward the same fields.
//!
//! The generated heads mix the table's names (in varied case) with other names, repeat
//! fields, name other fields (the table's too) in `Connection` lists, pad values with odd
//! whitespace and non-ASCII bytes, and turn `trust_forwarded_headers`, `Via`, a route's
//! `host_rewrite` and a TLS listener's `client_subject_header` on and off. Each head has
//! exactly one `Host`: a request without one is refused before either form runs (400 on
//! both engines).
//!
//! "The same" means: the same (lowercase name, value) pairs, and for each name the same
//! values in the same order. Two differences are legitimate and normalised away:
//! - **name case and order across names**: the writer keeps the client's spelling and
//!   order, while a `HeaderMap` lowercases names and groups each name's values; HTTP gives
//!   neither a meaning (RFC 9110 §5.1, §5.3), and the order of one name's values, which
//!   does carry meaning, is compared;
//! - **a new request id**: when the client's id is not propagated, each form makes a fresh
//!   UUID, so such a value is compared as "a new UUID", not byte for byte.

use http::{HeaderMap, HeaderName, HeaderValue, Version};
use proptest::prelude::*;
use shadowtap::config::ViaName;
use shadowtap::headers::{self, forward_request_headers, Via};
use shadowtap::native::request::{self, write_fields};

/// Names of every class of the rulebook, and a few end-to-end ones the lists below name.
const NAMES: [&str; 20] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "content-length",
    "expect",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "via",
    "x-request-id",
    "x-a",
    "x-b",
    "accept",
    "close",
    "cookie",
    "x-secret",
    "x-client-subject",
];

/// Values, many of them meaningful to some class: `Connection` lists naming others,
/// `TE` codings, request ids sane and not, `Via` elements, addresses.
const VALUES: [&[u8]; 26] = [
    b"",
    b"1",
    b"close",
    b"keep-alive",
    b"Keep-Alive, Close",
    b"x-a",
    b"X-A, x-b",
    b"keep-alive, x-forwarded-for",
    b"via , X-Request-Id",
    b"x-forwarded-proto,x-forwarded-host",
    b"host, content-length, x-secret",
    b"TE, Connection, expect, Upgrade",
    b"keep-alive, proxy-connection, transfer-encoding",
    b"close, accept,, ",
    b"trailers",
    b"gzip, Trailers",
    b"1.0 front, 1.1 middle",
    b"10.0.0.1",
    b"client-id-7",
    b"has space",
    b"caf\xc3\xa9, x-b",
    b"\xe9t\xe9",
    b"https",
    b"a\tb",
    b"100-continue",
    b"websocket",
];

/// A name from the table (in a random case) or a random token.
fn name() -> impl Strategy<Value = String> {
    let known = (prop::sample::select(NAMES.to_vec()), any::<u32>()).prop_map(|(name, case)| {
        name.chars()
            .enumerate()
            .map(|(i, c)| match (case >> (i % 32)) & 1 {
                1 => c.to_ascii_uppercase(),
                _ => c,
            })
            .collect()
    });
    prop_oneof![4 => known, 1 => "[a-zA-Z][a-zA-Z0-9-]{0,10}"]
}

/// A value from the list, sometimes with whitespace around and inside it (the parser trims
/// the outer whitespace the same way for both forms).
fn value() -> impl Strategy<Value = Vec<u8>> {
    let known = prop::sample::select(VALUES.to_vec()).prop_map(<[u8]>::to_vec);
    let long_id = Just(vec![b'i'; 201]);
    let padded = (
        prop::sample::select(vec![&b""[..], b" ", b"\t", b"  \t"]),
        prop::sample::select(VALUES.to_vec()),
        prop::sample::select(vec![&b""[..], b" ", b"\t "]),
    )
        .prop_map(|(before, value, after)| [before, value, after].concat());
    prop_oneof![6 => known, 2 => padded, 1 => long_id]
}

#[derive(Debug, Clone)]
struct Case {
    /// The request's fields in order, `Host` among them at `host_at`.
    fields: Vec<(String, Vec<u8>)>,
    host: &'static str,
    trust: bool,
    via: bool,
    host_rewrite: Option<&'static str>,
    /// A TLS listener's `client_subject_header` (`x-client-subject`) and the verified
    /// subject, when the client presented a certificate.
    subject: Option<Option<&'static str>>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((name(), value()), 0..14),
        any::<prop::sample::Index>(),
        prop::sample::select(vec!["app.test", "App.Test:8080", "[::1]:80"]),
        prop::sample::select(vec!["Host", "host", "HOST"]),
        any::<bool>(),
        any::<bool>(),
        prop::option::of(Just("internal.test")),
        prop::option::of(prop::option::of(Just("CN=client,O=Test"))),
    )
        .prop_map(
            |(mut fields, at, host, host_name, trust, via, host_rewrite, subject)| {
                let at = at.index(fields.len() + 1);
                fields.insert(at, (host_name.to_string(), host.as_bytes().to_vec()));
                Case {
                    fields,
                    host,
                    trust,
                    via,
                    host_rewrite,
                    subject,
                }
            },
        )
}

/// The head as a client would send it.
fn head(case: &Case) -> Vec<u8> {
    let mut head = b"GET /p HTTP/1.1\r\n".to_vec();
    for (name, value) in &case.fields {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value);
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The fields of a request head, parsed as both engines parse them.
fn parsed_fields(head: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    let status = request.parse(head).expect("a generated head parses");
    assert!(status.is_complete());
    request
        .headers
        .iter()
        .map(|field| (field.name.to_ascii_lowercase(), field.value.to_vec()))
        .collect()
}

const CLIENT: &str = "192.0.2.7";

/// The case's `client_subject_header` setting, as the listener passes it to both forms.
fn client_subject(case: &Case) -> Option<headers::ClientSubject> {
    case.subject.map(|value| headers::ClientSubject {
        header: HeaderName::from_static("x-client-subject"),
        value: value.map(HeaderValue::from_static),
    })
}

/// The byte-level writer's fields for the head.
fn by_writer(case: &Case, head: &[u8], via: Option<&ViaName>) -> Vec<(String, Vec<u8>)> {
    let mut fields = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut fields);
    request.parse(head).expect("a generated head parses");
    let mut out = b"GET /p HTTP/1.1\r\n".to_vec();
    let id = write_fields(
        head,
        request.headers,
        &request::Forwarding {
            client_address: CLIENT.as_bytes(),
            proto: "http",
            trust_forwarded_headers: case.trust,
            via,
            host_rewrite: case.host_rewrite.map(str::as_bytes),
            client_subject: client_subject(case).as_ref(),
        },
        &mut out,
    );
    assert!(out.get(id).is_some_and(|id| !id.is_empty()));
    out.extend_from_slice(b"\r\n");
    parsed_fields(&out)
}

/// The `HeaderMap` editor's fields for the head, from a map built as hyper builds it.
fn by_editor(case: &Case, head: &[u8], via: Option<&Via>) -> Vec<(String, Vec<u8>)> {
    let mut map = HeaderMap::new();
    for (name, value) in parsed_fields(head) {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(&value).unwrap(),
        );
    }
    let client = HeaderValue::from_static(CLIENT);
    let rewrite = case.host_rewrite.map(HeaderValue::from_static);
    let host = headers::forwarded_host(Version::HTTP_11, &"/p".parse().unwrap(), &map)
        .expect("one valid Host");
    forward_request_headers(
        &mut map,
        headers::Forwarding {
            client_address: &client,
            proto: "http",
            trust_forwarded_headers: case.trust,
            via: via.map(|via| via.element(Version::HTTP_11)),
            host: host.0,
            host_from_target: host.1,
            host_rewrite: rewrite.as_ref(),
            client_subject: client_subject(case).as_ref(),
        },
    );
    map.iter()
        .map(|(name, value)| (name.as_str().to_string(), value.as_bytes().to_vec()))
        .collect()
}

/// Sorted by name (stable: one name's values keep their order), a new request id replaced
/// by a marker.
fn normalised(
    mut fields: Vec<(String, Vec<u8>)>,
    client_ids: &[Vec<u8>],
) -> Vec<(String, Vec<u8>)> {
    for (name, value) in &mut fields {
        if name == "x-request-id" && !client_ids.contains(value) {
            let id = std::str::from_utf8(value).expect("a new id is ASCII");
            assert!(uuid::Uuid::parse_str(id).is_ok(), "not a new UUID: {id}");
            *value = b"<new uuid>".to_vec();
        }
    }
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

fn count(fields: &[(String, Vec<u8>)], name: &str) -> usize {
    fields.iter().filter(|(n, _)| n == name).count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn both_forms_forward_the_same_fields(case in case()) {
        let head = head(&case);
        let via_name = ViaName::new("shadowtap");
        let via = Via::new(&via_name).unwrap();
        let client_ids: Vec<Vec<u8>> = parsed_fields(&head)
            .into_iter()
            .filter(|(name, _)| name == "x-request-id")
            .map(|(_, value)| value)
            .collect();
        let written = normalised(
            by_writer(&case, &head, case.via.then_some(&via_name)),
            &client_ids,
        );
        let edited = normalised(by_editor(&case, &head, case.via.then_some(&via)), &client_ids);
        let show = |fields: &[(String, Vec<u8>)]| -> Vec<(String, String)> {
            fields
                .iter()
                .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
                .collect()
        };
        prop_assert_eq!(show(&written), show(&edited), "head:\n{}", String::from_utf8_lossy(&head));

        // And what both agree on is the rulebook, not a shared mistake.
        for hop in ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"] {
            prop_assert_eq!(count(&written, hop), 0, "{} forwarded", hop);
        }
        prop_assert_eq!(count(&written, "x-request-id"), 1);
        prop_assert_eq!(count(&written, "x-forwarded-for"), 1);
        prop_assert_eq!(count(&written, "host"), 1);
        let xff = written.iter().find(|(n, _)| n == "x-forwarded-for").unwrap();
        prop_assert!(xff.1.ends_with(CLIENT.as_bytes()));
        let host = written.iter().find(|(n, _)| n == "host").unwrap();
        prop_assert_eq!(&host.1[..], case.host_rewrite.unwrap_or(case.host).as_bytes());
        if case.via {
            let via = written.iter().find(|(n, _)| n == "via").unwrap();
            prop_assert!(via.1.ends_with(b"1.1 shadowtap"));
        }
        if let Some(subject) = case.subject {
            // Only the verified subject, never the client's own field of that name.
            let sent: Vec<&[u8]> = written
                .iter()
                .filter(|(n, _)| n == "x-client-subject")
                .map(|(_, v)| &v[..])
                .collect();
            prop_assert_eq!(sent, subject.map(str::as_bytes).into_iter().collect::<Vec<_>>());
        }
        if !case.trust {
            prop_assert_eq!(count(&written, "x-forwarded-proto"), 1);
            prop_assert_eq!(count(&written, "x-forwarded-host"), 1);
        }
    }
}
