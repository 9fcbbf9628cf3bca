use super::*;
use serde_json::json;

fn kinds(changes: &[JsonChange]) -> Vec<(&str, ChangeKind)> {
    changes
        .iter()
        .map(|c| (c.pointer.as_str(), c.kind))
        .collect()
}

fn rules() -> JsonRules {
    JsonRules::default()
}

#[test]
fn equal_documents_have_no_changes() {
    let doc = json!({"a": 1, "b": [1, 2, {"c": null}], "d": "x"});
    assert!(diff(&doc, &doc.clone(), &rules()).is_empty());
}

#[test]
fn nested_objects_report_added_removed_changed_and_type_changes() {
    let primary = json!({"user": {"id": 7, "name": "ann", "plan": "pro", "age": 30}});
    let shadow = json!({"user": {"id": "7", "name": "ann", "plan": "free", "email": "a@x"}});
    let changes = diff(&primary, &shadow, &rules());
    assert_eq!(
        kinds(&changes),
        vec![
            ("/user/age", ChangeKind::Removed),
            ("/user/id", ChangeKind::TypeChanged),
            ("/user/plan", ChangeKind::Changed),
            ("/user/email", ChangeKind::Added),
        ]
    );
    let plan = &changes[2];
    assert_eq!(plan.primary.as_deref(), Some("\"pro\""));
    assert_eq!(plan.shadow.as_deref(), Some("\"free\""));
    assert_eq!(changes[0].shadow, None);
}

#[test]
fn arrays_report_length_changes_and_extra_elements_with_indexed_pointers() {
    let primary = json!({"items": [{"v": 1}, {"v": 2}, {"v": 3}]});
    let shadow = json!({"items": [{"v": 1}, {"v": 20}]});
    let changes = diff(&primary, &shadow, &rules());
    assert_eq!(
        kinds(&changes),
        vec![
            ("/items", ChangeKind::LengthChanged),
            ("/items/1/v", ChangeKind::Changed),
            ("/items/2", ChangeKind::Removed),
        ]
    );
    assert_eq!(changes[1].field, "/items/*/v");
}

#[test]
fn wildcard_ignore_rules_skip_whole_subtrees() {
    let primary = json!({"items": [{"id": 1, "updated_at": "t1"}, {"id": 2, "updated_at": "t2"}], "meta": {"ts": 1}});
    let shadow = json!({"items": [{"id": 1, "updated_at": "t9"}, {"id": 2, "updated_at": "t8"}], "meta": {"ts": 2}});
    let rules = JsonRules {
        ignore: vec![
            PointerPattern::parse("/items/*/updated_at").unwrap(),
            PointerPattern::parse("/meta").unwrap(),
        ],
        ..rules()
    };
    assert!(diff(&primary, &shadow, &rules).is_empty());
    let noisy = json!({"items": [{"id": 1, "updated_at": "t1"}, {"id": 3, "updated_at": "t2"}], "meta": {}});
    assert_eq!(
        kinds(&diff(&primary, &noisy, &rules)),
        vec![("/items/1/id", ChangeKind::Changed)]
    );
}

#[test]
fn unordered_arrays_match_as_multisets() {
    let primary = json!({"tags": ["a", "b", "c", "c"], "rows": [{"k": 1}, {"k": 2}]});
    let shadow = json!({"tags": ["c", "a", "c", "b"], "rows": [{"k": 2}, {"k": 1}]});
    let ordered = diff(&primary, &shadow, &rules());
    assert!(!ordered.is_empty());
    let unordered = JsonRules {
        unordered_arrays: true,
        ..rules()
    };
    assert!(diff(&primary, &shadow, &unordered).is_empty());
    let by_path = JsonRules {
        unordered_paths: vec![PointerPattern::parse("/tags").unwrap()],
        ..rules()
    };
    assert_eq!(
        kinds(&diff(&primary, &shadow, &by_path)),
        vec![
            ("/rows/0/k", ChangeKind::Changed),
            ("/rows/1/k", ChangeKind::Changed)
        ]
    );
    let missing = json!({"tags": ["c", "a", "x"], "rows": [{"k": 2}, {"k": 1}]});
    assert_eq!(
        kinds(&diff(&primary, &missing, &unordered)),
        vec![
            ("/tags", ChangeKind::LengthChanged),
            ("/tags/1", ChangeKind::Removed),
            ("/tags/3", ChangeKind::Removed),
            ("/tags/2", ChangeKind::Added),
        ]
    );
}

