//! Size classes seen through the allocator: class boundaries, block sizes under every
//! alignment, the 25% waste bound above 4 KiB measured with `usable_size`, and
//! `usable_size` for requests that cannot be served.

#![cfg(test)]

mod common;

use common::{KIB, MIB};
use tensor_arena_core::{CLASS_SIZES, HEADER_SIZE, MAX_SMALL_SIZE, NUM_CLASSES, SizeClass, ThreadCache};

#[test]
fn class_boundaries_map_to_the_smallest_class_that_fits() {
    assert_eq!(SizeClass::from_request(0), None);
    assert_eq!(SizeClass::from_request(MAX_SMALL_SIZE + 1), None);
    for (i, &payload) in CLASS_SIZES.iter().enumerate() {
        assert_eq!(SizeClass::from_request(payload).map(SizeClass::index), Some(i));
        let below = if i == 0 { 1 } else { CLASS_SIZES[i - 1] + 1 };
        assert_eq!(SizeClass::from_request(below).map(SizeClass::index), Some(i), "{below}");
        if payload < MAX_SMALL_SIZE {
            assert_eq!(SizeClass::from_request(payload + 1).map(SizeClass::index), Some(i + 1));
        }
    }
    assert_eq!(SizeClass::ALL.len(), NUM_CLASSES);
    for (i, class) in SizeClass::ALL.iter().enumerate() {
        assert_eq!(class.index(), i);
        assert_eq!(class.payload_size(), CLASS_SIZES[i]);
    }
}

#[test]
fn block_sizes_are_aligned_increasing_and_hold_header_plus_payload() {
    for shift in 6..=12 {
        let alignment = 1usize << shift;
        let a = common::allocator_with(|c| {
            c.arena_size = 16 * MIB;
            c.alignment = alignment;
        });
        let mut previous = 0;
        for (c, &payload) in CLASS_SIZES.iter().enumerate() {
            let block = a.block_size(c);
            assert_eq!(block % alignment, 0, "class {c} at alignment {alignment}");
            assert!(block >= payload + HEADER_SIZE);
            assert!(block < payload + HEADER_SIZE + alignment, "class {c}: no more than one alignment of rounding");
            assert!(block >= previous);
            previous = block;
            assert_eq!(a.usable_size(payload), block);
            assert_eq!(a.stats().classes[c].block, block as u64);
            assert_eq!(a.stats().classes[c].payload, payload as u64);
        }
        assert_eq!(a.block_size(NUM_CLASSES), 0);
    }
}

#[test]
fn alignment_128_gives_the_128_byte_class_a_256_byte_block_and_packs_it() {
    // Reference: "(768, 128, ...): B256 block 384, exactly two 65-byte allocations fit".
    // Here 65 bytes is the 128-byte class: 64 + 128 rounded up to 128 = 256 bytes, and a
    // slab packs its blocks 256 bytes apart.
    let a = common::allocator_with(|c| {
        c.arena_size = 4 * MIB;
        c.alignment = 128;
    });
    assert_eq!(a.usable_size(65), 256);
    let mut cache = ThreadCache::new();
    let mut ptrs: Vec<usize> = (0..16).map(|_| common::alloc(&a, &mut cache, 65).as_ptr() as usize).collect();
    assert!(ptrs.iter().all(|p| p % 128 == 0));
    ptrs.sort_unstable();
    assert!(ptrs.windows(2).all(|w| w[1] - w[0] == 256), "{ptrs:x?}");
}

