//! Exclusive buffers: one external ArrayBuffer per hand-out, over exactly its block.
//! `free` detaches it (every view over it reads as empty afterwards) and the block is
//! reusable at once; a buffer never freed is returned by its GC finalizer, which frees
//! only if the block is still that hand-out (generation), so a late finalizer can never
//! free a block handed out again in between.

use std::ffi::c_void;
use std::ptr::{self, NonNull};

use napi::sys;
use tensor_arena_core::Allocator;

use crate::codes::Code;
use crate::external::{self, External};
use crate::raw;
use crate::registry::{self, ThreadArena};
use crate::view::{alloc_args, allocate_block, free_at, offset_of};

/// What the finalizer of an exclusive buffer needs: the allocator handle also keeps the
/// arena mapped while the buffer is reachable.
pub(crate) struct Hint {
    /// The arena's id: the finalizer frees through this thread's cache for it, if any.
    pub(crate) arena: usize,
    pub(crate) allocator: Allocator,
    pub(crate) ptr: NonNull<u8>,
    pub(crate) generation: u32,
}

unsafe extern "C" fn finalize(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the boxed `Hint` made in `alloc_exclusive`, handed over once.
    let hint = unsafe { Box::from_raw(hint.cast::<Hint>()) };
    // Finalizers run on the thread that made the buffer: through its cache while it has
    // state for the arena (the block is reused here first; the central inbox is drained
    // only on refills), else straight to the central pool.
    let cached = registry::with_existing_arena(hint.arena, |a| {
        // SAFETY: the buffer over this block is gone; a block freed explicitly (and maybe
        // handed out again) before is left alone, and not counted as a rejected free.
        unsafe { a.allocator.reclaim_unreachable_cached(&mut a.cache, hint.ptr, hint.generation) }
    });
    if cached.is_none() {
        // SAFETY: as above.
        unsafe { hint.allocator.reclaim_unreachable(hint.ptr, hint.generation) };
    }
}

/// `allocExclusive(id, byteLength, zero)`: an external ArrayBuffer of exactly
/// `byteLength` bytes (generation in scratch[0], arena offset in scratch[2]), or a
/// negative code.
pub(crate) unsafe extern "C" fn alloc_exclusive(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some((id, len, zero)) = (unsafe { alloc_args(env, info) }) else {
        return raw::throw_type_error(
            env,
            c"ERR_INVALID_ARG_TYPE",
            c"allocExclusive(id, byteLength, zero): numbers expected",
        );
    };
    let allocated = registry::with_arena(id, |arena, scratch| {
        let a = allocate_block(arena, scratch, len, zero)?;
        scratch[2] = offset_of(arena, a.ptr);
        Ok((a, arena.allocator.clone()))
    });
    match allocated {
        Ok(Ok((a, allocator))) => expose(env, Hint { arena: id, allocator, ptr: a.ptr, generation: a.generation }, len),
        Ok(Err(code)) => unsafe_number(env, code),
        Err(code) => unsafe_number(env, code.as_return()),
    }
}

/// Creates the external ArrayBuffer of `len` bytes over the hand-out `hint` describes;
/// if the runtime refuses, frees the block and returns the refusal code.
pub(crate) fn expose(env: sys::napi_env, hint: Hint, len: usize) -> sys::napi_value {
    let data = hint.ptr.as_ptr();
    let hint = Box::into_raw(Box::new(hint));
    // SAFETY: the block stays allocated until `finalize` or an explicit free, and the
    // arena stays mapped while the hint's allocator handle lives.
    match unsafe { external::create(env, data, len, Some(finalize), hint.cast()) } {
        External::Created(value) => value,
        External::Refused => {
            // SAFETY: refused up front, so `finalize` never runs: the hint is ours.
            let hint = unsafe { Box::from_raw(hint) };
            // SAFETY: nothing else holds this block.
            unsafe { hint.allocator.reclaim_unreachable(hint.ptr, hint.generation) };
            unsafe_number(env, Code::ExternalBuffersUnsupported.as_return())
        }
        // `finalize` may have run already (and freed the block): leave the hint alone.
        External::Failed => ptr::null_mut(),
    }
}

/// Whether an ArrayBuffer `(data, len)` is the exclusive buffer of the block at `offset`
/// handed out with `expected_len` bytes, still attached. A buffer detached by anything
/// but the arena (e.g. `ArrayBuffer.prototype.transfer`, which moves the memory to a new
/// buffer) is not: the block is still reachable through the new buffer.
pub(crate) fn is_block_buffer(
    arena: &ThreadArena,
    offset: usize,
    (data, len): (usize, usize),
    expected_len: usize,
) -> bool {
    len == expected_len
        && (expected_len == 0 || arena.allocator.ptr_at(offset).is_some_and(|ptr| ptr.as_ptr() as usize == data))
}

/// `(data address, byteLength)` of an ArrayBuffer argument, or `Err` for anything else.
///
/// # Safety
/// `value` must be a handle of the running callback.
pub(crate) unsafe fn buffer_info(env: sys::napi_env, value: sys::napi_value) -> Result<(usize, usize), ()> {
    let (mut data, mut byte_length) = (ptr::null_mut(), 0usize);
    // SAFETY: forwarded; a non-ArrayBuffer makes this fail.
    let status = unsafe { sys::napi_get_arraybuffer_info(env, value, &mut data, &mut byte_length) };
    if status == sys::Status::napi_ok { Ok((data as usize, byte_length)) } else { Err(()) }
}

fn unsafe_number(env: sys::napi_env, value: f64) -> sys::napi_value {
    // SAFETY: `env` is the running callback's env.
    unsafe { raw::number(env, value) }
}

/// `freeExclusive(id, offset, generation, buffer, byteLength)`: frees the hand-out and detaches
/// `buffer`; 0, or a negative code (nothing freed, nothing detached).
pub(crate) unsafe extern "C" fn free_exclusive(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([id, offset, generation, buffer, expected_len]) = (unsafe { raw::args::<5>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: argument handles of this callback.
    let parsed = unsafe {
        (
            raw::index_arg(env, id),
            raw::index_arg(env, offset),
            raw::index_arg(env, generation),
            raw::index_arg(env, expected_len),
        )
    };
    let (Some(id), Some(offset), Some(generation), Some(expected_len)) = parsed else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"freeExclusive(id, offset, generation, buffer)");
    };
    // The buffer must be the one over this block: never detach anything else (detaching
    // Node's Buffer pool, for one, breaks the process).
    // SAFETY: `buffer` is an argument handle of this callback.
    let Ok((data, byte_length)) = (unsafe { buffer_info(env, buffer) }) else {
        return unsafe_number(env, Code::NotOwned.as_return());
    };
    let result = registry::with_arena(id, |arena, _| {
        if !is_block_buffer(arena, offset, (data, byte_length), expected_len) {
            arena.allocator.record_rejected_free();
            return Err(Code::NotOwned);
        }
        free_at(arena, offset, generation)
    });
    match result.and_then(|r| r) {
        Ok(()) => {
            // SAFETY: `buffer` is the external ArrayBuffer over the block just freed.
            unsafe { sys::napi_detach_arraybuffer(env, buffer) };
            unsafe_number(env, 0.0)
        }
        Err(code) => unsafe_number(env, code.as_return()),
    }
}
