#![doc = include_str!("../README.md")]
//!
//! ## Glossary
//! - **arena**: all the memory one allocator hands out: one or more regions, carved
//!   bottom-up, growing by regions without a cap (`max_bytes`), never unmapped while a
//!   handle lives.
//! - **region**: one reservation of address space, committed a chunk at a time; its
//!   metadata lives in a separate mapping (the block table and the slab map).
//! - **chunk**: 4 MiB of a region ([`CHUNK_SIZE`]): the unit of commit and of JavaScript
//!   windows; slabs that fit in a chunk never cross one.
//! - **block**: what one allocation gets: its class payload rounded up to the alignment,
//!   user bytes only. Its metadata (state, generation, requested size, owner) is a 16-byte
//!   entry of the block table, out of band ([`BLOCK_METADATA_BYTES`]).
//! - **class**: a size class, the rounded-up size of small requests (1 B ..= 16 MiB);
//!   see [`SizeClass`] and [`CLASS_SIZES`].
//! - **slab**: a run of whole pages cut into blocks of one class.
//! - **thread cache**: [`ThreadCache`], caller-owned, one per thread: a list of free
//!   blocks per class (linked through their out-of-band metadata), refilled from and drained
//!   to the central pool in batches.
//! - **central pool**: per class, the slabs the class owns with their free blocks, and an
//!   inbox for blocks freed by a thread other than their owner (a remote free).
//! - **span heap**: free runs of pages. Fully free slabs and freed large allocations go
//!   back there, so any class, or the large path, reuses them; idle spans are returned to
//!   the OS.
//! - **large allocation**: a request above 16 MiB: its own span, tracked in a registry.
//! - **lent block**: a block a layer above keeps allocated for reuse without calling the
//!   allocator (the Node binding's recycled views); counted as cached through the thread
//!   cache's [`LentTier`].
//! - **hand-off**: a live block moved to another thread without copying: in flight (held
//!   by no thread) until exactly one receiver claims it with its token.
#![deny(missing_docs)]

mod allocate;
mod allocator;
mod arena;
mod central;
mod config;
mod error;
mod free;
mod global;
mod global_alloc;
mod handoff;
mod inbox;
#[cfg(any(test, feature = "invariants"))]
mod invariants;
mod large;
mod lent;
mod maintenance;
mod meta;
mod os;
mod pages;
mod realloc;
mod region;
mod size_class;
mod snapshot;
mod span_heap;
mod stats;
mod sync;
mod table;
mod teardown;
mod thread_cache;
mod token;

pub use allocator::{Allocation, Allocator};
pub use config::{AllocatorConfig, MAX_ALIGNMENT, MAX_ARENA_SIZE, MIN_ALIGNMENT, MIN_CAP};
pub use error::{AllocError, Bytes, FreeError, InitError};
pub use global::{allocate, deallocate, deallocate_with_size, global_stats, reallocate};
pub use global_alloc::TensorArenaGlobalAlloc;
pub use handoff::{HandoffError, Orphan, Received};
pub use lent::{LENT_WORDS, LentTier, LentWords};
pub use meta::BLOCK_METADATA_BYTES;
pub use realloc::ReallocError;
pub use region::CHUNK_SIZE;
pub use size_class::{CLASS_SIZES, MAX_SMALL_SIZE, NUM_CLASSES, SizeClass};
pub use stats::{AllocatorStats, ClassStats, StatField, StatKind, ThreadCacheStats};
pub use thread_cache::ThreadCache;
pub use token::Token;
