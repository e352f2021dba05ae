//! Thread caches: batch sizes derived from the configuration, draining, dropping,
//! rebinding to another allocator (no panic: it drains to the first), remote frees that
//! are visible at once, caches that move between threads, and hand-offs (a received
//! block belongs to the receiving cache; a block in flight belongs to no cache).

#![cfg(test)]

mod common;

use common::{KIB, MIB};
use tensor_arena_core::{Allocator, AllocatorConfig, CLASS_SIZES, FreeError, HandoffError, SizeClass, ThreadCache};

/// (refill, limit, drain) of class `c`, from the documented rules: the refill target in
/// blocks, raised to four blocks as far as eight targets allow (the slab's capacity, the
/// rule's third bound, is at least four blocks for every class these tests use).
fn batch_counts(a: &Allocator, c: usize) -> (u64, u64, u64) {
    let stride = a.block_size(c);
    let config = a.config();
    let count = |bytes: usize| (bytes / stride).max(1) as u64;
    let floor = (8 * config.refill_target_bytes / stride).min(4) as u64;
    let refill = count(config.refill_target_bytes).max(floor);
    let limit = count(config.local_cache_target_bytes).max(refill);
    (refill, limit, (refill / 2).max(1))
}

/// (cached in `cache`, central, slabs) of class `c`, checking that the cache's view and
/// the allocator's agree.
fn class_state(a: &Allocator, cache: &ThreadCache, c: usize) -> (u64, u64, u64) {
    let stats = a.stats();
    let class = stats.classes[c];
    assert_eq!(class.cached_blocks, cache.stats().class_blocks[c]);
    assert_eq!(class.cached_bytes, class.cached_blocks * a.block_size(c) as u64);
    assert_eq!(class.central_bytes, class.central_blocks * a.block_size(c) as u64);
    (class.cached_blocks, class.central_blocks, class.slabs)
}

fn check_class_model(config: AllocatorConfig, c: usize) {
    let a = Allocator::new(config).unwrap();
    let mut cache = ThreadCache::new();
    let size = CLASS_SIZES[c];
    let (refill, limit, drain) = batch_counts(&a, c);
    let total = (limit + drain + 1) as usize;
    let mut capacity = None;
    let mut model = 0u64;
    let mut live = Vec::new();
    for _ in 0..total {
        let (_, central_before, _) = class_state(&a, &cache, c);
        live.push(common::alloc(&a, &mut cache, size));
        let (cached, central, slabs) = class_state(&a, &cache, c);
        let cap = *capacity.get_or_insert((cached + central + live.len() as u64) / slabs);
        assert_eq!(cached + central + live.len() as u64, slabs * cap, "class {c}: blocks are conserved");
        if model == 0 {
            let available = if central_before > 0 { central_before } else { cap };
            model = refill.min(available) - 1;
        } else {
            model -= 1;
        }
        assert_eq!(cached, model, "class {c} after allocation {} (refill {refill})", live.len());
    }
    for (i, p) in live.into_iter().enumerate() {
        // SAFETY: `p` is live; freed once.
        unsafe { common::free(&a, &mut cache, p) };
        model += 1;
        if model > limit {
            model -= drain;
        }
        let (cached, _, _) = class_state(&a, &cache, c);
        assert_eq!(cached, model, "class {c} after free {i} (limit {limit}, drain {drain})");
        assert!(cached <= limit);
    }
}

#[test]
fn refill_limit_and_drain_follow_the_configuration() {
    let base = AllocatorConfig { max_bytes: Some(512 * MIB), ..AllocatorConfig::default() };
    // Reference: (.., 256, 384) gave the 64-byte class (then a 128-byte block with its
    // header) refill 2, limit 3, drain 1. Targets of two and three of its (64-byte,
    // header-free) blocks now give refill 4 (the floor: four blocks within eight targets),
    // limit 4 (raised to one refill), drain 2; a one-byte target still gives one block.
    let block = Allocator::new(base).unwrap().block_size(0);
    assert_eq!(block, 64);
    let configs = [
        base,
        AllocatorConfig { refill_target_bytes: 2 * block, local_cache_target_bytes: 3 * block, ..base },
        AllocatorConfig { refill_target_bytes: 1, local_cache_target_bytes: 1, ..base },
        // A local target below the refill: the limit is raised to one refill.
        AllocatorConfig { refill_target_bytes: 64 * KIB, local_cache_target_bytes: 16 * KIB, ..base },
    ];
    let reference = Allocator::new(configs[1]).unwrap();
    assert_eq!(batch_counts(&reference, 0), (4, 4, 2));
    assert_eq!(batch_counts(&Allocator::new(configs[2]).unwrap(), 0), (1, 1, 1));
    for config in configs {
        for c in [0, 3, 10, 19, 24, 35, 45, 60] {
            check_class_model(config, c);
        }
    }
}

