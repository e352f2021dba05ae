//! Block metadata, kept out of band: one 16-byte [`BlockMeta`] per block, in the block
//! table of its class's granule shift (`table.rs`), in a mapping of its own that is never
//! handed out and never exposed to JavaScript. The bytes of the data region are user bytes
//! only: writing anything over them (a use-after-free through a stale view, an overflow)
//! cannot change what the allocator believes.
//!
//! The entry of the granule where a block starts describes the block; its tag records the
//! block's offset in that granule (`sub`, in bytes: the address's low `shift` bits), so
//! only a pointer to the block's first byte matches it (a misaligned or interior pointer
//! has other low bits). Other entries are never read as a block (they hold `NONE`, or a
//! stale `FREE` tag).
//!
//! ```text
//! field       LIVE / IN_FLIGHT block                FREE block
//! tag         class << 24 | state << 16 | sub       class << 24 | FREE << 16 | sub
//! generation  +1 on every hand-out (ABA checks)     kept, bumped at the next hand-out
//! word        requested | owner << 32 (small)       next block in a free list (its
//!             owner << 32 (large: the registry      address, 0 = end): a thread cache's
//!             holds the 64-bit requested size)      list, a slab's list, an inbox
//! ```
//!
//! Invariants:
//! - in the table of a class's shift, a granule's tag is `LIVE` or `IN_FLIGHT` of that
//!   class ⇔ a block of the class starts there (at `sub`) and is handed out (held by a
//!   thread, or in flight between threads)
//! - a block's tag is `FREE` while it sits in a thread cache, a central list or an inbox
//!   (so freeing it is a double free)
//! - releasing a slab or a large span leaves only `FREE` and `NONE` tags in its range, so a
//!   stale entry never reads as allocated
//!
//! Fields are atomics read and written with relaxed ordering (plain loads and stores):
//! a block's entry is written by the thread that holds the block, and read concurrently
//! only by bookkeeping scans (thread teardown) and by misuse (racing double frees), which
//! must not be undefined behaviour.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Bytes of one block's entry in its block table.
pub const BLOCK_METADATA_BYTES: usize = size_of::<BlockMeta>();

/// Not a block start (never initialised): the state of untouched table entries.
#[cfg(test)]
pub(crate) const NONE: u32 = 0;
/// A free block.
pub(crate) const FREE: u32 = 1;
/// A block handed out and held by a thread.
pub(crate) const LIVE: u32 = 2;
/// A block handed off to another thread and not yet received: allocated, held by no one.
pub(crate) const IN_FLIGHT: u32 = 3;
const STATE_SHIFT: u32 = 16;
const CLASS_SHIFT: u32 = 24;
/// Bits of a tag's `sub` (offsets in granules up to 4 KiB).
const SUB_MASK: u32 = 0xFFFF;
/// One state step in a tag (`LIVE` = `FREE` + 1 step, `IN_FLIGHT` = `LIVE` + 1 step).
pub(crate) const STATE_STEP: u32 = 1 << STATE_SHIFT;
/// `class` of a large allocation.
pub(crate) const LARGE_CLASS: u8 = u8::MAX;

/// The metadata of one granule.
#[repr(C, align(16))]
pub(crate) struct BlockMeta {
    tag: AtomicU32,
    generation: AtomicU32,
    word: AtomicU64,
}

const _: () = assert!(size_of::<BlockMeta>() == 16);

/// A tag: `class << 24 | state << 16 | sub`. `sub` sits where it is in the address, so the
/// expected tag of a pointer is one AND and one OR away from a per-class constant.
#[inline(always)]
pub(crate) const fn tag(state: u32, class: u8, sub: u32) -> u32 {
    (class as u32) << CLASS_SHIFT | state << STATE_SHIFT | sub
}

/// Offset, in bytes, of `addr` in its granule of `shift` (a tag's `sub`).
#[inline(always)]
pub(crate) const fn sub_of(addr: usize, shift: u32) -> u32 {
    (addr & ((1 << shift) - 1)) as u32
}

/// The block offset a tag records.
#[inline(always)]
pub(crate) const fn tag_sub(tag: u32) -> u32 {
    tag & SUB_MASK
}

/// The state of a tag.
#[inline(always)]
pub(crate) const fn state_of(tag: u32) -> u32 {
    (tag >> STATE_SHIFT) & 0xFF
}

