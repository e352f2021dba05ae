//! External ArrayBuffers over arena memory, created through napi-sys directly: napi-rs's
//! safe constructors silently copy when the runtime refuses external buffers (Electron's
//! V8 sandbox), which would detach JavaScript from arena memory. Here a refusal is an
//! error the caller reports.

use std::ffi::c_void;
use std::ptr;

use napi::sys;

/// Test hook: `TENSOR_ARENA_TEST_REFUSE_EXTERNAL=1` makes every creation behave as if the
/// runtime refused external buffers (no Node build here does), so that path is tested.
fn refusal_forced() -> bool {
    static FORCED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FORCED.get_or_init(|| std::env::var_os("TENSOR_ARENA_TEST_REFUSE_EXTERNAL").is_some_and(|v| v == "1"))
}

/// Outcome of [`create`].
pub(crate) enum External {
    Created(sys::napi_value),
    /// `napi_no_external_buffers_allowed`: nothing was created, the finalizer will never run.
    Refused,
    /// Any other failure; an exception may be pending. Whether the finalizer ran is
    /// unknown: Node 20's `node::Buffer::New` calls it itself when the length exceeds
    /// `buffer.constants.MAX_LENGTH`. The caller must not touch `hint` again (the
    /// TypeScript layer checks that limit first, so this is not expected to happen).
    Failed,
}

/// Creates an external ArrayBuffer over `[data, data + len)`.
///
/// # Safety
/// `env` must be the running callback's env; the memory must stay valid until `finalize`
/// runs, which receives `hint` once (only if `Created` is returned).
pub(crate) unsafe fn create(
    env: sys::napi_env,
    data: *mut u8,
    len: usize,
    finalize: sys::napi_finalize,
    hint: *mut c_void,
) -> External {
    if refusal_forced() {
        return External::Refused;
    }
    let mut value = ptr::null_mut();
    // SAFETY: forwarded from the caller's contract.
    let status = unsafe { sys::napi_create_external_arraybuffer(env, data.cast(), len, finalize, hint, &mut value) };
    match status {
        sys::Status::napi_ok => External::Created(value),
        sys::Status::napi_no_external_buffers_allowed => External::Refused,
        _ => External::Failed,
    }
}
