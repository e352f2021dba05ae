//! The central pool of one size class: the slabs the class owns, their free blocks, and
//! the class's remote-free inbox.
//!
//! Blocks are kept per slab, so a slab whose blocks are all back is recognised at once and
//! can be given back whole to the span heap (for any class or the large path) or to the OS.
//!
//! Invariants, per active slab `s` (under the class lock):
//! - `s.first = s.span_start + lead`; block `i` has its header at `s.first + i * stride`
//! - blocks `[0, s.fresh)` have been initialised; `[s.fresh, capacity)` were never touched
//! - `s.list` holds `s.list_len` initialised blocks, all free; `s.list_len <= s.fresh`
//! - free blocks of `s` in the central pool = `s.list_len + (capacity - s.fresh)`
//! - `s` is fully free ⇔ `s.list_len == s.fresh`; `is_empty` tracks that state for slabs
//!   that have handed out blocks, and `empty_slabs` counts them
//! - `free_blocks = Σ_active (s.list_len + capacity - s.fresh)`
//! - `available` ⊇ active slabs with a free block; `empties` ⊇ slabs with `is_empty`
//!   (both lazily pruned)

use std::ptr;

use crate::config::ClassGeometry;
use crate::header::{self, Header};
use crate::inbox::Inbox;

struct Slab {
    span_start: usize,
    /// Unique per slab life: seeds the generations of its blocks.
    seed: u64,
    first: usize,
    fresh: u32,
    list_len: u32,
    list: *mut Header,
    active: bool,
    in_available: bool,
    in_empties: bool,
    is_empty: bool,
    emptied_at: u64,
}

/// A chain of free blocks linked through `link`.
pub(crate) struct Chain {
    pub(crate) head: *mut Header,
    pub(crate) count: u32,
}

impl Chain {
    pub(crate) const EMPTY: Self = Self { head: ptr::null_mut(), count: 0 };

    /// # Safety
    /// `block` must be a free block owned by the caller.
    unsafe fn push(&mut self, block: *mut Header) {
        // SAFETY: the caller owns `block`.
        unsafe { (*block).link = self.head };
        self.head = block;
        self.count += 1;
    }
}

/// A slab span given back by a class, for the span heap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FreedSlab {
    pub(crate) start: usize,
    pub(crate) len: usize,
}

pub(crate) struct ClassPool {
    class: u8,
    geo: ClassGeometry,
    secret: u64,
    slabs: Vec<Slab>,
    free_ids: Vec<u32>,
    available: Vec<u32>,
    empties: Vec<u32>,
    free_blocks: usize,
    active_slabs: usize,
    empty_slabs: usize,
    last_used: u64,
}

// SAFETY: the raw pointers in a pool point into the arena, which outlives every pool, and
// the pool is only ever used under its class mutex.
unsafe impl Send for ClassPool {}

impl ClassPool {
    pub(crate) const fn new(class: u8, geo: ClassGeometry, secret: u64) -> Self {
        Self {
            class,
            geo,
            secret,
            slabs: Vec::new(),
            free_ids: Vec::new(),
            available: Vec::new(),
            empties: Vec::new(),
            free_blocks: 0,
            active_slabs: 0,
            empty_slabs: 0,
            last_used: 0,
        }
    }

    pub(crate) const fn free_blocks(&self) -> usize {
        self.free_blocks
    }

    pub(crate) const fn active_slabs(&self) -> usize {
        self.active_slabs
    }

    pub(crate) const fn empty_slabs(&self) -> usize {
        self.empty_slabs
    }

    pub(crate) const fn last_used(&self) -> u64 {
        self.last_used
    }

    /// Moves every block of `inbox` into its slab. Returns how many were rejected
    /// (blocks that belong to no slab of this class: only possible after corruption).
    pub(crate) fn drain_inbox(&mut self, inbox: &Inbox, now: u64) -> usize {
        let mut block = inbox.take_all();
        let (mut taken, mut rejected) = (0, 0);
        while !block.is_null() {
            // SAFETY: blocks in the inbox are free blocks of this class, published by
            // `Inbox::push` with release ordering and taken with acquire.
            let next = unsafe { (*block).link };
            // SAFETY: as above; `put` validates the slab before touching it.
            if !unsafe { self.put(block, now) } {
                rejected += 1;
            }
            taken += 1;
            block = next;
        }
        inbox.taken(taken);
        rejected
    }

