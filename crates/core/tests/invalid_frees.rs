//! Frees of pointers that are not live blocks of this allocator: foreign pointers are
//! rejected without reading memory, size mismatches leave the block live; stable error
//! codes.
//!
//! Metadata lives out of band (no header before a block any more), so bytes written over
//! user memory cannot forge or corrupt a block: after arbitrary bytes are written over a
//! block, its neighbours, freed and never-issued blocks, every free decides exactly as if
//! nothing had been written. (This replaces the v1 tests that overwrote headers and
//! expected `CorruptHeader`, an error that no longer exists.)

#![cfg(test)]

mod common;

use std::ptr::NonNull;

use common::MIB;
use tensor_arena_core::{AllocError, Allocator, CHUNK_SIZE, FreeError, InitError, ReallocError, ThreadCache};

/// A 64 KiB mapping with no access rights: reading any of it faults.
struct NoAccess(usize);

const NO_ACCESS_LEN: usize = 1 << 16;

#[cfg(unix)]
impl NoAccess {
    fn new() -> Self {
        // SAFETY: a fresh anonymous mapping touches no existing memory.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                NO_ACCESS_LEN,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Self(ptr as usize)
    }
}

#[cfg(unix)]
impl Drop for NoAccess {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, NO_ACCESS_LEN) };
    }
}

#[cfg(windows)]
impl NoAccess {
    fn new() -> Self {
        use windows_sys::Win32::System::Memory::{MEM_RESERVE, PAGE_NOACCESS, VirtualAlloc};
        // SAFETY: a fresh reservation at a system-chosen address touches no existing memory.
        let ptr = unsafe { VirtualAlloc(std::ptr::null(), NO_ACCESS_LEN, MEM_RESERVE, PAGE_NOACCESS) };
        assert!(!ptr.is_null());
        Self(ptr as usize)
    }
}

#[cfg(windows)]
impl Drop for NoAccess {
    fn drop(&mut self) {
        use windows_sys::Win32::System::Memory::{MEM_RELEASE, VirtualFree};
        // SAFETY: exactly the reservation made in `new` (MEM_RELEASE takes size 0).
        unsafe { VirtualFree(self.0 as *mut std::ffi::c_void, 0, MEM_RELEASE) };
    }
}

fn foreign(result: Result<(), FreeError>, ptr: NonNull<u8>) -> bool {
    result == Err(FreeError::ForeignPointer { addr: ptr.as_ptr() as usize })
}

#[test]
fn pointers_outside_the_arena_are_foreign_and_never_read() {
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    let unreadable = NoAccess::new();
    let base = a.ptr_at(0).unwrap().as_ptr() as usize;
    let size = a.stats().max_bytes as usize;
    let candidates = [
        unreadable.0 + 64,
        unreadable.0 + 4096,
        unreadable.0 + (1 << 15) + 128,
        64,
        4096,
        usize::MAX & !63,
        base - 64, // just below the arena (reserved, inaccessible slack)
        base - 4096,
        base + size, // just past the end (the guard page)
        base + size + 64,
        base + size + 4096,
        // Inside the arena but never carved, so not even committed (inaccessible): the
        // block table says no block starts there; the memory is never read.
        base,
        base + CHUNK_SIZE + 64,
        base + size - 64,
    ];
    for addr in candidates {
        let ptr = common::at(addr);
        // SAFETY: the free must reject the pointer without touching it.
        unsafe {
            assert!(foreign(a.deallocate_with_cache(&mut cache, ptr), ptr), "{addr:#x}");
            assert!(foreign(a.deallocate_with_size(&mut cache, ptr, 8), ptr), "{addr:#x}");
            assert!(foreign(a.deallocate_tracked(&mut cache, ptr, 0), ptr), "{addr:#x}");
            assert!(foreign(a.deallocate_uncached(ptr, None), ptr), "{addr:#x}");
        }
    }
    assert_eq!(a.stats().rejected_frees_total, 4 * candidates.len() as u64);
}

