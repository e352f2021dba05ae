//! The model both fuzz targets drive: a fuzz input is decoded (with `arbitrary`'s
//! `Unstructured`) into an allocator configuration and a sequence of operations on
//! [`tensor_arena_core::Allocator`] (allocations of 0 B to beyond the largest class and
//! beyond the cap, frees through every API, frees of live / stale / in-flight / foreign /
//! interior pointers, reallocations, drains, trims, dropped and torn-down thread caches,
//! hand-offs with receive / reclaim / cancel, spent and forged tokens). A shadow model
//! checks every result: live blocks are aligned, inside the arena, never overlap and keep
//! the pattern written at allocation (derived from the block's id) until they are freed;
//! every rejected call gets its documented error and changes nothing; and
//! `check_invariants()` of the allocator and of every cache holds after every step. At the
//! end everything is freed and the arena must be empty again.
//!
//! With `scribble`, arbitrary bytes are also written over user memory between operations
//! (live blocks, their slack, freed blocks, never-issued carved memory): the allocator keeps
//! its metadata out of band, so its behaviour must not change (live blocks get their
//! patterns back afterwards, so the pattern check still proves the allocator never writes
//! user memory).
//!
//! A violation panics (libFuzzer reports it as a crash and saves the input).

#![allow(clippy::missing_panics_doc, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};
use std::ptr::NonNull;
use std::sync::OnceLock;

use arbitrary::Unstructured;
use tensor_arena_core::{
    AllocError, Allocator, AllocatorConfig, CLASS_SIZES, FreeError, HandoffError, MAX_ARENA_SIZE, MAX_SMALL_SIZE,
    ReallocError, ThreadCache, Token,
};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
/// Operations per input at most (keeps one input's run short).
const MAX_OPS: usize = 3000;
/// Blocks up to this size get their pattern over every byte; larger ones in three windows.
const FULL_FILL_LIMIT: usize = 64 * KIB;
const WINDOW: usize = 4 * KIB;

/// A block the model holds.
#[derive(Clone, Copy, Debug)]
struct Block {
    ptr: NonNull<u8>,
    size: usize,
    /// Hand-out number: the pattern's seed.
    id: u64,
    /// The hand-out's generation, when the allocation API returned it.
    generation: Option<u32>,
    /// Id of the cache that owns it (allocated or received it).
    owner: u64,
}

/// An in-flight hand-off.
struct Pending {
    block: Block,
    token: Token,
    label: u64,
    /// Generation before the hand-off (stale from then on).
    old_generation: u32,
    /// Generation of the in-flight block (the receiver gets it).
    generation: u32,
    sender: u64,
}

/// The byte ranges of a `size`-byte block that carry its pattern.
fn windows(size: usize) -> [(usize, usize); 3] {
    if size <= FULL_FILL_LIMIT {
        [(0, size), (0, 0), (0, 0)]
    } else {
        let mid = size / 2 - WINDOW / 2;
        [(0, WINDOW), (mid, mid + WINDOW), (size - WINDOW, size)]
    }
}

