//! Deterministic multi-thread stress: 8 threads with fixed seeds allocate, pass half of
//! their blocks to the next thread to free (cross-thread frees), check fill patterns and
//! a shared overlap map (of whole blocks), while one thread trims and another reads stats;
//! the run pauses between phases (every thread out of the allocator, caches and blocks in
//! flight kept) to check every invariant and that the stats match the live map exactly;
//! afterwards the stats must balance exactly.

#![cfg(test)]

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Barrier, Mutex};

use common::{KIB, MIB, Rng};
use tensor_arena_core::{AllocError, Allocator, MAX_SMALL_SIZE, ThreadCache};

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
    /// Live blocks: start -> end of the whole block (its usable size).
    live: Mutex<BTreeMap<usize, usize>>,
    tally: Tally,
}

impl Shared {
    fn register(&self, block: Sent) {
        let start = block.addr;
        let end = block.addr + self.a.usable_size(block.size);
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
        assert!(self.live.lock().unwrap().remove(&block.addr).is_some());
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

/// One thread's state, kept across phases (the cache stays bound, blocks stay in flight).
struct Worker {
    t: usize,
    rng: Rng,
    cache: ThreadCache,
    issued: u64,
    tx: Option<SyncSender<Sent>>,
    rx: Receiver<Sent>,
}

impl Worker {
    fn run(&mut self, shared: &Shared, rounds: std::ops::Range<usize>, last: bool, start: &Barrier) {
        let t = self.t;
        start.wait();
        for round in rounds {
            let mut keep = Vec::new();
            for i in 0..32 {
                let size = stress_size(&mut self.rng);
                let allocation = match shared.a.allocate_tracked(&mut self.cache, size) {
                    Ok(a) => a,
                    Err(AllocError::OutOfMemory { .. }) => {
                        shared.tally.out_of_memory.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Err(e) => panic!("thread {t}: {e}"),
                };
                shared.tally.allocations.fetch_add(1, Ordering::Relaxed);
                self.issued += 1;
                let block = Sent {
                    addr: allocation.ptr.as_ptr() as usize,
                    size,
                    tag: common::tag_of((t as u64) << 40 | self.issued),
                    generation: allocation.generation,
                };
                // SAFETY: a fresh live block of `size` bytes.
                unsafe { common::fill(allocation.ptr, size, block.tag) };
                shared.register(block);
                let tx = self.tx.as_ref().unwrap_or_else(|| panic!("thread {t}: sender gone"));
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
                shared.release(&mut self.cache, &mut self.rng, block, true);
            }
            while let Ok(block) = self.rx.try_recv() {
                shared.release(&mut self.cache, &mut self.rng, block, false);
            }
            if self.rng.chance(50) {
                shared.a.drain_thread_cache(&mut self.cache);
            }
            if t == 0 && round % 25 == 24 {
                shared.a.trim();
            }
            if t == 1 {
                let stats = shared.a.stats();
                assert!(stats.thread_caches <= THREADS as u64);
            }
        }
        if last {
            drop(self.tx.take());
            for block in self.rx.iter() {
                shared.release(&mut self.cache, &mut self.rng, block, false);
            }
        }
    }
}

/// With every thread out of the allocator: every invariant holds, and the stats count
/// exactly the blocks of the live map (held by threads or in a channel).
fn checkpoint(shared: &Shared, workers: &[Worker], phase: usize) {
    if let Err(e) = shared.a.check_invariants() {
        panic!("after phase {phase}: {e}");
    }
    for w in workers {
        if let Err(e) = w.cache.check_invariants() {
            panic!("after phase {phase}, thread {}: {e}", w.t);
        }
    }
    let live = shared.live.lock().unwrap();
    let stats = shared.a.stats();
    assert_eq!(stats.live_allocations, live.len() as u64, "after phase {phase}");
    let cached: u64 = workers.iter().map(|w| w.cache.stats().blocks).sum();
    assert_eq!(stats.thread_cache_blocks, cached, "after phase {phase}");
    assert_eq!(stats.allocations_total, shared.tally.allocations.load(Ordering::Relaxed), "after phase {phase}");
}

const PHASES: usize = 4;

fn run_ring(a: Allocator, rounds: usize) -> Allocator {
    let shared = Shared { a, live: Mutex::new(BTreeMap::new()), tally: Tally::default() };
    let start = Barrier::new(THREADS);
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| sync_channel::<Sent>(64)).unzip();
    // Thread t sends to thread t + 1 (receiver t + 1).
    let mut senders: Vec<Option<SyncSender<Sent>>> = senders.into_iter().map(Some).collect();
    let mut workers: Vec<Worker> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, rx)| Worker {
            t,
            rng: Rng::new(0xC0FF_EE00 + t as u64),
            cache: ThreadCache::new(),
            issued: 0,
            tx: senders[(t + 1) % THREADS].take(),
            rx,
        })
        .collect();
    for phase in 0..PHASES {
        let rounds = phase * rounds / PHASES..(phase + 1) * rounds / PHASES;
        let last = phase == PHASES - 1;
        workers = std::thread::scope(|s| {
            let handles: Vec<_> = workers
                .into_iter()
                .map(|mut w| {
                    let (shared, start, rounds) = (&shared, &start, rounds.clone());
                    s.spawn(move || {
                        w.run(shared, rounds, last, start);
                        w
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        checkpoint(&shared, &workers, phase);
    }
    drop(workers);
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
    if shared.a.config().max_bytes.is_some() {
        assert!(oom * 100 <= allocations, "{oom} allocations of {allocations} ran out of memory");
    } else {
        assert_eq!(oom, 0, "an arena without a cap ran out of memory");
    }
    shared.a.check_invariants().unwrap();
    shared.a.trim();
    let stats = shared.a.stats();
    assert_eq!((stats.slabs, stats.central_blocks, stats.inbox_blocks), (0, 0, 0));
    assert_eq!(stats.free_span_bytes, stats.carved_bytes);
    shared.a.check_invariants().unwrap();
    shared.a
}

#[test]
fn eight_threads_passing_half_their_blocks_to_a_neighbour_balance_exactly() {
    run_ring(common::allocator(256 * MIB), 120);
}

#[test]
fn eight_threads_with_one_block_batches_and_4096_alignment_balance_exactly() {
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(256 * MIB);
        c.alignment = 4096;
        c.refill_target_bytes = 1;
        c.local_cache_target_bytes = 1;
        c.retain_bytes = 4 * MIB;
    });
    run_ring(a, 40);
}

#[test]
fn eight_threads_in_an_arena_that_grows_balance_exactly() {
    // No cap, an 8 MiB first region: threads add regions while others free blocks of the
    // older ones.
    let a = common::allocator_with(|c| c.region_bytes = 8 * MIB);
    let a = run_ring(a, 60);
    let stats = a.stats();
    assert!(stats.regions >= 3, "the arena grew to {} regions", stats.regions);
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
    a.check_invariants().unwrap();
}