#[test]
fn system_heap_and_stack_pointers_are_foreign() {
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    let boxed = Box::new([0u8; 256]);
    let heap = NonNull::from(&boxed[128]);
    let on_stack = [0u64; 32];
    let stack = NonNull::from(&on_stack[8]).cast::<u8>();
    for ptr in [heap, stack] {
        // SAFETY: the free must reject the pointer without touching it.
        let result = unsafe { a.deallocate_with_cache(&mut cache, ptr) };
        assert!(foreign(result, ptr));
    }
    assert_eq!(boxed[128], 0);
}

#[test]
fn misaligned_pointers_into_a_live_block_are_foreign_and_the_block_still_frees() {
    for alignment in [64, 256, 4096] {
        let a = common::allocator_with(|c| {
            c.max_bytes = Some(64 * MIB);
            c.alignment = alignment;
        });
        let mut cache = ThreadCache::new();
        for size in [100, 20 * MIB] {
            let p = common::alloc(&a, &mut cache, size);
            let mut offsets = vec![1, 8, 32, 63];
            if alignment > 64 {
                offsets.extend([64, alignment / 2, alignment - 64]);
            }
            for off in offsets {
                let ptr = common::offset(p, off as isize);
                // SAFETY: the free must reject the pointer without touching it.
                let result = unsafe { a.deallocate_with_cache(&mut cache, ptr) };
                assert!(foreign(result, ptr), "+{off}");
            }
            // SAFETY: `p` is live.
            unsafe { common::free(&a, &mut cache, p) };
        }
    }
}

#[test]
fn a_pointer_of_another_allocator_is_foreign_and_stays_live() {
    let a = common::allocator(16 * MIB);
    let b = common::allocator(16 * MIB);
    let mut cache_a = ThreadCache::new();
    let mut cache_b = ThreadCache::new();
    let p = common::alloc(&a, &mut cache_a, 64);
    // SAFETY: `p` belongs to `a`; `b` must reject it.
    unsafe {
        assert!(foreign(b.deallocate_with_cache(&mut cache_b, p), p));
        assert!(foreign(b.deallocate_with_cache(&mut cache_a, p), p));
    }
    assert_eq!(a.stats().live_allocations, 1);
    assert_eq!(b.stats().rejected_frees_total, 2);
    assert!(cache_b.allocator().is_none(), "a rejected free does not bind");
    assert_eq!(cache_a.allocator().map(Allocator::id), Some(a.id()));
    // SAFETY: `p` is live in `a`.
    unsafe { common::free(&a, &mut cache_a, p) };
}

/// What [`scribble`] writes.
#[derive(Clone, Copy, Debug)]
enum Garbage {
    Zeros,
    Ones,
    Random(u64),
    /// The bytes of a live block (of `stride` bytes), tiled over the range: every block
    /// looks like a copy of that one.
    CopyOf(NonNull<u8>, usize),
}

fn garbage_kinds(seed: u64, live: NonNull<u8>, stride: usize) -> [Garbage; 4] {
    [Garbage::Zeros, Garbage::Ones, Garbage::Random(seed), Garbage::CopyOf(live, stride)]
}

/// The bytes `garbage` repeats over a range.
///
/// # Safety
/// For [`Garbage::CopyOf`], the source must be readable for its length.
unsafe fn tile_of(garbage: Garbage) -> Vec<u8> {
    match garbage {
        Garbage::Zeros => vec![0; 4096],
        Garbage::Ones => vec![0xFF; 4096],
        Garbage::Random(seed) => {
            let mut rng = common::Rng::new(seed);
            (0..4096).map(|_| rng.next_u64() as u8).collect()
        }
        // SAFETY: caller contract.
        Garbage::CopyOf(source, len) => unsafe { std::slice::from_raw_parts(source.as_ptr(), len) }.to_vec(),
    }
}

