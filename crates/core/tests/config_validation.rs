//! Configuration validation through the public API: every field's range, the field
//! named in the error, error codes and messages, cap and region rounding, and the boundary
//! values that must be accepted.

#![cfg(test)]

mod common;

use common::{KIB, MIB};
use tensor_arena_core::{
    Allocator, AllocatorConfig, CHUNK_SIZE, InitError, MAX_ALIGNMENT, MAX_ARENA_SIZE, MIN_ALIGNMENT, ThreadCache,
};

fn rejected_field(adjust: impl FnOnce(&mut AllocatorConfig)) -> &'static str {
    let mut config = AllocatorConfig::default();
    adjust(&mut config);
    let validated = config.validate();
    let built = Allocator::new(config).err();
    assert_eq!(validated.err(), built, "validate() and Allocator::new disagree for {config:?}");
    match built {
        Some(InitError::InvalidConfig { field, reason, .. }) => {
            assert!(!reason.is_empty());
            field
        }
        other => panic!("expected InvalidConfig for {config:?}, got {other:?}"),
    }
}

#[test]
fn default_config_is_valid_and_matches_the_documented_values() {
    let config = AllocatorConfig::default();
    assert_eq!(config.validate(), Ok(()));
    assert_eq!(config.max_bytes, None);
    assert_eq!(config.region_bytes, 0);
    assert_eq!(config.alignment, 64);
    assert_eq!(config.refill_target_bytes, 32 * KIB);
    assert_eq!(config.local_cache_target_bytes, 64 * KIB);
    assert_eq!(config.slab_target_bytes, 64 * KIB);
    assert_eq!(config.retain_bytes, 512 * MIB);
    assert_eq!(config.idle_release_ms, 1000);
    assert_eq!((MIN_ALIGNMENT, MAX_ALIGNMENT, MAX_ARENA_SIZE), (64, 4096, 1 << 46));
}

#[test]
fn a_cap_below_one_page_or_above_64_tib_is_rejected() {
    for cap in [0, 1, 4095, MAX_ARENA_SIZE + 1, usize::MAX] {
        assert_eq!(rejected_field(|c| c.max_bytes = Some(cap)), "max_bytes", "max_bytes {cap}");
    }
    for cap in [4096, MAX_ARENA_SIZE] {
        let config = AllocatorConfig { max_bytes: Some(cap), ..AllocatorConfig::default() };
        assert_eq!(config.validate(), Ok(()), "max_bytes {cap}");
    }
}

#[test]
fn an_oversized_first_region_is_rejected() {
    assert_eq!(rejected_field(|c| c.region_bytes = MAX_ARENA_SIZE + 1), "region_bytes");
    assert_eq!(rejected_field(|c| c.region_bytes = usize::MAX), "region_bytes");
    for region in [0, 1, MAX_ARENA_SIZE] {
        let config = AllocatorConfig { region_bytes: region, ..AllocatorConfig::default() };
        assert_eq!(config.validate(), Ok(()), "region_bytes {region}");
    }
}

#[test]
fn alignment_must_be_a_power_of_two_between_64_and_4096() {
    for alignment in [0, 1, 8, 24, 32, 48, 63, 65, 96, 100, 192, 3000, 8192, 1 << 20, usize::MAX] {
        assert_eq!(rejected_field(|c| c.alignment = alignment), "alignment", "alignment {alignment}");
    }
}

#[test]
fn every_power_of_two_alignment_from_64_to_4096_is_accepted() {
    for shift in 6..=12 {
        let alignment = 1usize << shift;
        let a = common::allocator_with(|c| {
            c.max_bytes = Some(16 * MIB);
            c.alignment = alignment;
        });
        assert_eq!(a.config().alignment, alignment);
    }
}

#[test]
fn batch_and_slab_targets_must_be_between_1_and_64_tib() {
    for bad in [0, MAX_ARENA_SIZE + 1, usize::MAX] {
        assert_eq!(rejected_field(|c| c.refill_target_bytes = bad), "refill_target_bytes", "{bad}");
        assert_eq!(rejected_field(|c| c.local_cache_target_bytes = bad), "local_cache_target_bytes", "{bad}");
        assert_eq!(rejected_field(|c| c.slab_target_bytes = bad), "slab_target_bytes", "{bad}");
    }
}

