//! The view fast path: each `view`/`free` is one raw native call with numbers in and a
//! number out (an arena offset); the TypeScript layer builds the typed array over a
//! *window*: an external ArrayBuffer over one 4 MiB chunk of the arena, created once per
//! thread and chunk (`viewWindow`), or, for a block that crosses a chunk boundary (blocks
//! above 4 MiB), over that block's own extent (`blockWindow`). A view's `.buffer` is
//! therefore at most max(4 MiB, its block) — what `structuredClone` or `postMessage` of a
//! view copies.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use napi::sys;
use tensor_arena_core::{Allocator, CHUNK_SIZE, FreeError, LentWords};

use crate::codes::Code;
use crate::external::{self, External};
use crate::raw;
use crate::registry::{self, Scratch};

/// `viewWindow(id, chunk)`: a window over chunk `chunk` of arena `id` (arena offsets
/// `[chunk * CHUNK_SIZE, (chunk + 1) * CHUNK_SIZE)`), which must hold carved memory.
pub(crate) unsafe extern "C" fn view_window(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let parsed = unsafe { raw::args::<2>(env, info) }.and_then(|[id, chunk]| {
        // SAFETY: argument handles of this callback.
        unsafe { Some((raw::index_arg(env, id)?, raw::index_arg(env, chunk)?)) }
    });
    let Some((id, chunk)) = parsed else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"viewWindow(id, chunk): numbers expected");
    };
    let window = registry::with_arena(id, |a, _| {
        let (ptr, len) = a.allocator.chunk_at(chunk.checked_mul(CHUNK_SIZE)?)?;
        Some((a.allocator.clone(), ptr, len))
    });
    match window {
        Ok(Some((allocator, ptr, len))) => expose_window(env, allocator, ptr, len),
        Ok(None) => raw::throw_error(env, c"ERR_NOT_OWNED", c"viewWindow: no carved chunk at that index"),
        Err(_) => raw::throw_error(env, c"ERR_UNKNOWN_ARENA", c"unknown arena"),
    }
}

/// `blockWindow(id, offset)`: a window over exactly the block at arena `offset` (a live
/// block of this arena), for views of blocks that cross a chunk boundary.
pub(crate) unsafe extern "C" fn block_window(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let parsed = unsafe { raw::args::<2>(env, info) }.and_then(|[id, offset]| {
        // SAFETY: argument handles of this callback.
        unsafe { Some((raw::index_arg(env, id)?, raw::index_arg(env, offset)?)) }
    });
    let Some((id, offset)) = parsed else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"blockWindow(id, offset): numbers expected");
    };
    let window = registry::with_arena(id, |a, _| {
        let ptr = a.allocator.ptr_at(offset)?;
        let len = a.allocator.block_len(ptr.as_ptr())?;
        Some((a.allocator.clone(), ptr, len))
    });
    match window {
        Ok(Some((allocator, ptr, len))) => expose_window(env, allocator, ptr, len),
        Ok(None) => raw::throw_error(env, c"ERR_NOT_OWNED", c"blockWindow: no live block at that offset"),
        Err(_) => raw::throw_error(env, c"ERR_UNKNOWN_ARENA", c"unknown arena"),
    }
}

/// An external ArrayBuffer over `[ptr, ptr + len)` (committed arena memory) whose
/// finalizer keeps the arena mapped until the window is collected.
fn expose_window(env: sys::napi_env, allocator: Allocator, ptr: NonNull<u8>, len: usize) -> sys::napi_value {
    let hint = Box::into_raw(Box::new(allocator)).cast::<c_void>();
    // SAFETY: arena memory stays mapped as long as any `Allocator` handle, and the hint is
    // one, released by `release_window` when the window is collected. Committed memory is
    // never made inaccessible again (idle pages are purged, not unmapped).
    let created = unsafe { external::create(env, ptr.as_ptr(), len, Some(release_window), hint) };
    exposed(env, created, || {
        // SAFETY: refused up front, so the finalizer never ran: the hint is still ours.
        drop(unsafe { Box::from_raw(hint.cast::<Allocator>()) });
    })
}

