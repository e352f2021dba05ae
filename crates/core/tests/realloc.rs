//! `Allocator::reallocate`: in place within a size class, in place for a large block that
//! grows into free pages after it (the arena top, or a free span) or shrinks (its tail
//! pages go back), otherwise a move that copies the bytes and frees the old block.
//! Rejected calls (a freed, foreign, misaligned or in-flight pointer; size 0; a size that
//! does not fit) change nothing. `live_bytes` is exact after every step.

#![cfg(test)]

mod common;

use std::ptr::NonNull;

use common::{KIB, MIB};
use tensor_arena_core::{AllocError, Allocator, FreeError, ReallocError, SizeClass, ThreadCache};

/// Checks the allocator's live counts against what the test holds.
fn assert_live(a: &Allocator, blocks: &[(NonNull<u8>, usize)]) {
    let stats = a.stats();
    let bytes: usize = blocks.iter().map(|&(_, size)| size).sum();
    assert_eq!((stats.live_allocations, stats.live_bytes), (blocks.len() as u64, bytes as u64));
}

/// Writes `tag` over the first `len` bytes at `ptr`.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn fill(ptr: NonNull<u8>, len: usize, tag: u8) {
    // SAFETY: caller contract.
    unsafe { ptr.as_ptr().write_bytes(tag, len) };
}

/// Whether the first `len` bytes at `ptr` all hold `tag` (compared 64 KiB at a time).
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes.
unsafe fn holds(ptr: NonNull<u8>, len: usize, tag: u8) -> bool {
    let reference = vec![tag; 64 * KIB];
    // SAFETY: caller contract.
    let bytes = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
    bytes.chunks(reference.len()).all(|chunk| chunk == &reference[..chunk.len()])
}

/// Reallocates `ptr` (a live block of `old` bytes, all holding `tag`) to `new` bytes,
/// checks that the first `min(old, new)` bytes were kept, and fills the rest with `tag`.
fn resize(a: &Allocator, cache: &mut ThreadCache, ptr: NonNull<u8>, old: usize, new: usize, tag: u8) -> NonNull<u8> {
    // SAFETY: `ptr` is a live block the test owns; after `Ok` only the result is used.
    let moved = unsafe { a.reallocate(cache, ptr, new) }.unwrap_or_else(|e| panic!("{old} -> {new}: {e}"));
    // SAFETY: the result is live with `new` bytes, the first `min(old, new)` carried over.
    unsafe {
        assert!(holds(moved, old.min(new), tag), "{old} -> {new}: bytes lost");
        fill(moved, new, tag);
    }
    moved
}

