//! What is known of a body too large to keep: its length and a 64-bit hash of all of its
//! bytes, computed as they stream past.
//!
//! Why: an answer over `mirror.max_response_body_bytes`, or one that did not fit
//! `mirror.max_buffered_bytes`, cannot be held for comparison, but two bodies of different
//! lengths, or of equal length and different hashes, certainly differ. The hash is xxh3
//! (non-cryptographic): no one chooses both answers to collide, and it costs a fraction of
//! copying the bytes (see docs/PERFORMANCE.md, "Instructions per request"). Both sides hash
//! the body as framed on the wire minus the transfer coding, so `Content-Encoding` is still
//! applied (see `compare` for how that is used).
// The data path: no indexing that can panic (see docs/ARCHITECTURE.md).
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

/// A whole body's length and xxh3-64 hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BodyDigest {
    /// Bytes in the body.
    pub len: u64,
    /// xxh3-64 of those bytes.
    pub hash: u64,
}

impl BodyDigest {
    /// The digest of a body held whole (one pass, off the live path).
    pub fn of(bytes: &[u8]) -> BodyDigest {
        BodyDigest {
            len: u64::try_from(bytes.len()).unwrap_or(u64::MAX),
            hash: xxh3_64(bytes),
        }
    }
}

impl std::fmt::Display for BodyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} bytes, xxh3 {:016x}", self.len, self.hash)
    }
}

/// A running digest: fed each piece of a body in order, it ends equal to
/// [`BodyDigest::of`] the whole. Boxed state, allocated only once a body turns out too large
/// to keep.
pub struct Digester {
    len: u64,
    state: Box<Xxh3Default>,
}

impl Digester {
    /// An empty digest.
    pub fn new() -> Digester {
        Digester {
            len: 0,
            state: Box::new(Xxh3Default::new()),
        }
    }

    /// Adds the next piece of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.len = self
            .len
            .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        self.state.update(data);
    }

    /// Bytes added so far.
    pub fn bytes_seen(&self) -> u64 {
        self.len
    }

    /// The digest of everything added.
    pub fn finish(&self) -> BodyDigest {
        BodyDigest {
            len: self.len,
            hash: self.state.digest(),
        }
    }
}

impl Default for Digester {
    fn default() -> Digester {
        Digester::new()
    }
}

impl std::fmt::Debug for Digester {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Digester({} bytes so far)", self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// However a body is cut into pieces, the running digest is the one-pass digest.
        #[test]
        fn the_running_digest_is_the_whole_bodys(
            body in proptest::collection::vec(any::<u8>(), 0..4096),
            cuts in proptest::collection::vec(0usize..4096, 0..8),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
            cuts.sort_unstable();
            let mut digester = Digester::new();
            let mut start = 0;
            for cut in cuts.into_iter().chain([body.len()]) {
                digester.update(body.get(start..cut).unwrap_or_default());
                start = cut;
            }
            prop_assert_eq!(digester.finish(), BodyDigest::of(&body));
        }
    }

    #[test]
    fn one_changed_byte_changes_the_hash_not_the_length() {
        let a = vec![b'x'; 3 * 1024 * 1024];
        let mut b = a.clone();
        if let Some(byte) = b.get_mut(1_500_000) {
            *byte = b'y';
        }
        let (da, db) = (BodyDigest::of(&a), BodyDigest::of(&b));
        assert_eq!(da.len, db.len);
        assert_ne!(da.hash, db.hash);
    }
}
