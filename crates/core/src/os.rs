//! The operating-system interface: anonymous mappings, page size, returning pages.

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

/// Reserves `len` bytes of private anonymous read-write memory. Pages are committed on
/// first touch (`MAP_NORESERVE`: no swap reservation up front).
pub(crate) fn map_anonymous(len: usize) -> Result<NonNull<u8>, i32> {
    // SAFETY: an anonymous private mapping at a kernel-chosen address touches no existing
    // memory; the result is checked against MAP_FAILED below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    NonNull::new(ptr.cast::<u8>()).ok_or(0)
}

/// Unmaps a region returned by [`map_anonymous`].
///
/// # Safety
/// `ptr`/`len` must be exactly a mapping made by [`map_anonymous`] that nothing will
/// access again.
pub(crate) unsafe fn unmap(ptr: NonNull<u8>, len: usize) {
    // SAFETY: the caller guarantees the range is one whole mapping of ours that is no
    // longer used. A failure would only leak address space, so the result is ignored.
    unsafe {
        libc::munmap(ptr.as_ptr().cast(), len);
    }
}

/// Gives the pages of `[start, start + len)` back to the OS: RSS drops at once and the
/// next touch reads zeros. `start` and `len` must be page multiples (callers pass spans).
/// Returns whether the kernel accepted the advice.
///
/// # Safety
/// The range must lie inside a live mapping of ours and hold no data anyone still needs.
pub(crate) unsafe fn release_pages(start: usize, len: usize) -> bool {
    if len == 0 {
        return true;
    }
    // SAFETY: the caller guarantees the range is inside our mapping and unused;
    // MADV_DONTNEED on a private anonymous mapping only drops page contents.
    unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) == 0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_size_is_a_power_of_two() {
        assert!(page_size().is_power_of_two());
        assert!(page_size() >= 4096);
    }

    #[test]
    fn released_pages_read_back_as_zero() {
        let page = page_size();
        let ptr = map_anonymous(2 * page).unwrap();
        // SAFETY: the two pages were just mapped read-write for this test.
        unsafe {
            ptr.as_ptr().write_bytes(0xAB, 2 * page);
            assert!(release_pages(ptr.as_ptr() as usize, page));
            assert_eq!(*ptr.as_ptr(), 0);
            assert_eq!(*ptr.as_ptr().add(page), 0xAB);
            unmap(ptr, 2 * page);
        }
    }
}
