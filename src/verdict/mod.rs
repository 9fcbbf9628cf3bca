//! `shadowtap verdict`: judges a shadow against thresholds and answers pass, fail or
//! inconclusive, for a canary step in CI/CD.
//!
//! Evidence comes from one instance's admin API or from a fleet's Prometheus ([`sources`]);
//! each (route, shadow) is judged against its thresholds ([`judge`]), each ratio by its 95 %
//! Wilson interval ([`stats`]); the report is written for people, machines or CI
//! ([`output`]). `--wait` asks again until the verdict is decided or the deadline passes.
//!
//! | module | role |
//! |---|---|
//! | [`stats`] | Wilson intervals and the pass / fail / inconclusive rule |
//! | [`evidence`] | the counts and latencies of one (route, shadow), whatever the source |
//! | [`judge`] | thresholds applied to evidence, the deciding threshold named |
//! | [`sources`] | the admin API and Prometheus |
//! | [`output`] | table, JSON and JUnit XML |

// Answers from a source are untrusted input: no indexing that could panic on them.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

pub mod evidence;
pub mod judge;
pub mod output;
pub mod sources;
pub mod stats;

use crate::config::VerdictConfig;
use judge::RouteVerdict;
use serde::Serialize;
use sources::http::Getter;
pub use sources::{Access, Source, SourceError};
pub use stats::Decision;
use std::time::{Duration, Instant};

/// What to judge, against what.
#[derive(Debug, Clone)]
pub struct Request {
    /// Where the evidence comes from.
    pub source: Source,
    /// The thresholds (flags already laid over the config's).
    pub config: VerdictConfig,
    /// The deadline of each exchange with the source.
    pub timeout: Duration,
    /// The CA of an `https://` source, the admin token.
    pub access: Access,
}

/// A verdict and everything it was decided on.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The whole run's decision.
    pub verdict: Decision,
    /// The source, in words.
    pub source: String,
    /// Why the verdict is what it is when no route says it (nothing to judge yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Each (route, shadow), sorted.
    pub routes: Vec<RouteVerdict>,
}

impl Request {
    /// Asks the source once and judges what it says.
    pub async fn evaluate(&self) -> Result<Report, SourceError> {
        self.evaluate_with(&self.getter()?).await
    }

    /// The client of the source (its `--cacert` read once, however often it is asked).
    fn getter(&self) -> Result<Getter, SourceError> {
        Ok(Getter::new(
            self.source.endpoint(&self.access)?,
            self.timeout,
        ))
    }

    async fn evaluate_with(&self, getter: &Getter) -> Result<Report, SourceError> {
        let evidence = self.source.fetch(getter).await?;
        let routes: Vec<RouteVerdict> = evidence
            .into_iter()
            // Nothing compared and nothing failed: the secondary (mirrored for noise, never
            // compared), or a shadow not asked yet. There is nothing to judge there.
            .filter(|evidence| evidence.pairs > 0 || evidence.shadow_errors > 0)
            .map(|evidence| {
                let thresholds = self.config.for_route(&evidence.route);
                judge::judge(evidence, thresholds)
            })
            .collect();
        let message = routes.is_empty().then(|| {
            "no compared pairs and no shadow requests found: nothing to judge yet".to_string()
        });
        Ok(Report {
            verdict: judge::overall(&routes),
            source: self.source.describe(),
            message,
            routes,
        })
    }

    /// Asks until the verdict is a pass or a fail, or `deadline` has passed (then the last
    /// answer stands: inconclusive). An error ends the wait at once: a wrong URL or query
    /// does not fix itself.
    pub async fn evaluate_until(
        &self,
        deadline: Duration,
        interval: Duration,
        mut progress: impl FnMut(&Report),
    ) -> Result<Report, SourceError> {
        let end = Instant::now() + deadline;
        let getter = self.getter()?;
        loop {
            let report = self.evaluate_with(&getter).await?;
            let now = Instant::now();
            if report.verdict != Decision::Inconclusive || now >= end {
                return Ok(report);
            }
            progress(&report);
            tokio::time::sleep(interval.min(end - now)).await;
        }
    }
}
