//! Allocator configuration, its validation, and the per-class geometry derived from it.

use crate::error::InitError;
use crate::region::CHUNK_SIZE;
use crate::size_class::{CLASS_SIZES, NUM_CLASSES};

/// Smallest supported user-pointer alignment (the metadata granule).
pub const MIN_ALIGNMENT: usize = 64;
/// Largest supported user-pointer alignment.
pub const MAX_ALIGNMENT: usize = 4096;
/// Largest supported cap (64 TiB).
pub const MAX_ARENA_SIZE: usize = 1 << 46;
/// Smallest cap (one 4 KiB page; on a machine with larger pages the cap is rounded up to
/// one of them). Smaller caps are refused, never rounded up.
pub const MIN_CAP: usize = 4096;

/// How an [`Allocator`](crate::Allocator) is built. All sizes are in bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocatorConfig {
    /// Cap on the arena: at most this many bytes are ever carved for blocks (rounded up to
    /// whole pages), and allocations past it fail with `OutOfMemory`. `None` (the default)
    /// lets the arena grow as long as the OS commits memory.
    pub max_bytes: Option<usize>,
    /// Address space of the first region when there is no cap (rounded up to whole chunks);
    /// the arena grows by regions at least twice as large. 0 (the default) picks what the
    /// machine can commit (memory plus swap) within 1 GiB ..= 64 GiB; on Windows, 1 GiB.
    /// Reserved, not committed: it costs no memory until used. (On Windows every region,
    /// a capped arena's too, counts about half its size against the commit limit from the
    /// start: its side tables, committed whole, using no memory until touched.)
    pub region_bytes: usize,
    /// Alignment of every user pointer: a power of two from 64 to 4096. Default 64.
    pub alignment: usize,
    /// Bytes a thread cache takes from the central pool per refill (at least one block,
    /// and four blocks as far as 8 × this and one slab allow: with the default, classes of
    /// up to 64 KiB refill four blocks, 96 KiB and 128 KiB two, so that they do not take
    /// the class lock on every allocation and free). Default 32 KiB.
    pub refill_target_bytes: usize,
    /// Bytes per class a thread cache keeps before it drains the excess to the central
    /// pool (at least one block, and at least one refill). Default 64 KiB.
    pub local_cache_target_bytes: usize,
    /// Minimum bytes of one slab (rounded up to whole pages, and to four blocks where that
    /// stays within 1 MiB). Default 64 KiB.
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
            max_bytes: None,
            region_bytes: 0,
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
    /// The most bytes the arena can ever carve: the cap, or (uncapped) the largest cap.
    const fn ceiling(&self) -> usize {
        match self.max_bytes {
            Some(cap) => cap,
            None => MAX_ARENA_SIZE,
        }
    }

    /// Checks every field; the error names the first field that is out of range.
    ///
    /// # Errors
    /// [`InitError::InvalidConfig`] naming the field and the rule it breaks.
    pub const fn validate(&self) -> Result<(), InitError> {
        const fn invalid(field: &'static str, reason: &'static str, value: usize) -> Result<(), InitError> {
            Err(InitError::InvalidConfig { field, reason, value })
        }
        if let Some(cap) = self.max_bytes {
            if cap < MIN_CAP {
                return invalid(
                    "max_bytes",
                    "must be at least 4096 bytes (one page): a smaller cap is refused, not rounded up",
                    cap,
                );
            }
            if cap > MAX_ARENA_SIZE {
                return invalid(
                    "max_bytes",
                    "must be at most 70368744177664 bytes (64 TiB), the largest arena this allocator reserves",
                    cap,
                );
            }
        }
        if self.region_bytes > MAX_ARENA_SIZE {
            return invalid("region_bytes", "must be at most 70368744177664 bytes (64 TiB)", self.region_bytes);
        }
        if !self.alignment.is_power_of_two() || self.alignment < MIN_ALIGNMENT || self.alignment > MAX_ALIGNMENT {
            return invalid("alignment", "must be a power of two from 64 to 4096", self.alignment);
        }
        // Targets above the cap are harmless: counts are clamped to what fits.
        if self.refill_target_bytes == 0 || self.refill_target_bytes > MAX_ARENA_SIZE {
            return invalid(
                "refill_target_bytes",
                "must be between 1 and 70368744177664 bytes (64 TiB)",
                self.refill_target_bytes,
            );
        }
        if self.local_cache_target_bytes == 0 || self.local_cache_target_bytes > MAX_ARENA_SIZE {
            return invalid(
                "local_cache_target_bytes",
                "must be between 1 and 70368744177664 bytes (64 TiB)",
                self.local_cache_target_bytes,
            );
        }
        if self.slab_target_bytes == 0 || self.slab_target_bytes > MAX_ARENA_SIZE {
            return invalid(
                "slab_target_bytes",
                "must be between 1 and 70368744177664 bytes (64 TiB)",
                self.slab_target_bytes,
            );
        }
        Ok(())
    }
}