#[test]
fn targets_above_the_cap_are_accepted_and_the_allocator_works() {
    // No longer an error: block counts are clamped to what fits under the cap.
    for target in [MIB + 1, 64 * MIB, MAX_ARENA_SIZE] {
        let a = common::allocator_with(|c| {
            c.max_bytes = Some(MIB);
            c.refill_target_bytes = target;
            c.local_cache_target_bytes = target;
            c.slab_target_bytes = target;
        });
        let mut cache = ThreadCache::new();
        for size in [1, 4096, 100 * KIB] {
            let p = common::alloc(&a, &mut cache, size);
            // SAFETY: `p` is a live block of `size` bytes; freed once.
            unsafe {
                common::fill(p, size, 0x5A);
                assert!(common::check(p, size, 0x5A));
                common::free(&a, &mut cache, p);
            }
        }
        assert!(a.stats().carved_bytes <= MIB as u64, "target {target}: carved past the cap");
        cache.check_invariants().unwrap();
        a.check_invariants().unwrap();
    }
}

#[test]
fn the_first_bad_field_is_the_one_named() {
    let field = rejected_field(|c| {
        c.max_bytes = Some(0);
        c.region_bytes = usize::MAX;
        c.alignment = 3;
        c.refill_target_bytes = 0;
    });
    assert_eq!(field, "max_bytes");
    let field = rejected_field(|c| {
        c.region_bytes = usize::MAX;
        c.alignment = 3;
    });
    assert_eq!(field, "region_bytes");
    let field = rejected_field(|c| {
        c.alignment = 3;
        c.slab_target_bytes = 0;
    });
    assert_eq!(field, "alignment");
}

#[test]
fn boundary_values_are_accepted() {
    let tiny = AllocatorConfig {
        max_bytes: Some(4096),
        refill_target_bytes: 1,
        local_cache_target_bytes: 1,
        slab_target_bytes: 1,
        retain_bytes: 0,
        ..AllocatorConfig::default()
    };
    assert_eq!(tiny.validate(), Ok(()));
    let targets_equal_cap = AllocatorConfig {
        max_bytes: Some(MIB),
        refill_target_bytes: MIB,
        local_cache_target_bytes: MIB,
        slab_target_bytes: MIB,
        ..AllocatorConfig::default()
    };
    assert_eq!(targets_equal_cap.validate(), Ok(()));
    let largest_targets = AllocatorConfig {
        refill_target_bytes: MAX_ARENA_SIZE,
        local_cache_target_bytes: MAX_ARENA_SIZE,
        slab_target_bytes: MAX_ARENA_SIZE,
        ..AllocatorConfig::default()
    };
    assert_eq!(largest_targets.validate(), Ok(()));
    let largest = AllocatorConfig {
        max_bytes: Some(MAX_ARENA_SIZE),
        region_bytes: MAX_ARENA_SIZE,
        alignment: MAX_ALIGNMENT,
        retain_bytes: usize::MAX,
        ..AllocatorConfig::default()
    };
    assert_eq!(largest.validate(), Ok(()));
}

#[test]
fn the_cap_is_rounded_up_to_whole_pages() {
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(4096);
        c.refill_target_bytes = 1;
        c.local_cache_target_bytes = 1;
        c.slab_target_bytes = 1;
    });
    let stats = a.stats();
    assert!(stats.max_bytes >= 4096 && stats.max_bytes.is_power_of_two(), "{}", stats.max_bytes);
    // A capped arena is one region of exactly the cap.
    assert_eq!((stats.reserved_bytes, stats.regions, stats.carved_bytes), (stats.max_bytes, 1, 0));
    assert_eq!(stats.remaining_bytes, stats.max_bytes);
    let a = common::allocator(3 * MIB + 1);
    let stats = a.stats();
    assert_eq!(stats.max_bytes % 4096, 0);
    assert!(stats.max_bytes > 3 * MIB as u64 && stats.max_bytes <= (3 * MIB + 64 * KIB) as u64, "{}", stats.max_bytes);
    assert_eq!(stats.reserved_bytes, stats.max_bytes);
    // Regions start on a chunk boundary.
    let base = a.ptr_at(0).unwrap();
    assert_eq!(base.as_ptr() as usize % CHUNK_SIZE, 0);
    assert!(a.ptr_at(stats.max_bytes as usize - 1).is_some());
    assert_eq!(a.ptr_at(stats.max_bytes as usize), None);
}

