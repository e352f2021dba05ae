//! Arenas known to the addon, and each JS thread's state for them.
//!
//! The process-wide registry maps an arena id (never reused) to its `Allocator` handle;
//! ids are what JavaScript holds. Each JS thread (the main thread and every Worker is one
//! OS thread with one Node env) keeps, per arena it used, a `ThreadArena`: its own
//! `ThreadCache` and a clone of the allocator handle, so the hot path never takes a lock.
//! At env teardown every block the thread's caches handed out and that is still live is
//! freed, then the caches drain to the central pools: a worker that exits or is
//! terminated strands nothing.

use std::cell::RefCell;
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use tensor_arena_core::{Allocator, AllocatorConfig, InitError, ThreadCache};

use crate::codes::Code;

static ARENAS: Mutex<Vec<Option<Allocator>>> = Mutex::new(Vec::new());
static SHARED: Mutex<Vec<(String, usize)>> = Mutex::new(Vec::new());
static DEFAULT_ARENA: OnceLock<usize> = OnceLock::new();

fn arenas() -> MutexGuard<'static, Vec<Option<Allocator>>> {
    ARENAS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Builds an arena and returns its id.
pub(crate) fn create(config: AllocatorConfig) -> Result<usize, InitError> {
    let allocator = Allocator::new(config)?;
    let mut all = arenas();
    all.push(Some(allocator));
    Ok(all.len() - 1)
}

/// The id of the process-wide default arena (built on first use, default options).
pub(crate) fn default_id() -> Result<usize, InitError> {
    if let Some(&id) = DEFAULT_ARENA.get() {
        return Ok(id);
    }
    let mut all = arenas();
    if let Some(&id) = DEFAULT_ARENA.get() {
        return Ok(id);
    }
    let allocator = Allocator::new(AllocatorConfig::default())?;
    all.push(Some(allocator));
    let id = all.len() - 1;
    let _ = DEFAULT_ARENA.set(id);
    Ok(id)
}

/// The id of the process-wide arena called `name`, built with `config` on first use.
/// A later call must ask for the same configuration (fields set to `None` are not
/// compared).
pub(crate) fn shared(name: &str, wanted: &SharedOptions) -> Result<usize, SharedError> {
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(&(_, id)) = shared.iter().find(|(n, _)| n == name) {
        let allocator = lookup(id).ok_or(SharedError::Mismatch("the shared arena is gone"))?;
        let config = allocator.config();
        let same = |want: Option<usize>, have: usize| want.is_none_or(|w| w == have);
        return if wanted.max_bytes.is_none_or(|w| Some(w) == config.max_bytes)
            && same(wanted.alignment, config.alignment)
            && same(wanted.refill_target_bytes, config.refill_target_bytes)
            && same(wanted.local_cache_target_bytes, config.local_cache_target_bytes)
        {
            Ok(id)
        } else {
            Err(SharedError::Mismatch("options differ from those the shared arena was created with"))
        };
    }
    let id = create(wanted.config()).map_err(SharedError::Init)?;
    shared.push((name.to_owned(), id));
    Ok(id)
}

/// Options of a shared arena; `None` takes the default (or, for an existing arena, is
/// not compared).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct SharedOptions {
    pub(crate) max_bytes: Option<usize>,
    pub(crate) alignment: Option<usize>,
    pub(crate) refill_target_bytes: Option<usize>,
    pub(crate) local_cache_target_bytes: Option<usize>,
}

impl SharedOptions {
    /// The core configuration (absent fields take the core defaults).
    pub(crate) fn config(&self) -> AllocatorConfig {
        let d = AllocatorConfig::default();
        AllocatorConfig {
            max_bytes: self.max_bytes,
            alignment: self.alignment.unwrap_or(d.alignment),
            refill_target_bytes: self.refill_target_bytes.unwrap_or(d.refill_target_bytes),
            local_cache_target_bytes: self.local_cache_target_bytes.unwrap_or(d.local_cache_target_bytes),
            ..d
        }
    }
}

