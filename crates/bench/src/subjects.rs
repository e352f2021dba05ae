//! The five allocators under test, each behind the same two small traits.
//!
//! `Subject` builds one run's shared state (a fresh arena for the two arena allocators,
//! nothing for the `GlobalAlloc` statics) and `ThreadCtx` is the per-thread handle the
//! workloads allocate and free through. Workloads are generic over `Subject`, so every
//! allocator gets the same monomorphized, inlined call path.

use core::alloc::{GlobalAlloc, Layout};
use core::fmt::Display;
use core::ptr::NonNull;
use std::sync::Arc;

use crate::BenchError;

/// Alignment of every request, for every allocator (orthotope's harness uses the same).
pub const ALIGNMENT: usize = 64;

/// Bytes of arena space an arena allocator has carved out of its mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ArenaUsage {
    /// Bytes of the arena handed out to slabs/spans so far (never shrinks for orthotope).
    pub carved: u64,
    /// Arena capacity.
    pub capacity: u64,
}

/// One allocator under test.
pub trait Subject: 'static {
    /// Display name (also the value accepted by `TENSOR_ARENA_BENCH_ALLOCATOR`).
    const NAME: &'static str;
    /// State shared by all threads of one run.
    type Run: Send + Sync + 'static;
    /// Per-thread handle; built on the thread that uses it.
    type Thread: ThreadCtx;

    /// Builds the state for one run (outside the timed region).
    ///
    /// # Errors
    /// Fails when the allocator cannot be created.
    fn new_run() -> Result<Self::Run, BenchError>;
    /// Builds the calling thread's handle.
    fn thread_ctx(run: &Arc<Self::Run>) -> Self::Thread;
    /// Arena accounting, for the allocators that have an arena.
    fn arena_usage(run: &Self::Run) -> Option<ArenaUsage>;
}

/// Per-thread allocation handle.
pub trait ThreadCtx {
    /// Allocates `size` bytes aligned to [`ALIGNMENT`].
    ///
    /// # Errors
    /// [`BenchError::OutOfMemory`] when the allocator is exhausted.
    fn alloc(&mut self, size: usize) -> Result<NonNull<u8>, BenchError>;

    /// Frees a block with its exact request size.
    ///
    /// # Safety
    /// `ptr` must be live, from this subject's current run, allocated with `size`.
    ///
    /// # Errors
    /// When the allocator rejects the free.
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), BenchError>;
}

#[cold]
#[inline(never)]
fn oom(name: &str, size: usize, detail: &dyn Display) -> BenchError {
    BenchError::OutOfMemory(format!("{name}: allocating {size} bytes: {detail}"))
}

#[cold]
#[inline(never)]
fn failed(name: &str, what: &str, size: usize, detail: &dyn Display) -> BenchError {
    BenchError::Alloc(format!("{name}: {what} of {size} bytes failed: {detail}"))
}

// ---------------------------------------------------------------- GlobalAlloc statics

/// A `GlobalAlloc` implementation driven directly (never installed as the process allocator).
pub struct RawCtx<A: GlobalAlloc + 'static> {
    alloc: &'static A,
    name: &'static str,
}

impl<A: GlobalAlloc + 'static> ThreadCtx for RawCtx<A> {
    #[inline]
    fn alloc(&mut self, size: usize) -> Result<NonNull<u8>, BenchError> {
        let Ok(layout) = Layout::from_size_align(size, ALIGNMENT) else {
            return Err(failed(self.name, "layout", size, &"invalid layout"));
        };
        // SAFETY: every workload request is non-zero, and the layout is valid.
        let ptr = unsafe { self.alloc.alloc(layout) };
        NonNull::new(ptr).ok_or_else(|| oom(self.name, size, &"null"))
    }

    #[inline]
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), BenchError> {
        // SAFETY: the caller passes the size used for the allocation, and that layout was
        // valid when it was allocated.
        let layout = unsafe { Layout::from_size_align_unchecked(size, ALIGNMENT) };
        // SAFETY: the caller guarantees `ptr` is live and came from this allocator with `layout`.
        unsafe { self.alloc.dealloc(ptr.as_ptr(), layout) };
        Ok(())
    }
}

macro_rules! raw_subject {
    ($ty:ident, $name:literal, $alloc_ty:ty, $static_name:ident, $init:expr, $doc:literal) => {
        static $static_name: $alloc_ty = $init;

        #[doc = $doc]
        pub struct $ty;

        impl Subject for $ty {
            const NAME: &'static str = $name;
            type Run = ();
            type Thread = RawCtx<$alloc_ty>;

            fn new_run() -> Result<(), BenchError> {
                Ok(())
            }

            fn thread_ctx(_run: &Arc<()>) -> Self::Thread {
                RawCtx { alloc: &$static_name, name: $name }
            }

            fn arena_usage(_run: &()) -> Option<ArenaUsage> {
                None
            }
        }
    };
}

