//! A small seeded generator (SplitMix64): the workload must not depend on anything but
//! its seeds.

/// The SplitMix64 finalizer.
#[must_use]
pub const fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A stream from `seed`.
    #[must_use]
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// Next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        splitmix(self.0)
    }

    /// Uniform-ish in `0..n` (`n` > 0; modulo bias is irrelevant here).
    pub const fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// An index into a slice of length `len` (> 0).
    pub fn index(&mut self, len: usize) -> usize {
        usize::try_from(self.below(len as u64)).unwrap_or(0)
    }

    /// A random element of `items` (non-empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.get(self.index(items.len())).copied().unwrap_or("")
    }
}

/// A vocabulary for generated text, keys and patterns.
pub const WORDS: [&str; 64] = [
    "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima",
    "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango", "uniform", "victor", "whiskey", "xray",
    "yankee", "zulu", "tensor", "arena", "buffer", "vector", "matrix", "kernel", "thread", "cache", "region", "block",
    "slab", "chunk", "page", "frame", "stream", "batch", "embed", "layer", "weight", "gradient", "sample", "token",
    "shard", "queue", "latency", "budget", "metric", "signal", "vertex", "edge", "graph", "index", "query", "record",
    "field", "value", "schema", "table",
];