#[test]
fn a_resize_within_the_size_class_keeps_the_pointer() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    let mut other = ThreadCache::new();
    for (first, same_class, another_class) in [
        (100, [65, 128, 100], 1),
        (70_000, [65_537, 81_920, 70_000], 100_000),
        (5 * MIB, [4 * MIB + 1, 5 * MIB, 4 * MIB + MIB / 2], 6 * MIB),
    ] {
        let class = SizeClass::from_request(first).unwrap();
        let p = common::alloc(&a, &mut cache, first);
        // SAFETY: a live block of `first` bytes.
        unsafe { fill(p, first, 0x5E) };
        let mut size = first;
        for (i, new) in same_class.into_iter().enumerate() {
            assert_eq!(SizeClass::from_request(new), Some(class));
            let allocations = a.stats().allocations_total;
            // Through the owner's cache, and through another one.
            let via = if i % 2 == 0 { &mut cache } else { &mut other };
            let q = resize(&a, via, p, size, new, 0x5E);
            assert_eq!(q, p, "{size} -> {new} stays in class {}", class.payload_size());
            assert_eq!(a.stats().allocations_total, allocations, "no new hand-out");
            assert_live(&a, &[(p, new)]);
            // The size-checked free follows the latest size.
            // SAFETY: `p` is live; a mismatched free is rejected.
            let stale = unsafe { a.deallocate_with_size(&mut cache, p, size + 1) };
            assert_eq!(
                stale,
                Err(FreeError::SizeMismatch { addr: p.as_ptr() as usize, provided: size + 1, recorded: new })
            );
            size = new;
            // SAFETY: `p` is a live block of `size` bytes.
            unsafe { fill(p, size, 0x5E) };
        }
        // Another class: a move.
        let q = resize(&a, &mut other, p, size, another_class, 0x5E);
        assert_ne!(q, p, "{size} -> {another_class}: another class");
        assert_live(&a, &[(q, another_class)]);
        // SAFETY: live; freed once with its size.
        unsafe { a.deallocate_with_size(&mut cache, q, another_class).unwrap() };
        assert_live(&a, &[]);
    }
    cache.check_invariants().unwrap();
    other.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn a_large_block_at_the_top_grows_in_place() {
    for capped in [true, false] {
        let a = common::allocator_with(|c| {
            c.max_bytes = capped.then_some(128 * MIB);
            c.region_bytes = 128 * MIB;
        });
        let mut cache = ThreadCache::new();
        let p = common::alloc(&a, &mut cache, 17 * MIB);
        // SAFETY: a live block of 17 MiB.
        unsafe { fill(p, 17 * MIB, 0x71) };
        let carved = a.stats().carved_bytes;
        // Nothing follows it: the arena's top pages are taken in place.
        let q = resize(&a, &mut cache, p, 17 * MIB, 40 * MIB, 0x71);
        assert_eq!(q, p, "capped {capped}: grew in place");
        let stats = a.stats();
        assert_eq!(stats.carved_bytes, carved + 23 * MIB as u64, "capped {capped}");
        assert_eq!((stats.large_live_allocations, stats.large_live_bytes), (1, 40 * MIB as u64));
        assert_eq!(stats.allocations_total, 1, "no new hand-out");
        assert_live(&a, &[(p, 40 * MIB)]);
        // The new pages are usable; the size-checked free knows the new size.
        // SAFETY: a live block of 40 MiB.
        unsafe { fill(p, 40 * MIB, 0x72) };
        let q = resize(&a, &mut cache, p, 40 * MIB, 128 * MIB, 0x72);
        assert_eq!(q, p, "capped {capped}: grew to the whole region in place");
        assert_live(&a, &[(p, 128 * MIB)]);
        if capped {
            // Past the cap: refused, nothing changed.
            // SAFETY: `p` is live; a refused resize leaves it as it was.
            let refused = unsafe { a.reallocate(&mut cache, p, 128 * MIB + 1) };
            assert!(matches!(refused, Err(ReallocError::Alloc(AllocError::OutOfMemory { .. }))), "{refused:?}");
            assert_live(&a, &[(p, 128 * MIB)]);
            // SAFETY: still live and intact.
            assert!(unsafe { holds(p, 40 * MIB, 0x72) });
        }
        // SAFETY: live; freed once with its latest size.
        unsafe { a.deallocate_with_size(&mut cache, p, 128 * MIB).unwrap() };
        assert_live(&a, &[]);
        a.check_invariants().unwrap();
    }
}

#[test]
fn a_large_block_grows_in_place_into_a_free_span_after_it_and_moves_when_it_cannot() {
    let a = common::allocator(256 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 17 * MIB);
    let next = common::alloc(&a, &mut cache, 20 * MIB);
    let fence = common::alloc(&a, &mut cache, 17 * MIB);
    // SAFETY: live blocks the test owns; `next` is freed once.
    unsafe {
        fill(p, 17 * MIB, 0x11);
        common::free(&a, &mut cache, next);
    }
    let carved = a.stats().carved_bytes;
    // The 20 MiB freed right after `p`: growing by up to that much stays in place.
    let q = resize(&a, &mut cache, p, 17 * MIB, 37 * MIB, 0x11);
    assert_eq!(q, p, "grew into the free span after it");
    assert_eq!(a.stats().carved_bytes, carved, "nothing carved");
    assert_live(&a, &[(p, 37 * MIB), (fence, 17 * MIB)]);
    // Now `fence` follows it directly: growing further moves the block.
    let moved = resize(&a, &mut cache, p, 37 * MIB, 40 * MIB, 0x11);
    assert_ne!(moved, p, "a live block follows: moved");
    assert_live(&a, &[(moved, 40 * MIB), (fence, 17 * MIB)]);
    // SAFETY: the old block was freed by the move; its free is rejected.
    let old = unsafe { a.deallocate_with_cache(&mut cache, p) };
    assert_eq!(old, Err(FreeError::DoubleFree { addr: p.as_ptr() as usize }));
    let stats = a.stats();
    assert_eq!((stats.allocations_total, stats.frees_total), (4, 2), "the move is an allocation and a free");
    // SAFETY: live; freed once.
    unsafe {
        common::free(&a, &mut cache, moved);
        common::free(&a, &mut cache, fence);
    }
    assert_live(&a, &[]);
    a.check_invariants().unwrap();
}