    /// Returns a chain of free blocks to their slabs; returns how many were rejected.
    ///
    /// # Safety
    /// Every block of the chain must be free and owned by the caller.
    pub(crate) unsafe fn put_chain(&mut self, chain: Chain, now: u64) -> usize {
        let mut block = chain.head;
        let mut rejected = 0;
        while !block.is_null() {
            // SAFETY: the caller owns the chain.
            let next = unsafe { (*block).link };
            // SAFETY: as above.
            if !unsafe { self.put(block, now) } {
                rejected += 1;
            }
            block = next;
        }
        rejected
    }

    /// # Safety
    /// `block` must be a free block owned by the caller.
    unsafe fn put(&mut self, block: *mut Header, now: u64) -> bool {
        // SAFETY: the caller owns the block; its header is mapped arena memory.
        let id = unsafe { (*block).slab };
        let Some(slab) = self.slabs.get_mut(id as usize) else {
            return false;
        };
        let offset = (block as usize).wrapping_sub(slab.first);
        if !slab.active || offset % self.geo.stride != 0 || offset / self.geo.stride >= slab.fresh as usize {
            return false;
        }
        // SAFETY: the block is a free, initialised block of this slab.
        unsafe { (*block).link = slab.list };
        slab.list = block;
        slab.list_len += 1;
        self.free_blocks += 1;
        self.last_used = now;
        if !slab.in_available {
            slab.in_available = true;
            self.available.push(id);
        }
        if slab.list_len == slab.fresh && !slab.is_empty {
            slab.is_empty = true;
            slab.emptied_at = now;
            self.empty_slabs += 1;
            if !slab.in_empties {
                slab.in_empties = true;
                self.empties.push(id);
            }
        }
        true
    }

    /// Takes up to `max` free blocks (from the most recently used slabs first).
    pub(crate) fn take(&mut self, max: u32, now: u64) -> Chain {
        let mut chain = Chain::EMPTY;
        self.last_used = now;
        while chain.count < max {
            let Some(&id) = self.available.last() else {
                break;
            };
            let capacity = self.geo.capacity;
            let Some(slab) = self.slabs.get_mut(id as usize) else {
                self.available.pop();
                continue;
            };
            if !slab.active || (slab.list_len == 0 && slab.fresh == capacity) {
                slab.in_available = false;
                self.available.pop();
                continue;
            }
            if slab.is_empty {
                slab.is_empty = false;
                self.empty_slabs -= 1;
            }
            while chain.count < max && !slab.list.is_null() {
                let block = slab.list;
                // SAFETY: list blocks are free, initialised blocks of this slab.
                slab.list = unsafe { (*block).link };
                slab.list_len -= 1;
                // SAFETY: the block is now owned by the chain.
                unsafe { chain.push(block) };
            }
            while chain.count < max && slab.fresh < capacity {
                let block = (slab.first + slab.fresh as usize * self.geo.stride) as *mut Header;
                // SAFETY: a never-initialised block inside this slab's span, which the
                // class owns exclusively; it becomes owned by the chain.
                unsafe {
                    header::initialize(block, self.secret, self.class, id, generation_seed(block as usize, slab.seed));
                    chain.push(block);
                }
                slab.fresh += 1;
            }
        }
        self.free_blocks -= chain.count as usize;
        chain
    }

    /// Adopts the span at `span_start` (of `geo.slab_bytes`) as a new slab.
    /// `seed` must be unique among the slabs of this allocator's life (a counter).
    pub(crate) fn add_slab(&mut self, span_start: usize, seed: u64) {
        let slab = Slab {
            span_start,
            seed,
            first: span_start + self.geo.lead,
            fresh: 0,
            list_len: 0,
            list: ptr::null_mut(),
            active: true,
            in_available: true,
            in_empties: false,
            is_empty: false,
            emptied_at: 0,
        };
        let id = if let Some(id) = self.free_ids.pop() {
            self.slabs[id as usize] = slab;
            id
        } else {
            self.slabs.push(slab);
            (self.slabs.len() - 1) as u32
        };
        self.available.push(id);
        self.free_blocks += self.geo.capacity as usize;
        self.active_slabs += 1;
    }

    /// Gives back fully free slabs: all but the `keep` most recent ones, and also those
    /// emptied before `idle_before`.
    pub(crate) fn release_empty(&mut self, keep: usize, idle_before: u64, out: &mut Vec<FreedSlab>) {
        if self.empty_slabs <= keep && self.empties.iter().all(|&id| self.slabs[id as usize].emptied_at >= idle_before)
        {
            return;
        }
        let mut kept = 0;
        let mut i = self.empties.len();
        while i > 0 {
            i -= 1;
            let id = self.empties[i];
            let slab = &mut self.slabs[id as usize];
            if !slab.active || !slab.is_empty {
                slab.in_empties = false;
                self.empties.swap_remove(i);
                continue;
            }
            if kept < keep && slab.emptied_at >= idle_before {
                kept += 1;
                continue;
            }
            out.push(FreedSlab { start: slab.span_start, len: self.geo.slab_bytes });
            self.free_blocks -= slab.list_len as usize + (self.geo.capacity - slab.fresh) as usize;
            slab.active = false;
            slab.is_empty = false;
            slab.in_empties = false;
            slab.list = ptr::null_mut();
            self.empties.swap_remove(i);
            self.free_ids.push(id);
            self.empty_slabs -= 1;
            self.active_slabs -= 1;
        }
    }
}

