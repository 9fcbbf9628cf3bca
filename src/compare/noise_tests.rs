use super::*;

fn body(path: &str, field: &str, primary: &str, shadow: &str) -> Difference {
    Difference {
        kind: DiffKind::Body,
        path: path.into(),
        field: field.into(),
        change: "changed",
        primary: Some(primary.into()),
        shadow: Some(shadow.into()),
        excerpt: None,
        noise: None,
    }
}

fn settings(learn_after: u64) -> LearnSettings {
    LearnSettings {
        learn_after,
        learn_ratio: 0.5,
        max_fields: 100,
        max_endpoints: 100,
    }
}

fn endpoint(name: &str) -> Endpoint {
    endpoint_at(0, name)
}

fn endpoint_at(id: usize, name: &str) -> Endpoint {
    Endpoint {
        id,
        name: Arc::from(name),
    }
}

#[test]
fn volatile_shapes() {
    for value in [
        "\"2026-11-22T10:00:00Z\"",
        "\"3f2504e0-4f89-11d3-9a0c-0305e82c3301\"",
        "1763800000",
        "\"a9f3k2l1m0q8w7e6r5\"",
    ] {
        assert!(looks_volatile(Some(value)), "{value}");
    }
    for value in [
        "\"pro\"",
        "42",
        "true",
        "\"hello world this is text\"",
        "\"\"",
    ] {
        assert!(!looks_volatile(Some(value)), "{value}");
    }
    assert!(!looks_volatile(None));
}

#[test]
fn timestamps_are_learned_after_enough_pairs_and_real_changes_are_not() {
    let model = NoiseModel::new(BTreeMap::new(), settings(10));
    for i in 0..10 {
        let mut diffs = vec![
            body(
                "/served_at",
                "/served_at",
                &format!("{}", 1_763_800_000 + i),
                &format!("{}", 1_763_800_500 + i),
            ),
            body("/plan", "/plan", "\"pro\"", "\"free\""),
        ];
        model.classify(&endpoint("GET /x"), &mut diffs, None, None);
        assert!(
            diffs.iter().all(|d| d.noise.is_none()),
            "nothing learned before 10 pairs"
        );
    }
    let mut diffs = vec![
        body("/served_at", "/served_at", "1763800100", "1763800900"),
        body("/plan", "/plan", "\"pro\"", "\"free\""),
    ];
    model.classify(&endpoint("GET /x"), &mut diffs, None, None);
    assert_eq!(diffs[0].noise, Some(NoiseReason::Learned));
    assert_eq!(
        diffs[1].noise, None,
        "a stable value change is a regression, not noise"
    );
    let report = model.report(10);
    let learned: Vec<&str> = report
        .iter()
        .filter(|f| f.state == "learned")
        .map(|f| f.field.as_str())
        .collect();
    assert_eq!(learned, vec!["/served_at"]);
    assert!(report
        .iter()
        .any(|f| f.field == "/plan" && f.state == "candidate"));
}

#[test]
fn rare_differences_are_not_learned() {
    let model = NoiseModel::new(BTreeMap::new(), settings(5));
    for i in 0..20 {
        let mut diffs = if i % 5 == 0 {
            vec![body(
                "/id",
                "/id",
                "\"3f2504e0-4f89-11d3-9a0c-0305e82c3301\"",
                "\"4f2504e0-4f89-11d3-9a0c-0305e82c3301\"",
            )]
        } else {
            Vec::new()
        };
        model.classify(&endpoint("GET /x"), &mut diffs, None, None);
        assert!(diffs.iter().all(|d| d.noise.is_none()));
    }
}

#[test]
fn pins_override_and_secondary_marks_shared_differences() {
    let mut pins = BTreeMap::new();
    pins.insert("/a".to_string(), Pin::Noise);
    pins.insert("/b".to_string(), Pin::Signal);
    let model = NoiseModel::new(pins, settings(0));
    let mut diffs = vec![
        body("/a", "/a", "1", "2"),
        body("/b", "/b", "1", "2"),
        body("/c", "/c", "1", "2"),
    ];
    let secondary = vec![body("/b", "/b", "1", "3"), body("/c", "/c", "1", "3")];
    model.classify(&endpoint("GET /x"), &mut diffs, Some(&secondary), None);
    assert_eq!(diffs[0].noise, Some(NoiseReason::Pinned));
    assert_eq!(diffs[1].noise, None, "signal pin beats the secondary");
    assert_eq!(diffs[2].noise, Some(NoiseReason::Secondary));
}

