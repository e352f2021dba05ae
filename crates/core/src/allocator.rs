//! The allocator: the handle users hold, the shared state behind it, and the small-block
//! fast paths (allocate from / free to a thread cache) with their cold slow paths.

use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::arena::Arena;
use crate::central::{Chain, ClassPool};
use crate::config::{AllocatorConfig, ClassGeometry};
use crate::error::{AllocError, FreeError, InitError};
use crate::header::{self, HEADER_SIZE, Header, user_of, user_ptr};
use crate::inbox::Inbox;
use crate::os;
use crate::pages::Pages;
use crate::size_class::{NUM_CLASSES, SizeClass};
use crate::thread_cache::{CacheShared, Counters, ThreadCache, bump};

static NEXT_ALLOCATOR_ID: AtomicU64 = AtomicU64::new(1);

/// A block handed out, with its generation: the pair names this one hand-out, so a free
/// that carries it cannot free a later hand-out of the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The user pointer, aligned to the configured alignment.
    pub ptr: NonNull<u8>,
    /// Generation of this hand-out.
    pub generation: u32,
}

/// What a free checks besides the block being live.
#[derive(Clone, Copy)]
pub(crate) enum Expect {
    Nothing,
    Size(usize),
    Generation(u32),
}

/// One class's central pool and inbox, on its own cache lines.
#[repr(align(128))]
pub(crate) struct CentralClass {
    pub(crate) pool: Mutex<ClassPool>,
    pub(crate) inbox: Inbox,
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) config: AllocatorConfig,
    pub(crate) secret: u64,
    pub(crate) align_mask: usize,
    pub(crate) arena: Arena,
    pub(crate) geo: [ClassGeometry; NUM_CLASSES],
    pub(crate) central: Box<[CentralClass]>,
    pub(crate) pages: Mutex<Pages>,
    /// Signalled when a purge gives its spans back to the heap.
    pub(crate) purged: parking_lot::Condvar,
    pub(crate) handoffs: Mutex<crate::handoff::Handoffs>,
    /// Slow-path operations so far (maintenance runs every `MAINTAIN_EVERY`).
    pub(crate) epoch: AtomicU64,
    /// Origin of the microsecond clock that timestamps free spans and empty slabs.
    pub(crate) clock: std::time::Instant,
    /// Time of the previous maintenance pass.
    pub(crate) last_maintenance: AtomicU64,
    /// Source of unique seeds for generations (slab lives, large allocations).
    pub(crate) seeds: AtomicU64,
    /// The clock as last read (every `CLOCK_EVERY` slow-path operations): reading it costs
    /// ~30 ns here, as much as a whole large alloc+free pair.
    pub(crate) coarse_now: AtomicU64,
    pub(crate) caches: Mutex<Vec<Arc<CacheShared>>>,
    /// Counters of unbound caches and of cacheless frees.
    pub(crate) retired: Counters,
    pub(crate) rejected: AtomicU64,
}

/// The allocator handle. Cloning is cheap and shares the allocator; the arena stays
/// mapped until the last handle, and the last thread cache bound to it, are dropped.
#[derive(Clone)]
pub struct Allocator {
    pub(crate) inner: Arc<Inner>,
}

