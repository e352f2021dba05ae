//! Concurrency model checks (issue 13), with `loom`: every interleaving, up to a preemption
//! bound, of the class locks, the page lock and its condition variable, the hand-off lock,
//! the cache registry and the remote-free inboxes (see `src/sync.rs` for what is modelled).
//!
//! Run: `RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p tensor-arena-core
//! --release --test 'loom_*'` (`LOOM_MAX_PREEMPTIONS=N` overrides the bound of 3, `LOOM_UNBOUNDED=1` lifts it; each
//! model prints how many executions it explored). Each execution builds a fresh allocator
//! with a 4 MiB cap, one-page slabs and two-block caches, so a handful of operations
//! already goes through refills, drains and inbox drains.
#![cfg(loom)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr, clippy::panic)]

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use loom::thread;
use tensor_arena_core::{Allocator, AllocatorConfig, HandoffError, ThreadCache};

/// Preemption bound unless `LOOM_MAX_PREEMPTIONS` says otherwise.
const DEFAULT_PREEMPTIONS: usize = 3;

/// Runs `f` under loom and prints how many executions it explored.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
    let mut builder = loom::model::Builder::new();
    if std::env::var_os("LOOM_MAX_PREEMPTIONS").is_none() {
        builder.preemption_bound = Some(DEFAULT_PREEMPTIONS);
    }
    if std::env::var_os("LOOM_UNBOUNDED").is_some() {
        builder.preemption_bound = None;
    }
    let bound = builder.preemption_bound;
    let before = EXECUTIONS.load(Ordering::Relaxed);
    let f = std::sync::Arc::new(f);
    builder.check(move || {
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        let f = std::sync::Arc::clone(&f);
        spawn(move || f()).join().unwrap();
    });
    let explored = EXECUTIONS.load(Ordering::Relaxed) - before;
    eprintln!("loom model {name}: {explored} executions (preemption bound {bound:?})");
}

/// `loom::thread::spawn` with a stack deep enough for the allocator's paths (loom's
/// coroutines have small stacks by default; the model's own body runs on one of these too).
fn spawn<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    let handle = thread::Builder::new().stack_size(4 << 20).spawn(f).unwrap();
    // A spawned loom thread joins the schedule at the next switch: without one here, DPOR
    // cannot go back to a point before it existed, and races against it go unexplored.
    thread::yield_now();
    handle
}

fn small_allocator() -> Allocator {
    Allocator::new(AllocatorConfig {
        max_bytes: Some(4 << 20),
        slab_target_bytes: 4096,
        // 64-byte class: refill 2, cache limit 2, drain 1.
        refill_target_bytes: 128,
        local_cache_target_bytes: 128,
        ..AllocatorConfig::default()
    })
    .unwrap()
}

/// Writes `cookie` over the 64-byte block at `ptr` (the caller holds it).
fn stamp(ptr: NonNull<u8>, cookie: u8) {
    // SAFETY: a live 64-byte block held by the caller.
    unsafe { ptr.as_ptr().write_bytes(cookie, 64) };
}

/// Checks that nobody else wrote over the block since `stamp`.
fn check_stamp(ptr: NonNull<u8>, cookie: u8) {
    // SAFETY: as in `stamp`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), 64) };
    assert!(bytes.iter().all(|&b| b == cookie), "block {ptr:p} handed out twice (cookie {cookie})");
}

fn settled(allocator: &Allocator) {
    allocator.check_invariants().unwrap();
    let stats = allocator.stats();
    assert_eq!((stats.live_allocations, stats.in_flight_count), (0, 0), "{stats:?}");
}

/// Two caches refill from and drain to one class's central pool at once: no block is
/// handed out twice, none is lost, the pool's books balance.
#[test]
fn central_pool_exchange_between_two_caches() {
    model("central_pool_exchange_between_two_caches", || {
        let allocator = small_allocator();
        let worker = |cookie: u8, allocator: Allocator| {
            move || {
                let mut cache = ThreadCache::new();
                // Three blocks through a two-block cache: two refills; three frees: drains.
                let blocks: Vec<NonNull<u8>> =
                    (0..3).map(|_| allocator.allocate_with_cache(&mut cache, 64).unwrap()).collect();
                for &ptr in &blocks {
                    stamp(ptr, cookie);
                }
                for &ptr in &blocks {
                    check_stamp(ptr, cookie);
                    // SAFETY: held by this thread, freed once.
                    unsafe { allocator.deallocate_with_cache(&mut cache, ptr) }.unwrap();
                }
                // Dropping the cache drains it to the pool.
            }
        };
        let other = spawn(worker(2, allocator.clone()));
        worker(1, allocator.clone())();
        other.join().unwrap();
        settled(&allocator);
    });
}

