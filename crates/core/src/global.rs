//! The process-global allocator (default configuration, built on first use) and the
//! per-thread caches behind the convenience API. A thread's cache is drained to the
//! central pool when the thread exits.
//!
//! Re-entrancy: while this module runs allocator code on a thread, a thread-local flag
//! is set; a nested call (the allocator's own bookkeeping allocating through
//! [`TensorArenaGlobalAlloc`](crate::TensorArenaGlobalAlloc)) sees it and gets
//! [`AllocError::CacheUnavailable`] instead of deadlocking.

use std::cell::{Cell, RefCell};
use std::ptr::NonNull;
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::allocator::Allocator;
use crate::config::AllocatorConfig;
use crate::error::{AllocError, FreeError, InitError};
use crate::realloc::ReallocError;
use crate::stats::AllocatorStats;
use crate::thread_cache::ThreadCache;

static GLOBAL: OnceLock<Allocator> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// A thread's cache; dropping it (thread exit) drains it with the re-entrancy flag set.
struct TlsCache(Option<ThreadCache>);

impl Drop for TlsCache {
    fn drop(&mut self) {
        let _busy = Busy::enter();
        drop(self.0.take());
    }
}

thread_local! {
    static BUSY: Cell<bool> = const { Cell::new(false) };
    static CACHE: RefCell<TlsCache> = const { RefCell::new(TlsCache(None)) };
}

/// Sets the re-entrancy flag for its lifetime.
struct Busy(bool);

impl Busy {
    fn enter() -> Self {
        Self(BUSY.with(|b| b.replace(true)))
    }

    fn was_busy(&self) -> bool {
        self.0
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let previous = self.0;
        BUSY.with(|b| b.set(previous));
    }
}

/// The global allocator, if it has been built.
pub(crate) fn existing() -> Option<&'static Allocator> {
    GLOBAL.get()
}

/// The global allocator, built with the default configuration on first use. A failed
/// build is not remembered: the next call tries again.
fn global() -> Result<&'static Allocator, InitError> {
    if let Some(allocator) = GLOBAL.get() {
        return Ok(allocator);
    }
    let _init = INIT.lock();
    if let Some(allocator) = GLOBAL.get() {
        return Ok(allocator);
    }
    let allocator = Allocator::new(AllocatorConfig::default())?;
    Ok(GLOBAL.get_or_init(|| allocator))
}

/// Runs `f` with the global allocator and this thread's cache, unless the thread is
/// already inside the allocator or its cache is gone.
fn with_cache<R>(f: impl FnOnce(&Allocator, &mut ThreadCache) -> R) -> Result<R, AllocError> {
    let busy = Busy::enter();
    if busy.was_busy() {
        return Err(AllocError::CacheUnavailable);
    }
    let allocator = global().map_err(AllocError::InitFailed)?;
    CACHE
        .try_with(|cell| {
            let Ok(mut slot) = cell.try_borrow_mut() else {
                return Err(AllocError::CacheUnavailable);
            };
            let cache = slot.0.get_or_insert_with(ThreadCache::new);
            Ok(f(allocator, cache))
        })
        .unwrap_or(Err(AllocError::CacheUnavailable))
}

/// Allocates `size` bytes from the global allocator through this thread's cache.
///
/// # Errors
/// As [`Allocator::allocate_with_cache`], plus [`AllocError::InitFailed`] and
/// [`AllocError::CacheUnavailable`] (re-entrant call, or during thread teardown).
pub fn allocate(size: usize) -> Result<NonNull<u8>, AllocError> {
    with_cache(|a, cache| a.allocate_with_cache(cache, size))?
}

/// Frees a block of the global allocator. Works during thread teardown too (the block
/// then goes to its class inbox).
///
/// # Safety
/// As [`Allocator::deallocate_with_cache`].
///
/// # Errors
/// As [`Allocator::deallocate_with_cache`], plus [`FreeError::InitFailed`].
pub unsafe fn deallocate(ptr: NonNull<u8>) -> Result<(), FreeError> {
    // SAFETY: forwarded contract.
    unsafe { free(ptr, None) }
}

/// As [`deallocate`], checking the size requested at allocation.
///
/// # Safety
/// As [`Allocator::deallocate_with_cache`].
///
/// # Errors
/// As [`deallocate`], plus [`FreeError::SizeMismatch`].
pub unsafe fn deallocate_with_size(ptr: NonNull<u8>, size: usize) -> Result<(), FreeError> {
    // SAFETY: forwarded contract.
    unsafe { free(ptr, Some(size)) }
}

unsafe fn free(ptr: NonNull<u8>, size: Option<usize>) -> Result<(), FreeError> {
    let cached = with_cache(|a, cache| match size {
        // SAFETY: forwarded contract of the public free functions.
        Some(size) => unsafe { a.deallocate_with_size(cache, ptr, size) },
        // SAFETY: as above.
        None => unsafe { a.deallocate_with_cache(cache, ptr) },
    });
    match cached {
        Ok(result) => result,
        Err(AllocError::InitFailed(e)) => Err(FreeError::InitFailed(e)),
        Err(_) => {
            let allocator = existing().ok_or(FreeError::ForeignPointer { addr: ptr.as_ptr() as usize })?;
            if size.is_some() {
                return Err(FreeError::CacheUnavailable);
            }
            // SAFETY: forwarded contract.
            unsafe { allocator.deallocate_uncached(ptr, None) }
        }
    }
}

/// Resizes a block of the global allocator (see [`Allocator::reallocate`]) through this
/// thread's cache.
///
/// # Safety
/// As [`Allocator::reallocate`].
///
/// # Errors
/// As [`Allocator::reallocate`], plus [`AllocError::CacheUnavailable`] /
/// [`AllocError::InitFailed`] (wrapped in [`ReallocError::Alloc`]); nothing changed then.
pub unsafe fn reallocate(ptr: NonNull<u8>, new_size: usize) -> Result<NonNull<u8>, ReallocError> {
    // SAFETY: forwarded contract.
    with_cache(|a, cache| unsafe { a.reallocate(cache, ptr, new_size) }).map_err(ReallocError::Alloc)?
}

/// Stats of the global allocator (building it if needed).
///
/// # Errors
/// [`InitError`] if the global allocator cannot be built.
pub fn global_stats() -> Result<AllocatorStats, InitError> {
    // Building the global allocator allocates; under `TensorArenaGlobalAlloc` those
    // allocations must see the re-entrancy flag (else they would wait for the init lock
    // this thread holds).
    let _busy = Busy::enter();
    global().map(Allocator::stats)
}
