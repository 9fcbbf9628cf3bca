//! The series a PromQL expression selects, read by a small lexer: what is neither a
//! function, an aggregation, a keyword, a label (inside `{...}` or a `by (...)` list), a
//! string, a number nor a range is a metric name, and the `{...}` right after it holds its
//! label matchers. Good enough for the expressions deploy/ writes, and held to that by the
//! tests below; promtool parses every expression too.

use std::collections::BTreeSet;

/// One label matcher of a selector: `label op "value"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    pub label: String,
    /// `=`, `!=`, `=~` or `!~`.
    pub op: String,
    pub value: String,
}

/// A series name and the matchers written with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    pub name: String,
    pub matchers: Vec<Matcher>,
}

/// Words that are never series names when they stand alone.
const KEYWORDS: [&str; 8] = [
    "and", "or", "unless", "bool", "offset", "inf", "nan", "atan2",
];

/// Aggregations, which may be followed by `by (...)` / `without (...)` instead of `(`.
const AGGREGATIONS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// Every series name `expr` selects.
pub fn series_names(expr: &str) -> BTreeSet<String> {
    selectors(expr).into_iter().map(|s| s.name).collect()
}

/// Every selector of `expr`, in order.
pub fn selectors(expr: &str) -> Vec<Selector> {
    let chars: Vec<char> = expr.chars().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c == '#' {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '{' {
            i = skip_group(&chars, i, '{', '}');
        } else if c == '[' {
            i = skip_group(&chars, i, '[', ']');
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_name_start(c) {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let before_paren = chars.get(next) == Some(&'(');
            if LABEL_LISTS.contains(&word.as_str()) {
                if before_paren {
                    i = skip_group(&chars, next, '(', ')');
                }
            } else if word == "offset" {
                // The duration after it is skipped as a number.
            } else if !before_paren
                && !KEYWORDS.contains(&word.as_str())
                && !AGGREGATIONS.contains(&word.as_str())
            {
                let mut matchers = Vec::new();
                if chars.get(next) == Some(&'{') {
                    i = skip_group(&chars, next, '{', '}');
                    matchers = parse_matchers(&chars[next + 1..i - 1]);
                }
                found.push(Selector {
                    name: word,
                    matchers,
                });
            }
        } else {
            i += 1;
        }
    }
    found
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The matchers between a selector's braces: `label op "value"`, comma-separated.
fn parse_matchers(chars: &[char]) -> Vec<Matcher> {
    let mut matchers = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        if i >= chars.len() {
            return matchers;
        }
        let start = i;
        while i < chars.len() && is_name_char(chars[i]) {
            i += 1;
        }
        let label: String = chars[start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let op_start = i;
        while i < chars.len() && matches!(chars[i], '=' | '!' | '~') {
            i += 1;
        }
        let op: String = chars[op_start..i].iter().collect();
        while i < chars.len() && chars[i].is_whitespace() {
            i += 1;
        }
        let end = skip_string(chars, i);
        let value: String = chars[i + 1..end - 1].iter().collect();
        assert!(
            !label.is_empty() && ["=", "!=", "=~", "!~"].contains(&op.as_str()),
            "unreadable matcher in {{{}}}",
            chars.iter().collect::<String>()
        );
        matchers.push(Matcher { label, op, value });
        i = end;
    }
}

/// The index just past the string literal that opens at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    i
}

/// The index just past the `close` matching the `open` at `start` (strings inside skipped).
fn skip_group(chars: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(chars, i);
            continue;
        }
        if c == open {
            depth += 1;
        } else if c == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// `expr` with the placeholders Grafana, Argo Rollouts and Flagger fill in replaced by
/// values PromQL accepts (`$__rate_interval`, `{{ interval }}`, `{{args.job}}`, ...), so
/// promtool can parse it. `$job`-style variables sit inside regex strings and stay.
pub fn fill_placeholders(expr: &str) -> String {
    let mut out = String::new();
    let mut rest = expr;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        match rest[start..].find("}}") {
            Some(end) => {
                out.push_str("5m");
                rest = &rest[start + end + 2..];
            }
            None => {
                rest = &rest[start..];
                break;
            }
        }
    }
    out.push_str(rest);
    out.replace("$__rate_interval", "5m")
        .replace("$__interval", "1m")
        .replace("$__range", "1h")
}

