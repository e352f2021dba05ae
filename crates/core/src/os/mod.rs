//! The operating-system interface: reserving address space, committing it, giving pages
//! back, page size, how much memory the machine can commit, and which thread is the main
//! one. The rest of the crate never names an OS API: each supported OS has one backend
//! (`unix.rs` for Linux and macOS, `windows.rs` for Windows), and this file holds the
//! contract every backend keeps.
//!
//! The life of a range: [`reserve`] (address space only, inaccessible, nothing charged)
//! → [`commit`] (readable and writable; pages materialise on first touch) → any number of
//! [`purge`]s (contents dropped, RSS back to the OS, the range stays readable and
//! writable: a stale JavaScript view over it reads zeros instead of faulting) →
//! [`release`] of the whole reservation when nothing can reach it any more. A committed
//! range is never made inaccessible again, and a reservation is never released in part.
//!
//! Error numbers are the OS's own: `errno` on Linux and macOS, `GetLastError()` on
//! Windows (both what `std::io::Error::from_raw_os_error` understands).
//!
//! | | Linux | macOS | Windows |
//! |---|---|---|---|
//! | reserve | `mmap(PROT_NONE, MAP_NORESERVE)` | `mmap(PROT_NONE)` | `VirtualAlloc(MEM_RESERVE)` |
//! | commit | `mprotect(READ \| WRITE)` | `mprotect(READ \| WRITE)` | `VirtualAlloc(MEM_COMMIT)` |
//! | commit charged | on touch (at commit under strict overcommit) | on touch | at commit |
//! | purge | `madvise(MADV_DONTNEED)` | `mmap(MAP_FIXED)` over the range | zero, `MEM_RESET`, `VirtualUnlock` |
//! | release | `munmap` | `munmap` | `VirtualFree(MEM_RELEASE)` |
//! | page size | `sysconf(_SC_PAGESIZE)` | `sysconf(_SC_PAGESIZE)` | `GetSystemInfo` |
//! | commit limit | `sysinfo`: RAM + swap | `sysctl hw.memsize`: RAM | `GlobalMemoryStatusEx`: RAM + page files |
//! | main thread | thread id = process id | `pthread_main_np` | id recorded by a C runtime initializer |

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

#[cfg(not(any(target_os = "linux", target_os = "macos", windows)))]
compile_error!("tensor-arena-core has memory backends for Linux, macOS and Windows only (src/os)");

#[cfg(unix)]
mod unix;
#[cfg(unix)]
use unix as imp;
#[cfg(windows)]
mod windows;
#[cfg(windows)]
use windows as imp;

/// Whether committed memory counts against the machine's commit limit from the moment it
/// is committed (Windows), rather than when its pages are first touched (Linux with its
/// default overcommit, macOS). A region commits its side tables whole (about half its data
/// size, `region.rs`), so where this holds the automatic first region is the smallest one
/// (`arena.rs`).
pub(crate) const COMMIT_IS_CHARGED: bool = imp::COMMIT_IS_CHARGED;

/// Fallback page size where the OS does not say.
const DEFAULT_PAGE: usize = 4096;
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(0);

/// The OS page size (a power of two), cached after the first call.
pub(crate) fn page_size() -> usize {
    let cached = PAGE_SIZE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached;
    }
    let size = Some(imp::page_size()).filter(|s| s.is_power_of_two()).unwrap_or(DEFAULT_PAGE);
    PAGE_SIZE.store(size, Ordering::Relaxed);
    size
}

/// Bytes of memory the machine can commit (0 if unknown): physical memory plus swap on
/// Linux, physical memory on macOS (its swap grows on demand), the commit limit (physical
/// memory plus page files) on Windows.
pub(crate) fn commit_limit() -> usize {
    imp::commit_limit()
}

/// Whether the calling thread is the process's main thread: the one whose thread-locals
/// are destroyed by `exit()` as the process ends. `false` where the OS cannot tell (the safe
/// answer: the caller then does its ordinary thread-exit work).
pub(crate) fn is_main_thread() -> bool {
    imp::is_main_thread()
}

/// Reserves `len` bytes (a whole number of pages) of address space: no access, nothing
/// committed or charged. Returns the start (page-aligned) or the OS error number.
pub(crate) fn reserve(len: usize) -> Result<NonNull<u8>, i32> {
    imp::reserve(len)
}