/// Writes `garbage` over every committed byte of `a`'s arena.
///
/// # Safety
/// No one but the test may use any block of `a` (live blocks' contents are lost); the
/// source of a [`Garbage::CopyOf`] must be a live block of `a`.
unsafe fn scribble_everything(a: &Allocator, garbage: Garbage) {
    // Taken before any write: a copy's source is arena memory too.
    // SAFETY: caller contract.
    let tile = unsafe { tile_of(garbage) };
    for (start, len) in a.committed_ranges() {
        let mut done = 0;
        while done < len {
            let n = tile.len().min(len - done);
            // SAFETY: `[start, start + len)` is committed arena memory that only the test
            // uses (caller contract); `tile` is a separate heap buffer.
            unsafe { std::ptr::copy_nonoverlapping(tile.as_ptr(), start.as_ptr().add(done), n) };
            done += n;
        }
    }
}

#[test]
fn scribbling_over_small_blocks_and_their_neighbours_changes_no_free_decision() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut other = ThreadCache::new();
    let stride = a.usable_size(200);
    // Live blocks, blocks freed locally (in the cache), remotely (in the inbox) and
    // drained to the central pool, and the never-issued blocks around them.
    let ptrs: Vec<_> = (0..12).map(|_| common::alloc(&a, &mut cache, 200)).collect();
    let (live, freed) = ptrs.split_at(6);
    // SAFETY: each freed block is live and freed once.
    unsafe {
        for (i, &p) in freed.iter().enumerate() {
            match i % 3 {
                0 => common::free(&a, &mut cache, p),
                1 => common::free(&a, &mut other, p),
                _ => a.deallocate_uncached(p, None).unwrap(),
            }
        }
    }
    let lowest = ptrs.iter().map(|p| p.as_ptr() as usize).min().unwrap();
    let highest = ptrs.iter().map(|p| p.as_ptr() as usize).max().unwrap();
    let never: Vec<_> = (1..=8)
        .flat_map(|k| [lowest.wrapping_sub(k * stride), highest + k * stride])
        .filter(|&addr| a.contains(addr as *const u8))
        .map(common::at)
        .collect();
    assert!(!never.is_empty());
    let before = a.stats();
    let mut rejected = before.rejected_frees_total;
    for garbage in garbage_kinds(7, live[0], stride) {
        // SAFETY: only this test uses the allocator's memory.
        unsafe { scribble_everything(&a, garbage) };
        // SAFETY: every free below must be rejected and change nothing.
        unsafe {
            for &p in freed {
                let result = a.deallocate_with_cache(&mut cache, p);
                assert_eq!(result, Err(FreeError::DoubleFree { addr: p.as_ptr() as usize }), "{garbage:?}");
                assert!(matches!(a.reallocate(&mut cache, p, 10), Err(ReallocError::Free(_))), "{garbage:?}");
            }
            for &p in &never {
                let result = a.deallocate_with_cache(&mut other, p);
                assert!(
                    matches!(result, Err(FreeError::DoubleFree { .. } | FreeError::ForeignPointer { .. })),
                    "{garbage:?}: never-issued {p:p}: {result:?}"
                );
            }
            for &p in live {
                // The recorded size is out of band too.
                let addr = p.as_ptr() as usize;
                let result = a.deallocate_with_size(&mut cache, p, 201);
                assert_eq!(result, Err(FreeError::SizeMismatch { addr, provided: 201, recorded: 200 }), "{garbage:?}");
                let result = a.deallocate_with_cache(&mut cache, common::offset(p, 64));
                assert!(result.is_err(), "{garbage:?}: a pointer inside {p:p} freed");
            }
        }
        rejected += (2 * freed.len() + never.len() + 2 * live.len()) as u64;
        let stats = a.stats();
        assert_eq!(stats.live_allocations, before.live_allocations, "{garbage:?}");
        assert_eq!(stats.live_bytes, before.live_bytes, "{garbage:?}");
        assert_eq!(stats.rejected_frees_total, rejected, "{garbage:?}");
        cache.check_invariants().unwrap();
        a.check_invariants().unwrap();
    }
    // The live blocks free as if nothing had been written.
    for &p in live {
        // SAFETY: live; freed once.
        unsafe { a.deallocate_with_size(&mut cache, p, 200).unwrap() };
    }
    assert_eq!(a.stats().live_allocations, 0);
    // And the allocator keeps handing out disjoint blocks, each exactly once.
    a.drain_thread_cache(&mut cache);
    a.drain_thread_cache(&mut other);
    let mut seen = std::collections::HashSet::new();
    let again: Vec<_> = (0..3000).map(|_| common::alloc(&a, &mut cache, 200)).collect();
    for &p in &again {
        assert!(seen.insert(p.as_ptr() as usize), "{p:p} handed out twice");
        // SAFETY: a live block of 200 bytes.
        unsafe { common::fill(p, 200, 0x3C) };
    }
    for p in again {
        // SAFETY: live; freed once; the pattern proves no two blocks overlapped.
        unsafe {
            assert!(common::check(p, 200, 0x3C));
            common::free(&a, &mut cache, p);
        }
    }
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn bytes_around_a_block_do_not_decide_its_class() {
    // v1 kept the class in a header byte before the block; now any byte around the
    // block can be anything and the block still frees into its own class.
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut trio: Vec<_> = (0..3).map(|_| common::alloc(&a, &mut cache, 64)).collect();
    trio.sort_unstable();
    let [below, p, above] = [trio[0], trio[1], trio[2]];
    assert_eq!(p.as_ptr() as usize - below.as_ptr() as usize, a.block_size(0), "adjacent blocks");
    let mut other_class = Vec::new();
    for forged in [1u8, 5, 67, 68, 200, 255] {
        // SAFETY: the three blocks are live and used only here.
        unsafe {
            below.as_ptr().write_bytes(forged, above.as_ptr() as usize + 64 - below.as_ptr() as usize);
            a.deallocate_with_size(&mut cache, p, 64).unwrap();
        }
        other_class.push(common::alloc(&a, &mut cache, 65));
        assert!(!other_class.contains(&p), "class {forged}: the block went to another class");
        assert_eq!(common::alloc(&a, &mut cache, 64), p, "class {forged}: the block came back to its class");
    }
    // SAFETY: every block is live and freed once.
    unsafe {
        for q in other_class.into_iter().chain([below, p, above]) {
            common::free(&a, &mut cache, q);
        }
    }
    assert_eq!(a.stats().live_allocations, 0);
    a.check_invariants().unwrap();
}