impl ClassPool {
    /// Appends every live block that the cache `owner` holds (see `header::held_by`).
    pub(crate) fn live_owned_by(&self, owner: u64, out: &mut Vec<*mut Header>) {
        for slab in self.slabs.iter().filter(|s| s.active) {
            for i in 0..slab.fresh as usize {
                let block = (slab.first + i * self.geo.stride) as *mut Header;
                let live = header::live(header::check(self.secret, block, self.class));
                // SAFETY: blocks below `fresh` are initialised headers inside the slab's span.
                if unsafe { header::state(block) == live && header::held_by(block, owner) } {
                    out.push(block);
                }
            }
        }
    }
}

/// Starting generation of a block that enters a new slab: derived from its address and
/// the slab's unique seed, so a stale handle from an earlier life of the same address is
/// unlikely to match.
pub(crate) const fn generation_seed(addr: usize, seed: u64) -> u32 {
    let x = (addr as u64 ^ seed.rotate_left(29)).wrapping_mul(0xD6E8_FEB8_6659_FD93);
    (x >> 32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AllocatorConfig;
    use crate::os;

    fn pool(capacity_blocks: usize) -> (ClassPool, usize, usize) {
        let config = AllocatorConfig { slab_target_bytes: 4096, ..AllocatorConfig::default() };
        let geo = ClassGeometry::table(&config, 4096)[0];
        assert_eq!(geo.capacity as usize, 4096 / 128);
        let len = 4096 * capacity_blocks;
        let base = os::map_anonymous(len).unwrap().as_ptr() as usize;
        (ClassPool::new(0, geo, 42), base, len)
    }

    #[test]
    fn empty_pool_gives_nothing() {
        let (mut p, _, _) = pool(1);
        assert_eq!(p.take(4, 1).count, 0);
    }

    #[test]
    fn blocks_come_back_and_the_slab_is_released_when_fully_free() {
        let (mut p, base, _) = pool(2);
        p.add_slab(base, 1);
        assert_eq!(p.free_blocks(), 32);
        let chain = p.take(3, 1);
        assert_eq!((chain.count, p.free_blocks()), (3, 29));
        // SAFETY: the chain was just taken from this pool.
        assert_eq!(unsafe { p.put_chain(chain, 2) }, 0);
        assert_eq!((p.free_blocks(), p.empty_slabs()), (32, 1));
        let mut out = Vec::new();
        p.release_empty(1, 0, &mut out);
        assert!(out.is_empty(), "one empty slab is kept as a spare");
        p.release_empty(0, 0, &mut out);
        assert_eq!(out, vec![FreedSlab { start: base, len: 4096 }]);
        assert_eq!((p.free_blocks(), p.active_slabs(), p.empty_slabs()), (0, 0, 0));
    }

    #[test]
    fn inbox_blocks_count_and_return_to_their_slab() {
        let (mut p, base, _) = pool(1);
        p.add_slab(base, 1);
        let mut chain = p.take(2, 1);
        let inbox = Inbox::new();
        while !chain.head.is_null() {
            let block = chain.head;
            // SAFETY: blocks of the chain are owned here.
            unsafe {
                chain.head = (*block).link;
                inbox.push(block);
            }
        }
        assert_eq!(inbox.len(), 2);
        assert_eq!(p.drain_inbox(&inbox, 2), 0);
        assert_eq!((inbox.len(), p.free_blocks(), p.empty_slabs()), (0, 32, 1));
    }

    #[test]
    fn a_block_from_no_slab_is_rejected_not_listed() {
        let (mut p, base, _) = pool(2);
        p.add_slab(base, 1);
        let stray = (base + 4096 + 64) as *mut Header;
        // SAFETY: the stray header lies in mapped memory this test owns.
        unsafe {
            header::initialize(stray, 42, 0, 7, 0);
            assert_eq!(p.put_chain(Chain { head: stray, count: 1 }, 1), 1);
        }
        assert_eq!(p.free_blocks(), 32);
    }
}
