//! Allocator configuration, its validation, and the per-class geometry derived from it.

use crate::error::InitError;
use crate::header::HEADER_SIZE;
use crate::size_class::{CLASS_SIZES, NUM_CLASSES};

/// Smallest supported user-pointer alignment (the header size).
pub const MIN_ALIGNMENT: usize = 64;
/// Largest supported user-pointer alignment.
pub const MAX_ALIGNMENT: usize = 4096;
/// Largest supported arena (64 TiB).
pub const MAX_ARENA_SIZE: usize = 1 << 46;

/// How an [`Allocator`](crate::Allocator) is built. All sizes are in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// Usable arena bytes, reserved up front and committed on first touch; rounded up to
    /// whole pages. Default 1 GiB.
    pub arena_size: usize,
    /// Alignment of every user pointer: a power of two from 64 to 4096. Default 64.
    pub alignment: usize,
    /// Bytes a thread cache takes from the central pool per refill (at least one block).
    /// Default 32 KiB.
    pub refill_target_bytes: usize,
    /// Bytes per class a thread cache keeps before it drains the excess to the central
    /// pool (at least one block, and at least one refill). Default 64 KiB.
    pub local_cache_target_bytes: usize,
    /// Minimum bytes of one slab (rounded up to whole pages and to one block). Default 64 KiB.
    pub slab_target_bytes: usize,
    /// Free span bytes kept committed for reuse (a safety cap: idle memory is returned
    /// after `idle_release_ms` anyway). Above it, the least recently freed spans are
    /// returned to the OS down to three quarters of it. Default 512 MiB.
    pub retain_bytes: usize,
    /// Milliseconds after which a free span, or a size class's spare empty slab, counts as
    /// idle and is returned (checked by maintenance, which any thread's slow-path traffic
    /// drives). 0 releases at the next maintenance pass. Default 1000.
    pub idle_release_ms: u64,
}

impl Default for AllocatorConfig {
    fn default() -> Self {
        Self {
            arena_size: 1 << 30,
            alignment: 64,
            refill_target_bytes: 32 << 10,
            local_cache_target_bytes: 64 << 10,
            slab_target_bytes: 64 << 10,
            retain_bytes: 512 << 20,
            idle_release_ms: 1000,
        }
    }
}

impl AllocatorConfig {
    /// Checks every field; the error names the first field that is out of range.
    ///
    /// # Errors
    /// [`InitError::InvalidConfig`] naming the field and the rule it breaks.
    pub const fn validate(&self) -> Result<(), InitError> {
        const fn invalid(field: &'static str, reason: &'static str) -> Result<(), InitError> {
            Err(InitError::InvalidConfig { field, reason })
        }
        if self.arena_size == 0 {
            return invalid("arena_size", "must be greater than zero");
        }
        if self.arena_size > MAX_ARENA_SIZE {
            return invalid("arena_size", "must be at most 64 TiB");
        }
        if !self.alignment.is_power_of_two() {
            return invalid("alignment", "must be a power of two");
        }
        if self.alignment < MIN_ALIGNMENT || self.alignment > MAX_ALIGNMENT {
            return invalid("alignment", "must be between 64 and 4096");
        }
        if self.refill_target_bytes == 0 || self.refill_target_bytes > self.arena_size {
            return invalid("refill_target_bytes", "must be between 1 and arena_size");
        }
        if self.local_cache_target_bytes == 0 || self.local_cache_target_bytes > self.arena_size {
            return invalid("local_cache_target_bytes", "must be between 1 and arena_size");
        }
        if self.slab_target_bytes == 0 || self.slab_target_bytes > self.arena_size {
            return invalid("slab_target_bytes", "must be between 1 and arena_size");
        }
        Ok(())
    }
}

/// Layout of one class's blocks and slabs under a given configuration.
///
/// Invariants (checked by the tests of this module):
/// - `stride % alignment == 0` and `stride >= payload + HEADER_SIZE`
/// - user pointer of block `i` = `slab_start + lead + HEADER_SIZE + i * stride`, so every
///   user pointer is aligned to `alignment` (slabs start on page boundaries);
///   `lead = alignment - HEADER_SIZE`
/// - `slab_bytes % granule == 0` and `lead + capacity * stride <= slab_bytes`, `capacity >= 1`
/// - `1 <= refill <= limit`, `1 <= drain <= limit`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassGeometry {
    pub(crate) payload: usize,
    pub(crate) stride: usize,
    pub(crate) lead: usize,
    pub(crate) slab_bytes: usize,
    pub(crate) capacity: u32,
    pub(crate) refill: u32,
    pub(crate) limit: u32,
    pub(crate) drain: u32,
}

