//! Block tables: where a region keeps the out-of-band metadata of its blocks.
//!
//! A region has one table per *granule shift* `k` in `MIN_SHIFT ..= MAX_SHIFT`: table `k`
//! has one 16-byte [`BlockMeta`] entry per `2^k` bytes of the region. A class uses the
//! table whose granule is the largest power of two not above its block size (capped at
//! 4 KiB: slabs start on page boundaries), so its blocks start in distinct granules and
//! take one or two entries' worth of table each — 16 to 32 bytes per block below 4 KiB,
//! 16 bytes per 4 KiB above it. Blocks are dense in their table, so the table pages a slab
//! touches hold little else: a single 64-byte-granule table would cost a quarter of the
//! data's size for any block up to 16 KiB.
//!
//! The entry of `addr` in table `k` is `bias + (addr >> k) * 16`: a shift and an add. Free
//! lists link block addresses (so a pop hands out the address it took, and a push stores
//! the pointer it was given), and find a block's entry from its address; a block starts
//! `sub` bytes into its granule (`sub` is kept in the block's tag).
//!
//! Invariants: `start % 16 == 0`; `len = (region len >> k) * 16`;
//! `bias = start - (base >> k) * 16` (wrapping); `base` is a multiple of `2^MAX_SHIFT`.

use crate::meta::{self, BlockMeta, LIVE};

/// Shift of the finest table (64-byte granules: the smallest block and alignment).
pub(crate) const MIN_SHIFT: u32 = 6;
/// Shift of the coarsest table (4 KiB granules: slabs start on page boundaries).
pub(crate) const MAX_SHIFT: u32 = 12;
/// Tables per region.
pub(crate) const TABLES: usize = (MAX_SHIFT - MIN_SHIFT + 1) as usize;

/// The table shift of blocks of `stride` bytes: the largest power of two not above the
/// stride, within `MIN_SHIFT ..= MAX_SHIFT`.
pub(crate) const fn shift_for(stride: usize) -> u32 {
    let log = usize::BITS - 1 - stride.leading_zeros();
    if log < MIN_SHIFT {
        MIN_SHIFT
    } else if log > MAX_SHIFT {
        MAX_SHIFT
    } else {
        log
    }
}

/// Table bytes (for a table of `shift`) that cover `len` bytes of a region.
pub(crate) const fn table_bytes(len: usize, shift: u32) -> usize {
    (len >> shift) * size_of::<BlockMeta>()
}

/// One table of a region: where the entry of an address is.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table {
    shift: u32,
    bias: usize,
}

impl Table {
    /// The table of `shift` at address `start`, for a region at `base`.
    pub(crate) const fn new(start: usize, base: usize, shift: u32) -> Self {
        Self { shift, bias: start.wrapping_sub((base >> shift) << 4) }
    }

    /// Address of the entry of the granule holding `addr` (an address of the region).
    #[inline(always)]
    pub(crate) const fn entry_of(&self, addr: usize) -> usize {
        self.bias.wrapping_add((addr >> self.shift) << 4)
    }
}

/// Everything the fast paths need for one class in the arena's first region, on one cache
/// line: where its blocks' entries are, the tag a live block has, and the cache list
/// limit. Blocks in later regions take the general path.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
pub(crate) struct ClassTable {
    /// The first region: `[base, base + len)`.
    base: usize,
    len: usize,
    /// The first region's table of the class's shift: `bias + (addr >> shift) * 16`.
    bias: usize,
    shift: u32,
    /// `tag(LIVE, class, 0)`: a live block at `addr` has tag `live | (addr & sub_mask)`.
    live: u32,
    sub_mask: u32,
    /// Most blocks a thread cache keeps on its list of the class.
    pub(crate) limit: u32,
}

impl ClassTable {
    /// The view of class `class` (`limit`: its cache list limit) in the region at `base` of
    /// `len` bytes whose table of the class's shift is `table`.
    pub(crate) const fn new(table: Table, base: usize, len: usize, class: u8, limit: u32) -> Self {
        Self {
            base,
            len,
            bias: table.bias,
            shift: table.shift,
            live: meta::tag(LIVE, class, 0),
            sub_mask: (1 << table.shift) - 1,
            limit,
        }
    }

    /// The class's granule shift.
    #[inline(always)]
    pub(crate) const fn shift(&self) -> u32 {
        self.shift
    }

    /// The entry of `addr`'s granule, if `addr` lies in the first region.
    #[inline(always)]
    pub(crate) const fn entry(&self, addr: usize) -> Option<usize> {
        if addr.wrapping_sub(self.base) < self.len {
            Some(self.bias.wrapping_add((addr >> self.shift) << 4))
        } else {
            None
        }
    }

    /// The tag of a live block of the class starting at `addr`.
    #[inline(always)]
    pub(crate) const fn live_tag(&self, addr: usize) -> u32 {
        self.live | (addr as u32 & self.sub_mask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifts_follow_the_block_size_within_bounds() {
        assert_eq!(shift_for(64), 6);
        assert_eq!(shift_for(127), 6);
        assert_eq!(shift_for(192), 7);
        assert_eq!(shift_for(1280), 10);
        assert_eq!(shift_for(4096), 12);
        assert_eq!(shift_for(16 << 20), 12);
    }

    #[test]
    fn entries_follow_granules() {
        let base = 1 << 30;
        let table = Table::new(0x7000_0000, base, 10);
        for addr in [base, base + 1024, base + 5 * 1024 + 640, base + (64 << 20) - 1] {
            assert_eq!(table.entry_of(addr), 0x7000_0000 + ((addr - base) >> 10) * 16);
        }
        let class = ClassTable::new(table, base, 64 << 20, 7, 10);
        assert_eq!(class.entry(base + 1024 + 640), Some(table.entry_of(base + 1024)));
        assert_eq!(class.entry(base - 64), None);
        assert_eq!(class.entry(base + (64 << 20)), None);
        assert_eq!(class.live_tag(base + 1024 + 640), meta::tag(LIVE, 7, 640));
    }
}
