//! Whole-page memory: the carving cursor, the span heap shared by all classes and the
//! large path, the large allocation registry, and giving pages back to the OS. All of it
//! sits behind one lock, taken only on slow paths (after a class lock, never before one).

use crate::Allocation;
use crate::allocator::Inner;
use crate::arena::{CarveError, Top};
use crate::central::{FreedSlab, generation_seed};
use crate::error::{AllocError, FreeError};
use crate::free::Expect;
use crate::large::{LargeRecord, LargeRegistry};
use crate::meta::{self, BlockMeta, FREE, LARGE_CLASS, LIVE};
use crate::os;
use crate::region::{CHUNK_SIZE, MAP_UNIT};
use crate::span_heap::SpanHeap;
use crate::table::MAX_SHIFT;

#[derive(Default)]
pub(crate) struct Pages {
    pub(crate) top: Top,
    pub(crate) spans: SpanHeap,
    pub(crate) large: LargeRegistry,
    pub(crate) released_total: u64,
    pub(crate) large_allocations: u64,
    pub(crate) large_frees: u64,
    /// Spans taken out of the heap by a purge in progress.
    pub(crate) purging: usize,
}

impl Inner {
    /// Bytes of the span serving a large request, if it can be described.
    pub(crate) fn large_span_len(&self, size: usize) -> Option<usize> {
        let granule = self.arena.granule();
        size.checked_add(granule - 1).map(|n| n / granule * granule)
    }

    /// Whether `len` bytes could ever be carved (under the cap, if any).
    pub(crate) fn fits_cap(&self, len: usize) -> bool {
        self.arena.cap().is_none_or(|cap| len <= cap)
    }

    /// A span of `len` bytes (a page multiple) from the span heap, else the arena top.
    /// `in_chunk`: it must not cross a chunk boundary.
    pub(crate) fn take_span(&self, len: usize, in_chunk: bool) -> Result<usize, CarveError> {
        self.take_span_locked(self.pages.lock(), len, in_chunk).1
    }

