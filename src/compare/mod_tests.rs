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
        digest: None,
        cut_short: false,
        held: crate::message::budget::Held::nothing(),
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
        latency: None,
        protobuf: None,
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

mod bodies {
    //! The body decision as a table: (what is known of the primary's body, of the shadow's)
    //! -> same, differs (with its `change`), or unjudged (with its reason); every pair of
    //! representative states, both ways round.
    use super::*;
    use flate2::write::GzEncoder;
    use proptest::prelude::*;
    use std::io::Write;

    /// The decoded-size cap in these tests.
    const CAP: usize = 4096;

    fn gzip(data: &[u8]) -> Bytes {
        let mut encoder = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(data).unwrap();
        Bytes::from(encoder.finish().unwrap())
    }

    fn answer(body: Bytes, encoding: Option<&str>) -> CapturedResponse {
        let mut response = response(200, "application/octet-stream", "");
        response.body = body;
        if let Some(encoding) = encoding {
            response.headers = with(&response.headers, &[("content-encoding", encoding)]);
        }
        response
    }

    /// Kept whole.
    fn kept(body: &[u8]) -> CapturedResponse {
        answer(Bytes::copy_from_slice(body), None)
    }

    /// Kept whole, gzip-encoded.
    fn kept_gzip(body: &[u8]) -> CapturedResponse {
        answer(gzip(body), Some("gzip"))
    }

    /// Kept, labelled gzip, not gzip.
    fn corrupt(bytes: &'static [u8]) -> CapturedResponse {
        answer(Bytes::from_static(bytes), Some("gzip"))
    }

    /// Kept, gzip that decodes past the cap.
    fn bomb(len: usize) -> CapturedResponse {
        kept_gzip(&vec![b' '; len])
    }

    /// Too large to keep (or, `over_budget`, no room): known by its digest.
    fn digested(response: CapturedResponse, over_budget: bool) -> CapturedResponse {
        CapturedResponse {
            digest: Some(crate::digest::BodyDigest::of(&response.body)),
            body: Bytes::new(),
            truncated: !over_budget,
            over_budget,
            ..response
        }
    }

    /// Too large to keep, and read no further than its first `len` bytes.
    fn longer(response: CapturedResponse, len: usize) -> CapturedResponse {
        CapturedResponse {
            digest: Some(crate::digest::BodyDigest::of(&response.body[..len])),
            cut_short: true,
            ..digested(response, false)
        }
    }