/// The series selector of a Grafana `label_values(selector, label)` variable query, which
/// is not PromQL itself; `None` for `label_values(label)`, which selects no series.
pub fn grafana_variable_selector(query: &str) -> Option<String> {
    let inner = query
        .trim()
        .strip_prefix("label_values(")?
        .strip_suffix(')')?;
    let (selector, _label) = inner.rsplit_once(',')?;
    Some(selector.trim().to_string())
}

/// The names among `used` that are neither exported nor recorded.
pub fn unknown<'a>(
    used: &'a BTreeSet<String>,
    exported: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> Vec<&'a str> {
    used.iter()
        .filter(|name| !exported.contains(*name) && !recorded.contains(*name))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<String> {
        series_names(expr).into_iter().collect()
    }

    #[test]
    fn functions_aggregations_labels_strings_and_ranges_are_not_series() {
        let expr = r#"
            histogram_quantile(0.99,
              sum by (job, route, shadow, le) (rate(shadowtap_latency_delta_seconds_bucket{route=~"a|b", shadow!="x}y"}[5m])))
            / on (job) group_left (shadow)
            sum without (instance) (rate(shadowtap_comparisons_total{result='diverged'}[1h] offset 5m))
            > bool 0.05 and job_route_shadow:shadowtap_comparisons:rate5m * 300 >= 1e2
        "#;
        assert_eq!(
            names(expr),
            [
                "job_route_shadow:shadowtap_comparisons:rate5m",
                "shadowtap_comparisons_total",
                "shadowtap_latency_delta_seconds_bucket",
            ]
        );
        assert_eq!(
            names("shadowtap_tls_certificate_expiry_timestamp_seconds - time() < 14 * 86400"),
            ["shadowtap_tls_certificate_expiry_timestamp_seconds"]
        );
        assert_eq!(names("sum(up) by (job)"), ["up"]);
        assert_eq!(names("topk(5, process_open_fds)"), ["process_open_fds"]);
    }

    #[test]
    fn matchers_are_read_with_their_selector() {
        let found = selectors(
            r#"rate(shadowtap_mirror_requests_total{ outcome=~"error|timeout", shadow != "a,b}" }[5m]) / up"#,
        );
        let matcher = |label: &str, op: &str, value: &str| Matcher {
            label: label.into(),
            op: op.into(),
            value: value.into(),
        };
        assert_eq!(
            found,
            [
                Selector {
                    name: "shadowtap_mirror_requests_total".into(),
                    matchers: vec![
                        matcher("outcome", "=~", "error|timeout"),
                        matcher("shadow", "!=", "a,b}"),
                    ],
                },
                Selector {
                    name: "up".into(),
                    matchers: vec![],
                },
            ]
        );
    }

    #[test]
    fn placeholders_become_promql_and_hide_no_name() {
        let argo = r#"sum(rate(shadowtap_comparisons_total{job="{{args.job}}"}[{{ interval }}]))"#;
        let filled = fill_placeholders(argo);
        assert_eq!(
            filled,
            r#"sum(rate(shadowtap_comparisons_total{job="5m"}[5m]))"#
        );
        assert_eq!(names(&filled), ["shadowtap_comparisons_total"]);
        let grafana = r#"rate(shadowtap_requests_total{instance=~"$instance"}[$__rate_interval])"#;
        assert_eq!(
            fill_placeholders(grafana),
            r#"rate(shadowtap_requests_total{instance=~"$instance"}[5m])"#
        );
    }

    #[test]
    fn grafana_variable_queries_yield_their_selector() {
        assert_eq!(
            grafana_variable_selector(
                r#"label_values(shadowtap_build_info{job=~"$job"}, instance)"#
            )
            .as_deref(),
            Some(r#"shadowtap_build_info{job=~"$job"}"#)
        );
        assert_eq!(grafana_variable_selector("label_values(job)"), None);
    }

    #[test]
    fn a_misspelt_name_is_unknown_and_recorded_names_are_known() {
        let exported: BTreeSet<String> = ["shadowtap_comparisons_total".to_string()].into();
        let recorded: BTreeSet<String> = ["job:shadowtap_x:rate5m".to_string()].into();
        let used = series_names(
            "sum(rate(shadowtap_comparison_total[5m])) / job:shadowtap_x:rate5m + rate(shadowtap_comparisons_total[5m])",
        );
        assert_eq!(
            unknown(&used, &exported, &recorded),
            ["shadowtap_comparison_total"]
        );
    }
}
