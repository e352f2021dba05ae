//! What a free does.
//!
//! 1. **Locate** (no memory of the block is read): the pointer must lie in one of the
//!    arena's regions and on the alignment grid, else `ForeignPointer`.
//! 2. **Validate** against the block's out-of-band metadata entry (the one of the
//!    pointer's granule): tag `LIVE` of a small class, else the cold path (a large
//!    allocation; or a rejection: `DoubleFree` for a free or in-flight block,
//!    `ForeignPointer` for a granule where no block starts). A size-checked free compares
//!    the recorded request (`SizeMismatch`), a tracked free the generation (`DoubleFree`
//!    for a stale handle, even after the address was handed out again). Every rejection
//!    leaves the allocation exactly as it was and counts in `rejected_frees_total`.
//! 3. **Mark** the tag `FREE` (so a second free is a double free).
//! 4. **Route**: a block this cache handed out goes at the head of the cache's list for
//!    its class (a local free); past the class's limit `drain` blocks go back to
//!    the central pool. A block another cache handed out goes to its class's inbox (a
//!    remote free), lock-free; the central pool absorbs inboxes on its slow paths.
//!
//! The fast path (inlined into callers) does steps 1–4 for the common case, a local free
//! of a live small block of the first region: the class from the size (or the slab map),
//! the entry from the address with a shift and an add, one compare of the tag (class,
//! state and every address bit below the granule, so a misaligned or interior pointer
//! fails it) and one of the word (owner and size). Anything else takes `free_slow`, before
//! anything is changed.
//!
//! Nothing here reads or writes user memory: scribbling over the data region cannot
//! change what a free decides.

use std::ptr::NonNull;
use std::sync::atomic::Ordering;

use crate::allocator::{Allocator, Inner};
use crate::error::FreeError;
use crate::meta::{self, BlockMeta, FREE, IN_FLIGHT, LARGE_CLASS, LIVE, STATE_STEP};
use crate::size_class::{MAX_SMALL_SIZE, NUM_CLASSES, index_for_request};
use crate::table::{ClassTable, MAX_SHIFT};
use crate::thread_cache::{ThreadCache, bump};

/// What a free checks besides the block being live.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    Nothing,
    Size(usize),
    /// A generation (widened, so an `Expect` travels in two registers).
    Generation(u64),
}

/// A validated free, already marked `FREE` in its metadata.
pub(crate) enum Released<'a> {
    /// A small block of class `class`, to be routed.
    Small { class: usize, requested: u32, owner: u32, meta: &'a BlockMeta },
    /// A large allocation, already given back to the span heap.
    Large,
}

impl Allocator {
    /// Frees a block through `cache`. Frees by a thread cache other than the one that
    /// handed the block out go to the class's central inbox (a remote free).
    ///
    /// # Safety
    /// `ptr` must not be in use by anyone once this returns `Ok`. Any pointer is otherwise
    /// accepted: pointers this allocator did not hand out, or no longer holds as
    /// allocated, are rejected with an error (nothing is read from user memory).
    ///
    /// # Errors
    /// [`FreeError::ForeignPointer`], [`FreeError::DoubleFree`]; the allocation (if any)
    /// is left untouched.
    #[inline]
    pub unsafe fn deallocate_with_cache(&self, cache: &mut ThreadCache, ptr: NonNull<u8>) -> Result<(), FreeError> {
        // SAFETY: forwarded contract.
        unsafe { self.free(cache, ptr, Expect::Nothing) }
    }