raw_subject!(
    SystemSubject,
    "System",
    std::alloc::System,
    SYSTEM,
    std::alloc::System,
    "The platform allocator (glibc malloc here)."
);
raw_subject!(
    MimallocSubject,
    "mimalloc",
    mimalloc::MiMalloc,
    MIMALLOC,
    mimalloc::MiMalloc,
    "mimalloc through its `GlobalAlloc` type."
);
raw_subject!(
    JemallocSubject,
    "jemalloc",
    tikv_jemallocator::Jemalloc,
    JEMALLOC,
    tikv_jemallocator::Jemalloc,
    "jemalloc (tikv-jemallocator) through its `GlobalAlloc` type."
);

// ---------------------------------------------------------------- orthotope 0.3.1

/// orthotope 0.3.1 through its instance API: one `Allocator` per run, one `ThreadCache`
/// per thread, size-checked frees.
pub struct OrthotopeSubject;

/// A thread's orthotope cache.
pub struct OrthotopeCtx {
    run: Arc<orthotope::Allocator>,
    cache: orthotope::ThreadCache,
}

impl Subject for OrthotopeSubject {
    const NAME: &'static str = "orthotope";
    type Run = orthotope::Allocator;
    type Thread = OrthotopeCtx;

    fn new_run() -> Result<orthotope::Allocator, BenchError> {
        orthotope::Allocator::new(orthotope::AllocatorConfig::default())
            .map_err(|e| BenchError::Alloc(format!("orthotope init: {e}")))
    }

    fn thread_ctx(run: &Arc<orthotope::Allocator>) -> OrthotopeCtx {
        OrthotopeCtx { run: Arc::clone(run), cache: orthotope::ThreadCache::new(*run.config()) }
    }

    fn arena_usage(run: &orthotope::Allocator) -> Option<ArenaUsage> {
        let stats = run.stats();
        Some(ArenaUsage {
            carved: (stats.arena_capacity - stats.arena_remaining) as u64,
            capacity: stats.arena_capacity as u64,
        })
    }
}

impl ThreadCtx for OrthotopeCtx {
    #[inline]
    fn alloc(&mut self, size: usize) -> Result<NonNull<u8>, BenchError> {
        self.run.allocate_with_cache(&mut self.cache, size).map_err(|e| match e {
            orthotope::AllocError::OutOfMemory { .. } => oom(OrthotopeSubject::NAME, size, &e),
            other => failed(OrthotopeSubject::NAME, "allocation", size, &other),
        })
    }

    #[inline]
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), BenchError> {
        // SAFETY: forwarded caller contract: `ptr` is live, from this allocator, of `size`.
        unsafe { self.run.deallocate_with_size_checked(&mut self.cache, ptr, size) }
            .map_err(|e| failed(OrthotopeSubject::NAME, "free", size, &e))
    }
}

impl Drop for OrthotopeCtx {
    fn drop(&mut self) {
        // orthotope's ThreadCache has no destructor: hand cached blocks back explicitly.
        self.run.drain_thread_cache(&mut self.cache);
    }
}

// ---------------------------------------------------------------- ours

/// tensor-arena-core through its instance API: one `Allocator` per run, one `ThreadCache`
/// per thread, size-checked frees (`deallocate_with_size`).
pub struct OursSubject;

/// A thread's tensor-arena cache (its `Drop` drains to the allocator).
pub struct OursCtx {
    cache: tensor_arena_core::ThreadCache,
    run: tensor_arena_core::Allocator,
}

impl Subject for OursSubject {
    const NAME: &'static str = "tensor-arena";
    type Run = tensor_arena_core::Allocator;
    type Thread = OursCtx;

    fn new_run() -> Result<tensor_arena_core::Allocator, BenchError> {
        tensor_arena_core::Allocator::new(tensor_arena_core::AllocatorConfig::default())
            .map_err(|e| BenchError::Alloc(format!("tensor-arena init: {e}")))
    }

    fn thread_ctx(run: &Arc<tensor_arena_core::Allocator>) -> OursCtx {
        OursCtx { run: tensor_arena_core::Allocator::clone(run), cache: tensor_arena_core::ThreadCache::new() }
    }

    fn arena_usage(run: &tensor_arena_core::Allocator) -> Option<ArenaUsage> {
        let stats = run.stats();
        Some(ArenaUsage { carved: stats.carved_bytes, capacity: stats.reserved_bytes })
    }
}

impl ThreadCtx for OursCtx {
    #[inline]
    fn alloc(&mut self, size: usize) -> Result<NonNull<u8>, BenchError> {
        self.run.allocate_with_cache(&mut self.cache, size).map_err(|e| match e {
            tensor_arena_core::AllocError::OutOfMemory { .. } => oom(OursSubject::NAME, size, &e),
            other => failed(OursSubject::NAME, "allocation", size, &other),
        })
    }

    #[inline]
    unsafe fn free(&mut self, ptr: NonNull<u8>, size: usize) -> Result<(), BenchError> {
        // SAFETY: forwarded caller contract: `ptr` is live, from this allocator, of `size`.
        unsafe { self.run.deallocate_with_size(&mut self.cache, ptr, size) }
            .map_err(|e| failed(OursSubject::NAME, "free", size, &e))
    }
}
