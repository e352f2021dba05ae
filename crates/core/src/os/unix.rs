//! The Linux and macOS backend: anonymous private mappings. What differs between the two
//! is `cfg`'d here:
//! - Reserving: Linux maps with `MAP_NORESERVE`, so even committed pages are charged only
//!   when touched (unless the machine runs strict overcommit); macOS has no commit charge
//!   at all (and no `MAP_NORESERVE` semantics), so a plain `PROT_NONE` mapping does.
//! - Purging: on Linux `MADV_DONTNEED` on a private anonymous mapping drops the pages at
//!   once and the next read faults in a zero page. On macOS neither `MADV_DONTNEED` nor
//!   `MADV_FREE` gives zeros (the old bytes stay readable until the kernel gets round to
//!   reclaiming the pages), so a fresh anonymous mapping is laid over the range with
//!   `MAP_FIXED`: the kernel swaps the old pages for demand-zero ones in one step under
//!   its map lock (a concurrent reader sees the old bytes or zeros, never a hole), and if
//!   the new mapping fails the old one is kept. jemalloc purges the same way where
//!   `madvise` does not zero.
//! - Commit limit: `sysinfo` (RAM + swap) on Linux, `sysctl hw.memsize` (RAM; swap grows
//!   on demand) on macOS.
//! - Main thread: on Linux its thread id is the process id; macOS says it with
//!   `pthread_main_np`.

use std::ptr::NonNull;

use super::last_error;

/// Neither Linux (with its default overcommit) nor macOS charges untouched pages.
pub(super) const COMMIT_IS_CHARGED: bool = false;

/// The mapping flags of a reservation.
#[cfg(target_os = "linux")]
const RESERVE_FLAGS: libc::c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
#[cfg(target_os = "macos")]
const RESERVE_FLAGS: libc::c_int = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;

/// The page size, or 0 if the OS does not say.
pub(super) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(raw).unwrap_or(0)
}

#[cfg(target_os = "linux")]
pub(super) fn commit_limit() -> usize {
    // SAFETY: an all-zero `sysinfo` is a valid value for the kernel to overwrite.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `sysinfo`.
    if unsafe { libc::sysinfo(&mut info) } != 0 {
        return 0;
    }
    let unit = u64::from(info.mem_unit.max(1));
    let total = (info.totalram as u64).saturating_add(info.totalswap as u64).saturating_mul(unit);
    usize::try_from(total).unwrap_or(usize::MAX)
}

#[cfg(target_os = "macos")]
pub(super) fn commit_limit() -> usize {
    let mut bytes: u64 = 0;
    let mut len = size_of::<u64>();
    // SAFETY: a NUL-terminated name, and an output buffer of `len` bytes that `hw.memsize`
    // (a 64-bit integer) fits; nothing is written (no new value).
    let status = unsafe {
        libc::sysctlbyname(c"hw.memsize".as_ptr(), (&raw mut bytes).cast(), &mut len, std::ptr::null_mut(), 0)
    };
    if status != 0 || len != size_of::<u64>() {
        return 0;
    }
    usize::try_from(bytes).unwrap_or(usize::MAX)
}

#[cfg(target_os = "linux")]
pub(super) fn is_main_thread() -> bool {
    // SAFETY: gettid and getpid take no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) == libc::c_long::from(libc::getpid()) }
}

#[cfg(target_os = "macos")]
pub(super) fn is_main_thread() -> bool {
    // SAFETY: pthread_main_np takes no arguments and cannot fail.
    unsafe { libc::pthread_main_np() == 1 }
}

pub(super) fn reserve(len: usize) -> Result<NonNull<u8>, i32> {
    // SAFETY: an anonymous private mapping at a kernel-chosen address touches no existing
    // memory; the result is checked against MAP_FAILED below.
    let ptr = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_NONE, RESERVE_FLAGS, -1, 0) };
    if ptr == libc::MAP_FAILED {
        return Err(last_error());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or(0)
}

/// # Safety
/// See [`super::commit`].
pub(super) unsafe fn commit(start: usize, len: usize) -> Result<(), i32> {
    // SAFETY: the caller guarantees the range is inside one of our reservations;
    // changing its protection affects nothing else.
    let status = unsafe { libc::mprotect(start as *mut libc::c_void, len, libc::PROT_READ | libc::PROT_WRITE) };
    if status == 0 { Ok(()) } else { Err(last_error()) }
}

/// # Safety
/// See [`super::purge`].
#[cfg(target_os = "linux")]
pub(super) unsafe fn purge(start: usize, len: usize) -> bool {
    // SAFETY: the caller guarantees the range is committed, ours and unused;
    // MADV_DONTNEED on a private anonymous mapping only drops page contents.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

/// # Safety
/// See [`super::purge`].
#[cfg(target_os = "macos")]
pub(super) unsafe fn purge(start: usize, len: usize) -> bool {
    let addr = start as *mut libc::c_void;
    // SAFETY: the caller guarantees the range is committed, ours and unused; MAP_FIXED
    // replaces exactly its pages with a fresh readable, writable, zero-filled private
    // mapping (inside our reservation, which `release` later unmaps whole).
    let ptr = unsafe {
        libc::mmap(
            addr,
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
            -1,
            0,
        )
    };
    ptr == addr
}

/// # Safety
/// See [`super::release`].
pub(super) unsafe fn release(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is one whole reservation of ours that is no
    // longer used. A failure would only leak address space, so the result is ignored.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}
