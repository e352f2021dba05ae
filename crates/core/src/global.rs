//! The process-global allocator (default configuration, built on first use) and the
//! per-thread caches behind the convenience API. A thread's cache is drained to the
//! central pool when the thread exits.
//!
//! Re-entrancy: while this module runs allocator code on a thread, a thread-local flag
//! is set; a nested call (the allocator's own bookkeeping allocating through
//! [`TensorArenaGlobalAlloc`](crate::TensorArenaGlobalAlloc)) sees it and gets
//! [`AllocError::CacheUnavailable`] instead of deadlocking.

use std::cell::{Cell, UnsafeCell};
use std::ptr::NonNull;
use std::sync::OnceLock;

use parking_lot::Mutex;

use crate::allocator::Allocator;
use crate::config::AllocatorConfig;
use crate::error::{AllocError, FreeError, InitError};
use crate::os;
use crate::realloc::ReallocError;
use crate::stats::AllocatorStats;
use crate::thread_cache::ThreadCache;

static GLOBAL: OnceLock<Allocator> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

/// A thread's state, one thread-local (one TLS access per call): the re-entrancy flag
/// and the thread's cache.
///
/// Invariant: `cache` is only reached while `busy` is set by the one frame that set it
/// (`Local::enter`), so there is never more than one `&mut` to it.
struct Local {
    busy: Cell<bool>,
    cache: UnsafeCell<Option<ThreadCache>>,
}

impl Drop for Local {
    /// Thread exit: drains the cache with the re-entrancy flag set, so the drain's own
    /// allocations (through `TensorArenaGlobalAlloc`) go elsewhere.
    ///
    /// Except on the main thread: its thread-locals are destroyed by `exit()` (a Rust
    /// `main` returning, or `process::exit`), when the process is ending. Returning its
    /// blocks there is wasted work, and not small: each class's return also absorbs that
    /// class's inbox, which in a program that freed millions of blocks on other threads took
    /// 0.2–0.3 s at exit (the real-program benchmark). The memory goes with the process. (A
    /// main thread that ends with `pthread_exit` while others run keeps its cached blocks
    /// out of use: at most its per-class cache targets.)
    fn drop(&mut self) {
        self.busy.set(true);
        let cache = self.cache.get_mut().take();
        if os::is_main_thread() {
            // Deliberately not dropped (see above).
            let _ = std::mem::ManuallyDrop::new(cache);
        } else {
            drop(cache);
        }
    }
}

thread_local! {
    static LOCAL: Local = const { Local { busy: Cell::new(false), cache: UnsafeCell::new(None) } };
}

/// Proof that this frame set the re-entrancy flag; clears it when the frame ends (also
/// on unwind), and is the one way to the thread's cache meanwhile.
struct Entered<'a>(&'a Local);

impl Entered<'_> {
    /// This thread's cache, made on its first use.
    #[inline]
    fn cache(&mut self) -> &mut ThreadCache {
        // SAFETY: `Local`'s invariant: the frame holding this `Entered` set `busy`, so no
        // other reference to the cache exists while it lives, and `&mut self` keeps this
        // one unique.
        let slot = unsafe { &mut *self.0.cache.get() };
        match slot {
            Some(cache) => cache,
            None => first_cache(slot),
        }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.busy.set(false);
    }
}

impl Local {
    /// Sets the re-entrancy flag; `None` if it was already set (a nested call).
    #[inline]
    fn enter(&self) -> Option<Entered<'_>> {
        if self.busy.replace(true) { None } else { Some(Entered(self)) }
    }
}

/// The global allocator, if it has been built.
#[inline]
pub(crate) fn existing() -> Option<&'static Allocator> {
    GLOBAL.get()
}

/// The global allocator, built with the default configuration on first use. A failed
/// build is not remembered: the next call tries again. Building it allocates; under
/// `TensorArenaGlobalAlloc` those allocations see the re-entrancy flag the caller set
/// (else they would wait for the init lock this thread holds).
#[cold]
#[inline(never)]
fn build_global() -> Result<&'static Allocator, InitError> {
    let _init = INIT.lock();
    if let Some(allocator) = GLOBAL.get() {
        return Ok(allocator);
    }
    let allocator = Allocator::new(AllocatorConfig::default())?;
    Ok(GLOBAL.get_or_init(|| allocator))
}

/// This thread's first call: its cache (kept out of the inlined path).
#[cold]
#[inline(never)]
fn first_cache(slot: &mut Option<ThreadCache>) -> &mut ThreadCache {
    slot.insert(ThreadCache::new())
}

/// Runs `f` with the global allocator and this thread's cache, unless the thread is
/// already inside the allocator or its thread-locals are gone (thread teardown).
#[inline]
fn with_cache<R>(f: impl FnOnce(&Allocator, &mut ThreadCache) -> R) -> Result<R, AllocError> {
    LOCAL
        .try_with(|local| {
            let Some(mut entered) = local.enter() else {
                return Err(AllocError::CacheUnavailable);
            };
            let allocator = match GLOBAL.get() {
                Some(allocator) => allocator,
                None => build_global().map_err(AllocError::InitFailed)?,
            };
            let cache = entered.cache();
            Ok(f(allocator, cache))
        })
        .unwrap_or(Err(AllocError::CacheUnavailable))
}