/// Layout of one class's blocks and slabs under a given configuration.
///
/// Invariants (checked by the tests of this module):
/// - `stride % alignment == 0` and `stride >= payload`: a block is its payload rounded up
///   to the alignment, nothing more (metadata lives out of band)
/// - block `i` of a slab starts at `slab_start + i * stride`; slabs start on page
///   boundaries, so every block is aligned to `alignment`
/// - `slab_bytes % granule == 0` and `capacity * stride <= slab_bytes`, `capacity >= 1`
/// - `in_chunk ⇔ slab_bytes <= MAX_IN_CHUNK_SLAB`: such slabs never cross a chunk boundary
/// - `shift = table::shift_for(stride)`: `2^shift <= stride` (capped to 4 KiB), so the
///   class's blocks start in distinct granules of its block table
/// - `1 <= refill <= limit`, `1 <= drain <= limit`
/// - `refill = max(refill_target / stride, min(BATCH_FLOOR_BLOCKS,
///   BATCH_FLOOR_FACTOR * refill_target / stride, capacity), 1)`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClassGeometry {
    pub(crate) payload: usize,
    pub(crate) stride: usize,
    pub(crate) slab_bytes: usize,
    pub(crate) capacity: u32,
    pub(crate) refill: u32,
    pub(crate) limit: u32,
    pub(crate) drain: u32,
    pub(crate) in_chunk: bool,
    /// Granule shift of the class's block table.
    pub(crate) shift: u32,
}

impl ClassGeometry {
    /// Bytes of block table a block of this class takes on average in a full slab: the
    /// 16-byte entries of the granules its bytes span (16 bytes per `2^shift` bytes).
    pub(crate) const fn metadata_per_block(&self) -> usize {
        (self.stride * size_of::<crate::meta::BlockMeta>()).div_ceil(1 << self.shift)
    }
}

pub(crate) const fn round_up(value: usize, to: usize) -> usize {
    value.div_ceil(to) * to
}

fn count(bytes: usize, stride: usize) -> u32 {
    u32::try_from((bytes / stride).max(1)).unwrap_or(u32::MAX)
}

/// Slabs are not grown past this to cut page-rounding waste or to reach `MIN_SLAB_BLOCKS`.
const MAX_GROWN_SLAB: usize = 1 << 20;
/// Blocks a slab holds at least when `MAX_GROWN_SLAB` allows: a slab of one block would
/// make every cache refill and drain of the class a trip to the span heap.
const MIN_SLAB_BLOCKS: usize = 4;
/// Blocks a refill takes at least, as far as `BATCH_FLOOR_FACTOR` refill targets and one
/// slab allow: with one-block batches every allocation and every free of a class of
/// blocks near or above the refill target would take the class lock.
const BATCH_FLOOR_BLOCKS: usize = 4;
/// The refill floor stays within this many refill targets of bytes.
const BATCH_FLOOR_FACTOR: usize = 8;
/// Slabs up to this size stay inside one chunk (JavaScript views their blocks through the
/// chunk's window); larger ones (one block each, above 1 MiB) are placed anywhere, so the
/// chunk boundaries cost them no space, and get windows of their own.
const MAX_IN_CHUNK_SLAB: usize = CHUNK_SIZE / 4;

