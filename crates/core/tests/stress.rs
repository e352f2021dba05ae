//! Deterministic multi-thread stress: 8 threads with fixed seeds allocate, pass half of
//! their blocks to the next thread to free (cross-thread frees), check fill patterns and
//! a shared overlap map, while one thread trims and another reads stats; afterwards the
//! stats must balance exactly.

#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Barrier, Mutex};

use common::{KIB, MIB, Rng};
use tensor_arena_core::{AllocError, Allocator, HEADER_SIZE, MAX_SMALL_SIZE, ThreadCache};

const THREADS: usize = 8;

#[derive(Clone, Copy)]
struct Sent {
    addr: usize,
    size: usize,
    tag: u8,
    generation: u32,
}

#[derive(Default)]
struct Tally {
    allocations: AtomicU64,
    remote_small_frees: AtomicU64,
    out_of_memory: AtomicU64,
}

struct Shared {
    a: Allocator,
    live: Mutex<BTreeMap<usize, usize>>,
    tally: Tally,
}

impl Shared {
    fn register(&self, block: Sent) {
        let start = block.addr - HEADER_SIZE;
        let end = block.addr + block.size;
        let mut live = self.live.lock().unwrap();
        if let Some((&s, &e)) = live.range(..=start).next_back() {
            assert!(e <= start, "[{start:#x}, {end:#x}) overlaps [{s:#x}, {e:#x})");
        }
        if let Some((&s, &e)) = live.range(start..).next() {
            assert!(end <= s, "[{start:#x}, {end:#x}) overlaps [{s:#x}, {e:#x})");
        }
        live.insert(start, end);
    }

