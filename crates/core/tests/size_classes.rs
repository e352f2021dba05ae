//! Size classes seen through the allocator: class boundaries, block sizes under every
//! alignment, the 25% waste bound above 4 KiB measured with `usable_size`, and
//! `usable_size` for requests that cannot be served.

#![cfg(test)]

mod common;

use common::{KIB, MIB};
use tensor_arena_core::{
    AllocError, BLOCK_METADATA_BYTES, CLASS_SIZES, MAX_SMALL_SIZE, NUM_CLASSES, SizeClass, ThreadCache,
};

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
fn block_sizes_are_aligned_increasing_and_hold_exactly_the_payload() {
    // No header: a block is its class payload rounded up to the alignment; its metadata
    // lives out of band: one 16-byte entry per granule of its class's block table (the
    // largest power of two not above the block, 64 B ..= 4 KiB), so 16 to 32 bytes per
    // block below 4 KiB and 16 bytes per 4 KiB above.
    assert_eq!(BLOCK_METADATA_BYTES, 16);
    for shift in 6..=12 {
        let alignment = 1usize << shift;
        let a = common::allocator_with(|c| {
            c.max_bytes = Some(16 * MIB);
            c.alignment = alignment;
        });
        let mut previous = 0;
        let stats = a.stats();
        for (c, &payload) in CLASS_SIZES.iter().enumerate() {
            let block = a.block_size(c);
            assert_eq!(block % alignment, 0, "class {c} at alignment {alignment}");
            assert!(block >= payload);
            assert!(block < payload + alignment, "class {c}: no more than one alignment of rounding");
            assert_eq!(block, payload.next_multiple_of(alignment));
            assert!(block >= previous);
            previous = block;
            assert_eq!(a.usable_size(payload), block);
            assert_eq!(stats.classes[c].block, block as u64);
            assert_eq!(stats.classes[c].payload, payload as u64);
            let metadata = stats.classes[c].metadata_per_block as usize;
            if block < 4096 {
                assert!((16..32).contains(&metadata), "class {c}: {metadata} bytes of table per {block}-byte block");
            } else {
                assert_eq!(metadata, block / 256, "class {c}: 16 bytes per 4 KiB");
            }
        }
        if alignment == 64 {
            // Every payload is a multiple of 64: blocks are exactly the payloads.
            assert!((0..NUM_CLASSES).all(|c| a.block_size(c) == CLASS_SIZES[c]));
        }
        assert_eq!(a.block_size(NUM_CLASSES), 0);
    }
}

#[test]
fn alignment_128_gives_the_128_byte_class_a_128_byte_block_and_packs_it() {
    // Reference: "(768, 128, ...): B256 block 384, exactly two 65-byte allocations fit".
    // Here 65 bytes is the 128-byte class: without a header its block is 128 bytes at
    // alignment 128, and a slab packs its blocks 128 bytes apart.
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(4 * MIB);
        c.alignment = 128;
    });
    assert_eq!(a.usable_size(65), 128);
    let mut cache = ThreadCache::new();
    let mut ptrs: Vec<usize> = (0..16).map(|_| common::alloc(&a, &mut cache, 65).as_ptr() as usize).collect();
    assert!(ptrs.iter().all(|p| p % 128 == 0));
    ptrs.sort_unstable();
    assert!(ptrs.windows(2).all(|w| w[1] - w[0] == 128), "{ptrs:x?}");
    // Exactly as many fit as the smallest cap (one page) holds.
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(4096);
        c.alignment = 128;
    });
    let mut cache = ThreadCache::new();
    let fitted = (0..).take_while(|_| a.allocate_with_cache(&mut cache, 65).is_ok()).count();
    assert_eq!(fitted, 4096 / 128);
    assert!(matches!(a.allocate_with_cache(&mut cache, 65), Err(AllocError::OutOfMemory { remaining: 0, .. })));
}

#[test]
fn an_empty_small_arena_serves_every_class_whose_block_fits() {
    // In an empty capped allocator, any request whose block fits under the cap should be
    // served, whatever the targets (they may exceed the cap).
    for (arena, alignment, slab_target) in [
        (64 * KIB, 64, 64 * KIB),
        (64 * KIB, 128, 64 * KIB),
        (4 * KIB, 128, 4 * KIB),
        (256 * KIB, 64, 64 * KIB), // the default slab target
        (4 * KIB, 64, MIB),        // targets above the cap
        (64 * KIB, 4096, 16 * MIB),
    ] {
        let build = || {
            common::allocator_with(|c| {
                c.max_bytes = Some(arena);
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
            .filter(|&payload| probe.usable_size(payload) <= arena)
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
        // The whole block is payload (no header).
        let payload = SizeClass::from_request(size).unwrap().payload_size();
        assert_eq!(usable, payload);
        assert!(payload >= size);
        assert!((payload - size) * 4 <= size, "{size} -> {payload} bytes of payload");
    }
}

#[test]
fn large_requests_waste_less_than_a_page() {
    let a = common::allocator(128 * MIB);
    for size in [MAX_SMALL_SIZE + 1, 17 * MIB, 20 * MIB + 12_345, 40 * MIB - 1, 64 * MIB] {
        let usable = a.usable_size(size);
        assert!(usable >= size);
        assert!(usable < size + 4096, "{size} -> {usable}");
        assert_eq!(usable % 4096, 0);
    }
    // A request of the whole cap fits exactly; one whose span cannot fit under the cap at
    // all cannot be served.
    assert_eq!(a.usable_size(128 * MIB), 128 * MIB);
    assert_eq!(a.usable_size(128 * MIB + 1), 0);
    // Without a cap, any describable request can be served (by growing).
    let uncapped = common::allocator_with(|c| c.region_bytes = 64 * MIB);
    let page = uncapped.usable_size(MAX_SMALL_SIZE + 1) - MAX_SMALL_SIZE;
    assert!(page.is_power_of_two() && page >= 4096);
    assert_eq!(uncapped.usable_size(128 * MIB + 1), 128 * MIB + page);
    assert_eq!(uncapped.usable_size(1 << 40), 1 << 40);
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
    assert!(matches!(a.allocate_with_cache(&mut cache, too_big), Err(AllocError::InvalidSize { .. })));
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
        assert!(a.usable_size(size) >= size);
    }
    a.check_invariants().unwrap();
}
