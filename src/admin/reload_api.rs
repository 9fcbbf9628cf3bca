//! `POST /api/v1/reload`: the admin side of hot reload. The reload itself belongs to the
//! app, which installs a [`ConfigReload`] in the admin state; without one the path is not
//! served (404), which is what `shadowtap ctl reload` reports.
//!
//! The contract: 200 `{"result": "success", "changes": ["..."]}`, or 400
//! `{"result": "failure", "errors": ["<key>: <reason>", ...]}` with every problem of the
//! new file, in which case nothing changed.

use super::reply::{failure, json, Reply};
use http::StatusCode;
use std::future::Future;
use std::pin::Pin;

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The new config is in force; what changed, one line each.
    Applied(Vec<String>),
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
        ReloadOutcome::Applied(changes) => json(&serde_json::json!({
            "result": "success",
            "changes": changes,
        })),
        ReloadOutcome::Refused(errors) => failure(StatusCode::BAD_REQUEST, errors),
    }
}
