//! The process-global convenience API (`allocate`, `deallocate`, `deallocate_with_size`,
//! `reallocate`, `global_stats`) and the `TensorArenaGlobalAlloc` adapter called directly. Every test
//! holds `SERIAL` and makes its global calls on threads it spawns and joins, so when a
//! test starts no thread cache of the global allocator is alive.

#![cfg(test)]

mod common;

use std::alloc::{GlobalAlloc, Layout};
use std::cell::RefCell;
use std::ptr::NonNull;
use std::sync::{Mutex, MutexGuard, PoisonError};

use common::MIB;
use tensor_arena_core::{
    AllocError, FreeError, ReallocError, SizeClass, TensorArenaGlobalAlloc, allocate, deallocate, deallocate_with_size,
    global_stats, reallocate,
};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs `f` on a new thread and waits until the thread (its TLS destructors included)
/// has finished.
fn on_new_thread<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::spawn(f).join().unwrap()
}

fn stats() -> tensor_arena_core::AllocatorStats {
    global_stats().unwrap()
}

#[test]
fn allocate_and_free_through_the_global_api() {
    let _serial = serial();
    on_new_thread(|| {
        let p = allocate(32).unwrap();
        // SAFETY: `p` is a live 32-byte block; freed once.
        unsafe {
            p.as_ptr().write_bytes(7, 32);
            deallocate(p).unwrap();
        }
        assert_eq!(allocate(32).unwrap(), p, "same-thread reuse");
        // SAFETY: the reused block is live; freed once, then the double free is rejected.
        unsafe {
            deallocate(p).unwrap();
            assert_eq!(deallocate(p), Err(FreeError::DoubleFree { addr: p.as_ptr() as usize }));
        }
        assert_eq!(allocate(0), Err(AllocError::InvalidSize { requested: 0 }));
        assert_eq!(allocate(usize::MAX), Err(AllocError::InvalidSize { requested: usize::MAX }));
    });
}

#[test]
fn a_size_checked_global_free_keeps_a_mismatched_block_live() {
    let _serial = serial();
    on_new_thread(|| {
        let p = allocate(64).unwrap();
        let addr = p.as_ptr() as usize;
        // SAFETY: `p` is live until the correct free.
        unsafe {
            assert_eq!(deallocate_with_size(p, 1), Err(FreeError::SizeMismatch { addr, provided: 1, recorded: 64 }));
            deallocate_with_size(p, 64).unwrap();
        }
    });
}

#[test]
fn foreign_and_forged_pointers_are_rejected_by_the_global_api() {
    let _serial = serial();
    on_new_thread(|| {
        let boxed = Box::new(0u64);
        let heap = NonNull::from(&*boxed).cast::<u8>();
        // A class no other test of this file uses: its neighbours are never live.
        let p = allocate(1500).unwrap();
        let stride = stats().classes[SizeClass::from_request(1500).unwrap().index()].block as isize;
        assert_eq!(stride, 1536, "no header: the block is the class payload");
        // SAFETY: every free below but the last must be rejected.
        unsafe {
            assert!(matches!(deallocate(heap), Err(FreeError::ForeignPointer { .. })));
            assert!(matches!(deallocate(common::offset(p, 1)), Err(FreeError::ForeignPointer { .. })));
            for forged in [common::offset(p, stride), common::offset(p, -stride)] {
                // Never issued: no block starts there yet, or a free block of the cache.
                assert!(matches!(
                    deallocate(forged),
                    Err(FreeError::ForeignPointer { .. } | FreeError::DoubleFree { .. })
                ));
            }
            deallocate(p).unwrap();
        }
    });
}

#[test]
fn a_block_freed_by_an_exiting_thread_is_reused_by_the_next_thread() {
    // Reference: a 70,000-byte block freed by an exiting thread is what the next thread
    // gets. This file uses the 300,000-byte class nowhere else.
    let _serial = serial();
    let first = on_new_thread(|| {
        let p = allocate(300_000).unwrap();
        // SAFETY: live; freed once; the thread then exits with the block in its cache.
        unsafe { deallocate(p).unwrap() };
        p.as_ptr() as usize
    });
    let second = on_new_thread(|| {
        let p = allocate(300_000).unwrap();
        // SAFETY: live; freed once.
        unsafe { deallocate(p).unwrap() };
        p.as_ptr() as usize
    });
    assert_eq!(first, second);
}

