//! The validated upstreams, and the typed references to them that validation hands out.
//!
//! A route names its primary, and a mirror its shadows and secondary, by upstream name.
//! Validation resolves each name once into an [`UpstreamRef`]: the name (for printing,
//! logs and metric labels), the upstream's settings, and an [`UpstreamId`], its position in
//! [`Upstreams`]. A component that keeps one entry per upstream, built in
//! [`Upstreams::iter`] order, reads a route's entry by the id: no lookup by name at start,
//! and no fallback for a name that is not there.

use super::UpstreamConfig;
use serde::ser::{Serialize, SerializeMap, Serializer};
use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::sync::Arc;

/// An upstream's position in [`super::Config::upstreams`] (name order).
///
/// Only validation makes one, for an upstream of the config it is validating, and neither
/// [`Upstreams`] nor a [`super::Config`] can be built outside this module's parent: so an
/// id is in range for the config it came from, and for any table built from that config's
/// [`Upstreams::iter`]. Taking an id from one config to another is the one misuse the types
/// do not prevent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UpstreamId(usize);

impl UpstreamId {
    /// The position, to index a table kept in [`Upstreams::iter`] order.
    pub fn index(self) -> usize {
        self.0
    }
}

/// A route's reference to an upstream, resolved by validation: the name as written, the
/// upstream's settings and its id. Printed as the name, so `check` prints the file as it
/// was written.
#[derive(Debug, Clone)]
pub struct UpstreamRef {
    name: String,
    id: UpstreamId,
    config: Arc<UpstreamConfig>,
}

impl UpstreamRef {
    /// The upstream's name (its `upstreams.NAME` key).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where the upstream is in [`super::Config::upstreams`].
    pub fn id(&self) -> UpstreamId {
        self.id
    }

    /// The upstream's settings.
    pub fn config(&self) -> &UpstreamConfig {
        &self.config
    }
}

impl fmt::Display for UpstreamRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl Serialize for UpstreamRef {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.name)
    }
}

/// The upstreams that passed validation, in name order (the order the file's table is
/// printed in, and the order of [`UpstreamId`]s).
#[derive(Debug, Clone)]
pub struct Upstreams {
    entries: Vec<(String, Arc<UpstreamConfig>)>,
}

impl Upstreams {
    fn new(upstreams: BTreeMap<String, UpstreamConfig>) -> Upstreams {
        Upstreams {
            entries: upstreams
                .into_iter()
                .map(|(name, upstream)| (name, Arc::new(upstream)))
                .collect(),
        }
    }

    /// Name and settings of each upstream, in [`UpstreamId`] order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&String, &UpstreamConfig)> {
        self.entries
            .iter()
            .map(|(name, upstream)| (name, upstream.as_ref()))
    }

    /// The upstream called `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&UpstreamConfig> {
        let (_, upstream) = self.entries.get(self.position(name)?)?;
        Some(upstream)
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|(known, _)| known.as_str().cmp(name))
            .ok()
    }

    fn reference(&self, name: &str) -> Option<UpstreamRef> {
        let at = self.position(name)?;
        let (_, config) = self.entries.get(at)?;
        Some(UpstreamRef {
            name: name.to_string(),
            id: UpstreamId(at),
            config: config.clone(),
        })
    }
}

/// As a map's: the upstream called `name`, which must exist (tests and tools).
impl std::ops::Index<&str> for Upstreams {
    type Output = UpstreamConfig;

    fn index(&self, name: &str) -> &UpstreamConfig {
        match self.get(name) {
            Some(upstream) => upstream,
            None => panic!("no upstream {name:?}"),
        }
    }
}

// Printed as the `[upstreams.NAME]` table it is read from.
impl Serialize for Upstreams {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.entries.len()))?;
        for (name, upstream) in &self.entries {
            map.serialize_entry(name, upstream.as_ref())?;
        }
        map.end()
    }
}

