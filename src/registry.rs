//! Arenas known to the addon, and each JS thread's state for them.
//!
//! The process-wide registry maps an arena id (never reused) to its `Allocator` handle and
//! counts the *holds* on it: one per JavaScript `Arena` object, in any thread, that
//! resolves to it (`new Arena()` and `Arena.shared(name)` take one, the object's collection
//! gives it back). When the last hold goes, the registry drops the arena: its handle and,
//! for a shared arena, its name (a later `Arena.shared(name)` builds a new one). The
//! default arena is pinned: it is never dropped.
//!
//! Each JS thread (the main thread and every Worker is one OS thread with one Node env)
//! keeps, per arena it used, a `ThreadArena`: its own `ThreadCache` and a clone of the
//! allocator handle, so the hot path never takes a lock. A thread drops its `ThreadArena`
//! of a dropped arena at once if it gave the last hold back itself, and otherwise at its
//! next call into the registry (every drop bumps a release epoch, which each call
//! compares with the one the thread saw last) or at its teardown. Dropping a
//! `ThreadArena` drains its cache to the central pool; the arena's memory stays mapped
//! until the last buffer, view or window holding an `Allocator` clone is collected.
//!
//! At env teardown every block the thread's caches handed out and that is still live is
//! freed, the caches drain to the central pools, and the thread's holds are given back: a
//! worker that exits or is terminated strands nothing.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, MutexGuard, OnceLock, PoisonError};

use tensor_arena_core::{Allocator, AllocatorConfig, InitError, ThreadCache};

use crate::codes::Code;

/// One registered arena.
struct Entry {
    allocator: Allocator,
    /// `Arena` objects (over all threads) that resolve to this arena.
    holds: usize,
    /// The name of a shared arena.
    name: Option<String>,
    /// The default arena: never dropped.
    pinned: bool,
}

#[derive(Default)]
struct Registry {
    arenas: HashMap<usize, Entry>,
    next_id: usize,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
static DEFAULT_ARENA: OnceLock<usize> = OnceLock::new();
/// Bumped every time an arena leaves the registry.
static RELEASES: AtomicU64 = AtomicU64::new(0);

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    fn insert(&mut self, allocator: Allocator, name: Option<String>, pinned: bool) -> usize {
        let id = self.next_id;
        self.next_id += 1;
        self.arenas.insert(id, Entry { allocator, holds: 0, name, pinned });
        id
    }

    /// Gives back `count` holds on `id`; the arena leaves the registry when none is left
    /// (its handle is returned, to be dropped outside the lock).
    fn unhold(&mut self, id: usize, count: usize) -> Option<Allocator> {
        let entry = self.arenas.get_mut(&id)?;
        entry.holds = entry.holds.saturating_sub(count);
        if entry.holds > 0 || entry.pinned {
            return None;
        }
        let entry = self.arenas.remove(&id)?;
        RELEASES.fetch_add(1, Ordering::Release);
        Some(entry.allocator)
    }
}

/// Builds an arena and returns its id, with one hold taken by the calling thread.
pub(crate) fn create(config: AllocatorConfig) -> Result<usize, InitError> {
    let allocator = Allocator::new(config)?;
    let id = {
        let mut registry = registry();
        let id = registry.insert(allocator, None, false);
        hold(&mut registry, id);
        id
    };
    sweep_thread();
    Ok(id)
}

/// The id of the process-wide default arena (built on first use, default options; never
/// dropped, so it takes no holds).
pub(crate) fn default_id() -> Result<usize, InitError> {
    if let Some(&id) = DEFAULT_ARENA.get() {
        return Ok(id);
    }
    let mut registry = registry();
    if let Some(&id) = DEFAULT_ARENA.get() {
        return Ok(id);
    }
    let allocator = Allocator::new(AllocatorConfig::default())?;
    let id = registry.insert(allocator, None, true);
    let _ = DEFAULT_ARENA.set(id);
    Ok(id)
}

