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
        model.classify(&mut diffs, None);
        assert!(
            diffs.iter().all(|d| d.noise.is_none()),
            "nothing learned before 10 pairs"
        );
    }
    let mut diffs = vec![
        body("/served_at", "/served_at", "1763800100", "1763800900"),
        body("/plan", "/plan", "\"pro\"", "\"free\""),
    ];
    model.classify(&mut diffs, None);
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
        model.classify(&mut diffs, None);
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
    model.classify(&mut diffs, Some(&secondary));
    assert_eq!(diffs[0].noise, Some(NoiseReason::Pinned));
    assert_eq!(diffs[1].noise, None, "signal pin beats the secondary");
    assert_eq!(diffs[2].noise, Some(NoiseReason::Secondary));
}

#[test]
fn a_field_the_secondary_ever_disagrees_on_stays_noise_when_it_happens_to_agree() {
    let model = NoiseModel::new(BTreeMap::new(), settings(0));
    let mut first = vec![body("/at", "/at", "1", "2")];
    model.classify(&mut first, Some(&[body("/at", "/at", "1", "3")]));
    assert_eq!(first[0].noise, Some(NoiseReason::Secondary));
    // Next pair: primary and secondary agree on /at, the shadow does not.
    let mut second = vec![
        body("/at", "/at", "5", "6"),
        body("/plan", "/plan", "\"a\"", "\"b\""),
    ];
    model.classify(&mut second, Some(&[]));
    assert_eq!(second[0].noise, Some(NoiseReason::Secondary));
    assert_eq!(second[1].noise, None);
    let report = model.report(10);
    assert!(report
        .iter()
        .any(|f| f.field == "/at" && f.state == "secondary_noise" && f.secondary_pairs == 1));
}