#[test]
fn a_field_the_secondary_ever_disagrees_on_stays_noise_when_it_happens_to_agree() {
    let model = NoiseModel::new(BTreeMap::new(), settings(0));
    let mut first = vec![body("/at", "/at", "1", "2")];
    model.classify(
        &endpoint("GET /x"),
        &mut first,
        Some(&[body("/at", "/at", "1", "3")]),
        None,
    );
    assert_eq!(first[0].noise, Some(NoiseReason::Secondary));
    // Next pair: primary and secondary agree on /at, the shadow does not.
    let mut second = vec![
        body("/at", "/at", "5", "6"),
        body("/plan", "/plan", "\"a\"", "\"b\""),
    ];
    model.classify(&endpoint("GET /x"), &mut second, Some(&[]), None);
    assert_eq!(second[0].noise, Some(NoiseReason::Secondary));
    assert_eq!(second[1].noise, None);
    let report = model.report(10);
    assert!(report
        .iter()
        .any(|f| f.field == "/at" && f.state == "secondary_noise" && f.secondary_pairs == 1));
}

fn volatile_pair(i: u64) -> Difference {
    body(
        "/served_at",
        "/served_at",
        &format!("\"2026-11-22T10:00:{:02}.{i:09}Z\"", i % 60),
        &format!("\"2026-11-22T10:00:{:02}.{:09}Z\"", i % 60, i + 1),
    )
}

/// Behind a catch-all route, a timestamp only one endpoint carries is a fifth of the
/// route's pairs, but every one of that endpoint's: it is learned there, after
/// `learn_after` of that endpoint's pairs, and nowhere else.
#[test]
fn a_field_of_one_endpoint_is_learned_behind_a_catch_all() {
    let model = NoiseModel::new(BTreeMap::new(), settings(10));
    let endpoints: Vec<Endpoint> = ["GET /a", "GET /b", "GET /c", "GET /d", "GET /e"]
        .into_iter()
        .enumerate()
        .map(|(id, name)| endpoint_at(id, name))
        .collect();
    let mut diverged_after_warm_up = 0;
    for i in 0..200u64 {
        for (n, name) in endpoints.iter().enumerate() {
            let mut diffs = if n == 0 {
                vec![volatile_pair(i)]
            } else {
                Vec::new()
            };
            model.classify(name, &mut diffs, None, None);
            if n == 0 && i >= 10 && diffs.iter().any(|d| d.noise.is_none()) {
                diverged_after_warm_up += 1;
            }
        }
    }
    assert_eq!(diverged_after_warm_up, 0);
    let report = model.report(10);
    let entry = report
        .iter()
        .find(|f| f.field == "/served_at")
        .expect("tracked");
    assert_eq!(entry.state, "learned");
    assert_eq!(entry.endpoint.as_deref(), Some("GET /a"));
    assert_eq!(
        (entry.present_pairs, entry.endpoint_pairs, entry.route_pairs),
        (200, 200, 1000)
    );
    let learned = model.learned_fields();
    assert_eq!(learned[&endpoints[0].name], vec!["/served_at".to_string()]);
    assert!(learned[&endpoints[1].name].is_empty());
}

fn answer() -> CapturedResponse {
    CapturedResponse::over_budget(
        http::StatusCode::OK,
        crate::message::fields::Fields::from_pairs([]),
    )
}

