//! The allocator: the handle users hold, the shared state behind it, and binding thread
//! caches to it. The hot paths live in `allocate.rs` and `free.rs`.

use std::ptr::NonNull;
use std::sync::Arc;
// Process-wide counters stay `std` atomics under loom too (a loom object cannot be `static`).
use std::sync::atomic::{AtomicU64 as ProcessAtomicU64, Ordering};

use crate::arena::Arena;
use crate::central::ClassPool;
use crate::config::{AllocatorConfig, ClassGeometry, MAX_ALIGNMENT};
use crate::error::InitError;
use crate::inbox::Inbox;
use crate::maintenance::Clock;
use crate::meta;
use crate::os;
use crate::pages::Pages;
use crate::size_class::{NUM_CLASSES, SizeClass};
use crate::sync::{AtomicU64, AtomicUsize, Condvar, Mutex};
use crate::table::ClassTable;
use crate::thread_cache::{CacheShared, Counters, ThreadCache};

static NEXT_ALLOCATOR_ID: ProcessAtomicU64 = ProcessAtomicU64::new(1);

/// A block handed out, with its generation: the pair names this one hand-out, so a free
/// that carries it cannot free a later hand-out of the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocation {
    /// The user pointer, aligned to the configured alignment.
    pub ptr: NonNull<u8>,
    /// Generation of this hand-out.
    pub generation: u32,
}

/// One class's central pool and inbox, on its own cache lines.
#[repr(align(128))]
pub(crate) struct CentralClass {
    pub(crate) pool: Mutex<ClassPool>,
    pub(crate) inbox: Inbox,
}

/// The thread caches bound to an allocator (for stats), and the counters of those that
/// are gone and of cacheless frees.
#[derive(Default)]
pub(crate) struct CacheRegistry {
    pub(crate) bound: Mutex<Vec<Arc<CacheShared>>>,
    pub(crate) retired: Counters,
}

pub(crate) struct Inner {
    pub(crate) id: u64,
    pub(crate) config: AllocatorConfig,
    pub(crate) align_mask: usize,
    pub(crate) arena: Arena,
    pub(crate) geo: [ClassGeometry; NUM_CLASSES],
    /// Per class, where the fast paths find its metadata in the first region.
    pub(crate) tables: [ClassTable; NUM_CLASSES],
    pub(crate) central: Box<[CentralClass]>,
    /// Empty slabs over all classes (kept by the class-lock holders): the miss path
    /// reclaims only when there is something to reclaim.
    pub(crate) reclaimable: AtomicUsize,
    pub(crate) pages: Mutex<Pages>,
    /// Signalled when a purge gives its spans back to the heap.
    pub(crate) purged: Condvar,
    pub(crate) handoffs: Mutex<crate::handoff::Handoffs>,
    pub(crate) clock: Clock,
    /// Source of unique seeds for generations (slab lives, large allocations).
    pub(crate) seeds: AtomicU64,
    pub(crate) caches: CacheRegistry,
    pub(crate) rejected: AtomicU64,
}

/// The allocator handle. Cloning is cheap and shares the allocator; the arena stays
/// mapped until the last handle, and the last thread cache bound to it, are dropped.
#[derive(Clone)]
pub struct Allocator {
    pub(crate) inner: Arc<Inner>,
}

