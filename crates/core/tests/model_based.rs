//! Model-based property test: long random sequences of allocations, frees and resizes
//! (1 B to 20 MiB, weighted to small; several caches, so some frees are remote; every free
//! API; drains, trims, dropped caches, rejected frees) checked against a shadow map: no two
//! live blocks overlap, every pointer is aligned and inside the arena, a pattern written
//! at allocation is intact at free, the stats agree with the model, and every invariant of
//! the allocator and the caches holds after every step (`check_invariants`).
//!
//! The scribble variants also write random bytes over the whole data region (live, free and
//! never-issued blocks alike) every few hundred steps, and over random ranges in between:
//! metadata lives out of band, so the allocator must not notice (live blocks get their
//! patterns back after each scribble, so the pattern check still proves the allocator never
//! writes user memory).

#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;

use common::{MIB, Rng};
use tensor_arena_core::{AllocError, Allocation, Allocator, AllocatorConfig, FreeError, ThreadCache};

struct Block {
    ptr: NonNull<u8>,
    size: usize,
    tag: u8,
    generation: Option<u32>,
    /// Index of this block's key in `Model::order`.
    pos: usize,
}

struct Model {
    a: Allocator,
    caches: Vec<ThreadCache>,
    /// Live blocks by address.
    live: BTreeMap<usize, Block>,
    /// The keys of `live` in an order that does not depend on addresses (hand-out order,
    /// changed only by swap-removal), so random picks are the same in every run: the
    /// address order of a growing arena's regions depends on where the OS maps them.
    order: Vec<usize>,
    live_bytes: u64,
    reserved: usize,
    reserved_cap: usize,
    rejected: u64,
    issued: u64,
    large_issued: u64,
    peak_reserved: usize,
    /// The last block freed, while no allocation could have reissued it.
    last_freed: Option<NonNull<u8>>,
    /// Scribble over the data region every this many steps (0: never).
    scribble_every: u64,
    rng: Rng,
}

impl Model {
    fn new(config: AllocatorConfig, seed: u64, caches: usize, scribble_every: u64) -> Self {
        Self {
            a: Allocator::new(config).unwrap(),
            caches: (0..caches).map(|_| ThreadCache::new()).collect(),
            live: BTreeMap::new(),
            order: Vec::new(),
            live_bytes: 0,
            reserved: 0,
            // Uncapped arenas: the heap still stays within a budget, but several times the
            // first region the growing tests give them.
            reserved_cap: config.max_bytes.map_or(64 * MIB, |cap| cap * 3 / 8),
            rejected: 0,
            issued: 0,
            large_issued: 0,
            peak_reserved: 0,
            last_freed: None,
            scribble_every,
            rng: Rng::new(seed),
        }
    }

    fn step(&mut self, op: u64) {
        let r = self.rng.below(1000);
        match r {
            0..=539 => self.allocate(op),
            540..=949 => self.free_random(op),
            950..=959 => self.resize_random(op),
            960..=974 => {
                let c = self.rng.below(self.caches.len());
                self.a.drain_thread_cache(&mut self.caches[c]);
            }
            975..=976 => {
                self.a.trim();
            }
            977..=979 => {
                let c = self.rng.below(self.caches.len());
                self.caches[c] = ThreadCache::new();
            }
            _ => self.reject_something(op),
        }
    }

    fn allocate(&mut self, op: u64) {
        let size = common::weighted_size(&mut self.rng);
        let usable = self.a.usable_size(size);
        if self.reserved + usable > self.reserved_cap {
            return self.free_random(op);
        }
        let c = self.rng.below(self.caches.len());
        let tracked = self.rng.chance(500);
        let mut result = self.try_allocate(c, size, tracked);
        if matches!(result, Err(AllocError::OutOfMemory { .. })) {
            for cache in &mut self.caches {
                self.a.drain_thread_cache(cache);
            }
            self.a.trim();
            result = self.try_allocate(c, size, tracked);
        }
        let allocation = result.unwrap_or_else(|e| {
            panic!(
                "op {op}: allocate {size} with {} bytes reserved in {} blocks: {e}\n{:?}",
                self.reserved,
                self.live.len(),
                self.a.stats()
            )
        });
        let ptr = allocation.ptr;
        self.issued += 1;
        let generation = tracked.then_some(allocation.generation);
        self.adopt(op, ptr, size, generation);
        self.live_bytes += size as u64;
        self.reserved += usable;
        self.peak_reserved = self.peak_reserved.max(self.reserved);
        self.large_issued += u64::from(size > tensor_arena_core::MAX_SMALL_SIZE);
        self.last_freed = None;
    }

