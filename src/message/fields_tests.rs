use super::*;

#[test]
fn parsed_fields_are_views_in_order_and_lookups_ignore_case() {
    let head = b"X-Forwarded-For: 10.0.0.1\r\nVary: a\r\nvary: b\r\n";
    let shared = Bytes::copy_from_slice(head);
    let parsed = [
        (&head[0..15], &head[17..25]),
        (&head[27..31], &head[33..34]),
        (&head[36..40], &head[42..43]),
    ];
    let fields = Fields::from_parsed(head, shared.clone(), 3, parsed.into_iter());
    let all: Vec<_> = fields.iter().collect();
    assert_eq!(
        all,
        [
            (&b"X-Forwarded-For"[..], &b"10.0.0.1"[..]),
            (b"Vary", b"a"),
            (b"vary", b"b")
        ]
    );
    assert_eq!(fields.get("x-forwarded-for"), Some(&b"10.0.0.1"[..]));
    assert_eq!(
        fields.get_all("VARY").collect::<Vec<_>>(),
        [&b"a"[..], b"b"]
    );
    assert_eq!(fields.get("absent"), None);
    // No copy: the fields share the head's buffer.
    assert_eq!(fields.buf.as_ptr(), shared.as_ptr());
}

#[test]
fn recorded_spans_are_the_fields_of_the_lines_they_name() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nx-empty: \r\n\r\n";
    let spans = vec![
        FieldSpan::of_line(16, 4, 25).unwrap(),
        FieldSpan::of_line(25, 7, 36).unwrap(),
        // Past the end of the head: left out.
        FieldSpan::of_line(36, 4, 45).unwrap(),
    ];
    let fields = Fields::from_spans(Bytes::from_static(head), spans);
    let all: Vec<_> = fields.iter().collect();
    assert_eq!(all, [(&b"Host"[..], &b"a"[..]), (b"x-empty", b"")]);
    assert_eq!(FieldSpan::of_line(10, 4, 12), None, "shorter than its name");
}

#[test]
fn a_borrowed_view_a_copy_and_a_map_answer_lookups_alike() {
    let head = b"GET / HTTP/1.1\r\nCookie: a=1\r\nX-User: 7\r\ncookie: b=2\r\n\r\n";
    let spans = vec![
        FieldSpan::of_line(16, 6, 29).unwrap(),
        FieldSpan::of_line(29, 6, 40).unwrap(),
        FieldSpan::of_line(40, 6, 53).unwrap(),
        // Past the end of the head: skipped by the view, left out of the copy.
        FieldSpan::of_line(53, 4, 70).unwrap(),
    ];
    let view = FieldsView::new(head, &spans);
    let copy = Fields::from_spans(Bytes::from_static(head), spans.clone());
    let map = copy.to_map();
    fn answers(lookup: &impl FieldLookup) -> (Option<Vec<u8>>, Vec<Vec<u8>>, bool) {
        (
            lookup.first("x-user").map(<[u8]>::to_vec),
            lookup.every("cookie").map(<[u8]>::to_vec).collect(),
            lookup.first("x-missing").is_none(),
        )
    }
    let expected = (
        Some(b"7".to_vec()),
        vec![b"a=1".to_vec(), b"b=2".to_vec()],
        true,
    );
    assert_eq!(answers(&view), expected);
    assert_eq!(answers(&copy), expected);
    assert_eq!(answers(&map), expected);
}

#[test]
fn a_field_outside_the_head_is_copied_not_lost() {
    let head = b"A: 1\r\n";
    let elsewhere = b"B";
    let parsed = [(&head[0..1], &head[3..4]), (&elsewhere[..], &b""[..])];
    let fields = Fields::from_parsed(head, Bytes::copy_from_slice(head), 2, parsed.into_iter());
    let all: Vec<_> = fields.iter().collect();
    assert_eq!(all, [(&b"A"[..], &b"1"[..]), (b"B", b"")]);
}

#[test]
fn maps_round_trip_with_lowercase_names_and_repeated_values() {
    let fields = Fields::from_pairs([("Content-Type", "text/plain"), ("Vary", "a"), ("vary", "b")]);
    let map = fields.to_map();
    assert_eq!(map["content-type"], "text/plain");
    assert_eq!(map.get_all("vary").iter().count(), 2);
    let back = Fields::from_map(&map);
    assert_eq!(
        back.iter().collect::<Vec<_>>(),
        [
            (&b"content-type"[..], &b"text/plain"[..]),
            (b"vary", b"a"),
            (b"vary", b"b")
        ]
    );
    assert_eq!((back.len(), Fields::default().is_empty()), (3, true));
}

/// `write_lines` writes exactly what one `name: value\r\n` per kept field would, whether the
/// fields stand in their buffer as such lines (copied in runs) or not (padded values, no
/// space, bare LF, fields from a map), whichever fields the filter leaves out.
#[test]
fn written_lines_are_the_kept_fields_one_line_each() {
    let heads: [&[u8]; 4] = [
        b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nX-One: 1\r\nX-Two: 2\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost:a\r\nAccept:  */*  \r\nX-One: 1\r\nX-Two:\t2\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\nX-One: 1\nX-Empty: \r\nX-Two: 2\n\n",
        b"GET / HTTP/1.1\r\nX-One: 1\r\nX-Drop: 0\r\nX-Two: 2\r\nX-Drop: 9\r\nHost: a\r\n\r\n",
    ];
    let mut all = Vec::new();
    for head in heads {
        let mut parsed = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut parsed);
        assert!(request.parse(head).unwrap().is_complete());
        let fields = Fields::from_parsed(
            head,
            Bytes::copy_from_slice(head),
            request.headers.len(),
            request.headers.iter().map(|f| (f.name.as_bytes(), f.value)),
        );
        all.push(Fields::from_map(&fields.to_map()));
        all.push(fields);
    }
    let filters: [fn(&[u8]) -> bool; 3] = [
        |_| true,
        |name| !name.eq_ignore_ascii_case(b"x-drop"),
        |name| name.eq_ignore_ascii_case(b"x-two"),
    ];
    for fields in &all {
        for keep in filters {
            let mut expected = Vec::new();
            for (name, value) in fields.iter().filter(|(name, _)| keep(name)) {
                expected.extend_from_slice(&[name, b": ", value, b"\r\n"].concat());
            }
            let mut written = b"start\r\n".to_vec();
            fields.write_lines(&mut written, keep);
            assert_eq!(
                String::from_utf8_lossy(&written[7..]),
                String::from_utf8_lossy(&expected),
                "{fields:?}"
            );
        }
    }
}
