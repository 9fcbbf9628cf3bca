use super::*;
use crate::message::fields::Fields;

fn sample(route: &str, id: &str) -> DivergentPair {
    let excerpt = MessageExcerpt {
        status: None,
        headers: BTreeMap::new(),
        body: String::new(),
        body_truncated: false,
    };
    DivergentPair {
        time: String::new(),
        route: route.into(),
        shadow: "s".into(),
        method: "GET".into(),
        path: "/".into(),
        request_id: id.into(),
        result: "diverged",
        differences: Vec::new(),
        latency_ms: LatencyPair {
            primary: 1.0,
            shadow: 1.0,
        },
        request: excerpt.clone(),
        primary: excerpt.clone(),
        shadow_response: excerpt,
    }
}

#[test]
fn store_is_bounded_per_route_and_in_total() {
    let mut store = SampleStore::new(2, 3);
    for (route, id) in [("a", "1"), ("a", "2"), ("a", "3"), ("b", "4"), ("b", "5")] {
        store.push(sample(route, id));
    }
    assert_eq!(store.len(), 3);
    let ids: Vec<String> = store
        .recent(None, 10)
        .into_iter()
        .map(|s| s.request_id)
        .collect();
    assert_eq!(ids, vec!["5", "4", "3"]);
    let only_a: Vec<String> = store
        .recent(Some("a"), 10)
        .into_iter()
        .map(|s| s.request_id)
        .collect();
    assert_eq!(only_a, vec!["3"]);
}

#[test]
fn secrets_are_redacted_in_headers_bodies_and_differences() {
    let redactor = Redactor {
        headers: ["authorization", "cookie"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        pointers: vec![
            PointerPattern::parse("/user/email").unwrap(),
            PointerPattern::parse("/tokens/*").unwrap(),
        ],
    };
    let headers = Fields::from_pairs([
        ("Authorization", "Bearer secret"),
        ("x-ok", "visible"),
        ("X-Ok", "twice"),
    ]);
    let shown = redactor.fields(headers.iter());
    assert_eq!(shown["authorization"], REDACTED);
    assert_eq!(shown["x-ok"], "visible, twice");
    let body =
        Bytes::from_static(br#"{"user":{"email":"a@b.c","name":"ann"},"tokens":["t1","t2"]}"#);
    let (text, _) = redactor.body(&body, 1000);
    assert!(!text.contains("a@b.c") && !text.contains("t1"), "{text}");
    assert!(text.contains("ann"));
    let difference = Difference {
        kind: DiffKind::Body,
        path: "/user/email".into(),
        field: "/user/email".into(),
        change: "changed",
        primary: Some("\"a@b.c\"".into()),
        shadow: Some("\"x@y.z\"".into()),
        excerpt: None,
        noise: None,
    };
    let shown = redactor.differences(&[difference]);
    assert_eq!(shown[0].primary.as_deref(), Some(REDACTED));
}

#[test]
fn values_above_a_redacted_pointer_are_redacted_inside() {
    let redactor = Redactor {
        headers: BTreeSet::new(),
        pointers: vec![PointerPattern::parse("/accounts/*/iban").unwrap()],
    };
    let above = |path: &str, change: &'static str, primary: Option<&str>, shadow: Option<&str>| {
        let difference = Difference {
            kind: DiffKind::Body,
            path: path.into(),
            field: path.into(),
            change,
            primary: primary.map(str::to_string),
            shadow: shadow.map(str::to_string),
            excerpt: None,
            noise: None,
        };
        redactor.differences(&[difference]).remove(0)
    };
    let added = above(
        "/accounts/1",
        "added",
        None,
        Some(r#"{"iban":"DE00 secret","kind":"savings"}"#),
    );
    assert_eq!(
        added.shadow.as_deref(),
        Some(r#"{"iban":"[REDACTED]","kind":"savings"}"#)
    );
    // A value cut at the report limit does not parse: hidden whole.
    let cut = above(
        "",
        "type_changed",
        Some(r#"{"accounts":[{"iban":"DE00…"#),
        Some("[]"),
    );
    assert_eq!(cut.primary.as_deref(), Some(REDACTED));
    assert_eq!(cut.shadow.as_deref(), Some("[]"));
    // Counts are not values.
    let length = above("/accounts", "length_changed", Some("1"), Some("2"));
    assert_eq!(length.primary.as_deref(), Some("1"));
}

#[test]
fn bodies_that_do_not_parse_are_withheld_when_pointers_are_configured() {
    let redactor = Redactor {
        headers: BTreeSet::new(),
        pointers: vec![PointerPattern::parse("/user/email").unwrap()],
    };
    let cut = Bytes::from_static(br#"{"user":{"email":"a@b.c","name":"an"#);
    assert_eq!(redactor.body(&cut, 1000), (WITHHELD.to_string(), false));
    assert_eq!(redactor.body(&Bytes::new(), 1000), (String::new(), false));
    let text = Difference {
        kind: DiffKind::Body,
        path: String::new(),
        field: String::new(),
        change: "text_changed",
        primary: Some("-1 lines".into()),
        shadow: Some("+1 lines".into()),
        excerpt: Some("-a@b.c\n+x@y.z\n".into()),
        noise: None,
    };
    let shown = redactor.differences(&[text]).remove(0);
    assert_eq!(shown.excerpt.as_deref(), Some(WITHHELD));
    assert_eq!(shown.primary.as_deref(), Some("-1 lines"));
    // Without pointers, bodies are shown as they are.
    let plain = Redactor::default();
    assert_eq!(plain.body(&cut, 1000).0, String::from_utf8_lossy(&cut));
}