/// The upstream names routes and mirrors may refer to, while validating.
pub(crate) struct UpstreamNames {
    /// Every name the file defines, including upstreams that failed their own checks: a
    /// route naming one gets no second, misleading "unknown upstream" problem.
    known: HashSet<String>,
    /// The upstreams that passed.
    valid: Upstreams,
}

impl UpstreamNames {
    /// `known` is every name defined; `valid` the upstreams that passed their checks.
    pub(crate) fn new(
        known: HashSet<String>,
        valid: BTreeMap<String, UpstreamConfig>,
    ) -> UpstreamNames {
        UpstreamNames {
            known,
            valid: Upstreams::new(valid),
        }
    }

    /// Whether the file defines an upstream called `name`.
    pub(crate) fn is_known(&self, name: &str) -> bool {
        self.known.contains(name)
    }

    /// The reference to `name`; `None` when it is unknown or failed its own checks, both
    /// reported as problems (by the caller, or by the upstream's checks): the config is refused.
    pub(crate) fn resolve(&self, name: &str) -> Option<UpstreamRef> {
        self.valid.reference(name)
    }

    /// The upstreams that passed, for the typed config.
    pub(crate) fn into_upstreams(self) -> Upstreams {
        self.valid
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use crate::config::{Config, Overrides};

    fn load(text: &str) -> Result<Config, Vec<String>> {
        Config::from_toml(text, &Overrides::default())
            .map_err(|error| error.problems().iter().map(ToString::to_string).collect())
    }

    #[test]
    fn each_reference_holds_its_upstream_and_its_position_in_name_order() {
        let config = load(
            "[upstreams.c]\nurl = \"http://127.0.0.1:3\"\n\
             [upstreams.a]\nurl = \"http://127.0.0.1:1\"\n\
             [upstreams.b]\nurl = \"http://127.0.0.1:2\"\n\
             [[routes]]\nprimary = \"c\"\n\
             [routes.mirror]\nsecondary = \"b\"\nshadows = [{ upstream = \"a\" }]\n",
        )
        .unwrap();
        let names: Vec<&String> = config.upstreams.iter().map(|(name, _)| name).collect();
        assert_eq!(names, ["a", "b", "c"]);
        let route = &config.routes[0];
        let mirror = route.mirror.as_ref().unwrap();
        for (reference, name, url) in [
            (&route.primary, "c", "http://127.0.0.1:3"),
            (&mirror.shadows[0].upstream, "a", "http://127.0.0.1:1"),
            (
                mirror.secondary.as_ref().unwrap(),
                "b",
                "http://127.0.0.1:2",
            ),
        ] {
            assert_eq!(reference.name(), name);
            assert_eq!(reference.config().url, url);
            let (at, _) = config.upstreams.iter().nth(reference.id().index()).unwrap();
            assert_eq!(at, name);
            assert_eq!(config.upstreams.get(name).unwrap().url, url);
        }
        assert!(config.upstreams.get("d").is_none());
    }

    #[test]
    fn naming_an_upstream_that_failed_its_checks_adds_no_problem_and_hides_none() {
        let problems = load(
            "[upstreams.bad]\nurl = \"ftp://127.0.0.1:1\"\n\
             [upstreams.good]\nurl = \"http://127.0.0.1:2\"\n\
             [[routes]]\nname = \"x\"\nprimary = \"bad\"\n\
             [[routes]]\nname = \"x\"\nprimary = \"good\"\n\
             [routes.mirror]\nsecondary = \"bad\"\n\
             shadows = [{ upstream = \"bad\", percent = 101.0 }, { upstream = \"bad\" }]\n",
        )
        .unwrap_err();
        let paths: Vec<&str> = problems
            .iter()
            .map(|problem| problem.split(": ").next().unwrap())
            .collect();
        assert_eq!(
            paths,
            [
                "upstreams.bad.url",
                "routes[1].mirror.shadows[0].percent",
                "routes[1].mirror.shadows[1].upstream",
                "routes[1].mirror.secondary",
                "routes[1].name",
            ],
            "{problems:#?}"
        );
    }
}