/// Makes `[start, start + len)` of a reservation readable and writable. Pages are
/// materialised (and count in RSS) on first touch and read as zeros until written.
/// Returns the OS error number on refusal (the machine cannot commit that much).
///
/// # Safety
/// The range must lie inside one reservation made by [`reserve`], page-aligned.
pub(crate) unsafe fn commit(start: usize, len: usize) -> Result<(), i32> {
    if len == 0 {
        return Ok(());
    }
    // SAFETY: forwarded contract.
    unsafe { imp::commit(start, len) }
}

/// Gives the pages of `[start, start + len)` back to the OS: RSS drops, the range stays
/// readable and writable at every instant (also while this runs), and the next read of
/// any byte gives zero. Returns whether the OS accepted; if not, the range is still
/// readable and writable.
///
/// # Safety
/// The range must lie inside a committed range of ours, page-aligned, and hold no data
/// anyone still needs.
pub(crate) unsafe fn purge(start: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: forwarded contract.
    unsafe { imp::purge(start, len) }
}

/// Returns a whole reservation to the OS, committed parts included.
///
/// # Safety
/// `ptr`/`len` must be exactly a reservation made by [`reserve`] (never a part of one)
/// that nothing will access again.
pub(crate) unsafe fn release(ptr: NonNull<u8>, len: usize) {
    // SAFETY: forwarded contract.
    unsafe { imp::release(ptr, len) }
}

/// The calling thread's last OS error number.
fn last_error() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spawned_thread_is_not_the_main_thread() {
        // libtest runs every test on a spawned thread, so both calls are off the main
        // thread.
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
            assert_eq!(*ptr.as_ptr().add(2 * page - 1), 0, "fresh pages read as zeros");
            ptr.as_ptr().write_bytes(0xAB, 2 * page);
            assert!(purge(start, page));
            assert_eq!(*ptr.as_ptr(), 0);
            assert_eq!(*ptr.as_ptr().add(page - 1), 0);
            assert_eq!(*ptr.as_ptr().add(page), 0xAB);
            // Purged memory stays writable.
            ptr.as_ptr().write(7);
            assert_eq!(*ptr.as_ptr(), 7);
            release(ptr, 4 * page);
        }
    }

    #[test]
    fn a_purge_of_many_megabytes_zeroes_every_page_and_leaves_its_neighbours() {
        // Larger than one piece of the Windows backend's purge (1 MiB), and not a multiple
        // of it, inside a committed range with live bytes on both sides.
        let page = page_size();
        let len = (3 << 20) + 5 * page;
        let total = len + 2 * page;
        let ptr = reserve(total).unwrap();
        let start = ptr.as_ptr() as usize;
        // SAFETY: a fresh reservation of ours, committed whole and used only here.
        unsafe {
            commit(start, total).unwrap();
            ptr.as_ptr().write_bytes(0x5A, total);
            assert!(purge(start + page, len));
            let bytes = std::slice::from_raw_parts(ptr.as_ptr(), total);
            assert!(bytes[..page].iter().all(|&b| b == 0x5A), "the page before is kept");
            assert!(bytes[page..page + len].iter().all(|&b| b == 0), "every purged byte reads zero");
            assert!(bytes[page + len..].iter().all(|&b| b == 0x5A), "the page after is kept");
            release(ptr, total);
        }
    }

    #[test]
    fn purging_a_never_touched_range_keeps_it_zero() {
        let page = page_size();
        let ptr = reserve(8 * page).unwrap();
        let start = ptr.as_ptr() as usize;
        // SAFETY: a fresh reservation of ours, committed whole and used only here.
        unsafe {
            commit(start, 8 * page).unwrap();
            assert!(purge(start, 8 * page));
            assert!(std::slice::from_raw_parts(ptr.as_ptr(), 8 * page).iter().all(|&b| b == 0));
            release(ptr, 8 * page);
        }
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_refused_reservation_reports_an_os_error() {
        // 4 EiB: more address space than any 64-bit OS hands out.
        let err = reserve(1 << 62).err();
        assert!(matches!(err, Some(code) if code != 0), "{err:?}");
    }
}
