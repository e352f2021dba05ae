//! `free_all_owned_by`: when a worker goes away with live allocations, every block its
//! cache handed out (small and large) is freed, and nothing else: not the blocks it
//! handed off (in flight, or received by another cache, which owns them from then on).

#![cfg(test)]

mod common;

use std::collections::HashSet;

use common::MIB;
use tensor_arena_core::{FreeError, HandoffError, ThreadCache};

#[test]
fn a_dead_workers_live_blocks_are_all_freed_and_only_those() {
    let a = common::allocator(256 * MIB);
    let mut worker = ThreadCache::new();
    let mut survivor = ThreadCache::new();
    let mut rng = common::Rng::new(77);
    let sizes: Vec<usize> = (0..300).map(|_| rng.range(1, 100_000)).chain([3 * MIB, 17 * MIB]).collect();
    let worker_blocks: Vec<_> = sizes.iter().map(|&s| common::alloc(&a, &mut worker, s)).collect();
    let survivor_blocks: Vec<_> = sizes.iter().map(|&s| (common::alloc(&a, &mut survivor, s), s)).collect();
    for &(p, s) in &survivor_blocks {
        // SAFETY: live block of `s` bytes.
        unsafe { common::fill(p, s, 0x42) };
    }
    // Some of the worker's blocks were already freed, locally and remotely.
    let mut expected_bytes: usize = sizes.iter().sum();
    for i in (0..300).step_by(7) {
        let via = if i % 2 == 0 { &mut worker } else { &mut survivor };
        // SAFETY: live; freed once.
        unsafe { common::free(&a, via, worker_blocks[i]) };
        expected_bytes -= sizes[i];
    }
    let expected_blocks = sizes.len() - (0..300).step_by(7).count();
    let before = a.stats();
    a.check_invariants().unwrap();
    // SAFETY: nothing uses the worker's blocks any more.
    let (blocks, bytes) = unsafe { a.free_all_owned_by(&worker) };
    a.check_invariants().unwrap();
    assert_eq!((blocks, bytes), (expected_blocks, expected_bytes));
    let after = a.stats();
    assert_eq!(after.live_allocations, before.live_allocations - blocks as u64);
    assert_eq!(after.live_bytes, before.live_bytes - bytes as u64);
    assert_eq!(after.large_live_allocations, 1, "only the survivor's large block is left");
    for &p in &worker_blocks {
        // SAFETY: every worker block is freed now; a free must be rejected.
        let result = unsafe { a.deallocate_with_cache(&mut survivor, p) };
        assert_eq!(result, Err(FreeError::DoubleFree { addr: p.as_ptr() as usize }));
    }
    // SAFETY: calling it again finds nothing.
    assert_eq!(unsafe { a.free_all_owned_by(&worker) }, (0, 0));
    for (p, s) in survivor_blocks {
        // SAFETY: the survivor's blocks are live and intact; freed once.
        unsafe {
            assert!(common::check(p, s, 0x42));
            a.deallocate_with_size(&mut survivor, p, s).unwrap();
        }
    }
    drop((worker, survivor));
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.live_bytes, stats.thread_cache_blocks), (0, 0, 0));
    a.check_invariants().unwrap();
}

