//! Arena growth and the cap: without a cap (`max_bytes: None`) the arena grows by adding
//! regions and never reports `OutOfMemory` for what the machine can hold; with a cap it
//! fails exactly at the cap (`OutOfMemory { cap }`) and recovers after frees.

#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::ptr::NonNull;

use common::{KIB, MIB, Rng};
use tensor_arena_core::{AllocError, Allocator, CHUNK_SIZE, MAX_SMALL_SIZE, ThreadCache};

/// A live block of a test heap.
struct Block {
    ptr: NonNull<u8>,
    size: usize,
    tag: u8,
}

/// Live blocks by address, with their patterns, checked to be disjoint (whole blocks).
struct Heap<'a> {
    a: &'a Allocator,
    blocks: BTreeMap<usize, Block>,
    bytes: usize,
    issued: u64,
}

impl<'a> Heap<'a> {
    const fn new(a: &'a Allocator) -> Self {
        Self { a, blocks: BTreeMap::new(), bytes: 0, issued: 0 }
    }

    fn allocate(&mut self, cache: &mut ThreadCache, size: usize) -> Result<(), AllocError> {
        let ptr = self.a.allocate_with_cache(cache, size)?;
        let start = ptr.as_ptr() as usize;
        let end = start + self.a.usable_size(size);
        assert!(self.a.contains(ptr.as_ptr()) && self.a.contains((end - 1) as *const u8), "{ptr:p} outside the arena");
        let offset = self.a.offset_of(ptr.as_ptr()).unwrap();
        assert_eq!(self.a.ptr_at(offset), Some(ptr), "offsets name blocks across regions");
        if let Some((&prev, block)) = self.blocks.range(..=start).next_back() {
            assert!(prev + self.a.usable_size(block.size) <= start, "{ptr:p} overlaps the block at {prev:#x}");
        }
        if let Some((&next, _)) = self.blocks.range(start..).next() {
            assert!(end <= next, "{ptr:p} ({size} bytes) overlaps the block at {next:#x}");
        }
        self.issued += 1;
        let tag = common::tag_of(self.issued);
        // SAFETY: a live block of `size` bytes that only the heap uses.
        unsafe { common::fill(ptr, size, tag) };
        self.blocks.insert(start, Block { ptr, size, tag });
        self.bytes += size;
        Ok(())
    }

    /// Checks and frees the block at or after `probe` (or the first one).
    fn free_near(&mut self, cache: &mut ThreadCache, probe: usize) {
        let key = self.blocks.range(probe..).next().or_else(|| self.blocks.iter().next()).map(|(&k, _)| k);
        let Some(block) = key.and_then(|k| self.blocks.remove(&k)) else {
            return;
        };
        // SAFETY: a live block of the heap; checked, then freed once.
        unsafe {
            assert!(common::check(block.ptr, block.size, block.tag), "block at {:p} damaged", block.ptr);
            self.a.deallocate_with_size(cache, block.ptr, block.size).unwrap();
        }
        self.bytes -= block.size;
    }

    fn check_all(&self) {
        for block in self.blocks.values() {
            // SAFETY: a live block of the heap.
            assert!(unsafe { common::check(block.ptr, block.size, block.tag) }, "block at {:p} damaged", block.ptr);
        }
    }

    fn free_all(&mut self, cache: &mut ThreadCache) {
        while !self.blocks.is_empty() {
            self.free_near(cache, 0);
        }
    }

    fn random_address(&self, rng: &mut Rng) -> usize {
        match (self.blocks.first_key_value(), self.blocks.last_key_value()) {
            (Some((&first, _)), Some((&last, _))) => first + rng.below(last - first + 1),
            _ => 0,
        }
    }
}

/// Small blocks of every size range up to 4 MiB, and now and then a large one.
fn mixed_size(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0..=9 => rng.range(MAX_SMALL_SIZE + 1, 20 * MIB),
        10..=39 => rng.range(256 * KIB, 4 * MIB),
        40..=299 => rng.range(4 * KIB, 256 * KIB),
        _ => rng.range(1, 4 * KIB),
    }
}

