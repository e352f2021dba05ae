//! Workload shapes (orthotope's harness, section 4 of the design notes, plus two tensor
//! workloads) and their generic, timed implementations.

use core::hint::black_box;
use core::ptr::NonNull;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use crate::BenchError;
use crate::subjects::{Subject, ThreadCtx};

mod scaling;
pub use scaling::thread_scaling_on;

/// `embedding_batch`: 8 buffers of 1,536 f32.
pub const EMBEDDING_BATCH: usize = 8;
/// Bytes of one embedding buffer.
pub const EMBEDDING_BYTES: usize = 1_536 * 4;
/// `mixed_size_churn` request sizes, allocated in this order and freed LIFO.
pub const MIXED_SIZES: [usize; 8] = [32, 64, 65, 128, 512, 4_096, 16_384, 70_000];
/// `same_thread_small_churn/N` sizes.
pub const SAME_THREAD_SIZES: [usize; 5] = [32, 64, 65, 4_096, 70_000];
/// `large_path` / `concurrent_large_4x` request: 20 MiB.
pub const LARGE_BYTES: usize = 20 << 20;
/// Threads of `concurrent_large_4x`.
pub const CONCURRENT_LARGE_THREADS: usize = 4;
/// Bytes handed from producer to consumer in the handoff workloads.
pub const HANDOFF_BYTES: usize = 256;
/// `tensor_sizes` requests: 1 MiB + 1, 1.5 MiB, 3 MiB, 6 MiB, 12 MiB.
pub const TENSOR_SIZES: [usize; 5] = [(1 << 20) + 1, 3 << 19, 3 << 20, 6 << 20, 12 << 20];
/// `cross_class_reuse`: bytes filled per phase.
pub const CROSS_CLASS_BYTES: usize = 256 << 20;
/// `cross_class_reuse`: block size of the first phase (64 KiB).
pub const CROSS_CLASS_FIRST: usize = 64 << 10;

/// `heap_churn/N`: request sizes of the live heap's blocks (picked pseudo-randomly).
pub const HEAP_CHURN_SIZES: [usize; 8] = [64, 96, 256, 1_024, 4_096, 6_144, 16_384, 65_536];

/// `thread_scaling/N`: the thread counts.
pub const SCALING_THREADS: [usize; 4] = [1, 2, 4, 8];
/// `thread_scaling/N`: alloc+free pairs per thread in a full run (the same at every N).
pub const SCALING_PER_THREAD: u64 = 120_000;
/// `thread_scaling/N`: fewest pairs per thread at any divisor (quick mode).
pub const SCALING_MIN_PER_THREAD: u64 = 4 * SCALING_WINDOW as u64;
/// `thread_scaling/N`: live blocks each thread keeps (a slot is freed, then refilled).
pub const SCALING_WINDOW: usize = 256;
/// `thread_scaling/N`: every this-many-th block leaving the window is freed by the next
/// thread instead (a remote free; at 1 thread the "next thread" is the thread itself).
pub const SCALING_REMOTE_EVERY: u64 = 4;
/// `thread_scaling/N`: blocks passed to the next thread per message.
pub const SCALING_BATCH: usize = 16;
/// `thread_scaling/N`: messages a thread's inbox holds before senders must wait.
pub const SCALING_INBOX: usize = 64;

