//! Cold paths exported through napi-rs macros: building and releasing arenas, stats,
//! trimming, thread-cache handles and the size-class table.

use napi::Env;
use napi::bindgen_prelude::{Error, Object, Result};
use napi_derive::napi;
use tensor_arena_core::{
    AllocatorStats, CLASS_SIZES, ClassStats, MAX_ARENA_SIZE, SizeClass, StatKind, ThreadCacheStats,
};

use crate::codes::Code;
use crate::registry;

fn failure(code: Code, message: impl ToString) -> Error<&'static str> {
    Error::new(code.name(), message)
}

/// The error for a thread-state failure (`ERR_UNKNOWN_ARENA`, `ERR_THREAD_STATE_UNAVAILABLE`)
/// with its code's default message.
fn state_failure(code: Code) -> Error<&'static str> {
    let message = Code::ALL.iter().find(|&&(_, name, _)| name == code.name()).map_or("", |&(_, _, m)| m);
    failure(code, message)
}

fn whole(value: f64, field: &'static str) -> std::result::Result<usize, Error<&'static str>> {
    const MAX: f64 = MAX_ARENA_SIZE as f64;
    if value.is_finite() && value >= 0.0 && value.fract() == 0.0 && value <= MAX {
        return Ok(value as usize);
    }
    let got = if value.is_finite() && value.abs() >= 1e21 { format!("{value:e}") } else { format!("{value}") };
    let rule = if value.is_finite() && value >= 0.0 && value.fract() == 0.0 {
        // A whole number above every limit: say what the limit is.
        if field == "maxBytes" {
            "must be at most 70368744177664 bytes (64 TiB), the largest arena this allocator reserves"
        } else {
            "must be at most 70368744177664 bytes (64 TiB)"
        }
    } else {
        "must be a whole number of bytes (a non-negative integer)"
    };
    Err(failure(Code::InvalidConfig, format!("invalid arena options: {field} {rule}; got {got}")))
}

fn options(
    max_bytes: Option<f64>,
    alignment: Option<f64>,
    refill_target_bytes: Option<f64>,
    local_cache_target_bytes: Option<f64>,
) -> std::result::Result<registry::SharedOptions, Error<&'static str>> {
    let pick = |v: Option<f64>, field| v.map(|v| whole(v, field)).transpose();
    Ok(registry::SharedOptions {
        max_bytes: pick(max_bytes, "maxBytes")?,
        alignment: pick(alignment, "alignment")?,
        refill_target_bytes: pick(refill_target_bytes, "refillTargetBytes")?,
        local_cache_target_bytes: pick(local_cache_target_bytes, "localCacheTargetBytes")?,
    })
}

fn id_of(id: usize) -> std::result::Result<u32, Error<&'static str>> {
    u32::try_from(id).map_err(|_| failure(Code::InvalidConfig, "too many arenas"))
}

/// Builds an arena; absent options are `undefined` and take the core defaults.
#[napi]
pub(crate) fn arena_create(
    max_bytes: Option<f64>,
    alignment: Option<f64>,
    refill_target_bytes: Option<f64>,
    local_cache_target_bytes: Option<f64>,
) -> std::result::Result<u32, Error<&'static str>> {
    let config = options(max_bytes, alignment, refill_target_bytes, local_cache_target_bytes)?.config();
    let id = registry::create(config).map_err(|e| failure(Code::from(e), camel_config_message(&e.to_string())))?;
    id_of(id)
}

/// The process-wide arena `name` (same id in every thread), built on first use.
#[napi]
pub(crate) fn arena_shared(
    name: String,
    max_bytes: Option<f64>,
    alignment: Option<f64>,
    refill_target_bytes: Option<f64>,
    local_cache_target_bytes: Option<f64>,
) -> std::result::Result<u32, Error<&'static str>> {
    let wanted = options(max_bytes, alignment, refill_target_bytes, local_cache_target_bytes)?;
    match registry::shared(&name, &wanted) {
        Ok(id) => id_of(id),
        Err(registry::SharedError::Init(e)) => Err(failure(Code::from(e), camel_config_message(&e.to_string()))),
        Err(registry::SharedError::Mismatch(existing)) => Err(failure(
            Code::InvalidConfig,
            format!(
                "Arena.shared('{name}'): the options differ from those the shared arena was created with ({existing}); pass the same options, or none to accept the existing ones"
            ),
        )),
    }
}

