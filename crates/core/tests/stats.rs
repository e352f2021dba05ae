//! Statistics: the field lists line up with the values, totals are the sums of the
//! per-class fields, live counts follow exact requested sizes and return to zero, and
//! counters only grow.

#![cfg(test)]

mod common;

use std::collections::HashSet;

use common::{KIB, MIB};
use tensor_arena_core::{
    Allocator, AllocatorStats, BLOCK_METADATA_BYTES, ClassStats, NUM_CLASSES, StatField, StatKind, ThreadCache,
    ThreadCacheStats,
};

fn check_field_list(fields: &[StatField], values: &[(&'static str, u64)]) {
    assert_eq!(fields.len(), values.len());
    let mut names = HashSet::new();
    for (field, (name, _)) in fields.iter().zip(values) {
        assert_eq!(field.name, *name);
        assert!(names.insert(field.name), "duplicate field {}", field.name);
        assert!(!field.doc.is_empty(), "{} has no doc", field.name);
        assert!(field.name.chars().all(|c| c.is_ascii_lowercase() || c == '_'), "{}", field.name);
    }
}

#[test]
fn field_lists_match_field_values() {
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    let _p = common::alloc(&a, &mut cache, 100);
    let stats = a.stats();
    check_field_list(AllocatorStats::FIELDS, &stats.field_values());
    for class in &stats.classes {
        check_field_list(ClassStats::FIELDS, &class.field_values());
    }
    check_field_list(ThreadCacheStats::FIELDS, &cache.stats().field_values());
    let values = stats.field_values();
    let value = |name: &str| values.iter().find(|(n, _)| *n == name).map(|&(_, v)| v);
    assert_eq!(value("live_bytes"), Some(100));
    assert_eq!(value("live_allocations"), Some(1));
    assert_eq!(value("max_bytes"), Some(16 * MIB as u64));
    assert_eq!(value("reserved_bytes"), Some(stats.reserved_bytes));
    assert_eq!(value("regions"), Some(1));
    assert_eq!(value("carved_bytes"), Some(stats.carved_bytes));
    assert_eq!(value("remaining_bytes"), Some(stats.remaining_bytes));
    assert_eq!(value("metadata_bytes"), Some(stats.metadata_bytes));
    assert_eq!(value("thread_caches"), Some(1));
    // The v1 arena fields are gone.
    for gone in ["arena_size", "arena_carved", "arena_remaining"] {
        assert_eq!(value(gone), None, "{gone}");
    }
    let class_values = stats.classes[0].field_values();
    assert!(class_values.contains(&("metadata_per_block", BLOCK_METADATA_BYTES as u64)));
}

#[test]
fn counters_are_the_totals_and_everything_else_is_a_gauge() {
    for field in AllocatorStats::FIELDS {
        let counter = field.name.ends_with("_total");
        assert_eq!(field.kind == StatKind::Counter, counter, "{}", field.name);
    }
    assert!(ClassStats::FIELDS.iter().all(|f| f.kind == StatKind::Gauge));
    let zero = AllocatorStats::default();
    assert!(zero.field_values().iter().all(|&(_, v)| v == 0));
    assert_eq!(zero.classes.len(), NUM_CLASSES);
    assert_eq!(zero, zero.clone());
}

fn check_sums(a: &Allocator, stats: &AllocatorStats) {
    let sum = |f: fn(&ClassStats) -> u64| stats.classes.iter().map(f).sum::<u64>();
    assert_eq!(stats.slabs, sum(|c| c.slabs));
    assert_eq!(stats.central_blocks, sum(|c| c.central_blocks));
    assert_eq!(stats.central_bytes, sum(|c| c.central_bytes));
    assert_eq!(stats.thread_cache_blocks, sum(|c| c.cached_blocks));
    assert_eq!(stats.thread_cache_bytes, sum(|c| c.cached_bytes));
    for (i, class) in stats.classes.iter().enumerate() {
        assert_eq!(class.block, a.block_size(i) as u64);
        assert_eq!(class.payload, tensor_arena_core::CLASS_SIZES[i] as u64);
        // The block-table entries the block spans: one per granule of the class's table
        // (the largest power of two not above the block, 64 B ..= 4 KiB).
        let granule = 1u64 << (63 - class.block.min(4096).leading_zeros());
        assert_eq!(class.metadata_per_block, (class.block * BLOCK_METADATA_BYTES as u64).div_ceil(granule));
        assert_eq!(class.central_bytes, class.central_blocks * class.block);
        assert_eq!(class.cached_bytes, class.cached_blocks * class.block);
        assert_eq!(class.live_block_bytes, class.live_blocks * class.block);
        // A slab holds at least one block; its blocks are live, central or cached.
        let blocks = class.live_blocks + class.central_blocks + class.cached_blocks;
        assert!(class.carved_bytes >= blocks * class.block, "class {i}");
        assert_eq!(class.carved_bytes == 0, class.slabs == 0, "class {i}");
        assert!(class.slabs == 0 || blocks > 0, "class {i}");
    }
    // Nothing moves while a single-threaded test reads: every small live allocation is a
    // live block of its class, and the slabs, large spans and free spans make up the carving.
    assert_eq!(sum(|c| c.live_blocks), stats.live_allocations - stats.large_live_allocations);
    let small_requested = stats.live_bytes - stats.large_live_bytes;
    assert!(sum(|c| c.live_block_bytes) >= small_requested);
    let in_slabs = sum(|c| c.carved_bytes);
    assert!(in_slabs + stats.free_span_bytes <= stats.carved_bytes);
    if stats.large_live_allocations == 0 {
        assert_eq!(in_slabs, stats.in_use_span_bytes());
    }
    assert!(stats.empty_slabs <= stats.slabs);
    assert!(stats.inbox_blocks <= stats.central_blocks);
    // Only the newest region has an uncarved rest; a capped arena is one region of the cap.
    match a.config().max_bytes {
        Some(cap) => {
            // The page (the large path's rounding): the span of the smallest large request.
            let page = a.usable_size(tensor_arena_core::MAX_SMALL_SIZE + 1) - tensor_arena_core::MAX_SMALL_SIZE;
            assert_eq!(stats.max_bytes, cap.next_multiple_of(page) as u64);
            assert_eq!((stats.reserved_bytes, stats.regions), (stats.max_bytes, 1));
            assert_eq!(stats.remaining_bytes, stats.max_bytes - stats.carved_bytes + stats.free_span_bytes);
        }
        None => assert_eq!(stats.max_bytes, 0),
    }
    assert!(stats.regions >= 1 && stats.carved_bytes <= stats.reserved_bytes);
    assert_eq!(stats.remaining_bytes, stats.reserved_bytes - stats.carved_bytes + stats.free_span_bytes);
    assert_eq!(stats.in_use_span_bytes(), stats.carved_bytes - stats.free_span_bytes);
    // Block-table entries of every slab (at least its first block's) and large allocation,
    // and a slab-map word per committed page: never more than a 64-byte-granule table of
    // the carved memory plus the map of the reservation.
    let in_slabs: u64 = stats.classes.iter().map(|c| c.slabs * c.metadata_per_block).sum();
    let least = in_slabs + stats.large_live_allocations * BLOCK_METADATA_BYTES as u64;
    assert!(stats.metadata_bytes >= least, "{} metadata bytes, at least {least}", stats.metadata_bytes);
    let most = stats.carved_bytes / 64 * BLOCK_METADATA_BYTES as u64 + stats.reserved_bytes / 4096 * 4;
    assert!(stats.metadata_bytes <= most, "{} metadata bytes, at most {most}", stats.metadata_bytes);
    assert!(stats.retained_bytes <= stats.free_span_bytes);
    assert!(stats.large_live_allocations <= stats.live_allocations);
    assert!(stats.large_live_bytes <= stats.live_bytes);
    assert_eq!(stats.live_allocations, stats.allocations_total - stats.frees_total);
}

#[test]
fn totals_are_sums_of_class_fields_and_live_counts_follow_requests() {
    totals_and_live_counts(&common::allocator(128 * MIB));
}

#[test]
fn totals_are_sums_of_class_fields_and_live_counts_follow_requests_in_an_arena_that_grows() {
    let a = common::allocator_with(|c| c.region_bytes = 16 * MIB);
    totals_and_live_counts(&a);
    let stats = a.stats();
    assert!(stats.regions >= 3, "{} regions", stats.regions);
}

fn totals_and_live_counts(a: &Allocator) {
    let mut caches = [ThreadCache::new(), ThreadCache::new()];
    let mut rng = common::Rng::new(21);
    let mut live: Vec<(std::ptr::NonNull<u8>, usize)> = Vec::new();
    for step in 0..3000 {
        let c = rng.below(2);
        if !live.is_empty() && rng.chance(450) {
            let (p, size) = live.swap_remove(rng.below(live.len()));
            // SAFETY: live; freed once.
            unsafe { a.deallocate_with_size(&mut caches[c], p, size).unwrap() };
        } else {
            let size = if rng.chance(5) { rng.range(16 * MIB + 1, 18 * MIB) } else { rng.range(1, 200 * KIB) };
            live.push((common::alloc(a, &mut caches[c], size), size));
        }
        if step % 100 == 0 {
            let stats = a.stats();
            check_sums(a, &stats);
            assert_eq!(stats.live_allocations, live.len() as u64);
            assert_eq!(stats.live_bytes, live.iter().map(|&(_, s)| s as u64).sum::<u64>());
            let cached: u64 = caches.iter().map(|c| c.stats().blocks).sum();
            assert_eq!(stats.thread_cache_blocks, cached);
        }
    }
    for (p, size) in live.drain(..) {
        // SAFETY: live; freed once.
        unsafe { a.deallocate_with_size(&mut caches[0], p, size).unwrap() };
    }
    let stats = a.stats();
    check_sums(a, &stats);
    assert_eq!((stats.live_allocations, stats.live_bytes), (0, 0));
    assert!(stats.remote_frees_total > 0);
    for cache in &caches {
        cache.check_invariants().unwrap();
    }
    a.check_invariants().unwrap();
}

#[test]
fn everything_freed_and_drained_leaves_nothing_live_or_cached() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut other = ThreadCache::new();
    let sizes = [1, 64, 65, 4096, 70_000, 3 * MIB, 17 * MIB];
    let ptrs: Vec<_> = sizes.iter().map(|&s| common::alloc(&a, &mut cache, s)).collect();
    for (i, p) in ptrs.into_iter().enumerate() {
        let via = if i % 2 == 0 { &mut cache } else { &mut other };
        // SAFETY: live; freed once.
        unsafe { common::free(&a, via, p) };
    }
    a.drain_thread_cache(&mut cache);
    drop(other);
    let stats = a.stats();
    check_sums(&a, &stats);
    assert_eq!((stats.live_allocations, stats.live_bytes), (0, 0));
    assert_eq!((stats.large_live_allocations, stats.large_live_bytes), (0, 0));
    assert_eq!((stats.thread_cache_blocks, stats.thread_cache_bytes), (0, 0));
    assert_eq!(stats.thread_caches, 1);
    assert_eq!(stats.allocations_total, sizes.len() as u64);
    assert_eq!(stats.frees_total, sizes.len() as u64);
    // Every remaining slab is fully free: trim gives all of them back (blocks still in
    // a remote-free inbox included).
    a.trim();
    let stats = a.stats();
    assert_eq!((stats.slabs, stats.empty_slabs, stats.central_blocks, stats.inbox_blocks), (0, 0, 0, 0));
    assert_eq!(stats.free_span_bytes, stats.carved_bytes);
    check_sums(&a, &stats);
    a.check_invariants().unwrap();
}

#[test]
fn counters_never_go_down() {
    let a = common::allocator(64 * MIB);
    let mut rng = common::Rng::new(8);
    let mut last = a.stats();
    for round in 0..20 {
        let mut cache = ThreadCache::new();
        let ptrs: Vec<_> = (0..50).map(|_| common::alloc(&a, &mut cache, rng.range(1, 20 * KIB))).collect();
        for p in ptrs {
            // SAFETY: live; freed once.
            unsafe { common::free(&a, &mut cache, p) };
        }
        // SAFETY: a misaligned pointer is rejected without being read.
        let rejected = unsafe { a.deallocate_with_cache(&mut cache, common::offset(a.ptr_at(0).unwrap(), 1)) };
        assert!(rejected.is_err());
        if round % 3 == 0 {
            a.trim();
        }
        drop(cache);
        let now = a.stats();
        for ((field, (name, before)), (_, after)) in
            AllocatorStats::FIELDS.iter().zip(last.field_values()).zip(now.field_values())
        {
            if field.kind == StatKind::Counter {
                assert!(after >= before, "{name} went from {before} to {after}");
            }
        }
        assert_eq!(now.allocations_total, 50 * (round + 1));
        assert_eq!(now.rejected_frees_total, round + 1);
        last = now;
    }
    a.check_invariants().unwrap();
}

#[test]
fn large_blocks_are_counted_by_requested_bytes() {
    // Reference: two large blocks, live bytes = their sum; after frees 0 live; the first
    // size again -> one live.
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let (s1, s2) = (16 * MIB + 1, 19 * MIB + 77);
    let p1 = common::alloc(&a, &mut cache, s1);
    let p2 = common::alloc(&a, &mut cache, s2);
    let stats = a.stats();
    assert_eq!((stats.large_live_allocations, stats.large_live_bytes), (2, (s1 + s2) as u64));
    // SAFETY: live; freed once.
    unsafe {
        common::free(&a, &mut cache, p1);
        common::free(&a, &mut cache, p2);
    }
    let stats = a.stats();
    assert_eq!((stats.large_live_allocations, stats.large_live_bytes), (0, 0));
    let free_before = stats.free_span_bytes;
    let p = common::alloc(&a, &mut cache, s1);
    let stats = a.stats();
    assert_eq!((stats.large_live_allocations, stats.large_live_bytes), (1, s1 as u64));
    assert_eq!(stats.free_span_bytes, free_before - a.usable_size(s1) as u64);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    check_sums(&a, &a.stats());
    a.check_invariants().unwrap();
}
