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
//! lists link entries; an entry's granule is `addr_bias + entry * 2^(k-4)`, and a block
//! starts `sub * 64` bytes into its granule (`sub` is kept in the block's tag).
//!
//! Invariants: `start % 16 == 0`; `len = (region len >> k) * 16`;
//! `bias = start - (base >> k) * 16` and `addr_bias = base - (start << (k - 4))` (wrapping);
//! `base` is a multiple of `2^MAX_SHIFT`.

use crate::meta::BlockMeta;

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

/// One table of a region.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Table {
    start: usize,
    len: usize,
    shift: u32,
    bias: usize,
    addr_bias: usize,
}

impl Table {
    /// The table of `shift` at address `start`, for a region at `base` of `region_len` bytes.
    pub(crate) const fn new(start: usize, base: usize, region_len: usize, shift: u32) -> Self {
        Self {
            start,
            len: table_bytes(region_len, shift),
            shift,
            bias: start.wrapping_sub((base >> shift) << 4),
            addr_bias: base.wrapping_sub(start << (shift - 4)),
        }
    }

    /// Address of the entry of the granule holding `addr` (an address of the region).
    #[inline(always)]
    pub(crate) const fn entry_of(&self, addr: usize) -> usize {
        self.bias.wrapping_add((addr >> self.shift) << 4)
    }

    /// Whether `entry` is an entry of this table.
    #[inline(always)]
    pub(crate) const fn holds(&self, entry: usize) -> bool {
        let index = entry.wrapping_sub(self.start);
        index < self.len && index.is_multiple_of(size_of::<BlockMeta>())
    }

    /// The address of the granule of `entry` (an entry of this table).
    #[inline(always)]
    pub(crate) const fn granule_of(&self, entry: usize) -> usize {
        self.addr_bias.wrapping_add(entry << (self.shift - 4))
    }
}

/// Everything the fast paths need to find one class's metadata in the arena's first
/// region, on one cache line: blocks in later regions take the general path.
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
pub(crate) struct ClassTable {
    table: Table,
    /// `sub` of an address: `(addr >> 6) & sub_mask`.
    sub_mask: usize,
}

impl ClassTable {
    /// The first region's table of a class's shift.
    pub(crate) const fn new(table: Table) -> Self {
        Self { table, sub_mask: (1 << (table.shift - MIN_SHIFT)) - 1 }
    }

    /// The class's granule shift.
    #[inline(always)]
    pub(crate) const fn shift(&self) -> u32 {
        self.table.shift
    }

    /// The entry of `addr`'s granule, for an address already known to lie in the first
    /// region (otherwise the result is no entry of this table).
    #[inline(always)]
    pub(crate) const fn entry_in_region(&self, addr: usize) -> usize {
        self.table.entry_of(addr)
    }

    /// The offset of `addr` in its granule, in 64-byte steps (a tag's `sub`).
    #[inline(always)]
    pub(crate) const fn sub_of(&self, addr: usize) -> u32 {
        ((addr >> MIN_SHIFT) & self.sub_mask) as u32
    }

    /// The address of the block of `entry` (an entry of the first region's table, else
    /// `None`) whose tag records offset `sub`.
    #[inline(always)]
    pub(crate) const fn block_addr(&self, entry: usize, sub: u32) -> Option<usize> {
        if entry.wrapping_sub(self.table.start) < self.table.len {
            Some(self.table.granule_of(entry) + ((sub as usize) << MIN_SHIFT))
        } else {
            None
        }
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
    fn entries_and_granules_are_inverse() {
        let base = 1 << 30;
        let table = Table::new(0x7000_0000, base, 64 << 20, 10);
        for addr in [base, base + 1024, base + 5 * 1024 + 640, base + (64 << 20) - 1] {
            let entry = table.entry_of(addr);
            assert!(table.holds(entry));
            assert_eq!(table.granule_of(entry), addr & !1023);
        }
        assert!(!table.holds(table.entry_of(base) + 8));
        assert!(!table.holds(table.entry_of(base + (64 << 20))));
    }
}