#[test]
fn an_uncapped_arena_grows_by_regions_to_hold_a_64_mib_heap_of_mixed_blocks() {
    let a = common::allocator_with(|c| c.region_bytes = 8 * MIB);
    let first_region = a.stats().reserved_bytes as usize;
    assert_eq!((first_region, a.stats().regions, a.stats().max_bytes), (8 * MIB, 1, 0));
    let mut cache = ThreadCache::new();
    let mut heap = Heap::new(&a);
    let mut rng = Rng::new(0x6120_0001);
    // Two large blocks for sure, then mixed sizes up to 64 MiB.
    heap.allocate(&mut cache, 17 * MIB).unwrap();
    heap.allocate(&mut cache, MAX_SMALL_SIZE + 1).unwrap();
    while heap.bytes < 64 * MIB {
        let size = mixed_size(&mut rng);
        heap.allocate(&mut cache, size).unwrap_or_else(|e| panic!("{size} bytes with {} live: {e}", heap.bytes));
    }
    heap.check_all();
    let stats = a.stats();
    assert!(stats.regions >= 2, "the arena grew to {} regions", stats.regions);
    assert!(stats.reserved_bytes >= 64 * MIB as u64 && stats.carved_bytes >= 64 * MIB as u64);
    assert_eq!(stats.max_bytes, 0);
    assert_eq!((stats.live_allocations, stats.live_bytes), (heap.blocks.len() as u64, heap.bytes as u64));
    assert!(stats.large_live_allocations >= 2);
    assert!(heap.blocks.values().any(|b| b.size <= 4 * KIB), "small classes too");
    // Blocks live in the later regions too, and their chunks hold them.
    let later: Vec<_> = heap
        .blocks
        .values()
        .filter(|b| b.size <= 4 * KIB && a.offset_of(b.ptr.as_ptr()).unwrap() >= first_region)
        .collect();
    assert!(!later.is_empty(), "no small block beyond the first region");
    for block in later {
        let offset = a.offset_of(block.ptr.as_ptr()).unwrap();
        let (chunk, len) = a.chunk_at(offset).unwrap();
        assert_eq!(len, CHUNK_SIZE);
        let (start, ptr) = (chunk.as_ptr() as usize, block.ptr.as_ptr() as usize);
        assert!(start <= ptr && ptr + block.size <= start + len, "a small block crosses its chunk");
    }
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();

    // Churn with the heap past the first region: frees and allocations of mixed sizes
    // (through two caches, so some frees are remote), the heap staying near 64 MiB.
    let regions_before_churn = stats.regions;
    let mut other = ThreadCache::new();
    for op in 0..20_000u32 {
        let cache = if op % 3 == 0 { &mut other } else { &mut cache };
        if heap.bytes > 64 * MIB || rng.chance(480) {
            let probe = heap.random_address(&mut rng);
            heap.free_near(cache, probe);
        } else {
            let size = mixed_size(&mut rng);
            heap.allocate(cache, size).unwrap_or_else(|e| panic!("op {op}: {size} bytes: {e}"));
        }
        if op % 2000 == 1999 {
            let stats = a.stats();
            assert_eq!((stats.live_allocations, stats.live_bytes), (heap.blocks.len() as u64, heap.bytes as u64));
            a.check_invariants().unwrap_or_else(|e| panic!("op {op}: {e}"));
        }
    }
    heap.check_all();
    let stats = a.stats();
    // A heap of the same size reuses what it freed: churn does not keep growing the arena.
    assert!(
        stats.regions <= regions_before_churn + 1,
        "churn grew the arena from {regions_before_churn} to {} regions",
        stats.regions
    );
    cache.check_invariants().unwrap();
    other.check_invariants().unwrap();
    a.check_invariants().unwrap();

    // Freeing everything returns the live counts to zero and every carved byte to free spans.
    heap.free_all(&mut cache);
    drop((cache, other));
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.live_bytes, stats.large_live_bytes), (0, 0, 0));
    assert_eq!(stats.allocations_total, stats.frees_total);
    a.trim();
    let stats = a.stats();
    assert_eq!((stats.slabs, stats.free_span_bytes), (0, stats.carved_bytes));
    assert_eq!(stats.remaining_bytes, stats.reserved_bytes - stats.carved_bytes + stats.free_span_bytes);
    a.check_invariants().unwrap();
}