#[test]
fn blocks_freed_for_a_dead_worker_are_reused_without_duplicates() {
    let a = common::allocator(64 * MIB);
    let mut worker = ThreadCache::new();
    let ptrs: Vec<_> = (0..1000).map(|_| common::alloc(&a, &mut worker, 100)).collect();
    let worker_addrs: HashSet<usize> = ptrs.iter().map(|p| p.as_ptr() as usize).collect();
    // SAFETY: nothing uses the worker's blocks any more.
    assert_eq!(unsafe { a.free_all_owned_by(&worker) }.0, 1000);
    drop(worker);
    let carved = a.stats().carved_bytes;
    let mut fresh = ThreadCache::new();
    let again: Vec<_> = (0..1000).map(|_| common::alloc(&a, &mut fresh, 100).as_ptr() as usize).collect();
    let distinct: HashSet<usize> = again.iter().copied().collect();
    assert_eq!(distinct.len(), 1000);
    assert_eq!(a.stats().carved_bytes, carved, "the freed blocks were reused");
    let reused = again.iter().filter(|p| worker_addrs.contains(p)).count();
    assert!(reused > 900, "only {reused} of the worker's blocks were reused");
    fresh.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn a_worker_thread_that_dies_with_live_blocks_can_be_cleaned_up_from_another_thread() {
    let a = common::allocator(64 * MIB);
    let worker = std::thread::scope(|s| {
        s.spawn(|| {
            let mut cache = ThreadCache::new();
            for i in 0..200 {
                let _leaked = common::alloc(&a, &mut cache, 64 + i * 100);
            }
            cache
        })
        .join()
        .unwrap()
    });
    assert_eq!(a.stats().live_allocations, 200);
    // SAFETY: the worker is gone; nobody uses its blocks.
    let (blocks, _) = unsafe { a.free_all_owned_by(&worker) };
    assert_eq!(blocks, 200);
    drop(worker);
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.live_bytes, stats.thread_caches), (0, 0, 0));
    a.check_invariants().unwrap();
}

#[test]
fn a_dead_worker_leaves_its_hand_offs_alone_and_a_receivers_teardown_frees_what_it_received() {
    let a = common::allocator(128 * MIB);
    let mut worker = ThreadCache::new();
    let receiver = ThreadCache::new();
    let sizes = [100, 5000, 3 * MIB, 17 * MIB];
    let mut tokens = Vec::new();
    for &size in &sizes {
        // One block the worker keeps, one it hands off.
        common::alloc(&a, &mut worker, size);
        let sent = a.allocate_tracked(&mut worker, size).unwrap();
        // SAFETY: the worker gives the block up.
        let (token, _) = unsafe { a.hand_off(sent.ptr, sent.generation, size as u64, &worker) }.unwrap();
        tokens.push((token, size));
    }
    // Half of the hand-offs are received before the worker dies, half stay in flight.
    let (received, in_flight) = tokens.split_at(2);
    for &(token, size) in received {
        assert_eq!(a.receive(token, &receiver).map(|r| r.requested), Ok(size));
    }
    let in_flight_bytes: usize = in_flight.iter().map(|&(_, s)| s).sum();
    a.check_invariants().unwrap();
    // SAFETY: the worker is gone; nobody uses its blocks.
    let (blocks, bytes) = unsafe { a.free_all_owned_by(&worker) };
    assert_eq!((blocks, bytes), (sizes.len(), sizes.iter().sum()), "only the blocks it kept");
    drop(worker);
    a.check_invariants().unwrap();
    let stats = a.stats();
    assert_eq!((stats.in_flight_count, stats.in_flight_bytes), (2, in_flight_bytes as u64));
    assert_eq!(stats.live_allocations, 4);
    // Its hand-offs still in flight are orphans now, listed with their tokens.
    let orphans: Vec<_> = a.orphaned_hand_offs().iter().map(|o| (o.token, o.block.requested)).collect();
    assert_eq!(orphans, in_flight);
    // The blocks in flight can still be received (by the survivor) or reclaimed.
    let (token, size) = in_flight[0];
    assert_eq!(a.receive(token, &receiver).map(|r| r.requested), Ok(size));
    let (token, size) = in_flight[1];
    assert_eq!(a.reclaim(token), Ok(size));
    assert_eq!(a.receive(token, &receiver), Err(HandoffError::AlreadyReceived));
    // The receiver's teardown frees the three blocks it received.
    // SAFETY: the receiver is going away; nobody uses its blocks.
    let (blocks, bytes) = unsafe { a.free_all_owned_by(&receiver) };
    assert_eq!((blocks, bytes), (3, 100 + 5000 + 3 * MIB));
    drop(receiver);
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.live_bytes, stats.in_flight_count), (0, 0, 0));
    a.check_invariants().unwrap();
}