/// Core messages name snake_case fields; JavaScript users set camelCase options.
fn camel_config_message(message: &str) -> String {
    message
        .replace("invalid allocator configuration", "invalid arena options")
        .replace("max_bytes", "maxBytes")
        .replace("region_bytes", "regionBytes")
        .replace("refill_target_bytes", "refillTargetBytes")
        .replace("local_cache_target_bytes", "localCacheTargetBytes")
        .replace("slab_target_bytes", "slabTargetBytes")
        .replace("retain_bytes", "retainBytes")
}

/// Id of the process-wide default arena.
#[napi]
pub(crate) fn arena_default() -> std::result::Result<u32, Error<&'static str>> {
    let id = registry::default_id().map_err(|e| failure(Code::from(e), camel_config_message(&e.to_string())))?;
    u32::try_from(id).map_err(|_| failure(Code::InvalidConfig, "too many arenas"))
}

/// Gives back the hold of an `Arena` object of this thread that was collected (or of one
/// `arenaShared` call that found this thread's object alive). Returns whether the arena
/// left the registry (its last hold, over all threads, is gone).
#[napi]
pub(crate) fn arena_release(id: u32) -> bool {
    registry::release(id as usize)
}

/// `[arenas registered, arenas this thread has state for, holds this thread has]`.
#[napi]
pub(crate) fn arena_census() -> Vec<u32> {
    registry::census().map(|n| u32::try_from(n).unwrap_or(u32::MAX)).to_vec()
}

fn camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for ch in name.chars() {
        if ch == '_' {
            upper = true;
        } else if upper {
            out.push(ch.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(ch);
        }
    }
    out
}

fn object_from(env: &Env, values: &[(&'static str, u64)]) -> Result<Object<'static>> {
    let mut object = Object::new(env)?;
    for &(name, value) in values {
        object.set(camel(name), value as f64)?;
    }
    Ok(object)
}

fn allocator(id: u32) -> std::result::Result<tensor_arena_core::Allocator, Error<&'static str>> {
    registry::with_arena(id as usize, |a, _| a.allocator.clone()).map_err(state_failure)
}

fn js(error: Error) -> Error<&'static str> {
    Error::new("ERR_NAPI", error.reason)
}

/// Allocator stats as a plain object: camelCase names of `AllocatorStats::FIELDS`, plus
/// `classes` (one object per size class).
#[napi]
pub(crate) fn arena_stats(env: Env, id: u32) -> std::result::Result<Object<'static>, Error<&'static str>> {
    let stats = allocator(id)?.stats();
    let mut object = object_from(&env, &stats.field_values()).map_err(js)?;
    let classes = stats
        .classes
        .iter()
        .map(|c: &ClassStats| object_from(&env, &c.field_values()))
        .collect::<Result<Vec<_>>>()
        .map_err(js)?;
    object.set("classes", classes).map_err(js)?;
    Ok(object)
}

/// The stat field lists: `[name, kind, doc]` triples, camelCase names; class fields are
/// prefixed `classes.`, thread-cache fields `threadCache.`.
#[napi]
pub(crate) fn stat_fields() -> Vec<Vec<String>> {
    let kind = |k: StatKind| if k == StatKind::Gauge { "gauge" } else { "counter" }.to_owned();
    AllocatorStats::FIELDS
        .iter()
        .map(|f| vec![camel(f.name), kind(f.kind), f.doc.to_owned()])
        .chain(
            ClassStats::FIELDS
                .iter()
                .map(|f| vec![format!("classes.{}", camel(f.name)), kind(f.kind), f.doc.to_owned()]),
        )
        .chain(
            ThreadCacheStats::FIELDS
                .iter()
                .map(|f| vec![format!("threadCache.{}", camel(f.name)), kind(f.kind), f.doc.to_owned()]),
        )
        .collect()
}

/// Counts a free the TypeScript layer refused (a stale view, a detached, foreign or moved
/// buffer) in the arena's `rejectedFreesTotal`. Cold: only on the error path.
#[napi]
pub(crate) fn note_rejected_free(id: u32) -> std::result::Result<(), Error<&'static str>> {
    allocator(id)?.record_rejected_free();
    Ok(())
}