    /// Checks a block just handed out (aligned, inside the arena, overlapping no live
    /// block), writes its pattern and records it.
    fn adopt(&mut self, op: u64, ptr: NonNull<u8>, size: usize, generation: Option<u32>) {
        let start = ptr.as_ptr() as usize;
        let end = start + size;
        assert_eq!(start % self.a.config().alignment, 0, "op {op}: misaligned {ptr:p}");
        assert!(self.a.contains(ptr.as_ptr()) && self.a.contains((end - 1) as *const u8), "op {op}: outside");
        if let Some((&prev, block)) = self.live.range(..=start).next_back() {
            assert!(
                prev + block.size <= start,
                "op {op}: {size} bytes at {ptr:p} overlap {} bytes at {prev:#x}",
                block.size
            );
        }
        if let Some((&next, block)) = self.live.range(start..).next() {
            assert!(end <= next, "op {op}: {size} bytes at {ptr:p} overlap {} bytes at {:p}", block.size, block.ptr);
        }
        let tag = common::tag_of(self.issued);
        // SAFETY: a live block of `size` bytes that only the model uses.
        unsafe { common::fill(ptr, size, tag) };
        self.insert_live(start, Block { ptr, size, tag, generation, pos: 0 });
    }

    fn insert_live(&mut self, key: usize, mut block: Block) {
        block.pos = self.order.len();
        self.order.push(key);
        self.live.insert(key, block);
    }

    fn remove_live(&mut self, key: usize) -> Option<Block> {
        let block = self.live.remove(&key)?;
        self.order.swap_remove(block.pos);
        if let Some(&moved) = self.order.get(block.pos)
            && let Some(b) = self.live.get_mut(&moved)
        {
            b.pos = block.pos;
        }
        Some(block)
    }

    fn try_allocate(&mut self, c: usize, size: usize, tracked: bool) -> Result<Allocation, AllocError> {
        let cache = &mut self.caches[c];
        if tracked {
            self.a.allocate_tracked(cache, size)
        } else {
            self.a.allocate_with_cache(cache, size).map(|ptr| Allocation { ptr, generation: 0 })
        }
    }

    fn random_live(&mut self) -> Option<usize> {
        if self.order.is_empty() {
            return None;
        }
        Some(self.order[self.rng.below(self.order.len())])
    }

    /// Resizes a random live block (to a random size, or within its class), keeping its
    /// contents.
    fn resize_random(&mut self, op: u64) {
        let Some(key) = self.random_live() else {
            return;
        };
        let Some(block) = self.remove_live(key) else {
            return;
        };
        let size = match self.rng.below(3) {
            0 => block.size.saturating_sub(self.rng.below(64)).max(1),
            _ => common::weighted_size(&mut self.rng),
        };
        let grown = self.a.usable_size(size).saturating_sub(self.a.usable_size(block.size));
        if self.reserved + grown > self.reserved_cap {
            self.insert_live(key, block);
            return;
        }
        // SAFETY: the block is live in the model, so in the allocator.
        assert!(unsafe { common::check(block.ptr, block.size, block.tag) }, "op {op}: damaged before resize");
        let c = self.rng.below(self.caches.len());
        // SAFETY: the block is live and only the model uses it.
        let moved = unsafe { self.a.reallocate(&mut self.caches[c], block.ptr, size) };
        let ptr = match moved {
            Ok(ptr) => ptr,
            Err(e) => {
                // Out of memory: the block is untouched.
                assert!(
                    matches!(e, tensor_arena_core::ReallocError::Alloc(AllocError::OutOfMemory { .. })),
                    "op {op}: {e}"
                );
                self.insert_live(key, block);
                return;
            }
        };
        // A move is a new allocation (and a free of the old block).
        self.issued += u64::from(ptr != block.ptr);
        let kept = size.min(block.size);
        // SAFETY: the first `kept` bytes were carried over.
        assert!(unsafe { common::check(ptr, kept.min(4096), block.tag) }, "op {op}: resize lost bytes");
        self.live_bytes = self.live_bytes - block.size as u64 + size as u64;
        self.reserved = self.reserved - self.a.usable_size(block.size) + self.a.usable_size(size);
        self.peak_reserved = self.peak_reserved.max(self.reserved);
        self.adopt(op, ptr, size, None);
        self.last_freed = None;
    }

    /// Writes random bytes over the whole data region (or, between full scribbles, over a
    /// random range of it), then gives live blocks their patterns back.
    fn scribble(&mut self, full: bool) {
        for (start, len) in self.a.committed_ranges() {
            let (from, to) = if full {
                (0, len)
            } else {
                let from = self.rng.below(len);
                (from, (from + self.rng.range(1, 64 * 1024)).min(len))
            };
            let mut word = self.rng.next_u64();
            for offset in from..to {
                // SAFETY: `[start, start + len)` is committed arena memory; the model owns
                // every live block and writes their patterns back below.
                unsafe { start.as_ptr().add(offset).write(word as u8) };
                word = word.rotate_left(9) ^ 0x9E37_79B9_7F4A_7C15;
            }
        }
        for block in self.live.values() {
            // SAFETY: a live block of the model.
            unsafe { common::fill(block.ptr, block.size, block.tag) };
        }
    }