fn random_secret(id: u64) -> u64 {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let stack = &nanos as *const u64 as u64;
    let mut x = nanos ^ id.rotate_left(32) ^ stack.rotate_left(17);
    // splitmix64 finaliser
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl Allocator {
    /// Validates `config` and reserves the arena's first region (committed lazily, a chunk
    /// at a time).
    ///
    /// # Errors
    /// [`InitError::InvalidConfig`] for a bad field, [`InitError::MapFailed`] if the OS
    /// refuses the reservation.
    pub fn new(config: AllocatorConfig) -> Result<Self, InitError> {
        config.validate()?;
        let granule = os::page_size().max(MAX_ALIGNMENT);
        let arena = Arena::new(&config, granule)?;
        let id = NEXT_ALLOCATOR_ID.fetch_add(1, Ordering::Relaxed);
        let secret = random_secret(id);
        let geo = ClassGeometry::table(&config, granule);
        let tables = std::array::from_fn(|c| arena.first().class_table(geo[c].shift, c as u8, geo[c].limit));
        let central = (0..NUM_CLASSES)
            .map(|c| CentralClass { pool: Mutex::new(ClassPool::new(c as u8, geo[c])), inbox: Inbox::new() })
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                id,
                config,
                align_mask: config.alignment - 1,
                arena,
                geo,
                tables,
                central,
                reclaimable: AtomicUsize::new(0),
                pages: Mutex::new(Pages::default()),
                purged: Condvar::new(),
                handoffs: Mutex::new(crate::handoff::Handoffs::default()),
                clock: Clock::new(),
                seeds: AtomicU64::new(secret),
                caches: CacheRegistry::default(),
                rejected: AtomicU64::new(0),
            }),
        })
    }

    /// The configuration this allocator was built with.
    #[must_use]
    pub fn config(&self) -> &AllocatorConfig {
        &self.inner.config
    }

    /// The cap on carved bytes (`max_bytes` rounded up to whole pages), if any.
    #[must_use]
    pub fn max_bytes(&self) -> Option<usize> {
        self.inner.arena.cap()
    }

    /// Process-unique id.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.inner.id
    }

    /// Whether `ptr` lies inside this allocator's arena (any region).
    #[must_use]
    pub fn contains(&self, ptr: *const u8) -> bool {
        self.inner.arena.locate(ptr as usize).is_some()
    }

    /// The arena offset of `ptr` (see [`Allocator::ptr_at`]), if it is arena memory.
    /// Offsets name arena memory without revealing addresses.
    #[must_use]
    pub fn offset_of(&self, ptr: *const u8) -> Option<usize> {
        self.inner.arena.voff_of(ptr as usize)
    }

    /// The pointer at arena offset `offset`, if it is inside the arena.
    #[must_use]
    pub fn ptr_at(&self, offset: usize) -> Option<NonNull<u8>> {
        self.inner.arena.addr_at(offset).and_then(|addr| NonNull::new(addr as *mut u8))
    }

    /// The committed chunk holding arena offset `offset`: its start and length in bytes
    /// ([`crate::CHUNK_SIZE`], shorter only at the end of a capped arena). A block of a
    /// class whose slabs fit in a chunk lies entirely inside the chunk of its start.
    #[must_use]
    pub fn chunk_at(&self, offset: usize) -> Option<(NonNull<u8>, usize)> {
        let (addr, len) = self.inner.arena.chunk_at(offset)?;
        NonNull::new(addr as *mut u8).map(|ptr| (ptr, len))
    }

    /// Bytes of arena one block of class index `class` occupies (its payload rounded up to
    /// the alignment; metadata is kept elsewhere).
    #[must_use]
    pub fn block_size(&self, class: usize) -> usize {
        self.inner.geo.get(class).map_or(0, |g| g.stride)
    }

    /// Bytes the allocator reserves for a request of `size` (its class block, or its large
    /// span), or 0 if it cannot be served.
    #[must_use]
    pub fn usable_size(&self, size: usize) -> usize {
        match SizeClass::from_request(size) {
            Some(class) => self.inner.geo[class.index()].stride,
            None if size == 0 || size > isize::MAX as usize => 0,
            None => self.inner.large_span_len(size).filter(|&len| self.inner.fits_cap(len)).unwrap_or(0),
        }
    }

    /// Bytes of user memory the block at `ptr` occupies (its class block, or its large
    /// span), if `ptr` is a block handed out and not freed (live or in flight). The block's
    /// memory is committed and stays mapped as long as the allocator.
    #[must_use]
    pub fn block_len(&self, ptr: *const u8) -> Option<usize> {
        let addr = ptr as usize;
        let (class, meta) = self.inner.block_at(addr)?;
        if !matches!(meta::state_of(meta.tag()), meta::LIVE | meta::IN_FLIGHT) {
            return None;
        }
        match self.inner.geo.get(usize::from(class)) {
            Some(geo) => Some(geo.stride),
            None => self.inner.pages.lock().large.get(addr).map(|record| record.span_len),
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn bind(&self, cache: &mut ThreadCache) {
        if let Some(old) = cache.bound.take() {
            old.unbind(cache);
        }
        self.inner.caches.bound.lock().push(Arc::clone(&cache.shared));
        cache.bound = Some(self.clone());
        cache.bound_id = self.inner.id;
    }

    /// Drains `cache`, folds its counters into this allocator's, and forgets it.
    pub(crate) fn unbind(&self, cache: &mut ThreadCache) {
        self.drain_all(cache);
        let mut bound = self.inner.caches.bound.lock();
        self.inner.caches.retired.absorb(&cache.shared.counters);
        cache.shared.lent.retire_into(&self.inner.caches.retired);
        for counter in cache.shared.counters.fields() {
            counter.store(0, Ordering::Relaxed);
        }
        bound.retain(|shared| !Arc::ptr_eq(shared, &cache.shared));
        cache.bound_id = 0;
        cache.bound = None;
    }

    /// Moves every block `cache` holds back to the central pool of the allocator the
    /// cache is bound to.
    pub fn drain_thread_cache(&self, cache: &mut ThreadCache) {
        if let Some(bound) = cache.bound.clone() {
            bound.drain_all(cache);
        }
    }

    pub(crate) fn drain_all(&self, cache: &mut ThreadCache) {
        let now = self.inner.tick();
        for c in 0..NUM_CLASSES {
            let chain = cache.take_list(c);
            if chain.len > 0 {
                self.inner.return_blocks(c, chain, now);
            }
        }
    }

    /// Counts a free that a layer above the allocator refused before calling it (the Node
    /// binding refuses a stale view or a foreign buffer by its own bookkeeping), so that
    /// `rejected_frees_total` stays the one count of refused frees.
    pub fn record_rejected_free(&self) {
        self.inner.rejected.fetch_add(1, Ordering::Relaxed);
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