#[test]
fn scribbling_over_large_blocks_changes_no_free_decision() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 17 * MIB);
    let other = common::alloc(&a, &mut cache, 18 * MIB);
    let gone = common::alloc(&a, &mut cache, 19 * MIB);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, gone) };
    let before = a.stats();
    for garbage in garbage_kinds(8, other, 4096) {
        // SAFETY: only this test uses the allocator's memory.
        unsafe { scribble_everything(&a, garbage) };
        // SAFETY: every free below must be rejected and change nothing.
        unsafe {
            let result = a.deallocate_with_size(&mut cache, p, 17 * MIB + 1);
            let addr = p.as_ptr() as usize;
            assert_eq!(result, Err(FreeError::SizeMismatch { addr, provided: 17 * MIB + 1, recorded: 17 * MIB }));
            let result = a.deallocate_with_cache(&mut cache, gone);
            assert_eq!(result, Err(FreeError::DoubleFree { addr: gone.as_ptr() as usize }), "{garbage:?}");
            for inner in [common::offset(p, 4096), common::offset(other, 64), common::offset(gone, 1 << 20)] {
                let result = a.deallocate_with_cache(&mut cache, inner);
                assert!(
                    matches!(result, Err(FreeError::DoubleFree { .. } | FreeError::ForeignPointer { .. })),
                    "{garbage:?}: {inner:p}: {result:?}"
                );
            }
        }
        let stats = a.stats();
        assert_eq!((stats.large_live_allocations, stats.large_live_bytes), (2, 35 * MIB as u64), "{garbage:?}");
        assert_eq!(stats.free_span_bytes, before.free_span_bytes, "{garbage:?}");
        a.check_invariants().unwrap();
    }
    // SAFETY: both blocks are live; freed once.
    unsafe {
        a.deallocate_with_size(&mut cache, p, 17 * MIB).unwrap();
        common::free(&a, &mut cache, other);
    }
    assert_eq!(a.stats().large_live_allocations, 0);
    // The spans are whole again: one allocation takes all three.
    let all = common::alloc(&a, &mut cache, 54 * MIB);
    assert_eq!(all, p);
    // SAFETY: live; freed once.
    unsafe { common::free(&a, &mut cache, all) };
    a.check_invariants().unwrap();
}

