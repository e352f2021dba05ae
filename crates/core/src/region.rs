//! A region: one reservation of address space for user memory, with its side tables in a
//! separate mapping.
//!
//! ```text
//! data mapping   [ slack ][ chunk 0 | chunk 1 | ... | last chunk ][ guard ]
//!                           ^ base (chunk-aligned)   base + len ^
//! side mapping   [ block table: one BlockMeta per 64-byte granule ][ slab map: u32 per 4 KiB ]
//! ```
//!
//! The data range is reserved inaccessible and committed (made readable and writable) a
//! chunk at a time, as carving reaches it; committed memory is never made inaccessible
//! again (idle pages are purged, which keeps them accessible), so a JavaScript window over
//! a chunk can never fault. A guard page follows the data, so two regions are never
//! adjacent and no span ever crosses from one into another. Regions start on a chunk
//! boundary, so chunk boundaries are simply multiples of `CHUNK_SIZE`.
//!
//! The side mapping is readable and writable from the start and touched only where blocks
//! live (untouched pages read as zeros: `NONE` tags, no slab). It is never exposed.
//!
//! Invariants:
//! - `base % CHUNK == 0`, `len % granule == 0`, `voff % CHUNK == 0`
//! - `committed % CHUNK == 0 || committed == len`, `committed <= len`, and it only grows
//! - `meta` has `len / GRANULE` entries, `slab_map` has `len / MAP_UNIT` entries

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::config::round_up;
use crate::error::InitError;
use crate::meta::{BlockMeta, GRANULE, GRANULE_SHIFT};
use crate::os;

/// Bytes of a chunk: the unit in which regions are committed and JavaScript windows are
/// made. Slabs of classes whose slab fits in a chunk never cross a chunk boundary.
pub const CHUNK_SIZE: usize = 4 << 20;
/// Bytes of user memory one slab-map entry covers.
pub(crate) const MAP_UNIT: usize = 4096;
const MAP_SHIFT: u32 = 12;

pub(crate) struct Region {
    base: usize,
    len: usize,
    voff: usize,
    data: NonNull<u8>,
    data_len: usize,
    side: NonNull<u8>,
    side_len: usize,
    /// `meta - base / 4` (wrapping): the entry of the granule at address `a` (64-aligned)
    /// is at `meta_bias + a / 4`, one shift from the address.
    meta_bias: usize,
    /// Address and byte length of the block table.
    meta_start: usize,
    meta_len: usize,
    /// `base - 4 * meta_start` (wrapping): the granule of table entry `e` starts at
    /// `addr_bias + 4 * e` (a shift and an add from the entry, beside the range check).
    addr_bias: usize,
    slab_map: *const AtomicU32,
    committed: AtomicUsize,
}

