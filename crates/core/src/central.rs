//! The central pool of one size class: the slabs the class owns and their free blocks.
//!
//! Blocks are kept per slab, so a slab whose blocks are all back is recognised at once and
//! can be given back whole to the span heap (for any class or the large path) or to the OS.
//! A slab's free list is linked through the blocks' out-of-band metadata; the region's
//! slab map names the slab of every 4 KiB unit, so a returned block finds its slab in O(1).
//!
//! Invariants, per active slab `s` (under the class lock):
//! - block `i` starts at `s.start + i * stride`; blocks `[0, s.fresh)` have been
//!   initialised, `[s.fresh, capacity)` were never handed out in this slab's life
//! - `s.list` links `s.list_len` distinct blocks of `s`, all below `s.fresh`, all `FREE`;
//!   `s.list_len <= s.fresh`
//! - free blocks of `s` in the central pool = `s.list_len + (capacity - s.fresh)`
//! - `s.is_empty ⇔ s.fresh > 0 ∧ s.list_len == s.fresh` (every block it handed out is
//!   back); `empty_slabs` counts them
//! - the slab map holds `index + 1` for every unit of the slab's span
//! - `free_blocks = Σ_active (s.list_len + capacity - s.fresh)`
//! - `available` ⊇ active slabs with a free block; `empties` ⊇ slabs with `is_empty`
//!   (both lazily pruned)

use crate::arena::Arena;
use crate::config::ClassGeometry;
use crate::inbox::Inbox;
use crate::meta::{self, BlockMeta, FREE, LIVE};
#[cfg(any(test, feature = "invariants"))]
use crate::region::Region;

struct Slab {
    start: usize,
    /// Unique per slab life: seeds the generations of its blocks.
    seed: u64,
    fresh: u32,
    list_len: u32,
    /// Address of the first block of the free list (0: empty).
    list: usize,
    active: bool,
    in_available: bool,
    in_empties: bool,
    is_empty: bool,
    emptied_at: u64,
}

/// A chain of free blocks linked through their out-of-band metadata (`head` and
/// `BlockMeta::link` are block addresses, 0 = end), never through user memory: a batch
/// moving between a thread cache and the central pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Chain {
    pub(crate) head: usize,
    pub(crate) len: u32,
}

impl Chain {
    pub(crate) const EMPTY: Self = Self { head: 0, len: 0 };

    /// Pushes the free block at `addr` whose metadata is `meta`, owned by the caller.
    #[inline(always)]
    pub(crate) fn push(&mut self, addr: usize, meta: &BlockMeta) {
        meta.set_link(self.head);
        self.head = addr;
        self.len += 1;
    }