/// Returns idle memory to the OS; bytes released.
#[napi]
pub(crate) fn arena_trim(id: u32) -> std::result::Result<f64, Error<&'static str>> {
    Ok(allocator(id)?.trim() as f64)
}

/// `[maxBytes (0: no cap), alignment, chunk size]` of an arena.
#[napi]
pub(crate) fn arena_info(id: u32) -> std::result::Result<Vec<f64>, Error<&'static str>> {
    let a = allocator(id)?;
    Ok(vec![a.max_bytes().unwrap_or(0) as f64, a.config().alignment as f64, tensor_arena_core::CHUNK_SIZE as f64])
}

/// This thread's cache for arena `id`.
#[napi]
pub(crate) fn thread_cache_stats(env: Env, id: u32) -> std::result::Result<Object<'static>, Error<&'static str>> {
    let stats: ThreadCacheStats = registry::with_arena(id as usize, |a, _| a.cache.stats()).map_err(state_failure)?;
    let mut object = object_from(&env, &stats.field_values()).map_err(js)?;
    object.set("classBlocks", stats.class_blocks.iter().map(|&b| b as f64).collect::<Vec<_>>()).map_err(js)?;
    Ok(object)
}

/// Hands this thread's cached blocks of arena `id` back to the central pool.
#[napi]
pub(crate) fn thread_cache_flush(id: u32) -> std::result::Result<(), Error<&'static str>> {
    registry::with_arena(id as usize, |a, _| a.allocator.drain_thread_cache(&mut a.cache)).map_err(state_failure)
}

/// Payload size of every class, by class index.
#[napi]
pub(crate) fn size_class_table() -> Vec<f64> {
    CLASS_SIZES.iter().map(|&s| s as f64).collect()
}

/// The core's class index for a request, or -1 (0 bytes, or above the largest class).
#[napi]
pub(crate) fn native_size_class_of(bytes: f64) -> i32 {
    if !(bytes >= 0.0 && bytes.fract() == 0.0) {
        return -1;
    }
    SizeClass::from_request(bytes as usize).map_or(-1, |c| c.index() as i32)
}

/// Tells V8 about memory it cannot see: bytes of views that wait for garbage collection to
/// be reclaimed (their memory is inside the window, which V8 counted once). Without this,
/// unfreed views put no pressure on V8 and the arena can fill before any GC runs.
#[napi]
pub(crate) fn adjust_external_memory(env: Env, delta: f64) -> std::result::Result<(), Error<&'static str>> {
    env.adjust_external_memory(delta as i64).map(|_| ()).map_err(js)
}

/// The `AllocatorError` code table: `[value, code, default message]` per code, in value
/// order (`scripts/gen-codes.cjs` writes `src/ts/codes.ts` from it).
#[napi]
pub(crate) fn error_codes() -> Vec<(u32, String, String)> {
    Code::ALL.iter().map(|&(value, name, message)| (u32::from(value), name.to_owned(), message.to_owned())).collect()
}

/// Word indices of the core's lent tier, in the order the TypeScript layer reads them:
/// `[allocations, frees, allocatedBytes, freedBytes, lentRequested, lentBlocks (first
/// class), words]`.
#[napi]
pub(crate) fn lent_tier_layout() -> Vec<u32> {
    use tensor_arena_core::{LENT_WORDS, LentTier};
    [
        LentTier::ALLOCATIONS,
        LentTier::FREES,
        LentTier::ALLOCATED_BYTES,
        LentTier::FREED_BYTES,
        LentTier::LENT_REQUESTED,
        LentTier::LENT_BLOCKS,
        LENT_WORDS,
    ]
    .map(|i| i as u32)
    .to_vec()
}