/// What a workload does (its shape; the iteration count lives in [`Workload`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Allocate N, free N, repeated.
    SameThreadSmallChurn(usize),
    /// Allocate 8 x 6,144 B, free LIFO.
    EmbeddingBatch,
    /// Allocate the 8 [`MIXED_SIZES`], free LIFO.
    MixedSizeChurn,
    /// Allocate and free 20 MiB on one thread.
    LargePath,
    /// 4 threads allocate and free 20 MiB on one shared allocator.
    ConcurrentLarge4x,
    /// `pairs` producer/consumer pairs hand 256 B blocks over a rendezvous channel.
    Handoff {
        /// Independent producer/consumer pairs.
        pairs: usize,
    },
    /// Allocate and free each of the [`TENSOR_SIZES`] in turn.
    TensorSizes,
    /// Fill 256 MiB with 64 KiB blocks, free all, fill 256 MiB with `second`-byte blocks, free all.
    CrossClassReuse {
        /// Request size of the second phase.
        second: usize,
    },
    /// Build a live heap of `heap` bytes of [`HEAP_CHURN_SIZES`] blocks (untimed), then
    /// repeatedly free a pseudo-random live block and allocate one of a pseudo-random size in
    /// its place: the same operations on a heap inside one 4 MiB chunk and on one spread
    /// over many chunks.
    HeapChurn {
        /// Live bytes of the heap.
        heap: usize,
    },
    /// `threads` threads each run the same number of alloc+free pairs on a window of
    /// [`SCALING_WINDOW`] live blocks of 16 B – 64 KiB (pseudo-random, biased to small,
    /// replaced in pseudo-random order); every [`SCALING_REMOTE_EVERY`]-th block leaving a
    /// window goes to the next thread (in batches over a bounded channel), which frees it.
    ThreadScaling {
        /// Worker threads.
        threads: usize,
    },
}

/// Unit a workload reports in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Nanoseconds per operation.
    Ns,
    /// Microseconds per operation.
    Us,
}

impl Unit {
    /// Suffix used in tables.
    #[must_use]
    pub const fn suffix(self) -> &'static str {
        match self {
            Self::Ns => "ns",
            Self::Us => "µs",
        }
    }

    /// Converts a per-operation duration in seconds to this unit.
    #[must_use]
    pub fn scale(self, seconds: f64) -> f64 {
        match self {
            Self::Ns => seconds * 1e9,
            Self::Us => seconds * 1e6,
        }
    }
}

/// One benchmark workload with the iteration count used in this process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Name (also the value accepted by `TENSOR_ARENA_BENCH_WORKLOAD`).
    pub name: String,
    /// Shape.
    pub kind: Kind,
    /// Iterations of one run (for the handoffs: handoffs in total; for cross-class: cycles).
    pub iterations: u64,
    /// orthotope's own iteration count for the same shape (0 = not an orthotope workload).
    pub reference_iterations: u64,
    /// Reporting unit.
    pub unit: Unit,
    /// What one counted operation is.
    pub op: &'static str,
}

impl Workload {
    /// Operations counted per run (the divisor of the run time).
    #[must_use]
    pub fn operations(&self) -> u64 {
        match self.kind {
            Kind::TensorSizes => self.iterations * TENSOR_SIZES.len() as u64,
            Kind::CrossClassReuse { second } => self.iterations * cross_class_pairs(second) as u64,
            _ => self.iterations,
        }
    }
}

/// Blocks of the first and second phase of `cross_class_reuse`.
#[must_use]
pub const fn cross_class_counts(second: usize) -> (usize, usize) {
    (CROSS_CLASS_BYTES / CROSS_CLASS_FIRST, CROSS_CLASS_BYTES.div_ceil(second))
}

/// Alloc+free pairs in one `cross_class_reuse` cycle.
#[must_use]
pub const fn cross_class_pairs(second: usize) -> usize {
    let (a, b) = cross_class_counts(second);
    a + b
}

