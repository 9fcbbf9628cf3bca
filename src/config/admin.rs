//! `[admin]`: where the admin port listens and who may change things through it.
//!
//! The admin port can pause mirroring, pin noise and reload the config, so it is on
//! loopback by default; an operator who moves it elsewhere must give it a bearer token
//! (`admin.token_file`), or the config is refused, by `check` as by `run`.

use super::error::Problems;
use super::raw::RawAdmin;
use serde::Serialize;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The admin listener and its access rules.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    /// `None` when the admin port is disabled.
    pub address: Option<SocketAddr>,
    /// The file the bearer token was read from (`admin.token_file`).
    pub token_file: Option<PathBuf>,
    /// The token itself, read and trimmed while loading, so a missing or empty file is a
    /// config error and not a surprise at the first request.
    pub token: Option<AdminToken>,
    /// Why the token file could not be read, when it could not. Not a config error, so that
    /// `check` passes a config whose secret is mounted only where it runs (a container, a
    /// CI job without the secret); `check` warns, and `run` refuses to start.
    pub token_unreadable: Option<String>,
    /// Whether read-only endpoints (`/metrics`, `GET /api/v1/...`) answer without the token
    /// when one is set (`admin.read_only_open`). Mutating endpoints always need it then.
    pub read_only_open: bool,
    /// `[admin.tls]`: the admin port speaks HTTPS, set up as a listener's TLS is (so a token
    /// crossing a network cannot be read on the way).
    pub tls: Option<super::ListenerTls>,
}

/// A bearer token. Its `Debug` form hides it, so no log line or panic message can carry it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(Arc<str>);

impl AdminToken {
    /// The token's bytes, for the constant-time comparison in the admin port.
    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// Printed as the keys it is written with: `enabled`, `address` when enabled, the token's
/// *file* (never the token), `read_only_open` and `tls`. A bare `address` alone could not say
/// "disabled", and reading it back would turn the port on.
impl Serialize for AdminConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut admin = serializer.serialize_struct("AdminConfig", 5)?;
        admin.serialize_field("enabled", &self.address.is_some())?;
        match &self.address {
            Some(address) => admin.serialize_field("address", address)?,
            None => admin.skip_field("address")?,
        }
        match &self.token_file {
            Some(path) => admin.serialize_field("token_file", path)?,
            None => admin.skip_field("token_file")?,
        }
        admin.serialize_field("read_only_open", &self.read_only_open)?;
        match &self.tls {
            Some(tls) => admin.serialize_field("tls", tls)?,
            None => admin.skip_field("tls")?,
        }
        admin.end()
    }
}

impl AdminConfig {
    /// Whether the admin port listens on a loopback address only (or not at all).
    pub fn is_loopback(&self) -> bool {
        self.address
            .is_none_or(|address| address.ip().is_loopback())
    }

    /// Why the admin port must not start: a token file is named but could not be read.
    pub fn start_problem(&self) -> Option<String> {
        let reason = self.token_unreadable.as_ref()?;
        Some(format!("admin.token_file: {reason}"))
    }

    /// The warning `check` prints for a token file it could not read.
    pub(crate) fn warning(&self) -> Option<String> {
        let reason = self.token_unreadable.as_ref()?;
        Some(format!(
            "admin.token_file: {reason}; `run` refuses to start until it can be read"
        ))
    }
}

/// Validates `[admin]`: the address (`default_address` when none is given), the token
/// file, and that a non-loopback admin port has a token.
pub(crate) fn validate_admin(
    raw: RawAdmin,
    default_address: &str,
    parse_addr: impl Fn(&str, &str, &mut Problems) -> Option<SocketAddr>,
    problems: &mut Problems,
) -> AdminConfig {
    let address = if raw.enabled.unwrap_or(true) {
        let text = raw.address.as_deref().unwrap_or(default_address);
        parse_addr("admin.address", text, problems)
    } else {
        None
    };
    let token_file = raw.token_file.map(PathBuf::from);
    let mut token_unreadable = None;
    let token = token_file
        .as_deref()
        .and_then(|path| match std::fs::read_to_string(path) {
            Ok(text) if text.trim().is_empty() => {
                problems.push(
                    "admin.token_file",
                    format!("{} is empty: it must hold the bearer token", path.display()),
                );
                None
            }
            Ok(text) => Some(AdminToken(Arc::from(text.trim()))),
            Err(error) => {
                token_unreadable = Some(format!("cannot read {}: {error}", path.display()));
                None
            }
        });
    let tls = raw
        .tls
        .and_then(|tls| super::tls::validate("admin.tls", tls.into(), problems));
    let config = AdminConfig {
        address,
        token_file,
        token,
        token_unreadable,
        read_only_open: raw.read_only_open.unwrap_or(false),
        tls,
    };
    if let Some(address) = config.address {
        if !config.is_loopback() && config.token_file.is_none() {
            problems.push(
                "admin.token_file",
                format!(
                    "required: admin.address {address} is not a loopback address, and \
                     the admin port can change the running proxy (or --admin-token-file FILE)"
                ),
            );
        }
    }
    config
}
