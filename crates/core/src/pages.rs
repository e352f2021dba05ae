//! Whole-page memory: the span heap shared by all classes and the large path, the large
//! allocation registry, and giving pages back to the OS. All of it sits behind one lock,
//! taken only on slow paths (after a class lock, never before one).

use crate::allocator::{Allocation, Expect, Inner};
use crate::central::FreedSlab;
use crate::error::{AllocError, FreeError};
use crate::header::{self, HEADER_SIZE, Header, LARGE_CLASS, user_of, user_ptr};
use crate::large::{LargeRecord, LargeRegistry};
use crate::os;
use crate::span_heap::SpanHeap;

#[derive(Default)]
pub(crate) struct Pages {
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
        let needed = size.checked_add(self.config.alignment)?;
        let granule = self.arena.granule();
        needed.checked_add(granule - 1).map(|n| n / granule * granule)
    }

    /// A span of `len` bytes (a page multiple) from the span heap, else the arena top.
    pub(crate) fn take_span(&self, len: usize) -> Option<usize> {
        self.take_span_locked(self.pages.lock(), len).1
    }

    /// As [`Inner::take_span`] with the pages lock held (and handed back). When nothing
    /// fits but spans are out of the heap being returned to the OS, waits for them rather
    /// than report a spurious out-of-memory.
    pub(crate) fn take_span_locked<'a>(
        &'a self,
        mut pages: parking_lot::MutexGuard<'a, Pages>,
        len: usize,
    ) -> (parking_lot::MutexGuard<'a, Pages>, Option<usize>) {
        loop {
            if let Some(start) = pages.spans.take(len).or_else(|| self.arena.carve(len)) {
                return (pages, Some(start));
            }
            if pages.purging == 0 {
                return (pages, None);
            }
            self.purged.wait(&mut pages);
        }
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
            // SAFETY: the span is free (no slab or allocation uses it) and was taken out
            // of the heap, so nothing reads or hands it out while the OS drops its pages.
            if unsafe { os::release_pages(span.start, span.len) } {
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

    #[cold]
    #[inline(never)]
    pub(crate) fn allocate_large(&self, owner: u64, size: usize) -> Result<Allocation, AllocError> {
        if size == 0 || size > isize::MAX as usize {
            return Err(AllocError::InvalidSize { requested: size });
        }
        let span_len = match self.large_span_len(size) {
            Some(len) if len <= self.arena.len() => len,
            _ => return Err(self.out_of_memory(size)),
        };
        // No tick here: the shared operation counter is a contended cache line when
        // threads churn large blocks; small-class traffic drives maintenance.
        let now = self.coarse_now.load(std::sync::atomic::Ordering::Relaxed);
        let mut start = None;
        for attempt in 0..2 {
            {
                let (mut pages, taken) = self.take_span_locked(self.pages.lock(), span_len);
                start = taken;
                if let Some(span_start) = start {
                    let block = span_start + self.config.alignment - HEADER_SIZE;
                    pages.large.insert(block, LargeRecord { span_start, span_len, requested: size });
                    pages.large_allocations += 1;
                    break;
                }
            }
            if attempt == 0 {
                self.reclaim_slabs(now);
            }
        }
        let Some(span_start) = start else {
            return Err(self.out_of_memory(size));
        };
        let block = (span_start + self.config.alignment - HEADER_SIZE) as *mut Header;
        let generation = crate::central::generation_seed(span_start, self.next_seed());
        // SAFETY: the span was just taken from the heap or the arena top, so this call
        // owns it; the header lies inside it.
        unsafe {
            header::initialize(block, self.secret, LARGE_CLASS, 0, generation);
            (*block).requested = size as u64;
            (*block).owner = owner;
            header::set_state(block, header::live(header::check(self.secret, block, LARGE_CLASS)));
        }
        Ok(Allocation { ptr: user_ptr(block), generation })
    }

    /// Frees a block whose header's class byte is not a small class: a large allocation
    /// if the registry knows it, else a rejected pointer.
    ///
    /// # Safety
    /// `block` must be a header address inside the arena.
    #[cold]
    #[inline(never)]
    pub(crate) unsafe fn free_large(&self, block: *mut Header, expect: Expect) -> Result<(), FreeError> {
        let check = header::check(self.secret, block, LARGE_CLASS);
        // SAFETY: the header lies in mapped arena memory (caller contract).
        let (state, class) = unsafe { (header::state(block), (*block).class) };
        if class != LARGE_CLASS || state != header::live(check) {
            return Err(self.reject_state(block, class == LARGE_CLASS && state == header::free(check)));
        }
        let addr = user_of(block) as usize;
        let over = {
            let mut pages = self.pages.lock();
            let Some(record) = pages.large.get(block as usize) else {
                return Err(self.reject(FreeError::CorruptHeader { addr }));
            };
            // SAFETY: the registry says this block is live, so its header is ours.
            let generation = unsafe { (*block).generation };
            match expect {
                Expect::Size(size) if size != record.requested => {
                    return Err(self.reject(FreeError::SizeMismatch {
                        addr,
                        provided: size,
                        recorded: record.requested,
                    }));
                }
                Expect::Generation(g) if g != generation => {
                    return Err(self.reject(FreeError::DoubleFree { addr }));
                }
                _ => {}
            }
            pages.large.remove(block as usize);
            pages.large_frees += 1;
            // SAFETY: as above; the allocation is over once the record is gone.
            unsafe { header::set_state(block, header::free(check)) };
            let now = self.coarse_now.load(std::sync::atomic::Ordering::Relaxed);
            pages.spans.give(record.span_start, record.span_len, now);
            pages.spans.dirty_bytes() > self.config.retain_bytes
        };
        if over {
            self.purge(self.config.retain_bytes / 4 * 3, 0);
        }
        Ok(())
    }
}
