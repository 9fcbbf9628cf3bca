//! `shadowtap ctl`: a small client of the admin API, so nobody hand-writes curl during an
//! incident. Each command is one request; the answer is printed for people (default) or as
//! the API's JSON (`--format json`).
//!
//! Exit codes: 0 done; 1 the admin port answered but refused or failed (400, 401, 404, 5xx:
//! the reason is printed); 2 bad usage (a bad URL, an unreadable token file); 3 the admin
//! port could not be reached (nothing listening, no answer in time, not HTTP).

pub mod client;
mod render;

use crate::tls::endpoint::{self, BearerToken};
use client::{AdminClient, Answer, ClientError};
use http::{Method, StatusCode};
use std::path::PathBuf;

/// Exit code: done.
pub const EXIT_OK: u8 = 0;
/// Exit code: the admin port refused or failed the request.
pub const EXIT_REFUSED: u8 = 1;
/// Exit code: bad usage (as clap's own usage errors).
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the admin port could not be reached.
pub const EXIT_UNREACHABLE: u8 = 3;

/// `shadowtap ctl`'s options (the doc comments are the flags' `--help` text).
#[derive(Debug, Clone, clap::Args)]
pub struct CtlArgs {
    /// The admin port's URL.
    #[arg(
        long,
        value_name = "URL",
        env = "SHADOWTAP_ADMIN",
        default_value = "http://127.0.0.1:9901"
    )]
    pub admin: String,
    /// A file holding the admin bearer token (admin.token_file of the proxy); trimmed.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// For an https:// admin port ([admin.tls]): the PEM certificate(s) of the CA that signed
    /// its certificate (default: the system's roots).
    #[arg(long, value_name = "FILE", env = "SHADOWTAP_ADMIN_CACERT")]
    pub cacert: Option<PathBuf>,
    /// Output: human (default) or json (the API's answer as it came).
    #[arg(long, value_name = "FORMAT", default_value = "human", value_parser = ["human", "json"])]
    pub format: String,
    /// What to do.
    #[command(subcommand)]
    pub command: CtlCommand,
}

/// A `ctl` command.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CtlCommand {
    /// Reload the config (POST /api/v1/reload); prints what changed, or every error of a
    /// refused file (the running config is then unchanged).
    Reload,
    /// Pause, resume or re-rate mirroring (PUT /api/v1/mirror).
    #[command(subcommand)]
    Mirror(MirrorCommand),
    /// Show the mirror switches (GET /api/v1/mirror).
    Status,
}

/// `ctl mirror ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum MirrorCommand {
    /// Stop mirroring (all of it, a route's, or a shadow's) from the next request on.
    Pause(Target),
    /// Resume mirroring; also clears any pause beneath the level named.
    Resume(Target),
    /// Mirror PERCENT (0-100) of requests to the shadows named.
    Percent {
        /// The share of requests mirrored, 0-100 (fractional allowed).
        #[arg(value_name = "PERCENT")]
        percent: f64,
        /// Which route and shadow.
        #[command(flatten)]
        target: Target,
    },
}

/// Which (route, shadow) pairs a mirror command changes: absent means all.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// A route's name (default: every route).
    #[arg(long, value_name = "ROUTE")]
    pub route: Option<String>,
    /// A shadow upstream's name (default: every shadow).
    #[arg(long, value_name = "SHADOW")]
    pub shadow: Option<String>,
}

/// Runs one `ctl` command and returns its exit code; what it prints goes to stdout (the
/// answer) and stderr (why it failed).
pub async fn run(args: CtlArgs) -> u8 {
    let token = match token(&args) {
        Ok(token) => token,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let client = match AdminClient::new(&args.admin, token, args.cacert.as_deref()) {
        Ok(client) => client,
        Err(error) => {
            eprintln!("error: {error}");
            return EXIT_USAGE;
        }
    };
    let (method, path, body) = request(&args.command);
    let answer = match client.send(method, path, body).await {
        Ok(answer) => answer,
        Err(error) => {
            eprintln!("error: {}", crate::telemetry::logging::ErrorChain(&error));
            return match error {
                ClientError::Url(_) => EXIT_USAGE,
                _ => EXIT_UNREACHABLE,
            };
        }
    };
    let json = args.format == "json";
    if json {
        println!("{}", String::from_utf8_lossy(&answer.body).trim_end());
    }
    if answer.status.is_success() {
        if !json {
            print!("{}", render::success(&args.command, &answer));
        }
        return EXIT_OK;
    }
    eprint!("{}", render::failure(&args.command, &answer));
    EXIT_REFUSED
}

/// The token: `--token-file`, else `SHADOWTAP_ADMIN_TOKEN`, else none.
fn token(args: &CtlArgs) -> Result<Option<BearerToken>, String> {
    endpoint::admin_token(args.token_file.as_deref())
        .map_err(|error| crate::telemetry::logging::ErrorChain(&error).to_string())
}

/// The request a command makes.
fn request(command: &CtlCommand) -> (Method, &'static str, Option<serde_json::Value>) {
    match command {
        CtlCommand::Reload => (Method::POST, "/api/v1/reload", None),
        CtlCommand::Status => (Method::GET, "/api/v1/mirror", None),
        CtlCommand::Mirror(mirror) => {
            let (target, change) = match mirror {
                MirrorCommand::Pause(target) => (target, ("paused", serde_json::json!(true))),
                MirrorCommand::Resume(target) => (target, ("paused", serde_json::json!(false))),
                MirrorCommand::Percent { percent, target } => {
                    (target, ("percent", serde_json::json!(percent)))
                }
            };
            let mut body = serde_json::Map::new();
            if let Some(route) = &target.route {
                body.insert("route".into(), route.clone().into());
            }
            if let Some(shadow) = &target.shadow {
                body.insert("shadow".into(), shadow.clone().into());
            }
            body.insert(change.0.into(), change.1);
            (Method::PUT, "/api/v1/mirror", Some(body.into()))
        }
    }
}

/// Whether an answer means the endpoint is not served by this proxy.
fn not_served(answer: &Answer) -> bool {
    answer.status == StatusCode::NOT_FOUND && !answer.body.starts_with(b"{")
}
