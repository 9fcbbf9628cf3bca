//! Noise pins: fields a route declares noise (never a divergence) or signal (never learned
//! away), from its config (`compare.noise`) and at runtime (`PUT /api/v1/noise`).
//!
//! One [`Pins`] per route, shared by `Arc` with every noise model of the route's labels, so
//! a pin set at runtime classes the next pair of any of them exactly as a config pin would.
//! A runtime pin wins over a config pin of the same field; removing it brings the config
//! pin back. Read once per compared pair on the comparison workers, never on the live path.

use std::collections::BTreeMap;
use std::sync::{PoisonError, RwLock, RwLockReadGuard};

/// A pin: what a field always is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Pin {
    /// Always noise.
    Noise,
    /// Never noise.
    Signal,
}

/// Where a pin comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PinSource {
    /// The route's `compare.noise` table.
    Config,
    /// `PUT /api/v1/noise`.
    Runtime,
}

/// A route's pins. The config's are replaced by a reload; the runtime ones outlive it.
#[derive(Debug, Default)]
pub struct Pins {
    both: RwLock<Both>,
}

#[derive(Debug, Default)]
struct Both {
    config: BTreeMap<String, Pin>,
    runtime: BTreeMap<String, Pin>,
}

/// Why a runtime pin's field is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a field key: expected \"status\", \"latency\", \"header:<name>\", or a JSON pointer pattern such as \"/items/*/id\" (\"\" for the whole body)")]
pub struct BadField(pub String);

impl Pins {
    /// The pins of a route's config.
    pub fn new(config: BTreeMap<String, Pin>) -> Pins {
        Pins {
            both: RwLock::new(Both {
                config,
                runtime: BTreeMap::new(),
            }),
        }
    }

    /// Sets (`Some`) or removes (`None`) a runtime pin.
    pub fn set(&self, field: String, pin: Option<Pin>) {
        let mut both = self.both.write().unwrap_or_else(PoisonError::into_inner);
        match pin {
            Some(pin) => both.runtime.insert(field, pin),
            None => both.runtime.remove(&field),
        };
    }

    /// Replaces the config's pins (a reload); the runtime pins stay.
    pub fn set_config(&self, config: BTreeMap<String, Pin>) {
        self.both
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .config = config;
    }

    /// The runtime pins alone.
    pub fn runtime(&self) -> BTreeMap<String, Pin> {
        self.both
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .runtime
            .clone()
    }

    /// Every pin in force, runtime pins over config ones, with where each comes from.
    pub fn snapshot(&self) -> BTreeMap<String, (Pin, PinSource)> {
        let both = self.both.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: BTreeMap<String, (Pin, PinSource)> = both
            .config
            .iter()
            .map(|(field, pin)| (field.clone(), (*pin, PinSource::Config)))
            .collect();
        for (field, pin) in both.runtime.iter() {
            all.insert(field.clone(), (*pin, PinSource::Runtime));
        }
        all
    }

    /// The pins in force, read-locked once (for a whole pair).
    pub fn read(&self) -> PinView<'_> {
        PinView {
            both: self.both.read().unwrap_or_else(PoisonError::into_inner),
        }
    }
}

/// The pins in force while a pair is classed.
pub struct PinView<'a> {
    both: RwLockReadGuard<'a, Both>,
}

impl PinView<'_> {
    /// The pin of a field key: the runtime one, else the config one.
    pub fn get(&self, key: &str) -> Option<Pin> {
        self.both
            .runtime
            .get(key)
            .or_else(|| self.both.config.get(key))
            .copied()
    }

    /// Whether the field is pinned either way.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

/// The field key a pin may name, normalised (header names lowercased): the keys noise
/// classification uses (`super::noise::field_key`).
pub fn pin_field(text: &str) -> Result<String, BadField> {
    if text == "status" || text == "latency" {
        return Ok(text.to_string());
    }
    if let Some(name) = text.strip_prefix("header:") {
        return match http::HeaderName::from_bytes(name.as_bytes()) {
            Ok(name) => Ok(format!("header:{}", name.as_str())),
            Err(_) => Err(BadField(text.to_string())),
        };
    }
    if (text.is_empty() || text.starts_with('/'))
        && super::json::PointerPattern::parse(text).is_ok()
    {
        return Ok(text.to_string());
    }
    Err(BadField(text.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_pins_override_config_pins_until_removed() {
        let pins = Pins::new(BTreeMap::from([("/a".to_string(), Pin::Noise)]));
        assert_eq!(pins.read().get("/a"), Some(Pin::Noise));
        pins.set("/a".into(), Some(Pin::Signal));
        pins.set("/b".into(), Some(Pin::Noise));
        let view = pins.read();
        assert_eq!(
            (view.get("/a"), view.get("/b")),
            (Some(Pin::Signal), Some(Pin::Noise))
        );
        drop(view);
        assert_eq!(pins.snapshot()["/a"], (Pin::Signal, PinSource::Runtime));
        assert_eq!(
            pins.runtime(),
            BTreeMap::from([
                ("/a".to_string(), Pin::Signal),
                ("/b".to_string(), Pin::Noise)
            ])
        );
        pins.set("/a".into(), None);
        assert_eq!(pins.snapshot()["/a"], (Pin::Noise, PinSource::Config));
    }

    #[test]
    fn field_keys_are_checked_and_normalised() {
        assert_eq!(pin_field("status").as_deref(), Ok("status"));
        assert_eq!(pin_field("header:X-Trace").as_deref(), Ok("header:x-trace"));
        assert_eq!(pin_field("/items/*/at").as_deref(), Ok("/items/*/at"));
        assert_eq!(pin_field("").as_deref(), Ok(""));
        assert!(pin_field("items").is_err());
        assert!(pin_field("header:bad name").is_err());
    }
}
