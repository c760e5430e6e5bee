//! A fast keyed hash map for the per-event lookups of the hot paths (the sockets collector's
//! per-entry lookups of every poll, the profile learner's fingerprints).

use std::collections::HashMap;

/// A multiply-rotate hasher (the Fx hash of rustc) keyed with a per-process random seed: a
/// few nanoseconds per key instead of SipHash's tens, for the per-entry lookups of every poll.
/// The seed keeps the workload, which chooses ports and peers, from predicting collisions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedFxHasher {
    hash: u64,
}

const FX_MULTIPLIER: u64 = 0x517c_c1b7_2722_0a95;

impl KeyedFxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_MULTIPLIER);
    }
}

impl std::hash::Hasher for KeyedFxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // A final mix so that the low bits (the bucket index) depend on every input bit.
        let h = self.hash;
        (h ^ (h >> 29)).wrapping_mul(FX_MULTIPLIER) ^ (h >> 32)
    }
}

/// Builds [`KeyedFxHasher`]s with this process's seed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedFxBuild {
    seed: u64,
}

impl Default for KeyedFxBuild {
    fn default() -> Self {
        use std::hash::BuildHasher;
        static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
        let seed = *SEED
            .get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64));
        KeyedFxBuild { seed }
    }
}

impl std::hash::BuildHasher for KeyedFxBuild {
    type Hasher = KeyedFxHasher;

    #[inline]
    fn build_hasher(&self) -> KeyedFxHasher {
        KeyedFxHasher { hash: self.seed }
    }
}

pub(crate) type FastMap<K, V> = HashMap<K, V, KeyedFxBuild>;
