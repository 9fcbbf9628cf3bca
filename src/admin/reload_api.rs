//! `POST /api/v1/reload`: the admin side of hot reload. The reload itself belongs to the
//! app, which installs a [`ConfigReload`] in the admin state; without one the path is not
//! served (404), which is what `shadowtap ctl reload` reports.
//!
//! The contract: 200 `{"result": "success", "generation": N, "changes": ["..."]}`, or 400
//! `{"result": "failure", "errors": ["<key>: <reason>", ...]}` with every problem of the
//! new file, in which case nothing changed.

use super::reply::{failure, json, Reply};
use http::StatusCode;
use std::future::Future;
use std::pin::Pin;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new config is in force: its generation (1 is the start's) and what changed, one
    /// line each.
    Applied {
        /// The generation now current.
        generation: u64,
        /// What changed.
        changes: Vec<String>,
    },
    /// The new config was refused and the old one stays; every problem, `key: reason`.
    Refused(Vec<String>),
}

/// The app's reload, as the admin port calls it.
pub trait ConfigReload: Send + Sync {
    /// Re-reads, validates and swaps the config.
    fn reload(&self) -> Pin<Box<dyn Future<Output = ReloadOutcome> + Send + '_>>;
}

/// Runs a reload and answers with the contract above.
pub async fn post(reload: &dyn ConfigReload) -> Reply {
    match reload.reload().await {
        ReloadOutcome::Applied {
            generation,
            changes,
        } => json(&serde_json::json!({
            "result": "success",
            "generation": generation,
            "changes": changes,
        })),
        ReloadOutcome::Refused(errors) => failure(StatusCode::BAD_REQUEST, errors),
    }
}