#[test]
fn an_empty_small_arena_serves_every_class_whose_block_fits() {
    // Valid configurations (every target <= arena_size): in an empty allocator, any
    // request whose block (plus the alignment lead) fits in the arena should be served.
    for (arena, alignment, slab_target) in [
        (64 * KIB, 64, 64 * KIB),
        (64 * KIB, 128, 64 * KIB),
        (4 * KIB, 128, 4 * KIB),
        (256 * KIB, 64, 64 * KIB), // the default slab target
    ] {
        let build = || {
            common::allocator_with(|c| {
                c.arena_size = arena;
                c.alignment = alignment;
                c.slab_target_bytes = slab_target;
                c.refill_target_bytes = slab_target.min(c.refill_target_bytes);
                c.local_cache_target_bytes = slab_target.min(c.local_cache_target_bytes);
            })
        };
        let probe = build();
        let failing: Vec<usize> = CLASS_SIZES
            .iter()
            .copied()
            .filter(|&payload| alignment - HEADER_SIZE + probe.usable_size(payload) <= arena)
            .filter(|&payload| {
                let (a, mut cache) = (build(), ThreadCache::new());
                a.allocate_with_cache(&mut cache, payload).is_err()
            })
            .collect();
        assert!(
            failing.is_empty(),
            "arena {arena}, alignment {alignment}, slab target {slab_target}: \
             OutOfMemory in an empty arena for classes {failing:?}"
        );
    }
}

#[test]
fn no_class_wastes_more_than_a_quarter_of_a_request_above_4_kib() {
    let a = common::allocator(64 * MIB);
    let mut rng = common::Rng::new(7);
    let mut sizes: Vec<usize> = (0..20_000).map(|_| rng.range(4 * KIB + 1, MAX_SMALL_SIZE)).collect();
    for &c in &CLASS_SIZES {
        sizes.extend([c, c + 1, c - 1]);
    }
    for size in sizes.into_iter().filter(|&s| s > 4 * KIB && s <= MAX_SMALL_SIZE) {
        let usable = a.usable_size(size);
        let payload = usable - HEADER_SIZE;
        assert!(payload >= size);
        assert!((payload - size) * 4 <= size, "{size} -> {payload} bytes of payload");
    }
}

#[test]
fn large_requests_waste_less_than_a_page_plus_the_alignment() {
    let a = common::allocator(128 * MIB);
    for size in [MAX_SMALL_SIZE + 1, 17 * MIB, 20 * MIB + 12_345, 40 * MIB - 1, 64 * MIB] {
        let usable = a.usable_size(size);
        assert!(usable >= size + HEADER_SIZE);
        assert!(usable < size + 64 + 4096, "{size} -> {usable}");
        assert_eq!(usable % 4096, 0);
    }
    // A request whose span cannot fit in the arena at all cannot be served.
    assert_eq!(a.usable_size(128 * MIB), 0);
}

#[test]
fn usable_size_of_a_zero_byte_request_is_zero() {
    // Documented: "Bytes the allocator reserves for a request of `size` ..., or 0 if it
    // cannot be served". A 0-byte request is always rejected with InvalidSize.
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    assert!(a.allocate_with_cache(&mut cache, 0).is_err());
    assert_eq!(a.usable_size(0), 0);
}

#[test]
fn usable_size_of_a_request_rejected_as_invalid_is_zero() {
    let a = common::allocator(16 * MIB);
    let mut cache = ThreadCache::new();
    assert_eq!(a.usable_size(usize::MAX), 0);
    let too_big = isize::MAX as usize + 1;
    assert!(matches!(
        a.allocate_with_cache(&mut cache, too_big),
        Err(tensor_arena_core::AllocError::InvalidSize { .. })
    ));
    assert_eq!(a.usable_size(too_big), 0);
}

#[test]
fn every_allocation_fits_in_its_usable_size() {
    let a = common::allocator(64 * MIB);
    let mut cache = ThreadCache::new();
    for size in [1, 63, 64, 65, 4095, 4096, 4097, 70_000, MIB + 1, MAX_SMALL_SIZE, MAX_SMALL_SIZE + 1] {
        let p = common::alloc(&a, &mut cache, size);
        // SAFETY: `p` is a live block of `size` bytes.
        unsafe {
            common::fill(p, size, 0x5A);
            assert!(common::check(p, size, 0x5A));
            common::free(&a, &mut cache, p);
        }
        assert!(a.usable_size(size) >= size + HEADER_SIZE);
    }
}