/// The id of the process-wide arena called `name`, built with `wanted` unless it exists
/// (then it must have been built with the same configuration; fields set to `None` are
/// not compared). Takes one hold for the calling thread.
pub(crate) fn shared(name: &str, wanted: &SharedOptions) -> Result<usize, SharedError> {
    let mut registry = registry();
    let existing = registry.arenas.iter().find(|(_, e)| e.name.as_deref() == Some(name)).map(|(&id, e)| (id, e));
    if let Some((id, entry)) = existing {
        let config = entry.allocator.config();
        let same = |want: Option<usize>, have: usize| want.is_none_or(|w| w == have);
        let matches = wanted.max_bytes.is_none_or(|w| Some(w) == config.max_bytes)
            && same(wanted.alignment, config.alignment)
            && same(wanted.refill_target_bytes, config.refill_target_bytes)
            && same(wanted.local_cache_target_bytes, config.local_cache_target_bytes);
        if !matches {
            return Err(SharedError::Mismatch(describe(config)));
        }
        hold(&mut registry, id);
        return Ok(id);
    }
    // Built under the lock: two threads asking for a new name at once get one arena.
    let allocator = Allocator::new(wanted.config()).map_err(SharedError::Init)?;
    let id = registry.insert(allocator, Some(name.to_owned()), false);
    hold(&mut registry, id);
    Ok(id)
}

/// The options a shared arena was built with, in JavaScript's names.
fn describe(config: &AllocatorConfig) -> String {
    let cap = config.max_bytes.map_or_else(|| "no cap".to_owned(), |b| b.to_string());
    format!(
        "it exists with maxBytes: {cap}, alignment: {}, refillTargetBytes: {}, localCacheTargetBytes: {}",
        config.alignment, config.refill_target_bytes, config.local_cache_target_bytes
    )
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
    /// The existing arena's options, described.
    Mismatch(String),
}

/// Gives back one of the calling thread's holds on `id` (an `Arena` object of this thread
/// was collected). Returns whether the arena is gone from the registry (then this thread
/// has already dropped its state for it). A thread holding none changes nothing.
pub(crate) fn release(id: usize) -> bool {
    let mine = THREAD
        .try_with(|cell| {
            let Ok(mut state) = cell.try_borrow_mut() else { return false };
            let Some(at) = state.holds.iter().position(|&(held, _)| held == id) else { return false };
            state.holds[at].1 -= 1;
            if state.holds[at].1 == 0 {
                state.holds.swap_remove(at);
            }
            true
        })
        .unwrap_or(false);
    let dropped = if mine { registry().unhold(id, 1) } else { None };
    drop(dropped);
    sweep_thread();
    !registry().arenas.contains_key(&id)
}

/// Records one hold on `id` for the calling thread (the registry is locked by the caller).
fn hold(registry: &mut Registry, id: usize) {
    let recorded = THREAD
        .try_with(|cell| {
            let Ok(mut state) = cell.try_borrow_mut() else { return false };
            match state.holds.iter_mut().find(|(held, _)| *held == id) {
                Some((_, count)) => *count += 1,
                None => state.holds.push((id, 1)),
            }
            true
        })
        .unwrap_or(false);
    // A thread whose state is gone cannot give a hold back: take none for it.
    if recorded && let Some(entry) = registry.arenas.get_mut(&id) {
        entry.holds += 1;
    }
}

/// The allocator with this id, if it is registered.
pub(crate) fn lookup(id: usize) -> Option<Allocator> {
    registry().arenas.get(&id).map(|e| e.allocator.clone())
}

/// One thread's state for one arena.
pub(crate) struct ThreadArena {
    pub(crate) id: usize,
    pub(crate) allocator: Allocator,
    pub(crate) cache: ThreadCache,
}

/// Per-thread scratch: the hot path reports side values here instead of allocating JS
/// objects. Slot 0: generation of the last hand-out; 1: bytes available after an
/// out-of-memory; 2: arena offset of the last exclusive hand-out; 3: the arena's cap after
/// an out-of-memory (0: none).
pub(crate) type Scratch = [f64; 4];

struct ThreadState {
    /// This thread's state for each arena it used that is still registered (or was until
    /// the release epoch moved past `seen`).
    arenas: Vec<ThreadArena>,
    /// Holds this thread took: `(arena id, count)`.
    holds: Vec<(usize, usize)>,
    /// The release epoch `arenas` was last checked against.
    seen: u64,
    /// Where the hot path writes its side values: `own` until the TypeScript layer hands
    /// over its scratch buffer with `setScratch`, then that buffer's memory.
    scratch: *mut Scratch,
    #[allow(dead_code, reason = "owns the memory `scratch` points to before `setScratch`")]
    own: Box<Scratch>,
}

thread_local! {
    static THREAD: RefCell<ThreadState> = RefCell::new({
        let mut own = Box::new([0.0; 4]);
        ThreadState { arenas: Vec::new(), holds: Vec::new(), seen: 0, scratch: &raw mut *own, own }
    });
}