/// Another thread frees the owner's blocks (remote frees, pushed on the class inbox) and
/// then allocates, while the owner allocates and frees through its cache: both threads'
/// refills and drains absorb the inbox under the class lock while pushes go on.
#[test]
fn remote_frees_while_the_owner_refills() {
    model("remote_frees_while_the_owner_refills", || {
        let allocator = small_allocator();
        let mut owner = ThreadCache::new();
        let given: Vec<usize> =
            (0..2).map(|_| allocator.allocate_with_cache(&mut owner, 64).unwrap().as_ptr() as usize).collect();
        let remote = {
            let allocator = allocator.clone();
            spawn(move || {
                let mut cache = ThreadCache::new();
                for addr in given {
                    let ptr = NonNull::new(addr as *mut u8).unwrap();
                    // SAFETY: the owner gave these blocks to this thread.
                    unsafe { allocator.deallocate_with_cache(&mut cache, ptr) }.unwrap();
                }
                // Its own refill drains the inbox too, racing the owner's.
                let own = allocator.allocate_with_cache(&mut cache, 64).unwrap();
                stamp(own, 8);
                check_stamp(own, 8);
                // SAFETY: held by this thread, freed once.
                unsafe { allocator.deallocate_with_cache(&mut cache, own) }.unwrap();
            })
        };
        let owning = {
            let allocator = allocator.clone();
            spawn(move || {
                let mine: Vec<NonNull<u8>> =
                    (0..3).map(|_| allocator.allocate_with_cache(&mut owner, 64).unwrap()).collect();
                for &ptr in &mine {
                    stamp(ptr, 7);
                }
                for &ptr in &mine {
                    check_stamp(ptr, 7);
                    // SAFETY: held by this thread, freed once.
                    unsafe { allocator.deallocate_with_cache(&mut owner, ptr) }.unwrap();
                }
                owner
            })
        };
        remote.join().unwrap();
        drop(owning.join().unwrap());
        settled(&allocator);
        let stats = allocator.stats();
        assert_eq!(stats.remote_frees_total, 2, "{stats:?}");
    });
}

/// Two receivers and a reclaim race for one token: exactly one wins, the others get
/// `AlreadyReceived`, and the block is freed exactly once.
#[test]
fn a_hand_off_is_claimed_exactly_once_by_two_receivers_and_a_reclaim() {
    model("a_hand_off_is_claimed_exactly_once_by_two_receivers_and_a_reclaim", || {
        let allocator = small_allocator();
        let mut sender = ThreadCache::new();
        let sent = allocator.allocate_tracked(&mut sender, 64).unwrap();
        // SAFETY: the sender gives the block up.
        let (token, _) = unsafe { allocator.hand_off(sent.ptr, sent.generation, 9, &sender) }.unwrap();
        let receiver = |allocator: Allocator| {
            move || {
                let mut cache = ThreadCache::new();
                match allocator.receive(token, &cache) {
                    Ok(got) => {
                        stamp(got.allocation.ptr, 3);
                        // SAFETY: this thread holds the received block.
                        unsafe {
                            allocator.deallocate_tracked(&mut cache, got.allocation.ptr, got.allocation.generation)
                        }
                        .unwrap();
                        1
                    }
                    Err(HandoffError::AlreadyReceived) => 0,
                    Err(e) => panic!("receive: {e:?}"),
                }
            }
        };
        let first = spawn(receiver(allocator.clone()));
        let second = spawn(receiver(allocator.clone()));
        let reclaimed = match allocator.reclaim(token) {
            Ok(64) => 1,
            Err(HandoffError::AlreadyReceived) => 0,
            other => panic!("reclaim: {other:?}"),
        };
        let winners = reclaimed + first.join().unwrap() + second.join().unwrap();
        assert_eq!(winners, 1, "exactly one claim wins");
        drop(sender);
        settled(&allocator);
    });
}

/// The sender's thread is torn down (`free_all_owned_by`, then its cache dropped) while
/// its hand-off is in flight; a receiver claims the token and an orphan sweeper reclaims
/// whatever is orphaned. Teardown frees only the sender's own block; the hand-off is
/// claimed exactly once.
#[test]
fn teardown_races_an_in_flight_hand_off() {
    model("teardown_races_an_in_flight_hand_off", || {
        let allocator = small_allocator();
        let mut sender = ThreadCache::new();
        let kept = allocator.allocate_tracked(&mut sender, 64).unwrap();
        let sent = allocator.allocate_tracked(&mut sender, 64).unwrap();
        stamp(kept.ptr, 5);
        // SAFETY: the sender gives the block up.
        let (token, _) = unsafe { allocator.hand_off(sent.ptr, sent.generation, 1, &sender) }.unwrap();
        let receiver = {
            let allocator = allocator.clone();
            spawn(move || {
                let mut cache = ThreadCache::new();
                match allocator.receive(token, &cache) {
                    Ok(got) => {
                        stamp(got.allocation.ptr, 6);
                        check_stamp(got.allocation.ptr, 6);
                        // SAFETY: this thread holds the received block.
                        unsafe {
                            allocator.deallocate_tracked(&mut cache, got.allocation.ptr, got.allocation.generation)
                        }
                        .unwrap();
                        1
                    }
                    Err(HandoffError::AlreadyReceived) => 0,
                    Err(e) => panic!("receive: {e:?}"),
                }
            })
        };
        let sweeper = {
            let allocator = allocator.clone();
            spawn(move || {
                let mut reclaimed = 0;
                for orphan in allocator.orphaned_hand_offs() {
                    match allocator.reclaim(orphan.token) {
                        Ok(64) => reclaimed += 1,
                        Err(HandoffError::AlreadyReceived) => {}
                        other => panic!("reclaim: {other:?}"),
                    }
                }
                reclaimed
            })
        };
        // The sender's thread goes away.
        check_stamp(kept.ptr, 5);
        // SAFETY: nothing uses the sender's blocks any more.
        let (freed, bytes) = unsafe { allocator.free_all_owned_by(&sender) };
        assert_eq!((freed, bytes), (1, 64), "teardown frees the kept block, never the hand-off");
        drop(sender);
        let claims = receiver.join().unwrap() + sweeper.join().unwrap();
        if claims == 0 {
            // Neither the receiver (beaten by nobody: impossible) nor the sweeper won.
            panic!("the hand-off was lost");
        }
        assert_eq!(claims, 1, "exactly one claim wins");
        settled(&allocator);
    });
}