/// All workloads. `divisor` scales iteration counts down (1 = the full run: orthotope's own
/// counts except the two handoffs, cut 4x to fit the time budget, and the two 20 MiB
/// workloads, raised 10x because 1,200 pairs took ~0.1 ms, below scheduler noise).
#[must_use]
pub fn all(divisor: u64) -> Vec<Workload> {
    let w = |name: String, kind, iterations: u64, reference: u64, unit, op| Workload {
        name,
        kind,
        iterations: {
            // Threaded shapes split their iterations evenly, so keep a whole multiple.
            let split = match kind {
                Kind::ConcurrentLarge4x => CONCURRENT_LARGE_THREADS as u64,
                Kind::Handoff { pairs } => pairs as u64,
                Kind::ThreadScaling { threads } => threads as u64,
                _ => 1,
            };
            let floor = match kind {
                // Enough pairs that every window fills and blocks cross threads, even in
                // quick mode.
                Kind::ThreadScaling { .. } => SCALING_MIN_PER_THREAD,
                _ => 1,
            };
            ((iterations / divisor) / split).max(floor) * split
        },
        reference_iterations: reference,
        unit,
        op,
    };
    let mut v = Vec::new();
    for n in SAME_THREAD_SIZES {
        let reference = match n {
            0..=64 => 6_000_000,
            65..=4_096 => 3_000_000,
            _ => 600_000,
        };
        v.push(w(
            format!("same_thread_small_churn/{n}"),
            Kind::SameThreadSmallChurn(n),
            reference,
            reference,
            Unit::Ns,
            "alloc+free pair",
        ));
    }
    v.push(w("embedding_batch".into(), Kind::EmbeddingBatch, 200_000, 200_000, Unit::Ns, "8 allocs + 8 frees"));
    v.push(w("mixed_size_churn".into(), Kind::MixedSizeChurn, 120_000, 120_000, Unit::Ns, "8 allocs + 8 frees"));
    v.push(w("large_path".into(), Kind::LargePath, 12_000, 1_200, Unit::Us, "20 MiB alloc+free pair"));
    v.push(w(
        "concurrent_large_4x".into(),
        Kind::ConcurrentLarge4x,
        12_000,
        1_200,
        Unit::Us,
        "20 MiB pair (wall / total)",
    ));
    v.push(w(
        "long_lived_handoff".into(),
        Kind::Handoff { pairs: 1 },
        20_000,
        80_000,
        Unit::Us,
        "256 B handoff (wall / total)",
    ));
    v.push(w(
        "long_lived_handoff_4x".into(),
        Kind::Handoff { pairs: 4 },
        20_000,
        80_000,
        Unit::Us,
        "256 B handoff (wall / total)",
    ));
    v.push(w("tensor_sizes".into(), Kind::TensorSizes, 20_000, 0, Unit::Ns, "alloc+free pair"));
    v.push(w(
        "cross_class_reuse/96k".into(),
        Kind::CrossClassReuse { second: 96 << 10 },
        2,
        0,
        Unit::Ns,
        "alloc+free pair",
    ));
    for (name, heap) in [("heap_churn/1m", 1 << 20), ("heap_churn/256m", 256 << 20)] {
        v.push(w(name.into(), Kind::HeapChurn { heap }, 2_000_000, 0, Unit::Ns, "free+alloc pair"));
    }
    v.push(w(
        "cross_class_reuse/1.5m".into(),
        Kind::CrossClassReuse { second: 3 << 19 },
        2,
        0,
        Unit::Ns,
        "alloc+free pair",
    ));
    for threads in SCALING_THREADS {
        v.push(w(
            format!("thread_scaling/{threads}"),
            Kind::ThreadScaling { threads },
            SCALING_PER_THREAD * threads as u64,
            0,
            Unit::Ns,
            "alloc+free pair (wall / total)",
        ));
    }
    v
}

