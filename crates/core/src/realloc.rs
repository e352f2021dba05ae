//! Resizing a live block: in place when its class stays the same (small) or when the pages
//! after it are free (large: grow into them; shrink: give the tail back), else a new block,
//! a copy and a free.

use std::ptr::NonNull;

use crate::allocator::Allocator;
use crate::error::{AllocError, FreeError};
use crate::meta::{self, FREE, IN_FLIGHT, LARGE_CLASS, LIVE};
use crate::size_class::SizeClass;
use crate::thread_cache::{ThreadCache, bump};

/// Why a [`Allocator::reallocate`] failed. The block is left exactly as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReallocError {
    /// `ptr` is not a live block of this allocator.
    Free(FreeError),
    /// The new size cannot be allocated.
    Alloc(AllocError),
}

impl ReallocError {
    /// Stable error code.
    #[must_use]
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Free(e) => e.code(),
            Self::Alloc(e) => e.code(),
        }
    }
}

impl std::fmt::Display for ReallocError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Free(e) => e.fmt(f),
            Self::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ReallocError {}

impl Allocator {
    /// Resizes the live block at `ptr` to `new_size` bytes and returns where it is now.
    /// The first `min(old, new)` bytes are kept. The block stays where it is when the new
    /// size falls in the same size class, and a large block (above 16 MiB) that stays
    /// large grows into free pages right after it or shrinks by giving its tail back;
    /// otherwise a new block is allocated through `cache`, the bytes copied and the old
    /// block freed.
    ///
    /// # Safety
    /// `ptr` must not be in use by anyone else during the call; after `Ok(new)` only `new`
    /// may be used (the old pointer, if different, is freed).
    ///
    /// # Errors
    /// [`ReallocError::Free`] if `ptr` is not a live block of this allocator,
    /// [`ReallocError::Alloc`] if the new size cannot be allocated; nothing changed.
    pub unsafe fn reallocate(
        &self,
        cache: &mut ThreadCache,
        ptr: NonNull<u8>,
        new_size: usize,
    ) -> Result<NonNull<u8>, ReallocError> {
        let inner = &*self.inner;
        if new_size == 0 {
            return Err(ReallocError::Alloc(AllocError::InvalidSize { requested: 0 }));
        }
        let addr = ptr.as_ptr() as usize;
        let meta = match inner.block_at(addr).map(|(_, m)| (m, meta::state_of(m.tag()))) {
            Some((m, LIVE)) => m,
            // As a free would say: freed or handed off, else not a block.
            Some((_, FREE | IN_FLIGHT)) => {
                return Err(ReallocError::Free(inner.reject(FreeError::DoubleFree { addr })));
            }
            _ => return Err(ReallocError::Free(inner.reject(FreeError::ForeignPointer { addr }))),
        };
        let class = meta::class_of(meta.tag());
        let old_size = if class == LARGE_CLASS {
            if SizeClass::from_request(new_size).is_none() && inner.resize_large_in_place(addr, new_size) {
                return Ok(ptr);
            }
            inner.pages.lock().large.get(addr).map_or(0, |r| r.requested)
        } else {
            let (old, owner) = meta.requested_and_owner();
            if SizeClass::from_request(new_size).is_some_and(|c| c.index() == class as usize) {
                if cache.bound_id != inner.id {
                    self.bind(cache);
                }
                meta.set_live_word(new_size as u32, owner);
                bump(&cache.shared.counters.allocated_bytes, new_size as u64);
                bump(&cache.shared.counters.freed_bytes, u64::from(old));
                return Ok(ptr);
            }
            old as usize
        };
        let new = self.allocate_with_cache(cache, new_size).map_err(ReallocError::Alloc)?;
        // SAFETY: both blocks are live, distinct, and at least `min(old, new)` bytes long;
        // the caller gives up the old one.
        unsafe {
            std::ptr::copy_nonoverlapping(ptr.as_ptr(), new.as_ptr(), old_size.min(new_size));
            self.deallocate_with_cache(cache, ptr).map_err(ReallocError::Free)?;
        }
        Ok(new)
    }
}