    /// Detaches the `n` blocks after the first one (`n < len`) as a chain of their own
    /// (blocks of a class of table `shift`).
    pub(crate) fn split_after_head(&mut self, arena: &Arena, n: u32, shift: u32) -> Self {
        let Some(head_meta) = arena.meta_of(self.head, shift) else {
            return Self::EMPTY;
        };
        let first = head_meta.link();
        let Some(mut last) = arena.meta_of(first, shift) else {
            return Self::EMPTY;
        };
        let mut taken = 1;
        while taken < n {
            let Some(next) = arena.meta_of(last.link(), shift) else { break };
            last = next;
            taken += 1;
        }
        head_meta.set_link(last.link());
        last.set_link(0);
        self.len -= taken;
        Self { head: first, len: taken }
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
    slabs: Vec<Slab>,
    free_ids: Vec<u32>,
    available: Vec<u32>,
    empties: Vec<u32>,
    free_blocks: usize,
    active_slabs: usize,
    empty_slabs: usize,
    last_used: u64,
}

impl ClassPool {
    pub(crate) const fn new(class: u8, geo: ClassGeometry) -> Self {
        Self {
            class,
            geo,
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
    /// (blocks that belong to no slab of this class: only possible after a bug).
    pub(crate) fn drain_inbox(&mut self, arena: &Arena, inbox: &Inbox, now: u64) -> usize {
        let head = inbox.take_all();
        if head == 0 {
            return 0;
        }
        let (taken, rejected) = self.put_linked(arena, head, now);
        inbox.taken(taken);
        rejected
    }

    /// Returns a chain of free blocks (owned by the caller) to their slabs; returns how
    /// many were rejected.
    pub(crate) fn put_chain(&mut self, arena: &Arena, chain: Chain, now: u64) -> usize {
        self.put_linked(arena, chain.head, now).1
    }

    /// Puts every block linked from the block at `head`; returns `(blocks, rejected)`.
    fn put_linked(&mut self, arena: &Arena, head: usize, now: u64) -> (usize, usize) {
        let (mut addr, mut blocks, mut rejected) = (head, 0, 0);
        while addr != 0 {
            blocks += 1;
            let Some(meta) = arena.meta_of(addr, self.geo.shift) else {
                // Not arena memory: the chain cannot be followed further.
                return (blocks, rejected + 1);
            };
            let next = meta.link();
            if !self.put(arena, addr, meta, now) {
                rejected += 1;
            }
            addr = next;
        }
        (blocks, rejected)
    }

    /// Puts one free block back on its slab's list, after checking that it is a free
    /// block of an active slab of this class.
    fn put(&mut self, arena: &Arena, addr: usize, meta: &BlockMeta, now: u64) -> bool {
        let Some((region, off)) = arena.locate(addr) else {
            return false;
        };
        let (class, id) = region.slab_at(off);
        let Some(id) = id.checked_sub(1).filter(|_| class == self.class) else {
            return false;
        };
        let stride = self.geo.stride;
        let Some(slab) = self.slabs.get_mut(id as usize) else {
            return false;
        };
        let rel = addr.wrapping_sub(slab.start);
        if !slab.active
            || rel % stride != 0
            || rel / stride >= slab.fresh as usize
            || meta.tag() != meta::tag(FREE, self.class, meta::sub_of(addr, self.geo.shift))
        {
            return false;
        }
        meta.set_link(slab.list);
        slab.list = addr;
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

    /// Takes up to `max` free blocks (most recently used slabs first) as a chain, which
    /// becomes the caller's.
    pub(crate) fn take(&mut self, arena: &Arena, max: u32, now: u64) -> Chain {
        let mut chain = Chain::EMPTY;
        self.last_used = now;
        let (class, stride, capacity, shift) = (self.class, self.geo.stride, self.geo.capacity, self.geo.shift);
        while chain.len < max {
            let Some(&id) = self.available.last() else {
                break;
            };
            let Some(slab) = self.slabs.get_mut(id as usize) else {
                self.available.pop();
                continue;
            };
            let region = arena.locate(slab.start);
            if !slab.active || (slab.list_len == 0 && slab.fresh == capacity) || region.is_none() {
                slab.in_available = false;
                self.available.pop();
                continue;
            }
            let Some((region, slab_off)) = region else { break };
            if slab.is_empty {
                slab.is_empty = false;
                self.empty_slabs -= 1;
            }
            while chain.len < max
                && let Some(meta) = region.meta_of(slab.list, shift)
            {
                let addr = slab.list;
                slab.list = meta.link();
                slab.list_len -= 1;
                chain.push(addr, meta);
            }
            while chain.len < max && slab.fresh < capacity {
                let addr = region.base() + slab_off + slab.fresh as usize * stride;
                let meta = region.meta_at(addr, shift);
                meta.initialize(class, meta::sub_of(addr, shift), generation_seed(addr, slab.seed));
                chain.push(addr, meta);
                slab.fresh += 1;
            }
        }
        self.free_blocks -= chain.len as usize;
        chain
    }

    /// Adopts the span at `start` (of `geo.slab_bytes`) as a new slab.
    /// `seed` must be unique among the slabs of this allocator's life (a counter).
    pub(crate) fn add_slab(&mut self, arena: &Arena, start: usize, seed: u64) {
        let slab = Slab {
            start,
            seed,
            fresh: 0,
            list_len: 0,
            list: 0,
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
        if let Some((region, off)) = arena.locate(start) {
            region.map_slab(off, self.geo.slab_bytes, self.class, id + 1);
        }
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
            out.push(FreedSlab { start: slab.start, len: self.geo.slab_bytes });
            self.free_blocks -= slab.list_len as usize + (self.geo.capacity - slab.fresh) as usize;
            slab.active = false;
            slab.is_empty = false;
            slab.in_empties = false;
            slab.list = 0;
            self.empties.swap_remove(i);
            self.free_ids.push(id);
            self.empty_slabs -= 1;
            self.active_slabs -= 1;
        }
    }

    /// Appends every live block (tag `LIVE`) whose owner is the cache `owner`.
    pub(crate) fn live_owned_by(&self, arena: &Arena, owner: u32, out: &mut Vec<usize>) {
        let shift = self.geo.shift;
        for slab in self.slabs.iter().filter(|s| s.active) {
            let Some((region, _)) = arena.locate(slab.start) else { continue };
            for i in 0..slab.fresh as usize {
                let addr = slab.start + i * self.geo.stride;
                let meta = region.meta_at(addr, shift);
                if meta.tag() == meta::tag(LIVE, self.class, meta::sub_of(addr, shift)) && meta.owner() == owner {
                    out.push(addr);
                }
            }
        }
    }

    /// `(start, fresh, list_len)` of every active slab.
    #[cfg(any(test, feature = "invariants"))]
    pub(crate) fn active_slabs_info(&self) -> Vec<(usize, u32, u32)> {
        self.slabs.iter().filter(|s| s.active).map(|s| (s.start, s.fresh, s.list_len)).collect()
    }

    /// Checks the invariants above (with the class lock held and no inbox traffic).
    #[cfg(any(test, feature = "invariants"))]
    pub(crate) fn check_invariants(&self, arena: &Arena) -> Result<(), String> {
        let capacity = self.geo.capacity as usize;
        let (mut free, mut active, mut empty) = (0, 0, 0);
        for (id, s) in self.slabs.iter().enumerate().filter(|(_, s)| s.active) {
            active += 1;
            let (region, off) =
                arena.locate(s.start).ok_or(format!("class {}: slab {id} outside the arena", self.class))?;
            check_slab(region, off, id, s, self.class, &self.geo)?;
            if s.is_empty != (s.fresh > 0 && s.list_len == s.fresh) {
                return Err(format!(
                    "class {}: slab {id} is_empty {} with {}/{}",
                    self.class, s.is_empty, s.list_len, s.fresh
                ));
            }
            empty += usize::from(s.is_empty);
            free += s.list_len as usize + capacity - s.fresh as usize;
            let has_free = s.list_len > 0 || (s.fresh as usize) < capacity;
            if has_free && !self.available.contains(&(id as u32)) {
                return Err(format!("class {}: slab {id} has free blocks but is not available", self.class));
            }
        }
        if (free, active, empty) != (self.free_blocks, self.active_slabs, self.empty_slabs) {
            return Err(format!(
                "class {}: counted (free {free}, active {active}, empty {empty}) but recorded ({}, {}, {})",
                self.class, self.free_blocks, self.active_slabs, self.empty_slabs
            ));
        }
        Ok(())
    }
}

/// Checks one active slab: its map entries and its free list.
#[cfg(any(test, feature = "invariants"))]
fn check_slab(region: &Region, off: usize, id: usize, s: &Slab, class: u8, geo: &ClassGeometry) -> Result<(), String> {
    let (stride, shift) = (geo.stride, geo.shift);
    if region.slab_at(off) != (class, id as u32 + 1) {
        return Err(format!("class {class}: slab {id} at {:#x} is not in the slab map", s.start));
    }
    let mut seen = std::collections::HashSet::new();
    let mut addr = s.list;
    while addr != 0 {
        let Some(meta) = region.meta_of(addr, shift) else {
            return Err(format!("class {class}: slab {id} links {addr:#x}, not in its region"));
        };
        let rel = addr.wrapping_sub(s.start);
        if !rel.is_multiple_of(stride) || rel / stride >= s.fresh as usize || !seen.insert(addr) {
            return Err(format!("class {class}: slab {id} lists {addr:#x} (outside, off-grid, or twice)"));
        }
        if meta.tag() != meta::tag(FREE, class, meta::sub_of(addr, shift)) {
            return Err(format!("class {class}: listed block {addr:#x} has tag {:#x}", meta.tag()));
        }
        addr = meta.link();
    }
    if seen.len() != s.list_len as usize || s.list_len > s.fresh {
        return Err(format!(
            "class {class}: slab {id} lists {} blocks, records {}/{}",
            seen.len(),
            s.list_len,
            s.fresh
        ));
    }
    Ok(())
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
    use crate::arena::Top;
    use crate::config::AllocatorConfig;

    fn pool(slabs: usize) -> (ClassPool, Arena, Vec<usize>) {
        let config =
            AllocatorConfig { max_bytes: Some(4096 * slabs), slab_target_bytes: 4096, ..AllocatorConfig::default() };
        let geo = ClassGeometry::table(&config, 4096)[0];
        assert_eq!(geo.capacity as usize, 4096 / 64);
        let arena = Arena::new(&config, 4096).unwrap();
        let mut top = Top::default();
        let starts = (0..slabs).map(|_| arena.carve(&mut top, 4096, true, &mut |_, _| {}).unwrap()).collect();
        (ClassPool::new(0, geo), arena, starts)
    }

    #[test]
    fn empty_pool_gives_nothing() {
        let (mut p, arena, _) = pool(1);
        assert_eq!(p.take(&arena, 4, 1), Chain::EMPTY);
    }

    #[test]
    fn blocks_come_back_and_the_slab_is_released_when_fully_free() {
        let (mut p, arena, starts) = pool(2);
        p.add_slab(&arena, starts[0], 1);
        assert_eq!(p.free_blocks(), 64);
        let chain = p.take(&arena, 3, 1);
        assert_eq!(chain, Chain { head: starts[0] + 128, len: 3 });
        assert_eq!(p.free_blocks(), 61);
        p.check_invariants(&arena).unwrap();
        assert_eq!(p.put_chain(&arena, chain, 2), 0);
        assert_eq!((p.free_blocks(), p.empty_slabs()), (64, 1));
        p.check_invariants(&arena).unwrap();
        let mut freed = Vec::new();
        p.release_empty(1, 0, &mut freed);
        assert!(freed.is_empty(), "one empty slab is kept as a spare");
        p.release_empty(0, 0, &mut freed);
        assert_eq!(freed, vec![FreedSlab { start: starts[0], len: 4096 }]);
        assert_eq!((p.free_blocks(), p.active_slabs(), p.empty_slabs()), (0, 0, 0));
        p.check_invariants(&arena).unwrap();
    }

    #[test]
    fn inbox_blocks_count_and_return_to_their_slab() {
        let (mut p, arena, starts) = pool(1);
        p.add_slab(&arena, starts[0], 1);
        let chain = p.take(&arena, 2, 1);
        let first = arena.meta_of(chain.head, 6).unwrap();
        let second = arena.meta_of(first.link(), 6).unwrap();
        let inbox = Inbox::new();
        inbox.push(first.link(), second);
        inbox.push(chain.head, first);
        assert_eq!(inbox.len(), 2);
        assert_eq!(p.drain_inbox(&arena, &inbox, 2), 0);
        assert_eq!((inbox.len(), p.free_blocks(), p.empty_slabs()), (0, 64, 1));
        p.check_invariants(&arena).unwrap();
    }

    #[test]
    fn a_block_of_no_slab_or_not_free_is_rejected_not_listed() {
        let (mut p, arena, starts) = pool(2);
        p.add_slab(&arena, starts[0], 1);
        let taken = p.take(&arena, 1, 1).head;
        // A block of a span no slab owns, a never-issued block.
        for stray in [starts[1] + 64, starts[0] + 640] {
            let meta = arena.meta_of(stray, 6).unwrap();
            meta.initialize(0, 0, 0);
            assert_eq!(p.put_chain(&arena, Chain { head: stray, len: 1 }, 1), 1);
        }
        // An address off the block grid, and one outside the arena.
        assert_eq!(p.put_chain(&arena, Chain { head: taken + 8, len: 1 }, 1), 1);
        assert_eq!(p.put_chain(&arena, Chain { head: 64, len: 1 }, 1), 1);
        // A block marked live (handed out) is not free.
        arena.meta_of(taken, 6).unwrap().set_tag(meta::tag(LIVE, 0, 0));
        assert_eq!(p.put_chain(&arena, Chain { head: taken, len: 1 }, 1), 1);
        assert_eq!(p.free_blocks(), 63);
    }
}
