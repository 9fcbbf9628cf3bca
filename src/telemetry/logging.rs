//! Log setup: `tracing` with a human or JSON format on stderr; the level comes from `RUST_LOG`.
//!
//! Human lines are coloured only when stderr is a terminal and `NO_COLOR` is not set
//! (<https://no-color.org>): under `kubectl logs`, journald or a file, escape codes are
//! noise that breaks grep and log parsers.

use crate::config::LogFormat;
use std::ffi::OsStr;
use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. Called once by the binary; a second call (tests) is a no-op.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let no_color = std::env::var_os("NO_COLOR");
    let colour = use_colour(std::io::stderr().is_terminal(), no_color.as_deref());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Human => builder.with_ansi(colour).try_init(),
        LogFormat::Json => builder
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
    // Already installed (a test harness or an earlier call): keep the first one.
    let _ = result;
}

/// Whether human-format logs are coloured: only on a terminal, and never when `NO_COLOR`
/// is set to a non-empty value (an empty `NO_COLOR` counts as unset, as the convention says).
pub fn use_colour(stderr_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    let opted_out = no_color.is_some_and(|value| !value.is_empty());
    stderr_is_terminal && !opted_out
}

/// Displays an error with its whole `source()` chain: `outer: middle: root cause`.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let set = Some(OsStr::new("1"));
        let empty = Some(OsStr::new(""));
        // Every combination: (terminal, NO_COLOR) -> colour.
        for (terminal, no_color, expected) in [
            (true, None, true),
            (true, empty, true),
            (true, set, false),
            (false, None, false),
            (false, empty, false),
            (false, set, false),
        ] {
            assert_eq!(
                use_colour(terminal, no_color),
                expected,
                "terminal={terminal} NO_COLOR={no_color:?}"
            );
        }
    }
}
