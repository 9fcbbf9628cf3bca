//! The config parser (`Config::from_toml`, what `shadowtap check` runs).
//!
//! Input: config text (invalid UTF-8 replaced, as a file that `check` reads would be refused
//! before the parser). Invariants: it never panics, whatever the file; an accepted config
//! prints (`check`'s output) as TOML that is accepted again and prints the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowtap::config::{Config, Overrides};

fuzz_target!(|input: &[u8]| {
    let text = String::from_utf8_lossy(input);
    let overrides = Overrides::default();
    let Ok(config) = Config::from_toml(&text, &overrides) else {
        return;
    };
    // `check` fails (never prints) when the config cannot be printed; that is allowed.
    let Ok(printed) = config.to_toml() else {
        return;
    };
    let again = match Config::from_toml(&printed, &overrides) {
        Ok(again) => again,
        Err(error) => panic!("printed config is refused: {error}\n{printed}"),
    };
    let reprinted = again.to_toml().ok();
    assert_eq!(
        reprinted.as_deref(),
        Some(printed.as_str()),
        "printing is not a fixed point"
    );
});