/// `lentTier(id)`: an ArrayBuffer over the words of this thread's lent tier for arena `id`
/// (the core's `LentTier`): the TypeScript layer writes there what it does with the blocks
/// of freed views it keeps, and the stats read it.
pub(crate) unsafe extern "C" fn lent_tier(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's; `id` is an argument handle of it.
    let Some(id) = (unsafe { raw::args::<1>(env, info) }).and_then(|[id]| unsafe { raw::index_arg(env, id) }) else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"lentTier(id): a number expected");
    };
    let Ok(words) = registry::with_arena(id, |a, _| a.allocator.lent_words(&mut a.cache)) else {
        return raw::throw_error(env, c"ERR_UNKNOWN_ARENA", c"unknown arena");
    };
    let ptr = words.as_ptr();
    let hint = Box::into_raw(Box::new(words)).cast::<c_void>();
    // SAFETY: the words stay valid while a `LentWords` handle lives, and the hint is one,
    // released by `release_lent_tier` when the buffer is collected. JavaScript writes whole
    // aligned f64 values from this thread only, as `LentWords::as_ptr` asks.
    let created = unsafe { external::create(env, ptr.as_ptr(), LentWords::BYTES, Some(release_lent_tier), hint) };
    exposed(env, created, || {
        // SAFETY: refused up front, so the finalizer never ran: the hint is still ours.
        drop(unsafe { Box::from_raw(hint.cast::<LentWords>()) });
    })
}

unsafe extern "C" fn release_lent_tier(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the boxed `LentWords` made in `lent_tier`, handed over once.
    drop(unsafe { Box::from_raw(hint.cast::<LentWords>()) });
}

/// The JS value of an external buffer, or the thrown error when the runtime refused it
/// (`drop_hint` then releases what its finalizer would have).
fn exposed(env: sys::napi_env, created: External, drop_hint: impl FnOnce()) -> sys::napi_value {
    match created {
        External::Created(value) => value,
        External::Refused => {
            drop_hint();
            raw::throw_error(
                env,
                c"ERR_EXTERNAL_BUFFERS_UNSUPPORTED",
                c"this runtime does not allow external ArrayBuffers (V8 sandbox): tensor-arena cannot expose arena memory here",
            )
        }
        // The finalizer may have run already: leave the hint alone (see `External::Failed`).
        External::Failed => ptr::null_mut(),
    }
}

unsafe extern "C" fn release_window(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the boxed `Allocator` made in `view_window`, handed over once.
    drop(unsafe { Box::from_raw(hint.cast::<Allocator>()) });
}

/// `setScratch(buffer)`: the hot path reports side values (generation, bytes available)
/// in this ArrayBuffer of at least 32 bytes from now on. A plain JS ArrayBuffer, so it
/// works where external buffers are refused; referenced here until env teardown.
pub(crate) unsafe extern "C" fn set_scratch(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([buffer]) = (unsafe { raw::args::<1>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: `buffer` is an argument handle of this callback.
    let Ok((data, len)) = (unsafe { crate::exclusive::buffer_info(env, buffer) }) else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"setScratch(buffer): an ArrayBuffer expected");
    };
    if len < size_of::<Scratch>() || data % align_of::<Scratch>() != 0 {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"setScratch(buffer): 32 aligned bytes expected");
    }
    let mut reference = ptr::null_mut();
    // SAFETY: a strong reference keeps the buffer (and its backing store) alive until the
    // env is torn down, when `teardown_thread` stops using it.
    if unsafe { sys::napi_create_reference(env, buffer, 1, &mut reference) } != sys::Status::napi_ok
        || !registry::use_scratch(data as *mut Scratch)
    {
        return raw::throw_error(env, c"ERR_THREAD_STATE_UNAVAILABLE", c"thread state unavailable");
    }
    ptr::null_mut()
}