/// Runs `workload` once for subject `S` on a fresh allocator and returns the timed part.
///
/// # Errors
/// [`BenchError::OutOfMemory`] when the allocator runs out (a result, not a crash), other
/// errors when an allocation or free is rejected or a thread fails.
pub fn run<S: Subject>(workload: &Workload) -> Result<Duration, BenchError> {
    let iterations = usize::try_from(workload.iterations).unwrap_or(usize::MAX);
    match workload.kind {
        Kind::SameThreadSmallChurn(size) => single::<S>(|ctx| churn(ctx, size, iterations)),
        Kind::EmbeddingBatch => single::<S>(|ctx| embedding(ctx, iterations)),
        Kind::MixedSizeChurn => single::<S>(|ctx| mixed(ctx, iterations)),
        Kind::LargePath => single::<S>(|ctx| churn(ctx, LARGE_BYTES, iterations)),
        Kind::TensorSizes => single::<S>(|ctx| tensor_sizes(ctx, iterations)),
        Kind::CrossClassReuse { second } => {
            // One untimed cycle first: every allocator is then timed in steady state (the
            // GlobalAlloc statics are warm from earlier runs anyway, the arenas are fresh).
            let (a, b) = cross_class_counts(second);
            let mut slots = Vec::with_capacity(a.max(b));
            let run = Arc::new(S::new_run()?);
            let mut ctx = S::thread_ctx(&run);
            cross_class_cycle(&mut ctx, &mut slots, second)?;
            let start = Instant::now();
            for _ in 0..iterations {
                cross_class_cycle(&mut ctx, &mut slots, second)?;
            }
            Ok(start.elapsed())
        }
        Kind::HeapChurn { heap } => {
            let run = Arc::new(S::new_run()?);
            let mut ctx = S::thread_ctx(&run);
            let mut rng = Lcg(0x5EED_C0DE);
            let mut live = Vec::new();
            let mut bytes = 0;
            while bytes < heap {
                let size = rng.size();
                live.push((ctx.alloc(size)?, size));
                bytes += size;
            }
            let start = Instant::now();
            let result = heap_churn(&mut ctx, &mut live, &mut rng, iterations);
            let elapsed = start.elapsed();
            for (ptr, size) in live.drain(..) {
                // SAFETY: `live` holds live blocks of `ctx` with their request sizes.
                unsafe { ctx.free(ptr, size)? };
            }
            result.map(|()| elapsed)
        }
        Kind::ConcurrentLarge4x => {
            let per_thread = iterations / CONCURRENT_LARGE_THREADS;
            threaded::<S>(CONCURRENT_LARGE_THREADS, move |_, ctx| churn(ctx, LARGE_BYTES, per_thread))
        }
        Kind::Handoff { pairs } => handoff::<S>(pairs, iterations / pairs),
        Kind::ThreadScaling { threads } => {
            thread_scaling_on::<S>(&Arc::new(S::new_run()?), threads, iterations / threads)
        }
    }
}

/// Builds a fresh run and one thread context (untimed), then times `body`.
fn single<S: Subject>(body: impl FnOnce(&mut S::Thread) -> Result<(), BenchError>) -> Result<Duration, BenchError> {
    let run = Arc::new(S::new_run()?);
    let mut ctx = S::thread_ctx(&run);
    let start = Instant::now();
    body(&mut ctx)?;
    let elapsed = start.elapsed();
    drop(ctx);
    drop(run);
    Ok(elapsed)
}

/// Spawns `threads` workers that build their context, meet at a barrier, and run `body`;
/// the time runs from the barrier to the last join.
fn threaded<S: Subject>(
    threads: usize,
    body: impl Fn(usize, &mut S::Thread) -> Result<(), BenchError> + Send + Sync + 'static,
) -> Result<Duration, BenchError> {
    threaded_on::<S>(&Arc::new(S::new_run()?), threads, body)
}

/// [`threaded`] on an existing run.
fn threaded_on<S: Subject>(
    run: &Arc<S::Run>,
    threads: usize,
    body: impl Fn(usize, &mut S::Thread) -> Result<(), BenchError> + Send + Sync + 'static,
) -> Result<Duration, BenchError> {
    let body = Arc::new(body);
    // Two barriers: `ready` once every context exists, `go` to start. The clock starts
    // between them, so it always starts before any worker does, even when the main thread
    // is preempted (4 workers + main on 2 cores).
    let ready = Arc::new(Barrier::new(threads + 1));
    let go = Arc::new(Barrier::new(threads + 1));
    let handles: Vec<_> = (0..threads)
        .map(|index| {
            let (run, body) = (Arc::clone(run), Arc::clone(&body));
            let (ready, go) = (Arc::clone(&ready), Arc::clone(&go));
            thread::spawn(move || {
                let mut ctx = S::thread_ctx(&run);
                ready.wait();
                go.wait();
                body(index, &mut ctx)
            })
        })
        .collect();
    ready.wait();
    let start = Instant::now();
    go.wait();
    let mut result = Ok(());
    for handle in handles {
        let joined = handle.join().map_err(|_| BenchError::Thread("worker panicked".into()));
        if result.is_ok() {
            result = joined.and_then(|r| r);
        }
    }
    let elapsed = start.elapsed();
    result.map(|()| elapsed)
}

