//! Executable invariants: the capacity equations of every structure, checked together.
//! Compiled for tests and with the `invariants` feature; the model-based test calls
//! [`Allocator::check_invariants`] after every step.
//!
//! Besides each structure's own invariants (class pools, span heap, thread caches), the
//! equations that tie them together, with no thread mid-operation:
//! - **carved memory is partitioned**: `carved_bytes = free_span_bytes + Σ slab bytes +
//!   Σ large span bytes`, and those ranges are pairwise disjoint
//! - **per class, every block is counted once**: among the initialised blocks of its
//!   slabs, `#FREE = Σ listed + Σ cached (all bound caches) + inbox`, and
//!   `#LIVE + #IN_FLIGHT` are the class's hand-outs
//! - **live counts agree**: `live_allocations = Σ_classes (#LIVE + #IN_FLIGHT) + large
//!   records`, `large_live_bytes = Σ requested of the records`
//! - every large record's granule is tagged `LIVE`/`IN_FLIGHT` of `LARGE_CLASS`

use std::sync::atomic::Ordering;

use crate::allocator::Allocator;
use crate::meta::{self, FREE, IN_FLIGHT, LARGE_CLASS, LIVE};
use crate::size_class::NUM_CLASSES;
use crate::table::MAX_SHIFT;
use crate::thread_cache::ThreadCache;

impl Allocator {
    /// Checks every invariant of the allocator's shared structures and the equations that
    /// tie them together. Call it when no thread is inside the allocator.
    ///
    /// # Errors
    /// A description of the first invariant found broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let inner = &*self.inner;
        let arena = &inner.arena;
        let mut ranges: Vec<(usize, usize, &str)> = Vec::new();
        let mut live_small = 0u64;
        for (c, central) in inner.central.iter().enumerate() {
            let pool = central.pool.lock();
            pool.check_invariants(arena)?;
            let geo = inner.geo[c];
            let (mut free, mut listed, mut live) = (0u64, 0u64, 0u64);
            for (start, fresh, list_len) in pool.active_slabs_info() {
                ranges.push((start, geo.slab_bytes, "slab"));
                listed += u64::from(list_len);
                for i in 0..fresh as usize {
                    let addr = start + i * geo.stride;
                    let tag = arena.meta_of(addr, geo.shift).map_or(0, |m| m.tag());
                    let ours =
                        usize::from(meta::class_of(tag)) == c && meta::tag_sub(tag) == meta::sub_of(addr, geo.shift);
                    match (meta::state_of(tag), ours) {
                        (FREE, true) => free += 1,
                        (LIVE | IN_FLIGHT, true) => live += 1,
                        _ => return Err(format!("class {c}: block {i} of slab {start:#x} has tag {tag:#x}")),
                    }
                }
            }
            let cached: u64 = inner
                .caches
                .bound
                .lock()
                .iter()
                .map(|shared| u64::from(shared.counts[c].load(Ordering::Relaxed)))
                .sum();
            let inbox = central.inbox.len() as u64;
            if free != listed + cached + inbox {
                return Err(format!(
                    "class {c}: {free} free blocks, but {listed} listed + {cached} cached + {inbox} in the inbox"
                ));
            }
            live_small += live;
        }
        let pages = inner.pages.lock();
        pages.spans.check_invariants()?;
        let mut large_bytes = 0;
        for (start, record) in pages.large.records() {
            let tag = arena.meta_of(start, MAX_SHIFT).map_or(0, |m| m.tag());
            if meta::class_of(tag) != LARGE_CLASS || !matches!(meta::state_of(tag), LIVE | IN_FLIGHT) {
                return Err(format!("large allocation {start:#x} has tag {tag:#x}"));
            }
            ranges.push((start, record.span_len, "large"));
            large_bytes += record.requested;
        }
        if large_bytes != pages.large.live_bytes() {
            return Err(format!("large live bytes: counted {large_bytes}, recorded {}", pages.large.live_bytes()));
        }
        let carved = arena.carved(&pages.top);
        let in_use: usize = ranges.iter().map(|r| r.1).sum();
        if in_use + pages.spans.free_bytes() != carved || pages.purging != 0 {
            return Err(format!(
                "carved {carved} != {in_use} in slabs and large spans + {} in free spans ({} spans out for purging)",
                pages.spans.free_bytes(),
                pages.purging
            ));
        }
        ranges.sort_unstable();
        if let Some(w) = ranges.windows(2).find(|w| w[0].0 + w[0].1 > w[1].0) {
            return Err(format!("{} at {:#x} overlaps {} at {:#x}", w[0].2, w[0].0, w[1].2, w[1].0));
        }
        drop(pages);
        let live = self.stats().live_allocations;
        let counted = live_small + inner.pages.lock().large.len() as u64;
        if live != counted {
            return Err(format!("live allocations: stats say {live}, the block table {counted}"));
        }
        Ok(())
    }
}

impl Allocator {
    /// Every committed range of user memory (one per region): what a scribble test writes
    /// over.
    #[must_use]
    pub fn committed_ranges(&self) -> Vec<(std::ptr::NonNull<u8>, usize)> {
        self.inner
            .arena
            .regions()
            .filter_map(|r| std::ptr::NonNull::new(r.base() as *mut u8).map(|base| (base, r.committed())))
            .filter(|&(_, len)| len > 0)
            .collect()
    }
}

impl ThreadCache {
    /// Checks this cache's invariants: per class, its count is its stack's length, within
    /// the class limit, and every block on it is a distinct free block of that class.
    ///
    /// # Errors
    /// A description of the first invariant found broken.
    pub fn check_invariants(&self) -> Result<(), String> {
        let Some(allocator) = &self.bound else {
            return if self.is_empty() { Ok(()) } else { Err("unbound cache holds blocks".into()) };
        };
        let inner = &*allocator.inner;
        let mut seen = std::collections::HashSet::new();
        for c in 0..NUM_CLASSES {
            let len = self.len(c);
            if len > inner.geo[c].limit {
                return Err(format!("cache {}: class {c} holds {len} (limit {})", self.id, inner.geo[c].limit));
            }
            let (mut addr, mut count, shift) = (self.heads[c], 0, inner.geo[c].shift);
            while addr != 0 {
                let Some(m) = inner.arena.meta_of(addr, shift) else {
                    return Err(format!("cache {}: class {c} links {addr:#x}, not arena memory", self.id));
                };
                if m.tag() != meta::tag(FREE, c as u8, meta::sub_of(addr, shift)) || !seen.insert(addr) || count >= len
                {
                    return Err(format!(
                        "cache {}: class {c} links {addr:#x} (tag {:#x}, twice, or too many)",
                        self.id,
                        m.tag()
                    ));
                }
                count += 1;
                addr = m.link();
            }
            if count != len {
                return Err(format!("cache {}: class {c} links {count} blocks, counts {len}", self.id));
            }
        }
        Ok(())
    }
}