#[test]
fn draining_moves_every_cached_block_to_central() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let sizes = [1, 200, 5000, 100_000];
    let ptrs: Vec<_> = sizes.iter().map(|&s| common::alloc(&a, &mut cache, s)).collect();
    for p in ptrs {
        // SAFETY: live; freed once.
        unsafe { common::free(&a, &mut cache, p) };
    }
    let before = a.stats();
    let cached = cache.stats().blocks;
    assert!(cached > 0);
    assert_eq!(before.thread_cache_blocks, cached);
    a.drain_thread_cache(&mut cache);
    let after = a.stats();
    assert_eq!((cache.stats().blocks, cache.stats().bytes, after.thread_cache_blocks), (0, 0, 0));
    // One slab per class, kept as the class's spare: every block is counted centrally.
    assert_eq!(after.slabs, before.slabs);
    assert_eq!(after.central_blocks, before.central_blocks + cached);
    assert_eq!(after.thread_caches, 1, "a drained cache stays bound");
}

#[test]
fn a_dropped_cache_drains_its_blocks_to_central() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    let cached = cache.stats().blocks;
    let before = a.stats();
    assert_eq!((before.thread_caches, before.thread_cache_blocks), (1, cached));
    drop(cache);
    let after = a.stats();
    assert_eq!((after.thread_caches, after.thread_cache_blocks, after.thread_cache_bytes), (0, 0, 0));
    assert_eq!(after.central_blocks, before.central_blocks + cached);
    // The dropped cache's counters are kept.
    assert_eq!((after.allocations_total, after.frees_total), (1, 1));
    // The blocks are not stranded: another cache gets the same block back.
    let mut other = ThreadCache::new();
    assert_eq!(common::alloc(&a, &mut other, 64), p);
}

#[test]
fn a_cache_used_with_a_second_allocator_drains_to_the_first() {
    // Orthotope panics here ("cannot be reused across allocators").
    let a = common::allocator(64 * MIB);
    let b = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    let kept = common::alloc(&a, &mut cache, 64);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    let cached = cache.stats().blocks;
    assert!(cached > 0);
    let blocks_of_a = {
        let s = a.stats();
        s.central_blocks + s.thread_cache_blocks + s.live_allocations
    };
    let q = common::alloc(&b, &mut cache, 64);
    assert!(b.contains(q.as_ptr()));
    assert_eq!(cache.allocator().map(Allocator::id), Some(b.id()));
    let sa = a.stats();
    assert_eq!((sa.thread_caches, sa.thread_cache_blocks), (0, 0));
    assert_eq!(sa.central_blocks + sa.live_allocations, blocks_of_a, "every cached block went back to a");
    assert_eq!((sa.allocations_total, sa.frees_total, sa.live_allocations), (2, 1, 1));
    assert_eq!(b.stats().thread_caches, 1);
    // A block of `a` still frees through the cache (now rebinding it to `a`).
    // SAFETY: live; freed once.
    unsafe {
        common::free(&a, &mut cache, kept);
        assert_eq!(b.stats().live_allocations, 1);
        common::free(&b, &mut cache, q);
    }
    assert_eq!((a.stats().live_allocations, b.stats().live_allocations), (0, 0));
}

#[test]
fn draining_through_another_handle_returns_blocks_to_the_bound_allocator() {
    let a = common::allocator(64 * MIB);
    let b = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    b.drain_thread_cache(&mut cache);
    assert_eq!(cache.stats().blocks, 0);
    assert_eq!(a.stats().thread_cache_blocks, 0);
    assert_eq!(b.stats().central_blocks, 0);
    assert_eq!(cache.allocator().map(Allocator::id), Some(a.id()));
}

#[test]
fn a_fresh_cache_is_unbound_and_binds_on_first_use() {
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    let other = ThreadCache::default();
    assert_ne!(cache.id(), other.id());
    let stats = cache.stats();
    assert_eq!((stats.id, stats.bound, stats.blocks, stats.bytes), (cache.id(), 0, 0, 0));
    assert!(cache.allocator().is_none());
    assert_eq!(a.stats().thread_caches, 0);
    let p = common::alloc(&a, &mut cache, 100);
    let stats = cache.stats();
    assert_eq!(stats.bound, 1);
    assert_eq!(stats.bytes, stats.blocks * a.block_size(1) as u64);
    assert_eq!(a.stats().thread_caches, 1);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, p) };
    assert!(format!("{cache:?}").contains("ThreadCache"));
}