impl ThreadState {
    /// Takes out the states of arenas that left the registry since the last check (to be
    /// dropped by the caller once the thread state is no longer borrowed).
    fn take_released(&mut self) -> Vec<ThreadArena> {
        let epoch = RELEASES.load(Ordering::Acquire);
        if epoch == self.seen {
            return Vec::new();
        }
        self.seen = epoch;
        let registry = registry();
        let (keep, gone) = std::mem::take(&mut self.arenas)
            .into_iter()
            .partition::<Vec<_>, _>(|a| registry.arenas.contains_key(&a.id));
        self.arenas = keep;
        gone
    }
}

/// Drops this thread's state for arenas that left the registry: each cache drains to its
/// central pool (blocks still held by buffers and views stay allocated: they may be
/// reachable, and the arena's memory stays mapped while they are).
fn sweep_thread() {
    let gone = THREAD.try_with(|cell| cell.try_borrow_mut().map(|mut s| s.take_released()).unwrap_or_default());
    drop(gone);
}

/// Runs `f` with this thread's state for arena `id`, creating it on first use.
pub(crate) fn with_arena<R>(id: usize, f: impl FnOnce(&mut ThreadArena, &mut Scratch) -> R) -> Result<R, Code> {
    let mut gone = Vec::new();
    let result = THREAD
        .try_with(|cell| {
            let mut state = cell.try_borrow_mut().map_err(|_| Code::ThreadStateUnavailable)?;
            if RELEASES.load(Ordering::Relaxed) != state.seen {
                gone = state.take_released();
            }
            let ThreadState { arenas, scratch, .. } = &mut *state;
            // SAFETY: `scratch` points at `own` or at the JS scratch buffer, which
            // `use_scratch` keeps alive (a reference) until this env's teardown.
            let scratch = unsafe { &mut **scratch };
            let at = match arenas.iter().position(|a| a.id == id) {
                Some(at) => at,
                None => {
                    let allocator = lookup(id).ok_or(Code::UnknownArena)?;
                    arenas.push(ThreadArena { id, allocator, cache: ThreadCache::new() });
                    arenas.len() - 1
                }
            };
            let arena = arenas.get_mut(at).ok_or(Code::UnknownArena)?;
            Ok(f(arena, scratch))
        })
        .unwrap_or(Err(Code::ThreadStateUnavailable));
    drop(gone);
    result
}

/// Runs `f` with this thread's state for arena `id` if the thread has one (never creates
/// it: for work that only makes sense where the thread used the arena).
pub(crate) fn with_existing_arena<R>(id: usize, f: impl FnOnce(&mut ThreadArena) -> R) -> Option<R> {
    THREAD
        .try_with(|cell| {
            let mut state = cell.try_borrow_mut().ok()?;
            state.arenas.iter_mut().find(|a| a.id == id).map(f)
        })
        .ok()
        .flatten()
}

/// Makes the hot path write its side values to `scratch` (the TypeScript layer's buffer,
/// which the caller keeps alive until teardown). Returns false if the thread state is gone.
pub(crate) fn use_scratch(scratch: *mut Scratch) -> bool {
    THREAD.try_with(|cell| cell.try_borrow_mut().map(|mut s| s.scratch = scratch).is_ok()).unwrap_or(false)
}

/// Env teardown: frees every block this thread handed out that is still live, drops the
/// thread's caches (which drains them to the central pools), then gives back the
/// thread's holds (the arenas only this thread held leave the registry).
pub(crate) fn teardown_thread() {
    let taken = THREAD.try_with(|cell| {
        cell.try_borrow_mut()
            .map(|mut s| (std::mem::take(&mut s.arenas), std::mem::take(&mut s.holds)))
            .unwrap_or_default()
    });
    let (arenas, holds) = taken.unwrap_or_default();
    for arena in arenas {
        // SAFETY: the env is going away, so no JavaScript can reach the blocks this
        // thread handed out; blocks handed over to other threads are re-owned first
        // (never owned by this cache any more).
        unsafe { arena.allocator.free_all_owned_by(&arena.cache) };
        drop(arena);
    }
    let dropped: Vec<Allocator> = {
        let mut registry = registry();
        holds.into_iter().filter_map(|(id, count)| registry.unhold(id, count)).collect()
    };
    drop(dropped);
}

/// Arenas in the registry and, for this thread, `[arenas with state, holds]` (tests).
pub(crate) fn census() -> [usize; 3] {
    let registered = registry().arenas.len();
    let (states, holds) = THREAD
        .try_with(|cell| {
            cell.try_borrow().map(|s| (s.arenas.len(), s.holds.iter().map(|&(_, n)| n).sum())).unwrap_or_default()
        })
        .unwrap_or_default();
    [registered, states, holds]
}