/// An endpoint whose error answers (one in four) carry a trace id: the id differs in every
/// pair that has it, so it is learned, although it differs in only a quarter of the
/// endpoint's pairs. When the bodies were not parsed, presence is unknown and the field is
/// counted present: the cautious side.
#[test]
fn share_is_taken_over_the_pairs_in_which_the_field_is_present() {
    for parsed in [true, false] {
        let model = NoiseModel::new(BTreeMap::new(), settings(10));
        let name = endpoint("GET /orders/{id}");
        let (primary, shadow) = (answer(), answer());
        let mut last = None;
        for i in 0..80u64 {
            let error = i % 4 == 0;
            let trace = |n: u64| format!("\"3f2504e0-4f89-11d3-9a0c-{n:012x}\"");
            let doc = |n: u64| {
                let mut doc = serde_json::json!({ "served_at": n, "plan": "pro" });
                if error {
                    doc["error"] = serde_json::json!({ "trace_id": trace(n) });
                }
                doc
            };
            let (a, b) = (doc(1_763_800_000 + i), doc(1_763_900_000 + i));
            let mut diffs = vec![body(
                "/served_at",
                "/served_at",
                &(1_763_800_000 + i).to_string(),
                &(1_763_900_000 + i).to_string(),
            )];
            if error {
                diffs.push(body(
                    "/error/trace_id",
                    "/error/trace_id",
                    &trace(i),
                    &trace(i + 1000),
                ));
            }
            let observed = Observed {
                primary: &primary,
                shadow: &shadow,
                documents: parsed.then_some((&a, &b)),
            };
            model.classify(&name, &mut diffs, None, Some(&observed));
            if error {
                last = diffs.get(1).map(|d| d.noise);
            }
        }
        let want = if parsed {
            Some(Some(NoiseReason::Learned))
        } else {
            Some(None)
        };
        assert_eq!(last, want, "parsed: {parsed}");
        let report = model.report(10);
        let trace = report
            .iter()
            .find(|f| f.field == "/error/trace_id")
            .expect("tracked");
        let present = if parsed { 20 } else { 80 };
        assert_eq!(
            (trace.present_pairs, trace.differing_pairs),
            (present, 20),
            "{trace:?}"
        );
    }
}

/// The case the whole feature must not break: once an endpoint's timestamps and ids are
/// learned, a changed stable field right next to them is still a divergence, every time,
/// with its path; so is a stable field that starts to change only after learning.
#[test]
fn a_regression_next_to_learned_noise_still_diverges() {
    let model = NoiseModel::new(BTreeMap::new(), settings(10));
    let name = endpoint("GET /users/{id}");
    let trace = |n: u64| format!("\"3f2504e0-4f89-11d3-9a0c-{n:012x}\"");
    for i in 0..100u64 {
        let mut diffs = vec![
            volatile_pair(i),
            body("/trace_id", "/trace_id", &trace(i), &trace(i + 500)),
        ];
        let regression = i >= 30;
        if regression {
            diffs.push(body("/plan", "/plan", "\"pro\"", "\"basic\""));
            diffs.push(body(
                "/items/3/price",
                "/items/*/price",
                "\"19.99\"",
                "\"21.99\"",
            ));
        }
        model.classify(&name, &mut diffs, None, None);
        if i >= 10 {
            assert_eq!(diffs[0].noise, Some(NoiseReason::Learned), "pair {i}");
            assert_eq!(diffs[1].noise, Some(NoiseReason::Learned), "pair {i}");
        }
        if regression {
            assert_eq!(diffs[2].noise, None, "pair {i}: /plan is a regression");
            assert_eq!(diffs[3].noise, None, "pair {i}: the price is a regression");
            assert_eq!(diffs[3].path, "/items/3/price");
        }
    }
}

/// Endpoints learn apart: what one endpoint's pairs teach never changes how another
/// endpoint's differences are classified, whatever the two sequences are.
mod isolation {
    use super::*;
    use proptest::prelude::*;

    fn pair(kind: u8, i: u64) -> Vec<Difference> {
        match kind % 4 {
            0 => Vec::new(),
            1 => vec![volatile_pair(i)],
            2 => vec![body("/plan", "/plan", "\"pro\"", "\"free\"")],
            _ => vec![volatile_pair(i), body("/n", "/n", "1", "2")],
        }
    }

    proptest! {
        #[test]
        fn another_endpoint_never_changes_a_verdict(
            ours in proptest::collection::vec(0u8..4, 1..80),
            theirs in proptest::collection::vec(0u8..4, 0..80),
            learn_after in 1u64..12,
        ) {
            let alone = NoiseModel::new(BTreeMap::new(), settings(learn_after));
            let mixed = NoiseModel::new(BTreeMap::new(), settings(learn_after));
            let (a, b) = (endpoint_at(0, "GET /a"), endpoint_at(1, "GET /b"));
            let mut other = theirs.iter().enumerate();
            for (i, kind) in ours.iter().enumerate() {
                let mut left = pair(*kind, i as u64);
                let mut right = left.clone();
                alone.classify(&a, &mut left, None, None);
                if let Some((j, their)) = other.next() {
                    mixed.classify(&b, &mut pair(*their, j as u64), None, None);
                }
                mixed.classify(&a, &mut right, None, None);
                prop_assert_eq!(left, right);
            }
        }
    }
}

#[path = "noise_learning_tests.rs"]
mod learning;