#[inline(always)]
fn churn<T: ThreadCtx>(ctx: &mut T, size: usize, iterations: usize) -> Result<(), BenchError> {
    for _ in 0..iterations {
        let ptr = black_box(ctx.alloc(size)?);
        // SAFETY: `ptr` was just allocated by `ctx` with `size`.
        unsafe { ctx.free(ptr, size)? };
    }
    Ok(())
}

#[inline(always)]
fn embedding<T: ThreadCtx>(ctx: &mut T, iterations: usize) -> Result<(), BenchError> {
    let mut batch = [NonNull::<u8>::dangling(); EMBEDDING_BATCH];
    for _ in 0..iterations {
        for slot in &mut batch {
            *slot = ctx.alloc(EMBEDDING_BYTES)?;
        }
        black_box(&batch);
        for ptr in batch.iter().rev() {
            // SAFETY: every slot holds a live block allocated above with EMBEDDING_BYTES.
            unsafe { ctx.free(*ptr, EMBEDDING_BYTES)? };
        }
    }
    Ok(())
}

#[inline(always)]
fn mixed<T: ThreadCtx>(ctx: &mut T, iterations: usize) -> Result<(), BenchError> {
    let mut live = [NonNull::<u8>::dangling(); MIXED_SIZES.len()];
    for _ in 0..iterations {
        for (slot, size) in live.iter_mut().zip(MIXED_SIZES) {
            *slot = ctx.alloc(size)?;
        }
        black_box(&live);
        for (ptr, size) in live.iter().zip(MIXED_SIZES).rev() {
            // SAFETY: every slot holds a live block allocated above with its paired size.
            unsafe { ctx.free(*ptr, size)? };
        }
    }
    Ok(())
}

#[inline(always)]
fn tensor_sizes<T: ThreadCtx>(ctx: &mut T, iterations: usize) -> Result<(), BenchError> {
    for _ in 0..iterations {
        for size in TENSOR_SIZES {
            let ptr = black_box(ctx.alloc(size)?);
            // SAFETY: `ptr` was just allocated by `ctx` with `size`.
            unsafe { ctx.free(ptr, size)? };
        }
    }
    Ok(())
}

/// A tiny deterministic generator (64-bit LCG, high bits) for `heap_churn`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self.0.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as usize
    }

    fn size(&mut self) -> usize {
        HEAP_CHURN_SIZES[self.next() % HEAP_CHURN_SIZES.len()]
    }

    /// A `thread_scaling` request size: 16 B – 64 KiB, biased to small (about 60% up to
    /// 256 B, 25% up to 4 KiB, 12% up to 32 KiB, 3% up to 64 KiB), any byte count.
    fn scaling_size(&mut self) -> usize {
        let (lo, hi) = match self.next() % 100 {
            0..60 => (16, 256),
            60..85 => (257, 4 << 10),
            85..97 => ((4 << 10) + 1, 32 << 10),
            _ => ((32 << 10) + 1, 64 << 10),
        };
        lo + self.next() % (hi - lo + 1)
    }
}

#[inline(always)]
fn heap_churn<T: ThreadCtx>(
    ctx: &mut T,
    live: &mut [(NonNull<u8>, usize)],
    rng: &mut Lcg,
    iterations: usize,
) -> Result<(), BenchError> {
    for _ in 0..iterations {
        let slot = rng.next() % live.len();
        let (ptr, size) = live[slot];
        // SAFETY: `live` holds live blocks of `ctx` with their request sizes.
        unsafe { ctx.free(ptr, size)? };
        let size = rng.size();
        live[slot] = (black_box(ctx.alloc(size)?), size);
    }
    Ok(())
}