    fn free_random(&mut self, op: u64) {
        let Some(key) = self.random_live() else {
            return;
        };
        let Some(block) = self.remove_live(key) else {
            return;
        };
        // SAFETY: the block is live in the model, so in the allocator.
        let intact = unsafe { common::check(block.ptr, block.size, block.tag) };
        assert!(intact, "op {op}: pattern of {} bytes at {:p} damaged", block.size, block.ptr);
        let c = self.rng.below(self.caches.len());
        let cache = &mut self.caches[c];
        // SAFETY: the block is live and freed exactly once here.
        let result = unsafe {
            match (self.rng.below(4), block.generation) {
                (0, _) => self.a.deallocate_with_cache(cache, block.ptr),
                (1, _) => self.a.deallocate_with_size(cache, block.ptr, block.size),
                (2, Some(g)) => self.a.deallocate_tracked(cache, block.ptr, g),
                (2, None) => self.a.deallocate_with_cache(cache, block.ptr),
                (_, g) => self.a.deallocate_uncached(block.ptr, g),
            }
        };
        assert_eq!(result, Ok(()), "op {op}: free of {} bytes at {:p}", block.size, block.ptr);
        self.live_bytes -= block.size as u64;
        self.reserved -= self.a.usable_size(block.size);
        self.last_freed = Some(block.ptr);
    }

    fn reject_something(&mut self, op: u64) {
        let c = self.rng.below(self.caches.len());
        if let Some(ptr) = self.last_freed {
            // SAFETY: the block was freed and not reissued since; the free must fail.
            let result = unsafe { self.a.deallocate_with_cache(&mut self.caches[c], ptr) };
            assert!(matches!(result, Err(FreeError::DoubleFree { .. })), "op {op}: double free of {ptr:p}: {result:?}");
            self.rejected += 1;
        }
        let Some(key) = self.random_live() else {
            return;
        };
        let block = &self.live[&key];
        let (ptr, size, generation) = (block.ptr, block.size, block.generation);
        // SAFETY: each of these frees must be rejected and leave the block live.
        unsafe {
            let misaligned = common::offset(ptr, 1 + self.rng.below(63) as isize);
            let result = self.a.deallocate_with_cache(&mut self.caches[c], misaligned);
            assert!(matches!(result, Err(FreeError::ForeignPointer { .. })), "op {op}: {result:?}");
            let result = self.a.deallocate_with_size(&mut self.caches[c], ptr, size + 1);
            assert!(matches!(result, Err(FreeError::SizeMismatch { .. })), "op {op}: {result:?}");
            self.rejected += 2;
            if let Some(g) = generation {
                let result = self.a.deallocate_tracked(&mut self.caches[c], ptr, g.wrapping_sub(1));
                assert!(matches!(result, Err(FreeError::DoubleFree { .. })), "op {op}: {result:?}");
                self.rejected += 1;
            }
        }
    }

    /// Every invariant of the allocator and of every cache.
    fn check_invariants(&self, op: u64) {
        if let Err(e) = self.a.check_invariants() {
            panic!("op {op}: {e}");
        }
        for cache in &self.caches {
            if let Err(e) = cache.check_invariants() {
                panic!("op {op}: {e}");
            }
        }
    }

    fn check_stats(&self, op: u64) {
        let stats = self.a.stats();
        assert_eq!(stats.live_allocations, self.live.len() as u64, "op {op}");
        assert_eq!(stats.live_bytes, self.live_bytes, "op {op}");
        assert_eq!(stats.rejected_frees_total, self.rejected, "op {op}");
        assert_eq!(stats.allocations_total, self.issued, "op {op}");
        let cached: u64 = self.caches.iter().map(|c| c.stats().blocks).sum();
        assert_eq!(stats.thread_cache_blocks, cached, "op {op}");
        if stats.max_bytes > 0 {
            assert_eq!(stats.remaining_bytes, stats.max_bytes - stats.carved_bytes + stats.free_span_bytes, "op {op}");
        }
    }

