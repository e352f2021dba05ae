//! Node-API binding of tensor-arena: thin conversions over `tensor-arena-core`.
//!
//! Hot paths (`viewAlloc`, `viewFree`, `allocExclusive`, `freeExclusive`) are raw
//! `extern "C"` callbacks with numeric arguments and results; cold paths use `#[napi]`.
//! The TypeScript layer in `src/ts` is the public API; it validates user input first.
// `#[napi]` registration is compiled out under `cargo test`, so items look unused there.
#![cfg_attr(test, allow(dead_code))]

mod codes;
mod cold;
mod exclusive;
mod external;
mod floor;
mod handoff;
mod raw;
mod registry;
mod view;
mod weak;

use napi::Env;
use napi::bindgen_prelude::{Object, Result};
use napi_derive::napi;

/// Runs once per env (the main thread and every Worker): registers the raw callbacks and
/// the teardown hook that returns the thread's memory.
#[napi(module_exports)]
pub(crate) fn init(env: Env, exports: Object<'_>) -> Result<()> {
    raw::register(
        &env,
        &exports,
        &[
            (c"viewWindow", view::view_window),
            (c"blockWindow", view::block_window),
            (c"viewAlloc", view::view_alloc),
            (c"viewFree", view::view_free),
            (c"setScratch", view::set_scratch),
            (c"lentTier", view::lent_tier),
            (c"allocExclusive", exclusive::alloc_exclusive),
            (c"freeExclusive", exclusive::free_exclusive),
            (c"handOff", handoff::hand_off),
            (c"receiveView", handoff::receive_view),
            (c"receiveExclusive", handoff::receive_exclusive),
            (c"reclaim", handoff::reclaim),
            (c"floorBuffer", floor::floor_buffer),
            (c"floorDetach", floor::floor_detach),
            (c"trackExclusive", weak::track_exclusive),
            (c"trackView", weak::track_view),
            (c"untrack", weak::untrack),
            (c"markMoved", weak::mark_moved),
            (c"sweepUnreachable", weak::sweep_unreachable),
            (c"takeReclaimedBytes", weak::take_reclaimed_bytes),
            (c"deadViewCount", weak::dead_view_count),
            (c"takeDeadViews", weak::take_dead_views),
        ],
    )?;
    env.add_env_cleanup_hook((), |()| {
        weak::teardown();
        registry::teardown_thread();
    })?;
    Ok(())
}