/// [`TensorArenaGlobalAlloc::alloc`](crate::TensorArenaGlobalAlloc)'s path: a block of
/// `size` bytes, or `None` for the adapter to ask the system allocator (re-entrant call,
/// thread teardown, no global allocator, or the arena cannot serve it). No error value
/// is built on the way, so the inlined path stays short.
#[inline]
pub(crate) fn adapter_allocate(size: usize) -> Option<NonNull<u8>> {
    LOCAL
        .try_with(|local| {
            let mut entered = local.enter()?;
            let allocator = GLOBAL.get().or_else(|| build_global().ok())?;
            let cache = entered.cache();
            allocator.allocate_with_cache(cache, size).ok()
        })
        .ok()
        .flatten()
}

/// [`TensorArenaGlobalAlloc::realloc`](crate::TensorArenaGlobalAlloc)'s path for a block
/// of the global arena: the resized block, or `None` (nothing changed) for the adapter to
/// allocate elsewhere, copy and free.
///
/// # Safety
/// As [`reallocate`].
#[inline]
pub(crate) unsafe fn adapter_reallocate(
    allocator: &'static Allocator,
    ptr: NonNull<u8>,
    new_size: usize,
) -> Option<NonNull<u8>> {
    LOCAL
        .try_with(|local| {
            let mut entered = local.enter()?;
            let cache = entered.cache();
            // SAFETY: forwarded contract; on error nothing changed.
            unsafe { allocator.reallocate(cache, ptr, new_size) }.ok()
        })
        .ok()
        .flatten()
}

/// [`TensorArenaGlobalAlloc::dealloc`](crate::TensorArenaGlobalAlloc)'s path for a block
/// of the global arena: through this thread's cache, or without one (re-entrant call,
/// thread teardown). An invalid free leaves the block alone (counted in the stats).
///
/// # Safety
/// As [`deallocate`].
#[inline]
pub(crate) unsafe fn adapter_deallocate(allocator: &'static Allocator, ptr: NonNull<u8>) {
    let cached = LOCAL
        .try_with(|local| {
            let mut entered = local.enter()?;
            let cache = entered.cache();
            // SAFETY: forwarded contract. An error leaves the block alone.
            let _ = unsafe { allocator.deallocate_with_cache(cache, ptr) };
            Some(())
        })
        .ok()
        .flatten();
    if cached.is_none() {
        // SAFETY: forwarded contract.
        unsafe { adapter_deallocate_uncached(allocator, ptr) };
    }
}

/// [`adapter_deallocate`] without a cache: the block goes to its class inbox.
///
/// # Safety
/// As [`deallocate`].
#[cold]
#[inline(never)]
unsafe fn adapter_deallocate_uncached(allocator: &'static Allocator, ptr: NonNull<u8>) {
    // SAFETY: forwarded contract. An error leaves the block alone (counted).
    let _ = unsafe { allocator.deallocate_uncached(ptr, None) };
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

/// Both public frees (one call each: inlining this into them made the adapter slower).
#[inline]
unsafe fn free(ptr: NonNull<u8>, size: Option<usize>) -> Result<(), FreeError> {
    let cached = with_cache(|a, cache| match size {
        // SAFETY: forwarded contract of the public free functions.
        Some(size) => unsafe { a.deallocate_with_size(cache, ptr, size) },
        // SAFETY: as above.
        None => unsafe { a.deallocate_with_cache(cache, ptr) },
    });
    match cached {
        Ok(result) => result,
        // SAFETY: forwarded contract.
        Err(e) => unsafe { free_without_cache(ptr, size, e) },
    }
}

/// A free that could not use this thread's cache (a re-entrant call, thread teardown, or
/// the global allocator could not be built): without a cache, to the class inbox.
///
/// # Safety
/// As [`deallocate`].
#[cold]
#[inline(never)]
unsafe fn free_without_cache(ptr: NonNull<u8>, size: Option<usize>, why: AllocError) -> Result<(), FreeError> {
    if let AllocError::InitFailed(e) = why {
        return Err(FreeError::InitFailed(e));
    }
    let allocator = existing().ok_or(FreeError::ForeignPointer { addr: ptr.as_ptr() as usize })?;
    if size.is_some() {
        return Err(FreeError::CacheUnavailable);
    }
    // SAFETY: forwarded contract.
    unsafe { allocator.deallocate_uncached(ptr, None) }
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
    let stats = || GLOBAL.get().map_or_else(build_global, Ok).map(Allocator::stats);
    // Building it allocates: with this thread's re-entrancy flag set (see `build_global`).
    LOCAL
        .try_with(|local| {
            let _entered = local.enter();
            stats()
        })
        .unwrap_or_else(|_| stats())
}