/// Blocks per slab: enough to reach `target` and `MIN_SLAB_BLOCKS` (as far as
/// `MAX_GROWN_SLAB` allows), then more (within `MAX_GROWN_SLAB`) until the slab wastes at
/// most 1/64 of its blocks' bytes (else the least waste per block); never so many that
/// the slab is larger than `ceiling` bytes, never fewer than one. A slab's waste is its
/// page rounding plus, for a slab kept inside a chunk, its share of the chunk's tail that
/// no slab of the class fits in.
fn slab_blocks(target: usize, stride: usize, granule: usize, ceiling: usize) -> usize {
    let bytes = |k: usize| round_up(k * stride, granule);
    let chunk_tail = |b: usize| if b <= MAX_IN_CHUNK_SLAB { CHUNK_SIZE % b / (CHUNK_SIZE / b) } else { 0 };
    let waste = |k: usize| bytes(k) - k * stride + chunk_tail(bytes(k));
    let fitting = (ceiling / stride).max(1);
    let fitting = (1..=fitting).rev().find(|&k| bytes(k) <= ceiling).unwrap_or(1);
    let first = target.div_ceil(stride).max(MIN_SLAB_BLOCKS.min(MAX_GROWN_SLAB / stride)).clamp(1, fitting);
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
        let ceiling = round_up(config.ceiling(), granule);
        CLASS_SIZES.map(|payload| {
            let stride = round_up(payload, config.alignment);
            let blocks = slab_blocks(config.slab_target_bytes, stride, granule, ceiling);
            let slab_bytes = round_up(blocks * stride, granule);
            let capacity = count(slab_bytes, stride);
            let floor_bytes = config.refill_target_bytes.saturating_mul(BATCH_FLOOR_FACTOR);
            let floor = BATCH_FLOOR_BLOCKS.min(floor_bytes / stride).min(capacity as usize);
            let refill = count(config.refill_target_bytes, stride).max(floor as u32);
            let limit = count(config.local_cache_target_bytes, stride).max(refill);
            let drain = (refill / 2).max(1);
            let in_chunk = slab_bytes <= MAX_IN_CHUNK_SLAB;
            let shift = crate::table::shift_for(stride);
            Self { payload, stride, slab_bytes, capacity, refill, limit, drain, in_chunk, shift }
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
    fn messages_give_the_limit_and_the_value_in_numbers() {
        let message = |c: AllocatorConfig| c.validate().err().map(|e| e.to_string()).unwrap_or_default();
        let huge = message(AllocatorConfig { max_bytes: Some(1 << 53), ..AllocatorConfig::default() });
        assert!(huge.contains("70368744177664 bytes (64 TiB)") && huge.contains("got 9007199254740992"), "{huge}");
        let tiny = message(AllocatorConfig { max_bytes: Some(1), ..AllocatorConfig::default() });
        assert!(
            tiny.contains("at least 4096 bytes") && tiny.contains("not rounded up") && tiny.ends_with("got 1"),
            "{tiny}"
        );
        let align = message(AllocatorConfig { alignment: 96, ..AllocatorConfig::default() });
        assert!(align.contains("power of two from 64 to 4096") && align.ends_with("got 96"), "{align}");
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
        assert_eq!(bad(&|c| c.max_bytes = Some(0)), "max_bytes");
        assert_eq!(bad(&|c| c.max_bytes = Some(4095)), "max_bytes");
        assert_eq!(bad(&|c| c.max_bytes = Some(MAX_ARENA_SIZE + 1)), "max_bytes");
        assert_eq!(bad(&|c| c.region_bytes = MAX_ARENA_SIZE + 1), "region_bytes");
        for a in [0, 3, 32, 65, 8192, 1 << 31] {
            assert_eq!(bad(&move |c| c.alignment = a), "alignment", "alignment {a}");
        }
        assert_eq!(bad(&|c| c.refill_target_bytes = 0), "refill_target_bytes");
        assert_eq!(bad(&|c| c.local_cache_target_bytes = 0), "local_cache_target_bytes");
        assert_eq!(bad(&|c| c.slab_target_bytes = 0), "slab_target_bytes");
        assert_eq!(bad(&|c| c.slab_target_bytes = MAX_ARENA_SIZE + 1), "slab_target_bytes");
        // Default targets are fine under a small cap: counts are clamped to what fits.
        let small = AllocatorConfig { max_bytes: Some(8192), ..AllocatorConfig::default() };
        assert_eq!(small.validate(), Ok(()));
    }

    #[test]
    fn geometry_invariants_hold_for_every_alignment() {
        for alignment in [64, 128, 256, 512, 1024, 2048, 4096] {
            let config = AllocatorConfig { alignment, ..AllocatorConfig::default() };
            for g in ClassGeometry::table(&config, 4096) {
                assert_eq!(g.stride % alignment, 0);
                assert!(g.stride >= g.payload && g.stride < g.payload + alignment);
                assert_eq!(g.slab_bytes % 4096, 0);
                assert!(g.capacity >= 1);
                assert!(g.capacity as usize * g.stride <= g.slab_bytes);
                assert!(g.refill >= 1 && g.refill <= g.limit);
                assert!(g.drain >= 1 && g.drain <= g.limit);
                assert_eq!(g.in_chunk, g.slab_bytes <= MAX_IN_CHUNK_SLAB);
            }
        }
    }

    #[test]
    fn default_counts_match_the_documented_table() {
        let t = ClassGeometry::table(&AllocatorConfig::default(), 4096);
        // 64-byte class: 64-byte blocks (no header), 1024 per 64 KiB slab.
        assert_eq!((t[0].stride, t[0].capacity, t[0].refill, t[0].limit, t[0].drain), (64, 1024, 512, 1024, 256));
        // 16 MiB class: one block per slab, a cache keeps one.
        let last = t[NUM_CLASSES - 1];
        assert_eq!((last.capacity, last.refill, last.limit, last.drain), (1, 1, 1, 1));
        assert_eq!(last.slab_bytes, 16 << 20);
        assert!(!last.in_chunk);
        // Every class up to 1 MiB keeps its slabs inside one chunk.
        assert!(t.iter().filter(|g| g.payload <= MAX_IN_CHUNK_SLAB).all(|g| g.in_chunk));
    }

    #[test]
    fn slabs_never_outgrow_a_small_cap() {
        for (cap, alignment) in [(64 << 10, 64), (64 << 10, 128), (256 << 10, 64), (4096, 64)] {
            let config = AllocatorConfig { max_bytes: Some(cap), alignment, ..AllocatorConfig::default() };
            for g in ClassGeometry::table(&config, 4096) {
                assert!(g.capacity >= 1);
                if g.stride <= cap {
                    assert!(g.slab_bytes <= round_up(cap, 4096), "{cap} {alignment} {g:?}");
                }
            }
        }
    }

    #[test]
    fn readme_size_class_table_matches_the_default_geometry() {
        let readme = include_str!("../../../README.md");
        let geo = ClassGeometry::table(&AllocatorConfig::default(), 4096);
        let rows: Vec<Vec<&str>> = readme
            .lines()
            .filter(|l| l.starts_with("| ") && l.contains("| `B"))
            .map(|l| l.split('|').map(str::trim).collect())
            .collect();
        assert_eq!(rows.len(), NUM_CLASSES, "one README row per class");
        for (g, row) in geo.iter().zip(&rows) {
            let num = |cell: &str| cell.replace(',', "").parse::<usize>().unwrap_or(usize::MAX);
            assert_eq!(num(row[5]), g.stride, "block of {row:?}");
            assert_eq!(row[6], format!("{} B", g.metadata_per_block()), "metadata of {row:?}");
            let expected_slab = format!("{} ({} KiB)", g.capacity, g.slab_bytes / 1024);
            assert_eq!(row[7], expected_slab, "slab of {row:?}");
            assert_eq!(row[8], if g.in_chunk { "yes" } else { "no" }, "chunk column of {row:?}");
            assert_eq!((num(row[9]), num(row[10])), (g.refill as usize, g.limit as usize), "counts of {row:?}");
        }
    }

    #[test]
    fn refills_take_four_blocks_within_eight_refill_targets() {
        let t = ClassGeometry::table(&AllocatorConfig::default(), 4096);
        let at = |payload: usize| t.iter().find(|g| g.payload == payload).copied().unwrap_or(t[0]);
        // Blocks near or above the 32 KiB target: four blocks, then as many as 256 KiB holds.
        assert_eq!((at(16 << 10).refill, at(64 << 10).refill, at(64 << 10).limit), (4, 4, 4));
        assert_eq!((at(96 << 10).refill, at(96 << 10).limit, at(96 << 10).drain), (2, 2, 1));
        assert_eq!(at(256 << 10).refill, 1);
        // Small blocks are unaffected: the byte target already gives more than the floor.
        assert_eq!((at(64).refill, at(4096).refill), (512, 8));
        // A one-byte target asks for one block per refill, and gets it.
        let tiny = AllocatorConfig { refill_target_bytes: 1, ..AllocatorConfig::default() };
        assert!(ClassGeometry::table(&tiny, 4096).iter().all(|g| g.refill == 1));
        for g in t {
            let by_target = (32 << 10) / g.stride;
            let floor = BATCH_FLOOR_BLOCKS.min((256 << 10) / g.stride).min(g.capacity as usize);
            assert_eq!(g.refill as usize, by_target.max(floor).max(1), "{g:?}");
        }
    }

    #[test]
    fn slabs_lose_little_to_page_rounding() {
        for g in ClassGeometry::table(&AllocatorConfig::default(), 4096) {
            let used = g.capacity as usize * g.stride;
            let waste = g.slab_bytes - used;
            // At most 1/64 of the blocks' bytes, unless one block already exceeds 1 MiB
            // (then less than one page per block).
            assert!(waste * 64 <= used || (g.capacity == 1 && waste < 4096), "{g:?}");
        }
    }
}
