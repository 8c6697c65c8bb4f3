//! The test suites' one pseudo-random generator: SplitMix64, seeded, deterministic, no
//! dependency. Tests pick sizes and fill buffers from it, and [`FaultyIo::chaos`] makes its
//! choices with it. Suites depend on the exact sequence each seed gives, so the output of
//! the existing methods for a seed must never change.
//!
//! Two ranges, named apart: [`Rng::range`] is inclusive (`lo..=hi`), [`Rng::below`] is
//! exclusive (`lo..hi`).
//!
//! [`FaultyIo::chaos`]: super::transport::FaultyIo::chaos

/// SplitMix64: small, deterministic, good enough to pick sizes and fill buffers.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6c61_7a79_746c_7321)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi` (the modulo bias is irrelevant here).
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo + 1) as u64) as usize
    }

    /// Uniform in `lo..hi` (`hi` excluded; `lo < hi`).
    pub fn below(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }

    /// True once in `n` calls, on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.next() % n == 0
    }

    /// Random bytes, a random count in `lo..hi` of them.
    pub fn some_bytes(&mut self, lo: usize, hi: usize) -> Vec<u8> {
        let len = self.below(lo, hi);
        self.bytes(len)
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}
