//! The Windows backend: `VirtualAlloc` / `VirtualFree`.
//!
//! - Reserving (`MEM_RESERVE`, `PAGE_NOACCESS`) costs address space only; reservations
//!   start on the allocation granularity (64 KiB), which is a whole number of pages.
//! - Committing (`MEM_COMMIT`, `PAGE_READWRITE`) charges the whole range against the
//!   system commit limit at once, touched or not (hence [`COMMIT_IS_CHARGED`]); the pages
//!   themselves materialise, zero-filled, on first touch.
//! - Purging must keep the range readable and writable at every instant and make it read
//!   zeros. Windows has no single call for that: decommitting and recommitting zeroes, but
//!   leaves the range inaccessible between the two calls (a stale JavaScript view read at
//!   that moment faults, and a recommit refused by a full commit limit would leave it so
//!   for good); `MEM_RESET` and `DiscardVirtualMemory` keep it accessible but leave the
//!   contents undefined (the old bytes may stay readable). So the range is written with
//!   zeros first and then reset: afterwards each page holds either those zeros (not yet
//!   discarded) or a fresh demand-zero page (discarded; a reset page is never read back
//!   from the page file), zeros either way. `VirtualUnlock` on the unlocked range then
//!   takes its pages out of the working set at once (documented behaviour; it reports
//!   `ERROR_NOT_LOCKED`), and as they were reset they go without being written to the
//!   page file. This is done a megabyte at a time, so zeroing never adds more than that to
//!   the working set. The commit charge stays: the range is still committed.
//! - Releasing (`MEM_RELEASE`) takes the reservation's base and size 0, and frees the whole
//!   reservation: the contract never releases part of one (regions release theirs whole).
//! - The commit limit is `GlobalMemoryStatusEx`'s `ullTotalPageFile` (physical memory plus
//!   page files).
//! - The main thread: Windows has no call that names it, so the thread that runs the C
//!   runtime's initializers (a `.CRT$XCU` entry) records its id: in a program that is the
//!   main thread, before `main`; in a DLL (such as a Node addon) it is the thread that
//!   loaded it. If the entry never runs, no thread is the main one (the safe answer).

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use windows_sys::Win32::System::Memory::{
    MEM_COMMIT, MEM_RELEASE, MEM_RESERVE, MEM_RESET, PAGE_NOACCESS, PAGE_READWRITE, VirtualAlloc, VirtualFree,
    VirtualUnlock,
};
use windows_sys::Win32::System::SystemInformation::{GetSystemInfo, GlobalMemoryStatusEx, MEMORYSTATUSEX, SYSTEM_INFO};
use windows_sys::Win32::System::Threading::GetCurrentThreadId;

use super::last_error;

/// Windows charges committed memory against the commit limit when it is committed.
pub(super) const COMMIT_IS_CHARGED: bool = true;

/// Bytes zeroed and reset at a time by [`purge`].
const PURGE_PIECE: usize = 1 << 20;

/// The page size, or 0 if the OS does not say.
pub(super) fn page_size() -> usize {
    let mut info = SYSTEM_INFO::default();
    // SAFETY: `info` is a valid, writable SYSTEM_INFO; the call cannot fail.
    unsafe { GetSystemInfo(&mut info) };
    info.dwPageSize as usize
}

pub(super) fn commit_limit() -> usize {
    let mut status = MEMORYSTATUSEX { dwLength: size_of::<MEMORYSTATUSEX>() as u32, ..MEMORYSTATUSEX::default() };
    // SAFETY: `status` is a valid, writable MEMORYSTATUSEX with `dwLength` set, as the call
    // requires.
    if unsafe { GlobalMemoryStatusEx(&mut status) } == 0 {
        return 0;
    }
    usize::try_from(status.ullTotalPageFile).unwrap_or(usize::MAX)
}

/// Id of the thread that ran the C runtime's initializers (0: none did; no thread has id 0).
static MAIN_THREAD: AtomicU32 = AtomicU32::new(0);

extern "C" fn record_main_thread() {
    // SAFETY: GetCurrentThreadId takes no arguments and cannot fail.
    MAIN_THREAD.store(unsafe { GetCurrentThreadId() }, Ordering::Relaxed);
}

/// The C runtime calls every function pointer in the `.CRT$XCU` section before `main` (in
/// a DLL: when the DLL is loaded), on the thread that starts the program.
// SAFETY (link_section): the section holds `extern "C" fn()` pointers that the C runtime
// calls with no arguments, which is this static's type.
#[used]
#[unsafe(link_section = ".CRT$XCU")]
static RECORD_MAIN_THREAD: extern "C" fn() = record_main_thread;

pub(super) fn is_main_thread() -> bool {
    let main = MAIN_THREAD.load(Ordering::Relaxed);
    // SAFETY: GetCurrentThreadId takes no arguments and cannot fail.
    main != 0 && main == unsafe { GetCurrentThreadId() }
}

pub(super) fn reserve(len: usize) -> Result<NonNull<u8>, i32> {
    // SAFETY: a reservation at a system-chosen address touches no existing memory; the
    // result is checked for null below.
    let ptr = unsafe { VirtualAlloc(std::ptr::null(), len, MEM_RESERVE, PAGE_NOACCESS) };
    NonNull::new(ptr.cast::<u8>()).ok_or_else(last_error)
}

/// # Safety
/// See [`super::commit`].
pub(super) unsafe fn commit(start: usize, len: usize) -> Result<(), i32> {
    // SAFETY: the caller guarantees the range is inside one of our reservations;
    // committing it (again, for any part already committed) affects nothing else.
    let ptr = unsafe { VirtualAlloc(start as *const _, len, MEM_COMMIT, PAGE_READWRITE) };
    if ptr.is_null() { Err(last_error()) } else { Ok(()) }
}

/// # Safety
/// See [`super::purge`].
pub(super) unsafe fn purge(start: usize, len: usize) -> bool {
    let mut accepted = true;
    let end = start + len;
    let mut at = start;
    while at < end {
        let piece = PURGE_PIECE.min(end - at);
        // SAFETY: the caller guarantees `[start, end)` is committed (readable and
        // writable), ours, page-aligned and unused; `[at, at + piece)` lies inside it and
        // is page-aligned (`PURGE_PIECE` is a whole number of pages). MEM_RESET keeps the
        // pages committed and accessible, and VirtualUnlock on pages that are not locked
        // only trims them from the working set.
        unsafe {
            (at as *mut u8).write_bytes(0, piece);
            accepted &= !VirtualAlloc(at as *const _, piece, MEM_RESET, PAGE_NOACCESS).is_null();
            VirtualUnlock(at as *const _, piece);
        }
        at += piece;
    }
    accepted
}

/// # Safety
/// See [`super::release`].
pub(super) unsafe fn release(ptr: NonNull<u8>, _len: usize) {
    // SAFETY: the caller guarantees `ptr` is the base of one whole reservation of ours
    // that is no longer used; MEM_RELEASE with size 0 frees exactly that reservation. A
    // failure would only leak address space, so the result is ignored.
    unsafe {
        VirtualFree(ptr.as_ptr().cast(), 0, MEM_RELEASE);
    }
}