    /// Neither kept nor seen whole.
    fn unknown() -> CapturedResponse {
        let mut response = answer(Bytes::new(), None);
        response.truncated = true;
        response
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    enum Outcome {
        Same,
        Differs(&'static str),
        Unjudged(BodySkip),
    }
    use Outcome::*;

    fn outcome(primary: &CapturedResponse, shadow: &CapturedResponse) -> Outcome {
        let rules = CompareRules {
            max_decoded_bytes: CAP,
            ..rules()
        };
        let comparison = compare(primary, shadow, &rules);
        let body: Vec<&Difference> = comparison
            .differences
            .iter()
            .filter(|d| d.kind == DiffKind::Body)
            .collect();
        match (comparison.body_skipped, body.as_slice()) {
            (Some(why), []) => Unjudged(why),
            (None, []) => Same,
            (None, [one]) => Differs(one.change),
            other => panic!("both skipped and different, or several: {other:?}"),
        }
    }

    #[test]
    fn the_decision_table() {
        let big = vec![b'x'; 3 * CAP];
        let mut big_changed = big.clone();
        big_changed[CAP] = b'y';
        let bigger = vec![b'x'; 4 * CAP];
        let table: Vec<(CapturedResponse, CapturedResponse, Outcome)> = vec![
            (kept(b"abc"), kept(b"abc"), Same),
            (kept(b"abc"), kept(b"abd"), Differs("bytes_changed")),
            (kept(b"abc"), kept_gzip(b"abc"), Same),
            (
                kept_gzip(b"abc"),
                corrupt(b"not gzip"),
                Differs("undecodable"),
            ),
            (kept(b"abc"), bomb(2 * CAP), Differs("undecodable")),
            (corrupt(b"not gzip"), corrupt(b"not gzip"), Same),
            (
                corrupt(b"not gzip"),
                corrupt(b"bad gzip"),
                Unjudged(BodySkip::Corrupt),
            ),
            (
                corrupt(b"not gzip"),
                bomb(2 * CAP),
                Unjudged(BodySkip::Corrupt),
            ),
            (
                bomb(2 * CAP),
                bomb(3 * CAP),
                Unjudged(BodySkip::DecompressionBomb),
            ),
            (bomb(2 * CAP), bomb(2 * CAP), Same),
            // Too large to keep: length, then hash, of the bytes as sent.
            (
                kept(b"abcdef"),
                digested(kept(&big), false),
                Differs("bytes_changed"),
            ),
            (
                digested(kept(&big), false),
                digested(kept(&big), false),
                Same,
            ),
            (
                digested(kept(&big), false),
                digested(kept(&big_changed), false),
                Differs("bytes_changed"),
            ),
            (kept(&big), digested(kept(&big), true), Same),
            (
                kept(&big),
                digested(kept(&big_changed), true),
                Differs("bytes_changed"),
            ),
            (digested(kept_gzip(&big), false), kept_gzip(&big), Same),
            (
                digested(corrupt(b"not gzip"), false),
                corrupt(b"not gzip"),
                Same,
            ),
            (
                digested(corrupt(b"not gzip"), true),
                corrupt(b"bad gzip"),
                Differs("bytes_changed"),
            ),
            // Different codings: a digest says nothing about the content.
            (
                digested(kept_gzip(&big), false),
                kept(&big),
                Unjudged(BodySkip::Truncated),
            ),
            (
                digested(kept(&big), true),
                digested(kept_gzip(&big), true),
                Unjudged(BodySkip::MemoryBudget),
            ),
            // Read no further once longer than the other side's whole body.
            (
                kept(b"abcdef"),
                longer(kept(&big), 2 * CAP),
                Differs("bytes_changed"),
            ),
            (
                digested(kept(&big), false),
                longer(kept(&bigger), 3 * CAP + 1),
                Differs("bytes_changed"),
            ),
            (
                digested(kept(&big), false),
                longer(kept(&bigger), 3 * CAP - 1),
                Unjudged(BodySkip::Truncated),
            ),
            (
                kept_gzip(b"abc"),
                longer(kept_gzip(&big), 60),
                Differs("bytes_changed"),
            ),
            (
                digested(kept(&big), false),
                longer(kept(&big), 2 * CAP),
                Unjudged(BodySkip::Truncated),
            ),
            (
                longer(kept(&big), 2 * CAP),
                longer(kept(&big), 2 * CAP),
                Unjudged(BodySkip::Truncated),
            ),
            (
                kept(b"abcdef"),
                longer(kept_gzip(&big), 20),
                Unjudged(BodySkip::Truncated),
            ),
            // Not seen whole.
            (unknown(), kept(b"abc"), Unjudged(BodySkip::Truncated)),
            (
                unknown(),
                digested(kept(&big), false),
                Unjudged(BodySkip::Truncated),
            ),
        ];
        for (row, (primary, shadow, expected)) in table.iter().enumerate() {
            assert_eq!(
                outcome(primary, shadow),
                *expected,
                "row {row}, primary vs shadow"
            );
            assert_eq!(
                outcome(shadow, primary),
                *expected,
                "row {row}, shadow vs primary"
            );
        }
    }

    #[test]
    fn every_pair_of_states_is_judged_when_it_can_be() {
        let big = vec![b'x'; 3 * CAP];
        let states = [
            kept(b"abc"),
            kept_gzip(b"abc"),
            corrupt(b"not gzip"),
            bomb(2 * CAP),
            digested(kept(&big), false),
            digested(kept(&big), true),
            digested(kept_gzip(&big), false),
            longer(kept(&big), 2 * CAP),
            unknown(),
        ];
        let undecodable = |r: &CapturedResponse| {
            !r.truncated && !r.over_budget && decode::decode(&r.headers, &r.body, CAP).is_err()
        };
        for (i, a) in states.iter().enumerate() {
            for (j, b) in states.iter().enumerate() {
                let result = outcome(a, b);
                // Unjudged only when nothing can be said: an unknown side, a digest against
                // other codings, or neither side decodable (and not the same bytes).
                let unknown = |r: &CapturedResponse| r.truncated && r.digest.is_none();
                // A body cut short is judged only against one shorter than what was read.
                let open = |r: &CapturedResponse, other: &CapturedResponse| {
                    r.cut_short
                        && other
                            .whole_len()
                            .is_none_or(|len| Some(len) > r.digest.map(|d| d.len))
                };
                let may_be_unjudged = unknown(a)
                    || unknown(b)
                    || open(a, b)
                    || open(b, a)
                    || (a.digest.is_some() || b.digest.is_some())
                        && decode::codings(&a.headers) != decode::codings(&b.headers)
                    || undecodable(a) && undecodable(b) && i != j;
                assert_eq!(
                    matches!(result, Unjudged(_)),
                    may_be_unjudged,
                    "states {i} and {j}: {result:?}"
                );
                if i == j && !matches!(result, Unjudged(_)) {
                    assert_eq!(result, Same, "a state against itself, {i}");
                }
            }
        }
    }

    /// How a body reaches the comparison.
    #[derive(Debug, Clone, Copy)]
    enum Form {
        Kept,
        TooLarge,
        OverBudget,
    }

    fn form() -> impl Strategy<Value = Form> {
        prop_oneof![
            Just(Form::Kept),
            Just(Form::TooLarge),
            Just(Form::OverBudget)
        ]
    }

    fn shaped(body: &[u8], gzipped: bool, form: Form) -> CapturedResponse {
        let response = if gzipped { kept_gzip(body) } else { kept(body) };
        match form {
            Form::Kept => response,
            Form::TooLarge => digested(response, false),
            Form::OverBudget => digested(response, true),
        }
    }

    proptest! {
        /// With the same codings on both sides, keeping or digesting a body never changes
        /// the verdict: the bodies differ exactly when their contents do.
        #[test]
        fn kept_or_digested_the_verdict_is_the_contents(
            a in proptest::collection::vec(any::<u8>(), 0..64),
            b in proptest::collection::vec(any::<u8>(), 0..64),
            same in any::<bool>(),
            gzipped in any::<bool>(),
            forms in (form(), form()),
        ) {
            let b = if same { a.clone() } else { b };
            let result = outcome(&shaped(&a, gzipped, forms.0), &shaped(&b, gzipped, forms.1));
            prop_assert_eq!(result == Same, a == b, "{:?}", result);
            prop_assert!(!matches!(result, Unjudged(_)));
        }
    }
}

mod latency {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn rule(max_delta: Option<u64>, max_ratio: Option<f64>) -> LatencyRule {
        LatencyRule {
            max_delta: max_delta.map(ms),
            max_ratio,
        }
    }

    #[test]
    fn a_breach_of_either_limit_is_a_latency_difference() {
        let cases = [
            // (primary ms, shadow ms, rule, breached)
            (10, 55, rule(Some(50), None), false),
            (10, 61, rule(Some(50), None), true),
            (10, 19, rule(None, Some(2.0)), false),
            (10, 21, rule(None, Some(2.0)), true),
            (100, 120, rule(Some(50), Some(2.0)), false),
            (100, 160, rule(Some(50), Some(2.0)), true),
            (1, 3, rule(Some(50), Some(2.0)), true),
            (300, 100, rule(Some(1), Some(1.0)), false),
            (0, 1, rule(None, Some(2.0)), true),
        ];
        for (primary, shadow, rule, breached) in cases {
            let found = judge_latency(ms(primary), ms(shadow), &rule);
            assert_eq!(
                found.is_some(),
                breached,
                "{primary} ms vs {shadow} ms, {rule:?}"
            );
            if let Some(difference) = found {
                assert_eq!(
                    (difference.kind, difference.change),
                    (DiffKind::Latency, "slower")
                );
                assert_eq!(DiffKind::Latency.as_str(), "latency");
                assert_eq!(difference.shadow, Some(format!("{shadow}.0 ms")));
            }
        }
    }

    #[test]
    fn latency_is_no_part_of_the_answers_comparison() {
        let a = response(200, "text/plain", "same");
        let mut b = a.clone();
        b.latency = Duration::from_secs(10);
        assert!(compare(&a, &b, &rules()).differences.is_empty());
    }
}