/// Why [`shared`] failed.
pub(crate) enum SharedError {
    Init(InitError),
    Mismatch(&'static str),
}

/// Drops the registry's handle: the arena stays mapped while buffers, views or thread
/// states still hold theirs.
pub(crate) fn release(id: usize) {
    if DEFAULT_ARENA.get() == Some(&id) {
        return;
    }
    if let Some(slot) = arenas().get_mut(id) {
        *slot = None;
    }
}

/// The allocator with this id, if it is registered.
pub(crate) fn lookup(id: usize) -> Option<Allocator> {
    arenas().get(id).and_then(Clone::clone)
}

/// One thread's state for one arena.
pub(crate) struct ThreadArena {
    pub(crate) allocator: Allocator,
    pub(crate) cache: ThreadCache,
}

/// Per-thread scratch: the hot path reports side values here instead of allocating JS
/// objects. Slot 0: generation of the last hand-out; 1: bytes available after an
/// out-of-memory; 2: arena offset of the last exclusive hand-out; 3: the arena's cap after
/// an out-of-memory (0: none).
pub(crate) type Scratch = [f64; 4];

struct ThreadState {
    arenas: Vec<Option<ThreadArena>>,
    /// Where the hot path writes its side values: `own` until the TypeScript layer hands
    /// over its scratch buffer with `setScratch`, then that buffer's memory.
    scratch: *mut Scratch,
    #[allow(dead_code, reason = "owns the memory `scratch` points to before `setScratch`")]
    own: Box<Scratch>,
}

thread_local! {
    static THREAD: RefCell<ThreadState> = RefCell::new({
        let mut own = Box::new([0.0; 4]);
        ThreadState { arenas: Vec::new(), scratch: &raw mut *own, own }
    });
}

/// Runs `f` with this thread's state for arena `id`, creating it on first use.
pub(crate) fn with_arena<R>(id: usize, f: impl FnOnce(&mut ThreadArena, &mut Scratch) -> R) -> Result<R, Code> {
    THREAD
        .try_with(|cell| {
            let mut state = cell.try_borrow_mut().map_err(|_| Code::ThreadStateUnavailable)?;
            let ThreadState { arenas, scratch, .. } = &mut *state;
            // SAFETY: `scratch` points at `own` or at the JS scratch buffer, which
            // `use_scratch` keeps alive (a reference) until this env's teardown.
            let scratch = unsafe { &mut **scratch };
            if arenas.get(id).is_none_or(Option::is_none) {
                let allocator = lookup(id).ok_or(Code::UnknownArena)?;
                if arenas.len() <= id {
                    arenas.resize_with(id + 1, || None);
                }
                arenas[id] = Some(ThreadArena { allocator, cache: ThreadCache::new() });
            }
            let arena = arenas[id].as_mut().ok_or(Code::UnknownArena)?;
            Ok(f(arena, scratch))
        })
        .unwrap_or(Err(Code::ThreadStateUnavailable))
}

/// Makes the hot path write its side values to `scratch` (the TypeScript layer's buffer,
/// which the caller keeps alive until teardown). Returns false if the thread state is gone.
pub(crate) fn use_scratch(scratch: *mut Scratch) -> bool {
    THREAD.try_with(|cell| cell.try_borrow_mut().map(|mut s| s.scratch = scratch).is_ok()).unwrap_or(false)
}

/// Env teardown: frees every block this thread handed out that is still live, then drops
/// the thread's caches (which drains them to the central pools).
pub(crate) fn teardown_thread() {
    let taken =
        THREAD.try_with(|cell| cell.try_borrow_mut().map(|mut s| std::mem::take(&mut s.arenas)).unwrap_or_default());
    for arena in taken.unwrap_or_default().into_iter().flatten() {
        // SAFETY: the env is going away, so no JavaScript can reach the blocks this
        // thread handed out; blocks handed over to other threads are re-owned first
        // (never owned by this cache any more).
        unsafe { arena.allocator.free_all_owned_by(&arena.cache) };
        drop(arena);
    }
}