    /// As [`Inner::take_span`] with the pages lock held (and handed back). When nothing
    /// fits but spans are out of the heap being returned to the OS, waits for them rather
    /// than report a spurious out-of-memory.
    fn take_span_locked<'a>(
        &'a self,
        mut pages: crate::sync::MutexGuard<'a, Pages>,
        len: usize,
        in_chunk: bool,
    ) -> (crate::sync::MutexGuard<'a, Pages>, Result<usize, CarveError>) {
        loop {
            if let Some(start) = pages.spans.take(len, in_chunk) {
                return (pages, Ok(start));
            }
            let Pages { top, spans, .. } = &mut *pages;
            let now = self.clock.coarse();
            match self.arena.carve(top, len, in_chunk, &mut |start, len| spans.give_clean(start, len, now)) {
                Ok(start) => return (pages, Ok(start)),
                Err(CarveError::Full) => {
                    if let Some(start) = self.take_across_top(&mut pages, len, in_chunk) {
                        return (pages, Ok(start));
                    }
                    if pages.purging == 0 {
                        return (pages, Err(CarveError::Full));
                    }
                    self.purged.wait(&mut pages);
                }
                Err(e) => return (pages, Err(e)),
            }
        }
    }

    /// At the end of the arena: a free span that ends exactly where carving stopped, plus
    /// the uncarved rest after it, make `len` contiguous bytes even when neither does alone.
    fn take_across_top(&self, pages: &mut Pages, len: usize, in_chunk: bool) -> Option<usize> {
        let Pages { top, spans, .. } = pages;
        let end = self.arena.top_addr(top)?;
        let (start, free) = spans.span_ending_at(end)?;
        let crosses = start % CHUNK_SIZE + len > CHUNK_SIZE;
        if free >= len || (in_chunk && crosses) || !spans.take_at(start, free) {
            return None;
        }
        if self.arena.extend(top, end, len - free) {
            return Some(start);
        }
        spans.give(start, free, self.clock.coarse());
        None
    }

    /// Returns slab spans to the span heap, then releases pages above the retained amount.
    pub(crate) fn give_spans(&self, freed: &[FreedSlab], now: u64) {
        if freed.is_empty() {
            return;
        }
        let over = {
            let mut pages = self.pages.lock();
            for slab in freed {
                pages.spans.give(slab.start, slab.len, now);
            }
            pages.spans.dirty_bytes() > self.config.retain_bytes
        };
        if over {
            self.purge(self.config.retain_bytes / 4 * 3, 0);
        }
    }

    /// Releases to the OS every dirty free span freed before `idle_before`, then the
    /// least recently freed ones until at most `retain` dirty bytes remain. The spans are
    /// taken out of the heap while the OS works, so no lock is held across `madvise`.
    /// Returns the bytes released.
    pub(crate) fn purge(&self, retain: usize, idle_before: u64) -> usize {
        let spans = {
            let mut pages = self.pages.lock();
            let spans = pages.spans.take_purge(retain, idle_before);
            pages.purging += spans.len();
            spans
        };
        if spans.is_empty() {
            return 0;
        }
        let mut released = 0;
        for span in &spans {
            // SAFETY: the span is free (no slab or allocation uses it), committed, and was
            // taken out of the heap, so nothing reads or hands it out while the OS drops
            // its pages.
            if unsafe { os::purge(span.start, span.len) } {
                released += span.len;
            }
        }
        let mut pages = self.pages.lock();
        pages.purging -= spans.len();
        for span in spans {
            pages.spans.give_back_purged(span);
        }
        pages.released_total += released as u64;
        drop(pages);
        self.purged.notify_all();
        released
    }

    /// A large allocation: a span of its own, recorded in the registry.
    #[cold]
    #[inline(never)]
    pub(crate) fn allocate_large(&self, owner: u32, size: usize) -> Result<Allocation, AllocError> {
        if size == 0 || size > isize::MAX as usize {
            return Err(AllocError::InvalidSize { requested: size });
        }
        let span_len = match self.large_span_len(size) {
            Some(len) if self.fits_cap(len) => len,
            _ => return Err(self.out_of_memory(size)),
        };
        let mut result = Err(CarveError::Full);
        for attempt in 0..2 {
            {
                let (mut pages, taken) = self.take_span_locked(self.pages.lock(), span_len, false);
                result = taken;
                if let Ok(start) = result {
                    pages.large.insert(start, LargeRecord { span_len, requested: size });
                    pages.large_allocations += 1;
                    break;
                }
            }
            // No tick here: the shared operation counter is a contended cache line when
            // threads churn large blocks; small-class traffic drives maintenance.
            if attempt == 0 && !self.reclaim_slabs(self.clock.coarse()) {
                break;
            }
        }
        let start = match result {
            Ok(start) => start,
            Err(CarveError::Full) => return Err(self.out_of_memory(size)),
            Err(CarveError::Refused(errno)) => return Err(AllocError::SystemOutOfMemory { requested: size, errno }),
        };
        let (Some((region, off)), Some(ptr)) = (self.arena.locate(start), std::ptr::NonNull::new(start as *mut u8))
        else {
            // Unreachable: carved spans are arena memory.
            return Err(self.out_of_memory(size));
        };
        // The span's first unit tells a free without a size to look in the 4 KiB table.
        region.map_slab(off, MAP_UNIT, LARGE_CLASS, 0);
        let meta = region.meta_at(start, MAX_SHIFT);
        let generation = generation_seed(start, self.next_seed());
        meta.set_generation(generation);
        meta.set_live_word(0, owner);
        meta.set_tag(meta::tag(LIVE, LARGE_CLASS, 0));
        Ok(Allocation { ptr, generation })
    }

    /// Frees the live large allocation at `addr` (its metadata says so) if the registry
    /// knows it and `expect` holds.
    #[cold]
    #[inline(never)]
    pub(crate) fn free_large(&self, addr: usize, meta: &BlockMeta, expect: Expect) -> Result<(), FreeError> {
        let over = {
            let mut pages = self.pages.lock();
            let Some(record) = pages.large.get(addr) else {
                return Err(self.reject(FreeError::ForeignPointer { addr }));
            };
            match expect {
                Expect::Size(size) if size != record.requested => {
                    return Err(self.reject(FreeError::SizeMismatch {
                        addr,
                        provided: size,
                        recorded: record.requested,
                    }));
                }
                Expect::Generation(g) if g != u64::from(meta.generation()) => {
                    return Err(self.reject(FreeError::DoubleFree { addr }));
                }
                _ => {}
            }
            pages.large.remove(addr);
            pages.large_frees += 1;
            meta.set_tag(meta::tag(FREE, LARGE_CLASS, 0));
            pages.spans.give(addr, record.span_len, self.clock.coarse());
            pages.spans.dirty_bytes() > self.config.retain_bytes
        };
        if over {
            self.purge(self.config.retain_bytes / 4 * 3, 0);
        }
        Ok(())
    }

    /// Resizes the live large allocation at `addr` in place to `size` bytes (still a large
    /// request): shrinking gives the tail pages back; growing takes the free pages right
    /// after it (from the span heap, or the arena top). Returns whether it could.
    pub(crate) fn resize_large_in_place(&self, addr: usize, size: usize) -> bool {
        let Some(new_len) = self.large_span_len(size) else {
            return false;
        };
        let mut pages = self.pages.lock();
        let Some(record) = pages.large.get(addr) else {
            return false;
        };
        let old_len = record.span_len;
        if new_len < old_len {
            pages.spans.give(addr + new_len, old_len - new_len, self.clock.coarse());
        } else if new_len > old_len {
            let (end, extra) = (addr + old_len, new_len - old_len);
            let Pages { top, spans, .. } = &mut *pages;
            if !spans.take_at(end, extra) && !self.arena.extend(top, end, extra) {
                return false;
            }
        }
        pages.large.remove(addr);
        pages.large.insert(addr, LargeRecord { span_len: new_len, requested: size });
        true
    }

    pub(crate) fn out_of_memory(&self, requested: usize) -> AllocError {
        let pages = self.pages.lock();
        let remaining = self.arena.uncarved(&pages.top) + pages.spans.free_bytes();
        AllocError::OutOfMemory { requested, remaining, cap: self.arena.cap().unwrap_or(0) }
    }
}