#[test]
fn a_capped_arena_fails_at_its_cap_and_recovers_after_frees() {
    let cap = 16 * MIB;
    let a = common::allocator(cap);
    // The page (the cap's rounding): the span of the smallest large request, uncapped.
    let probe = common::allocator_with(|c| c.region_bytes = CHUNK_SIZE);
    let page = probe.usable_size(MAX_SMALL_SIZE + 1) - MAX_SMALL_SIZE;
    let rounded = cap.next_multiple_of(page);
    let stats = a.stats();
    assert_eq!((stats.max_bytes, stats.reserved_bytes, stats.regions), (rounded as u64, rounded as u64, 1));
    let mut cache = ThreadCache::new();
    let mut heap = Heap::new(&a);
    let mut rng = Rng::new(0x6120_0002);
    // Fill with mixed small blocks until the cap refuses one.
    let (failed, error) = loop {
        let size = match rng.below(10) {
            0 => rng.range(256 * KIB, 2 * MIB),
            1..=4 => rng.range(4 * KIB, 256 * KIB),
            _ => rng.range(1, 4 * KIB),
        };
        match heap.allocate(&mut cache, size) {
            Ok(()) => {}
            Err(e) => break (size, e),
        }
    };
    let stats = a.stats();
    match error {
        AllocError::OutOfMemory { requested, remaining, cap } => {
            assert_eq!((requested, cap), (failed, rounded));
            assert_eq!(remaining as u64, stats.remaining_bytes);
        }
        other => panic!("{failed} bytes at the cap: {other:?}"),
    }
    assert_eq!(error.code(), "ERR_OUT_OF_MEMORY");
    assert!(stats.carved_bytes <= rounded as u64 && stats.regions == 1, "the capped arena never grows");
    assert!(heap.bytes >= cap / 2, "only {} bytes fit under a {cap}-byte cap", heap.bytes);
    // Large requests beyond what is left fail the same way, without carving anything.
    let carved = stats.carved_bytes;
    for size in [MAX_SMALL_SIZE + 1, cap + 1] {
        let result = a.allocate_with_cache(&mut cache, size);
        assert!(matches!(result, Err(AllocError::OutOfMemory { cap, .. }) if cap == rounded), "{size}: {result:?}");
    }
    assert_eq!(a.stats().carved_bytes, carved);
    heap.check_all();
    a.check_invariants().unwrap();

    // Free about half the blocks: the request that failed fits again.
    let mut n = 0;
    while heap.bytes > cap / 3 {
        let probe = heap.random_address(&mut rng);
        heap.free_near(&mut cache, probe);
        n += 1;
    }
    assert!(n > 0);
    heap.allocate(&mut cache, failed).unwrap_or_else(|e| panic!("after frees, {failed} bytes: {e}"));
    heap.check_all();
    a.check_invariants().unwrap();

    // Free everything: nothing is live, the whole cap is available again.
    heap.free_all(&mut cache);
    a.drain_thread_cache(&mut cache);
    a.trim();
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.live_bytes, stats.slabs), (0, 0, 0));
    assert_eq!(stats.remaining_bytes, rounded as u64);
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn a_capped_arena_serves_a_block_of_the_whole_cap_once_everything_is_freed() {
    // Everything carved so far is one free span ending where carving stopped, and the rest
    // of the cap was never carved: together they are the whole cap, contiguous, and the
    // allocator reports all of it as remaining. A request of the whole cap must fit; an
    // `OutOfMemory` here is not "at the cap".
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 10 * MIB);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    a.drain_thread_cache(&mut cache);
    a.trim();
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.slabs, stats.remaining_bytes), (0, 0, 16 * MIB as u64));
    let whole = a.allocate_with_cache(&mut cache, 16 * MIB);
    assert!(whole.is_ok(), "nothing live, {} bytes remaining: 16 MiB -> {whole:?}", stats.remaining_bytes);
    if let Ok(p) = whole {
        // SAFETY: live; freed once.
        unsafe { common::free(&a, &mut cache, p) };
    }
    // The same through the large path: a 20 MiB block freed, then 50 MiB of a 64 MiB cap.
    let a = common::allocator(64 * MIB);
    let p = common::alloc(&a, &mut cache, 20 * MIB);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.remaining_bytes), (0, 64 * MIB as u64));
    let big = a.allocate_with_cache(&mut cache, 50 * MIB);
    assert!(big.is_ok(), "nothing live, {} bytes remaining: 50 MiB -> {big:?}", stats.remaining_bytes);
    if let Ok(p) = big {
        // SAFETY: live; freed once.
        unsafe { common::free(&a, &mut cache, p) };
    }
    a.check_invariants().unwrap();
}

#[test]
fn an_uncapped_arena_never_runs_out_for_256_mib_of_untouched_16_mib_blocks() {
    // The default first region (sized from the machine), and a small one that must grow
    // region after region.
    for region_bytes in [0, 16 * MIB] {
        let a = common::allocator_with(|c| c.region_bytes = region_bytes);
        let mut cache = ThreadCache::new();
        let mut blocks: Vec<NonNull<u8>> = Vec::new();
        for i in 0..16 {
            let p = a.allocate_with_cache(&mut cache, 16 * MIB).unwrap_or_else(|e| {
                panic!("region_bytes {region_bytes}: block {i} of 16 MiB ({} MiB live): {e:?}", i * 16)
            });
            // Touch only the first and the last byte.
            // SAFETY: a live block of 16 MiB.
            unsafe {
                p.as_ptr().write(i);
                p.as_ptr().add(16 * MIB - 1).write(i);
            }
            blocks.push(p);
        }
        let mut sorted: Vec<usize> = blocks.iter().map(|p| p.as_ptr() as usize).collect();
        sorted.sort_unstable();
        assert!(sorted.windows(2).all(|w| w[0] + 16 * MIB <= w[1]), "blocks overlap");
        let stats = a.stats();
        assert_eq!((stats.max_bytes, stats.live_allocations, stats.live_bytes), (0, 16, 256 * MIB as u64));
        assert!(stats.reserved_bytes >= 256 * MIB as u64 && stats.carved_bytes >= 256 * MIB as u64);
        if region_bytes != 0 {
            assert!(stats.regions >= 4, "16 MiB first region: grew to {} regions", stats.regions);
        }
        a.check_invariants().unwrap();
        for (i, p) in blocks.into_iter().enumerate() {
            // SAFETY: live; read, then freed once.
            unsafe {
                assert_eq!((p.as_ptr().read(), p.as_ptr().add(16 * MIB - 1).read()), (i as u8, i as u8));
                a.deallocate_with_size(&mut cache, p, 16 * MIB).unwrap();
            }
        }
        drop(cache);
        let stats = a.stats();
        assert_eq!((stats.live_allocations, stats.live_bytes), (0, 0));
        a.check_invariants().unwrap();
    }
}
