//! A region: one reservation of address space for user memory, with its side tables in a
//! separate mapping.
//!
//! ```text
//! data mapping   [ slack ][ chunk 0 | chunk 1 | ... | last chunk ][ guard ]
//!                           ^ base (chunk-aligned)   base + len ^
//! side mapping   [ block table k=6 | k=7 | ... | k=12 ][ slab map: u32 per 4 KiB ]
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
//! live (untouched pages read as zeros: `NONE` tags, no slab). It is never exposed. It must
//! be readable everywhere (a free looks up any address of the region, however bogus), so
//! it is committed whole: about half the data's size (16 bytes per 64 for table 6, half
//! that for each coarser table). That costs nothing until touched where commit is charged
//! on touch, and is charged at once on Windows (`os::COMMIT_IS_CHARGED`).
//!
//! Both mappings are only ever released whole (`Drop`, and `new`'s error paths), as the OS
//! contract requires.
//!
//! The block tables (`table.rs`) hold one 16-byte entry per granule of their shift; the
//! slab map names, for every 4 KiB, the class and slab that own it (`class << 24 | id`,
//! id from 1; 0 = no slab; a large allocation's first unit is `LARGE_CLASS << 24`), so a
//! free without a size finds its block's table from the address.
//!
//! Invariants:
//! - `base % CHUNK == 0`, `len % granule == 0`, `voff % CHUNK == 0`
//! - `committed % CHUNK == 0 || committed == len`, `committed <= len`, and it only grows
//! - table `k` has `len >> k` entries, `slab_map` has `len / MAP_UNIT` entries

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::config::round_up;
use crate::error::InitError;
use crate::meta::BlockMeta;
use crate::os;
use crate::table::{ClassTable, MAX_SHIFT, MIN_SHIFT, TABLES, Table, table_bytes};

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
    /// Block tables by shift: `tables[k - MIN_SHIFT]`.
    tables: [Table; TABLES],
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
        let table_len = |k: u32| round_up(table_bytes(len, k), page);
        let tables_bytes: usize = (MIN_SHIFT..=MAX_SHIFT).map(table_len).sum();
        let map_bytes = round_up(len / MAP_UNIT * size_of::<AtomicU32>(), page);
        let side_len = tables_bytes + map_bytes;
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
        let side_start = side.as_ptr() as usize;
        let mut at = side_start;
        let tables = std::array::from_fn(|i| {
            let shift = MIN_SHIFT + i as u32;
            let table = Table::new(at, base, shift);
            at += table_len(shift);
            table
        });
        Ok(Self {
            base,
            len,
            voff,
            data,
            data_len,
            side,
            side_len,
            tables,
            // SAFETY: `tables_bytes < side_len`: the slab map follows the tables.
            slab_map: unsafe { side.as_ptr().add(tables_bytes) }.cast::<AtomicU32>(),
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

    /// Bytes of the slab map that cover the committed prefix.
    pub(crate) fn slab_map_bytes(&self) -> usize {
        self.committed() / MAP_UNIT * size_of::<AtomicU32>()
    }

    /// Offset of `addr` in this region, if it is inside.
    #[inline(always)]
    pub(crate) const fn offset_of(&self, addr: usize) -> Option<usize> {
        let off = addr.wrapping_sub(self.base);
        if off < self.len { Some(off) } else { None }
    }

    /// The table of `shift`.
    #[inline(always)]
    pub(crate) fn table(&self, shift: u32) -> &Table {
        &self.tables[(shift - MIN_SHIFT) as usize]
    }

    /// The fast-path view of class `class` (of table `shift`, cache list limit `limit`)
    /// in this region.
    pub(crate) fn class_table(&self, shift: u32, class: u8, limit: u32) -> ClassTable {
        ClassTable::new(*self.table(shift), self.base, self.len, class, limit)
    }

    /// The metadata of the granule of `shift` holding `addr` (an address of this region).
    #[inline(always)]
    pub(crate) fn meta_at(&self, addr: usize, shift: u32) -> &BlockMeta {
        debug_assert!(addr.wrapping_sub(self.base) < self.len);
        let entry = self.table(shift).entry_of(addr);
        // SAFETY: `addr` lies in this region, so its granule's entry lies in the table of
        // `shift`, mapped readable and writable for the region's whole life.
        unsafe { &*(entry as *const BlockMeta) }
    }

    /// The metadata of the block starting at `addr` (of a class of table `shift`), if
    /// `addr` lies in this region.
    #[inline(always)]
    pub(crate) fn meta_of(&self, addr: usize, shift: u32) -> Option<&BlockMeta> {
        self.offset_of(addr).map(|_| self.meta_at(addr, shift))
    }

    /// Slab-map entry of the 4 KiB unit at region offset `off` (`off < len`).
    #[inline(always)]
    fn map_entry(&self, off: usize) -> &AtomicU32 {
        debug_assert!(off < self.len);
        // SAFETY: `off < len`, so the index is inside the slab map, mapped for the
        // region's whole life.
        unsafe { &*self.slab_map.add(off >> MAP_SHIFT) }
    }

    /// The class and slab id (from 1; 0: none) recorded for the unit at region offset
    /// `off`.
    #[inline(always)]
    pub(crate) fn slab_at(&self, off: usize) -> (u8, u32) {
        let value = self.map_entry(off).load(Ordering::Relaxed);
        ((value >> 24) as u8, value & 0x00FF_FFFF)
    }

    /// Records class `class` and slab `id` (from 1, below 2^24; 0 for a large allocation)
    /// for every unit of `[off, off + len)`.
    pub(crate) fn map_slab(&self, off: usize, len: usize, class: u8, id: u32) {
        debug_assert!(id < 1 << 24);
        let value = u32::from(class) << 24 | id;
        for unit in (off..off + len).step_by(MAP_UNIT) {
            self.map_entry(unit).store(value, Ordering::Relaxed);
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
        for shift in MIN_SHIFT..=MAX_SHIFT {
            assert_eq!(region.meta_at(region.base(), shift).tag(), meta::NONE);
            assert_eq!(region.meta_at(region.base() + region.len() - 1, shift).tag(), meta::NONE);
        }
        assert_eq!(region.slab_at(region.len() - 1), (0, 0));
        let block = region.base() + 1280;
        region.meta_at(block, 10).initialize(3, 256, 9);
        let entry = std::ptr::from_ref(region.meta_at(block, 10)) as usize;
        assert_eq!(entry, std::ptr::from_ref(region.meta_at(region.base() + 1024, 10)) as usize);
        let table_9 = std::ptr::from_ref(region.meta_at(region.base(), 9)) as usize;
        assert!(entry >= table_9 + table_bytes(region.len(), 9), "each shift has its own table");
        region.map_slab(8192, 8192, 5, 17);
        assert_eq!((region.slab_at(8192), region.slab_at(16383), region.slab_at(16384)), ((5, 17), (5, 17), (0, 0)));
        assert_eq!(region.meta_at(block, 10).tag(), meta::tag(FREE, 3, 256));
        assert_eq!(region.offset_of(region.base() + region.len()), None);
        assert_eq!(region.offset_of(region.base() - 1), None);
        assert_eq!(region.offset_of(region.base() + 5), Some(5));
    }
}
