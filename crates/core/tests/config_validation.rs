//! Configuration validation through the public API: every field's range, the field
//! named in the error, error codes and messages, arena rounding, and the boundary
//! values that must be accepted.

#![cfg(test)]

mod common;

use common::{KIB, MIB};
use tensor_arena_core::{Allocator, AllocatorConfig, InitError, MAX_ALIGNMENT, MAX_ARENA_SIZE, MIN_ALIGNMENT};

fn rejected_field(adjust: impl FnOnce(&mut AllocatorConfig)) -> &'static str {
    let mut config = AllocatorConfig::default();
    adjust(&mut config);
    let validated = config.validate();
    let built = Allocator::new(config).err();
    assert_eq!(validated.err(), built, "validate() and Allocator::new disagree for {config:?}");
    match built {
        Some(InitError::InvalidConfig { field, reason }) => {
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
    assert_eq!(config.arena_size, 1 << 30);
    assert_eq!(config.alignment, 64);
    assert_eq!(config.refill_target_bytes, 32 * KIB);
    assert_eq!(config.local_cache_target_bytes, 64 * KIB);
    assert_eq!(config.slab_target_bytes, 64 * KIB);
    assert_eq!(config.retain_bytes, 512 * MIB);
    assert_eq!(config.idle_release_ms, 1000);
    assert_eq!((MIN_ALIGNMENT, MAX_ALIGNMENT, MAX_ARENA_SIZE), (64, 4096, 1 << 46));
}

#[test]
fn zero_or_oversized_arena_is_rejected() {
    assert_eq!(rejected_field(|c| c.arena_size = 0), "arena_size");
    assert_eq!(rejected_field(|c| c.arena_size = MAX_ARENA_SIZE + 1), "arena_size");
    assert_eq!(rejected_field(|c| c.arena_size = usize::MAX), "arena_size");
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
            c.arena_size = 16 * MIB;
            c.alignment = alignment;
        });
        assert_eq!(a.config().alignment, alignment);
    }
}

#[test]
fn batch_and_slab_targets_must_be_between_1_and_the_arena_size() {
    assert_eq!(rejected_field(|c| c.refill_target_bytes = 0), "refill_target_bytes");
    assert_eq!(rejected_field(|c| c.refill_target_bytes = c.arena_size + 1), "refill_target_bytes");
    assert_eq!(rejected_field(|c| c.local_cache_target_bytes = 0), "local_cache_target_bytes");
    assert_eq!(rejected_field(|c| c.local_cache_target_bytes = c.arena_size + 1), "local_cache_target_bytes");
    assert_eq!(rejected_field(|c| c.slab_target_bytes = 0), "slab_target_bytes");
    assert_eq!(rejected_field(|c| c.slab_target_bytes = c.arena_size + 1), "slab_target_bytes");
}

#[test]
fn the_first_bad_field_is_the_one_named() {
    let field = rejected_field(|c| {
        c.arena_size = 0;
        c.alignment = 3;
        c.refill_target_bytes = 0;
    });
    assert_eq!(field, "arena_size");
    let field = rejected_field(|c| {
        c.alignment = 3;
        c.slab_target_bytes = 0;
    });
    assert_eq!(field, "alignment");
}

#[test]
fn boundary_values_are_accepted() {
    let tiny = AllocatorConfig {
        arena_size: 1,
        refill_target_bytes: 1,
        local_cache_target_bytes: 1,
        slab_target_bytes: 1,
        retain_bytes: 0,
        ..AllocatorConfig::default()
    };
    assert_eq!(tiny.validate(), Ok(()));
    let targets_equal_arena = AllocatorConfig {
        arena_size: MIB,
        refill_target_bytes: MIB,
        local_cache_target_bytes: MIB,
        slab_target_bytes: MIB,
        ..AllocatorConfig::default()
    };
    assert_eq!(targets_equal_arena.validate(), Ok(()));
    let largest = AllocatorConfig {
        arena_size: MAX_ARENA_SIZE,
        alignment: MAX_ALIGNMENT,
        retain_bytes: usize::MAX,
        ..AllocatorConfig::default()
    };
    assert_eq!(largest.validate(), Ok(()));
}

#[test]
fn arena_size_is_rounded_up_to_whole_pages() {
    let a = common::allocator_with(|c| {
        c.arena_size = 1;
        c.refill_target_bytes = 1;
        c.local_cache_target_bytes = 1;
        c.slab_target_bytes = 1;
    });
    assert!(a.arena_size() >= 4096 && a.arena_size().is_power_of_two(), "{}", a.arena_size());
    assert_eq!(a.stats().arena_size, a.arena_size() as u64);
    let a = common::allocator(3 * MIB + 1);
    assert_eq!(a.arena_size() % 4096, 0);
    assert!(a.arena_size() > 3 * MIB && a.arena_size() <= 3 * MIB + 64 * KIB);
    assert_eq!(a.arena_base().as_ptr() as usize % 4096, 0);
}

#[test]
fn a_tiny_arena_still_serves_a_one_byte_request() {
    let a = common::allocator_with(|c| {
        c.arena_size = 1;
        c.refill_target_bytes = 1;
        c.local_cache_target_bytes = 1;
        c.slab_target_bytes = 1;
    });
    let mut cache = tensor_arena_core::ThreadCache::new();
    let p = common::alloc(&a, &mut cache, 1);
    assert!(a.contains(p.as_ptr()));
    // SAFETY: `p` was just allocated and is not used elsewhere.
    unsafe { common::free(&a, &mut cache, p) };
}

#[test]
fn init_errors_have_stable_codes_and_name_the_field() {
    let err = rejected_field(|c| c.alignment = 32);
    assert_eq!(err, "alignment");
    let err = InitError::InvalidConfig { field: "alignment", reason: "must be a power of two" };
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
    assert_eq!(a.config().arena_size, 16 * MIB);
    assert_ne!(a.id(), b.id());
    assert_eq!(a.clone().id(), a.id());
    assert_eq!(a.arena_size(), 16 * MIB);
    let base = a.arena_base().as_ptr();
    assert!(a.contains(base));
    assert!(a.contains(base.wrapping_add(16 * MIB - 1)));
    assert!(!a.contains(base.wrapping_add(16 * MIB)));
    assert!(!a.contains(base.wrapping_sub(1)));
    assert!(!b.contains(base));
}
