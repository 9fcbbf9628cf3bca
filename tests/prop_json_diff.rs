#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Property tests of the structural JSON diff (`src/compare/json.rs`), the invariants the
//! `json_diff` fuzz target checks (fuzz/README.md), run by CI on every commit:
//! `diff(a, a)` is empty, and `diff(a, b)` mirrors `diff(b, a)`: the same pointers, added
//! and removed swapped, the two values swapped, under every rule set (ordered and unordered
//! arrays, numeric tolerance, ignore patterns).

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use shadowtap::compare::json::{diff, ChangeKind, JsonChange, JsonRules, PointerPattern};

/// Documents over a few keys and small values, so that two of them overlap and differ in
/// interesting ways (rather than at the root).
fn document() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-3i64..4).prop_map(|n| json!(n)),
        prop::sample::select(vec![0.5, 1.0, 2.25, -1.5, 1e20]).prop_map(|f| json!(f)),
        prop::sample::select(vec!["", "a", "b", "~/x"]).prop_map(|s| json!(s)),
    ];
    leaf.prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["a", "b", "id", "ts", "items", "tags", "a/b"]),
                    inner
                ),
                0..5
            )
            .prop_map(|pairs| {
                Value::Object(
                    pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect::<Map<_, _>>(),
                )
            }),
        ]
    })
}

fn rules() -> impl Strategy<Value = JsonRules> {
    (
        any::<bool>(),
        prop::sample::select(vec![0.0, 0.5, 1.0]),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(unordered_arrays, numeric_tolerance, ignore, unordered_paths)| {
                let patterns = |list: &[&str]| {
                    list.iter()
                        .filter_map(|p| PointerPattern::parse(p).ok())
                        .collect()
                };
                JsonRules {
                    unordered_arrays,
                    numeric_tolerance,
                    ignore: if ignore {
                        patterns(&["/*/id", "/ts"])
                    } else {
                        Vec::new()
                    },
                    unordered_paths: if unordered_paths {
                        patterns(&["/items", "/*/tags"])
                    } else {
                        Vec::new()
                    },
                    // A capped report keeps whichever changes come first; compare uncapped.
                    max_changes: 0,
                }
            },
        )
}

fn mirrored(change: &JsonChange) -> JsonChange {
    JsonChange {
        kind: match change.kind {
            ChangeKind::Added => ChangeKind::Removed,
            ChangeKind::Removed => ChangeKind::Added,
            other => other,
        },
        primary: change.shadow.clone(),
        shadow: change.primary.clone(),
        ..change.clone()
    }
}

fn sorted(changes: Vec<JsonChange>) -> Vec<String> {
    let mut keys: Vec<String> = changes.iter().map(|c| format!("{c:?}")).collect();
    keys.sort();
    keys
}

fn assert_mirror(a: &Value, b: &Value, rules: &JsonRules) -> Result<(), TestCaseError> {
    let forward = sorted(diff(a, b, rules));
    let backward = sorted(diff(b, a, rules).iter().map(mirrored).collect());
    prop_assert_eq!(forward, backward, "a = {}\nb = {}", a, b);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn a_document_does_not_differ_from_itself(a in document(), rules in rules()) {
        prop_assert_eq!(diff(&a, &a, &rules), Vec::new());
    }

    #[test]
    fn diff_a_b_mirrors_diff_b_a(a in document(), b in document(), rules in rules()) {
        assert_mirror(&a, &b, &rules)?;
    }

    #[test]
    fn diff_mirrors_when_one_side_is_the_other_changed(
        a in document(),
        extra in document(),
        rules in rules(),
    ) {
        // b = a with one more element or key: documents that share most of their structure.
        let b = match a.clone() {
            Value::Array(mut items) => { items.insert(0, extra); Value::Array(items) }
            Value::Object(mut map) => { map.insert("tags".into(), extra); Value::Object(map) }
            other => json!([other, extra]),
        };
        assert_mirror(&a, &b, &rules)?;
    }
}

/// Unordered arrays with repeated elements: the k-th copy on one side is matched with the
/// k-th copy on the other, so the unmatched copy is reported at the same index in both
/// directions (it was `/1` one way and `/0` the other).
#[test]
fn unordered_duplicates_are_reported_at_the_same_index_both_ways() {
    let rules = JsonRules {
        unordered_arrays: true,
        ..JsonRules::default()
    };
    let (a, b) = (json!(["x", "x"]), json!(["x"]));
    let forward = diff(&a, &b, &rules);
    let backward: Vec<JsonChange> = diff(&b, &a, &rules).iter().map(mirrored).collect();
    assert_eq!(sorted(forward.clone()), sorted(backward), "{forward:?}");
    assert!(
        forward
            .iter()
            .any(|c| c.pointer == "/1" && c.kind == ChangeKind::Removed),
        "{forward:?}"
    );
}
