//! Unreachable hand-outs, found without waiting for the event loop.
//!
//! Node runs the finalizer of an external ArrayBuffer in a later event-loop turn, and a
//! `FinalizationRegistry` callback too: never inside a loop that does not yield. A loop
//! that drops buffers without freeing them (as code written for `Buffer.alloc` does)
//! would never get their memory back. So every hand-out still live when the TypeScript
//! layer registers it (at the end of its turn, or in a burst: src/ts/unreachable.ts) is
//! remembered here with a *weak reference* (a Node-API reference with count 0), which V8
//! clears in the very GC that collects the object.
//!
//! A *sweep* takes every cleared entry: the block of an exclusive buffer is freed here,
//! through this thread's cache (only if it is still that hand-out: one freed explicitly,
//! handed off, or handed out again is left alone; without thread state for the arena any
//! more, the buffer's finalizer frees it), and its bytes are counted for
//! `takeReclaimedBytes` (the TypeScript layer escalates to a full GC when minor GCs give too
//! little back); a view's entry goes to the TypeScript layer, which owns the view's slot
//! and takes the list with `takeDeadViews`.
//!
//! A sweep only finds something after a GC, so the table keeps a weak *sentinel*: a fresh
//! object nothing references, gone after any GC. After enough additions since the last
//! sweep (a quarter of the table, at least 32, or 8 MiB of hand-outs), each addition
//! looks at the sentinel and sweeps when it is gone: a sweep costs one look per entry and
//! comes after at least a quarter as many additions. The TypeScript layer forces a sweep
//! (`sweepUnreachable`) before `stats()` (if a GC ran) and, after a forced GC, when the
//! arena is out of memory.
//!
//! `ArrayBuffer.prototype.transfer` moves an exclusive buffer's memory to a new
//! ArrayBuffer the arena does not know, and the old one may die while the new one lives:
//! the TypeScript layer marks such an entry *moved* (`markMoved`) before the transfer, and
//! a moved entry's block is left to the finalizer, which runs when the new buffer dies.
//!
//! Invariants (one table per JS thread, i.e. per env):
//! - `entries.len() = live + free.len()`, every index in `free` names a `None` entry;
//! - a view entry whose object died is in `dead_views` (its index not yet free) until
//!   `takeDeadViews` hands it over; the TypeScript layer's record of index `i` is valid
//!   exactly while entry `i` is a view entry or in `dead_views`.
//!
//! At env teardown the table is dropped without deleting its references: Node finalizes
//! the env's references itself, and the thread's blocks are freed by the teardown.

use std::cell::RefCell;
use std::ptr::{self, NonNull};

use napi::sys;

use crate::{raw, registry};

/// Additions between sentinel looks, at least.
const MIN_ADDED: usize = 32;
/// Bytes of additions after which the sentinel is looked at, whatever their number.
const CHECK_BYTES: usize = 8 << 20;

enum Kind {
    /// An exclusive buffer: its block is freed here once the buffer is unreachable.
    Exclusive { arena: usize, ptr: NonNull<u8>, generation: u32, bytes: usize, moved: bool },
    /// A view: the TypeScript layer reclaims its slot.
    View,
}

struct Entry {
    reference: sys::napi_ref,
    kind: Kind,
}

#[derive(Default)]
struct Table {
    entries: Vec<Option<Entry>>,
    free: Vec<u32>,
    dead_views: Vec<u32>,
    sentinel: Option<sys::napi_ref>,
    /// Additions (and their bytes) since the last sweep.
    added: usize,
    added_bytes: usize,
    /// Live entries after the last sweep.
    after_sweep: usize,
    /// Bytes of exclusive buffers the sweeps freed since `takeReclaimedBytes` last read it.
    reclaimed_bytes: usize,
}

thread_local! {
    static TABLE: RefCell<Table> = RefCell::new(Table::default());
}

/// Runs `f` on this thread's table (`None` during teardown).
fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> Option<R> {
    TABLE.try_with(|cell| cell.try_borrow_mut().ok().map(|mut t| f(&mut t))).ok().flatten()
}

