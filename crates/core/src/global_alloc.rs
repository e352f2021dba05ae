//! [`TensorArenaGlobalAlloc`]: the global allocator as a Rust `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

use crate::config::MIN_ALIGNMENT;
use crate::global;

/// Serves Rust's heap from the process-global arena: sizes 1 ..= any with alignment up
/// to 64 bytes. Larger alignments, re-entrant calls (the allocator's own bookkeeping),
/// calls during thread teardown, and requests the arena cannot hold go to the system
/// allocator; `dealloc` tells the two apart by address, so nothing is ever freed to the
/// wrong one. Invalid frees are never fatal: the block is left alone (and counted in
/// `rejected_frees_total`).
///
/// ```no_run
/// #[global_allocator]
/// static HEAP: tensor_arena_core::TensorArenaGlobalAlloc = tensor_arena_core::TensorArenaGlobalAlloc::new();
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TensorArenaGlobalAlloc;

impl TensorArenaGlobalAlloc {
    /// The adapter (zero-sized).
    #[must_use]
    pub const fn new() -> Self {
        Self
    }
}

// SAFETY: `alloc` returns either a block of at least `layout.size()` bytes aligned to 64
// (≥ `layout.align()`) that no one else holds, or a System allocation; `dealloc` routes
// each pointer back to the allocator that made it (arena range check).
unsafe impl GlobalAlloc for TensorArenaGlobalAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.align() <= MIN_ALIGNMENT
            && layout.size() != 0
            && let Ok(ptr) = global::allocate(layout.size())
        {
            return ptr.as_ptr();
        }
        // SAFETY: forwarded GlobalAlloc contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let ours = global::existing().is_some_and(|a| a.contains(ptr));
        match NonNull::new(ptr) {
            Some(block) if ours => {
                // SAFETY: `ptr` is an arena block this adapter handed out (GlobalAlloc
                // contract). An error leaves the block alone; it is counted in the stats.
                let _ = unsafe { global::deallocate(block) };
            }
            // SAFETY: not in the arena, so it came from System (GlobalAlloc contract).
            _ => unsafe { System.dealloc(ptr, layout) },
        }
    }
}
