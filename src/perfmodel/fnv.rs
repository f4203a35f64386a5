//! FNV-1a: the models' maps and the footprint keys are hashed on every
//! placement decision, where SipHash's cost shows, and the keys must be
//! the same in every run (the task history stores them), which FNV's
//! fixed basis gives.

use std::hash::{BuildHasherDefault, Hasher};

const BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a over the bytes written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(BASIS)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(PRIME);
        }
    }
}

/// Maps keyed through [`Fnv`].
pub(crate) type FnvMap<K, V> = std::collections::HashMap<K, V, BuildHasherDefault<Fnv>>;

/// A key that is already an FNV hash (a footprint's) hashed as itself:
/// hashing it again would cost a decision eight multiplications per unit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut fnv = Fnv(self.0 ^ BASIS);
        fnv.write(bytes);
        self.0 = fnv.0;
    }

    fn write_u64(&mut self, key: u64) {
        self.0 = key;
    }
}

/// Maps keyed by footprint keys.
pub(crate) type KeyMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<Prehashed>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_published_fnv1a_values() {
        let hash = |s: &str| {
            let mut h = Fnv::default();
            h.write(s.as_bytes());
            h.finish()
        };
        assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
    }
}
