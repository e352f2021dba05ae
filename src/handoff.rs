//! Zero-copy hand-off of arena memory between JS threads. The sender's object becomes
//! unusable (an exclusive buffer is detached) and the block goes in flight under a token;
//! exactly one receiver claims it and gets its own ArrayBuffer (or view) over the same
//! memory. External ArrayBuffers cannot be transferred with `postMessage` (Node 22+ throws
//! `DataCloneError`, Node 20 copies), so this is the only zero-copy path.
//!
//! A token crosses into JavaScript as a string of 32 lowercase hex digits (128 bits, see
//! `tensor_arena_core::Token`): too wide for a number, and a string stays
//! structured-cloneable and JSON-serialisable.

use std::ptr::{self, NonNull};

use napi::bindgen_prelude::{Error, Object};
use napi::{Env, sys};
use napi_derive::napi;
use tensor_arena_core::{Received, Token};

use crate::codes::Code;
use crate::exclusive::{self, Hint};
use crate::raw;
use crate::registry::{self, ThreadArena};

/// The token as a new JS string, or `None` if V8 could not make one.
fn token_string(env: sys::napi_env, token: Token) -> Option<sys::napi_value> {
    let text = token.to_text();
    let mut out = ptr::null_mut();
    // SAFETY: `env` is the running callback's env; `text` is `text.len()` Latin-1 bytes.
    let status = unsafe { sys::napi_create_string_latin1(env, text.as_ptr().cast(), text.len() as isize, &mut out) };
    (status == sys::Status::napi_ok && !out.is_null()).then_some(out)
}

/// A token argument: a string of exactly 32 characters `0-9a-f`, else `None`.
///
/// # Safety
/// `value` must be a handle of the running callback.
unsafe fn token_arg(env: sys::napi_env, value: sys::napi_value) -> Option<Token> {
    // One unit more than a token: a longer string fills it and is refused.
    let mut units = [0u16; Token::TEXT_LEN + 2];
    let mut copied = 0usize;
    // SAFETY: forwarded; `units` has room for `units.len()` units (NUL included). UTF-16
    // units are read as they are (Latin-1 would drop their high bytes).
    let status = unsafe { sys::napi_get_value_string_utf16(env, value, units.as_mut_ptr(), units.len(), &mut copied) };
    if status != sys::Status::napi_ok {
        return None;
    }
    Token::parse(units.get(..copied)?)
}

fn number(env: sys::napi_env, value: f64) -> sys::napi_value {
    // SAFETY: `env` is the running callback's env.
    unsafe { raw::number(env, value) }
}

/// `handOff(id, offset, generation, buffer, byteLength, kind)`: starts a hand-off of the
/// hand-out at `offset`; `buffer` is its exclusive ArrayBuffer of `byteLength` bytes
/// (detached on success) or `undefined` for a view. Returns the token string (new
/// generation in scratch[0]) or a negative code.
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
        let (token, next) =
            unsafe { arena.allocator.hand_off(ptr, generation, label, &arena.cache) }.map_err(Code::from)?;
        let Some(text) = token_string(env, token) else {
            // No string, no token for anyone: undo the hand-off (the sender's handle is
            // valid again), as if it never happened.
            return arena
                .allocator
                .cancel_hand_off(token)
                .map_or(Err(Code::InvalidHandle), |()| Err(Code::OutOfMemory));
        };
        scratch[0] = f64::from(next);
        Ok(text)
    });
    match result.and_then(|r| r) {
        Ok(text) => {
            if exclusive.is_some() {
                // SAFETY: `buffer` is the sender's external ArrayBuffer over this block.
                unsafe { sys::napi_detach_arraybuffer(env, buffer) };
            }
            text
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

/// A handle's token and `[offset, byteLength, kind]`.
type Handle = (Token, [usize; 3]);

/// Whether an in-flight block is what a handle with these details says it is.
fn matches(arena: &ThreadArena, [offset, byte_length, kind]: [usize; 3]) -> impl FnOnce(&Received) -> bool {
    let ptr = arena.allocator.ptr_at(offset);
    let label = label(byte_length, kind);
    move |block| ptr == Some(block.allocation.ptr) && label == Some(block.label)
}

/// Parses `(id, token, offset, byteLength, kind)`.
///
/// # Safety
/// `env`/`info` must be the running callback's.
unsafe fn handle_args(env: sys::napi_env, info: sys::napi_callback_info) -> Option<(usize, Handle)> {
    // SAFETY: forwarded.
    let [id, token, offset, byte_length, kind] = unsafe { raw::args::<5>(env, info) }?;
    // SAFETY: argument handles of this callback.
    let token = unsafe { token_arg(env, token) }?;
    let mut out = [0; 4];
    for (slot, value) in out.iter_mut().zip([id, offset, byte_length, kind]) {
        // SAFETY: argument handles of this callback.
        *slot = unsafe { raw::index_arg(env, value) }?;
    }
    let [id, offset, byte_length, kind] = out;
    Some((id, (token, [offset, byte_length, kind])))
}

fn claim(arena: &mut ThreadArena, (token, details): Handle) -> Result<Received, Code> {
    let accept = matches(arena, details);
    arena.allocator.receive_if(token, &arena.cache, accept).map_err(Code::from)
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
    let byte_length = handle.1[1];
    let result = registry::with_arena(id, |arena, scratch| {
        let received = claim(arena, handle)?;
        scratch[0] = f64::from(received.allocation.generation);
        Ok((received, arena.allocator.clone()))
    });
    match result.and_then(|r| r) {
        Ok((received, allocator)) => {
            let hint =
                Hint { arena: id, allocator, ptr: received.allocation.ptr, generation: received.allocation.generation };
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
        let (token, details) = handle;
        arena.allocator.reclaim_if(token, matches(arena, details)).map(|_| 0.0).map_err(Code::from)
    });
    number(env, result.and_then(|r| r).unwrap_or_else(Code::as_return))
}

fn failure(code: Code) -> Error<&'static str> {
    Error::new(code.name(), "unknown arena")
}

/// `orphanedTransfers(id)`: the in-flight hand-offs of arena `id` whose sending thread is
/// gone, oldest first: `{ token, offset, byteLength, kind }` each (`kind` as in `handOff`).
#[napi]
pub(crate) fn orphaned_transfers(env: Env, id: u32) -> Result<Vec<Object<'static>>, Error<&'static str>> {
    let (allocator, orphans) =
        registry::with_arena(id as usize, |a, _| (a.allocator.clone(), a.allocator.orphaned_hand_offs()))
            .map_err(failure)?;
    let napi = |e: Error| Error::new("ERR_NAPI", e.reason);
    let mut out = Vec::with_capacity(orphans.len());
    for orphan in orphans {
        let Some(offset) = allocator.offset_of(orphan.block.allocation.ptr.as_ptr()) else { continue };
        let mut object = Object::new(&env).map_err(napi)?;
        object.set("token", orphan.token.to_string()).map_err(napi)?;
        object.set("offset", offset as f64).map_err(napi)?;
        object.set("byteLength", (orphan.block.label >> 8) as f64).map_err(napi)?;
        object.set("kind", (orphan.block.label & 0xff) as f64).map_err(napi)?;
        out.push(object);
    }
    Ok(out)
}