/// `viewAlloc(id, byteLength, zero)`: arena offset of a new block (generation in
/// scratch[0]), or a negative code (bytes available in scratch[1] for out-of-memory).
pub(crate) unsafe extern "C" fn view_alloc(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some((id, len, zero)) = (unsafe { alloc_args(env, info) }) else {
        return raw::throw_type_error(
            env,
            c"ERR_INVALID_ARG_TYPE",
            c"viewAlloc(id, byteLength, zero): numbers expected",
        );
    };
    let result = registry::with_arena(id, |arena, scratch| {
        allocate_block(arena, scratch, len, zero).map_or_else(|code| code, |a| offset_of(arena, a.ptr))
    });
    // SAFETY: `env` is this callback's.
    unsafe { raw::number(env, result.unwrap_or_else(Code::as_return)) }
}

/// `(id, byteLength, zero)` of an allocating call, or `None` for non-numbers.
///
/// # Safety
/// `env`/`info` must be the running callback's.
pub(crate) unsafe fn alloc_args(env: sys::napi_env, info: sys::napi_callback_info) -> Option<(usize, usize, f64)> {
    // SAFETY: forwarded.
    let [id, len, zero] = unsafe { raw::args::<3>(env, info) }?;
    // SAFETY: argument handles of this callback.
    unsafe { Some((raw::index_arg(env, id)?, raw::index_arg(env, len)?, raw::number_arg(env, zero)?)) }
}

/// Allocates `len` bytes (at least one) for JavaScript, zero-filled if `zero` is not 0;
/// the generation goes to scratch[0]. On failure, the negative code to return.
pub(crate) fn allocate_block(
    arena: &mut registry::ThreadArena,
    scratch: &mut Scratch,
    len: usize,
    zero: f64,
) -> Result<tensor_arena_core::Allocation, f64> {
    let a =
        arena.allocator.allocate_tracked(&mut arena.cache, len.max(1)).map_err(|e| report_alloc_error(e, scratch))?;
    if zero != 0.0 {
        // SAFETY: the block has at least `len` writable bytes and is ours.
        unsafe { a.ptr.as_ptr().write_bytes(0, len) };
    }
    scratch[0] = f64::from(a.generation);
    Ok(a)
}

/// The arena offset of a block just handed out, as a JavaScript number.
pub(crate) fn offset_of(arena: &registry::ThreadArena, ptr: NonNull<u8>) -> f64 {
    arena.allocator.offset_of(ptr.as_ptr()).map_or(Code::NotOwned.as_return(), |offset| offset as f64)
}

fn report_alloc_error(error: tensor_arena_core::AllocError, scratch: &mut Scratch) -> f64 {
    if let tensor_arena_core::AllocError::OutOfMemory { remaining, cap, .. } = error {
        scratch[1] = remaining as f64;
        scratch[3] = cap as f64;
    }
    Code::from(error).as_return()
}

/// `viewFree(id, offset, generation)`: 0, or a negative code.
pub(crate) unsafe extern "C" fn view_free(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let parsed = unsafe { raw::args::<3>(env, info) }.and_then(|[id, offset, generation]| {
        // SAFETY: argument handles of this callback.
        unsafe { Some((raw::index_arg(env, id)?, raw::index_arg(env, offset)?, raw::index_arg(env, generation)?)) }
    });
    let Some((id, offset, generation)) = parsed else {
        return raw::throw_type_error(
            env,
            c"ERR_INVALID_ARG_TYPE",
            c"viewFree(id, offset, generation): numbers expected",
        );
    };
    let result = registry::with_arena(id, |arena, _| free_at(arena, offset, generation));
    // SAFETY: `env` is this callback's.
    unsafe { raw::number(env, result.and_then(|r| r).map_or_else(Code::as_return, |()| 0.0)) }
}

/// Frees the block at arena `offset` if it is still the hand-out `generation`.
pub(crate) fn free_at(arena: &mut registry::ThreadArena, offset: usize, generation: usize) -> Result<(), Code> {
    let generation = u32::try_from(generation).map_err(|_| Code::NotOwned)?;
    let ptr = arena.allocator.ptr_at(offset).ok_or(Code::NotOwned)?;
    // SAFETY: `ptr` is inside the arena; the core validates everything else, and a block
    // handed out to JavaScript is only freed through this call (one free per hand-out is
    // enforced by the TypeScript layer and by the generation).
    unsafe { arena.allocator.deallocate_tracked(&mut arena.cache, ptr, generation) }
        .map_err(|e: FreeError| Code::from(e))
}