fn random_secret(id: u64, base: usize) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let stack = &nanos as *const u64 as u64;
    let mut x = nanos ^ id.rotate_left(32) ^ (base as u64) ^ stack.rotate_left(17);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Allocator {
    /// Validates `config` and reserves the arena (committed lazily, on first touch).
    ///
    /// # Errors
    /// [`InitError::InvalidConfig`] for a bad field, [`InitError::MapFailed`] if the OS
    /// refuses the reservation.
    pub fn new(config: AllocatorConfig) -> Result<Self, InitError> {
        config.validate()?;
        let granule = os::page_size().max(crate::config::MAX_ALIGNMENT);
        let arena = Arena::new(config.arena_size, granule)?;
        let id = NEXT_ALLOCATOR_ID.fetch_add(1, Ordering::Relaxed);
        let secret = random_secret(id, arena.base());
        let geo = ClassGeometry::table(&config, granule);
        let central = (0..NUM_CLASSES)
            .map(|c| CentralClass { pool: Mutex::new(ClassPool::new(c as u8, geo[c], secret)), inbox: Inbox::new() })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                config,
                secret,
                align_mask: config.alignment - 1,
                arena,
                geo,
                central,
                pages: Mutex::new(Pages::default()),
                purged: parking_lot::Condvar::new(),
                handoffs: Mutex::new(crate::handoff::Handoffs::default()),
                epoch: AtomicU64::new(0),
                clock: std::time::Instant::now(),
                last_maintenance: AtomicU64::new(0),
                coarse_now: AtomicU64::new(0),
                seeds: AtomicU64::new(secret),
                caches: Mutex::new(Vec::new()),
                retired: Counters::default(),
                rejected: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this allocator was built with.
    #[must_use]
    pub fn config(&self) -> &AllocatorConfig {
        &self.inner.config
    }

    /// Process-unique id.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Start of the usable arena.
    #[must_use]
    pub fn arena_base(&self) -> NonNull<u8> {
        // SAFETY: the arena base is inside a successful mapping, never null.
        unsafe { NonNull::new_unchecked(self.inner.arena.base() as *mut u8) }
    }

    /// Usable arena bytes.
    #[must_use]
    pub fn arena_size(&self) -> usize {
        self.inner.arena.len()
    }

    /// Whether `ptr` lies inside this allocator's arena.
    #[must_use]
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.inner.arena.contains(ptr as usize)
    }

    /// Bytes of arena one block of class index `class` occupies (header included).
    #[must_use]
    pub fn block_size(&self, class: usize) -> usize {
        self.inner.geo.get(class).map_or(0, |g| g.stride)
    }

    /// Bytes the allocator reserves for a request of `size` (header and rounding
    /// included), or 0 if it cannot be served.
    #[must_use]
    pub fn usable_size(&self, size: usize) -> usize {
        match SizeClass::from_request(size) {
            Some(class) => self.inner.geo[class.index()].stride,
            None if size == 0 || size > isize::MAX as usize => 0,
            None => self.inner.large_span_len(size).filter(|&len| len <= self.inner.arena.len()).unwrap_or(0),
        }
    }

    /// Allocates `size` bytes through `cache`.
    ///
    /// # Errors
    /// [`AllocError::InvalidSize`] for 0; [`AllocError::OutOfMemory`] when the arena is full.
    #[inline]
    pub fn allocate_with_cache(&self, cache: &mut ThreadCache, size: usize) -> Result<NonNull<u8>, AllocError> {
        self.allocate_tracked(cache, size).map(|a| a.ptr)
    }

    /// Allocates `size` bytes through `cache` and returns the hand-out's generation too.
    ///
    /// # Errors
    /// As [`Allocator::allocate_with_cache`].
    #[inline]
    pub fn allocate_tracked(&self, cache: &mut ThreadCache, size: usize) -> Result<Allocation, AllocError> {
        let Some(class) = SizeClass::from_request(size) else {
            return self.allocate_large(cache, size);
        };
        if cache.bound_id != self.inner.id {
            self.bind(cache);
        }
        let c = class.index();
        let mut block = cache.heads[c];
        if block.is_null() {
            block = self.refill(cache, c, size)?;
        } else {
            // SAFETY: cache lists hold free blocks owned by the cache (ThreadCache invariant).
            cache.heads[c] = unsafe { (*block).link };
            cache.set_count(c, cache.count(c) - 1);
        }
        // SAFETY: `block` was just taken off this cache's list, so the cache owns it.
        Ok(unsafe { self.issue(cache, block, c, size) })
    }

    /// Marks a free block owned by `cache` as handed out for `size` bytes.
    ///
    /// # Safety
    /// `block` must be a free block of class `c` that `cache` owns.
    #[inline(always)]
    unsafe fn issue(&self, cache: &ThreadCache, block: *mut Header, c: usize, size: usize) -> Allocation {
        // SAFETY: the caller owns the block; its header is arena memory.
        let generation = unsafe {
            let generation = (*block).generation.wrapping_add(1);
            (*block).generation = generation;
            (*block).requested = size as u64;
            (*block).owner = cache.id;
            (*block).holder = 0;
            header::set_state(block, header::live(header::check(self.inner.secret, block, c as u8)));
            generation
        };
        let counters = &cache.shared.counters;
        bump(&counters.allocations, 1);
        bump(&counters.allocated_bytes, size as u64);
        Allocation { ptr: user_ptr(block), generation }
    }

    #[cold]
    #[inline(never)]
    fn refill(&self, cache: &mut ThreadCache, c: usize, size: usize) -> Result<*mut Header, AllocError> {
        let now = self.inner.tick();
        let mut chain = self.inner.take_blocks(c, self.inner.geo[c].refill, now);
        if chain.count == 0 && self.give_back_cached(cache) {
            // This thread's own cache held free blocks of other classes: they are back in
            // the central pool (and their empty slabs in the span heap) now.
            chain = self.inner.take_blocks(c, self.inner.geo[c].refill, now);
        }
        if chain.count == 0 {
            return Err(self.inner.out_of_memory(size));
        }
        let block = chain.head;
        // SAFETY: the chain holds `count >= 1` free blocks now owned by this cache.
        cache.heads[c] = unsafe { (*block).link };
        cache.set_count(c, chain.count - 1);
        Ok(block)
    }

    #[cold]
    #[inline(never)]
    fn allocate_large(&self, cache: &mut ThreadCache, size: usize) -> Result<Allocation, AllocError> {
        match self.inner.allocate_large(cache.id, size) {
            Err(AllocError::OutOfMemory { .. }) if cache.bound_id == self.inner.id && self.give_back_cached(cache) => {
                self.inner.allocate_large(cache.id, size)
            }
            result => result,
        }
    }

    /// On out-of-memory: drains `cache` (bound to this allocator) and reclaims the slabs
    /// that became empty. Returns whether the cache held anything.
    fn give_back_cached(&self, cache: &mut ThreadCache) -> bool {
        if cache.bound_id != self.inner.id || (0..NUM_CLASSES).all(|c| cache.count(c) == 0) {
            return false;
        }
        self.drain_all(cache);
        self.inner.reclaim_slabs(self.inner.tick());
        true
    }

    /// Frees a block through `cache`. Frees by a thread cache other than the one that
    /// handed the block out go to the class's central inbox (a remote free).
    ///
    /// # Safety
    /// `ptr` must not be in use by any other thread while this runs (the checks below
    /// read its header). Any pointer is otherwise accepted: pointers this allocator did
    /// not hand out, or no longer holds as allocated, are rejected with an error.
    ///
    /// # Errors
    /// [`FreeError::ForeignPointer`], [`FreeError::DoubleFree`], [`FreeError::CorruptHeader`];
    /// the allocation (if any) is left untouched.
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
    /// still the hand-out with this `generation` (see [`Allocation`]); a stale handle
    /// gets [`FreeError::DoubleFree`] even after the address was handed out again.
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
        unsafe { self.free(cache, ptr, Expect::Generation(generation)) }
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
        let expect = generation.map_or(Expect::Nothing, Expect::Generation);
        // SAFETY: forwarded contract.
        unsafe { self.free_uncached(ptr, expect, true) }
    }

    /// A cacheless free; `remote` says whether it counts as a remote free in the stats.
    ///
    /// # Safety
    /// As [`Allocator::deallocate_with_cache`].
    pub(crate) unsafe fn free_uncached(&self, ptr: NonNull<u8>, expect: Expect, remote: bool) -> Result<(), FreeError> {
        let inner = &*self.inner;
        let block = inner.locate(ptr)?;
        // SAFETY: `locate` checked the header lies in the arena.
        let class = unsafe { (*block).class };
        if class as usize >= NUM_CLASSES {
            // SAFETY: as above.
            return unsafe { inner.free_large(block, expect) };
        }
        // SAFETY: as above.
        let requested = unsafe { inner.release_small(block, class, expect) }?;
        bump_shared(&inner.retired.frees, 1);
        bump_shared(&inner.retired.freed_bytes, requested);
        if remote {
            bump_shared(&inner.retired.remote_frees, 1);
        }
        // SAFETY: `release_small` marked the block free; it is ours to publish.
        unsafe { inner.central[class as usize].inbox.push(block) };
        Ok(())
    }

    #[inline(always)]
    unsafe fn free(&self, cache: &mut ThreadCache, ptr: NonNull<u8>, expect: Expect) -> Result<(), FreeError> {
        let inner = &*self.inner;
        let block = inner.locate(ptr)?;
        // SAFETY: `locate` checked that the 64-byte header lies inside the arena mapping.
        let class = unsafe { (*block).class };
        if class as usize >= NUM_CLASSES {
            // SAFETY: as above.
            return unsafe { inner.free_large(block, expect) };
        }
        // SAFETY: as above.
        let requested = unsafe { inner.release_small(block, class, expect) }?;
        if cache.bound_id != inner.id {
            self.bind(cache);
        }
        let counters = &cache.shared.counters;
        bump(&counters.frees, 1);
        bump(&counters.freed_bytes, requested);
        let c = class as usize;
        // SAFETY: `release_small` verified the block was live and marked it free; the
        // caller gave up the pointer, so the block is ours to list.
        unsafe {
            if (*block).owner == cache.id {
                (*block).link = cache.heads[c];
                cache.heads[c] = block;
                let count = cache.count(c) + 1;
                cache.set_count(c, count);
                if count > inner.geo[c].limit {
                    self.drain_excess(cache, c);
                }
            } else {
                bump(&counters.remote_frees, 1);
                inner.central[c].inbox.push(block);
            }
        }
        Ok(())
    }

    #[cold]
    #[inline(never)]
    fn drain_excess(&self, cache: &mut ThreadCache, c: usize) {
        let drain = self.inner.geo[c].drain;
        let head = cache.heads[c];
        // Keep the hot head block; detach the `drain` blocks after it
        // (count = limit + 1 > drain, so they exist).
        // SAFETY: the cache owns its list of `count` blocks.
        let first = unsafe {
            let first = (*head).link;
            let mut tail = first;
            for _ in 1..drain {
                tail = (*tail).link;
            }
            (*head).link = (*tail).link;
            (*tail).link = std::ptr::null_mut();
            first
        };
        cache.set_count(c, cache.count(c) - drain);
        let now = self.inner.tick();
        // SAFETY: the detached chain is owned by this call.
        unsafe { self.inner.return_blocks(c, Chain { head: first, count: drain }, now) };
    }

    /// Adds to `cache`'s operation counters hand-outs and frees a layer above served
    /// without calling the allocator (the Node binding recycles freed views' blocks while
    /// they stay allocated here), so the stats count every operation.
    pub fn record_recycled(&self, cache: &mut ThreadCache, allocations: u64, frees: u64, allocated: u64, freed: u64) {
        if cache.bound_id != self.inner.id {
            self.bind(cache);
        }
        let counters = &cache.shared.counters;
        bump(&counters.allocations, allocations);
        bump(&counters.frees, frees);
        bump(&counters.allocated_bytes, allocated);
        bump(&counters.freed_bytes, freed);
    }

    /// Moves every block `cache` holds back to the central pool of the allocator the
    /// cache is bound to.
    pub fn drain_thread_cache(&self, cache: &mut ThreadCache) {
        if let Some(bound) = cache.bound.clone() {
            bound.drain_all(cache);
        }
    }

    fn drain_all(&self, cache: &mut ThreadCache) {
        let now = self.inner.tick();
        for c in 0..NUM_CLASSES {
            let head = std::mem::replace(&mut cache.heads[c], std::ptr::null_mut());
            let count = cache.count(c);
            cache.set_count(c, 0);
            if !head.is_null() {
                // SAFETY: the cache owned this chain and has just let go of it.
                unsafe { self.inner.return_blocks(c, Chain { head, count }, now) };
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn bind(&self, cache: &mut ThreadCache) {
        if let Some(old) = cache.bound.take() {
            old.unbind(cache);
        }
        self.inner.caches.lock().push(Arc::clone(&cache.shared));
        cache.bound = Some(self.clone());
        cache.bound_id = self.inner.id;
    }

    /// Drains `cache`, folds its counters into this allocator's, and forgets it.
    pub(crate) fn unbind(&self, cache: &mut ThreadCache) {
        self.drain_all(cache);
        let mut caches = self.inner.caches.lock();
        self.inner.retired.absorb(&cache.shared.counters);
        for counter in cache.shared.counters.fields() {
            counter.store(0, Ordering::Relaxed);
        }
        caches.retain(|shared| !Arc::ptr_eq(shared, &cache.shared));
        cache.bound_id = 0;
        cache.bound = None;
    }

    /// Returns idle memory to the OS now: every fully free slab goes back to the span
    /// heap and every free span's pages are released. Blocks held by thread caches stay
    /// (drain them first). Returns the bytes released.
    pub fn trim(&self) -> usize {
        let now = self.inner.tick();
        self.inner.reclaim_slabs(now);
        self.inner.purge(0, u64::MAX)
    }
}

fn bump_shared(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl Inner {
    /// Header of `ptr` if the pointer is on this arena's user-pointer grid.
    #[inline(always)]
    pub(crate) fn locate(&self, ptr: NonNull<u8>) -> Result<*mut Header, FreeError> {
        let addr = ptr.as_ptr() as usize;
        let header = addr.wrapping_sub(HEADER_SIZE);
        if addr & self.align_mask != 0 || !self.arena.contains(header) {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(FreeError::ForeignPointer { addr });
        }
        Ok(header as *mut Header)
    }

    /// Verifies a small block is live (and matches `expect`), then marks it free.
    /// Returns its requested size.
    ///
    /// # Safety
    /// `block` must be a header address inside the arena (see `locate`).
    #[inline(always)]
    pub(crate) unsafe fn release_small(&self, block: *mut Header, class: u8, expect: Expect) -> Result<u64, FreeError> {
        let check = header::check(self.secret, block, class);
        // SAFETY: the header lies in mapped arena memory (caller contract).
        let state = unsafe { header::state(block) };
        if state != header::live(check) {
            return Err(self.reject_state(block, state == header::free(check)));
        }
        // SAFETY: as above; the block is live, so its fields were written at hand-out.
        let (requested, generation) = unsafe { ((*block).requested, (*block).generation) };
        match expect {
            Expect::Size(size) if requested != size as u64 => {
                return Err(self.reject(FreeError::SizeMismatch {
                    addr: user_of(block) as usize,
                    provided: size,
                    recorded: requested as usize,
                }));
            }
            Expect::Generation(g) if generation != g => {
                return Err(self.reject(FreeError::DoubleFree { addr: user_of(block) as usize }));
            }
            _ => {}
        }
        // SAFETY: as above.
        unsafe { header::set_state(block, header::free(check)) };
        Ok(requested)
    }

    #[cold]
    pub(crate) fn reject_state(&self, block: *mut Header, is_free: bool) -> FreeError {
        let addr = user_of(block) as usize;
        self.reject(if is_free { FreeError::DoubleFree { addr } } else { FreeError::CorruptHeader { addr } })
    }

    #[cold]
    pub(crate) fn reject(&self, error: FreeError) -> FreeError {
        self.rejected.fetch_add(1, Ordering::Relaxed);
        error
    }
}
