//! Thread caches: caller-owned, one per thread, holding free blocks per class.
//!
//! A cache keeps, per class, a list of free blocks linked through their out-of-band
//! metadata (never through the blocks: a user's bytes are only theirs): `heads[c]` is the
//! address of the first block, and the list's length is `shared.counts[c]` itself (the one
//! copy: the owning thread updates it with a relaxed load + store, other threads read it
//! only for stats). A pop or push touches the head, one count and the block's entry.
//!
//! Invariants, per class `c` of a bound cache:
//! - `heads[c]` links `shared.counts[c]` distinct free blocks of class `c` of the bound
//!   allocator (tag `FREE`), owned by this cache
//! - after any free `len(c) <= limit(c)` (the excess is drained to the central pool)
//! - an unbound cache holds no blocks; binding to another allocator first drains every
//!   block back to the old one, and dropping a cache drains it (nothing is stranded)

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use crate::allocator::Allocator;
use crate::arena::Arena;
use crate::central::Chain;
use crate::lent::LentTier;
use crate::meta::BlockMeta;
use crate::size_class::NUM_CLASSES;
use crate::stats::ThreadCacheStats;
use crate::table::ClassTable;

static NEXT_CACHE_ID: AtomicU32 = AtomicU32::new(1);

/// Operation counters of one cache (or, in the allocator, of retired caches and
/// cacheless frees). Single-writer when owned by a cache: updated with relaxed
/// load + store; sums are taken with wrapping arithmetic.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) allocations: AtomicU64,
    pub(crate) frees: AtomicU64,
    pub(crate) remote_frees: AtomicU64,
    pub(crate) allocated_bytes: AtomicU64,
    pub(crate) freed_bytes: AtomicU64,
}

#[inline(always)]
pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
}

impl Counters {
    /// Adds `other` into `self` (atomically; `self` may be shared).
    pub(crate) fn absorb(&self, other: &Self) {
        for (to, from) in self.fields().into_iter().zip(other.fields()) {
            to.fetch_add(from.load(Ordering::Relaxed), Ordering::Relaxed);
        }
    }

    pub(crate) const fn fields(&self) -> [&AtomicU64; 5] {
        [&self.allocations, &self.frees, &self.remote_frees, &self.allocated_bytes, &self.freed_bytes]
    }
}

/// The part of a cache other threads may read (for stats).
pub(crate) struct CacheShared {
    /// Length of each class's list (written by the owning thread only).
    pub(crate) counts: [AtomicU32; NUM_CLASSES],
    pub(crate) counters: Counters,
    /// Blocks a layer above keeps allocated for reuse, and what it did with them.
    pub(crate) lent: LentTier,
}

/// A thread cache. Create one per thread with [`ThreadCache::new`] and pass it to the
/// allocator's `*_with_cache` calls. It binds to the first allocator it is used with;
/// using it with another allocator drains it back to the first one, and dropping it
/// drains it, so no block is ever stranded in a cache.
pub struct ThreadCache {
    pub(crate) id: u32,
    pub(crate) bound_id: u64,
    pub(crate) bound: Option<Allocator>,
    pub(crate) shared: Arc<CacheShared>,
    /// Per class, the address of the first block of the list (0: empty).
    pub(crate) heads: [usize; NUM_CLASSES],
}

// SAFETY: the cached blocks are arena memory owned by this cache alone, with no thread
// affinity; the bound allocator is Send + Sync. A cache moved to another thread simply continues there (it is never used
// from two threads at once: every use takes `&mut`).
unsafe impl Send for ThreadCache {}

