//! The model's misuse operations: frees of stale, foreign, interior and in-flight pointers,
//! each of which must be refused with its documented error and change nothing.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Model<'_, '_> {
    pub(super) fn free_stale(&mut self) {
        if self.stale.is_empty() {
            return;
        }
        let i = self.below(self.stale.len());
        let (ptr, g) = self.stale[i];
        let addr = ptr.as_ptr() as usize;
        let reissued = self.live.contains_key(&addr);
        let in_flight = self.pending.iter().any(|p| p.block.ptr == ptr);
        let c = self.cache();
        let how = self.byte() % 5;
        if how == 3 && reissued {
            // A reallocation takes no generation: it would resize the block living there.
            return;
        }
        let cache = &mut self.caches[c];
        // SAFETY: a stale handle: the free must be rejected (the generation is checked), so
        // nothing is freed even if the address was handed out again.
        let result = unsafe {
            match how {
                0 => self.a.deallocate_tracked(cache, ptr, g),
                1 => self.a.deallocate_uncached(ptr, Some(g)),
                2 => {
                    if self.a.reclaim_unreachable(ptr, g) {
                        Ok(())
                    } else {
                        Err(FreeError::DoubleFree { addr })
                    }
                }
                4 => {
                    let sender = &self.caches[c];
                    self.a.hand_off(ptr, g, 7, sender).map(|_| ()).map_err(|e| match e {
                        HandoffError::Free(e) => e,
                        other => panic!("stale hand-off: {other:?}"),
                    })
                }
                _ => match self.a.reallocate(cache, ptr, 64) {
                    Ok(_) => Ok(()),
                    Err(ReallocError::Free(e)) => Err(e),
                    Err(ReallocError::Alloc(e)) => panic!("{e:?}"),
                },
            }
        };
        // Rejected frees and reallocations count; `reclaim_unreachable` and `hand_off` do not.
        self.rejected += u64::from(matches!(how, 0 | 1 | 3));
        match result {
            Err(FreeError::DoubleFree { .. }) => {}
            // No block starts there any more (the memory went to another class or a large
            // allocation).
            Err(FreeError::ForeignPointer { .. }) if !reissued && !in_flight => {}
            other => panic!("{}: stale handle {ptr:p} (generation {g}, way {how}): {other:?}", self.where_()),
        }
    }

    /// Frees of pointers that are not block starts of this allocator.
    pub(super) fn free_foreign(&mut self) {
        let c = self.cache();
        let kind = self.byte() % 6;
        let (ptr, allowed): (NonNull<u8>, &[Allowed]) = match kind {
            0 => {
                // Interior of a live block.
                let Some(key) = self.pick_live() else { return };
                let size = self.live[&key].size;
                if size < 2 {
                    return;
                }
                let offset = self.range(1, size - 1);
                (nn(key + offset), &[|e| matches!(e, FreeError::ForeignPointer { .. })])
            }
            1 => {
                // Anywhere in committed memory that is no live or in-flight block start.
                let ranges = self.a.committed_ranges();
                if ranges.is_empty() {
                    return;
                }
                let (base, len) = ranges[self.below(ranges.len())];
                let addr = base.as_ptr() as usize + self.below(len);
                let addr = if self.coin() { addr & !(self.a.config().alignment - 1) } else { addr };
                if self.live.contains_key(&addr) || self.pending.iter().any(|p| p.block.ptr.as_ptr() as usize == addr) {
                    return;
                }
                (
                    nn(addr),
                    &[|e| matches!(e, FreeError::ForeignPointer { .. }), |e| matches!(e, FreeError::DoubleFree { .. })],
                )
            }
            2 => (other_arena_block(), &[|e| matches!(e, FreeError::ForeignPointer { .. })]),
            3 => {
                let local = 0u64;
                (nn(std::ptr::addr_of!(local) as usize), &[|e| matches!(e, FreeError::ForeignPointer { .. })])
            }
            4 => {
                let addr = match self.byte() % 3 {
                    0 => 1,
                    1 => usize::MAX & !63,
                    _ => self.u.arbitrary::<usize>().unwrap_or(1).max(1),
                };
                if self.a.contains(addr as *const u8) {
                    return;
                }
                (nn(addr), &[|e| matches!(e, FreeError::ForeignPointer { .. })])
            }
            _ => {
                // A live block with the wrong size.
                let Some(key) = self.pick_live() else { return };
                let size = self.live[&key].size;
                let wrong = match self.byte() % 3 {
                    0 => size + 1,
                    1 => size - 1,
                    _ => self.size(),
                };
                if wrong == size {
                    return;
                }
                let cache = &mut self.caches[c];
                // SAFETY: rejected (size mismatch): nothing is freed.
                let result = unsafe { self.a.deallocate_with_size(cache, nn(key), wrong) };
                self.expect_rejected(
                    "free with a wrong size",
                    result,
                    &[|e| matches!(e, FreeError::SizeMismatch { .. })],
                );
                return;
            }
        };
        let how = self.byte() % 3;
        let cache = &mut self.caches[c];
        // SAFETY: not a block start of this allocator: rejected, nothing is freed.
        let result = unsafe {
            match how {
                0 => self.a.deallocate_with_cache(cache, ptr),
                1 => self.a.deallocate_uncached(ptr, None),
                _ => self.a.reallocate(cache, ptr, 100).map(|_| ()).map_err(|e| match e {
                    ReallocError::Free(e) => e,
                    ReallocError::Alloc(e) => panic!("{e:?}"),
                }),
            }
        };
        self.expect_rejected(&format!("foreign free of {ptr:p} ({kind})"), result, allowed);
    }

    pub(super) fn free_in_flight(&mut self) {
        let Some(i) = self.pick_pending() else { return };
        let (ptr, g, old) = (self.pending[i].block.ptr, self.pending[i].generation, self.pending[i].old_generation);
        let c = self.cache();
        let cache = &mut self.caches[c];
        // SAFETY: in flight: every free must be rejected.
        let results = unsafe {
            [
                self.a.deallocate_with_cache(cache, ptr),
                self.a.deallocate_tracked(cache, ptr, g),
                self.a.deallocate_tracked(cache, ptr, old),
                self.a.deallocate_uncached(ptr, None),
            ]
        };
        for result in results {
            self.expect_rejected(
                "free of an in-flight block",
                result,
                &[|e| matches!(e, FreeError::DoubleFree { .. })],
            );
        }
        // SAFETY: as above (rejected).
        let moved = unsafe { self.a.reallocate(&mut self.caches[c], ptr, 10) };
        assert!(
            matches!(moved, Err(ReallocError::Free(FreeError::DoubleFree { .. }))),
            "{}: realloc of an in-flight block: {moved:?}",
            self.where_()
        );
        self.rejected += 1;
        // SAFETY: as above (stale generation: not reclaimed).
        assert!(!unsafe { self.a.reclaim_unreachable(ptr, old) }, "{}", self.where_());
        // The sender may not hand it off again either.
        // SAFETY: rejected (in flight): nothing changes.
        let again = unsafe { self.a.hand_off(ptr, old, 0, &self.caches[c]) };
        assert!(
            matches!(again, Err(HandoffError::Free(FreeError::DoubleFree { .. }))),
            "{}: second hand-off: {again:?}",
            self.where_()
        );
    }
}
