//! What a real `/metrics` scrape exports (every series name with its labels and values),
//! and what is wrong with a selector against it.

use super::promql;
use std::collections::{BTreeMap, BTreeSet};

/// Every label name and value a scrape shows for each series name.
pub type ExportedLabels = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// The series of every sample line of a scrape (`name{a="b",...} value` / `name value`),
/// read by the same lexer as the expressions: a sample's series is a selector of `=`s.
pub fn exported_labels(scrape: &str) -> ExportedLabels {
    let mut exported = ExportedLabels::new();
    for line in scrape.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let series = line
            .rsplit_once(' ')
            .map_or(line, |(series, _value)| series);
        for selector in promql::selectors(series) {
            let labels = exported.entry(selector.name).or_default();
            for matcher in selector.matchers {
                labels
                    .entry(matcher.label)
                    .or_default()
                    .insert(matcher.value);
            }
        }
    }
    exported
}

/// Labels Prometheus and the Prometheus Operator attach to every scraped series.
const TARGET_LABELS: [&str; 7] = [
    "job",
    "instance",
    "namespace",
    "pod",
    "container",
    "endpoint",
    "service",
];

/// Label values the code can export but a short run need not have shown.
pub fn known_values(exported: &mut ExportedLabels) {
    use shadowtap::telemetry::metrics::{
        ErrorReason, MirrorOutcome, Task, MIRROR_REQUESTS_TOTAL, PROXY_ERRORS_TOTAL,
        REQUESTS_TOTAL, STATUS_CLASSES, TASK_PANICS_TOTAL,
    };
    let mut add = |name: &str, label: &str, values: Vec<&str>| {
        let known = exported
            .entry(name.to_string())
            .or_default()
            .entry(label.to_string())
            .or_default();
        known.extend(values.into_iter().map(String::from));
    };
    add(
        MIRROR_REQUESTS_TOTAL,
        "outcome",
        MirrorOutcome::ALL.map(MirrorOutcome::as_str).to_vec(),
    );
    add(
        PROXY_ERRORS_TOTAL,
        "reason",
        ErrorReason::ALL.map(ErrorReason::as_str).to_vec(),
    );
    add(REQUESTS_TOTAL, "status_class", STATUS_CLASSES.to_vec());
    add(
        TASK_PANICS_TOTAL,
        "task",
        Task::ALL.map(Task::as_str).to_vec(),
    );
}

/// What is wrong with the matchers of `selector` against what the scrape exports: a label
/// the series does not carry (target labels aside), or a value it never takes. Values
/// filled in later (`$route`, `{{args.job}}`) are not judged; a regex is judged by its
/// literal alternatives and `prefix.*` ones.
pub fn matcher_problems(selector: &promql::Selector, exported: &ExportedLabels) -> Vec<String> {
    let Some(labels) = exported.get(&selector.name) else {
        return Vec::new();
    };
    let literal = |text: &str| {
        !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '/')
    };
    let mut problems = Vec::new();
    for matcher in &selector.matchers {
        if TARGET_LABELS.contains(&matcher.label.as_str()) {
            continue;
        }
        let Some(values) = labels.get(&matcher.label) else {
            problems.push(format!("{} has no label {}", selector.name, matcher.label));
            continue;
        };
        if matcher.value.contains('$') || matcher.value.contains("{{") {
            continue;
        }
        let alternatives: Vec<&str> = if matcher.op.ends_with('~') {
            matcher.value.split('|').collect()
        } else {
            vec![matcher.value.as_str()]
        };
        for alternative in alternatives {
            let matched = if literal(alternative) {
                values.contains(alternative)
            } else if let Some(prefix) = alternative.strip_suffix(".*").filter(|p| literal(p)) {
                values.iter().any(|v| v.starts_with(prefix))
            } else {
                true
            };
            if !matched {
                problems.push(format!(
                    "{}{{{}{}{:?}}}: {alternative} is not a value of {} ({values:?})",
                    selector.name, matcher.label, matcher.op, matcher.value, matcher.label
                ));
            }
        }
    }
    problems
}

/// The label check catches a label a series lacks and a value it never takes, and leaves
/// target labels and placeholders alone.
#[test]
fn a_wrong_label_or_value_is_caught() {
    let scrape = "shadowtap_comparisons_total{route=\"api\",shadow=\"canary\",result=\"diverged\"} 3\n\
                  shadowtap_comparisons_total{route=\"api\",shadow=\"canary\",result=\"noise_only\"} 1\n";
    let exported = exported_labels(scrape);
    let problems = |expr: &str| -> Vec<String> {
        promql::selectors(expr)
            .iter()
            .flat_map(|s| matcher_problems(s, &exported))
            .collect()
    };
    assert!(problems(
        r#"shadowtap_comparisons_total{job="x",route=~"$route",shadow="{{args.shadow}}",result=~"diverged|noise.*"}"#
    )
    .is_empty());
    assert_eq!(
        problems(r#"shadowtap_comparisons_total{result="divergd"}"#).len(),
        1
    );
    assert_eq!(
        problems(r#"shadowtap_comparisons_total{result=~"diverged|unjudged"}"#).len(),
        1
    );
    assert_eq!(
        problems(r#"shadowtap_comparisons_total{outcome="error"}"#).len(),
        1
    );
    assert_eq!(
        problems(r#"shadowtap_comparisons_total{result=~"dropped_.*"}"#).len(),
        1
    );
}