impl ThreadCache {
    /// A new, unbound cache with a process-unique id.
    #[must_use]
    pub fn new() -> Self {
        let mut id = NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed);
        if id == 0 {
            // 0 means "no owner"; skip it after a wrap-around.
            id = NEXT_CACHE_ID.fetch_add(1, Ordering::Relaxed);
        }
        Self {
            id,
            bound_id: 0,
            bound: None,
            shared: Arc::new(CacheShared {
                counts: std::array::from_fn(|_| AtomicU32::new(0)),
                counters: Counters::default(),
                lent: LentTier::new(),
            }),
            heads: [0; NUM_CLASSES],
        }
    }

    /// Process-unique id of this cache (recorded as the owner of blocks it hands out).
    #[must_use]
    pub fn id(&self) -> u64 {
        u64::from(self.id)
    }

    /// The allocator this cache is bound to, if any.
    #[must_use]
    pub const fn allocator(&self) -> Option<&Allocator> {
        self.bound.as_ref()
    }

    /// Occupancy of this cache (its lent blocks included: see [`crate::LentTier`]).
    #[must_use]
    pub fn stats(&self) -> ThreadCacheStats {
        let mut stats =
            ThreadCacheStats { id: self.id(), bound: u64::from(self.bound.is_some()), ..Default::default() };
        for (c, count) in self.shared.counts.iter().enumerate() {
            let blocks = u64::from(count.load(Ordering::Relaxed)) + self.shared.lent.lent(c);
            stats.class_blocks[c] = blocks;
            stats.blocks += blocks;
            if let Some(allocator) = &self.bound {
                stats.bytes += blocks * allocator.block_size(c) as u64;
            }
        }
        stats
    }

    /// Blocks in class `c`'s list.
    #[inline(always)]
    pub(crate) fn len(&self, c: usize) -> u32 {
        self.shared.counts[c].load(Ordering::Relaxed)
    }

    #[inline(always)]
    fn set_len(&self, c: usize, len: u32) {
        self.shared.counts[c].store(len, Ordering::Relaxed);
    }

    /// Whether every list is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.heads.iter().all(|&head| head == 0)
    }

    /// Takes the first block of class `c`'s list if it lies in the first region (`table`
    /// is the class's view of it): its address and metadata. `None` if the list is empty
    /// or its first block lies in a later region (see [`ThreadCache::pop`]).
    #[inline(always)]
    pub(crate) fn pop_first<'a>(&mut self, c: usize, table: &'a ClassTable) -> Option<(usize, &'a BlockMeta)> {
        let addr = self.heads[c];
        // `entry` is `None` for 0 (the empty list): no region starts at address 0.
        let entry = table.entry(addr)?;
        // SAFETY: `addr` lies in the first region and `entry` in its table: both are
        // addresses of mappings, never 0.
        unsafe {
            std::hint::assert_unchecked(addr != 0);
            std::hint::assert_unchecked(entry != 0);
        }
        // SAFETY: `addr` lies in the first region (checked by `entry`), so this is its
        // granule's entry in that region's table of the class's shift, mapped as long as
        // the arena (which outlives `table`). A cache list links only blocks of the class
        // (every push comes from a validated free or the central pool), and metadata is out
        // of band, so no user write can change a link.
        let meta: &'a BlockMeta = unsafe { &*(entry as *const BlockMeta) };
        self.heads[c] = meta.link();
        self.set_len(c, self.len(c).wrapping_sub(1));
        Some((addr, meta))
    }

    /// Takes the first block of class `c`'s list, in any region: its address and metadata.
    pub(crate) fn pop<'a>(
        &mut self,
        c: usize,
        arena: &'a Arena,
        table: &'a ClassTable,
    ) -> Option<(usize, &'a BlockMeta)> {
        if let Some(block) = self.pop_first(c, table) {
            return Some(block);
        }
        let addr = self.heads[c];
        if addr == 0 {
            return None;
        }
        let meta = arena.meta_of(addr, table.shift())?;
        self.heads[c] = meta.link();
        self.set_len(c, self.len(c).wrapping_sub(1));
        Some((addr, meta))
    }

    /// Puts the free block at `addr` whose metadata is `meta` (owned by the caller) at the
    /// head of class `c`'s list; returns the new length.
    #[inline(always)]
    pub(crate) fn push(&mut self, c: usize, addr: usize, meta: &BlockMeta) -> u32 {
        meta.set_link(self.heads[c]);
        self.heads[c] = addr;
        let len = self.len(c).wrapping_add(1);
        self.set_len(c, len);
        len
    }

    /// Detaches class `c`'s whole list.
    pub(crate) fn take_list(&mut self, c: usize) -> Chain {
        let chain = Chain { head: std::mem::replace(&mut self.heads[c], 0), len: self.len(c) };
        self.set_len(c, 0);
        chain
    }

    /// Makes `chain` class `c`'s list (which must be empty).
    pub(crate) fn set_list(&mut self, c: usize, chain: Chain) {
        debug_assert!(self.heads[c] == 0);
        self.heads[c] = chain.head;
        self.set_len(c, chain.len);
    }

    /// Detaches the `n` blocks after the first one of class `c`'s list (`n < len`).
    pub(crate) fn split_after_head(&mut self, c: usize, arena: &Arena, n: u32, shift: u32) -> Chain {
        let mut list = Chain { head: self.heads[c], len: self.len(c) };
        let taken = list.split_after_head(arena, n, shift);
        self.set_len(c, list.len);
        taken
    }
}

impl Default for ThreadCache {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for ThreadCache {
    fn drop(&mut self) {
        if let Some(allocator) = self.bound.take() {
            allocator.unbind(self);
            // This cache never sends or receives again: its hand-offs still in flight are
            // orphans.
            allocator.orphan_hand_offs_of(self.id);
        }
    }
}

impl std::fmt::Debug for ThreadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadCache").field("id", &self.id).field("bound_id", &self.bound_id).finish_non_exhaustive()
    }
}
