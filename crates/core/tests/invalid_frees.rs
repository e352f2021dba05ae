//! Frees of pointers that are not live blocks of this allocator: foreign pointers are
//! rejected without reading memory, overwritten headers are detected (and the block
//! frees once restored), size mismatches leave the block live; stable error codes.

#![cfg(test)]

mod common;

use std::ptr::NonNull;

use common::MIB;
use tensor_arena_core::{AllocError, FreeError, HEADER_SIZE, InitError, ThreadCache};

/// A 64 KiB mapping with no access rights: reading any of it faults.
struct NoAccess(usize);

impl NoAccess {
    fn new() -> Self {
        // SAFETY: a fresh anonymous mapping touches no existing memory.
        let ptr = unsafe {
            libc::mmap(std::ptr::null_mut(), 1 << 16, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        assert_ne!(ptr, libc::MAP_FAILED);
        Self(ptr as usize)
    }
}

impl Drop for NoAccess {
    fn drop(&mut self) {
        // SAFETY: exactly the mapping made in `new`.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, 1 << 16) };
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
    let base = a.arena_base().as_ptr() as usize;
    let candidates = [
        unreadable.0 + 64,
        unreadable.0 + 4096,
        unreadable.0 + (1 << 15) + 128,
        64,
        4096,
        usize::MAX & !63,
        base,                       // header would sit just below the arena
        base + a.arena_size() + 64, // header just past the end
        base + a.arena_size() + 4096,
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
            c.arena_size = 64 * MIB;
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
    assert_eq!(cache_a.allocator().map(tensor_arena_core::Allocator::id), Some(a.id()));
    // SAFETY: `p` is live in `a`.
    unsafe { common::free(&a, &mut cache_a, p) };
}

/// Overwrites the 64 header bytes before `ptr` with `bytes`, returning the originals.
///
/// # Safety
/// `ptr` must be a live block's user pointer.
unsafe fn overwrite_header(ptr: NonNull<u8>, bytes: [u8; HEADER_SIZE]) -> [u8; HEADER_SIZE] {
    // SAFETY: the header lies just before a live block (caller contract).
    unsafe {
        let header = ptr.as_ptr().sub(HEADER_SIZE).cast::<[u8; HEADER_SIZE]>();
        let saved = header.read();
        header.write(bytes);
        saved
    }
}

fn garbage_headers(rng: &mut common::Rng, copied_from: [u8; HEADER_SIZE]) -> Vec<[u8; HEADER_SIZE]> {
    let mut random = [0u8; HEADER_SIZE];
    for b in &mut random {
        *b = rng.next_u64() as u8;
    }
    vec![[0; HEADER_SIZE], [0xFF; HEADER_SIZE], random, copied_from]
}

#[test]
fn an_overwritten_small_header_is_corrupt_and_the_block_frees_once_restored() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut rng = common::Rng::new(5);
    let p = common::alloc(&a, &mut cache, 200);
    let neighbour = common::alloc(&a, &mut cache, 200);
    // SAFETY: reading the live neighbour's header bytes.
    let neighbour_header = unsafe { neighbour.as_ptr().sub(HEADER_SIZE).cast::<[u8; HEADER_SIZE]>().read() };
    for garbage in garbage_headers(&mut rng, neighbour_header) {
        // SAFETY: `p` is live; its header is restored before the real free.
        unsafe {
            let saved = overwrite_header(p, garbage);
            let result = a.deallocate_with_cache(&mut cache, p);
            assert_eq!(result, Err(FreeError::CorruptHeader { addr: p.as_ptr() as usize }));
            assert_eq!(result.map_err(|e| e.code()), Err("ERR_CORRUPT_HEADER"));
            overwrite_header(p, saved);
        }
    }
    assert_eq!(a.stats().live_allocations, 2);
    // SAFETY: both blocks are live with intact headers.
    unsafe {
        common::free(&a, &mut cache, p);
        common::free(&a, &mut cache, neighbour);
    }
}

#[test]
fn changing_only_the_class_byte_of_a_header_is_detected() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 64);
    // SAFETY: `p` is live; the class byte (offset 32) is restored before the real free.
    unsafe {
        let class = p.as_ptr().sub(HEADER_SIZE).add(32);
        let saved = class.read();
        for forged in [1u8, 5, 67, 68, 200, 255] {
            class.write(forged);
            let result = a.deallocate_with_cache(&mut cache, p);
            assert_eq!(result, Err(FreeError::CorruptHeader { addr: p.as_ptr() as usize }), "class {forged}");
        }
        class.write(saved);
        common::free(&a, &mut cache, p);
    }
}

#[test]
fn an_overwritten_large_header_is_corrupt_and_the_block_frees_once_restored() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let mut rng = common::Rng::new(6);
    let p = common::alloc(&a, &mut cache, 17 * MIB);
    let other = common::alloc(&a, &mut cache, 18 * MIB);
    // SAFETY: reading the live block's header bytes.
    let other_header = unsafe { other.as_ptr().sub(HEADER_SIZE).cast::<[u8; HEADER_SIZE]>().read() };
    for garbage in garbage_headers(&mut rng, other_header) {
        // SAFETY: `p` is live; its header is restored before the real free.
        unsafe {
            let saved = overwrite_header(p, garbage);
            let result = a.deallocate_with_size(&mut cache, p, 17 * MIB);
            assert_eq!(result, Err(FreeError::CorruptHeader { addr: p.as_ptr() as usize }));
            overwrite_header(p, saved);
        }
    }
    assert_eq!(a.stats().large_live_allocations, 2);
    // SAFETY: both blocks are live with intact headers.
    unsafe {
        common::free(&a, &mut cache, p);
        common::free(&a, &mut cache, other);
    }
    assert_eq!(a.stats().large_live_allocations, 0);
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
                assert_eq!(result, Err(FreeError::CorruptHeader { addr: inner.as_ptr() as usize }));
            }
            // SAFETY: as above.
            assert!(unsafe { common::check(p, size, tag) });
        }
        // SAFETY: `p` is live.
        unsafe { common::free(&a, &mut cache, p) };
    }
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
    assert!(matches!(oom, AllocError::OutOfMemory { requested, .. } if requested == 32 * MIB));
    assert_eq!(oom.code(), "ERR_OUT_OF_MEMORY");
    assert!(oom.to_string().contains(&(32 * MIB).to_string()));
    assert_eq!(AllocError::CacheUnavailable.code(), "ERR_CACHE_UNAVAILABLE");
    let init = InitError::InvalidConfig { field: "alignment", reason: "r" };
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
    assert_eq!(FreeError::CorruptHeader { addr: 64 }.code(), "ERR_CORRUPT_HEADER");
    assert_eq!(FreeError::CacheUnavailable.code(), "ERR_CACHE_UNAVAILABLE");
    assert_eq!(FreeError::InitFailed(InitError::MapFailed { size: 1, errno: 12 }).code(), "ERR_MAP_FAILED");
    for e in [mismatch, foreign, double] {
        let text = e.to_string();
        assert!(text.contains("0x"), "{text}");
    }
    assert_eq!(a.stats().rejected_frees_total, 3);
}