/// A weak reference to `value`, or `None` if Node-API refuses.
///
/// # Safety
/// `env` is the running callback's env and `value` one of its handles.
unsafe fn weak(env: sys::napi_env, value: sys::napi_value) -> Option<sys::napi_ref> {
    let mut reference = ptr::null_mut();
    // SAFETY: forwarded; count 0 makes the reference weak.
    (unsafe { sys::napi_create_reference(env, value, 0, &mut reference) } == sys::Status::napi_ok).then_some(reference)
}

/// Whether the object behind `reference` was collected.
///
/// # Safety
/// `env` is the running callback's env; `reference` one of its live references.
unsafe fn collected(env: sys::napi_env, reference: sys::napi_ref) -> bool {
    let mut value = ptr::null_mut();
    // SAFETY: forwarded; a cleared weak reference gives a null value.
    let status = unsafe { sys::napi_get_reference_value(env, reference, &mut value) };
    status == sys::Status::napi_ok && value.is_null()
}

impl Table {
    fn live(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    fn insert(&mut self, entry: Entry, bytes: usize) -> u32 {
        self.added += 1;
        self.added_bytes = self.added_bytes.saturating_add(bytes);
        if let Some(index) = self.free.pop() {
            self.entries[index as usize] = Some(entry);
            return index;
        }
        self.entries.push(Some(entry));
        (self.entries.len() - 1) as u32
    }

    /// Whether a GC ran since the sentinel was made (a new one is made if so, or if there
    /// was none).
    ///
    /// # Safety
    /// `env` is the running callback's env.
    unsafe fn gc_ran(&mut self, env: sys::napi_env) -> bool {
        if let Some(sentinel) = self.sentinel {
            // SAFETY: forwarded; the sentinel is this env's reference.
            if !unsafe { collected(env, sentinel) } {
                return false;
            }
            // SAFETY: as above; deleted once.
            unsafe { sys::napi_delete_reference(env, sentinel) };
            self.sentinel = None;
        }
        let mut object = ptr::null_mut();
        // SAFETY: forwarded; the object is referenced by nothing but the weak reference.
        if unsafe { sys::napi_create_object(env, &mut object) } == sys::Status::napi_ok {
            // SAFETY: `object` is a handle of this callback.
            self.sentinel = unsafe { weak(env, object) };
        }
        true
    }

    /// Sweeps if enough was added since the last sweep and a GC ran since.
    ///
    /// # Safety
    /// `env` is the running callback's env.
    unsafe fn maybe_sweep(&mut self, env: sys::napi_env) {
        let due = self.added >= MIN_ADDED.max(self.after_sweep / 4) || self.added_bytes >= CHECK_BYTES;
        // SAFETY: forwarded.
        if due && unsafe { self.gc_ran(env) } {
            // SAFETY: forwarded.
            unsafe { self.sweep(env) };
        }
    }

    /// Takes every entry whose object was collected.
    ///
    /// # Safety
    /// `env` is the running callback's env.
    unsafe fn sweep(&mut self, env: sys::napi_env) {
        for index in 0..self.entries.len() {
            let Some(entry) = &self.entries[index] else { continue };
            // A null reference: a dead view waiting for `takeDeadViews`.
            // SAFETY: otherwise the entry's reference is live (deleted only when it goes).
            if entry.reference.is_null() || !unsafe { collected(env, entry.reference) } {
                continue;
            }
            let Some(entry) = self.entries[index].take() else { continue };
            // SAFETY: this env's reference, deleted once.
            unsafe { sys::napi_delete_reference(env, entry.reference) };
            match entry.kind {
                Kind::Exclusive { arena, ptr, generation, bytes, moved } => {
                    // Through this thread's cache, so the block is reused here first. A
                    // moved buffer, or an arena this thread has no state for any more, is
                    // left to the finalizer (which holds its own allocator handle).
                    let freed = !moved
                        && registry::with_existing_arena(arena, |a| {
                            // SAFETY: the buffer over the block is gone and its memory was
                            // not moved to another buffer, so nothing reaches the block; a
                            // stale hand-out is left alone.
                            unsafe { a.allocator.reclaim_unreachable_cached(&mut a.cache, ptr, generation) }
                        }) == Some(true);
                    if freed {
                        self.reclaimed_bytes = self.reclaimed_bytes.saturating_add(bytes);
                    }
                    self.free.push(index as u32);
                }
                Kind::View => {
                    // Put back (without a reference) until the TypeScript layer takes it.
                    self.entries[index] = Some(Entry { reference: ptr::null_mut(), kind: Kind::View });
                    self.dead_views.push(index as u32);
                }
            }
        }
        self.added = 0;
        self.added_bytes = 0;
        self.after_sweep = self.live();
    }
}

fn result(env: sys::napi_env, value: f64) -> sys::napi_value {
    // SAFETY: `env` is the running callback's env.
    unsafe { raw::number(env, value) }
}

/// `trackExclusive(buffer, id, generation)`: remembers the live exclusive `buffer` of arena
/// `id` (the hand-out of that generation, over the block its data pointer names); returns
/// its entry index, or -1 if it is not an arena block or Node-API refuses a reference (the
/// finalizer alone then returns the block).
pub(crate) unsafe extern "C" fn track_exclusive(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([buffer, id, generation]) = (unsafe { raw::args::<3>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: argument handles of this callback.
    let parsed = unsafe {
        (crate::exclusive::buffer_info(env, buffer), raw::index_arg(env, id), raw::index_arg(env, generation))
    };
    let (Ok((data, len)), Some(id), Some(generation)) = parsed else {
        return result(env, -1.0);
    };
    let (Ok(generation), Some(ptr)) = (u32::try_from(generation), NonNull::new(data as *mut u8)) else {
        return result(env, -1.0);
    };
    if registry::with_arena(id, |a, _| a.allocator.contains(ptr.as_ptr())) != Ok(true) {
        return result(env, -1.0);
    }
    // SAFETY: `buffer` is a handle of this callback.
    let Some(reference) = (unsafe { weak(env, buffer) }) else {
        return result(env, -1.0);
    };
    let kind = Kind::Exclusive { arena: id, ptr, generation, bytes: len, moved: false };
    let index = with_table(|t| {
        // SAFETY: forwarded.
        unsafe { t.maybe_sweep(env) };
        t.insert(Entry { reference, kind }, len)
    });
    index.map_or_else(|| result(env, -1.0), |i| result(env, f64::from(i)))
}

/// `trackView(view, bytes)`: remembers a live view; returns its entry index (or -1 if
/// Node-API refuses a reference). Dead views found by a sweep meanwhile wait for
/// `takeDeadViews` (`deadViewCount()` says how many).
pub(crate) unsafe extern "C" fn track_view(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([view, bytes]) = (unsafe { raw::args::<2>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: argument handles of this callback.
    let (Some(bytes), Some(reference)) = (unsafe { raw::index_arg(env, bytes) }, unsafe { weak(env, view) }) else {
        return result(env, -1.0);
    };
    let index = with_table(|t| {
        // SAFETY: forwarded.
        unsafe { t.maybe_sweep(env) };
        t.insert(Entry { reference, kind: Kind::View }, bytes)
    });
    index.map_or_else(|| result(env, -1.0), |i| result(env, f64::from(i)))
}

/// `untrack(index)`: forgets the entry of a view freed or handed off (its reference is
/// deleted). An index that is not a live view entry is ignored.
pub(crate) unsafe extern "C" fn untrack(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([index]) = (unsafe { raw::args::<1>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: argument handle of this callback.
    let Some(index) = (unsafe { raw::index_arg(env, index) }) else {
        return ptr::null_mut();
    };
    with_table(|t| {
        let live_view =
            matches!(&t.entries.get(index), Some(Some(e)) if matches!(e.kind, Kind::View) && !e.reference.is_null());
        if live_view && let Some(entry) = t.entries[index].take() {
            // SAFETY: this env's live reference, deleted once.
            unsafe { sys::napi_delete_reference(env, entry.reference) };
            t.free.push(index as u32);
        }
    });
    ptr::null_mut()
}

/// `markMoved(buffer, generation)`: the exclusive `buffer` (the hand-out of that
/// generation) is about to have its memory moved to another ArrayBuffer
/// (`ArrayBuffer.prototype.transfer`): its block is left to the finalizer. Rare, so it
/// looks through the whole table.
pub(crate) unsafe extern "C" fn mark_moved(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([buffer, generation]) = (unsafe { raw::args::<2>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: argument handles of this callback.
    let (Ok((data, _)), Some(generation)) =
        (unsafe { crate::exclusive::buffer_info(env, buffer) }, unsafe { raw::index_arg(env, generation) })
    else {
        return ptr::null_mut();
    };
    with_table(|t| {
        for entry in t.entries.iter_mut().flatten() {
            if let Kind::Exclusive { ptr, generation: g, moved, .. } = &mut entry.kind
                && ptr.as_ptr() as usize == data
                && *g as usize == generation
            {
                *moved = true;
            }
        }
    });
    ptr::null_mut()
}

/// `takeReclaimedBytes()`: bytes of exclusive buffers the sweeps freed since the last call
/// (how much a GC the arena ran gave back).
pub(crate) unsafe extern "C" fn take_reclaimed_bytes(
    env: sys::napi_env,
    _info: sys::napi_callback_info,
) -> sys::napi_value {
    let bytes = with_table(|t| std::mem::take(&mut t.reclaimed_bytes)).unwrap_or(0);
    result(env, bytes as f64)
}

/// `deadViewCount()`: dead view entries waiting for `takeDeadViews`.
pub(crate) unsafe extern "C" fn dead_view_count(env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    let waiting = with_table(|t| t.dead_views.len()).unwrap_or(0);
    result(env, waiting as f64)
}

/// `sweepUnreachable(always)`: sweeps now if `always` (after a GC the caller ran), else
/// only if a GC ran since the last look (before `stats()`); returns the number of dead
/// view entries waiting, or -1 if it did not sweep.
pub(crate) unsafe extern "C" fn sweep_unreachable(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([always]) = (unsafe { raw::args::<1>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: argument handle of this callback.
    let always = unsafe { raw::number_arg(env, always) }.is_some_and(|x| x != 0.0);
    let waiting = with_table(|t| {
        // SAFETY: `env` is this callback's.
        if always || unsafe { t.gc_ran(env) } {
            // SAFETY: as above.
            unsafe { t.sweep(env) };
            t.dead_views.len() as f64
        } else {
            -1.0
        }
    });
    result(env, waiting.unwrap_or(0.0))
}

/// `takeDeadViews()`: the entry indices of views found collected (an array of numbers);
/// their indices are free again once handed over.
pub(crate) unsafe extern "C" fn take_dead_views(env: sys::napi_env, _info: sys::napi_callback_info) -> sys::napi_value {
    let dead = with_table(|t| {
        let dead = std::mem::take(&mut t.dead_views);
        for &index in &dead {
            t.entries[index as usize] = None;
            t.free.push(index);
        }
        dead
    })
    .unwrap_or_default();
    let mut array = ptr::null_mut();
    // SAFETY: `env` is this callback's; on failure `array` stays null (an exception is pending).
    unsafe { sys::napi_create_array_with_length(env, dead.len(), &mut array) };
    for (i, index) in dead.iter().enumerate() {
        let value = result(env, f64::from(*index));
        // SAFETY: `array` and `value` are handles of this callback.
        unsafe { sys::napi_set_element(env, array, i as u32, value) };
    }
    array
}

/// Env teardown: forgets the table (Node finalizes the env's references itself).
pub(crate) fn teardown() {
    if let Some(table) = with_table(std::mem::take) {
        drop(table);
    }
}
