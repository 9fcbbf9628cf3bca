//! A report in three forms: a table for people, JSON for machines, JUnit XML for CI
//! systems (one test case per route and shadow; a fail is a failure, inconclusive skipped).

use super::judge::RouteVerdict;
use super::stats::Decision;
use super::Report;
use std::fmt::Write;

fn latency(route: &RouteVerdict) -> String {
    match route.evidence.latency_delta_p99_seconds {
        Some(delta) => format!("{:+.1}ms", delta * 1000.0),
        None => "-".to_string(),
    }
}

/// The table: one line per (route, shadow) with the deciding threshold and its evidence,
/// then the verdict.
pub fn table(report: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "source: {}", report.source);
    let _ = writeln!(
        out,
        "{:<13} {:<20} {:<12} {:>7} {:>9} {:>10} {:>11}  decided by",
        "verdict", "route", "shadow", "pairs", "diverged", "errors", "p99 delta"
    );
    for route in &report.routes {
        let e = &route.evidence;
        let _ = writeln!(
            out,
            "{:<13} {:<20} {:<12} {:>7} {:>9} {:>10} {:>11}  {}: {}",
            route.verdict.as_str(),
            e.route,
            e.shadow,
            e.pairs,
            e.diverged,
            format!("{}/{}", e.shadow_errors, e.shadow_requests),
            latency(route),
            route.decided_by.threshold,
            route.decided_by.evidence
        );
    }
    if let Some(message) = &report.message {
        let _ = writeln!(out, "{message}");
    }
    let count = |decision| {
        report
            .routes
            .iter()
            .filter(|route| route.verdict == decision)
            .count()
    };
    let _ = writeln!(
        out,
        "verdict: {} ({} passed, {} failed, {} inconclusive)",
        report.verdict.as_str(),
        count(Decision::Pass),
        count(Decision::Fail),
        count(Decision::Inconclusive)
    );
    out
}

/// The report as pretty JSON.
pub fn json(report: &Report) -> String {
    serde_json::to_string_pretty(report).unwrap_or_else(|error| {
        format!("{{\"verdict\":\"error\",\"message\":\"cannot render the report: {error}\"}}")
    })
}

/// XML text with the five special characters escaped.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// The report as a JUnit XML test suite.
pub fn junit(report: &Report) -> String {
    let failures = report
        .routes
        .iter()
        .filter(|route| route.verdict == Decision::Fail)
        .count();
    let skipped = report
        .routes
        .iter()
        .filter(|route| route.verdict == Decision::Inconclusive)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuite name=\"shadowtap verdict\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        report.routes.len()
    );
    for route in &report.routes {
        let name = format!("{} -> {}", route.evidence.route, route.evidence.shadow);
        let detail: Vec<String> = route
            .checks
            .iter()
            .map(|check| {
                format!(
                    "{} {}: {}",
                    check.decision.as_str(),
                    check.threshold,
                    check.evidence
                )
            })
            .collect();
        let detail = escape(&detail.join("\n"));
        let message = escape(&format!(
            "{}: {}",
            route.decided_by.threshold, route.decided_by.evidence
        ));
        let _ = write!(
            out,
            "  <testcase classname=\"shadowtap.verdict\" name=\"{}\">",
            escape(&name)
        );
        match route.verdict {
            Decision::Pass => {}
            Decision::Fail => {
                let _ = write!(
                    out,
                    "\n    <failure message=\"{message}\">{detail}</failure>\n  "
                );
            }
            Decision::Inconclusive => {
                let _ = write!(out, "\n    <skipped message=\"{message}\"/>\n  ");
            }
        }
        let _ = writeln!(out, "<system-out>{detail}</system-out></testcase>");
    }
    if let Some(message) = &report.message {
        let _ = writeln!(out, "  <system-out>{}</system-out>", escape(message));
    }
    out.push_str("</testsuite>\n");
    out
}

/// A source error as the JSON a machine reads on stdout.
pub fn json_error(message: &str) -> String {
    serde_json::json!({ "verdict": "error", "message": message }).to_string()
}

/// A source error as a JUnit suite with one erroring test case, so CI shows why.
pub fn junit_error(message: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"shadowtap verdict\" tests=\"1\" errors=\"1\">\n  <testcase classname=\"shadowtap.verdict\" name=\"source\">\n    <error message=\"{}\"/>\n  </testcase>\n</testsuite>\n",
        escape(message)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Thresholds;
    use crate::verdict::evidence::Evidence;
    use crate::verdict::judge::judge;

    fn report() -> Report {
        let evidence = |route: &str, pairs, diverged| Evidence {
            pairs,
            diverged,
            shadow_requests: pairs,
            ..Evidence::new(route, "can<ary>")
        };
        let routes = vec![
            judge(evidence("/a&b", 300, 0), Thresholds::default()),
            judge(evidence("/c\"d", 300, 90), Thresholds::default()),
            judge(evidence("/e", 3, 0), Thresholds::default()),
        ];
        Report {
            verdict: crate::verdict::judge::overall(&routes),
            source: "test".to_string(),
            message: None,
            routes,
        }
    }

    #[test]
    fn junit_escapes_names_and_maps_each_verdict() {
        let xml = junit(&report());
        assert!(
            xml.contains("tests=\"3\" failures=\"1\" skipped=\"1\""),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"/a&amp;b -&gt; can&lt;ary&gt;\""),
            "{xml}"
        );
        assert!(
            xml.contains("name=\"/c&quot;d -&gt; can&lt;ary&gt;\""),
            "{xml}"
        );
        assert!(!xml.contains("can<ary>"), "{xml}");
        assert_eq!(xml.matches("<failure ").count(), 1, "{xml}");
        assert_eq!(xml.matches("<skipped ").count(), 1, "{xml}");
        assert_eq!(
            xml.matches("<testcase ").count(),
            xml.matches("</testcase>").count()
        );
        let error = junit_error("a <b> & c");
        assert!(error.contains("message=\"a &lt;b&gt; &amp; c\""), "{error}");
    }

    #[test]
    fn the_table_names_the_deciding_threshold_per_line_and_the_total() {
        let text = table(&report());
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines.iter().any(|l| l.starts_with("FAIL")
                && l.contains("/c\"d")
                && l.contains("max_divergence_ratio: 90/300")),
            "{text}"
        );
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with("INCONCLUSIVE") && l.contains("min_pairs = 100")),
            "{text}"
        );
        assert_eq!(
            lines.last(),
            Some(&"verdict: FAIL (1 passed, 1 failed, 1 inconclusive)")
        );
        let parsed: serde_json::Value = serde_json::from_str(&json(&report())).unwrap_or_default();
        assert_eq!(parsed["verdict"], "fail");
        assert_eq!(
            parsed["routes"][1]["decided_by"]["threshold"],
            "max_divergence_ratio"
        );
    }
}