pub(crate) const fn round_up(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

fn count(bytes: usize, stride: usize) -> u32 {
    u32::try_from((bytes / stride).max(1)).unwrap_or(u32::MAX)
}

/// Slabs are not grown past this to cut page-rounding waste.
const MAX_GROWN_SLAB: usize = 1 << 20;

/// Blocks per slab: enough to reach `target`, then more (within `MAX_GROWN_SLAB`) until
/// rounding the slab up to whole pages wastes at most 1/64 of its blocks' bytes; never so
/// many that the slab is larger than the arena (`arena` bytes), never fewer than one.
fn slab_blocks(target: usize, lead: usize, stride: usize, granule: usize, arena: usize) -> usize {
    let bytes = |k: usize| round_up(lead + k * stride, granule);
    let waste = |k: usize| bytes(k) - (lead + k * stride);
    // The most blocks whose slab still fits in the arena (at least one).
    let fitting = (arena.saturating_sub(lead) / stride).max(1);
    let fitting = (1..=fitting).rev().find(|&k| bytes(k) <= arena).unwrap_or(1);
    let first = target.saturating_sub(lead).div_ceil(stride).clamp(1, fitting);
    let last = first.max(MAX_GROWN_SLAB / stride).min(fitting);
    let mut best = first;
    for k in first..=last {
        if waste(k) * 64 <= k * stride {
            return k;
        }
        if waste(k) * best < waste(best) * k {
            best = k;
        }
    }
    best
}

impl ClassGeometry {
    pub(crate) fn table(config: &AllocatorConfig, granule: usize) -> [Self; NUM_CLASSES] {
        CLASS_SIZES.map(|payload| {
            let stride = round_up(payload + HEADER_SIZE, config.alignment);
            let lead = config.alignment - HEADER_SIZE;
            let arena = round_up(config.arena_size, granule);
            let blocks = slab_blocks(config.slab_target_bytes, lead, stride, granule, arena);
            let slab_bytes = round_up(lead + blocks * stride, granule);
            let capacity = count(slab_bytes - lead, stride);
            let refill = count(config.refill_target_bytes, stride);
            let limit = count(config.local_cache_target_bytes, stride).max(refill);
            let drain = (refill / 2).max(1);
            Self { payload, stride, lead, slab_bytes, capacity, refill, limit, drain }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert_eq!(AllocatorConfig::default().validate(), Ok(()));
    }

    #[test]
    fn invalid_fields_are_named() {
        let bad = |f: &dyn Fn(&mut AllocatorConfig)| {
            let mut c = AllocatorConfig::default();
            f(&mut c);
            match c.validate() {
                Err(InitError::InvalidConfig { field, .. }) => field,
                other => panic!("expected InvalidConfig, got {other:?}"),
            }
        };
        assert_eq!(bad(&|c| c.arena_size = 0), "arena_size");
        assert_eq!(bad(&|c| c.arena_size = MAX_ARENA_SIZE + 1), "arena_size");
        for a in [0, 3, 32, 65, 8192, 1 << 31] {
            assert_eq!(bad(&move |c| c.alignment = a), "alignment", "alignment {a}");
        }
        assert_eq!(bad(&|c| c.refill_target_bytes = 0), "refill_target_bytes");
        assert_eq!(bad(&|c| c.local_cache_target_bytes = 0), "local_cache_target_bytes");
        assert_eq!(bad(&|c| c.slab_target_bytes = 0), "slab_target_bytes");
    }

    #[test]
    fn geometry_invariants_hold_for_every_alignment() {
        for alignment in [64, 128, 256, 512, 1024, 2048, 4096] {
            let config = AllocatorConfig { alignment, ..AllocatorConfig::default() };
            for g in ClassGeometry::table(&config, 4096) {
                assert_eq!(g.stride % alignment, 0);
                assert!(g.stride >= g.payload + HEADER_SIZE);
                assert_eq!((g.lead + HEADER_SIZE) % alignment, 0);
                assert_eq!(g.slab_bytes % 4096, 0);
                assert!(g.capacity >= 1);
                assert!(g.lead + g.capacity as usize * g.stride <= g.slab_bytes);
                assert!(g.refill >= 1 && g.refill <= g.limit);
                assert!(g.drain >= 1 && g.drain <= g.limit);
            }
        }
    }

    #[test]
    fn default_counts_match_the_documented_table() {
        let t = ClassGeometry::table(&AllocatorConfig::default(), 4096);
        // 64-byte class: 128-byte blocks, 512 per 64 KiB slab, refill 256, limit 512.
        assert_eq!((t[0].stride, t[0].capacity, t[0].refill, t[0].limit, t[0].drain), (128, 512, 256, 512, 128));
        // 16 MiB class: one block per slab, a cache keeps one.
        let last = t[NUM_CLASSES - 1];
        assert_eq!((last.capacity, last.refill, last.limit, last.drain), (1, 1, 1, 1));
        assert_eq!(last.slab_bytes, (16 << 20) + 4096);
        // Slabs grown against page-rounding waste (as listed in the README table).
        assert_eq!((t[19].capacity, t[19].slab_bytes), (32, 132 << 10));
        assert_eq!((t[35].capacity, t[35].slab_bytes), (4, 260 << 10));
    }

    #[test]
    fn slabs_never_outgrow_a_small_arena() {
        for (arena, alignment) in [(64 << 10, 64), (64 << 10, 128), (256 << 10, 64), (4096, 64)] {
            let config = AllocatorConfig { arena_size: arena, alignment, ..AllocatorConfig::default() };
            for g in ClassGeometry::table(&config, 4096) {
                assert!(g.capacity >= 1);
                if g.lead + g.stride <= arena {
                    assert!(g.slab_bytes <= round_up(arena, 4096), "{arena} {alignment} {g:?}");
                }
            }
        }
    }

    #[test]
    fn slabs_lose_little_to_page_rounding() {
        for g in ClassGeometry::table(&AllocatorConfig::default(), 4096) {
            let used = g.lead + g.capacity as usize * g.stride;
            let waste = g.slab_bytes - used;
            // At most 1/64 of the blocks' bytes, unless one block already exceeds 1 MiB
            // (then less than one page per block).
            assert!(waste * 64 <= used || (g.capacity == 1 && waste < 4096), "{g:?}");
        }
    }
}
