//! The 64-byte block header that sits right before every user pointer.
//!
//! ```text
//! offset  size  field
//!  0       8    link        next block in a free list (meaningful only while free)
//!  8       4    state       check(address, class) ^ LIVE or ^ FREE
//! 12       4    generation  +1 on every hand-out: a stale handle is detectable (ABA)
//! 16       8    requested   the caller's exact request
//! 24       8    owner       id of the thread cache that handed the block out
//! 32       1    class       size-class index, or LARGE_CLASS
//! 36       4    slab        index of the block's slab in its class's central pool
//! 40       8    holder      0: the owner holds it; else the cache that received it in a
//!                           hand-off, or IN_FLIGHT while a hand-off is pending
//! 48      16    reserved
//! ```
//!
//! The state word binds the header to its own address, its class and a per-allocator
//! secret, so zeroed or stale memory, or a header copied from elsewhere, does not decode
//! as a live block. A sequential double free always finds `FREE` and is rejected, in
//! every build.

use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes of header before every user pointer.
pub const HEADER_SIZE: usize = 64;
/// `holder` of a block handed off to another thread and not yet received.
pub(crate) const IN_FLIGHT: u64 = u64::MAX;
/// `class` value of a large allocation.
pub(crate) const LARGE_CLASS: u8 = u8::MAX;

const LIVE: u32 = 0x4C49_5645;
const FREE: u32 = 0x4652_4545;

/// Block header. All access goes through raw pointers to arena memory.
#[repr(C, align(64))]
pub(crate) struct Header {
    pub(crate) link: *mut Header,
    pub(crate) state: AtomicU32,
    pub(crate) generation: u32,
    pub(crate) requested: u64,
    pub(crate) owner: u64,
    pub(crate) class: u8,
    _pad: [u8; 3],
    pub(crate) slab: u32,
    pub(crate) holder: u64,
    _reserved: [u64; 2],
}

const _: () = assert!(size_of::<Header>() == HEADER_SIZE);
const _: () = assert!(align_of::<Header>() == HEADER_SIZE);

/// Address-bound check value of a header; `secret` is per allocator. XOR only (no
/// multiply on the fast path): a header copied from another address, zeroed memory or
/// another class's stale header decodes to a different value.
#[inline(always)]
pub(crate) fn check(secret: u64, header: *const Header, class: u8) -> u32 {
    ((header as u64 >> 6) as u32) ^ (secret as u32) ^ (u32::from(class) << 24)
}

#[inline(always)]
pub(crate) const fn live(check: u32) -> u32 {
    check ^ LIVE
}

#[inline(always)]
pub(crate) const fn free(check: u32) -> u32 {
    check ^ FREE
}

/// The user pointer of a header.
#[inline(always)]
pub(crate) fn user_of(header: *mut Header) -> *mut u8 {
    header.cast::<u8>().wrapping_add(HEADER_SIZE)
}

/// The user pointer of a header, as `NonNull`.
#[inline(always)]
pub(crate) fn user_ptr(header: *mut Header) -> std::ptr::NonNull<u8> {
    // SAFETY: headers live in the arena mapping, so header + 64 is a non-null address.
    unsafe { std::ptr::NonNull::new_unchecked(user_of(header)) }
}

/// Writes a complete header for a block that is about to enter a free list for the first
/// time in this slab's life (or a large span that is about to be handed out).
///
/// # Safety
/// `header` must point to 64 writable, 64-aligned bytes of arena memory that nobody else
/// accesses.
#[inline]
pub(crate) unsafe fn initialize(header: *mut Header, secret: u64, class: u8, slab: u32, generation: u32) {
    let value = Header {
        link: std::ptr::null_mut(),
        state: AtomicU32::new(free(check(secret, header, class))),
        generation,
        requested: 0,
        owner: 0,
        class,
        _pad: [0; 3],
        slab,
        holder: 0,
        _reserved: [0; 2],
    };
    // SAFETY: guaranteed by the caller (see above).
    unsafe { header.write(value) };
}

/// Reads the state word.
///
/// # Safety
/// `header` must point into mapped arena memory, 64-aligned.
#[inline(always)]
pub(crate) unsafe fn state(header: *const Header) -> u32 {
    // SAFETY: the caller guarantees a mapped, aligned header; the word is atomic so a
    // racing writer cannot make this read undefined.
    unsafe { (*header).state.load(Ordering::Relaxed) }
}

/// Sets the state word.
///
/// # Safety
/// As [`state`].
#[inline(always)]
pub(crate) unsafe fn set_state(header: *const Header, value: u32) {
    // SAFETY: as in `state`.
    unsafe { (*header).state.store(value, Ordering::Relaxed) };
}

/// Whether the thread cache `cache` holds this (live) block: it received it in a
/// hand-off, or handed it out and never handed it off.
///
/// # Safety
/// `header` must point to an initialised header in mapped arena memory.
#[inline]
pub(crate) unsafe fn held_by(header: *const Header, cache: u64) -> bool {
    // SAFETY: guaranteed by the caller.
    let (holder, owner) = unsafe { ((*header).holder, (*header).owner) };
    holder == cache || (holder == 0 && owner == cache)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_binds_address_class_and_secret() {
        let h = 0x1000_0040 as *const Header;
        let c = check(7, h, 3);
        assert_ne!(c, check(7, 0x1000_0080 as *const Header, 3));
        assert_ne!(c, check(7, h, 4));
        assert_ne!(c, check(8, h, 3));
        assert_ne!(live(c), free(c));
    }

    #[test]
    fn initialized_header_is_free_and_round_trips() {
        #[repr(C, align(64))]
        struct Block([u8; 128]);
        let mut block = Block([0xEE; 128]);
        let header = block.0.as_mut_ptr().cast::<Header>();
        // SAFETY: `block` is 64-aligned and 128 bytes long, enough for one header.
        unsafe {
            initialize(header, 99, 5, 17, 41);
            assert_eq!(state(header), free(check(99, header, 5)));
            assert_eq!(((*header).slab, (*header).generation, (*header).class), (17, 41, 5));
            assert_eq!(user_of(header) as usize - HEADER_SIZE, header as usize);
        }
    }
}
