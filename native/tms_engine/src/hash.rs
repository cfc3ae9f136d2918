//! A fast, non-cryptographic hasher for the engine's in-memory maps.
//!
//! Keys hashed with it are ids and label sets chosen by the application, and
//! every lookup through such a hash is verified against the full key, so a
//! collision costs a comparison, never a wrong answer. Speed matters more than
//! DoS resistance here: the write path hashes every point's buffer key.

use std::hash::{BuildHasherDefault, Hasher};

/// Odd multiplier with well-mixed bits (from the golden ratio).
const MULTIPLIER: u64 = 0x9E37_79B9_7F4A_7C15;

/// A word-at-a-time multiply-rotate hasher.
#[derive(Default, Clone, Copy)]
pub struct FastHasher {
    state: u64,
}

impl FastHasher {
    #[inline]
    fn mix(&mut self, word: u64) {
        self.state = (self.state.rotate_left(26) ^ word).wrapping_mul(MULTIPLIER);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            let mut le = [0u8; 8];
            le.copy_from_slice(word);
            self.mix(u64::from_le_bytes(le));
        }
        let rest = words.remainder();
        let mut tail = [0u8; 8];
        tail[..rest.len()].copy_from_slice(rest);
        // The length keeps "ab" + "c" apart from "a" + "bc".
        self.mix(u64::from_le_bytes(tail) ^ ((rest.len() as u64) << 56));
    }

    #[inline]
    fn write_u64(&mut self, word: u64) {
        self.mix(word);
    }

    #[inline]
    fn write_i64(&mut self, word: i64) {
        self.mix(word as u64);
    }

    #[inline]
    fn write_usize(&mut self, word: usize) {
        self.mix(word as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A final avalanche so that both the high bits (DashMap's shard
        // choice) and the low bits (hashbrown's bucket) depend on every input.
        let mut h = self.state;
        h ^= h >> 33;
        h = h.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
        h ^ (h >> 33)
    }
}

/// `BuildHasher` for maps keyed with [`FastHasher`].
pub type FastBuildHasher = BuildHasherDefault<FastHasher>;

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn hash_of(value: impl Hash) -> u64 {
        FastBuildHasher::default().hash_one(value)
    }

    #[test]
    fn different_splits_of_the_same_bytes_hash_apart() {
        assert_ne!(hash_of(("ab", "c")), hash_of(("a", "bc")));
        assert_ne!(hash_of((1u64, 2i64)), hash_of((2u64, 1i64)));
    }

    #[test]
    fn equal_keys_hash_equal() {
        assert_eq!(hash_of(("host", "web-1")), hash_of(("host", "web-1")));
    }
}