#[test]
fn a_grid_pointer_into_a_payload_is_rejected_and_the_owner_block_is_untouched() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    for size in [10_000, 20 * MIB] {
        let p = common::alloc(&a, &mut cache, size);
        for tag in [0x00, 0xFF, 0x3C] {
            // SAFETY: `p` is a live block of `size` bytes.
            unsafe { common::fill(p, size, tag) };
            for off in [64, 128, 4096] {
                let inner = common::offset(p, off as isize);
                // SAFETY: the free must reject the pointer.
                let result = unsafe { a.deallocate_with_cache(&mut cache, inner) };
                // Fresh memory: no block ever started there.
                assert_eq!(result, Err(FreeError::ForeignPointer { addr: inner.as_ptr() as usize }));
            }
            // SAFETY: as above.
            assert!(unsafe { common::check(p, size, tag) });
        }
        // SAFETY: `p` is live.
        unsafe { common::free(&a, &mut cache, p) };
    }
    a.check_invariants().unwrap();
}

#[test]
fn a_grid_pointer_into_a_block_over_reused_memory_is_rejected() {
    // Memory that held 64-byte blocks, then serves one larger block: the stale entries of
    // the old blocks inside it never make a pointer into it freeable.
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let small: Vec<_> = (0..16 * 1024).map(|_| common::alloc(&a, &mut cache, 64)).collect();
    for &p in &small {
        // SAFETY: live; freed once.
        unsafe { common::free(&a, &mut cache, p) };
    }
    a.drain_thread_cache(&mut cache);
    a.trim();
    assert_eq!(a.stats().slabs, 0, "every slab went back to the span heap");
    let carved = a.stats().carved_bytes;
    let size = 512 * 1024;
    let p = common::alloc(&a, &mut cache, size);
    assert_eq!(a.stats().carved_bytes, carved, "served from the freed slabs");
    // SAFETY: `p` is a live block of `size` bytes.
    unsafe { common::fill(p, size, 0x66) };
    let mut inside = 0;
    for q in small.iter().filter(|q| q.as_ptr() > p.as_ptr() && (q.as_ptr() as usize) < p.as_ptr() as usize + size) {
        inside += 1;
        // SAFETY: the free must reject the pointer.
        let result = unsafe { a.deallocate_with_cache(&mut cache, *q) };
        assert!(matches!(result, Err(FreeError::DoubleFree { .. } | FreeError::ForeignPointer { .. })), "{result:?}");
    }
    assert!(inside > 1000, "only {inside} old blocks inside the new one");
    // SAFETY: `p` is live; checked, then freed once.
    unsafe {
        assert!(common::check(p, size, 0x66));
        a.deallocate_with_size(&mut cache, p, size).unwrap();
    }
    assert_eq!(a.stats().live_allocations, 0);
    a.check_invariants().unwrap();
}

