//! Unit tests of the header rules: framing, Host, Via, hop-by-hop, request ids.

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

#[test]
fn hop_by_hop_fields_and_the_ones_connection_names_are_removed() {
    let mut headers = map(&[
        ("connection", "keep-alive, X-Secret-Hop"),
        ("connection", "close"),
        ("x-secret-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
        ("x-end-to-end", "kept"),
        ("trailer", "x-checksum"),
    ]);
    assert!(accepts_trailers(&headers));
    remove_hop_by_hop(&mut headers);
    let mut left: Vec<&str> = headers.keys().map(|k| k.as_str()).collect();
    left.sort_unstable();
    assert_eq!(left, vec!["trailer", "x-end-to-end"]);
}

#[test]
fn framing_shapes() {
    use BodyFraming::*;
    use FramingError::*;
    let v11 = http::Version::HTTP_11;
    type Row<'a> = (&'a [(&'a str, &'a str)], Result<BodyFraming, FramingError>);
    let table: &[Row<'_>] = &[
        (&[], Ok(Unframed)),
        (&[("content-length", "5")], Ok(Length(5))),
        (&[("content-length", "0")], Ok(Length(0))),
        (&[("transfer-encoding", "chunked")], Ok(Chunked)),
        (&[("transfer-encoding", "CHUNKED")], Ok(Chunked)),
        (&[("transfer-encoding", " \tChunked\t ")], Ok(Chunked)),
        (
            &[("transfer-encoding", "chunked, chunked")],
            Err(BadTransferEncoding),
        ),
        (
            &[
                ("transfer-encoding", "chunked"),
                ("transfer-encoding", "chunked"),
            ],
            Err(BadTransferEncoding),
        ),
        (
            &[("transfer-encoding", "gzip, chunked")],
            Err(BadTransferEncoding),
        ),
        (
            &[("transfer-encoding", "chunked, identity")],
            Err(BadTransferEncoding),
        ),
        (
            &[("transfer-encoding", "identity")],
            Err(BadTransferEncoding),
        ),
        (
            &[("transfer-encoding", "xchunked")],
            Err(BadTransferEncoding),
        ),
        (
            &[("transfer-encoding", "chunked;a=b")],
            Err(BadTransferEncoding),
        ),
        (
            &[("transfer-encoding", "chunked,")],
            Err(BadTransferEncoding),
        ),
        (&[("transfer-encoding", "")], Err(BadTransferEncoding)),
        (
            &[("transfer-encoding", ""), ("transfer-encoding", "chunked")],
            Err(BadTransferEncoding),
        ),
        (
            &[("content-length", "5"), ("transfer-encoding", "chunked")],
            Err(ContentLengthAndTransferEncoding),
        ),
        (
            &[("content-length", "5"), ("content-length", "5")],
            Err(MultipleContentLength),
        ),
        (
            &[("content-length", "5"), ("content-length", "6")],
            Err(MultipleContentLength),
        ),
        (&[("content-length", "5, 5")], Err(BadContentLength)),
        (&[("content-length", "+5")], Err(BadContentLength)),
        (&[("content-length", "-1")], Err(BadContentLength)),
        (&[("content-length", "05")], Err(BadContentLength)),
        (&[("content-length", "5 5")], Err(BadContentLength)),
        (&[("content-length", "0x5")], Err(BadContentLength)),
        (&[("content-length", "")], Err(BadContentLength)),
        (
            &[("content-length", "99999999999999999999")],
            Err(BadContentLength),
        ),
    ];
    for (fields, want) in table {
        let mut framing = FramingFields::default();
        for (name, value) in *fields {
            match *name {
                "content-length" => framing.content_length(value.as_bytes()),
                _ => framing.transfer_encoding(value.as_bytes()),
            }
        }
        assert_eq!(framing.framing(false), *want, "{fields:?}");
        let verdict = check_framing(v11, &map(fields));
        assert_eq!(verdict, want.map(|_| ()), "{fields:?}");
    }
    assert_eq!(
        check_framing(
            http::Version::HTTP_10,
            &map(&[("transfer-encoding", "chunked")])
        ),
        Err(TransferEncodingInHttp10)
    );
    assert_eq!(
        check_framing(http::Version::HTTP_10, &map(&[("content-length", "1")])),
        Ok(())
    );
}

