use super::*;
use http::StatusCode;
use std::time::Duration;

fn response(status: u16, content_type: &'static str, body: &'static str) -> CapturedResponse {
    CapturedResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers: Fields::from_pairs([("Content-Type", content_type)]),
        body: Bytes::from_static(body.as_bytes()),
        truncated: false,
        over_budget: false,
        held: crate::shadow::budget::Held::nothing(),
        latency: Duration::from_millis(1),
    }
}

/// `fields` with `more` appended.
fn with(fields: &Fields, more: &[(&str, &str)]) -> Fields {
    let owned: Vec<(String, String)> = fields
        .iter()
        .map(|(name, value)| {
            (
                String::from_utf8_lossy(name).into_owned(),
                String::from_utf8_lossy(value).into_owned(),
            )
        })
        .collect();
    Fields::from_pairs(
        owned
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .chain(more.iter().copied()),
    )
}

fn rules() -> CompareRules {
    CompareRules {
        ignored_headers: headers::NameSet::new(
            headers::DEFAULT_IGNORED
                .iter()
                .chain(headers::FRAMING)
                .copied(),
        ),
        json: json::JsonRules::default(),
        max_decoded_bytes: 1 << 20,
    }
}

#[test]
fn identical_answers_match() {
    let a = response(200, "application/json", r#"{"a":1}"#);
    assert!(compare(&a, &a.clone(), &rules()).differences.is_empty());
}

#[test]
fn status_header_and_json_body_differences_are_reported_in_order() {
    let a = response(200, "application/json", r#"{"a":1,"b":[1,2]}"#);
    let mut b = response(500, "application/json", r#"{"a":2,"b":[1,2]}"#);
    b.headers = with(&b.headers, &[("x-new", "1"), ("date", "ignored")]);
    let found = compare(&a, &b, &rules()).differences;
    let summary: Vec<(DiffKind, &str, &str)> = found
        .iter()
        .map(|d| (d.kind, d.path.as_str(), d.change))
        .collect();
    assert_eq!(
        summary,
        vec![
            (DiffKind::Status, "", "changed"),
            (DiffKind::Header, "x-new", "added"),
            (DiffKind::Body, "/a", "changed"),
        ]
    );
}

#[test]
fn semantically_equal_json_matches_despite_formatting() {
    let a = response(
        200,
        "application/json; charset=utf-8",
        r#"{"a": 1, "b": 2}"#,
    );
    let b = response(200, "application/json", r#"{"b":2,"a":1}"#);
    let found = compare(&a, &b, &rules()).differences;
    assert_eq!(
        found.len(),
        1,
        "only the content-type parameter differs: {found:?}"
    );
    assert_eq!(found[0].path, "content-type");
}

#[test]
fn invalid_json_on_one_side_is_a_body_difference() {
    let a = response(200, "application/json", r#"{"a":1}"#);
    let b = response(200, "application/json", r#"{"a":"#);
    let found = compare(&a, &b, &rules()).differences;
    assert_eq!(found[0].change, "invalid_json");
    assert_eq!(found[0].shadow.as_deref(), Some("invalid JSON"));
}

#[test]
fn text_and_binary_bodies() {
    let a = response(200, "text/plain", "one\ntwo\n");
    let b = response(200, "text/plain", "one\nthree\n");
    let found = compare(&a, &b, &rules()).differences;
    assert_eq!(found[0].change, "text_changed");
    assert!(found[0].excerpt.as_deref().unwrap().contains("+three"));
    let a = response(200, "image/png", "\u{1}\u{2}");
    let b = response(200, "image/png", "\u{1}\u{3}");
    let found = compare(&a, &b, &rules()).differences;
    assert_eq!(found[0].change, "bytes_changed");
    assert_ne!(found[0].primary, found[0].shadow);
}

#[test]
fn gzip_on_one_side_only_is_decoded_before_comparing() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let a = response(200, "application/json", r#"{"a":1}"#);
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(br#"{"a":1}"#).unwrap();
    let mut b = response(200, "application/json", "");
    b.body = Bytes::from(encoder.finish().unwrap());
    b.headers = with(&b.headers, &[("content-encoding", "gzip")]);
    let result = compare(&a, &b, &rules());
    assert!(result.differences.is_empty(), "{:?}", result.differences);
}

#[test]
fn bombs_and_truncated_bodies_skip_the_body_comparison() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let a = response(200, "application/json", r#"{"a":1}"#);
    let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&vec![b' '; 4 << 20]).unwrap();
    let mut b = response(200, "application/json", "");
    b.body = Bytes::from(encoder.finish().unwrap());
    b.headers = with(&b.headers, &[("content-encoding", "gzip")]);
    assert_eq!(
        compare(&a, &b, &rules()).body_skipped,
        Some(BodySkip::DecompressionBomb)
    );
    let mut c = a.clone();
    c.truncated = true;
    assert_eq!(
        compare(&a, &c, &rules()).body_skipped,
        Some(BodySkip::Truncated)
    );
}

#[test]
fn a_body_dropped_for_the_memory_budget_skips_the_body_but_not_the_rest() {
    let a = response(200, "application/json", r#"{"a":1}"#);
    let mut b = response(500, "application/json", "");
    b.over_budget = true;
    b.truncated = true;
    let comparison = compare(&a, &b, &rules());
    assert_eq!(comparison.body_skipped, Some(BodySkip::MemoryBudget));
    assert_eq!(BodySkip::MemoryBudget.as_str(), "memory_budget");
    assert!(
        comparison
            .differences
            .iter()
            .any(|d| d.kind == DiffKind::Status),
        "the status is still compared: {:?}",
        comparison.differences
    );
}
