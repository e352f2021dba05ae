//! [`TensorArenaGlobalAlloc`]: the global allocator as a Rust `#[global_allocator]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::NonNull;

use crate::config::MIN_ALIGNMENT;
use crate::global;

/// Serves Rust's heap from the process-global arena: sizes 1 ..= any with alignment up
/// to 64 bytes. `realloc` resizes in place where it can (same size class; a large block
/// growing into the free pages after it, or shrinking), so a growing `Vec` does not hold
/// its old and new buffers at once. Larger alignments, re-entrant calls (the allocator's own bookkeeping),
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
            && let Some(ptr) = global::adapter_allocate(layout.size())
        {
            return ptr.as_ptr();
        }
        // SAFETY: forwarded GlobalAlloc contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let Some(arena) = global::existing().filter(|a| a.contains(ptr)) else {
            // SAFETY: not in the arena, so it came from System (GlobalAlloc contract).
            return unsafe { System.realloc(ptr, layout, new_size) };
        };
        if layout.align() <= MIN_ALIGNMENT
            && new_size != 0
            && let Some(block) = NonNull::new(ptr)
            // SAFETY: `ptr` is a live arena block this adapter handed out (GlobalAlloc
            // contract); on error nothing changed.
            && let Some(moved) = unsafe { global::adapter_reallocate(arena, block, new_size) }
        {
            return moved.as_ptr();
        }
        // Re-entrant call, or the arena cannot hold the new size: allocate elsewhere, copy,
        // free ours.
        let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
            return std::ptr::null_mut();
        };
        // SAFETY: forwarded GlobalAlloc contract; the new block is distinct from the old.
        unsafe {
            let new = self.alloc(new_layout);
            if !new.is_null() {
                std::ptr::copy_nonoverlapping(ptr, new, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            new
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        match (global::existing(), NonNull::new(ptr)) {
            (Some(arena), Some(block)) if arena.contains(ptr) => {
                // SAFETY: `ptr` is an arena block this adapter handed out (GlobalAlloc
                // contract). An error leaves the block alone; it is counted in the stats.
                unsafe { global::adapter_deallocate(arena, block) };
            }
            // SAFETY: not in the arena, so it came from System (GlobalAlloc contract).
            _ => unsafe { System.dealloc(ptr, layout) },
        }
    }
}
