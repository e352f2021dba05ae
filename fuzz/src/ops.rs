//! The model's plain operations: allocate (every API, sizes from 0 B to past the cap),
//! free (every API), reallocate, drop a cache, tear a cache down.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Model<'_, '_> {
    pub(super) fn allocate(&mut self) {
        let size = self.size();
        let c = self.cache();
        let tracked = self.coin();
        let usable = self.a.usable_size(size);
        let beyond_cap = self.cap.is_some_and(|cap| size > cap);
        let absurd = size > MAX_ARENA_SIZE;
        if size != 0 && !beyond_cap && !absurd && self.reserved + usable > self.budget {
            return self.free();
        }
        let cache = &mut self.caches[c];
        let owner = cache.id();
        let result = if tracked {
            self.a.allocate_tracked(cache, size).map(|a| (a.ptr, Some(a.generation)))
        } else {
            self.a.allocate_with_cache(cache, size).map(|p| (p, None))
        };
        let w = self.where_();
        match result {
            Ok((ptr, generation)) => {
                assert!(size != 0 && !beyond_cap && !absurd, "{w}: allocated {size} bytes at {ptr:p}");
                self.adopt(ptr, size, generation, owner);
            }
            Err(AllocError::InvalidSize { requested }) => {
                assert_eq!(requested, size, "{w}");
                assert!(size == 0 || beyond_cap || absurd, "{w}: {size} bytes called invalid");
            }
            Err(AllocError::OutOfMemory { requested, .. }) => {
                assert_eq!(requested, size, "{w}");
                assert!(size != 0, "{w}: 0 bytes out of memory");
            }
            Err(e) => {
                assert!(absurd, "{w}: allocate {size}: {e:?}");
            }
        }
    }

    pub(super) fn free(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let b = self.remove_live(key);
        self.check_block(&b, "before free");
        let c = self.cache();
        let how = self.byte() % 6;
        let cache = &mut self.caches[c];
        // SAFETY: the block is live in the model and freed once here; any pointer is
        // accepted by the frees.
        let result = unsafe {
            match (how, b.generation) {
                (0, _) => self.a.deallocate_with_cache(cache, b.ptr),
                (1, _) => self.a.deallocate_with_size(cache, b.ptr, b.size),
                (2, Some(g)) => self.a.deallocate_tracked(cache, b.ptr, g),
                (3, g) => self.a.deallocate_uncached(b.ptr, g),
                (4, Some(g)) => {
                    if self.a.reclaim_unreachable_cached(cache, b.ptr, g) {
                        Ok(())
                    } else {
                        Err(FreeError::DoubleFree { addr: key })
                    }
                }
                _ => self.a.deallocate_with_cache(cache, b.ptr),
            }
        };
        assert_eq!(result, Ok(()), "{}: free of {} bytes at {:p}", self.where_(), b.size, b.ptr);
        self.forget(&b, None);
        // Freed: a second free is a double free (nothing could reuse it in between).
        let cache = &mut self.caches[c];
        // SAFETY: rejected frees touch nothing.
        let again = unsafe { self.a.deallocate_with_cache(cache, b.ptr) };
        self.expect_rejected("second free", again, &[|e| matches!(e, FreeError::DoubleFree { .. })]);
    }

    pub(super) fn realloc(&mut self) {
        let Some(key) = self.pick_live() else { return };
        let new_size = self.size();
        let c = self.cache();
        let b = self.live[&key];
        let grown = self.a.usable_size(new_size).saturating_sub(self.a.usable_size(b.size));
        let beyond_cap = self.cap.is_some_and(|cap| new_size > cap);
        let absurd = new_size > MAX_ARENA_SIZE;
        if new_size != 0 && !beyond_cap && !absurd && self.reserved + grown > self.budget {
            return;
        }
        self.check_block(&b, "before realloc");
        let cache = &mut self.caches[c];
        let owner = cache.id();
        // SAFETY: the block is live and only the model uses it.
        let result = unsafe { self.a.reallocate(cache, b.ptr, new_size) };
        let w = self.where_();
        match result {
            Ok(ptr) => {
                assert!(new_size != 0 && !beyond_cap && !absurd, "{w}: realloc to {new_size} bytes succeeded");
                let b = self.remove_live(key);
                let kept = new_size.min(b.size);
                // SAFETY: the first `kept` bytes were carried over (the block at `ptr` is
                // at least `new_size` bytes); only those of the old pattern are read.
                if let Some(offset) = unsafe { damaged(ptr, b.size, b.id, kept) } {
                    panic!("{w}: realloc {} -> {new_size} ({:p} -> {ptr:p}) lost byte {offset}", b.size, b.ptr);
                }
                self.live_bytes -= b.size as u64;
                self.reserved -= self.a.usable_size(b.size);
                if ptr == b.ptr {
                    self.adopt(ptr, new_size, None, b.owner);
                } else {
                    // The old block was freed: its generation is stale (if known).
                    if let Some(g) = b.generation {
                        self.stale.push((b.ptr, g));
                    }
                    self.adopt(ptr, new_size, None, owner);
                }
            }
            Err(ReallocError::Alloc(AllocError::InvalidSize { .. })) => {
                assert!(new_size == 0 || beyond_cap || absurd, "{w}: realloc to {new_size}: invalid size");
                self.check_block(&b, "after a failed realloc");
            }
            Err(ReallocError::Alloc(AllocError::OutOfMemory { .. })) => {
                self.check_block(&b, "after a failed realloc");
            }
            Err(ReallocError::Alloc(_)) if absurd => self.check_block(&b, "after a failed realloc"),
            Err(e) => panic!("{w}: realloc of {} bytes at {:p} to {new_size}: {e:?}", b.size, b.ptr),
        }
    }

    pub(super) fn drop_cache(&mut self) {
        let c = self.cache();
        let old = std::mem::replace(&mut self.caches[c], ThreadCache::new());
        // Documented: the hand-offs of a cache dropped *while bound* become orphans (a
        // cache is bound by its first allocation or free; `hand_off` takes `&ThreadCache`
        // and does not bind it, so a never-bound sender's hand-offs are not orphaned).
        if old.stats().bound != 0 {
            self.gone.insert(old.id());
        }
    }

    /// A thread going away: every block its cache owns is freed, its in-flight hand-offs
    /// become orphans.
    pub(super) fn teardown(&mut self) {
        let c = self.cache();
        let id = self.caches[c].id();
        let owned: Vec<usize> = self.live.iter().filter(|(_, b)| b.owner == id).map(|(&k, _)| k).collect();
        let mut bytes = 0;
        for &key in &owned {
            let b = self.remove_live(key);
            self.check_block(&b, "before teardown");
            bytes += b.size;
            self.forget(&b, None);
        }
        // SAFETY: the model gave up every block `c` owns.
        let (freed, freed_bytes) = unsafe { self.a.free_all_owned_by(&self.caches[c]) };
        assert_eq!((freed, freed_bytes), (owned.len(), bytes), "{}: teardown of cache {id}", self.where_());
        let old = std::mem::replace(&mut self.caches[c], ThreadCache::new());
        self.gone.insert(old.id());
    }
}