const _: () = assert!(1 << crate::table::MAX_SHIFT <= SUB_MASK);

/// The class of a tag.
#[inline(always)]
pub(crate) const fn class_of(tag: u32) -> u8 {
    (tag >> CLASS_SHIFT) as u8
}

impl BlockMeta {
    #[inline(always)]
    pub(crate) fn tag(&self) -> u32 {
        self.tag.load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub(crate) fn set_tag(&self, tag: u32) {
        self.tag.store(tag, Ordering::Relaxed);
    }

    #[inline(always)]
    pub(crate) fn generation(&self) -> u32 {
        self.generation.load(Ordering::Relaxed)
    }

    #[inline(always)]
    pub(crate) fn set_generation(&self, generation: u32) {
        self.generation.store(generation, Ordering::Relaxed);
    }

    /// Requested size of a live small block.
    #[inline(always)]
    pub(crate) fn requested(&self) -> u32 {
        self.word.load(Ordering::Relaxed) as u32
    }

    /// Owner cache of a live block.
    #[inline(always)]
    pub(crate) fn owner(&self) -> u32 {
        (self.word.load(Ordering::Relaxed) >> 32) as u32
    }

    /// `(requested, owner)` of a live block, in one load.
    #[inline(always)]
    pub(crate) fn requested_and_owner(&self) -> (u32, u32) {
        let word = self.word.load(Ordering::Relaxed);
        (word as u32, (word >> 32) as u32)
    }

    /// `requested | owner << 32` of a live small block.
    #[inline(always)]
    pub(crate) fn live_word(&self) -> u64 {
        self.word.load(Ordering::Relaxed)
    }

    /// Records a hand-out: requested size and owner cache.
    #[inline(always)]
    pub(crate) fn set_live_word(&self, requested: u32, owner: u32) {
        self.word.store(u64::from(requested) | u64::from(owner) << 32, Ordering::Relaxed);
    }

    /// Changes the owner of a live block, keeping its requested size.
    pub(crate) fn set_owner(&self, owner: u32) {
        self.set_live_word(self.requested(), owner);
    }

    /// The address of the next block of the free list this block sits in (0 = end).
    #[inline(always)]
    pub(crate) fn link(&self) -> usize {
        self.word.load(Ordering::Relaxed) as usize
    }

    #[inline(always)]
    pub(crate) fn set_link(&self, next: usize) {
        self.word.store(next as u64, Ordering::Relaxed);
    }

    /// Marks a block that enters the allocator's free lists for the first time in its
    /// slab's (or span's) life; `sub` is its offset in its granule.
    pub(crate) fn initialize(&self, class: u8, sub: u32, generation: u32) {
        self.set_generation(generation);
        self.word.store(0, Ordering::Relaxed);
        self.set_tag(tag(FREE, class, sub));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip() {
        for class in [0, 7, 67, LARGE_CLASS] {
            for state in [NONE, FREE, LIVE, IN_FLIGHT] {
                for sub in [0, 320, 4032] {
                    let t = tag(state, class, sub);
                    assert_eq!((state_of(t), class_of(t), tag_sub(t)), (state, class, sub));
                }
            }
        }
        assert_eq!(tag(LIVE, 3, 2), tag(FREE, 3, 2) + STATE_STEP);
        assert_eq!(tag(IN_FLIGHT, 3, 2), tag(LIVE, 3, 2) + STATE_STEP);
        assert_eq!(sub_of(0x1000 + 1280, 10), 256);
        assert_eq!(sub_of(0x1000 + 1280, 6), 0);
    }

    #[test]
    fn live_word_and_link_share_the_word() {
        let meta = BlockMeta { tag: AtomicU32::new(0), generation: AtomicU32::new(0), word: AtomicU64::new(0) };
        meta.initialize(5, 192, 41);
        assert_eq!((meta.tag(), meta.generation(), meta.link()), (tag(FREE, 5, 192), 41, 0));
        meta.set_live_word(6000, 9);
        assert_eq!(meta.requested_and_owner(), (6000, 9));
        meta.set_owner(11);
        assert_eq!((meta.requested(), meta.owner()), (6000, 11));
        meta.set_link(0x7000_0000_1000);
        assert_eq!(meta.link(), 0x7000_0000_1000);
    }
}