#[test]
fn shrinking_a_large_block_keeps_the_pointer_and_returns_the_tail_pages() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 40 * MIB);
    let fence = common::alloc(&a, &mut cache, 17 * MIB);
    // SAFETY: a live block of 40 MiB.
    unsafe { fill(p, 40 * MIB, 0x40) };
    let before = a.stats();
    let q = resize(&a, &mut cache, p, 40 * MIB, 20 * MIB + 5, 0x40);
    assert_eq!(q, p, "shrunk in place");
    let after = a.stats();
    let tail = (a.usable_size(40 * MIB) - a.usable_size(20 * MIB + 5)) as u64;
    assert_eq!(after.free_span_bytes, before.free_span_bytes + tail, "the tail pages are free");
    assert_eq!(after.carved_bytes, before.carved_bytes);
    assert_live(&a, &[(p, 20 * MIB + 5), (fence, 17 * MIB)]);
    // The tail serves another block without carving.
    let other = common::alloc(&a, &mut cache, 18 * MIB);
    let (start, end) = (p.as_ptr() as usize + a.usable_size(20 * MIB + 5), p.as_ptr() as usize + 40 * MIB);
    let at = other.as_ptr() as usize;
    assert!(start <= at && at + 18 * MIB <= end, "{at:#x} outside the returned tail [{start:#x}, {end:#x})");
    assert_eq!(a.stats().carved_bytes, before.carved_bytes);
    // Shrinking within the same pages changes only the size.
    let q = resize(&a, &mut cache, p, 20 * MIB + 5, 20 * MIB + 1, 0x40);
    assert_eq!(q, p);
    // Shrinking to a small size moves the prefix to a small block.
    let small = resize(&a, &mut cache, p, 20 * MIB + 1, 3000, 0x40);
    assert_ne!(small, p);
    assert_live(&a, &[(small, 3000), (fence, 17 * MIB), (other, 18 * MIB)]);
    assert_eq!(a.stats().large_live_allocations, 2);
    // SAFETY: live; freed once.
    unsafe {
        a.deallocate_with_size(&mut cache, small, 3000).unwrap();
        common::free(&a, &mut cache, fence);
        common::free(&a, &mut cache, other);
    }
    assert_live(&a, &[]);
    a.check_invariants().unwrap();
}