#[test]
fn a_remote_free_is_visible_in_stats_at_once() {
    let a = common::allocator(64 * MIB);
    let mut owner = ThreadCache::new();
    let mut remote = ThreadCache::new();
    let ptrs: Vec<_> = (0..10).map(|i| common::alloc(&a, &mut owner, 64 << (i % 4))).collect();
    let central_before = a.stats().central_blocks;
    for (i, &p) in ptrs.iter().enumerate() {
        // SAFETY: live; freed once.
        unsafe { common::free(&a, &mut remote, p) };
        let stats = a.stats();
        assert_eq!(stats.inbox_blocks, i as u64 + 1, "no remote free is staged invisibly");
        assert_eq!(stats.central_blocks, central_before + i as u64 + 1);
        assert_eq!(stats.remote_frees_total, i as u64 + 1);
        assert_eq!(stats.live_allocations, (ptrs.len() - i - 1) as u64);
    }
    assert_eq!(remote.stats().blocks, 0, "remote frees are not kept by the freeing cache");
    // An allocation served by the owner's cache leaves the inboxes alone; returning
    // blocks of a class to the central pool moves that class's inbox into its slabs,
    // and the total is conserved.
    let q = common::alloc(&a, &mut owner, 64);
    assert_eq!(a.stats().inbox_blocks, 10);
    let before = a.stats();
    a.drain_thread_cache(&mut owner);
    let after = a.stats();
    assert_eq!(after.inbox_blocks, 0);
    assert_eq!(after.central_blocks, before.central_blocks + before.thread_cache_blocks);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut owner, q) };
}

#[test]
fn a_cross_thread_free_makes_the_block_available_to_its_owner() {
    // Reference: an arena of one block; one remote free is enough for reuse.
    let size = MIB;
    let probe = common::allocator(64 * MIB);
    // A slab of one block is exactly the block (no header, no alignment lead).
    let one_slab = probe.usable_size(size);
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(one_slab);
        c.refill_target_bytes = 1;
        c.local_cache_target_bytes = 1;
        c.slab_target_bytes = 1;
    });
    let mut owner = ThreadCache::new();
    let p = common::alloc(&a, &mut owner, size);
    assert!(a.allocate_with_cache(&mut owner, size).is_err(), "one block fills the arena");
    let addr = p.as_ptr() as usize;
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut remote = ThreadCache::new();
            // SAFETY: `addr` is a live block not used by the owner thread meanwhile.
            unsafe { common::free(&a, &mut remote, common::at(addr)) };
        });
    });
    assert_eq!(a.stats().inbox_blocks, 1);
    assert_eq!(common::alloc(&a, &mut owner, size), p);
    a.check_invariants().unwrap();
}

#[test]
fn a_cache_moved_to_another_thread_keeps_working() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    let addr = p.as_ptr() as usize;
    let cache = std::thread::scope(|s| {
        let a = &a;
        s.spawn(move || {
            let p = common::at(addr);
            // SAFETY: `p` is live; freed once by its own (moved) cache.
            unsafe { common::free(a, &mut cache, p) };
            assert_eq!(common::alloc(a, &mut cache, 64), p);
            cache
        })
        .join()
        .unwrap()
    });
    assert_eq!(cache.allocator().map(Allocator::id), Some(a.id()));
    assert_eq!(a.stats().remote_frees_total, 0);
}

#[test]
fn a_cache_outlives_the_allocator_handle_it_is_bound_to() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    drop(a);
    let bound = cache.allocator().cloned().unwrap();
    // SAFETY: `p` is live; the arena is kept mapped by the cache's binding.
    unsafe {
        p.as_ptr().write_bytes(1, 64);
        common::free(&bound, &mut cache, p);
    }
    drop(bound);
    drop(cache);
}