#[test]
fn host_values() {
    for good in [
        "a",
        "a.example",
        "A.Example.:8080",
        "127.0.0.1:80",
        "[::1]",
        "[::1]:8080",
        "x_y-z~%41",
        "",
        "a:",
    ] {
        assert!(host_is_valid(good.as_bytes()), "{good:?}");
    }
    for bad in [
        "a b", "a,b", "u@a", "a/b", "a:8o", "[::1", "[]", "[::1]x", ":80", "a:1:2", "a\tb", "ü",
    ] {
        assert!(!host_is_valid(bad.as_bytes()), "{bad:?}");
    }
}

#[test]
fn via_elements_and_appending() {
    let via = Via::new(&ViaName::new("edge")).unwrap();
    assert_eq!(via.h1().line(1), b"via: 1.1 edge\r\n");
    assert_eq!(via.h1().element(0), b"1.0 edge");
    assert_eq!(via.element(http::Version::HTTP_11), "1.1 edge");
    assert_eq!(via.element(http::Version::HTTP_10), "1.0 edge");
    assert_eq!(via.element(http::Version::HTTP_2), "2 edge");
    let mut headers = HeaderMap::new();
    append_via(&mut headers, via.element(http::Version::HTTP_11));
    assert_eq!(headers["via"], "1.1 edge");
    let mut headers = map(&[("via", "1.0 a"), ("via", "1.1 b")]);
    append_via(&mut headers, via.element(http::Version::HTTP_2));
    assert_eq!(
        headers.get_all("via").iter().collect::<Vec<_>>(),
        ["1.0 a, 1.1 b, 2 edge"]
    );
}

#[test]
fn content_length_must_be_plain_digits() {
    assert_eq!(parse_content_length(b"0"), Some(0));
    assert_eq!(parse_content_length(b"65536"), Some(65536));
    assert_eq!(
        parse_content_length(b"9999999999999999999"),
        Some(9_999_999_999_999_999_999)
    );
    for bad in ["+5", "5, 5", " 5", "", "00", "007", "5a", "\u{663}"] {
        assert_eq!(parse_content_length(bad.as_bytes()), None, "{bad:?}");
    }
}

#[test]
fn head_scanner_finds_length_with_encoding_in_any_order_and_split_anywhere() {
    let heads: [&[u8]; 4] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nX: y\r\ncontent-length: 5\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nhost: a\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
        // After a body that does not end in a line break: the request line is merged with it.
        b"GET / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcPOST / HTTP/1.1\nTransfer-Encoding:\tchunked\nContent-Length: 1\n\n",
    ];
    for head in heads {
        for split in 0..head.len() {
            let mut scanner = HeadScanner::default();
            scanner.feed(&head[..split]);
            assert!(
                scanner.feed(&head[split..]).is_some(),
                "missed at split {split}: {:?}",
                String::from_utf8_lossy(head)
            );
        }
    }
}

#[test]
fn head_scanner_passes_ordinary_heads_bodies_and_h2c() {
    let ordinary: [&[u8]; 4] = [
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhelloPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        // Both names, but in a body line block that follows no request line.
        b"POST / HTTP/1.1\r\nContent-Length: 58\r\n\r\nnotes\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        b"GET / HTTP/1.1\r\nX-Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nGET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
    ];
    for bytes in ordinary {
        let mut scanner = HeadScanner::default();
        assert!(
            scanner.feed(bytes).is_none(),
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn request_id_is_kept_when_sane_and_generated_otherwise() {
    let mut headers = map(&[("x-request-id", "abc-123")]);
    assert_eq!(ensure_request_id(&mut headers), "abc-123");
    let mut headers = map(&[("x-request-id", "has space")]);
    let id = ensure_request_id(&mut headers);
    assert_eq!(id.len(), 36);
    let parsed = uuid::Uuid::parse_str(id.to_str().unwrap()).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(parsed.get_variant(), uuid::Variant::RFC4122);
    assert_eq!(headers.get(&X_REQUEST_ID), Some(&id));
    let mut headers = HeaderMap::new();
    assert_ne!(
        ensure_request_id(&mut headers),
        ensure_request_id(&mut HeaderMap::new())
    );
}

#[test]
fn forwarded_headers_overwrite_unless_trusted() {
    let host = HeaderValue::from_static("app.test");
    let mut headers = map(&[
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-proto", "https"),
    ]);
    set_forwarded(
        &mut headers,
        &client_address_value("127.0.0.1".parse().unwrap()),
        "http",
        Some(&host),
        false,
    );
    assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(headers["x-forwarded-host"], "app.test");

    let mut headers = map(&[
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-for", "10.0.0.2"),
        ("x-forwarded-proto", "https"),
    ]);
    set_forwarded(
        &mut headers,
        &client_address_value("127.0.0.1".parse().unwrap()),
        "http",
        Some(&host),
        true,
    );
    assert_eq!(headers["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "https");
}
