//! The arena: one pre-mapped anonymous region, carved lock-free from the bottom up.
//!
//! Invariants: `base % granule == 0`, `len % granule == 0`,
//! `carved` only grows, `carved % granule == 0`, `carved <= len`. Everything carved stays
//! mapped until the arena is dropped, and the arena is dropped only when the last
//! [`Allocator`](crate::Allocator) handle or bound thread cache is gone.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::round_up;
use crate::error::InitError;
use crate::os;

pub(crate) struct Arena {
    mapping: NonNull<u8>,
    mapping_len: usize,
    base: usize,
    len: usize,
    granule: usize,
    carved: AtomicUsize,
}

// SAFETY: the arena only hands out disjoint address ranges through an atomic cursor; the
// mapping pointer itself is never written after construction.
unsafe impl Send for Arena {}
// SAFETY: as above; all shared mutable state is atomic.
unsafe impl Sync for Arena {}

impl Arena {
    /// Reserves `size` bytes (rounded up to whole granules), granule-aligned.
    pub(crate) fn new(size: usize, granule: usize) -> Result<Self, InitError> {
        let len = round_up(size, granule);
        let mapping_len = len + granule;
        let mapping =
            os::map_anonymous(mapping_len).map_err(|errno| InitError::MapFailed { size: mapping_len, errno })?;
        let base = round_up(mapping.as_ptr() as usize, granule);
        Ok(Self { mapping, mapping_len, base, len, granule, carved: AtomicUsize::new(0) })
    }

    #[inline(always)]
    pub(crate) const fn base(&self) -> usize {
        self.base
    }

    #[inline(always)]
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    pub(crate) const fn granule(&self) -> usize {
        self.granule
    }

    /// Bytes carved so far.
    pub(crate) fn carved(&self) -> usize {
        self.carved.load(Ordering::Relaxed)
    }

    /// Carves `len` bytes (a granule multiple) off the uncarved top, lock-free.
    /// Returns the start address, or `None` when they do not fit.
    pub(crate) fn carve(&self, len: usize) -> Option<usize> {
        debug_assert_eq!(len % self.granule, 0);
        let mut current = self.carved.load(Ordering::Relaxed);
        loop {
            let end = current.checked_add(len).filter(|&end| end <= self.len)?;
            match self.carved.compare_exchange_weak(current, end, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Some(self.base + current),
                Err(actual) => current = actual,
            }
        }
    }

    /// Whether `addr` lies inside the usable range.
    #[inline(always)]
    pub(crate) const fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.base) < self.len
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        // SAFETY: `mapping`/`mapping_len` are exactly the mapping made in `new`, and the
        // arena is dropped only when no handle that could reach its memory is left.
        unsafe { os::unmap(self.mapping, self.mapping_len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carving_is_granule_aligned_and_stops_at_the_end() {
        let arena = Arena::new(3 * 4096 + 1, 4096).unwrap();
        assert_eq!(arena.len(), 4 * 4096);
        assert_eq!(arena.base() % 4096, 0);
        assert_eq!(arena.carve(4096), Some(arena.base()));
        assert_eq!(arena.carve(2 * 4096), Some(arena.base() + 4096));
        assert_eq!(arena.carve(2 * 4096), None);
        assert_eq!(arena.carve(4096), Some(arena.base() + 3 * 4096));
        assert_eq!(arena.carved(), arena.len());
        assert!(arena.contains(arena.base()));
        assert!(!arena.contains(arena.base() + arena.len()));
        assert!(!arena.contains(arena.base() - 1));
    }

    #[test]
    fn concurrent_carves_are_disjoint() {
        let arena = Arena::new(1 << 24, 4096).unwrap();
        let starts: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> =
                (0..4).map(|_| s.spawn(|| (0..256).filter_map(|_| arena.carve(4096)).collect::<Vec<_>>())).collect();
            handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = starts.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), starts.len());
        assert_eq!(starts.len(), 1024);
    }
}
