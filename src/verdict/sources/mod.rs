//! Where the evidence comes from: one instance's admin API ([`admin`]) or a fleet's
//! Prometheus ([`prometheus`]). Both answer with the same [`Evidence`], so the judging is
//! the same whichever was asked.
//!
//! | module | role |
//! |---|---|
//! | [`http`] | GETs with a deadline, over the tools' `http(s)://` client |
//! | [`admin`] | `/api/v1/routes` and `/metrics` of one instance |
//! | [`prometheus`] | exact counter increases over a window, summed across instances |

pub mod admin;
pub mod http;
pub mod prometheus;

use super::evidence::Evidence;
use crate::tls::endpoint::{BearerToken, Endpoint, EndpointError};
use serde::de::DeserializeOwned;
use std::path::PathBuf;

/// A source to judge.
#[derive(Debug, Clone)]
pub enum Source {
    /// One instance's admin address (`http://127.0.0.1:9090`): totals since it started.
    Admin(String),
    /// A fleet through Prometheus, over a window, narrowed by a selector.
    Prometheus(prometheus::Fleet),
}

impl Source {
    /// The source in words, for the report.
    pub fn describe(&self) -> String {
        match self {
            Source::Admin(url) => format!("admin API {url} (totals since the instance started)"),
            Source::Prometheus(fleet) => format!(
                "Prometheus {} {{{}}} over the last {}",
                fleet.url,
                fleet.matchers,
                humantime::format_duration(fleet.window)
            ),
        }
    }

    /// The flag that named the source, for errors.
    fn flag(&self) -> &'static str {
        match self {
            Source::Admin(_) => "--admin",
            Source::Prometheus(_) => "--prometheus",
        }
    }

    /// The source's URL.
    fn url(&self) -> &str {
        match self {
            Source::Admin(url) => url,
            Source::Prometheus(fleet) => &fleet.url,
        }
    }

    /// The endpoint to ask: TLS for an `https://` URL as `access` says, and the admin token
    /// for an admin port only (a Prometheus is never shown it).
    pub fn endpoint(&self, access: &Access) -> Result<Endpoint, SourceError> {
        let endpoint = Endpoint::parse(self.flag(), self.url(), access.cacert.as_deref())?;
        Ok(match self {
            Source::Admin(_) => endpoint.with_token(access.admin_token.clone()),
            Source::Prometheus(_) => endpoint,
        })
    }

    /// The evidence of every (route, shadow) the source knows.
    pub async fn fetch(&self, getter: &http::Getter) -> Result<Vec<Evidence>, SourceError> {
        match self {
            Source::Admin(url) => admin::fetch(getter, url).await,
            Source::Prometheus(fleet) => prometheus::fetch(getter, fleet).await,
        }
    }
}

/// How to reach a source beyond its URL: the same rules as `shadowtap ctl`'s.
#[derive(Debug, Clone, Default)]
pub struct Access {
    /// `--cacert`: the PEM CA an `https://` source's certificate is verified against (else
    /// the system's roots).
    pub cacert: Option<PathBuf>,
    /// `--token-file` (or `SHADOWTAP_ADMIN_TOKEN`): shown to an admin port only.
    pub admin_token: Option<BearerToken>,
}

/// Why a source gave no evidence. Every one is an error (exit 3), never a pass.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source's URL or `--cacert` cannot be used (each names its flag).
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// The URL cannot be asked.
    #[error("bad source URL {url}: {reason}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered (refused, reset, timed out).
    #[error("source unreachable: {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The transport's error chain.
        reason: String,
    },
    /// The source answered with an error status.
    #[error("source answered HTTP {status} for {url}: {body}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
        /// The start of the answer.
        body: String,
    },
    /// The answer is not what the source's API returns.
    #[error("unexpected answer from {url}: {reason}")]
    BadResponse {
        /// The URL asked.
        url: String,
        /// What did not parse.
        reason: String,
    },
    /// Prometheus refused a query.
    #[error("bad query {query:?}: {reason}")]
    Query {
        /// The PromQL sent.
        query: String,
        /// Prometheus's error.
        reason: String,
    },
    /// `--selector` is not a `{...}` label selector.
    #[error(
        "bad selector {selector:?}: expected label matchers in braces, e.g. '{{app=\"checkout\"}}'"
    )]
    BadSelector {
        /// The selector given.
        selector: String,
    },
    /// No shadowtap series at all matches the selector.
    #[error("the selector {selector} matches no shadowtap series in Prometheus (is it scraping shadowtap, and are the labels right?)")]
    NoSeries {
        /// The selector used.
        selector: String,
    },
}

/// A counter value as a count (sums of counters are whole; rounding absorbs float error).
fn count(value: f64) -> u64 {
    if value.is_finite() && value > 0.0 {
        value.round() as u64
    } else {
        0
    }
}

/// A 2xx answer; any other status is an error naming the URL.
fn expect_success(url: &str, answer: http::Answer) -> Result<http::Answer, SourceError> {
    if answer.status.is_success() {
        return Ok(answer);
    }
    Err(SourceError::Status {
        url: url.to_string(),
        status: answer.status.as_u16(),
        body: answer.body.chars().take(200).collect(),
    })
}

/// The body of a 2xx answer parsed as JSON; an error status or a body that does not parse
/// is an error naming the URL.
fn expect_json<T: DeserializeOwned>(url: &str, answer: http::Answer) -> Result<T, SourceError> {
    let answer = expect_success(url, answer)?;
    serde_json::from_str(&answer.body).map_err(|error| SourceError::BadResponse {
        url: url.to_string(),
        reason: error.to_string(),
    })
}
