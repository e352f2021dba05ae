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

mod handoffs;
mod misuse;
mod ops;
mod scribble;

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
