//! User pointers are aligned to the configured alignment (64 ..= 4096) for small and
//! large requests, fresh and reused blocks (orthotope's were always only 64-aligned).

#![cfg(test)]

mod common;

use common::{KIB, MIB};
use tensor_arena_core::{SizeClass, ThreadCache};

const ALIGNMENTS: [usize; 7] = [64, 128, 256, 512, 1024, 2048, 4096];

const SIZES: [usize; 20] = [
    1,
    17,
    63,
    64,
    65,
    100,
    1000,
    4095,
    4096,
    4097,
    10_000,
    70_000,
    100_000,
    MIB,
    MIB + 1,
    3 * MIB,
    16 * MIB,
    16 * MIB + 1,
    17 * MIB,
    20 * MIB + 7,
];

#[test]
fn user_pointers_are_aligned_for_every_alignment_small_and_large() {
    for alignment in ALIGNMENTS {
        let a = common::allocator_with(|c| {
            c.max_bytes = Some(256 * MIB);
            c.alignment = alignment;
        });
        let mut cache = ThreadCache::new();
        for size in SIZES {
            // Several per size so that later blocks of a slab are checked too.
            let ptrs: Vec<_> = (0..3).map(|_| common::alloc(&a, &mut cache, size)).collect();
            for &p in &ptrs {
                assert_eq!(p.as_ptr() as usize % alignment, 0, "size {size} at alignment {alignment}: {p:p}");
                // SAFETY: `p` is a live block of `size` bytes.
                unsafe { common::fill(p, size, 0xA5) };
            }
            for p in ptrs {
                // SAFETY: as above; freed once.
                unsafe {
                    assert!(common::check(p, size, 0xA5));
                    common::free(&a, &mut cache, p);
                }
            }
        }
        drop(cache);
        let stats = a.stats();
        assert_eq!((stats.live_allocations, stats.live_bytes), (0, 0));
        a.check_invariants().unwrap();
    }
}

#[test]
fn reused_blocks_stay_aligned() {
    for alignment in ALIGNMENTS {
        let a = common::allocator_with(|c| {
            c.max_bytes = Some(64 * MIB);
            c.alignment = alignment;
        });
        let mut cache = ThreadCache::new();
        let mut rng = common::Rng::new(alignment as u64);
        let mut live = Vec::new();
        for _ in 0..2000 {
            if live.len() > 50 || (!live.is_empty() && rng.chance(400)) {
                let p = live.swap_remove(rng.below(live.len()));
                // SAFETY: `p` is live and freed once.
                unsafe { common::free(&a, &mut cache, p) };
            } else {
                let size = rng.range(1, 40 * KIB);
                let p = common::alloc(&a, &mut cache, size);
                assert_eq!(p.as_ptr() as usize % alignment, 0, "size {size} alignment {alignment}");
                live.push(p);
            }
            if rng.chance(10) {
                a.drain_thread_cache(&mut cache);
            }
        }
        for p in live {
            // SAFETY: `p` is live and freed once.
            unsafe { common::free(&a, &mut cache, p) };
        }
        cache.check_invariants().unwrap();
        a.check_invariants().unwrap();
    }
}

#[test]
fn custom_alignment_block_is_freed_and_reused_at_the_same_pointer() {
    // Reference (1 MiB, 128, 640, 640): a 65-byte allocation frees fine and the next
    // one on the same thread gets the identical (and here 128-aligned) pointer.
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(4 * MIB);
        c.alignment = 128;
        c.refill_target_bytes = 640;
        c.local_cache_target_bytes = 640;
    });
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 65);
    assert_eq!(p.as_ptr() as usize % 128, 0);
    // SAFETY: `p` is live and freed once.
    unsafe { common::free(&a, &mut cache, p) };
    assert_eq!(common::alloc(&a, &mut cache, 65), p);
}

#[test]
fn blocks_are_their_stride_apart_with_no_header_and_do_not_overlap() {
    // No in-band header: a block is its class payload rounded up to the alignment, and
    // the blocks of a slab are adjacent (block i at slab_start + i * stride).
    for alignment in [64, 4096] {
        let a = common::allocator_with(|c| {
            c.max_bytes = Some(64 * MIB);
            c.alignment = alignment;
        });
        let class = SizeClass::from_request(100).unwrap();
        let stride = a.block_size(class.index());
        assert_eq!(stride, class.payload_size().next_multiple_of(alignment));
        assert_eq!(a.usable_size(100), stride);
        let mut cache = ThreadCache::new();
        let ptrs: Vec<usize> = (0..64).map(|_| common::alloc(&a, &mut cache, 100).as_ptr() as usize).collect();
        let mut sorted = ptrs.clone();
        sorted.sort_unstable();
        for w in sorted.windows(2) {
            assert!(w[1] - w[0] >= stride, "{:#x} and {:#x} closer than a {stride}-byte block", w[0], w[1]);
            assert_eq!((w[1] - w[0]) % alignment, 0);
        }
        // Adjacent within a slab: only a change of slab may leave a gap.
        let gaps = sorted.windows(2).filter(|w| w[1] - w[0] != stride).count() as u64;
        let slabs = a.stats().classes[class.index()].slabs;
        assert!(gaps < slabs, "alignment {alignment}: {gaps} gaps between blocks of {slabs} slabs");
        assert!(ptrs.iter().all(|&p| a.contains(p as *const u8) && a.contains((p + stride - 1) as *const u8)));
        for p in ptrs {
            // SAFETY: live; freed once.
            unsafe { common::free(&a, &mut cache, common::at(p)) };
        }
        drop(cache);
        assert_eq!(a.stats().live_allocations, 0);
        a.check_invariants().unwrap();
    }
}
