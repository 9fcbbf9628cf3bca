//! Unit tests of response-head parsing: framing, kept fields, Via, hop-by-hop.

use super::*;

fn head(raw: &[u8], is_head: bool) -> (Head, String) {
    let mut out = Vec::new();
    match parse(raw, is_head, false, None, &mut out, None) {
        Ok(Parsed::Final(head)) => (head, String::from_utf8(out).unwrap()),
        _ => panic!("not a final head"),
    }
}

#[test]
fn kept_fields_are_the_end_to_end_ones_as_sent() {
    let raw = b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n\
        Content-Type: text/plain\r\nVary: a\r\nVary: b\r\nX-Empty:\r\n\
        Content-Length: 2\r\n\r\nhi";
    let mut kept = Fields::default();
    assert!(matches!(
        inspect(raw, false, &mut kept),
        Ok(Parsed::Final(Head { len, .. })) if len == raw.len() - 2
    ));
    let names: Vec<&[u8]> = kept.iter().map(|(name, _)| name).collect();
    assert_eq!(
        names,
        [
            &b"Content-Type"[..],
            b"Vary",
            b"Vary",
            b"X-Empty",
            b"Content-Length"
        ]
    );
    let vary: Vec<&[u8]> = kept.get_all("vary").collect();
    assert_eq!(vary, [b"a", b"b"]);
    assert_eq!(kept.get("x-empty"), Some(&b""[..]));
    assert_eq!(kept.get("content-length"), Some(&b"2"[..]));

    // The client's head and the kept fields come from one parse.
    let mut out = Vec::new();
    let mut kept = Fields::default();
    assert!(parse(raw, false, false, None, &mut out, Some(&mut kept)).is_ok());
    assert_eq!(kept.len(), 5);
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("Content-Type: text/plain\r\n"));
}

#[test]
fn a_map_holds_the_same_end_to_end_fields() {
    let raw = b"HTTP/1.1 200 OK\r\nConnection: x-hop\r\nX-Hop: 1\r\nKeep-Alive: t=5\r\n\
        Content-Type: text/plain\r\nVary: a\r\nVary: b\r\nX-Empty:\r\n\
        Content-Length: 2\r\n\r\nhi";
    let mut map = HeaderMap::new();
    map.insert("x-stale", HeaderValue::from_static("from before"));
    assert!(matches!(
        inspect_map(raw, false, &mut map),
        Ok(Parsed::Final(Head { len, .. })) if len == raw.len() - 2
    ));
    let mut kept = Fields::default();
    assert!(inspect(raw, false, &mut kept).is_ok());
    assert_eq!(map, kept.to_map());
    assert_eq!(map.len(), 5);
    assert!(map.get("x-stale").is_none() && map.get("x-hop").is_none());
}