#[test]
fn unordered_matching_respects_ignores_inside_elements() {
    let primary = json!([{"id": 1, "at": "x"}, {"id": 2, "at": "y"}]);
    let shadow = json!([{"id": 2, "at": "q"}, {"id": 1, "at": "r"}]);
    let rules = JsonRules {
        unordered_arrays: true,
        ignore: vec![PointerPattern::parse("/*/at").unwrap()],
        ..rules()
    };
    assert!(diff(&primary, &shadow, &rules).is_empty());
}

#[test]
fn large_integers_are_compared_exactly() {
    // 2^53 + 1 and 2^53 are the same f64; as ids or nanosecond timestamps they differ.
    let (a, b) = (9_007_199_254_740_993_u64, 9_007_199_254_740_992_u64);
    assert_eq!(
        diff(&json!({"id": a}), &json!({"id": b}), &rules()).len(),
        1
    );
    let nanos = 1_795_000_000_000_000_123_u64;
    assert_eq!(
        diff(&json!([nanos]), &json!([nanos + 100]), &rules()).len(),
        1
    );
    assert_eq!(diff(&json!(-5), &json!(u64::MAX), &rules()).len(), 1);
    let tolerant = JsonRules {
        numeric_tolerance: 2.0,
        ..rules()
    };
    assert!(diff(&json!(a), &json!(b), &tolerant).is_empty());
    assert_eq!(diff(&json!(a), &json!(b + 4), &tolerant).len(), 1);
}

#[test]
fn numeric_tolerance_is_absolute() {
    let rules = JsonRules {
        numeric_tolerance: 0.01,
        ..rules()
    };
    assert!(diff(&json!({"p": 1.0}), &json!({"p": 1.005}), &rules).is_empty());
    assert_eq!(
        diff(&json!({"p": 1.0}), &json!({"p": 1.02}), &rules).len(),
        1
    );
    assert!(
        diff(&json!(3), &json!(3.0), &JsonRules::default()).is_empty(),
        "3 and 3.0 are the same number"
    );
}

#[test]
fn pointer_escapes_and_patterns() {
    let changes = diff(
        &json!({"a/b": 1, "m~n": 1}),
        &json!({"a/b": 2, "m~n": 2}),
        &rules(),
    );
    assert_eq!(
        kinds(&changes),
        vec![
            ("/a~1b", ChangeKind::Changed),
            ("/m~0n", ChangeKind::Changed)
        ]
    );
    assert!(PointerPattern::parse("nope").is_err());
    let pattern = PointerPattern::parse("/items/*").unwrap();
    assert!(pattern.covers("/items/3/name"));
    assert!(!pattern.covers("/other/3"));
    assert!(!pattern.is_below("/items/3"));
    let deep = PointerPattern::parse("/accounts/*/iban").unwrap();
    assert!(deep.is_below("/accounts/1"));
    assert!(deep.is_below("/accounts"));
    assert!(deep.is_below(""));
    assert!(!deep.is_below("/accounts/1/iban"));
    assert!(!deep.is_below("/users/1"));
}

#[test]
fn root_type_change_and_change_cap() {
    assert_eq!(
        kinds(&diff(&json!([1]), &json!({"a": 1}), &rules())),
        vec![("", ChangeKind::TypeChanged)]
    );
    let a: Vec<u32> = (0..1000).collect();
    let b: Vec<u32> = (1..1001).collect();
    let capped = JsonRules {
        max_changes: 10,
        ..rules()
    };
    assert_eq!(diff(&json!(a), &json!(b), &capped).len(), 10);
}
