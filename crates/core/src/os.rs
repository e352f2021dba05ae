//! The operating-system interface: reserving address space, committing it, giving pages
//! back, page size and how much memory the machine can commit. The rest of the crate
//! never names an OS API.
//!
//! The life of a range: [`reserve`] (address space only, inaccessible, nothing charged)
//! → [`commit`] (readable and writable; pages materialise on first touch) → any number of
//! [`purge`]s (contents dropped, RSS back to the OS, the range stays readable and
//! writable: a stale JavaScript view over it reads zeros instead of faulting) →
//! [`release`] when nothing can reach the range any more.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Fallback page size where the OS does not say.
const DEFAULT_PAGE: usize = 4096;
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The OS page size (a power of two), cached after the first call.
pub(crate) fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let raw = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    let size = usize::try_from(raw).ok().filter(|s| s.is_power_of_two()).unwrap_or(DEFAULT_PAGE);
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Bytes of memory the machine can commit: physical memory plus swap (0 if unknown).
pub(crate) fn commit_limit() -> usize {
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

/// Whether the calling thread is the process's main thread (on Linux its thread id is
/// the process id; elsewhere this answers `false`, the safe default).
pub(crate) fn is_main_thread() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: gettid and getpid take no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_gettid) == libc::c_long::from(libc::getpid()) }
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Reserves `len` bytes of address space: no access, nothing committed or charged.
/// Returns the start (page-aligned) or the OS error number.
pub(crate) fn reserve(len: usize) -> Result<NonNull<u8>, i32> {
    // SAFETY: an anonymous private mapping at a kernel-chosen address touches no existing
    // memory; the result is checked against MAP_FAILED below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(last_errno());
    }
    NonNull::new(ptr.cast::<u8>()).ok_or(0)
}

/// Makes `[start, start + len)` of a reservation readable and writable. Pages are
/// materialised (and count in RSS) on first touch. Returns the OS error number on refusal
/// (strict overcommit: the machine cannot commit that much).
///
/// # Safety
/// The range must lie inside a reservation made by [`reserve`], page-aligned.
pub(crate) unsafe fn commit(start: usize, len: usize) -> Result<(), i32> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: the caller guarantees the range is inside one of our reservations;
    // changing its protection affects nothing else.
    let status = unsafe { libc::mprotect(start as *mut libc::c_void, len, libc::PROT_READ | libc::PROT_WRITE) };
    if status == 0 { Ok(()) } else { Err(last_errno()) }
}

/// Gives the pages of `[start, start + len)` back to the OS: RSS drops at once, the range
/// stays readable and writable, and the next touch reads zeros. Returns whether the kernel
/// accepted the advice.
///
/// # Safety
/// The range must lie inside a committed range of ours, page-aligned, and hold no data
/// anyone still needs.
pub(crate) unsafe fn purge(start: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: the caller guarantees the range is committed, ours and unused;
    // MADV_DONTNEED on a private anonymous mapping only drops page contents.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

/// Returns a whole reservation to the OS.
///
/// # Safety
/// `ptr`/`len` must be exactly a reservation made by [`reserve`] that nothing will access
/// again.
pub(crate) unsafe fn release(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is one whole reservation of ours that is no
    // longer used. A failure would only leak address space, so the result is ignored.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_thread_is_not_the_main_thread() {
        // libtest runs every test on a spawned thread, so both calls are off the main
        // thread (whose thread id is the process id: what `is_main_thread` compares).
        assert!(!std::thread::spawn(is_main_thread).join().unwrap_or(true));
        assert!(!is_main_thread());
    }

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn the_machine_can_commit_something() {
        assert!(commit_limit() > 0);
    }

    #[test]
    fn committed_pages_are_writable_and_purged_pages_read_back_as_zero() {
        let page = page_size();
        let ptr = reserve(4 * page).unwrap();
        let start = ptr.as_ptr() as usize;
        // SAFETY: the first two pages of a fresh reservation of ours are committed and
        // used only here.
        unsafe {
            commit(start, 2 * page).unwrap();
            ptr.as_ptr().write_bytes(0xAB, 2 * page);
            assert!(purge(start, page));
            assert_eq!(*ptr.as_ptr(), 0);
            assert_eq!(*ptr.as_ptr().add(page), 0xAB);
            // Purged memory stays writable.
            ptr.as_ptr().write(7);
            assert_eq!(*ptr.as_ptr(), 7);
            release(ptr, 4 * page);
        }
    }
}