#[test]
fn same_class_churn_stays_in_the_cache() {
    // Reference: default config, 8 x 6,144-byte allocations and frees stay local.
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let ptrs: Vec<_> = (0..8).map(|_| common::alloc(&a, &mut cache, 6144)).collect();
    let c = SizeClass::from_request(6144).unwrap().index();
    let central = a.stats().classes[c].central_blocks;
    for p in ptrs {
        // SAFETY: live; freed once.
        unsafe { common::free(&a, &mut cache, p) };
    }
    assert!(cache.stats().class_blocks[c] >= 8);
    let stats = a.stats();
    assert_eq!(stats.classes[c].cached_blocks, cache.stats().class_blocks[c]);
    assert_eq!(stats.classes[c].central_blocks, central, "nothing went to the central pool");
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn a_received_block_belongs_to_the_receiving_cache() {
    let a = common::allocator(64 * MIB);
    let mut sender = ThreadCache::new();
    let sent = a.allocate_tracked(&mut sender, 5000).unwrap();
    // SAFETY: a live block of 5000 bytes.
    unsafe { common::fill(sent.ptr, 5000, 0x21) };
    // SAFETY: the sender gives the block up.
    let (token, generation) = unsafe { a.hand_off(sent.ptr, sent.generation, 99, &sender) }.unwrap();
    assert_ne!(generation, sent.generation);
    let stats = a.stats();
    assert_eq!((stats.in_flight_count, stats.in_flight_bytes, stats.live_allocations), (1, 5000, 1));
    let c = SizeClass::from_request(5000).unwrap().index();
    let sent_addr = sent.ptr.as_ptr() as usize;
    let received = std::thread::scope(|s| {
        let a = &a;
        s.spawn(move || {
            let mut receiver = ThreadCache::new();
            let got = a.receive(token, &receiver).unwrap();
            assert_eq!((got.allocation.ptr, got.allocation.generation), (common::at(sent_addr), generation));
            assert_eq!((got.requested, got.label), (5000, 99));
            assert_eq!(a.receive(token, &receiver), Err(HandoffError::AlreadyReceived));
            // SAFETY: the receiver holds the block now; checked, then freed once.
            unsafe {
                assert!(common::check(got.allocation.ptr, 5000, 0x21));
                a.deallocate_tracked(&mut receiver, got.allocation.ptr, got.allocation.generation).unwrap();
            }
            // A local free of the receiver: kept in its cache, not sent to an inbox.
            assert_eq!(receiver.stats().class_blocks[c], 1);
            receiver.check_invariants().unwrap();
            receiver
        })
        .join()
        .unwrap()
    });
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.in_flight_count, stats.in_flight_bytes), (0, 0, 0));
    assert_eq!((stats.remote_frees_total, stats.inbox_blocks), (0, 0));
    // The sender's stale handle frees nothing.
    // SAFETY: the block is free; the free must be rejected.
    let stale = unsafe { a.deallocate_tracked(&mut sender, sent.ptr, sent.generation) };
    assert_eq!(stale, Err(FreeError::DoubleFree { addr: sent.ptr.as_ptr() as usize }));
    drop(received);
    sender.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn a_block_in_flight_is_freed_only_by_reclaiming_its_token() {
    let a = common::allocator(64 * MIB);
    let mut sender = ThreadCache::new();
    let mut other = ThreadCache::new();
    for size in [100, 20 * MIB] {
        let sent = a.allocate_tracked(&mut sender, size).unwrap();
        // SAFETY: the sender gives the block up.
        let (token, generation) = unsafe { a.hand_off(sent.ptr, sent.generation, 0, &sender) }.unwrap();
        let addr = sent.ptr.as_ptr() as usize;
        // SAFETY: every free below must be rejected: the block is held by nobody.
        unsafe {
            assert_eq!(a.deallocate_with_cache(&mut sender, sent.ptr), Err(FreeError::DoubleFree { addr }));
            assert_eq!(a.deallocate_with_cache(&mut other, sent.ptr), Err(FreeError::DoubleFree { addr }));
            assert_eq!(a.deallocate_tracked(&mut sender, sent.ptr, generation), Err(FreeError::DoubleFree { addr }));
            assert_eq!(a.deallocate_uncached(sent.ptr, None), Err(FreeError::DoubleFree { addr }));
            assert!(a.reallocate(&mut sender, sent.ptr, size + 1).is_err());
        }
        let stats = a.stats();
        assert_eq!((stats.live_allocations, stats.in_flight_count, stats.in_flight_bytes), (1, 1, size as u64));
        assert_eq!(a.in_flight(token).map(|r| r.requested), Some(size));
        a.check_invariants().unwrap();
        assert_eq!(a.reclaim(token), Ok(size));
        assert_eq!(a.reclaim(token), Err(HandoffError::AlreadyReceived));
        assert_eq!(a.receive(token, &other).map(|r| r.requested), Err(HandoffError::AlreadyReceived));
        let stats = a.stats();
        assert_eq!((stats.live_allocations, stats.in_flight_count, stats.in_flight_bytes), (0, 0, 0));
        // SAFETY: the block was reclaimed (freed); a free must be rejected.
        let again = unsafe { a.deallocate_with_cache(&mut sender, sent.ptr) };
        assert_eq!(again, Err(FreeError::DoubleFree { addr }));
    }
    assert_eq!(a.stats().rejected_frees_total, 2 * 6);
    a.check_invariants().unwrap();
}
