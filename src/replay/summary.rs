//! What a replay prints: per route, the demo's columns (compared pairs, divergence and
//! noise rates, top diverging fields, primary and shadow latency), then the paths that
//! diverged and how; and, on a terminal, a progress bar while it runs.

use super::send::Sent;
use crate::report::cells::SummaryCells;
use crate::report::samples::DivergentPair;
use crate::report::{Reporter, RouteSummary};
use indicatif::{ProgressBar, ProgressStyle};
use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// The per-route table.
pub fn routes(routes: &[RouteSummary]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<24} {:<8} {:>8} {:>8} {:>9} {:>10}  {:<18} {:<18} top diverging fields",
        "route",
        "shadow",
        "compared",
        "s_non2xx",
        "diverged",
        "noise-only",
        "primary p50/p99",
        "shadow p50/p99"
    );
    for route in routes.iter().filter(|route| route.shadow == "shadow") {
        let cells = SummaryCells::of(route);
        let _ = writeln!(
            out,
            "{:<24} {:<8} {:>8} {:>8} {:>9} {:>10}  {:<18} {:<18} {}",
            route.route,
            route.shadow,
            cells.compared,
            cells.shadow_non2xx,
            cells.diverged,
            cells.noise_only,
            cells.primary,
            cells.shadow,
            cells.top_fields,
        );
    }
    out
}

/// The divergent paths: one line per (method, path) with the kinds and fields that differed.
pub fn divergent(samples: &[DivergentPair]) -> String {
    let mut lines: Vec<String> = samples
        .iter()
        .filter(|sample| sample.result == "diverged")
        .map(|sample| {
            let what: Vec<String> = sample
                .differences
                .iter()
                .take(4)
                .map(|d| format!("{} {}", d.kind.as_str(), d.path))
                .collect();
            format!("  {} {}: {}", sample.method, sample.path, what.join(", "))
        })
        .collect();
    lines.sort();
    lines.dedup();
    if lines.is_empty() {
        return String::new();
    }
    format!("diverged requests:\n{}\n", lines.join("\n"))
}

/// The progress bar: requests answered of all, rate, ETA, divergences so far.
pub struct Progress {
    bar: ProgressBar,
    ticker: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts drawing (on stderr; indicatif draws nothing when it is not a terminal).
    pub fn start(total: u64, sent: Arc<Sent>, report: Arc<Reporter>) -> Progress {
        let bar = ProgressBar::new(total);
        let style = ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        let drawn = bar.clone();
        let ticker = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let done =
                    sent.answered.load(Ordering::Relaxed) + sent.failed.load(Ordering::Relaxed);
                drawn.set_position(done);
                let diverged: u64 = report
                    .routes()
                    .iter()
                    .filter(|route| route.shadow == "shadow")
                    .map(|route| route.comparisons.diverged)
                    .sum();
                drawn.set_message(format!("diverged {diverged}"));
            }
        });
        Progress { bar, ticker }
    }

    /// Stops drawing and clears the bar.
    pub fn finish(self) {
        self.ticker.abort();
        self.bar.finish_and_clear();
    }
}
