//! The demo's live terminal table: per route, what the client saw and what the comparison
//! engine found.
//!
//! Non-2xx answers are shown per side: `p_non2xx` is what the client got (the primary's
//! answers and the proxy's own errors), `s_non2xx` the shadow's answers among the compared
//! pairs. One column for both would hide a shadow that fails while users are served.

use super::traffic::Stats;
use crate::report::cells::SummaryCells;
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
        let cells = routes
            .iter()
            .find(|route| route.route == counts.template)
            .map_or_else(SummaryCells::absent, SummaryCells::of);
        let _ = writeln!(
            out,
            "{:<18} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10}  {:<18} {:<18} {}",
            counts.template,
            counts.requests,
            counts.errors,
            cells.shadow_non2xx,
            cells.compared,
            cells.diverged,
            cells.noise_only,
            cells.primary,
            cells.shadow,
            cells.top_fields,
        );
    }
    out.push('\n');
    out
}
