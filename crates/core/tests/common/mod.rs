//! Helpers shared by the integration tests: allocator builders, a seeded PRNG and fill
//! patterns. Each test file includes this with `mod common;` and uses what it needs.
#![allow(dead_code)]

use std::ptr::NonNull;

use tensor_arena_core::{Allocator, AllocatorConfig, ThreadCache};

pub(crate) const KIB: usize = 1 << 10;
pub(crate) const MIB: usize = 1 << 20;

/// An allocator with the default configuration except for the arena size.
pub(crate) fn allocator(arena_size: usize) -> Allocator {
    allocator_with(|c| c.max_bytes = Some(arena_size))
}

/// An allocator with the default configuration adjusted by `adjust`.
pub(crate) fn allocator_with(adjust: impl FnOnce(&mut AllocatorConfig)) -> Allocator {
    let mut config = AllocatorConfig::default();
    adjust(&mut config);
    Allocator::new(config).unwrap_or_else(|e| panic!("Allocator::new({config:?}): {e}"))
}

/// splitmix64: a tiny, seedable, good-enough PRNG for tests.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) const fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub(crate) fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub(crate) fn chance(&mut self, per_mille: u64) -> bool {
        self.next_u64() % 1000 < per_mille
    }
}

/// A request size from 1 B to 20 MiB, weighted towards small sizes.
pub(crate) fn weighted_size(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=599 => rng.range(1, 512),
        600..=849 => rng.range(513, 16 * KIB),
        850..=949 => rng.range(16 * KIB + 1, 256 * KIB),
        950..=989 => rng.range(256 * KIB + 1, 4 * MIB),
        990..=997 => rng.range(4 * MIB + 1, 16 * MIB),
        _ => rng.range(16 * MIB + 1, 20 * MIB),
    }
}

/// Bytes written by [`fill`] at each end (and in the middle) of a block larger than
/// [`FULL_FILL_LIMIT`].
const WINDOW: usize = 4 * KIB;
/// Blocks up to this size are filled entirely.
const FULL_FILL_LIMIT: usize = 64 * KIB;

/// The byte ranges of a `size`-byte block that [`fill`] writes and [`check`] reads.
fn windows(size: usize) -> [(usize, usize); 3] {
    if size <= FULL_FILL_LIMIT {
        [(0, size), (0, 0), (0, 0)]
    } else {
        let mid = size / 2 - WINDOW / 2;
        [(0, WINDOW), (mid, mid + WINDOW), (size - WINDOW, size)]
    }
}

/// Writes `tag` over the block (entirely up to 64 KiB, else three 4 KiB windows).
///
/// # Safety
/// `ptr` must be valid for writes of `size` bytes.
pub(crate) unsafe fn fill(ptr: NonNull<u8>, size: usize, tag: u8) {
    for (from, to) in windows(size) {
        // SAFETY: `from..to` lies inside the block (caller contract).
        unsafe { ptr.as_ptr().add(from).write_bytes(tag, to - from) };
    }
}

/// Whether the ranges written by [`fill`] still hold `tag`.
///
/// # Safety
/// `ptr` must be valid for reads of `size` bytes.
pub(crate) unsafe fn check(ptr: NonNull<u8>, size: usize, tag: u8) -> bool {
    let reference = [tag; WINDOW];
    windows(size).into_iter().all(|(from, to)| {
        // SAFETY: `from..to` lies inside the block (caller contract).
        let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr().add(from), to - from) };
        bytes.chunks(WINDOW).all(|chunk| chunk == &reference[..chunk.len()])
    })
}

/// A fill tag derived from an allocation number (never 0, so untouched memory differs).
pub(crate) const fn tag_of(n: u64) -> u8 {
    ((n.wrapping_mul(0x9E37_79B9) >> 24) as u8) | 1
}

/// Allocates `size` bytes or panics with the error.
pub(crate) fn alloc(a: &Allocator, cache: &mut ThreadCache, size: usize) -> NonNull<u8> {
    a.allocate_with_cache(cache, size).unwrap_or_else(|e| panic!("allocate {size}: {e}"))
}

/// Frees `ptr` or panics with the error.
///
/// # Safety
/// As `Allocator::deallocate_with_cache`.
pub(crate) unsafe fn free(a: &Allocator, cache: &mut ThreadCache, ptr: NonNull<u8>) {
    // SAFETY: forwarded contract.
    unsafe { a.deallocate_with_cache(cache, ptr) }.unwrap_or_else(|e| panic!("free {ptr:p}: {e}"));
}

/// A pointer `offset` bytes from `ptr` (which may be out of any allocation: it is only
/// passed to frees, which check it).
pub(crate) fn offset(ptr: NonNull<u8>, offset: isize) -> NonNull<u8> {
    NonNull::new(ptr.as_ptr().wrapping_offset(offset)).unwrap_or(ptr)
}

/// A pointer from a raw address (non-zero).
pub(crate) fn at(addr: usize) -> NonNull<u8> {
    NonNull::new(addr as *mut u8).unwrap_or_else(|| panic!("null address"))
}