#[test]
fn an_uncapped_first_region_is_rounded_up_to_whole_chunks() {
    let a = common::allocator_with(|c| c.region_bytes = 3 * MIB + 1);
    let stats = a.stats();
    assert_eq!((stats.max_bytes, stats.regions), (0, 1));
    assert_eq!(stats.reserved_bytes, CHUNK_SIZE as u64);
    assert_eq!(stats.remaining_bytes, CHUNK_SIZE as u64);
    let a = common::allocator_with(|c| c.region_bytes = 3 * CHUNK_SIZE);
    assert_eq!(a.stats().reserved_bytes, 3 * CHUNK_SIZE as u64);
    // Left to the allocator: what the machine can commit, within 1 GiB ..= 64 GiB (less
    // only if the OS refuses that much address space). Address space only.
    let a = common::allocator_with(|_| {});
    let stats = a.stats();
    assert_eq!((stats.max_bytes, stats.regions, stats.carved_bytes), (0, 1, 0));
    assert!(stats.reserved_bytes >= 256 * MIB as u64 && stats.reserved_bytes <= 64 << 30, "{}", stats.reserved_bytes);
}

#[test]
fn a_tiny_arena_still_serves_a_one_byte_request() {
    let a = common::allocator_with(|c| {
        c.max_bytes = Some(4096);
        c.refill_target_bytes = 1;
        c.local_cache_target_bytes = 1;
        c.slab_target_bytes = 1;
    });
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 1);
    assert!(a.contains(p.as_ptr()));
    // SAFETY: `p` was just allocated and is not used elsewhere.
    unsafe { common::free(&a, &mut cache, p) };
    cache.check_invariants().unwrap();
    a.check_invariants().unwrap();
}

#[test]
fn init_errors_have_stable_codes_and_name_the_field() {
    let err = rejected_field(|c| c.alignment = 32);
    assert_eq!(err, "alignment");
    let err = InitError::InvalidConfig { field: "alignment", reason: "must be a power of two", value: 32 };
    assert_eq!(err.code(), "ERR_INVALID_CONFIG");
    let text = err.to_string();
    assert!(text.contains("alignment") && text.contains("power of two"), "{text}");
    let map = InitError::MapFailed { size: 4096, errno: 12 };
    assert_eq!(map.code(), "ERR_MAP_FAILED");
    assert!(map.to_string().contains("4096") && map.to_string().contains("12"));
    let boxed: Box<dyn std::error::Error> = Box::new(err);
    assert!(!boxed.to_string().is_empty());
}

#[test]
fn an_allocator_reports_its_config_and_unique_id() {
    let a = common::allocator(16 * MIB);
    let b = common::allocator(16 * MIB);
    assert_eq!(a.config().max_bytes, Some(16 * MIB));
    assert_ne!(a.id(), b.id());
    assert_eq!(a.clone().id(), a.id());
    assert_eq!(a.stats().max_bytes, 16 * MIB as u64);
    let base = a.ptr_at(0).unwrap().as_ptr();
    assert!(a.contains(base));
    assert!(a.contains(base.wrapping_add(16 * MIB - 1)));
    assert!(!a.contains(base.wrapping_add(16 * MIB)));
    assert!(!a.contains(base.wrapping_sub(1)));
    assert!(!b.contains(base));
    assert_eq!(a.offset_of(base), Some(0));
    assert_eq!(a.offset_of(base.wrapping_add(16 * MIB - 1)), Some(16 * MIB - 1));
    assert_eq!((a.offset_of(base.wrapping_add(16 * MIB)), b.offset_of(base)), (None, None));
    // Chunks exist once committed (carving commits them).
    assert_eq!(a.chunk_at(0), None);
    let mut cache = ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 100);
    let offset = a.offset_of(p.as_ptr()).unwrap();
    assert_eq!(a.ptr_at(offset), Some(p));
    let (chunk, len) = a.chunk_at(offset).unwrap();
    assert_eq!(len, CHUNK_SIZE);
    assert_eq!(chunk.as_ptr() as usize, base as usize + offset / CHUNK_SIZE * CHUNK_SIZE);
}
