//! The demo's live terminal table: per route, what the client saw and what the comparison
//! engine found.
//!
//! Non-2xx answers are shown per side: `p_non2xx` is what the client got (the primary's
//! answers and the proxy's own errors), `s_non2xx` the shadow's answers among the compared
//! pairs. One column for both would hide a shadow that fails while users are served.

use super::traffic::Stats;
use crate::report::RouteSummary;
use std::fmt::Write;

/// Renders one table.
pub fn render(stats: &Stats, routes: &[RouteSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<18} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}  {:<18} {:<18} top diverging fields",
        "route",
        "requests",
        "p_non2xx",
        "s_non2xx",
        "compared",
        "diverged",
        "noise-only",
        "primary p50/p99",
        "shadow p50/p99"
    );
    for counts in stats.counts() {
        let summary = routes.iter().find(|route| route.route == counts.template);
        let (compared, shadow_non2xx, diverged, noise, fields, primary, shadow) = match summary {
            Some(route) => {
                let c = &route.comparisons;
                let compared = c.r#match + c.diverged + c.noise_only + c.unjudged;
                let fields: Vec<String> = route
                    .top_fields
                    .iter()
                    .take(3)
                    .map(|f| format!("{} ({})", f.field, f.count))
                    .collect();
                let l = &route.latency_ms;
                (
                    compared,
                    route.non2xx.shadow.to_string(),
                    percent(c.diverged, compared),
                    percent(c.noise_only, compared),
                    fields.join(", "),
                    format!("{:.1}/{:.1}ms", l.primary.p50, l.primary.p99),
                    format!("{:.1}/{:.1}ms", l.shadow.p50, l.shadow.p99),
                )
            }
            None => (
                0,
                "-".into(),
                "-".into(),
                "-".into(),
                String::new(),
                "-".into(),
                "-".into(),
            ),
        };
        let _ = writeln!(
            out,
            "{:<18} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}  {:<18} {:<18} {}",
            counts.template,
            counts.requests,
            counts.errors,
            shadow_non2xx,
            compared,
            diverged,
            noise,
            primary,
            shadow,
            if fields.is_empty() {
                "-".to_string()
            } else {
                fields
            }
        );
    }
    out.push('\n');
    out
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}