/// One cross-class cycle: 256 MiB of 64 KiB blocks, free all (allocation order), 256 MiB of
/// `second`-byte blocks, free all. On failure every block still live is freed first.
pub fn cross_class_cycle<T: ThreadCtx>(
    ctx: &mut T,
    slots: &mut Vec<NonNull<u8>>,
    second: usize,
) -> Result<(), BenchError> {
    let (a, b) = cross_class_counts(second);
    fill(ctx, slots, CROSS_CLASS_FIRST, a, |_, _| ())?;
    release(ctx, slots, CROSS_CLASS_FIRST)?;
    fill(ctx, slots, second, b, |_, _| ())?;
    release(ctx, slots, second)
}

/// Allocates `count` blocks of `size` into `slots` (cleared first), calling `each` on every
/// new block. On an allocation error frees what it got and returns the error.
pub fn fill<T: ThreadCtx>(
    ctx: &mut T,
    slots: &mut Vec<NonNull<u8>>,
    size: usize,
    count: usize,
    mut each: impl FnMut(NonNull<u8>, usize),
) -> Result<(), BenchError> {
    slots.clear();
    for _ in 0..count {
        match ctx.alloc(size) {
            Ok(ptr) => {
                each(ptr, size);
                slots.push(ptr);
            }
            Err(error) => {
                release(ctx, slots, size)?;
                return Err(error);
            }
        }
    }
    Ok(())
}

/// Frees every block in `slots` (all of `size`), in allocation order, and clears it.
pub fn release<T: ThreadCtx>(ctx: &mut T, slots: &mut Vec<NonNull<u8>>, size: usize) -> Result<(), BenchError> {
    for ptr in slots.drain(..) {
        // SAFETY: `slots` only holds live blocks allocated by `ctx` with `size`.
        unsafe { ctx.free(ptr, size)? };
    }
    Ok(())
}

#[cold]
fn poisoned() -> BenchError {
    BenchError::Thread("channel slot poisoned".into())
}

/// `pairs` producer/consumer pairs; each producer allocates 256 B and sends the address
/// over a rendezvous channel, its consumer frees it.
fn handoff<S: Subject>(pairs: usize, per_pair: usize) -> Result<Duration, BenchError> {
    let mut senders = Vec::with_capacity(pairs);
    let mut receivers = Vec::with_capacity(pairs);
    for _ in 0..pairs {
        let (tx, rx) = sync_channel::<usize>(0);
        senders.push(std::sync::Mutex::new(Some(tx)));
        receivers.push(std::sync::Mutex::new(Some(rx)));
    }
    let ends = Arc::new((senders, receivers));
    threaded::<S>(pairs * 2, move |index, ctx| {
        let pair = index / 2;
        if index % 2 == 0 {
            let tx = ends.0[pair].lock().map_err(|_| poisoned())?.take();
            let tx = tx.ok_or_else(|| BenchError::Thread("sender taken twice".into()))?;
            for _ in 0..per_pair {
                let ptr = ctx.alloc(HANDOFF_BYTES)?;
                tx.send(ptr.as_ptr() as usize).map_err(|e| BenchError::Thread(format!("send: {e}")))?;
            }
        } else {
            let rx = ends.1[pair].lock().map_err(|_| poisoned())?.take();
            let rx = rx.ok_or_else(|| BenchError::Thread("receiver taken twice".into()))?;
            for _ in 0..per_pair {
                let address = rx.recv().map_err(|e| BenchError::Thread(format!("recv: {e}")))?;
                let ptr = NonNull::new(address as *mut u8).ok_or_else(|| BenchError::Thread("null handoff".into()))?;
                // SAFETY: the producer sends only live HANDOFF_BYTES blocks of this run and
                // never touches them again.
                unsafe { ctx.free(ptr, HANDOFF_BYTES)? };
            }
        }
        Ok(())
    })
}