    /// As [`Allocator::deallocate_with_cache`], and the free only happens if `size` is
    /// exactly the size requested at allocation.
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`].
    ///
    /// # Errors
    /// As [`Allocator::deallocate_with_cache`], plus [`FreeError::SizeMismatch`].
    #[inline]
    pub unsafe fn deallocate_with_size(
        &self,
        cache: &mut ThreadCache,
        ptr: NonNull<u8>,
        size: usize,
    ) -> Result<(), FreeError> {
        // SAFETY: forwarded contract.
        unsafe { self.free(cache, ptr, Expect::Size(size)) }
    }

    /// As [`Allocator::deallocate_with_cache`], and the free only happens if the block is
    /// still the hand-out with this `generation` (see [`crate::Allocation`]); a stale
    /// handle gets [`FreeError::DoubleFree`] even after the address was handed out again.
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`].
    ///
    /// # Errors
    /// As [`Allocator::deallocate_with_cache`].
    #[inline]
    pub unsafe fn deallocate_tracked(
        &self,
        cache: &mut ThreadCache,
        ptr: NonNull<u8>,
        generation: u32,
    ) -> Result<(), FreeError> {
        // SAFETY: forwarded contract.
        unsafe { self.free(cache, ptr, Expect::Generation(u64::from(generation))) }
    }

    /// Frees without a thread cache (finalizers, exiting threads): small blocks go to
    /// their class inbox. `generation`, if given, is checked as in
    /// [`Allocator::deallocate_tracked`].
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`].
    ///
    /// # Errors
    /// As [`Allocator::deallocate_with_cache`].
    pub unsafe fn deallocate_uncached(&self, ptr: NonNull<u8>, generation: Option<u32>) -> Result<(), FreeError> {
        let expect = generation.map_or(Expect::Nothing, |g| Expect::Generation(u64::from(g)));
        // SAFETY: forwarded contract.
        unsafe { self.free_uncached(ptr, expect, true) }
    }

    /// What a GC finalizer does: frees the hand-out `(ptr, generation)` without a cache if
    /// it is still live with that generation, and returns whether it did. A hand-out that
    /// was freed explicitly (and maybe handed out again, or handed off) is left alone and
    /// is not counted as a rejected free: nothing was asked of the allocator by mistake.
    /// Not a remote free either (in the stats): no other thread freed it.
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`] when the hand-out is still live: nothing
    /// reaches the block any more.
    pub unsafe fn reclaim_unreachable(&self, ptr: NonNull<u8>, generation: u32) -> bool {
        // SAFETY: forwarded contract; the block is this hand-out, still live. (Only its
        // holder could free it in between, and its holder is the unreachable object.)
        self.is_current(ptr, generation)
            && unsafe { self.free_uncached(ptr, Expect::Generation(u64::from(generation)), false) }.is_ok()
    }

    /// [`Allocator::reclaim_unreachable`] through `cache` (the thread that found the
    /// hand-out unreachable): the block is reused by this thread first, as after a free.
    ///
    /// # Safety
    /// As [`Allocator::reclaim_unreachable`].
    pub unsafe fn reclaim_unreachable_cached(
        &self,
        cache: &mut ThreadCache,
        ptr: NonNull<u8>,
        generation: u32,
    ) -> bool {
        // SAFETY: as in `reclaim_unreachable`.
        self.is_current(ptr, generation)
            && unsafe { self.free(cache, ptr, Expect::Generation(u64::from(generation))) }.is_ok()
    }

    /// Whether `(ptr, generation)` is a live hand-out (small or large).
    fn is_current(&self, ptr: NonNull<u8>, generation: u32) -> bool {
        self.inner
            .block_at(ptr.as_ptr() as usize)
            .is_some_and(|(_, meta)| meta::state_of(meta.tag()) == LIVE && meta.generation() == generation)
    }

    /// A cacheless free; `remote` says whether it counts as a remote free in the stats.
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`].
    pub(crate) unsafe fn free_uncached(&self, ptr: NonNull<u8>, expect: Expect, remote: bool) -> Result<(), FreeError> {
        let inner = &*self.inner;
        let Released::Small { class, requested, meta, .. } = inner.release(ptr, expect)? else {
            return Ok(());
        };
        let addr = ptr.as_ptr() as usize;
        let retired = &inner.caches.retired;
        retired.frees.fetch_add(1, Ordering::Relaxed);
        retired.freed_bytes.fetch_add(u64::from(requested), Ordering::Relaxed);
        if remote {
            retired.remote_frees.fetch_add(1, Ordering::Relaxed);
        }
        inner.central[class].inbox.push(addr, meta);
        Ok(())
    }

    #[inline(always)]
    unsafe fn free(&self, cache: &mut ThreadCache, ptr: NonNull<u8>, expect: Expect) -> Result<(), FreeError> {
        // The fast path: a live small block of the first region that this (bound) cache
        // handed out goes on the cache's list. Everything else is one call away (nothing is
        // changed before the checks pass), so the inlined code stays short.
        let inner = &*self.inner;
        let addr = ptr.as_ptr() as usize;
        if cache.bound_id == inner.id
            && let Some((class, table, meta, tag)) = inner.live_block(addr, expect)
        {
            // One compare checks the owner and, for a size-checked free, the size (below
            // 2^32: it has a class).
            let word = meta.live_word();
            let owner_word = u64::from(cache.id) << 32;
            let expected = match expect {
                Expect::Size(size) => word == owner_word | size as u64,
                Expect::Generation(generation) => {
                    word >> 32 == owner_word >> 32 && generation == u64::from(meta.generation())
                }
                Expect::Nothing => word >> 32 == owner_word >> 32,
            };
            let requested = match expect {
                Expect::Size(size) => size as u64,
                _ => u64::from(word as u32),
            };
            if expected {
                meta.set_tag(tag - STATE_STEP);
                let counters = &cache.shared.counters;
                bump(&counters.frees, 1);
                bump(&counters.freed_bytes, requested);
                if cache.push(class, addr, meta) > table.limit {
                    self.drain_excess(cache, class);
                }
                return Ok(());
            }
        }
        // SAFETY: forwarded contract.
        unsafe { self.free_slow(cache, ptr, expect) }
    }

    /// A free the fast path does not cover: large allocations (a size-checked one goes
    /// straight to the large path, which is a hot path of its own), remote frees, blocks
    /// of later regions, an unbound cache, rejections.
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`].
    #[cold]
    #[inline(never)]
    unsafe fn free_slow(&self, cache: &mut ThreadCache, ptr: NonNull<u8>, expect: Expect) -> Result<(), FreeError> {
        if expect.size().is_some_and(|size| size > MAX_SMALL_SIZE) {
            return self.inner.release_large(ptr.as_ptr() as usize, expect);
        }
        // SAFETY: forwarded contract.
        unsafe { self.free_slow_small(cache, ptr, expect) }
    }

    /// [`Allocator::free_slow`] for everything but a size-checked large free.
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`].
    #[inline(never)]
    unsafe fn free_slow_small(
        &self,
        cache: &mut ThreadCache,
        ptr: NonNull<u8>,
        expect: Expect,
    ) -> Result<(), FreeError> {
        let inner = &*self.inner;
        let Released::Small { class, requested, owner, meta } = inner.release(ptr, expect)? else {
            return Ok(());
        };
        if cache.bound_id != inner.id {
            self.bind(cache);
        }
        let addr = ptr.as_ptr() as usize;
        let counters = &cache.shared.counters;
        bump(&counters.frees, 1);
        bump(&counters.freed_bytes, u64::from(requested));
        if owner == cache.id {
            if cache.push(class, addr, meta) > inner.tables[class].limit {
                self.drain_excess(cache, class);
            }
        } else {
            bump(&counters.remote_frees, 1);
            inner.central[class].inbox.push(addr, meta);
        }
        Ok(())
    }

    /// Gives `drain` blocks of a class's over-full list to the central pool, keeping the
    /// hot head block (`len = limit + 1 > drain`, so they exist).
    #[cold]
    #[inline(never)]
    fn drain_excess(&self, cache: &mut ThreadCache, c: usize) {
        let inner = &*self.inner;
        let excess = cache.split_after_head(c, &inner.arena, inner.geo[c].drain, inner.geo[c].shift);
        let now = inner.tick();
        inner.return_blocks(c, excess, now);
    }
}

impl Expect {
    /// The request size the caller vouches for, if any.
    #[inline(always)]
    const fn size(self) -> Option<usize> {
        match self {
            Self::Size(size) => Some(size),
            _ => None,
        }
    }
}

impl Inner {
    /// Steps 1–3 of a free: locate, validate, mark `FREE`. A large allocation is freed
    /// entirely here.
    ///
    /// The block's class names its block table: a size-checked free takes it from the
    /// size (no memory read), any other free from the slab map. The fast path covers a
    /// small block in the first region whose entry is exactly this block, live, of that
    /// class; everything else (later regions, large allocations, rejections) takes
    /// `release_slow`, which asks the slab map what the pointer is.
    #[inline(always)]
    pub(crate) fn release(&self, ptr: NonNull<u8>, expect: Expect) -> Result<Released<'_>, FreeError> {
        let addr = ptr.as_ptr() as usize;
        let Some((class, _, meta, tag)) = self.live_block(addr, expect) else {
            return self.release_slow(addr, expect);
        };
        self.release_live(addr, class, meta, tag, expect)
    }

    /// The live small block of the first region starting exactly at `addr`, found through
    /// its class's table (the class from the size a size-checked free vouches for, else from
    /// the slab map): its class, the class's table, its metadata and tag. `None` for
    /// anything else (which `release_slow` sorts out).
    #[inline(always)]
    fn live_block(&self, addr: usize, expect: Expect) -> Option<(usize, &ClassTable, &BlockMeta, u32)> {
        let class = match expect.size() {
            Some(size) => index_for_request(size)?,
            None => {
                let first = self.arena.first();
                match first.slab_at(first.offset_of(addr)?) {
                    (class, id) if id != 0 && usize::from(class) < NUM_CLASSES => usize::from(class),
                    _ => return None,
                }
            }
        };
        let table = &self.tables[class];
        let entry = table.entry(addr)?;
        // SAFETY: `addr` lies in the first region (checked by `entry`), so this is its
        // granule's entry in the first region's table of the class's shift, mapped for the
        // arena's whole life.
        let meta = unsafe { &*(entry as *const BlockMeta) };
        let tag = meta.tag();
        // The tag names the class, the state and every address bit below the granule: a
        // misaligned or interior pointer does not match.
        (tag == table.live_tag(addr)).then_some((class, table, meta, tag))
    }

    /// Step 2's checks and step 3 for a live small block of `class` (tag `tag`).
    #[inline(always)]
    fn release_live<'a>(
        &self,
        addr: usize,
        class: usize,
        meta: &'a BlockMeta,
        tag: u32,
        expect: Expect,
    ) -> Result<Released<'a>, FreeError> {
        let (requested, owner) = meta.requested_and_owner();
        match expect {
            Expect::Size(size) if size != requested as usize => {
                return Err(self.reject(FreeError::SizeMismatch {
                    addr,
                    provided: size,
                    recorded: requested as usize,
                }));
            }
            Expect::Generation(g) if g != u64::from(meta.generation()) => {
                return Err(self.reject(FreeError::DoubleFree { addr }));
            }
            _ => {}
        }
        meta.set_tag(tag - STATE_STEP);
        Ok(Released::Small { class, requested, owner, meta })
    }

    /// A free whose size says it is a large allocation: the start of a live large span has
    /// a `LIVE` large tag in the 4 KiB table (no slab map lookup); anything else is sorted
    /// out (and rejected) by `release_slow`.
    fn release_large(&self, addr: usize, expect: Expect) -> Result<(), FreeError> {
        if addr & (self.arena.granule() - 1) == 0
            && let Some(meta) = self.arena.meta_of(addr, MAX_SHIFT)
            && meta.tag() == meta::tag(LIVE, LARGE_CLASS, 0)
        {
            return self.free_large(addr, meta, expect);
        }
        self.release_slow(addr, expect).map(|_| ())
    }

    /// Everything but a live small block of the first region found through its class's
    /// table: a small block of a later region, a large allocation, a size naming another
    /// class, or a rejection that says what the pointer is.
    #[cold]
    #[inline(never)]
    fn release_slow(&self, addr: usize, expect: Expect) -> Result<Released<'_>, FreeError> {
        let error = match self.block_at(addr) {
            Some((LARGE_CLASS, meta)) if meta::state_of(meta.tag()) == LIVE => {
                return self.free_large(addr, meta, expect).map(|()| Released::Large);
            }
            Some((class, meta)) if meta::state_of(meta.tag()) == LIVE => {
                let class = usize::from(class);
                match expect.size() {
                    Some(size) if index_for_request(size) != Some(class) => {
                        FreeError::SizeMismatch { addr, provided: size, recorded: meta.requested() as usize }
                    }
                    _ => return self.release_live(addr, class, meta, meta.tag(), expect),
                }
            }
            Some((_, meta)) if matches!(meta::state_of(meta.tag()), FREE | IN_FLIGHT) => FreeError::DoubleFree { addr },
            _ => FreeError::ForeignPointer { addr },
        };
        Err(self.reject(error))
    }

    /// What the slab map and the block tables say starts at `addr`: the class (or
    /// `LARGE_CLASS`) and the entry of the block that starts exactly there, whatever its
    /// state; `None` where no block of the recorded class starts.
    pub(crate) fn block_at(&self, addr: usize) -> Option<(u8, &BlockMeta)> {
        if addr & self.align_mask != 0 {
            return None;
        }
        let (region, off) = self.arena.locate(addr)?;
        let (class, id) = region.slab_at(off);
        let shift = match self.geo.get(usize::from(class)) {
            Some(geo) if id != 0 => geo.shift,
            None if class == LARGE_CLASS => MAX_SHIFT,
            _ => return None,
        };
        let meta = region.meta_at(addr, shift);
        let tag = meta.tag();
        let here = meta::class_of(tag) == class && meta::tag_sub(tag) == meta::sub_of(addr, shift);
        (here && meta::state_of(tag) != 0).then_some((class, meta))
    }

    #[cold]
    pub(crate) fn reject(&self, error: FreeError) -> FreeError {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        error
    }
}
