//! Which requests are mirrored: percentage sampling, optionally sticky on a key.
//!
//! Random sampling uses a fast thread-local generator. Sticky sampling hashes the key (a
//! header, cookie or query parameter) with FNV-1a, a hash that is stable across builds and
//! restarts, so the same user is always in or always out — what you want when a session
//! spans requests. The shadow's name is mixed in so two shadows at 10% see different users.

use crate::message::fields::FieldLookup;
use http::header::HeaderName;

/// Where a sticky key is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StickyKey {
    /// A request header's value.
    Header(HeaderName),
    /// A cookie's value from the `Cookie` header.
    Cookie(String),
    /// A query parameter's value (raw, as sent).
    Query(String),
}

/// A sampling rule: a percentage and, optionally, a key to make it deterministic.
#[derive(Debug, Clone)]
pub struct Sampler {
    /// Share of requests mirrored, in `[0, 100]`.
    percent: f64,
    /// `percent` mapped onto `u64`: a hash below this is in.
    threshold: u64,
    sticky: Option<StickyKey>,
    seed: u64,
}

impl Sampler {
    /// A sampler for `percent` (clamped to 0–100). `seed` differentiates shadows.
    pub fn new(percent: f64, sticky: Option<StickyKey>, seed: &str) -> Sampler {
        let (percent, threshold) = threshold(percent);
        Sampler {
            percent,
            threshold,
            sticky,
            seed: fnv1a(FNV_OFFSET, seed.as_bytes()),
        }
    }

    /// The configured percentage.
    pub fn percent(&self) -> f64 {
        self.percent
    }

    /// Decides for one request. With a sticky key that the request lacks, falls back to random.
    pub fn sample(&self, headers: &impl FieldLookup, query: Option<&str>) -> bool {
        self.draw(self.percent, self.threshold, headers, query)
    }

    /// Decides for one request at `percent` when given (a runtime override, see
    /// [`super::control`]) instead of the configured percentage; the same sticky key and
    /// seed, so a sticky user stays in as the share grows.
    pub fn sample_at(
        &self,
        percent: Option<f64>,
        headers: &impl FieldLookup,
        query: Option<&str>,
    ) -> bool {
        match percent {
            None => self.sample(headers, query),
            Some(percent) => {
                let (percent, threshold) = threshold(percent);
                self.draw(percent, threshold, headers, query)
            }
        }
    }

    fn draw(
        &self,
        percent: f64,
        threshold: u64,
        headers: &impl FieldLookup,
        query: Option<&str>,
    ) -> bool {
        if percent <= 0.0 {
            return false;
        }
        if percent >= 100.0 {
            return true;
        }
        let draw = match self
            .sticky
            .as_ref()
            .and_then(|key| key_value(key, headers, query))
        {
            Some(value) => mix(fnv1a(self.seed, value)),
            None => fastrand::u64(..),
        };
        draw < threshold
    }
}

/// `percent` clamped to 0–100 (0 when not finite), and mapped onto `u64`: a draw below the
/// threshold is in.
fn threshold(percent: f64) -> (f64, u64) {
    let percent = if percent.is_finite() {
        percent.clamp(0.0, 100.0)
    } else {
        0.0
    };
    // u64::MAX as f64 rounds up to 2^64; saturating casts keep 100% at "always".
    let threshold = if percent >= 100.0 {
        u64::MAX
    } else {
        (percent / 100.0 * u64::MAX as f64) as u64
    };
    (percent, threshold)
}

fn key_value<'a>(
    key: &StickyKey,
    headers: &'a impl FieldLookup,
    query: Option<&'a str>,
) -> Option<&'a [u8]> {
    match key {
        StickyKey::Header(name) => headers.first(name.as_str()),
        StickyKey::Cookie(name) => headers
            .every("cookie")
            .filter_map(|value| std::str::from_utf8(value).ok())
            .flat_map(|value| value.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(cookie, _)| *cookie == name)
            .map(|(_, value)| value.as_bytes()),
        StickyKey::Query(name) => query?
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(param, _)| *param == name)
            .map(|(_, value)| value.as_bytes()),
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// FNV's high bits are weak for short keys; a final avalanche (splitmix64's) spreads them
/// so the threshold comparison is fair.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::fields::Fields;

    #[test]
    fn edges_are_exact() {
        let none = Sampler::new(0.0, None, "s");
        let all = Sampler::new(100.0, None, "s");
        let empty = Fields::default();
        assert!((0..1000).all(|_| !none.sample(&empty, None)));
        assert!((0..1000).all(|_| all.sample(&empty, None)));
    }

    #[test]
    fn sticky_keys_decide_the_same_way_every_time() {
        let sampler = Sampler::new(
            50.0,
            Some(StickyKey::Header(HeaderName::from_static("x-user"))),
            "s",
        );
        let mut ins = 0;
        for user in 0..2000 {
            let value = format!("user-{user}");
            let map = Fields::from_pairs([("X-User", value.as_str())]);
            let first = sampler.sample(&map, None);
            assert!((0..5).all(|_| sampler.sample(&map, None) == first));
            ins += usize::from(first);
        }
        // 2000 keys at 50%: sd = sqrt(2000*0.25) ≈ 22; 5 sd band.
        assert!((890..=1110).contains(&ins), "{ins} of 2000 sticky keys in");
    }

    #[test]
    fn an_override_replaces_the_configured_percent() {
        let half = Sampler::new(50.0, None, "s");
        let empty = Fields::default();
        assert!((0..1000).all(|_| !half.sample_at(Some(0.0), &empty, None)));
        assert!((0..1000).all(|_| half.sample_at(Some(100.0), &empty, None)));
        // 4000 draws at 10%: sd = sqrt(4000*0.09) ≈ 19; 5 sd band around 400.
        let ins = (0..4000)
            .filter(|_| half.sample_at(Some(10.0), &empty, None))
            .count();
        assert!((305..=495).contains(&ins), "{ins} of 4000 in at 10%");
    }

    #[test]
    fn cookie_and_query_keys_are_found() {
        let cookie = StickyKey::Cookie("session".into());
        let map = Fields::from_pairs([("Cookie", "a=1; session=abc; b=2")]);
        assert_eq!(key_value(&cookie, &map, None), Some(&b"abc"[..]));
        let query = StickyKey::Query("user".into());
        assert_eq!(
            key_value(&query, &Fields::default(), Some("x=1&user=42&y")),
            Some(&b"42"[..])
        );
        assert_eq!(
            key_value(&query, &Fields::default(), Some("username=1")),
            None
        );
    }

    #[test]
    fn different_shadows_pick_different_keys() {
        let key = Some(StickyKey::Header(HeaderName::from_static("x-user")));
        let a = Sampler::new(50.0, key.clone(), "shadow-a");
        let b = Sampler::new(50.0, key, "shadow-b");
        let differ = (0..200)
            .filter(|user| {
                let value = user.to_string();
                let map = Fields::from_pairs([("x-user", value.as_str())]);
                a.sample(&map, None) != b.sample(&map, None)
            })
            .count();
        assert!(differ > 50, "{differ} of 200 keys differ between shadows");
    }
}
