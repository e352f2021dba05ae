//! Node's own floor for the exclusive path, as a benchmark row: an external ArrayBuffer over
//! static memory (`floorBuffer(byteLength)`) and its detach (`floorDetach(buffer)`), the two
//! Node-API steps of `alloc` + `free` with nothing of the allocator in between. Not part of
//! the package's API (the TypeScript layer never calls them).

use std::ffi::c_void;
use std::ptr;
use std::sync::OnceLock;

use napi::sys;

use crate::external::{self, External};
use crate::raw;

/// Bytes of the static memory: the largest size the Node benchmark measures.
const FLOOR_BYTES: usize = 16 << 20;

/// Start of `FLOOR_BYTES` of zeroed memory, allocated once and never freed.
fn floor_memory() -> usize {
    static MEMORY: OnceLock<usize> = OnceLock::new();
    *MEMORY.get_or_init(|| Box::leak(vec![0u8; FLOOR_BYTES].into_boxed_slice()).as_mut_ptr() as usize)
}

/// `floorBuffer(byteLength)`: an external ArrayBuffer over the first `byteLength` bytes of
/// the static memory (no finalizer).
pub(crate) unsafe extern "C" fn floor_buffer(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's; `len` is an argument handle of it.
    let len = unsafe { raw::args::<1>(env, info) }.and_then(|[len]| unsafe { raw::index_arg(env, len) });
    let Some(len) = len.filter(|&len| len <= FLOOR_BYTES) else {
        return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"floorBuffer(byteLength): at most 16 MiB");
    };
    // SAFETY: the static memory is never freed, so it outlives the buffer; no finalizer.
    match unsafe { external::create(env, floor_memory() as *mut u8, len, None, ptr::null_mut::<c_void>()) } {
        External::Created(value) => value,
        External::Refused => raw::throw_error(env, c"ERR_EXTERNAL_BUFFERS_UNSUPPORTED", c"external buffers refused"),
        External::Failed => ptr::null_mut(),
    }
}

/// `floorDetach(buffer)`: detaches a buffer `floorBuffer` made (and nothing else).
pub(crate) unsafe extern "C" fn floor_detach(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    // SAFETY: `env`/`info` are this callback's.
    let Some([buffer]) = (unsafe { raw::args::<1>(env, info) }) else {
        return ptr::null_mut();
    };
    // SAFETY: `buffer` is an argument handle of this callback.
    match unsafe { crate::exclusive::buffer_info(env, buffer) } {
        // SAFETY: an ArrayBuffer over the static memory: one `floorBuffer` made.
        Ok((data, _)) if data == floor_memory() => unsafe {
            sys::napi_detach_arraybuffer(env, buffer);
        },
        _ => {
            return raw::throw_type_error(env, c"ERR_INVALID_ARG_TYPE", c"floorDetach(buffer): a floorBuffer expected");
        }
    }
    ptr::null_mut()
}