#[test]
fn a_move_copies_the_bytes_between_any_kinds_of_block() {
    let a = common::allocator(128 * MIB);
    let mut cache = ThreadCache::new();
    // small -> bigger class -> large -> small.
    let steps = [100, 5000, 300 * KIB, 20 * MIB, 4 * MIB, 1000];
    let mut p = common::alloc(&a, &mut cache, steps[0]);
    // SAFETY: a live block of `steps[0]` bytes.
    unsafe { fill(p, steps[0], 0x9A) };
    for w in steps.windows(2) {
        let (old, new) = (w[0], w[1]);
        let before = a.stats();
        let q = resize(&a, &mut cache, p, old, new, 0x9A);
        assert_ne!(q, p, "{old} -> {new}: another class");
        // SAFETY: `q` is live with `new` bytes; the old block was freed by the move.
        unsafe {
            fill(q, new, 0x9A);
            let old_free = a.deallocate_with_cache(&mut cache, p);
            assert_eq!(old_free, Err(FreeError::DoubleFree { addr: p.as_ptr() as usize }), "{old} -> {new}");
        }
        let after = a.stats();
        assert_eq!(after.allocations_total, before.allocations_total + 1);
        assert_eq!(after.frees_total, before.frees_total + 1);
        assert_live(&a, &[(q, new)]);
        p = q;
    }
    // SAFETY: live; freed once.
    unsafe { a.deallocate_with_size(&mut cache, p, 1000).unwrap() };
    assert_live(&a, &[]);
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn reallocating_what_is_not_a_live_block_is_rejected_and_changes_nothing() {
    let a = common::allocator(128 * MIB);
    let b = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    let live = common::alloc(&a, &mut cache, 1000);
    let live_large = common::alloc(&a, &mut cache, 17 * MIB);
    let freed = common::alloc(&a, &mut cache, 1000);
    let freed_large = common::alloc(&a, &mut cache, 18 * MIB);
    let sent = a.allocate_tracked(&mut cache, 2000).unwrap();
    let of_b = common::alloc(&b, &mut ThreadCache::new(), 64);
    // SAFETY: live blocks the test owns; each freed once; the sender gives `sent` up.
    let token = unsafe {
        fill(live, 1000, 0x3E);
        fill(live_large, 17 * MIB, 0x3F);
        common::free(&a, &mut cache, freed);
        common::free(&a, &mut cache, freed_large);
        a.hand_off(sent.ptr, sent.generation, 0, &cache).unwrap().0
    };
    let boxed = Box::new([0u8; 128]);
    let heap = NonNull::from(&boxed[64]);
    let before = a.stats();
    let cached = cache.stats();
    let cases = [
        (freed, "a freed block (in the cache)"),
        (freed_large, "a freed large block"),
        (sent.ptr, "a block in flight"),
        (heap, "a system heap pointer"),
        (of_b, "a block of another allocator"),
        (common::offset(live, 64), "a grid pointer inside a live block"),
        (common::offset(live, 1), "a misaligned pointer"),
        (common::offset(live_large, 4096), "a pointer inside a large block"),
    ];
    for (ptr, what) in cases {
        for new in [10, 1000, 5000, 20 * MIB] {
            // SAFETY: each call must be rejected without touching anything.
            let result = unsafe { a.reallocate(&mut cache, ptr, new) };
            assert!(matches!(result, Err(ReallocError::Free(_))), "{what} -> {new}: {result:?}");
        }
    }
    let after = a.stats();
    assert_eq!(after.rejected_frees_total, before.rejected_frees_total + cases.len() as u64 * 4);
    assert_eq!(cache.stats(), cached, "the cache is as it was");
    // SAFETY: size 0 is refused before anything else.
    let zero = unsafe { a.reallocate(&mut cache, live, 0) };
    assert_eq!(zero, Err(ReallocError::Alloc(AllocError::InvalidSize { requested: 0 })));
    assert_eq!(zero.unwrap_err().code(), "ERR_INVALID_SIZE");
    // SAFETY: as above: a size that cannot be described is refused.
    let huge = unsafe { a.reallocate(&mut cache, live, usize::MAX) };
    assert!(matches!(huge, Err(ReallocError::Alloc(AllocError::InvalidSize { .. }))), "{huge:?}");
    // The freed block is still free exactly once: handed out again, once.
    let again = common::alloc(&a, &mut cache, 1000);
    assert_eq!(again, freed);
    let another = common::alloc(&a, &mut cache, 1000);
    assert_ne!(another, freed);
    // SAFETY: live; freed once.
    unsafe {
        common::free(&a, &mut cache, again);
        common::free(&a, &mut cache, another);
    }
    // A size past the cap is refused with the block untouched (the out-of-memory path
    // gives the cache's free blocks back first, which changes no live block).
    // SAFETY: the call must fail and leave `live_large` as it was.
    let past = unsafe { a.reallocate(&mut cache, live_large, 200 * MIB) };
    assert!(matches!(past, Err(ReallocError::Alloc(AllocError::OutOfMemory { .. }))), "{past:?}");
    let after = a.stats();
    assert_eq!(after.rejected_frees_total, before.rejected_frees_total + cases.len() as u64 * 4);
    assert_eq!(
        (after.live_allocations, after.live_bytes, after.carved_bytes, after.free_span_bytes),
        (before.live_allocations, before.live_bytes, before.carved_bytes, before.free_span_bytes)
    );
    // (Two hand-outs and frees of the reuse check above; none by the rejected calls.)
    assert_eq!((after.allocations_total, after.frees_total), (before.allocations_total + 2, before.frees_total + 2));
    assert_eq!((after.in_flight_count, after.in_flight_bytes), (1, 2000));
    assert_eq!(b.stats().live_allocations, 1);
    // SAFETY: the live blocks are intact.
    unsafe {
        assert!(holds(live, 1000, 0x3E));
        assert!(holds(live_large, 17 * MIB, 0x3F));
    }
    assert_eq!(a.reclaim(token), Ok(2000));
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}
