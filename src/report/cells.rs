//! One (route, shadow)'s row in the terminal tables of `shadowtap demo` and `shadowtap
//! replay`, as text: both show the same columns, so they are made in one place.

use super::RouteSummary;

/// The columns a terminal table shows for one [`RouteSummary`].
pub struct SummaryCells {
    /// Pairs compared, whatever their result.
    pub compared: u64,
    /// Compared pairs whose shadow answered other than 2xx.
    pub shadow_non2xx: String,
    /// Diverged pairs as a percentage of those compared (`-` before the first).
    pub diverged: String,
    /// Noise-only pairs, the same way.
    pub noise_only: String,
    /// The primary's latency, `p50/p99ms`.
    pub primary: String,
    /// The shadow's latency, the same way.
    pub shadow: String,
    /// The three most frequent diverging fields with their counts (`-` when none).
    pub top_fields: String,
}

impl SummaryCells {
    /// The row of `route`.
    pub fn of(route: &RouteSummary) -> SummaryCells {
        let c = &route.comparisons;
        let compared = c.r#match + c.diverged + c.noise_only + c.unjudged;
        let fields: Vec<String> = route
            .top_fields
            .iter()
            .take(3)
            .map(|f| format!("{} ({})", f.field, f.count))
            .collect();
        let l = &route.latency_ms;
        SummaryCells {
            compared,
            shadow_non2xx: route.non2xx.shadow.to_string(),
            diverged: percent(c.diverged, compared),
            noise_only: percent(c.noise_only, compared),
            primary: format!("{:.1}/{:.1}ms", l.primary.p50, l.primary.p99),
            shadow: format!("{:.1}/{:.1}ms", l.shadow.p50, l.shadow.p99),
            top_fields: if fields.is_empty() {
                "-".to_string()
            } else {
                fields.join(", ")
            },
        }
    }

    /// The row of a route nothing was compared on yet: no pairs, every other cell `-`.
    pub fn absent() -> SummaryCells {
        let dash = || "-".to_string();
        SummaryCells {
            compared: 0,
            shadow_non2xx: dash(),
            diverged: dash(),
            noise_only: dash(),
            primary: dash(),
            shadow: dash(),
            top_fields: dash(),
        }
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "-".to_string()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::percent;

    #[test]
    fn a_percentage_of_nothing_is_a_dash() {
        assert_eq!(percent(0, 0), "-");
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(5, 5), "100.0%");
    }
}
