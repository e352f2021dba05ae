//! Raw Node-API plumbing for the hot path: argument reading without coercion, numeric
//! results, throwing errors with a `code`, and registering `extern "C"` callbacks.
//! A raw callback costs ~15–40 ns; the `#[napi]` wrappers cost 110–230 ns with arguments.

use std::ffi::{CStr, c_char};
use std::ptr;

use napi::bindgen_prelude::{Error, Object, Result, Status};
use napi::{Env, JsValue, sys};

/// Signature of a raw callback.
pub(crate) type RawFn = unsafe extern "C" fn(sys::napi_env, sys::napi_callback_info) -> sys::napi_value;

/// The first `N` arguments of the current call (missing ones are `undefined`).
///
/// # Safety
/// `env`/`info` must be those of the running callback.
pub(crate) unsafe fn args<const N: usize>(
    env: sys::napi_env,
    info: sys::napi_callback_info,
) -> Option<[sys::napi_value; N]> {
    let mut argc = N;
    let mut argv = [ptr::null_mut(); N];
    // SAFETY: `info` belongs to this callback; `argv` has room for `argc` values.
    let status =
        unsafe { sys::napi_get_cb_info(env, info, &mut argc, argv.as_mut_ptr(), ptr::null_mut(), ptr::null_mut()) };
    (status == sys::Status::napi_ok).then_some(argv)
}

/// A JS number as f64, or `None` for any other type (no coercion at all).
///
/// # Safety
/// `value` must be a handle of the running callback.
pub(crate) unsafe fn number_arg(env: sys::napi_env, value: sys::napi_value) -> Option<f64> {
    let mut out = 0f64;
    // SAFETY: forwarded.
    let status = unsafe { sys::napi_get_value_double(env, value, &mut out) };
    (status == sys::Status::napi_ok).then_some(out)
}

/// An arena id or offset argument: a non-negative safe integer, else `None`.
///
/// # Safety
/// As [`number_arg`].
pub(crate) unsafe fn index_arg(env: sys::napi_env, value: sys::napi_value) -> Option<usize> {
    // SAFETY: forwarded.
    let x = unsafe { number_arg(env, value) }?;
    ((0.0..=9_007_199_254_740_991.0).contains(&x) && x.fract() == 0.0).then_some(x as usize)
}

/// A new JS number.
///
/// # Safety
/// `env` must be the running callback's env.
pub(crate) unsafe fn number(env: sys::napi_env, value: f64) -> sys::napi_value {
    let mut out = ptr::null_mut();
    // SAFETY: forwarded; on failure `out` stays null and an exception is pending.
    unsafe { sys::napi_create_double(env, value, &mut out) };
    out
}

/// Throws `TypeError` with `code` (the callers only throw for broken internal calls: the
/// TypeScript layer validates user input first).
pub(crate) fn throw_type_error(env: sys::napi_env, code: &CStr, message: &CStr) -> sys::napi_value {
    // SAFETY: `env` is the live env of the running callback; both strings are NUL-terminated.
    unsafe { sys::napi_throw_type_error(env, code.as_ptr(), message.as_ptr()) };
    ptr::null_mut()
}

/// Throws `Error` with `code`.
pub(crate) fn throw_error(env: sys::napi_env, code: &CStr, message: &CStr) -> sys::napi_value {
    // SAFETY: as in `throw_type_error`.
    unsafe { sys::napi_throw_error(env, code.as_ptr(), message.as_ptr()) };
    ptr::null_mut()
}

/// Defines raw functions on `exports`.
pub(crate) fn register(env: &Env, exports: &Object<'_>, functions: &[(&CStr, RawFn)]) -> Result<()> {
    let properties: Vec<sys::napi_property_descriptor> = functions
        .iter()
        .map(|(name, callback)| sys::napi_property_descriptor {
            utf8name: name.as_ptr().cast::<c_char>(),
            name: ptr::null_mut(),
            method: Some(*callback),
            getter: None,
            setter: None,
            value: ptr::null_mut(),
            attributes: sys::PropertyAttributes::enumerable,
            data: ptr::null_mut(),
        })
        .collect();
    // SAFETY: `exports` is this env's live exports object; `properties` outlives the call.
    let status =
        unsafe { sys::napi_define_properties(env.raw(), exports.raw(), properties.len(), properties.as_ptr()) };
    if status == sys::Status::napi_ok {
        Ok(())
    } else {
        Err(Error::new(Status::from(status), "napi_define_properties failed"))
    }
}