// SAFETY: a region only holds addresses of its own two mappings, which are written
// through atomics (side tables) or handed out by the allocator (data).
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Reserves `len` bytes (rounded up to whole granules) at arena offset `voff`.
    pub(crate) fn new(len: usize, voff: usize, granule: usize) -> Result<Self, InitError> {
        let len = round_up(len, granule);
        // Slack to align the base to a chunk; what is left of it after the data is the
        // guard (at least one page: the reservation starts on a page boundary).
        let data_len = len + CHUNK_SIZE;
        let data = os::reserve(data_len).map_err(|errno| InitError::MapFailed { size: data_len, errno })?;
        let page = os::page_size();
        let meta_bytes = round_up(len / GRANULE * size_of::<BlockMeta>(), page);
        let map_bytes = round_up(len / MAP_UNIT * size_of::<AtomicU32>(), page);
        let side_len = meta_bytes + map_bytes;
        let side = match os::reserve(side_len) {
            // SAFETY: the side mapping was just reserved, whole, for this region.
            Ok(side) => match unsafe { os::commit(side.as_ptr() as usize, side_len) } {
                Ok(()) => side,
                Err(errno) => {
                    // SAFETY: both reservations were just made and are unused.
                    unsafe {
                        os::release(side, side_len);
                        os::release(data, data_len);
                    }
                    return Err(InitError::MapFailed { size: side_len, errno });
                }
            },
            Err(errno) => {
                // SAFETY: the data reservation was just made and is unused.
                unsafe { os::release(data, data_len) };
                return Err(InitError::MapFailed { size: side_len, errno });
            }
        };
        let base = round_up(data.as_ptr() as usize, CHUNK_SIZE);
        Ok(Self {
            base,
            len,
            voff,
            data,
            data_len,
            side,
            side_len,
            meta_bias: (side.as_ptr() as usize).wrapping_sub(base >> 2),
            meta_start: side.as_ptr() as usize,
            meta_len: len / GRANULE * size_of::<BlockMeta>(),
            addr_bias: base.wrapping_sub((side.as_ptr() as usize) << (GRANULE_SHIFT - 4)),
            // SAFETY: `meta_bytes < side_len`: the slab map follows the block table.
            slab_map: unsafe { side.as_ptr().add(meta_bytes) }.cast::<AtomicU32>(),
            committed: AtomicUsize::new(0),
        })
    }

    #[inline(always)]
    pub(crate) const fn base(&self) -> usize {
        self.base
    }

    #[inline(always)]
    pub(crate) const fn len(&self) -> usize {
        self.len
    }

    /// Arena offset of `base`: offsets of all regions form one sequence.
    #[inline(always)]
    pub(crate) const fn voff(&self) -> usize {
        self.voff
    }

    /// Bytes of the data range committed so far (a prefix).
    pub(crate) fn committed(&self) -> usize {
        self.committed.load(Ordering::Acquire)
    }

    /// Bytes of the side tables that cover the committed prefix.
    pub(crate) fn metadata_bytes(&self) -> usize {
        let committed = self.committed();
        committed / GRANULE * size_of::<BlockMeta>() + committed / MAP_UNIT * size_of::<AtomicU32>()
    }

    /// Offset of `addr` in this region, if it is inside.
    #[inline(always)]
    pub(crate) const fn offset_of(&self, addr: usize) -> Option<usize> {
        let off = addr.wrapping_sub(self.base);
        if off < self.len { Some(off) } else { None }
    }

    /// The metadata of the granule at region offset `off` (`off < len`).
    #[inline(always)]
    pub(crate) fn meta(&self, off: usize) -> &BlockMeta {
        self.meta_at((self.base + off) & !(GRANULE - 1))
    }

    /// The metadata of the granule starting at `addr` (64-aligned, inside the region).
    #[inline(always)]
    pub(crate) fn meta_at(&self, addr: usize) -> &BlockMeta {
        debug_assert!(addr.is_multiple_of(GRANULE) && addr.wrapping_sub(self.base) < self.len);
        // SAFETY: `addr` is a granule of this region, so `(addr - base) / 64` indexes the
        // block table, mapped readable and writable for the region's whole life; with
        // `base` 64-aligned, `meta_bias + addr / 4 == meta + (addr - base) / 64 * 16`.
        unsafe { &*(self.meta_bias.wrapping_add(addr >> (GRANULE_SHIFT - 4)) as *const BlockMeta) }
    }

    /// The entry at table address `entry` and the address of its granule, if `entry` is
    /// an entry of this region's block table. Free lists link entries, not addresses, so
    /// following a link costs no arithmetic.
    #[inline(always)]
    pub(crate) fn entry(&self, entry: usize) -> Option<(usize, &BlockMeta)> {
        let index = entry.wrapping_sub(self.meta_start);
        if index >= self.meta_len || !index.is_multiple_of(size_of::<BlockMeta>()) {
            return None;
        }
        // SAFETY: `entry` is an entry of the block table (checked just above), mapped
        // readable and writable for the region's whole life.
        let meta = unsafe { &*(entry as *const BlockMeta) };
        Some((self.base + (index << (GRANULE_SHIFT - 4)), meta))
    }

    /// The address of the granule of table entry `entry`, if it lies in this region's
    /// block table (an entry's offset in the table is a quarter of its granule's offset).
    /// The address is computed from the entry alone (not from the range check's
    /// difference), so on a pop it is two ops after the head is loaded.
    #[inline(always)]
    pub(crate) const fn addr_of_entry(&self, entry: usize) -> Option<usize> {
        if entry.wrapping_sub(self.meta_start) < self.meta_len {
            Some(self.addr_bias.wrapping_add(entry << (GRANULE_SHIFT - 4)))
        } else {
            None
        }
    }

    /// Slab-map entry of the 4 KiB unit at region offset `off` (`off < len`).
    #[inline(always)]
    fn map_entry(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off < self.len);
        // SAFETY: `off < len`, so the index is inside the slab map, mapped for the
        // region's whole life.
        unsafe { &*self.slab_map.add(off >> MAP_SHIFT) }
    }

    /// The slab id recorded for the unit at region offset `off` (0: none).
    pub(crate) fn slab_at(&self, off: usize) -> u32 {
        self.map_entry(off).load(Ordering::Relaxed)
    }

    /// Records `id` for every unit of `[off, off + len)`.
    pub(crate) fn map_slab(&self, off: usize, len: usize, id: u32) {
        for unit in (off..off + len).step_by(MAP_UNIT) {
            self.map_entry(unit).store(id, Ordering::Relaxed);
        }
    }

    /// Commits the data range up to `end` (rounded up to a chunk). Called with the pages
    /// lock held.
    pub(crate) fn commit_to(&self, end: usize) -> Result<(), i32> {
        let committed = self.committed.load(Ordering::Relaxed);
        if end <= committed {
            return Ok(());
        }
        let target = round_up(end, CHUNK_SIZE).min(self.len);
        // SAFETY: `[committed, target)` lies inside this region's data reservation.
        unsafe { os::commit(self.base + committed, target - committed) }?;
        self.committed.store(target, Ordering::Release);
        Ok(())
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: both mappings were made by `new` for this region alone, and a region is
        // dropped only with its arena, when nothing can reach its memory any more.
        unsafe {
            os::release(self.data, self.data_len);
            os::release(self.side, self.side_len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{self, FREE};

    #[test]
    fn a_region_commits_chunk_by_chunk_and_keeps_side_tables_apart() {
        let region = Region::new(3 * CHUNK_SIZE + 4096, CHUNK_SIZE, 4096).unwrap();
        assert_eq!((region.len(), region.voff(), region.committed()), (3 * CHUNK_SIZE + 4096, CHUNK_SIZE, 0));
        region.commit_to(1).unwrap();
        assert_eq!(region.committed(), CHUNK_SIZE);
        region.commit_to(3 * CHUNK_SIZE + 1).unwrap();
        assert_eq!(region.committed(), region.len());
        // SAFETY: the whole data range is committed and used only by this test.
        unsafe { (region.base() as *mut u8).write_bytes(0xFF, region.len()) };
        // Scribbling over the data leaves every table entry as it was.
        assert_eq!(region.meta(0).tag(), meta::NONE);
        assert_eq!(region.slab_at(region.len() - 1), 0);
        region.meta(128).initialize(3, 9);
        region.map_slab(8192, 8192, 17);
        assert_eq!((region.slab_at(8192), region.slab_at(16383), region.slab_at(16384)), (17, 17, 0));
        assert_eq!(region.meta(128).tag(), meta::tag(FREE, 3));
        assert_eq!(region.offset_of(region.base() + region.len()), None);
        assert_eq!(region.offset_of(region.base() - 1), None);
        assert_eq!(region.offset_of(region.base() + 5), Some(5));
    }
}