#[test]
fn a_block_of_an_exited_thread_freed_elsewhere_is_reused() {
    let _serial = serial();
    let addr = on_new_thread(|| allocate(600_000).unwrap().as_ptr() as usize);
    let before = stats();
    on_new_thread(move || {
        // SAFETY: the block is live; its allocating thread is gone; freed once.
        unsafe { deallocate(common::at(addr)).unwrap() };
    });
    let after = stats();
    assert_eq!(after.remote_frees_total, before.remote_frees_total + 1);
    assert_eq!(after.inbox_blocks, before.inbox_blocks + 1);
    let again = on_new_thread(|| {
        let p = allocate(600_000).unwrap();
        // SAFETY: live; freed once.
        unsafe { deallocate(p).unwrap() };
        p.as_ptr() as usize
    });
    assert_eq!(again, addr);
}

#[test]
fn thread_exit_drains_the_thread_cache() {
    let _serial = serial();
    let base = stats();
    assert_eq!((base.thread_caches, base.thread_cache_blocks), (0, 0));
    for t in 0..16u64 {
        on_new_thread(move || {
            let mut rng = common::Rng::new(t);
            let ptrs: Vec<_> = (0..200).map(|_| allocate(rng.range(1, 100_000)).unwrap()).collect();
            for p in ptrs {
                // SAFETY: live; freed once.
                unsafe { deallocate(p).unwrap() };
            }
            let s = stats();
            assert_eq!(s.thread_caches, 1);
            assert!(s.thread_cache_blocks > 0);
        });
        let s = stats();
        assert_eq!((s.thread_caches, s.thread_cache_blocks, s.thread_cache_bytes), (0, 0, 0), "after thread {t}");
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    let p = allocate(5000).unwrap();
                    // SAFETY: live; freed once.
                    unsafe { deallocate(p).unwrap() };
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    let s = stats();
    assert_eq!((s.thread_caches, s.thread_cache_blocks), (0, 0));
    assert_eq!(s.live_allocations, base.live_allocations);
    assert_eq!(s.allocations_total, base.allocations_total + 16 * 200 + 8);
}

#[test]
fn global_stats_track_large_allocations() {
    let _serial = serial();
    let before = stats();
    on_new_thread(move || {
        let p = allocate(17 * MIB).unwrap();
        let s = stats();
        assert_eq!(s.large_live_allocations, before.large_live_allocations + 1);
        assert_eq!(s.large_live_bytes, before.large_live_bytes + 17 * MIB as u64);
        // SAFETY: live; freed once.
        unsafe { deallocate_with_size(p, 17 * MIB).unwrap() };
    });
    let after = stats();
    assert_eq!(after.large_live_allocations, before.large_live_allocations);
    assert_eq!(after.allocations_total, before.allocations_total + 1);
}

/// Runs `f` from a thread-local destructor that runs after the allocator's own
/// thread cache was destroyed (it is registered first, so it is destroyed last).
fn during_thread_teardown(f: fn()) {
    struct Late(Option<fn()>);
    impl Drop for Late {
        fn drop(&mut self) {
            if let Some(f) = self.0.take() {
                f();
            }
        }
    }
    thread_local! {
        static LATE: RefCell<Late> = const { RefCell::new(Late(None)) };
    }
    on_new_thread(move || {
        LATE.with(|late| late.borrow_mut().0 = Some(f));
        // Now create this thread's allocator cache (registered after LATE).
        let p = allocate(64).unwrap();
        // SAFETY: live; freed once.
        unsafe { deallocate(p).unwrap() };
    });
}

static TEARDOWN_BLOCK: Mutex<usize> = Mutex::new(0);
static TEARDOWN_RESULTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

#[test]
fn frees_during_thread_teardown_go_to_the_inbox_and_allocations_are_refused() {
    let _serial = serial();
    let addr = on_new_thread(|| allocate(2000).unwrap().as_ptr() as usize);
    *TEARDOWN_BLOCK.lock().unwrap() = addr;
    let before = stats();
    during_thread_teardown(|| {
        let addr = *TEARDOWN_BLOCK.lock().unwrap();
        // SAFETY: the block is live and freed once.
        let freed = unsafe { deallocate(common::at(addr)) };
        let allocated = allocate(64).map(|p| p.as_ptr() as usize);
        TEARDOWN_RESULTS.lock().unwrap().push(format!("{freed:?} {allocated:?}"));
    });
    let results = TEARDOWN_RESULTS.lock().unwrap().clone();
    assert_eq!(
        results,
        vec![format!("{:?} {:?}", Ok::<(), FreeError>(()), Err::<usize, _>(AllocError::CacheUnavailable))]
    );
    let after = stats();
    assert_eq!(after.live_allocations, before.live_allocations - 1);
    assert_eq!(after.inbox_blocks, before.inbox_blocks + 1);
    assert_eq!((after.thread_caches, after.thread_cache_blocks), (0, 0));
}

#[test]
fn the_adapter_serves_small_alignments_from_the_arena_and_the_rest_from_the_system() {
    let _serial = serial();
    on_new_thread(|| {
        let heap = TensorArenaGlobalAlloc::new();
        let before = stats();
        let layouts = [
            Layout::new::<u64>(),
            Layout::new::<[u32; 1024]>(),
            Layout::from_size_align(9, 1).unwrap(),
            Layout::from_size_align(100, 64).unwrap(),
        ];
        for layout in layouts {
            // SAFETY: non-zero layouts; each block is written, then freed once.
            unsafe {
                let p = heap.alloc(layout);
                assert!(!p.is_null());
                assert_eq!(p as usize % 64, 0);
                p.write_bytes(0xAB, layout.size());
                heap.dealloc(p, layout);
            }
        }
        let after = stats();
        assert_eq!(after.allocations_total, before.allocations_total + layouts.len() as u64);
        assert_eq!(after.live_allocations, before.live_allocations);
        // Alignment above 64: served by the system allocator.
        let aligned = Layout::from_size_align(256, 128).unwrap();
        // SAFETY: non-zero layout; written, then freed once.
        unsafe {
            let p = heap.alloc(aligned);
            assert!(!p.is_null() && (p as usize).is_multiple_of(128));
            p.write_bytes(1, 256);
            heap.dealloc(p, aligned);
        }
        assert_eq!(stats().allocations_total, after.allocations_total);
        // Zeroed allocation (default method) and realloc work on arena blocks.
        // SAFETY: non-zero layouts; the grown block is freed once with its new layout.
        unsafe {
            let layout = Layout::from_size_align(1000, 8).unwrap();
            let p = heap.alloc_zeroed(layout);
            assert!(std::slice::from_raw_parts(p, 1000).iter().all(|&b| b == 0));
            p.write_bytes(3, 1000);
            let q = heap.realloc(p, layout, 50_000);
            assert!(std::slice::from_raw_parts(q, 1000).iter().all(|&b| b == 3));
            heap.dealloc(q, Layout::from_size_align(50_000, 8).unwrap());
        }
        assert_eq!(stats().live_allocations, before.live_allocations);
    });
}

#[test]
fn the_adapter_reallocates_in_place_within_a_class_and_system_blocks_through_the_system() {
    let _serial = serial();
    on_new_thread(|| {
        let heap = TensorArenaGlobalAlloc::new();
        let before = stats();
        // SAFETY: non-zero layouts; every block is freed once with its current layout.
        unsafe {
            // 2100 and 2500 bytes share the 2560-byte class: the block stays put.
            let layout = Layout::from_size_align(2100, 16).unwrap();
            let p = heap.alloc(layout);
            p.write_bytes(0x42, 2100);
            let q = heap.realloc(p, layout, 2500);
            assert_eq!(q, p, "same class: resized in place");
            assert!(std::slice::from_raw_parts(q, 2100).iter().all(|&b| b == 0x42));
            assert_eq!(stats().live_bytes, before.live_bytes + 2500);
            // Shrinking to another class moves and keeps the prefix.
            let r = heap.realloc(q, Layout::from_size_align(2500, 16).unwrap(), 100);
            assert_ne!(r, q);
            assert!(std::slice::from_raw_parts(r, 100).iter().all(|&b| b == 0x42));
            heap.dealloc(r, Layout::from_size_align(100, 16).unwrap());
            // A block of the system allocator (alignment above 64) is resized by the system.
            let aligned = Layout::from_size_align(256, 128).unwrap();
            let s = heap.alloc(aligned);
            s.write_bytes(9, 256);
            let t = heap.realloc(s, aligned, 4096);
            assert!(!t.is_null() && (t as usize).is_multiple_of(128));
            assert!(std::slice::from_raw_parts(t, 256).iter().all(|&b| b == 9));
            heap.dealloc(t, Layout::from_size_align(4096, 128).unwrap());
        }
        let after = stats();
        assert_eq!((after.live_allocations, after.live_bytes), (before.live_allocations, before.live_bytes));
        // One hand-out for the first block, one for the move; the system block is not ours.
        assert_eq!(after.allocations_total, before.allocations_total + 2);
    });
}

#[test]
fn global_reallocate_resizes_in_place_or_moves_and_rejects_what_is_not_live() {
    let _serial = serial();
    on_new_thread(|| {
        let before = stats();
        let p = allocate(2200).unwrap();
        // SAFETY: `p` is live until reallocated; each pointer is used only while live and
        // freed once; the rejected calls below must change nothing.
        unsafe {
            p.as_ptr().write_bytes(0x17, 2200);
            let q = reallocate(p, 2560).unwrap();
            assert_eq!(q, p, "same class: in place");
            assert_eq!(stats().live_bytes, before.live_bytes + 2560);
            let r = reallocate(q, 9000).unwrap();
            assert_ne!(r, q, "another class: moved");
            assert!(std::slice::from_raw_parts(r.as_ptr(), 2200).iter().all(|&b| b == 0x17));
            assert_eq!(
                (stats().live_allocations, stats().live_bytes),
                (before.live_allocations + 1, before.live_bytes + 9000)
            );
            // The old block was freed by the move.
            assert_eq!(deallocate(q), Err(FreeError::DoubleFree { addr: q.as_ptr() as usize }));
            assert!(matches!(reallocate(q, 100), Err(ReallocError::Free(_))));
            assert_eq!(reallocate(r, 0), Err(ReallocError::Alloc(AllocError::InvalidSize { requested: 0 })));
            let boxed = Box::new(0u64);
            let heap = NonNull::from(&*boxed).cast::<u8>();
            assert!(matches!(reallocate(heap, 100), Err(ReallocError::Free(FreeError::ForeignPointer { .. }))));
            assert!(matches!(reallocate(common::offset(r, 64), 100), Err(ReallocError::Free(_))));
            assert!(std::slice::from_raw_parts(r.as_ptr(), 2200).iter().all(|&b| b == 0x17));
            assert_eq!(stats().live_bytes, before.live_bytes + 9000);
            deallocate_with_size(r, 9000).unwrap();
        }
        let after = stats();
        assert_eq!((after.live_allocations, after.live_bytes), (before.live_allocations, before.live_bytes));
        assert_eq!(after.rejected_frees_total, before.rejected_frees_total + 4);
    });
}

#[test]
fn the_adapter_serves_a_large_layout_and_frees_it() {
    // Reference: 16 MiB + 1 (align 8) raises then restores `large_live_allocations`.
    let _serial = serial();
    on_new_thread(|| {
        let heap = TensorArenaGlobalAlloc::new();
        let layout = Layout::from_size_align(16 * MIB + 1, 8).unwrap();
        let before = stats().large_live_allocations;
        // SAFETY: non-zero layout; freed once.
        unsafe {
            let p = heap.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(stats().large_live_allocations, before + 1);
            heap.dealloc(p, layout);
        }
        assert_eq!(stats().large_live_allocations, before);
    });
}

#[test]
fn an_invalid_free_through_the_adapter_is_counted_not_fatal() {
    let _serial = serial();
    on_new_thread(|| {
        let heap = TensorArenaGlobalAlloc::new();
        let layout = Layout::from_size_align(48, 8).unwrap();
        let before = stats().rejected_frees_total;
        // SAFETY: the block is freed once; the second dealloc is the invalid free under
        // test, which the adapter must reject and survive.
        unsafe {
            let p = heap.alloc(layout);
            heap.dealloc(p, layout);
            heap.dealloc(p, layout);
        }
        assert_eq!(stats().rejected_frees_total, before + 1);
    });
}
