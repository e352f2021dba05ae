//! Zero-copy hand-off of arena memory between JS threads. The sender's object becomes
//! unusable (an exclusive buffer is detached) and the block goes in flight under a token;
//! exactly one receiver claims it and gets its own ArrayBuffer (or view) over the same
//! memory. External ArrayBuffers cannot be transferred with `postMessage` (Node 22+ throws
//! `DataCloneError`, Node 20 copies), so this is the only zero-copy path.

use std::ptr::{self, NonNull};

use napi::sys;
use tensor_arena_core::Received;

use crate::codes::Code;
use crate::exclusive::{self, Hint};
use crate::raw;
use crate::registry::{self, ThreadArena};

fn number(env: sys::napi_env, value: f64) -> sys::napi_value {
    // SAFETY: `env` is the running callback's env.
    unsafe { raw::number(env, value) }
}

/// `handOff(id, offset, generation, buffer, byteLength, kind)`: starts a hand-off of the
/// hand-out at `offset`; `buffer` is its exclusive ArrayBuffer of `byteLength` bytes
/// (detached on success) or `undefined` for a view. Returns the token (new generation in scratch[0]) or a negative code.
pub(crate) unsafe extern "C" fn hand_off(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([id, offset, generation, buffer, expected_len, kind]) = (unsafe { raw::args::<6>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: argument handles of this callback.
    let parsed = unsafe {
        (
            raw::index_arg(env, id),
            raw::index_arg(env, offset),
            raw::index_arg(env, generation),
            raw::index_arg(env, expected_len),
            raw::index_arg(env, kind),
        )
    };
    let (Some(id), Some(offset), Some(generation), Some(expected_len), Some(kind)) = parsed else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"handOff(id, offset, generation, buffer)");
    };
    // SAFETY: `buffer` is an argument handle of this callback.
    let exclusive = unsafe { exclusive::buffer_info(env, buffer) }.ok();
    let result = registry::with_arena(id, |arena, scratch| {
        if let Some(info) = exclusive
            && !exclusive::is_block_buffer(arena, offset, info, expected_len)
        {
            return Err(Code::NotOwned);
        }
        let ptr = block_at(arena, offset)?;
        let generation = u32::try_from(generation).map_err(|_| Code::NotOwned)?;
        let label = label(expected_len, kind).ok_or(Code::InvalidHandle)?;
        // SAFETY: the TypeScript layer makes the sender's object unusable right after
        // (and the exclusive buffer is detached below), so the sender gives the block up.
        let (token, next) = unsafe { arena.allocator.hand_off(ptr, generation, label) }.map_err(Code::from)?;
        scratch[0] = f64::from(next);
        Ok(token as f64)
    });
    match result.and_then(|r| r) {
        Ok(token) => {
            if exclusive.is_some() {
                // SAFETY: `buffer` is the sender's external ArrayBuffer over this block.
                unsafe { sys::napi_detach_arraybuffer(env, buffer) };
            }
            number(env, token)
        }
        Err(code) => number(env, code.as_return()),
    }
}

/// What a hand-off says it carries: its byte length and the kind/dtype code the
/// TypeScript layer assigns (`kind * 16 + dtype`, below 256). The receiver must present
/// the same, so an altered handle is refused.
fn label(byte_length: usize, kind: usize) -> Option<u64> {
    (kind < 256 && byte_length < 1 << 53).then_some(((byte_length as u64) << 8) | kind as u64)
}

fn block_at(arena: &ThreadArena, offset: usize) -> Result<NonNull<u8>, Code> {
    arena.allocator.ptr_at(offset).ok_or(Code::NotOwned)
}

/// Checks a handle's details against its in-flight record without claiming it.
fn check_handle(arena: &ThreadArena, [token, offset, byte_length, kind]: [usize; 4]) -> Result<u64, Code> {
    let token = token as u64;
    let Some(record) = arena.allocator.in_flight(token) else {
        // Unknown token: received already, or never issued; `receive` tells which.
        return Ok(token);
    };
    let matches =
        arena.allocator.ptr_at(offset) == Some(record.allocation.ptr) && label(byte_length, kind) == Some(record.label);
    if matches { Ok(token) } else { Err(Code::InvalidHandle) }
}

/// Parses `(id, token, offset, byteLength, kind)`.
///
/// # Safety
/// `env`/`info` must be the running callback's.
unsafe fn handle_args(env: sys::napi_env, info: sys::napi_callback_info) -> Option<(usize, [usize; 4])> {
    // SAFETY: forwarded.
    let args = unsafe { raw::args::<5>(env, info) }?;
    let mut out = [0; 5];
    for (slot, value) in out.iter_mut().zip(args) {
        // SAFETY: argument handles of this callback.
        *slot = unsafe { raw::index_arg(env, value) }?;
    }
    let [id, token, offset, byte_length, kind] = out;
    Some((id, [token, offset, byte_length, kind]))
}

fn claim(arena: &mut ThreadArena, handle: [usize; 4]) -> Result<Received, Code> {
    let token = check_handle(arena, handle)?;
    arena.allocator.receive(token, &arena.cache).map_err(Code::from)
}

/// `receiveView(id, token, offset, byteLength, kind)`: claims a hand-off as a view in this
/// thread: 0 (generation in scratch[0]) or a negative code.
pub(crate) unsafe extern "C" fn receive_view(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some((id, handle)) = (unsafe { handle_args(env, info) }) else {
        return number(env, Code::InvalidHandle.as_return());
    };
    let result = registry::with_arena(id, |arena, scratch| {
        let received = claim(arena, handle)?;
        scratch[0] = f64::from(received.allocation.generation);
        Ok(0.0)
    });
    number(env, result.and_then(|r| r).unwrap_or_else(Code::as_return))
}

/// `receiveExclusive(id, token, offset, byteLength, kind)`: claims a hand-off as an exclusive
/// ArrayBuffer of `byteLength` bytes in this thread (generation in scratch[0]), or a
/// negative code.
pub(crate) unsafe extern "C" fn receive_exclusive(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some((id, handle)) = (unsafe { handle_args(env, info) }) else {
        return number(env, Code::InvalidHandle.as_return());
    };
    let byte_length = handle[2];
    let result = registry::with_arena(id, |arena, scratch| {
        let received = claim(arena, handle)?;
        scratch[0] = f64::from(received.allocation.generation);
        Ok((received, arena.allocator.clone()))
    });
    match result.and_then(|r| r) {
        Ok((received, allocator)) => {
            let hint = Hint { allocator, ptr: received.allocation.ptr, generation: received.allocation.generation };
            exclusive::expose(env, hint, byte_length)
        }
        Err(code) => number(env, code.as_return()),
    }
}

/// `reclaim(id, token, offset, byteLength, kind)`: frees a hand-off nobody received: 0 or a
/// negative code.
pub(crate) unsafe extern "C" fn reclaim(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some((id, handle)) = (unsafe { handle_args(env, info) }) else {
        return number(env, Code::InvalidHandle.as_return());
    };
    let result = registry::with_arena(id, |arena, _| {
        let token = check_handle(arena, handle)?;
        arena.allocator.reclaim(token).map(|_| 0.0).map_err(Code::from)
    });
    number(env, result.and_then(|r| r).unwrap_or_else(Code::as_return))
}
