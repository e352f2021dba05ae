//! The synchronisation primitives of the core's concurrent parts, in one place so the
//! model checks can swap them.
//!
//! Normally these are `parking_lot`'s locks and `std`'s atomics, re-exported unchanged (same
//! code, same performance). Built with `RUSTFLAGS="--cfg loom"` they are `loom`'s, so
//! `tests/loom_*.rs` explore the interleavings of the class locks (central pools), the
//! page lock and its condition variable, the hand-off lock, the cache registry, and the
//! remote-free inboxes' atomics.
//!
//! Deliberately not here (they stay `std` atomics, which loom runs but does not permute):
//! - block metadata ([`crate::meta::BlockMeta`]) and the slab map: they live in mapped
//!   tables and are read through raw pointers, where a loom object cannot live; every
//!   access is ordered by a lock or by an inbox push/swap, which are modelled;
//! - process-wide id counters and statics (loom objects cannot be `static`), the global
//!   allocator's state, statistics counters (single-writer, relaxed) and the maintenance
//!   clock: permuting them would multiply the executions without checking anything.

#[cfg(not(loom))]
pub(crate) use parking_lot::{Condvar, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU64, AtomicUsize};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU64, AtomicUsize};
#[cfg(loom)]
pub(crate) use model::{Condvar, Mutex, MutexGuard};

/// `loom`'s lock and condition variable behind `parking_lot`'s API (no poisoning,
/// `lock()` returns the guard, `Condvar::wait` takes the guard by reference).
#[cfg(loom)]
mod model {
    use std::ops::{Deref, DerefMut};
    use std::sync::PoisonError;

    pub(crate) struct Mutex<T>(loom::sync::Mutex<T>);

    /// Always `Some` except inside [`Condvar::wait`].
    pub(crate) struct MutexGuard<'a, T>(Option<loom::sync::MutexGuard<'a, T>>);

    impl<T> Mutex<T> {
        pub(crate) fn new(value: T) -> Self {
            Self(loom::sync::Mutex::new(value))
        }

        pub(crate) fn lock(&self) -> MutexGuard<'_, T> {
            MutexGuard(Some(self.0.lock().unwrap_or_else(PoisonError::into_inner)))
        }

        pub(crate) fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok().map(|guard| MutexGuard(Some(guard)))
        }
    }

    impl<T: Default> Default for Mutex<T> {
        fn default() -> Self {
            Self::new(T::default())
        }
    }

    impl<T> Deref for MutexGuard<'_, T> {
        type Target = T;
        fn deref(&self) -> &T {
            match &self.0 {
                Some(guard) => guard,
                None => unreachable!("guard taken by Condvar::wait"),
            }
        }
    }

    impl<T> DerefMut for MutexGuard<'_, T> {
        fn deref_mut(&mut self) -> &mut T {
            match &mut self.0 {
                Some(guard) => guard,
                None => unreachable!("guard taken by Condvar::wait"),
            }
        }
    }

    pub(crate) struct Condvar(loom::sync::Condvar);

    impl Condvar {
        pub(crate) fn new() -> Self {
            Self(loom::sync::Condvar::new())
        }

        pub(crate) fn wait<T>(&self, guard: &mut MutexGuard<'_, T>) {
            if let Some(inner) = guard.0.take() {
                guard.0 = Some(self.0.wait(inner).unwrap_or_else(PoisonError::into_inner));
            }
        }

        pub(crate) fn notify_all(&self) {
            self.0.notify_all();
        }
    }
}
