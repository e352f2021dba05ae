//! The view fast path: one window ArrayBuffer per thread and arena over the whole arena
//! (created once), then each `view`/`free` is one raw native call with numbers in and a
//! number out; the TypeScript layer builds the typed array over the window.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use napi::sys;
use tensor_arena_core::{Allocator, FreeError};

use crate::codes::Code;
use crate::external::{self, External};
use crate::raw;
use crate::registry::{self, Scratch};

/// `viewWindow(id)`: this thread's window over arena `id` (external ArrayBuffer whose
/// finalizer keeps the arena mapped until the window is collected).
pub(crate) unsafe extern "C" fn view_window(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some(id) = (unsafe { raw::args::<1>(env, info) }).and_then(|[id]| unsafe { raw::index_arg(env, id) }) else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"viewWindow(id): id must be an arena id");
    };
    let Ok((allocator, base, len)) = registry::with_arena(id, |a, _| (a.allocator.clone(), a.base, a.len)) else {
        return raw::throw_error(env, c"ERR_UNKNOWN_ARENA", c"unknown arena");
    };
    let hint = Box::into_raw(Box::new(allocator)).cast::<c_void>();
    // SAFETY: the arena mapping lives as long as any `Allocator` handle, and the hint is
    // one, released by `release_window` when the window is collected.
    match unsafe { external::create(env, base as *mut u8, len, Some(release_window), hint) } {
        External::Created(value) => value,
        External::Refused => {
            // SAFETY: refused up front, so the finalizer never runs: the hint is still ours.
            drop(unsafe { Box::from_raw(hint.cast::<Allocator>()) });
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
        allocate_block(arena, scratch, len, zero)
            .map_or_else(|code| code, |a| (a.ptr.as_ptr() as usize - arena.base) as f64)
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

fn report_alloc_error(error: tensor_arena_core::AllocError, scratch: &mut Scratch) -> f64 {
    if let tensor_arena_core::AllocError::OutOfMemory { remaining, .. } = error {
        scratch[1] = remaining as f64;
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
    if offset >= arena.len {
        return Err(Code::NotOwned);
    }
    let ptr = NonNull::new((arena.base + offset) as *mut u8).ok_or(Code::NotOwned)?;
    // SAFETY: `ptr` is inside the arena; the core validates everything else, and a block
    // handed out to JavaScript is only freed through this call (one free per hand-out is
    // enforced by the TypeScript layer and by the generation).
    unsafe { arena.allocator.deallocate_tracked(&mut arena.cache, ptr, generation) }
        .map_err(|e: FreeError| Code::from(e))
}
