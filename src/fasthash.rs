//! A fast keyed hash map for the per-event lookups of the hot paths (the sockets collector's
//! per-entry lookups of every poll, the profile learner's fast maps), and the keyed text
//! fingerprints of the profile learner ([`TextKeys`]).

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

/// Keys of the text fingerprints of the profile learner's fast paths: random per process, so a
/// workload, which chooses the paths and names it runs and writes, cannot aim collisions.
///
/// A fingerprint of a text is one or a few folded multiplications (the 128-bit product of two
/// words, its halves xored: the mix of wyhash and foldhash) over 16 bytes at a time, the text's
/// length rotating the key; unlike [`KeyedFxHasher`], which mixes one word at a time in one
/// serial chain, the texts of an event, and the two halves of a text of up to 32 bytes, are
/// fingerprinted independently (the processor overlaps them) and combined with one more
/// multiplication. Every byte of the text counts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextKeys {
    keys: [u64; 6],
}

impl Default for TextKeys {
    fn default() -> Self {
        use std::hash::BuildHasher;
        static KEYS: std::sync::OnceLock<[u64; 6]> = std::sync::OnceLock::new();
        let keys = *KEYS.get_or_init(|| {
            let random = std::collections::hash_map::RandomState::new();
            [1u64, 2, 3, 4, 5, 6].map(|n| random.hash_one(n))
        });
        TextKeys { keys }
    }
}

/// The 128-bit product of two words, its halves xored.
#[inline(always)]
fn fold(x: u64, y: u64) -> u64 {
    let product = u128::from(x) * u128::from(y);
    (product as u64) ^ ((product >> 64) as u64)
}

/// Two words covering a text of at most 16 bytes (overlapping when shorter: the length, mixed
/// in by the caller, tells them apart).
#[inline(always)]
fn short_words(bytes: &[u8]) -> (u64, u64) {
    let len = bytes.len();
    if let (Some(first), Some(last)) = (bytes.first_chunk::<8>(), bytes.last_chunk::<8>()) {
        (u64::from_le_bytes(*first), u64::from_le_bytes(*last))
    } else if let (Some(first), Some(last)) = (bytes.first_chunk::<4>(), bytes.last_chunk::<4>()) {
        (
            u64::from(u32::from_le_bytes(*first)),
            u64::from(u32::from_le_bytes(*last)),
        )
    } else if let (Some(&first), Some(&middle), Some(&last)) =
        (bytes.first(), bytes.get(len / 2), bytes.last())
    {
        (u64::from(first), u64::from(last) << 8 | u64::from(middle))
    } else {
        (0, 0)
    }
}

/// The two words of the first 16 bytes of a text of more than 16.
#[inline(always)]
fn head16(bytes: &[u8]) -> (u64, u64) {
    match bytes.first_chunk::<16>() {
        Some(chunk) => {
            let word = u128::from_le_bytes(*chunk);
            (word as u64, (word >> 64) as u64)
        }
        None => short_words(bytes),
    }
}

/// The two words of the last 16 bytes of a text of more than 16.
#[inline(always)]
fn tail16(bytes: &[u8]) -> (u64, u64) {
    match bytes.last_chunk::<16>() {
        Some(chunk) => {
            let word = u128::from_le_bytes(*chunk);
            (word as u64, (word >> 64) as u64)
        }
        None => short_words(bytes),
    }
}

impl TextKeys {
    /// The keyed fingerprint of a text under `tag` (what the text is: different tags give
    /// unrelated fingerprints of the same text).
    #[inline]
    pub(crate) fn text(&self, text: &str, tag: u64) -> u64 {
        let bytes = text.as_bytes();
        let [k0, k1, k2, k3, ..] = self.keys;
        let mut acc = (k0 ^ tag).rotate_right(bytes.len() as u32);
        if bytes.len() <= 16 {
            let (a, b) = short_words(bytes);
            return fold(a ^ acc, b ^ k1);
        }
        let (c, d) = tail16(bytes);
        let tail = fold(c ^ (k2 ^ tag).rotate_right(bytes.len() as u32), d ^ k3);
        if bytes.len() <= 32 {
            // Head and tail at once.
            let (a, b) = head16(bytes);
            return fold(a ^ acc, b ^ k1) ^ tail;
        }
        let mut rest = bytes;
        while rest.len() > 16 {
            let (a, b) = head16(rest);
            acc = fold(a ^ acc, b ^ k1);
            rest = rest.get(16..).unwrap_or_default();
        }
        acc ^ tail
    }

    /// One fingerprint of two (ordered: `combine(a, b)` and `combine(b, a)` differ).
    #[inline]
    pub(crate) fn combine(&self, a: u64, b: u64) -> u64 {
        let [.., k4, k5] = self.keys;
        fold(a ^ k4, b ^ k5)
    }
}

#[cfg(test)]
impl TextKeys {
    /// Chosen keys, to make collisions on purpose.
    pub(crate) fn with_keys(keys: [u64; 6]) -> TextKeys {
        TextKeys { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A text of `len` bytes, all different from their neighbours.
    fn text(len: usize) -> String {
        (0..len)
            .map(|n| char::from(b'a' + (n % 26) as u8))
            .collect()
    }

    #[test]
    fn every_byte_and_the_length_of_a_text_count() {
        let keys = TextKeys::default();
        let mut seen = std::collections::HashSet::new();
        for len in 0..=80 {
            let base = text(len);
            // Every prefix (the length alone differs), and every one-byte change of it.
            assert!(seen.insert(keys.text(&base, 1)), "length {len}");
            for at in 0..len {
                let mut changed = base.clone().into_bytes();
                changed[at] = b'Z';
                let changed = String::from_utf8(changed).expect("ascii");
                assert!(seen.insert(keys.text(&changed, 1)), "byte {at} of {len}");
            }
            // A trailing NUL is not the end of the text.
            assert!(seen.insert(keys.text(&format!("{base}\0"), 1)), "{len}+NUL");
        }
    }

    #[test]
    fn tags_and_order_give_different_fingerprints() {
        let keys = TextKeys::default();
        let (a, b) = (keys.text("/usr/bin/env", 1), keys.text("/usr/bin/env", 2));
        assert_ne!(a, b);
        assert_ne!(keys.combine(a, b), keys.combine(b, a));
        // The keys differ from one process to the next, not within one.
        assert_eq!(TextKeys::default().text("/usr/bin/env", 1), a);
    }
}