#[test]
fn a_size_mismatch_leaves_a_small_block_live() {
    // Reference: allocate 64, size-checked free with 1 -> SizeMismatch{1, 64}, with 64 -> ok.
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    let addr = p.as_ptr() as usize;
    // SAFETY: `p` is live until the last, correct free.
    unsafe {
        for wrong in [1, 63, 65, 128] {
            assert_eq!(
                a.deallocate_with_size(&mut cache, p, wrong),
                Err(FreeError::SizeMismatch { addr, provided: wrong, recorded: 64 })
            );
        }
        assert_eq!(a.stats().live_allocations, 1);
        a.deallocate_with_size(&mut cache, p, 64).unwrap();
    }
}

#[test]
fn the_size_check_follows_the_latest_request_at_a_reused_address() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 1);
    // SAFETY: `p` is freed once, then the same address is freed as the new block.
    unsafe {
        a.deallocate_with_size(&mut cache, p, 1).unwrap();
        assert_eq!(common::alloc(&a, &mut cache, 64), p);
        assert_eq!(
            a.deallocate_with_size(&mut cache, p, 1),
            Err(FreeError::SizeMismatch { addr: p.as_ptr() as usize, provided: 1, recorded: 64 })
        );
        a.deallocate_with_size(&mut cache, p, 64).unwrap();
    }
}

#[test]
fn every_error_has_its_stable_code() {
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    let zero = a.allocate_with_cache(&mut cache, 0).unwrap_err();
    assert_eq!(zero, AllocError::InvalidSize { requested: 0 });
    assert_eq!(zero.code(), "ERR_INVALID_SIZE");
    let huge = a.allocate_with_cache(&mut cache, usize::MAX).unwrap_err();
    assert_eq!(huge, AllocError::InvalidSize { requested: usize::MAX });
    let oom = a.allocate_with_cache(&mut cache, 32 * MIB).unwrap_err();
    assert_eq!(oom, AllocError::OutOfMemory { requested: 32 * MIB, remaining: 16 * MIB, cap: 16 * MIB });
    assert_eq!(oom.code(), "ERR_OUT_OF_MEMORY");
    assert!(oom.to_string().contains(&(32 * MIB).to_string()));
    assert!(oom.to_string().contains("max_bytes"), "{oom}");
    let system = AllocError::SystemOutOfMemory { requested: 5000, errno: 12 };
    assert_eq!(system.code(), "ERR_OUT_OF_MEMORY");
    assert!(system.to_string().contains("5000") && system.to_string().contains("12"), "{system}");
    assert_eq!(AllocError::CacheUnavailable.code(), "ERR_CACHE_UNAVAILABLE");
    let init = InitError::InvalidConfig { field: "alignment", reason: "r", value: 32 };
    assert_eq!(AllocError::InitFailed(init).code(), "ERR_INVALID_CONFIG");

    let p = common::alloc(&a, &mut cache, 10);
    // SAFETY: `p` is live until the correct free; the others must be rejected.
    let (mismatch, foreign, double) = unsafe {
        let mismatch = a.deallocate_with_size(&mut cache, p, 11).unwrap_err();
        let foreign = a.deallocate_with_cache(&mut cache, common::offset(p, 1)).unwrap_err();
        common::free(&a, &mut cache, p);
        let double = a.deallocate_with_cache(&mut cache, p).unwrap_err();
        (mismatch, foreign, double)
    };
    assert_eq!(mismatch.code(), "ERR_SIZE_MISMATCH");
    assert_eq!(foreign.code(), "ERR_NOT_OWNED");
    assert_eq!(double.code(), "ERR_DOUBLE_FREE");
    assert_eq!(ReallocError::Free(double).code(), "ERR_DOUBLE_FREE");
    assert_eq!(ReallocError::Alloc(oom).code(), "ERR_OUT_OF_MEMORY");
    assert_eq!(FreeError::CacheUnavailable.code(), "ERR_CACHE_UNAVAILABLE");
    assert_eq!(FreeError::InitFailed(InitError::MapFailed { size: 1, errno: 12 }).code(), "ERR_MAP_FAILED");
    for e in [mismatch, foreign, double] {
        let text = e.to_string();
        assert!(text.contains("0x"), "{text}");
    }
    assert_eq!(a.stats().rejected_frees_total, 3);
}
