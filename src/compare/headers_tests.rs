use super::*;
use http::HeaderValue;

type Pairs = [(&'static str, &'static str)];

fn map(pairs: &Pairs) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, HeaderValue::from_static(value));
    }
    map
}

/// The changes between `a` and `b`, found both from fields (as captured answers are
/// compared) and from maps: the two must always agree.
fn check(a: &Pairs, b: &Pairs, ignored: &NameSet) -> Vec<HeaderChange> {
    let from_maps = diff(&map(a), &map(b), ignored);
    let from_fields = diff_fields(
        &Fields::from_pairs(a.iter().copied()),
        &Fields::from_pairs(b.iter().copied()),
        ignored,
    );
    assert_eq!(from_fields, from_maps, "{a:?} vs {b:?}");
    from_fields
}

#[test]
fn names_are_case_insensitive_and_ignored_ones_skipped() {
    let ignored = NameSet::new(DEFAULT_IGNORED.iter().copied());
    let a = [
        ("Content-Type", "application/json"),
        ("date", "x"),
        ("x-a", "1"),
    ];
    let b = [
        ("content-type", "application/json"),
        ("Date", "y"),
        ("x-b", "2"),
    ];
    assert_eq!(
        check(&a, &b, &ignored),
        vec![
            HeaderChange {
                name: "x-a".into(),
                primary: Some("1".into()),
                shadow: None
            },
            HeaderChange {
                name: "x-b".into(),
                primary: None,
                shadow: Some("2".into())
            },
        ]
    );
    // Same fields in another case, the ignored ones differing: equal.
    let c = [
        ("CONTENT-TYPE", "application/json"),
        ("x-a", "1"),
        ("DATE", "z"),
    ];
    assert!(check(&a, &c, &ignored).is_empty());
}

#[test]
fn field_order_and_ignored_values_do_not_count() {
    let ignored = NameSet::new(["date", "X-Custom-Noise"]);
    let a = [
        ("date", "x"),
        ("content-type", "text/plain"),
        ("x-custom-noise", "1"),
        ("x-a", "1"),
    ];
    let same_order = [("date", "y"), ("content-type", "text/plain"), ("x-a", "1")];
    assert!(check(&a, &same_order, &ignored).is_empty());
    let other_order = [("x-a", "1"), ("content-type", "text/plain")];
    assert!(check(&a, &other_order, &ignored).is_empty());
    let changed = [("x-a", "2"), ("content-type", "text/plain")];
    assert_eq!(check(&a, &changed, &ignored).len(), 1);
    let extra = [("content-type", "text/plain"), ("x-a", "1"), ("x-b", "1")];
    assert_eq!(check(&a, &extra, &ignored)[0].name, "x-b");
}

#[test]
fn ignored_fields_on_one_side_only_are_skipped_wherever_they_are() {
    let ignored = NameSet::new(DEFAULT_IGNORED.iter().copied());
    let a = [("Date", "x"), ("X-A", "1"), ("Server", "s1"), ("X-B", "2")];
    let b = [("x-a", "1"), ("date", "y"), ("x-b", "2")];
    assert!(check(&a, &b, &ignored).is_empty());
    let c = [("Date", "x"), ("x-a", "1"), ("X-B", "3")];
    assert_eq!(check(&a, &c, &ignored)[0].name, "x-b");
    // An ignored field whose lines are byte-equal is skipped like any other.
    let d = [("X-A", "1"), ("Server", "s1")];
    assert_eq!(check(&d, &d, &ignored), []);
    assert_eq!(check(&d, &[("Server", "s1")], &ignored)[0].name, "x-a");
}

#[test]
fn multi_values_compare_as_ordered_lists() {
    let none = NameSet::default();
    let a = [("vary", "accept"), ("vary", "origin")];
    let b = [("vary", "origin"), ("vary", "accept")];
    assert_eq!(check(&a, &b, &none).len(), 1);
    assert!(check(&a, &a, &none).is_empty());
    // Other fields between the values of one name do not split the list.
    let c = [("vary", "accept"), ("x-a", "1"), ("vary", "origin")];
    let d = [("x-a", "1"), ("vary", "accept"), ("vary", "origin")];
    assert!(check(&c, &d, &none).is_empty());
}

#[test]
fn one_line_and_two_lines_are_the_same_list() {
    let none = NameSet::default();
    let a = [("vary", "accept, origin")];
    let b = [("vary", "accept"), ("vary", "origin")];
    assert!(check(&a, &b, &none).is_empty());
    let c = [("vary", "accept")];
    assert_eq!(check(&a, &c, &none).len(), 1);
}

#[test]
fn name_sets_match_raw_names_in_any_case_and_skip_invalid_ones() {
    let set = NameSet::new(["Date", "x-trace-id", "date", "bad name"]);
    assert!(set.contains_raw(b"DATE") && set.contains_raw(b"X-Trace-Id"));
    assert!(!set.contains_raw(b"dat") && !set.contains_raw(b"x-trace-ids"));
    assert!(!set.contains_raw(b"bad name") && !set.contains_raw(b""));
    assert!(set.contains(&HeaderName::from_static("date")));
    assert!(!NameSet::default().contains_raw(b"date"));
}