/// The pattern byte at `offset` of block `id` (position-dependent, so a shifted or
/// swapped copy is caught too).
fn pattern(id: u64, offset: usize) -> u8 {
    let seed = (id.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8;
    seed ^ (offset as u8).wrapping_mul(0x9d) ^ ((offset >> 8) as u8)
}

/// Writes block `id`'s pattern.
///
/// # Safety
/// `ptr` must be valid for writes of `size` bytes.
unsafe fn fill(ptr: NonNull<u8>, size: usize, id: u64) {
    for (from, to) in windows(size) {
        for offset in from..to {
            // SAFETY: inside the block (caller contract).
            unsafe { ptr.as_ptr().add(offset).write(pattern(id, offset)) };
        }
    }
}

/// The first offset below `limit` of block `id`'s pattern (of a `size`-byte block) that
/// does not hold its pattern.
///
/// # Safety
/// `ptr` must be valid for reads of `min(size, limit)` bytes.
unsafe fn damaged(ptr: NonNull<u8>, size: usize, id: u64, limit: usize) -> Option<usize> {
    for (from, to) in windows(size) {
        for offset in from..to.min(limit) {
            // SAFETY: inside the block (caller contract).
            if unsafe { ptr.as_ptr().add(offset).read() } != pattern(id, offset) {
                return Some(offset);
            }
        }
    }
    None
}

/// A block of another allocator (a foreign pointer that lies in some arena).
fn other_arena_block() -> NonNull<u8> {
    static OTHER: OnceLock<(Allocator, usize)> = OnceLock::new();
    let (_, addr) = OTHER.get_or_init(|| {
        let a = Allocator::new(AllocatorConfig { max_bytes: Some(MIB), ..AllocatorConfig::default() }).unwrap();
        let ptr = a.allocate_with_cache(&mut ThreadCache::new(), 100).unwrap();
        (a, ptr.as_ptr() as usize)
    });
    NonNull::new(*addr as *mut u8).unwrap()
}

/// An error a rejected call may return.
type Allowed = fn(&FreeError) -> bool;

fn nn(addr: usize) -> NonNull<u8> {
    NonNull::new(addr as *mut u8).unwrap_or(NonNull::dangling())
}

/// What `Model::step` does for each value of its first byte (modulo 32).
const OP_NAMES: [&str; 32] = [
    "allocate",
    "allocate",
    "allocate",
    "allocate",
    "allocate",
    "allocate",
    "allocate",
    "allocate",
    "allocate",
    "free",
    "free",
    "free",
    "free",
    "free",
    "free",
    "realloc",
    "realloc",
    "drain",
    "trim",
    "drop cache",
    "teardown",
    "hand off",
    "hand off",
    "receive",
    "reclaim or cancel",
    "spent token",
    "forged token",
    "free stale",
    "free foreign",
    "free in flight",
    "reclaim unreachable",
    "check stats",
];

struct Model<'u, 'd> {
    /// `TENSOR_ARENA_FUZZ_TRACE` is set: print each operation (to follow a reproducer).
    trace: bool,
    u: &'u mut Unstructured<'d>,
    a: Allocator,
    cap: Option<usize>,
    caches: Vec<ThreadCache>,
    /// Ids of caches torn down or dropped while bound (their in-flight hand-offs are
    /// orphans).
    gone: HashSet<u64>,
    live: BTreeMap<usize, Block>,
    /// Keys of `live` in hand-out order (swap-removed): picks do not depend on addresses.
    order: Vec<usize>,
    pending: Vec<Pending>,
    /// Tokens received, reclaimed or cancelled.
    spent: Vec<Token>,
    /// Freed hand-outs with their generation: stale handles.
    stale: Vec<(NonNull<u8>, u32)>,
    /// Recently freed blocks (address, block length): scribble targets.
    freed: Vec<(NonNull<u8>, usize)>,
    next_id: u64,
    live_bytes: u64,
    /// Usable bytes of live and in-flight blocks, and the budget they stay within.
    reserved: usize,
    budget: usize,
    scribble: bool,
    full_scribbles: u32,
    /// Bit per cache used since the last invariant check.
    touched: u8,
    /// Frees and reallocations rejected so far (`rejected_frees_total`).
    rejected: u64,
    op: usize,
}

impl<'u, 'd> Model<'u, 'd> {
    fn new(u: &'u mut Unstructured<'d>, scribble: bool) -> Self {
        let mut c =
            AllocatorConfig { max_bytes: Some(64 * MIB), idle_release_ms: 3_600_000, ..AllocatorConfig::default() };
        let config = u.int_in_range(0..=7u8).unwrap_or(0);
        if config != 0 {
            // Smaller batches than the defaults (config 0): fewer blocks initialised per
            // refill, so the invariant check after every step (which visits every
            // initialised block) stays cheap and the fuzzer runs more inputs.
            c.refill_target_bytes = 4 * KIB;
            c.local_cache_target_bytes = 8 * KIB;
        }
        match config {
            0 => {}
            1 => c.alignment = 4096,
            2 => {
                c.alignment = 128;
                c.max_bytes = Some(128 * MIB);
            }
            3 => {
                c.refill_target_bytes = 1;
                c.local_cache_target_bytes = 1;
                c.slab_target_bytes = 1;
            }
            4 => {
                c.retain_bytes = 0;
                c.alignment = 256;
            }
            5 => {
                c.max_bytes = None;
                c.region_bytes = 4 * MIB;
            }
            6 => {
                c.alignment = 1024;
                c.idle_release_ms = 0;
            }
            _ => {
                c.max_bytes = Some(256 * MIB);
                c.alignment = 512;
                c.slab_target_bytes = 256 * KIB;
            }
        }
        let caches = usize::from(u.int_in_range(1..=4u8).unwrap_or(1));
        let a = Allocator::new(c).unwrap_or_else(|e| panic!("Allocator::new({c:?}): {e}"));
        Self {
            trace: std::env::var_os("TENSOR_ARENA_FUZZ_TRACE").is_some(),
            u,
            a,
            cap: c.max_bytes,
            caches: (0..caches).map(|_| ThreadCache::new()).collect(),
            gone: HashSet::new(),
            live: BTreeMap::new(),
            order: Vec::new(),
            pending: Vec::new(),
            spent: Vec::new(),
            stale: Vec::new(),
            freed: Vec::new(),
            next_id: 1,
            live_bytes: 0,
            reserved: 0,
            budget: c.max_bytes.map_or(48 * MIB, |cap| (cap * 3 / 4).min(96 * MIB)),
            scribble,
            full_scribbles: 0,
            touched: 0,
            rejected: 0,
            op: 0,
        }
    }

    // --- input decoding -------------------------------------------------------------

    fn byte(&mut self) -> u8 {
        self.u.arbitrary().unwrap_or(0)
    }

    fn coin(&mut self) -> bool {
        self.byte() & 1 == 0
    }

    fn below(&mut self, n: usize) -> usize {
        if n <= 1 { 0 } else { self.u.int_in_range(0..=n - 1).unwrap_or(0) }
    }

    fn range(&mut self, lo: usize, hi: usize) -> usize {
        self.u.int_in_range(lo..=hi).unwrap_or(lo)
    }

    /// A cache index (marked as touched: its invariants are checked after this step).
    fn cache(&mut self) -> usize {
        let c = self.below(self.caches.len());
        self.touched |= 1 << c;
        c
    }

    /// A request size: 0, class boundaries and their neighbours, every size range up to
    /// beyond the largest class, beyond the cap, absurd.
    fn size(&mut self) -> usize {
        match self.byte() % 16 {
            0 => 0,
            1..=4 => self.range(1, 512),
            5..=6 => self.range(513, 16 * KIB),
            7 => self.range(16 * KIB + 1, 256 * KIB),
            8 => self.range(256 * KIB + 1, 4 * MIB),
            9 => self.range(4 * MIB + 1, MAX_SMALL_SIZE),
            10 => self.range(MAX_SMALL_SIZE + 1, 20 * MIB),
            11..=13 => {
                let class = CLASS_SIZES[self.below(CLASS_SIZES.len())];
                (class + self.below(3)).saturating_sub(1)
            }
            14 => MAX_SMALL_SIZE + self.below(3) - 1,
            _ => match self.byte() % 4 {
                0 => usize::MAX - self.below(4096),
                1 => 1 << self.range(36, 62),
                2 => self.cap.map_or(usize::MAX / 2, |cap| cap + self.range(1, 4 * MIB)),
                _ => u32::MAX as usize + self.below(3),
            },
        }
    }

    // --- model bookkeeping ----------------------------------------------------------

    fn where_(&self) -> String {
        format!("op {} ({} live, {} in flight)", self.op, self.live.len(), self.pending.len())
    }

    fn insert_live(&mut self, block: Block) {
        let key = block.ptr.as_ptr() as usize;
        self.order.push(key);
        assert!(self.live.insert(key, block).is_none(), "{}: {key:#x} live twice", self.where_());
    }

    fn remove_live(&mut self, key: usize) -> Block {
        let block = self.live.remove(&key).unwrap();
        let pos = self.order.iter().position(|&k| k == key).unwrap();
        self.order.swap_remove(pos);
        block
    }

    fn pick_live(&mut self) -> Option<usize> {
        if self.order.is_empty() {
            return None;
        }
        let i = self.below(self.order.len());
        Some(self.order[i])
    }

    /// Whether `[start, start + len)` overlaps a live or in-flight block.
    fn overlaps(&self, start: usize, len: usize) -> Option<String> {
        let end = start + len.max(1);
        if let Some((&k, b)) = self.live.range(..end).next_back()
            && k + b.size.max(1) > start
        {
            return Some(format!("live block of {} bytes at {k:#x}", b.size));
        }
        self.pending
            .iter()
            .map(|p| &p.block)
            .find(|b| {
                let k = b.ptr.as_ptr() as usize;
                k < end && start < k + b.size.max(1)
            })
            .map(|b| format!("in-flight block of {} bytes at {:p}", b.size, b.ptr))
    }

    /// Checks and records a block just handed out.
    fn adopt(&mut self, ptr: NonNull<u8>, size: usize, generation: Option<u32>, owner: u64) {
        let start = ptr.as_ptr() as usize;
        let w = self.where_();
        assert_eq!(start % self.a.config().alignment, 0, "{w}: misaligned {ptr:p}");
        assert!(self.a.contains(ptr.as_ptr()), "{w}: {ptr:p} outside the arena");
        assert!(self.a.contains((start + size - 1) as *const u8), "{w}: {size} bytes at {ptr:p} leave the arena");
        let len = self.a.block_len(ptr.as_ptr());
        assert!(len.is_some_and(|l| l >= size), "{w}: block_len {len:?} for {size} bytes at {ptr:p}");
        if let Some(other) = self.overlaps(start, size) {
            panic!("{w}: {size} bytes at {ptr:p} overlap the {other}");
        }
        let id = self.next_id;
        self.next_id += 1;
        // SAFETY: a live block of at least `size` bytes that only the model uses.
        unsafe { fill(ptr, size, id) };
        self.insert_live(Block { ptr, size, id, generation, owner });
        self.live_bytes += size as u64;
        self.reserved += self.a.usable_size(size);
    }

    fn check_block(&self, b: &Block, what: &str) {
        // SAFETY: a live (or in-flight) block of the model.
        if let Some(offset) = unsafe { damaged(b.ptr, b.size, b.id, usize::MAX) } {
            panic!("{}: {what}: byte {offset} of {} bytes at {:p} damaged", self.where_(), b.size, b.ptr);
        }
    }

    /// The model's side of a successful free of `b` (already removed from `live`).
    fn forget(&mut self, b: &Block, generation: Option<u32>) {
        self.live_bytes -= b.size as u64;
        self.reserved -= self.a.usable_size(b.size);
        if let Some(g) = generation.or(b.generation) {
            self.stale.push((b.ptr, g));
            if self.stale.len() > 64 {
                self.stale.remove(0);
            }
        }
        self.freed.push((b.ptr, self.a.usable_size(b.size)));
        if self.freed.len() > 64 {
            self.freed.remove(0);
        }
    }

    /// A free (or reallocation) that must be rejected with one of `allowed` (and counted
    /// in `rejected_frees_total`).
    fn expect_rejected(&mut self, what: &str, result: Result<(), FreeError>, allowed: &[Allowed]) {
        match result {
            Err(e) if allowed.iter().any(|f| f(&e)) => self.rejected += 1,
            other => panic!("{}: {what}: {other:?}", self.where_()),
        }
    }

    // --- operations -----------------------------------------------------------------

    fn step(&mut self) {
        let kind = self.byte() % 32;
        if self.trace {
            eprintln!("{}: {}", self.where_(), OP_NAMES[usize::from(kind)]);
        }
        match kind {
            0..=8 => self.allocate(),
            9..=14 => self.free(),
            15..=16 => self.realloc(),
            17 => {
                let c = self.cache();
                self.a.drain_thread_cache(&mut self.caches[c]);
            }
            18 => {
                let _ = self.a.trim();
            }
            19 => self.drop_cache(),
            20 => self.teardown(),
            21..=22 => self.hand_off(),
            23 => self.receive(),
            24 => self.reclaim_or_cancel(),
            25 => self.spent_token(),
            26 => self.forged_token(),
            27 => self.free_stale(),
            28 => self.free_foreign(),
            29 => self.free_in_flight(),
            30 => self.reclaim_unreachable(),
            _ => self.check_stats(),
        }
    }

    fn allocate(&mut self) {
        let size = self.size();
        let c = self.cache();
        let tracked = self.coin();
        let usable = self.a.usable_size(size);
        let beyond_cap = self.cap.is_some_and(|cap| size > cap);
        let absurd = size > MAX_ARENA_SIZE;
        if size != 0 && !beyond_cap && !absurd && self.reserved + usable > self.budget {
            return self.free();
        }
        let cache = &mut self.caches[c];
        let owner = cache.id();
        let result = if tracked {
            self.a.allocate_tracked(cache, size).map(|a| (a.ptr, Some(a.generation)))
        } else {
            self.a.allocate_with_cache(cache, size).map(|p| (p, None))
        };
        let w = self.where_();
        match result {
            Ok((ptr, generation)) => {
                assert!(size != 0 && !beyond_cap && !absurd, "{w}: allocated {size} bytes at {ptr:p}");
                self.adopt(ptr, size, generation, owner);
            }
            Err(AllocError::InvalidSize { requested }) => {
                assert_eq!(requested, size, "{w}");
                assert!(size == 0 || beyond_cap || absurd, "{w}: {size} bytes called invalid");
            }
            Err(AllocError::OutOfMemory { requested, .. }) => {
                assert_eq!(requested, size, "{w}");
                assert!(size != 0, "{w}: 0 bytes out of memory");
            }
            Err(e) => {
                assert!(absurd, "{w}: allocate {size}: {e:?}");
            }
        }
    }

    fn free(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let b = self.remove_live(key);
        self.check_block(&b, "before free");
        let c = self.cache();
        let how = self.byte() % 6;
        let cache = &mut self.caches[c];
        // SAFETY: the block is live in the model and freed once here; any pointer is
        // accepted by the frees.
        let result = unsafe {
            match (how, b.generation) {
                (0, _) => self.a.deallocate_with_cache(cache, b.ptr),
                (1, _) => self.a.deallocate_with_size(cache, b.ptr, b.size),
                (2, Some(g)) => self.a.deallocate_tracked(cache, b.ptr, g),
                (3, g) => self.a.deallocate_uncached(b.ptr, g),
                (4, Some(g)) => {
                    if self.a.reclaim_unreachable_cached(cache, b.ptr, g) {
                        Ok(())
                    } else {
                        Err(FreeError::DoubleFree { addr: key })
                    }
                }
                _ => self.a.deallocate_with_cache(cache, b.ptr),
            }
        };
        assert_eq!(result, Ok(()), "{}: free of {} bytes at {:p}", self.where_(), b.size, b.ptr);
        self.forget(&b, None);
        // Freed: a second free is a double free (nothing could reuse it in between).
        let cache = &mut self.caches[c];
        // SAFETY: rejected frees touch nothing.
        let again = unsafe { self.a.deallocate_with_cache(cache, b.ptr) };
        self.expect_rejected("second free", again, &[|e| matches!(e, FreeError::DoubleFree { .. })]);
    }

    fn realloc(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let new_size = self.size();
        let c = self.cache();
        let b = self.live[&key];
        let grown = self.a.usable_size(new_size).saturating_sub(self.a.usable_size(b.size));
        let beyond_cap = self.cap.is_some_and(|cap| new_size > cap);
        let absurd = new_size > MAX_ARENA_SIZE;
        if new_size != 0 && !beyond_cap && !absurd && self.reserved + grown > self.budget {
            return;
        }
        self.check_block(&b, "before realloc");
        let cache = &mut self.caches[c];
        let owner = cache.id();
        // SAFETY: the block is live and only the model uses it.
        let result = unsafe { self.a.reallocate(cache, b.ptr, new_size) };
        let w = self.where_();
        match result {
            Ok(ptr) => {
                assert!(new_size != 0 && !beyond_cap && !absurd, "{w}: realloc to {new_size} bytes succeeded");
                let b = self.remove_live(key);
                let kept = new_size.min(b.size);
                // SAFETY: the first `kept` bytes were carried over (the block at `ptr` is
                // at least `new_size` bytes); only those of the old pattern are read.
                if let Some(offset) = unsafe { damaged(ptr, b.size, b.id, kept) } {
                    panic!("{w}: realloc {} -> {new_size} ({:p} -> {ptr:p}) lost byte {offset}", b.size, b.ptr);
                }
                self.live_bytes -= b.size as u64;
                self.reserved -= self.a.usable_size(b.size);
                if ptr == b.ptr {
                    self.adopt(ptr, new_size, None, b.owner);
                } else {
                    // The old block was freed: its generation is stale (if known).
                    if let Some(g) = b.generation {
                        self.stale.push((b.ptr, g));
                    }
                    self.adopt(ptr, new_size, None, owner);
                }
            }
            Err(ReallocError::Alloc(AllocError::InvalidSize { .. })) => {
                assert!(new_size == 0 || beyond_cap || absurd, "{w}: realloc to {new_size}: invalid size");
                self.check_block(&b, "after a failed realloc");
            }
            Err(ReallocError::Alloc(AllocError::OutOfMemory { .. })) => {
                self.check_block(&b, "after a failed realloc");
            }
            Err(ReallocError::Alloc(_)) if absurd => self.check_block(&b, "after a failed realloc"),
            Err(e) => panic!("{w}: realloc of {} bytes at {:p} to {new_size}: {e:?}", b.size, b.ptr),
        }
    }

    fn drop_cache(&mut self) {
        let c = self.cache();
        let old = std::mem::replace(&mut self.caches[c], ThreadCache::new());
        // Documented: the hand-offs of a cache dropped *while bound* become orphans (a
        // cache is bound by its first allocation or free; `hand_off` takes `&ThreadCache`
        // and does not bind it, so a never-bound sender's hand-offs are not orphaned).
        if old.stats().bound != 0 {
            self.gone.insert(old.id());
        }
    }

    /// A thread going away: every block its cache owns is freed, its in-flight hand-offs
    /// become orphans.
    fn teardown(&mut self) {
        let c = self.cache();
        let id = self.caches[c].id();
        let owned: Vec<usize> = self.live.iter().filter(|(_, b)| b.owner == id).map(|(&k, _)| k).collect();
        let mut bytes = 0;
        for &key in &owned {
            let b = self.remove_live(key);
            self.check_block(&b, "before teardown");
            bytes += b.size;
            self.forget(&b, None);
        }
        // SAFETY: the model gave up every block `c` owns.
        let (freed, freed_bytes) = unsafe { self.a.free_all_owned_by(&self.caches[c]) };
        assert_eq!((freed, freed_bytes), (owned.len(), bytes), "{}: teardown of cache {id}", self.where_());
        let old = std::mem::replace(&mut self.caches[c], ThreadCache::new());
        self.gone.insert(old.id());
    }

    fn hand_off(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let Some(generation) = self.live[&key].generation else { return };
        let c = self.cache();
        let label = self.u.arbitrary().unwrap_or(0);
        let sender = self.caches[c].id();
        let b = self.remove_live(key);
        // SAFETY: the model gives up the block (it is in flight from here on).
        let result = unsafe { self.a.hand_off(b.ptr, generation, label, &self.caches[c]) };
        let (token, next) = result.unwrap_or_else(|e| panic!("{}: hand-off of {:p}: {e:?}", self.where_(), b.ptr));
        assert_ne!(next, generation, "{}", self.where_());
        // The sender's handle is stale now.
        let cache = &mut self.caches[c];
        // SAFETY: rejected frees touch nothing.
        let stale = unsafe { self.a.deallocate_tracked(cache, b.ptr, generation) };
        self.expect_rejected("free of a handed-off block", stale, &[|e| matches!(e, FreeError::DoubleFree { .. })]);
        self.pending.push(Pending { block: b, token, label, old_generation: generation, generation: next, sender });
    }

    fn pick_pending(&mut self) -> Option<usize> {
        if self.pending.is_empty() { None } else { Some(self.below(self.pending.len())) }
    }

    fn check_received(&self, p: &Pending, r: &tensor_arena_core::Received) {
        let w = self.where_();
        assert_eq!(r.allocation.ptr, p.block.ptr, "{w}: received block");
        assert_eq!(r.allocation.generation, p.generation, "{w}: received generation");
        assert_eq!(r.requested, p.block.size, "{w}: received size");
        assert_eq!(r.label, p.label, "{w}: received label");
    }

    fn receive(&mut self) {
        let Some(i) = self.pick_pending() else { return };
        let c = self.cache();
        let refuse = self.byte() & 3 == 0;
        if refuse {
            let token = self.pending[i].token;
            let result = self.a.receive_if(token, &self.caches[c], |_| false);
            assert_eq!(result.map(|_| ()), Err(HandoffError::InvalidHandle), "{}: refused receive", self.where_());
            return;
        }
        let p = self.pending.swap_remove(i);
        let seen = self.a.in_flight(p.token).unwrap_or_else(|| panic!("{}: in_flight lost a hand-off", self.where_()));
        self.check_received(&p, &seen);
        let r =
            self.a.receive(p.token, &self.caches[c]).unwrap_or_else(|e| panic!("{}: receive: {e:?}", self.where_()));
        self.check_received(&p, &r);
        self.check_block(&p.block, "received");
        assert!(self.a.in_flight(p.token).is_none(), "{}: received yet in flight", self.where_());
        self.spent.push(p.token);
        let owner = self.caches[c].id();
        self.insert_live(Block { generation: Some(p.generation), owner, ..p.block });
    }

    fn reclaim_or_cancel(&mut self) {
        let Some(i) = self.pick_pending() else { return };
        let p = self.pending.swap_remove(i);
        self.check_block(&p.block, "in flight");
        if self.coin() {
            let freed = self.a.reclaim(p.token).unwrap_or_else(|e| panic!("{}: reclaim: {e:?}", self.where_()));
            assert_eq!(freed, p.block.size, "{}: reclaimed size", self.where_());
            self.forget(&p.block, Some(p.generation));
        } else {
            self.a.cancel_hand_off(p.token).unwrap_or_else(|e| panic!("{}: cancel: {e:?}", self.where_()));
            self.insert_live(Block { generation: Some(p.old_generation), ..p.block });
        }
        self.spent.push(p.token);
    }

    fn spent_token(&mut self) {
        if self.spent.is_empty() {
            return;
        }
        let i = self.below(self.spent.len());
        let token = self.spent[i];
        let c = self.cache();
        let result = match self.byte() % 3 {
            0 => self.a.receive(token, &self.caches[c]).map(|_| ()),
            1 => self.a.reclaim(token).map(|_| ()),
            _ => self.a.cancel_hand_off(token),
        };
        assert_eq!(result, Err(HandoffError::AlreadyReceived), "{}: spent token", self.where_());
        assert!(self.a.in_flight(token).is_none(), "{}", self.where_());
    }

    fn forged_token(&mut self) {
        let known: Vec<Token> = self.pending.iter().map(|p| p.token).chain(self.spent.iter().copied()).collect();
        let token = if !known.is_empty() && self.coin() {
            let t = known[self.below(known.len())];
            Token::from_bits(t.bits() ^ (1u128 << self.below(128)))
        } else {
            Token::from_bits(self.u.arbitrary().unwrap_or(0))
        };
        if known.contains(&token) {
            return;
        }
        // A token made up without the keys is genuine with probability 2^-64.
        assert!(self.a.in_flight(token).is_none(), "{}: forged token in flight", self.where_());
        let c = self.cache();
        let result = match self.byte() % 3 {
            0 => self.a.receive(token, &self.caches[c]).map(|_| ()),
            1 => self.a.reclaim(token).map(|_| ()),
            _ => self.a.cancel_hand_off(token),
        };
        assert_eq!(result, Err(HandoffError::InvalidHandle), "{}: forged token", self.where_());
        let text = token.to_text();
        assert_eq!(Token::parse(&text[..]), Some(token), "{}: token text", self.where_());
    }

    fn free_stale(&mut self) {
        if self.stale.is_empty() {
            return;
        }
        let i = self.below(self.stale.len());
        let (ptr, g) = self.stale[i];
        let addr = ptr.as_ptr() as usize;
        let reissued = self.live.contains_key(&addr);
        let in_flight = self.pending.iter().any(|p| p.block.ptr == ptr);
        let c = self.cache();
        let how = self.byte() % 5;
        if how == 3 && reissued {
            // A reallocation takes no generation: it would resize the block living there.
            return;
        }
        let cache = &mut self.caches[c];
        // SAFETY: a stale handle: the free must be rejected (the generation is checked), so
        // nothing is freed even if the address was handed out again.
        let result = unsafe {
            match how {
                0 => self.a.deallocate_tracked(cache, ptr, g),
                1 => self.a.deallocate_uncached(ptr, Some(g)),
                2 => {
                    if self.a.reclaim_unreachable(ptr, g) {
                        Ok(())
                    } else {
                        Err(FreeError::DoubleFree { addr })
                    }
                }
                4 => {
                    let sender = &self.caches[c];
                    self.a.hand_off(ptr, g, 7, sender).map(|_| ()).map_err(|e| match e {
                        HandoffError::Free(e) => e,
                        other => panic!("stale hand-off: {other:?}"),
                    })
                }
                _ => match self.a.reallocate(cache, ptr, 64) {
                    Ok(_) => Ok(()),
                    Err(ReallocError::Free(e)) => Err(e),
                    Err(ReallocError::Alloc(e)) => panic!("{e:?}"),
                },
            }
        };
        // Rejected frees and reallocations count; `reclaim_unreachable` and `hand_off` do not.
        self.rejected += u64::from(matches!(how, 0 | 1 | 3));
        match result {
            Err(FreeError::DoubleFree { .. }) => {}
            // No block starts there any more (the memory went to another class or a large
            // allocation).
            Err(FreeError::ForeignPointer { .. }) if !reissued && !in_flight => {}
            other => panic!("{}: stale handle {ptr:p} (generation {g}, way {how}): {other:?}", self.where_()),
        }
    }

    /// Frees of pointers that are not block starts of this allocator.
    fn free_foreign(&mut self) {
        let c = self.cache();
        let kind = self.byte() % 6;
        let (ptr, allowed): (NonNull<u8>, &[Allowed]) = match kind {
            0 => {
                // Interior of a live block.
                let Some(key) = self.pick_live() else { return };
                let size = self.live[&key].size;
                if size < 2 {
                    return;
                }
                let offset = self.range(1, size - 1);
                (nn(key + offset), &[|e| matches!(e, FreeError::ForeignPointer { .. })])
            }
            1 => {
                // Anywhere in committed memory that is no live or in-flight block start.
                let ranges = self.a.committed_ranges();
                if ranges.is_empty() {
                    return;
                }
                let (base, len) = ranges[self.below(ranges.len())];
                let addr = base.as_ptr() as usize + self.below(len);
                let addr = if self.coin() { addr & !(self.a.config().alignment - 1) } else { addr };
                if self.live.contains_key(&addr) || self.pending.iter().any(|p| p.block.ptr.as_ptr() as usize == addr) {
                    return;
                }
                (
                    nn(addr),
                    &[|e| matches!(e, FreeError::ForeignPointer { .. }), |e| matches!(e, FreeError::DoubleFree { .. })],
                )
            }
            2 => (other_arena_block(), &[|e| matches!(e, FreeError::ForeignPointer { .. })]),
            3 => {
                let local = 0u64;
                (nn(std::ptr::addr_of!(local) as usize), &[|e| matches!(e, FreeError::ForeignPointer { .. })])
            }
            4 => {
                let addr = match self.byte() % 3 {
                    0 => 1,
                    1 => usize::MAX & !63,
                    _ => self.u.arbitrary::<usize>().unwrap_or(1).max(1),
                };
                if self.a.contains(addr as *const u8) {
                    return;
                }
                (nn(addr), &[|e| matches!(e, FreeError::ForeignPointer { .. })])
            }
            _ => {
                // A live block with the wrong size.
                let Some(key) = self.pick_live() else { return };
                let size = self.live[&key].size;
                let wrong = match self.byte() % 3 {
                    0 => size + 1,
                    1 => size - 1,
                    _ => self.size(),
                };
                if wrong == size {
                    return;
                }
                let cache = &mut self.caches[c];
                // SAFETY: rejected (size mismatch): nothing is freed.
                let result = unsafe { self.a.deallocate_with_size(cache, nn(key), wrong) };
                self.expect_rejected(
                    "free with a wrong size",
                    result,
                    &[|e| matches!(e, FreeError::SizeMismatch { .. })],
                );
                return;
            }
        };
        let how = self.byte() % 3;
        let cache = &mut self.caches[c];
        // SAFETY: not a block start of this allocator: rejected, nothing is freed.
        let result = unsafe {
            match how {
                0 => self.a.deallocate_with_cache(cache, ptr),
                1 => self.a.deallocate_uncached(ptr, None),
                _ => self.a.reallocate(cache, ptr, 100).map(|_| ()).map_err(|e| match e {
                    ReallocError::Free(e) => e,
                    ReallocError::Alloc(e) => panic!("{e:?}"),
                }),
            }
        };
        self.expect_rejected(&format!("foreign free of {ptr:p} ({kind})"), result, allowed);
    }

    fn free_in_flight(&mut self) {
        let Some(i) = self.pick_pending() else { return };
        let (ptr, g, old) = (self.pending[i].block.ptr, self.pending[i].generation, self.pending[i].old_generation);
        let c = self.cache();
        let cache = &mut self.caches[c];
        // SAFETY: in flight: every free must be rejected.
        let results = unsafe {
            [
                self.a.deallocate_with_cache(cache, ptr),
                self.a.deallocate_tracked(cache, ptr, g),
                self.a.deallocate_tracked(cache, ptr, old),
                self.a.deallocate_uncached(ptr, None),
            ]
        };
        for result in results {
            self.expect_rejected(
                "free of an in-flight block",
                result,
                &[|e| matches!(e, FreeError::DoubleFree { .. })],
            );
        }
        // SAFETY: as above (rejected).
        let moved = unsafe { self.a.reallocate(&mut self.caches[c], ptr, 10) };
        assert!(
            matches!(moved, Err(ReallocError::Free(FreeError::DoubleFree { .. }))),
            "{}: realloc of an in-flight block: {moved:?}",
            self.where_()
        );
        self.rejected += 1;
        // SAFETY: as above (stale generation: not reclaimed).
        assert!(!unsafe { self.a.reclaim_unreachable(ptr, old) }, "{}", self.where_());
        // The sender may not hand it off again either.
        // SAFETY: rejected (in flight): nothing changes.
        let again = unsafe { self.a.hand_off(ptr, old, 0, &self.caches[c]) };
        assert!(
            matches!(again, Err(HandoffError::Free(FreeError::DoubleFree { .. }))),
            "{}: second hand-off: {again:?}",
            self.where_()
        );
    }

    fn reclaim_unreachable(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let b = self.live[&key];
        let Some(g) = b.generation else { return };
        // SAFETY: a wrong generation: nothing is freed.
        assert!(!unsafe { self.a.reclaim_unreachable(b.ptr, g.wrapping_add(1)) }, "{}", self.where_());
        let b = self.remove_live(key);
        self.check_block(&b, "before reclaim_unreachable");
        // SAFETY: the model gives the block up.
        assert!(unsafe { self.a.reclaim_unreachable(b.ptr, g) }, "{}: reclaim_unreachable", self.where_());
        self.forget(&b, None);
    }

    // --- scribbling -----------------------------------------------------------------

    /// Writes input bytes over `[start, start + len)` (user memory), then gives the live
    /// and in-flight blocks it reached their patterns back.
    fn scribble_range(&mut self, start: usize, len: usize) {
        // The input's bytes, then a pseudo-random continuation seeded by them, as one
        // chunk copied over the range.
        let n = self.range(1, 64);
        let seed = self.u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default();
        let mut word =
            seed.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let mut chunk = seed;
        chunk.resize(4 * KIB + 7, 0);
        for byte in &mut chunk[n.min(4 * KIB)..] {
            word = word.rotate_left(9) ^ 0x9E37_79B9_7F4A_7C15;
            *byte = word as u8;
        }
        let mut offset = 0;
        while offset < len {
            // A different phase per chunk, so the bytes do not repeat every 4 KiB.
            let phase = (offset / (4 * KIB)) % 8;
            let n = (len - offset).min(4 * KIB);
            // SAFETY: `[start, start + len)` is committed user memory of the arena (no
            // Rust reference points into it); the blocks the model holds get their
            // patterns back below.
            unsafe { std::ptr::copy_nonoverlapping(chunk[phase..].as_ptr(), (start as *mut u8).add(offset), n) };
            offset += n;
        }
        let end = start + len;
        let touched: Vec<Block> = self
            .live
            .range(..end)
            .rev()
            .take_while(|&(&k, b)| k + b.size > start)
            .map(|(_, b)| *b)
            .chain(self.pending.iter().map(|p| p.block))
            .collect();
        for b in touched {
            // SAFETY: a block the model holds.
            unsafe { fill(b.ptr, b.size, b.id) };
        }
    }

    fn scribble(&mut self) {
        let ranges = self.a.committed_ranges();
        if ranges.is_empty() {
            return;
        }
        let in_committed = |addr: usize, len: usize| {
            ranges.iter().any(|&(base, l)| {
                let b = base.as_ptr() as usize;
                addr >= b && addr + len <= b + l
            })
        };
        match self.byte() % 8 {
            0..=2 => {
                let (base, len) = ranges[self.below(ranges.len())];
                let from = self.below(len);
                let n = self.range(1, 256 * KIB).min(len - from);
                self.scribble_range(base.as_ptr() as usize + from, n);
            }
            3..=4 => {
                // A whole live block, its slack included.
                let Some(key) = self.pick_live() else { return };
                let len = self.a.block_len(nn(key).as_ptr()).unwrap_or(0).min(4 * MIB);
                if in_committed(key, len) {
                    self.scribble_range(key, len);
                }
            }
            5..=6 => {
                // A freed block (maybe handed out again since).
                if self.freed.is_empty() {
                    return;
                }
                let i = self.below(self.freed.len());
                let (ptr, len) = self.freed[i];
                let len = len.min(4 * MIB);
                if in_committed(ptr.as_ptr() as usize, len) {
                    self.scribble_range(ptr.as_ptr() as usize, len);
                }
            }
            _ => {
                // Everything (a few times per input).
                if self.full_scribbles >= 2 {
                    return;
                }
                self.full_scribbles += 1;
                for (base, len) in ranges {
                    self.scribble_range(base.as_ptr() as usize, len);
                }
            }
        }
    }

    // --- checks ---------------------------------------------------------------------

    /// The allocator's invariants, and those of the caches this step used (of every cache
    /// every 16 steps: only a step that passes a cache changes its lists).
    fn check_invariants(&mut self) {
        if let Err(e) = self.a.check_invariants() {
            panic!("{}: allocator invariant: {e}", self.where_());
        }
        let touched = if self.op % 16 == 15 { u8::MAX } else { self.touched };
        self.touched = 0;
        for (_, cache) in self.caches.iter().enumerate().filter(|&(c, _)| touched & (1 << c) != 0) {
            if let Err(e) = cache.check_invariants() {
                panic!("{}: cache invariant: {e}", self.where_());
            }
        }
    }

    fn check_stats(&self) {
        let w = self.where_();
        let s = self.a.stats();
        let in_flight_bytes: u64 = self.pending.iter().map(|p| p.block.size as u64).sum();
        assert_eq!(s.live_allocations, (self.live.len() + self.pending.len()) as u64, "{w}: live allocations");
        assert_eq!(s.live_bytes, self.live_bytes, "{w}: live bytes");
        assert_eq!(s.in_flight_count, self.pending.len() as u64, "{w}: in flight");
        assert_eq!(s.in_flight_bytes, in_flight_bytes, "{w}: in-flight bytes");
        let cached: u64 = self.caches.iter().map(|c| c.stats().blocks).sum();
        assert_eq!(s.thread_cache_blocks, cached, "{w}: cached blocks");
        assert_eq!(s.rejected_frees_total, self.rejected, "{w}: rejected frees");
        if s.max_bytes > 0 {
            assert_eq!(s.remaining_bytes, s.max_bytes - s.carved_bytes + s.free_span_bytes, "{w}: remaining");
        }
        let mut orphans: Vec<Token> = self.a.orphaned_hand_offs().into_iter().map(|o| o.token).collect();
        let mut expected: Vec<Token> =
            self.pending.iter().filter(|p| self.gone.contains(&p.sender)).map(|p| p.token).collect();
        orphans.sort_unstable_by_key(|t| t.bits());
        expected.sort_unstable_by_key(|t| t.bits());
        assert!(orphans == expected, "{w}: {} orphaned hand-offs, expected {}", orphans.len(), expected.len());
    }

    /// Frees everything and checks the arena is empty again.
    fn finish(mut self) {
        self.check_stats();
        for p in std::mem::take(&mut self.pending) {
            self.check_block(&p.block, "in flight at the end");
            let freed = self.a.reclaim(p.token).unwrap_or_else(|e| panic!("final reclaim: {e:?}"));
            assert_eq!(freed, p.block.size);
            self.live_bytes -= p.block.size as u64;
        }
        let keys: Vec<usize> = self.live.keys().copied().collect();
        for key in keys {
            let b = self.remove_live(key);
            self.check_block(&b, "at the end");
            // SAFETY: live in the model; freed once.
            let result = unsafe { self.a.deallocate_with_cache(&mut self.caches[0], b.ptr) };
            assert_eq!(result, Ok(()), "final free of {:p}", b.ptr);
            self.live_bytes -= b.size as u64;
        }
        assert_eq!(self.live_bytes, 0);
        self.touched = u8::MAX;
        self.check_invariants();
        self.caches.clear();
        let _ = self.a.trim();
        let s = self.a.stats();
        assert_eq!((s.live_allocations, s.live_bytes, s.in_flight_count), (0, 0, 0), "at the end: {s:?}");
        assert_eq!((s.thread_cache_blocks, s.slabs, s.central_blocks), (0, 0, 0), "at the end: {s:?}");
        assert_eq!(s.free_span_bytes, s.carved_bytes, "at the end: {s:?}");
        assert_eq!(s.allocations_total, s.frees_total, "at the end: {s:?}");
        if let Err(e) = self.a.check_invariants() {
            panic!("at the end: {e}");
        }
    }
}

/// Runs one fuzz input: decodes a configuration and up to [`MAX_OPS`] operations from
/// `data` and checks them against the model (panics on a violation). `scribble` also
/// writes input bytes over user memory between operations.
pub fn run(data: &[u8], scribble: bool) {
    let mut u = Unstructured::new(data);
    let mut model = Model::new(&mut u, scribble);
    while !model.u.is_empty() && model.op < MAX_OPS {
        model.step();
        model.check_invariants();
        if model.scribble && model.coin() {
            // Checked by the next step's (or the final) invariant check.
            model.scribble();
        }
        model.op += 1;
    }
    model.finish();
}