    /// Frees everything, checks the allocator is back to empty, and returns its final stats.
    fn finish(mut self, ops: u64) -> tensor_arena_core::AllocatorStats {
        // The sequence did exercise what it is meant to (a full-length run: a shortened one
        // under valgrind need not reach the arena's cap or a large request).
        if ops_divisor() == 1 {
            let stats = self.a.stats();
            assert!(self.issued > ops / 3, "{} allocations", self.issued);
            assert!(self.large_issued > 0 && stats.remote_frees_total > ops / 20);
            assert!(self.peak_reserved > self.reserved_cap / 2, "peak {} of {}", self.peak_reserved, self.reserved_cap);
            assert!(self.rejected > ops / 100);
        }
        let keys: Vec<usize> = self.live.keys().copied().collect();
        for key in keys {
            let block = self.remove_live(key).unwrap();
            // SAFETY: live in the model; freed once.
            unsafe {
                assert!(common::check(block.ptr, block.size, block.tag));
                common::free(&self.a, &mut self.caches[0], block.ptr);
            }
        }
        self.caches.clear();
        let stats = self.a.stats();
        assert_eq!((stats.live_allocations, stats.live_bytes), (0, 0));
        assert_eq!((stats.thread_caches, stats.thread_cache_blocks), (0, 0));
        assert_eq!(stats.allocations_total, stats.frees_total);
        self.a.trim();
        let stats = self.a.stats();
        assert_eq!((stats.slabs, stats.central_blocks), (0, 0));
        assert_eq!(stats.free_span_bytes, stats.carved_bytes);
        self.check_invariants(ops);
        stats
    }
}

fn run(config: AllocatorConfig, seed: u64, ops: u64, caches: usize) -> tensor_arena_core::AllocatorStats {
    run_model(Model::new(config, seed, caches, 0), ops)
}

/// `TENSOR_ARENA_MODEL_OPS_DIVISOR=N` runs 1/N of each run's operations
/// (scripts/valgrind.sh: every step checks every invariant, which valgrind slows ~50x);
/// the assertions that need a full-length run (the arena grew) are skipped then.
fn ops_divisor() -> u64 {
    std::env::var("TENSOR_ARENA_MODEL_OPS_DIVISOR").ok().and_then(|v| v.parse::<u64>().ok()).unwrap_or(1).max(1)
}

fn run_model(mut model: Model, ops: u64) -> tensor_arena_core::AllocatorStats {
    let ops = ops / ops_divisor();
    for op in 0..ops {
        model.step(op);
        model.check_invariants(op);
        if model.scribble_every > 0 {
            model.scribble(op % model.scribble_every == 0);
        }
        if op % 1000 == 999 {
            model.check_stats(op);
        }
    }
    model.check_stats(ops);
    model.finish(ops)
}

fn config(adjust: impl FnOnce(&mut AllocatorConfig)) -> AllocatorConfig {
    // Idle release by time would make a run depend on how fast it goes (a debug run takes
    // minutes); trims and the retain cap still return memory, deterministically.
    let mut c =
        AllocatorConfig { max_bytes: Some(256 * MIB), idle_release_ms: 3_600_000, ..AllocatorConfig::default() };
    adjust(&mut c);
    c
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_with_the_default_layout() {
    let _ = run(config(|_| {}), 0x5EED_0001, 50_000, 3);
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_at_4096_alignment() {
    let _ = run(config(|c| c.alignment = 4096), 0x5EED_0002, 10_000, 2);
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_with_one_block_batches() {
    let _ = run(
        config(|c| {
            c.refill_target_bytes = 1;
            c.local_cache_target_bytes = 1;
            c.slab_target_bytes = 1;
        }),
        0x5EED_0003,
        10_000,
        4,
    );
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_when_nothing_is_retained() {
    let _ = run(
        config(|c| {
            c.max_bytes = Some(128 * MIB);
            c.retain_bytes = 0;
            c.alignment = 256;
        }),
        0x5EED_0104,
        10_000,
        3,
    );
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_in_an_arena_that_grows() {
    // No cap, and 8 MiB first region: the heap passes the first region and the arena grows
    // regions (which the large requests of up to 20 MiB need anyway).
    let stats = run(
        config(|c| {
            c.max_bytes = None;
            c.region_bytes = 8 * MIB;
        }),
        0x5EED_0005,
        10_000,
        3,
    );
    assert!(stats.regions >= 3 || ops_divisor() > 1, "the arena grew to {} regions", stats.regions);
}

#[test]
fn scribbling_over_the_whole_data_region_never_reaches_the_allocator() {
    let config = config(|c| c.max_bytes = Some(64 * MIB));
    run_model(Model::new(config, 0x5C21_BB1E, 3, 1000), 3_000);
}

#[test]
fn scribbling_over_a_growing_arena_never_reaches_the_allocator() {
    let config = config(|c| {
        c.max_bytes = None;
        c.region_bytes = 4 * MIB;
    });
    let stats = run_model(Model::new(config, 0x5C21_BB1F, 2, 1000), 2_000);
    assert!(stats.regions >= 2 || ops_divisor() > 1, "the arena grew to {} regions", stats.regions);
}