    /// Checks and frees a block; `owner` says whether this thread allocated it.
    fn release(&self, cache: &mut ThreadCache, rng: &mut Rng, block: Sent, owner: bool) {
        let ptr = common::at(block.addr);
        // SAFETY: the block is live and only this thread holds it now.
        let intact = unsafe { common::check(ptr, block.size, block.tag) };
        assert!(intact, "pattern of {:#x} damaged", block.addr);
        assert!(self.live.lock().unwrap().remove(&(block.addr - HEADER_SIZE)).is_some());
        let small = block.size <= MAX_SMALL_SIZE;
        // SAFETY: as above; freed exactly once.
        let (result, remote) = unsafe {
            match rng.below(4) {
                0 => (self.a.deallocate_with_cache(cache, ptr), !owner),
                1 => (self.a.deallocate_with_size(cache, ptr, block.size), !owner),
                2 => (self.a.deallocate_tracked(cache, ptr, block.generation), !owner),
                _ => (self.a.deallocate_uncached(ptr, Some(block.generation)), true),
            }
        };
        assert_eq!(result, Ok(()), "free of {} bytes at {:#x}", block.size, block.addr);
        if remote && small {
            self.tally.remote_small_frees.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn stress_size(rng: &mut Rng) -> usize {
    match rng.below(1000) {
        0 => rng.range(MAX_SMALL_SIZE + 1, 18 * MIB),
        1..=20 => rng.range(64 * KIB, 2 * MIB),
        21..=300 => rng.range(4 * KIB, 64 * KIB),
        _ => rng.range(1, 4 * KIB),
    }
}

fn worker(shared: &Shared, t: usize, rounds: usize, tx: SyncSender<Sent>, rx: &Receiver<Sent>, start: &Barrier) {
    let mut rng = Rng::new(0xC0FF_EE00 + t as u64);
    let mut cache = ThreadCache::new();
    start.wait();
    let mut issued = 0u64;
    for round in 0..rounds {
        let mut keep = Vec::new();
        for i in 0..32 {
            let size = stress_size(&mut rng);
            let allocation = match shared.a.allocate_tracked(&mut cache, size) {
                Ok(a) => a,
                Err(AllocError::OutOfMemory { .. }) => {
                    shared.tally.out_of_memory.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                Err(e) => panic!("thread {t}: {e}"),
            };
            shared.tally.allocations.fetch_add(1, Ordering::Relaxed);
            issued += 1;
            let block = Sent {
                addr: allocation.ptr.as_ptr() as usize,
                size,
                tag: common::tag_of((t as u64) << 40 | issued),
                generation: allocation.generation,
            };
            // SAFETY: a fresh live block of `size` bytes.
            unsafe { common::fill(allocation.ptr, size, block.tag) };
            shared.register(block);
            if i % 2 == 0 {
                match tx.try_send(block) {
                    Ok(()) => {}
                    Err(TrySendError::Full(block) | TrySendError::Disconnected(block)) => keep.push(block),
                }
            } else {
                keep.push(block);
            }
        }
        for block in keep {
            shared.release(&mut cache, &mut rng, block, true);
        }
        while let Ok(block) = rx.try_recv() {
            shared.release(&mut cache, &mut rng, block, false);
        }
        if rng.chance(50) {
            shared.a.drain_thread_cache(&mut cache);
        }
        if t == 0 && round % 25 == 24 {
            shared.a.trim();
        }
        if t == 1 {
            let stats = shared.a.stats();
            assert!(stats.thread_caches <= THREADS as u64);
        }
    }
    drop(tx);
    for block in rx.iter() {
        shared.release(&mut cache, &mut rng, block, false);
    }
}

fn run_ring(a: Allocator, rounds: usize) -> Allocator {
    let shared = Shared { a, live: Mutex::new(BTreeMap::new()), tally: Tally::default() };
    let start = Barrier::new(THREADS);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| sync_channel::<Sent>(64)).unzip();
    std::thread::scope(|s| {
        // Thread t sends to thread t + 1 (receiver t + 1).
        let mut senders: Vec<Option<SyncSender<Sent>>> = senders.into_iter().map(Some).collect();
        for (t, rx) in receivers.into_iter().enumerate() {
            let tx = senders[(t + 1) % THREADS].take().unwrap();
            let (shared, start) = (&shared, &start);
            s.spawn(move || worker(shared, t, rounds, tx, &rx, start));
        }
    });
    let stats = shared.a.stats();
    let allocations = shared.tally.allocations.load(Ordering::Relaxed);
    assert!(shared.live.lock().unwrap().is_empty());
    assert_eq!((stats.live_allocations, stats.live_bytes), (0, 0));
    assert_eq!((stats.large_live_allocations, stats.large_live_bytes), (0, 0));
    assert_eq!((stats.thread_caches, stats.thread_cache_blocks, stats.thread_cache_bytes), (0, 0, 0));
    assert_eq!(stats.allocations_total, allocations);
    assert_eq!(stats.frees_total, allocations);
    assert_eq!(stats.remote_frees_total, shared.tally.remote_small_frees.load(Ordering::Relaxed));
    assert!(stats.remote_frees_total > allocations / 8, "cross-thread frees happened");
    assert_eq!(stats.rejected_frees_total, 0);
    let oom = shared.tally.out_of_memory.load(Ordering::Relaxed);
    assert!(oom * 100 <= allocations, "{oom} allocations of {allocations} ran out of memory");
    shared.a.trim();
    let stats = shared.a.stats();
    assert_eq!((stats.slabs, stats.central_blocks, stats.inbox_blocks), (0, 0, 0));
    assert_eq!(stats.free_span_bytes, stats.arena_carved);
    shared.a
}

#[test]
fn eight_threads_passing_half_their_blocks_to_a_neighbour_balance_exactly() {
    run_ring(common::allocator(256 * MIB), 120);
}

#[test]
fn eight_threads_with_one_block_batches_and_4096_alignment_balance_exactly() {
    let a = common::allocator_with(|c| {
        c.arena_size = 256 * MIB;
        c.alignment = 4096;
        c.refill_target_bytes = 1;
        c.local_cache_target_bytes = 1;
        c.retain_bytes = 4 * MIB;
    });
    run_ring(a, 40);
}

#[test]
fn eight_threads_churning_small_classes_with_size_checked_frees_see_no_errors() {
    // Reference: 8 threads x 256 iterations over {1, 64, 65, 256, 257, 4096}.
    let a = common::allocator(64 * MIB);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let a = &a;
            s.spawn(move || {
                let mut cache = ThreadCache::new();
                for i in 0..256 {
                    for size in [1, 64, 65, 256, 257, 4096] {
                        let p = common::alloc(a, &mut cache, size);
                        let tag = common::tag_of((t * 1000 + i) as u64);
                        // SAFETY: live block of `size` bytes; freed once.
                        unsafe {
                            common::fill(p, size, tag);
                            assert!(common::check(p, size, tag));
                            a.deallocate_with_size(&mut cache, p, size).unwrap();
                        }
                    }
                }
            });
        }
    });
    let stats = a.stats();
    assert_eq!((stats.live_allocations, stats.rejected_frees_total), (0, 0));
    assert_eq!(stats.allocations_total, (THREADS * 256 * 6) as u64);
}
