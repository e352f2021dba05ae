//! # tensor-arena-core
//!
//! An arena allocator for allocation-heavy work (ML inference, tensor pipelines): one
//! pre-mapped arena, fixed size classes, per-thread caches, a shared central pool and a
//! tracked large-allocation path. Pure Rust; the Node binding builds on it.
//!
//! ## Glossary
//! - **arena**: one anonymous mapping reserved up front and committed page by page on
//!   first touch; carved lock-free from the bottom, never unmapped while a handle lives.
//! - **block**: what one allocation gets: a 64-byte header then the payload; the user
//!   pointer (just after the header) is aligned to the configured alignment.
//! - **class**: a size class, the rounded-up size of small requests (1 B ..= 16 MiB);
//!   see [`SizeClass`] and [`CLASS_SIZES`].
//! - **slab**: a run of whole pages cut into blocks of one class.
//! - **thread cache**: [`ThreadCache`], caller-owned, one per thread: free blocks per class,
//!   refilled from and drained to the central pool in batches.
//! - **central pool**: per class, the slabs the class owns with their free blocks, and an
//!   inbox for blocks freed by a thread other than their owner (a remote free).
//! - **span heap**: free runs of pages. Fully free slabs and freed large allocations go
//!   back there, so any class, or the large path, reuses them; idle spans are returned to
//!   the OS.
//! - **large allocation**: a request above 16 MiB: its own span, tracked in a registry.
//! - **hand-off**: a live block moved to another thread without copying: in flight (held
//!   by no thread) until exactly one receiver claims it with its token.
#![deny(missing_docs)]

mod allocator;
mod arena;
mod central;
mod config;
mod error;
mod global;
mod global_alloc;
mod handoff;
mod header;
mod inbox;
mod large;
mod maintenance;
mod os;
mod pages;
mod size_class;
mod snapshot;
mod span_heap;
mod stats;
mod teardown;
mod thread_cache;

pub use allocator::{Allocation, Allocator};
pub use config::{AllocatorConfig, MAX_ALIGNMENT, MAX_ARENA_SIZE, MIN_ALIGNMENT};
pub use error::{AllocError, FreeError, InitError};
pub use global::{allocate, deallocate, deallocate_with_size, global_stats};
pub use global_alloc::TensorArenaGlobalAlloc;
pub use handoff::{HandoffError, Received};
pub use header::HEADER_SIZE;
pub use size_class::{CLASS_SIZES, MAX_SMALL_SIZE, NUM_CLASSES, SizeClass};
pub use stats::{AllocatorStats, ClassStats, StatField, StatKind, ThreadCacheStats};
pub use thread_cache::ThreadCache;
