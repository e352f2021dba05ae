//! Model-based property test: long random sequences of allocations and frees (1 B to
//! 20 MiB, weighted to small; several caches, so some frees are remote; every free API;
//! drains, trims, dropped caches, rejected frees) checked against a shadow map: no two
//! live blocks (headers included) overlap, every pointer is aligned, a pattern written
//! at allocation is intact at free, and the stats agree with the model.

#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;

use common::{MIB, Rng};
use tensor_arena_core::{AllocError, Allocation, Allocator, AllocatorConfig, FreeError, HEADER_SIZE, ThreadCache};

struct Block {
    ptr: NonNull<u8>,
    size: usize,
    tag: u8,
    generation: Option<u32>,
}

struct Model {
    a: Allocator,
    caches: Vec<ThreadCache>,
    /// Live blocks by header address.
    live: BTreeMap<usize, Block>,
    live_bytes: u64,
    reserved: usize,
    reserved_cap: usize,
    rejected: u64,
    issued: u64,
    large_issued: u64,
    peak_reserved: usize,
    /// The last block freed, while no allocation could have reissued it.
    last_freed: Option<NonNull<u8>>,
    rng: Rng,
}

impl Model {
    fn new(config: AllocatorConfig, seed: u64, caches: usize) -> Self {
        Self {
            a: Allocator::new(config).unwrap(),
            caches: (0..caches).map(|_| ThreadCache::new()).collect(),
            live: BTreeMap::new(),
            live_bytes: 0,
            reserved: 0,
            reserved_cap: config.arena_size * 3 / 8,
            rejected: 0,
            issued: 0,
            large_issued: 0,
            peak_reserved: 0,
            last_freed: None,
            rng: Rng::new(seed),
        }
    }

    fn step(&mut self, op: u64) {
        let r = self.rng.below(1000);
        match r {
            0..=529 => self.allocate(op),
            530..=959 => self.free_random(op),
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
        let addr = ptr.as_ptr() as usize;
        assert_eq!(addr % self.a.config().alignment, 0, "op {op}: misaligned {ptr:p}");
        let (start, end) = (addr - HEADER_SIZE, addr + size);
        assert!(self.a.contains(start as *const u8) && self.a.contains((end - 1) as *const u8));
        if let Some((&prev, block)) = self.live.range(..=start).next_back() {
            let prev_end = block.ptr.as_ptr() as usize + block.size;
            assert!(
                prev_end <= start,
                "op {op}: {size} bytes at {ptr:p} overlap {} bytes at {:#x}",
                block.size,
                prev + HEADER_SIZE
            );
        }
        if let Some((&next, block)) = self.live.range(start..).next() {
            assert!(end <= next, "op {op}: {size} bytes at {ptr:p} overlap {} bytes at {:p}", block.size, block.ptr);
        }
        self.issued += 1;
        let tag = common::tag_of(self.issued);
        // SAFETY: a fresh live block of `size` bytes.
        unsafe { common::fill(ptr, size, tag) };
        let generation = tracked.then_some(allocation.generation);
        self.live.insert(start, Block { ptr, size, tag, generation });
        self.live_bytes += size as u64;
        self.reserved += usable;
        self.peak_reserved = self.peak_reserved.max(self.reserved);
        self.large_issued += u64::from(size > tensor_arena_core::MAX_SMALL_SIZE);
        self.last_freed = None;
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
        let base = self.a.arena_base().as_ptr() as usize;
        let probe = base + self.rng.below(self.a.arena_size());
        self.live.range(probe..).next().or_else(|| self.live.iter().next()).map(|(&k, _)| k)
    }

    fn free_random(&mut self, op: u64) {
        let Some(key) = self.random_live() else {
            return;
        };
        let Some(block) = self.live.remove(&key) else {
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
            assert!(
                matches!(result, Err(FreeError::DoubleFree { .. } | FreeError::CorruptHeader { .. })),
                "op {op}: double free of {ptr:p}: {result:?}"
            );
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

    fn check_stats(&self, op: u64) {
        let stats = self.a.stats();
        assert_eq!(stats.live_allocations, self.live.len() as u64, "op {op}");
        assert_eq!(stats.live_bytes, self.live_bytes, "op {op}");
        assert_eq!(stats.rejected_frees_total, self.rejected, "op {op}");
        assert_eq!(stats.allocations_total, self.issued, "op {op}");
        let cached: u64 = self.caches.iter().map(|c| c.stats().blocks).sum();
        assert_eq!(stats.thread_cache_blocks, cached, "op {op}");
        assert_eq!(stats.arena_remaining, stats.arena_size - stats.arena_carved + stats.free_span_bytes);
    }

    fn finish(mut self, ops: u64) {
        // The sequence did exercise what it is meant to.
        let stats = self.a.stats();
        assert!(self.issued > ops / 3, "{} allocations", self.issued);
        assert!(self.large_issued > 0 && stats.remote_frees_total > ops / 20);
        assert!(self.peak_reserved > self.reserved_cap / 2, "peak {}", self.peak_reserved);
        assert!(self.rejected > ops / 100);
        let keys: Vec<usize> = self.live.keys().copied().collect();
        for key in keys {
            let block = self.live.remove(&key).unwrap();
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
        assert_eq!(stats.free_span_bytes, stats.arena_carved);
    }
}

fn run(config: AllocatorConfig, seed: u64, ops: u64, caches: usize) {
    let mut model = Model::new(config, seed, caches);
    for op in 0..ops {
        model.step(op);
        if op % 1000 == 999 {
            model.check_stats(op);
        }
    }
    model.check_stats(ops);
    model.finish(ops);
}

fn config(adjust: impl FnOnce(&mut AllocatorConfig)) -> AllocatorConfig {
    let mut c = AllocatorConfig { arena_size: 256 * MIB, ..AllocatorConfig::default() };
    adjust(&mut c);
    c
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_with_the_default_layout() {
    run(config(|_| {}), 0x5EED_0001, 50_000, 3);
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_at_4096_alignment() {
    run(config(|c| c.alignment = 4096), 0x5EED_0002, 10_000, 2);
}

#[test]
fn random_operations_keep_blocks_disjoint_and_intact_with_one_block_batches() {
    run(
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
    run(
        config(|c| {
            c.arena_size = 128 * MIB;
            c.retain_bytes = 0;
            c.alignment = 256;
        }),
        0x5EED_0004,
        10_000,
        3,
    );
}
