//! The structural JSON diff (`src/compare/json.rs`).
//!
//! Input: one byte of rules, then two JSON documents separated by a NUL byte (inputs that
//! are not JSON are skipped: serde_json is not what is under test).
//! Invariants: it never panics; `diff(a, a)` is empty; `diff(a, b)` and `diff(b, a)` mirror
//! each other: the same pointers, added and removed swapped, both values swapped.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use shadowtap::compare::json::{diff, ChangeKind, JsonChange, JsonRules, PointerPattern};

fn mirrored(change: &JsonChange) -> JsonChange {
    JsonChange {
        pointer: change.pointer.clone(),
        field: change.field.clone(),
        kind: match change.kind {
            ChangeKind::Added => ChangeKind::Removed,
            ChangeKind::Removed => ChangeKind::Added,
            other => other,
        },
        primary: change.shadow.clone(),
        shadow: change.primary.clone(),
    }
}

fn key(change: &JsonChange) -> (String, String, String, Option<String>, Option<String>) {
    (
        change.pointer.clone(),
        change.field.clone(),
        format!("{:?}", change.kind),
        change.primary.clone(),
        change.shadow.clone(),
    )
}

fuzz_target!(|input: &[u8]| {
    let Some((&settings, docs)) = input.split_first() else {
        return;
    };
    let mut parts = docs.splitn(2, |b| *b == 0);
    let (Some(a), Some(b)) = (parts.next(), parts.next()) else {
        return;
    };
    let (Ok(a), Ok(b)) = (
        serde_json::from_slice::<Value>(a),
        serde_json::from_slice::<Value>(b),
    ) else {
        return;
    };
    let mut rules = JsonRules {
        unordered_arrays: settings & 1 == 1,
        numeric_tolerance: [0.0, 0.5, 1.0, 1e9][usize::from((settings >> 1) & 3)],
        // No cap on changes: a capped report keeps whichever changes come first, and the
        // walk order is not symmetric.
        max_changes: 0,
        ..JsonRules::default()
    };
    if settings & 8 != 0 {
        rules.ignore = ["/*/id", "/ts"]
            .iter()
            .filter_map(|p| PointerPattern::parse(p).ok())
            .collect();
    }
    if settings & 16 != 0 {
        rules.unordered_paths = ["/items", "/*/tags"]
            .iter()
            .filter_map(|p| PointerPattern::parse(p).ok())
            .collect();
    }

    assert_eq!(diff(&a, &a, &rules), Vec::new(), "diff(a, a) is not empty");
    assert_eq!(diff(&b, &b, &rules), Vec::new(), "diff(b, b) is not empty");

    let mut forward: Vec<_> = diff(&a, &b, &rules).iter().map(key).collect();
    let mut backward: Vec<_> = diff(&b, &a, &rules)
        .iter()
        .map(|c| key(&mirrored(c)))
        .collect();
    forward.sort();
    backward.sort();
    assert_eq!(forward, backward, "diff(a, b) and diff(b, a) do not mirror");
});