#[test]
fn framing_follows_rfc_9112() {
    let (h, _) = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", false);
    assert_eq!((h.framing, h.keep_alive), (Framing::Length(5), true));
    let (h, _) = head(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", true);
    assert_eq!(h.framing, Framing::Empty);
    let (h, out) = head(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
        false,
    );
    assert_eq!(h.framing, Framing::Chunked);
    assert!(out.contains("transfer-encoding: chunked\r\n"));
    let (h, out) = head(b"HTTP/1.1 200 OK\r\n\r\n", false);
    assert_eq!((h.framing, h.keep_alive), (Framing::UntilClose, false));
    assert!(out.contains("transfer-encoding: chunked\r\n"));
    let (h, _) = head(
        b"HTTP/1.1 304 Not Modified\r\ncontent-length: 9\r\n\r\n",
        false,
    );
    assert_eq!(h.framing, Framing::Empty);
    let (h, _) = head(b"HTTP/1.0 200 OK\r\ncontent-length: 1\r\n\r\n", false);
    assert!(!h.keep_alive);
    let mut out = Vec::new();
    assert!(parse(
        b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
        false,
        false,
        None,
        &mut out,
        None
    )
    .is_err());
}

#[test]
fn every_ambiguous_framing_shape_is_refused_whatever_the_status() {
    let shapes = [
        "content-length: 3\r\ntransfer-encoding: chunked",
        "transfer-encoding: chunked\r\ncontent-length: 3",
        "transfer-encoding: chunked, chunked",
        "transfer-encoding: chunked\r\ntransfer-encoding: chunked",
        "transfer-encoding: gzip, chunked",
        "transfer-encoding: identity",
        "transfer-encoding: chunked, identity",
        "transfer-encoding: x-custom",
        "transfer-encoding: ",
        "content-length: 3\r\ncontent-length: 3",
        "content-length: 3, 3",
        "content-length: +3",
        "content-length: 03",
        "content-length: 3 3",
    ];
    for shape in shapes {
        for status_line in [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 304 Not Modified",
        ] {
            for is_head in [false, true] {
                let raw = format!("{status_line}\r\n{shape}\r\n\r\n");
                let mut out = Vec::new();
                let mut kept = Fields::default();
                let mut map = HeaderMap::new();
                assert!(
                    matches!(
                        parse(raw.as_bytes(), is_head, false, None, &mut out, None),
                        Err(HeadError::Framing(_))
                    ) && inspect(raw.as_bytes(), is_head, &mut kept).is_err()
                        && inspect_map(raw.as_bytes(), is_head, &mut map).is_err(),
                    "accepted: {raw:?} (HEAD: {is_head})"
                );
            }
        }
    }
    let mut out = Vec::new();
    assert!(matches!(
        parse(
            b"HTTP/1.0 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            false,
            false,
            None,
            &mut out,
            None
        ),
        Err(HeadError::Framing(FramingError::TransferEncodingInHttp10))
    ));
    let (h, _) = head(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding:\tChunked \r\n\r\n",
        false,
    );
    assert_eq!((h.framing, h.keep_alive), (Framing::Chunked, true));
}

#[test]
fn via_is_appended_to_the_upstreams_own() {
    let edge = ViaName::new("edge");
    let mut out = Vec::new();
    let raw = b"HTTP/1.1 200 OK\r\nVia: 1.0 a\r\nX: 1\r\nvia: 1.1 b\r\ncontent-length: 0\r\n\r\n";
    assert!(parse(raw, false, false, Some(&edge), &mut out, None).is_ok());
    let out = String::from_utf8(out).unwrap();
    assert!(out.contains("via: 1.0 a, 1.1 b, 1.1 edge\r\n"), "{out}");
    assert_eq!(out.matches("ia: ").count(), 1, "{out}");
    let mut out = Vec::new();
    let raw = b"HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n";
    assert!(parse(raw, false, false, Some(&edge), &mut out, None).is_ok());
    assert!(String::from_utf8(out)
        .unwrap()
        .contains("via: 1.0 edge\r\n"));
    let mut out = Vec::new();
    let raw = b"HTTP/1.1 200 OK\r\nVia: 1.0 a\r\ncontent-length: 0\r\n\r\n";
    assert!(parse(raw, false, false, None, &mut out, None).is_ok());
    let out = String::from_utf8(out).unwrap();
    assert!(
        out.contains("Via: 1.0 a\r\n") && !out.contains("via:"),
        "{out}"
    );
}

#[test]
fn hop_by_hop_fields_are_dropped_and_date_added() {
    let (_, out) = head(
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-End: 2\r\ncontent-length: 0\r\n\r\n",
        false,
    );
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(out.contains("X-End: 2\r\n"));
    assert!(!out.to_ascii_lowercase().contains("x-hop"));
    assert!(!out.to_ascii_lowercase().contains("keep-alive"));
    assert!(out.contains("date: "));
}

#[test]
fn interim_responses_are_skipped_and_101_refused() {
    let mut out = Vec::new();
    let raw = b"HTTP/1.1 103 Early Hints\r\nlink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n";
    assert!(matches!(
        parse(raw, false, false, None, &mut out, None),
        Ok(Parsed::Interim(n)) if n == raw.len() - b"HTTP/1.1 200 OK\r\n".len()
    ));
    assert!(parse(
        b"HTTP/1.1 101 Switching\r\n\r\n",
        false,
        false,
        None,
        &mut out,
        None
    )
    .is_err());
}
