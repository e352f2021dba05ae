//! The arena: the regions an allocator carves its memory from, and the carving cursor.
//!
//! An arena starts with one region and, without a cap, grows by adding regions (each at
//! least twice the previous one) when a carve does not fit; with a cap (`max_bytes`) it
//! is exactly one region of that size. Carving goes bottom-up through the newest region;
//! the memory it passes over (a chunk-boundary gap, the tail of a region that cannot hold
//! a request) is committed and handed to the caller as a free span, so nothing is lost.
//!
//! Arena offsets name user memory independently of where the OS put each region: region
//! `k` covers offsets `[voff_k, voff_k + len_k)` with `voff_0 = 0` and
//! `voff_{k+1} = voff_k + len_k`. JavaScript holds offsets, never addresses.
//!
//! Invariants: regions are only added (under the pages lock), never removed before the
//! arena is dropped; `count` regions are published (`first` plus `rest[..count - 1]`);
//! `top.region < count`, `top.offset <= len(top.region)`, every region before `top.region`
//! is fully carved; every carved byte is committed.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::config::{AllocatorConfig, round_up};
use crate::error::InitError;
use crate::meta::BlockMeta;
use crate::os;
use crate::region::{CHUNK_SIZE, Region};

/// Most regions an arena grows to (each at least twice the previous: far more than any
/// address space).
const MAX_REGIONS: usize = 24;
/// Smallest first region picked automatically.
const MIN_AUTO_REGION: usize = 1 << 30;
/// Largest first region picked automatically.
const MAX_AUTO_REGION: usize = 64 << 30;

/// Where carving continues. Owned by the pages state, under its lock.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Top {
    region: usize,
    offset: usize,
}

/// Why a carve failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CarveError {
    /// The cap is reached (or the region count limit).
    Full,
    /// The OS refused to reserve or commit more memory (its error number).
    Refused(i32),
}

pub(crate) struct Arena {
    first: Region,
    rest: Box<[OnceLock<Region>]>,
    count: AtomicUsize,
    granule: usize,
    cap: Option<usize>,
}

/// First region size when the configuration leaves it to us: what the machine can commit
/// (memory plus swap), rounded up to a power of two, within 1 GiB ..= 64 GiB. Address
/// space only: nothing is committed until used. Except where committing is charged at once
/// (Windows): a region commits its side tables whole, about half its size, so there the
/// first region is 1 GiB and the arena grows by regions as it needs them.
fn auto_region_bytes() -> usize {
    if os::COMMIT_IS_CHARGED {
        return MIN_AUTO_REGION;
    }
    os::commit_limit().checked_next_power_of_two().unwrap_or(MAX_AUTO_REGION).clamp(MIN_AUTO_REGION, MAX_AUTO_REGION)
}

impl Arena {
    pub(crate) fn new(config: &AllocatorConfig, granule: usize) -> Result<Self, InitError> {
        let first = match config.max_bytes {
            Some(cap) => Region::new(cap, 0, granule)?,
            None if config.region_bytes != 0 => Region::new(round_up(config.region_bytes, CHUNK_SIZE), 0, granule)?,
            None => {
                // Halve on refusal (a low address-space limit) down to the minimum.
                let mut len = auto_region_bytes();
                loop {
                    match Region::new(len, 0, granule) {
                        Ok(region) => break region,
                        Err(e) if len <= MIN_AUTO_REGION / 4 => return Err(e),
                        Err(_) => len /= 2,
                    }
                }
            }
        };
        Ok(Self {
            first,
            rest: (1..MAX_REGIONS).map(|_| OnceLock::new()).collect(),
            count: AtomicUsize::new(1),
            granule,
            cap: config.max_bytes.map(|cap| round_up(cap, granule)),
        })
    }

    /// The first region (the only one of a capped arena).
    pub(crate) const fn first(&self) -> &Region {
        &self.first
    }

    pub(crate) const fn granule(&self) -> usize {
        self.granule
    }

    /// The cap on carved bytes, if any (the configured `max_bytes` rounded up to granules).
    pub(crate) const fn cap(&self) -> Option<usize> {
        self.cap
    }

    /// The region holding `addr` and the offset in it.
    #[inline(always)]
    pub(crate) fn locate(&self, addr: usize) -> Option<(&Region, usize)> {
        match self.first.offset_of(addr) {
            Some(off) => Some((&self.first, off)),
            None if self.count.load(Ordering::Relaxed) == 1 => None,
            None => self.locate_rest(addr),
        }
    }

    #[cold]
    #[inline(never)]
    fn locate_rest(&self, addr: usize) -> Option<(&Region, usize)> {
        self.regions().skip(1).find_map(|r| r.offset_of(addr).map(|off| (r, off)))
    }

    /// The entry of `addr`'s granule in the table of `shift`, if `addr` is arena memory.
    #[inline(always)]
    pub(crate) fn meta_of(&self, addr: usize, shift: u32) -> Option<&BlockMeta> {
        self.locate(addr).map(|(region, _)| region.meta_at(addr, shift))
    }

    /// Every published region, oldest first.
    pub(crate) fn regions(&self) -> impl Iterator<Item = &Region> + '_ {
        let count = self.count.load(Ordering::Acquire);
        std::iter::once(&self.first).chain(self.rest.iter().take(count - 1).filter_map(OnceLock::get))
    }

    fn region(&self, index: usize) -> Option<&Region> {
        if index == 0 { Some(&self.first) } else { self.rest.get(index - 1)?.get() }
    }

    /// Bytes of address space reserved for user memory.
    pub(crate) fn reserved(&self) -> usize {
        self.regions().map(Region::len).sum()
    }

    /// Number of regions.
    pub(crate) fn region_count(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// Bytes carved so far.
    pub(crate) fn carved(&self, top: &Top) -> usize {
        self.regions().take(top.region).map(Region::len).sum::<usize>() + top.offset
    }

    /// Bytes of the newest region not carved yet.
    pub(crate) fn uncarved(&self, top: &Top) -> usize {
        self.region(top.region).map_or(0, |r| r.len() - top.offset)
    }

    /// Bytes of slab map covering the committed memory.
    pub(crate) fn slab_map_bytes(&self) -> usize {
        self.regions().map(Region::slab_map_bytes).sum()
    }

    /// The address of arena offset `voff`, if it is inside a region.
    pub(crate) fn addr_at(&self, voff: usize) -> Option<usize> {
        self.regions().find(|r| voff.wrapping_sub(r.voff()) < r.len()).map(|r| r.base() + (voff - r.voff()))
    }

    /// The arena offset of `addr`, if it is arena memory.
    pub(crate) fn voff_of(&self, addr: usize) -> Option<usize> {
        self.locate(addr).map(|(r, off)| r.voff() + off)
    }

    /// The committed chunk holding arena offset `voff`: its address and length (shorter
    /// than a chunk only at the end of a capped region).
    pub(crate) fn chunk_at(&self, voff: usize) -> Option<(usize, usize)> {
        let region = self.regions().find(|r| voff.wrapping_sub(r.voff()) < r.len())?;
        let start = (voff - region.voff()) / CHUNK_SIZE * CHUNK_SIZE;
        let len = CHUNK_SIZE.min(region.len() - start);
        (start + len <= region.committed()).then(|| (region.base() + start, len))
    }

    /// Carves `len` bytes (a granule multiple) at the top, growing the arena if needed.
    /// With `in_chunk` (`len <= CHUNK_SIZE`) the span does not cross a chunk boundary.
    /// Memory passed over is committed and given to `skipped` as free spans. Called with
    /// the pages lock held (`top` lives there).
    pub(crate) fn carve(
        &self,
        top: &mut Top,
        len: usize,
        in_chunk: bool,
        skipped: &mut dyn FnMut(usize, usize),
    ) -> Result<usize, CarveError> {
        debug_assert!(len.is_multiple_of(self.granule) && (!in_chunk || len <= CHUNK_SIZE));
        loop {
            let region = self.region(top.region).ok_or(CarveError::Full)?;
            let start = if in_chunk && top.offset % CHUNK_SIZE + len > CHUNK_SIZE {
                round_up(top.offset, CHUNK_SIZE)
            } else {
                top.offset
            };
            if let Some(end) = start.checked_add(len).filter(|&end| end <= region.len()) {
                if start > top.offset {
                    // The gap ends a chunk that holds carved memory, so it is committed.
                    skipped(region.base() + top.offset, start - top.offset);
                }
                region.commit_to(end).map_err(CarveError::Refused)?;
                top.offset = end;
                return Ok(region.base() + start);
            }
            if self.cap.is_some() {
                return Err(CarveError::Full);
            }
            self.grow(top, region, len, skipped)?;
        }
    }

    /// The address where carving continues (in the newest region).
    pub(crate) fn top_addr(&self, top: &Top) -> Option<usize> {
        self.region(top.region).map(|region| region.base() + top.offset)
    }

    /// Extends the carve at the top: if carving stopped exactly at `end`, carves the next
    /// `len` bytes (same region, under the cap). Called with the pages lock held.
    pub(crate) fn extend(&self, top: &mut Top, end: usize, len: usize) -> bool {
        let Some(region) = self.region(top.region) else {
            return false;
        };
        let fits = region.base() + top.offset == end && top.offset.checked_add(len).is_some_and(|e| e <= region.len());
        if !fits || region.commit_to(top.offset + len).is_err() {
            return false;
        }
        top.offset += len;
        true
    }

    /// Adds a region able to hold `len` bytes, handing the rest of `current` to `skipped`.
    #[cold]
    fn grow(
        &self,
        top: &mut Top,
        current: &Region,
        len: usize,
        skipped: &mut dyn FnMut(usize, usize),
    ) -> Result<(), CarveError> {
        let index = top.region + 1;
        let slot = self.rest.get(index - 1).ok_or(CarveError::Full)?;
        let size = current.len().saturating_mul(2).max(round_up(len, CHUNK_SIZE));
        let region = Region::new(size, current.voff() + current.len(), self.granule).map_err(|e| match e {
            InitError::MapFailed { errno, .. } => CarveError::Refused(errno),
            InitError::InvalidConfig { .. } => CarveError::Full,
        })?;
        if top.offset < current.len() {
            current.commit_to(current.len()).map_err(CarveError::Refused)?;
            skipped(current.base() + top.offset, current.len() - top.offset);
        }
        slot.set(region).map_err(|_| CarveError::Full)?;
        self.count.store(index + 1, Ordering::Release);
        *top = Top { region: index, offset: 0 };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena(max_bytes: Option<usize>, region_bytes: usize) -> Arena {
        let config = AllocatorConfig { max_bytes, region_bytes, ..AllocatorConfig::default() };
        Arena::new(&config, 4096).unwrap()
    }

    #[test]
    fn a_capped_arena_carves_up_to_its_cap() {
        let a = arena(Some(3 * 4096 + 1), 0);
        let mut top = Top::default();
        let mut none = |_, _| panic!("nothing is skipped");
        let base = a.carve(&mut top, 4096, false, &mut none).unwrap();
        assert_eq!(a.carve(&mut top, 2 * 4096, false, &mut none), Ok(base + 4096));
        assert_eq!(a.carve(&mut top, 2 * 4096, false, &mut none), Err(CarveError::Full));
        assert_eq!(a.carve(&mut top, 4096, false, &mut none), Ok(base + 3 * 4096));
        assert_eq!((a.carved(&top), a.uncarved(&top), a.reserved()), (4 * 4096, 0, 4 * 4096));
        assert!(a.locate(base).is_some() && a.locate(base + 4 * 4096).is_none() && a.locate(base - 1).is_none());
    }

    #[test]
    fn in_chunk_carves_skip_to_the_next_chunk_and_report_the_gap() {
        let a = arena(None, 2 * CHUNK_SIZE);
        let mut top = Top::default();
        let mut gaps = Vec::new();
        let first = a.carve(&mut top, CHUNK_SIZE - 4096, true, &mut |s, l| gaps.push((s, l))).unwrap();
        let second = a.carve(&mut top, 8192, true, &mut |s, l| gaps.push((s, l))).unwrap();
        assert_eq!(second, first + CHUNK_SIZE);
        assert_eq!(gaps, vec![(first + CHUNK_SIZE - 4096, 4096)]);
        assert_eq!(a.chunk_at(0), Some((first, CHUNK_SIZE)));
        assert_eq!(a.chunk_at(CHUNK_SIZE + 5), Some((first + CHUNK_SIZE, CHUNK_SIZE)));
        assert_eq!(a.voff_of(second + 64), Some(CHUNK_SIZE + 64));
        assert_eq!(a.addr_at(CHUNK_SIZE + 64), Some(second + 64));
    }

    #[test]
    fn an_uncapped_arena_grows_by_regions_and_keeps_offsets_contiguous() {
        let a = arena(None, CHUNK_SIZE);
        let mut top = Top::default();
        let mut gaps = Vec::new();
        let small = a.carve(&mut top, 3 << 20, false, &mut |s, l| gaps.push((s, l))).unwrap();
        // 3 MiB more does not fit in the 4 MiB region: a new region of 8 MiB, the 1 MiB tail
        // becomes a free span.
        let big = a.carve(&mut top, 3 << 20, false, &mut |s, l| gaps.push((s, l))).unwrap();
        assert_eq!(a.region_count(), 2);
        assert_eq!(gaps, vec![(small + (3 << 20), 1 << 20)]);
        assert_eq!(a.voff_of(big), Some(CHUNK_SIZE));
        assert_eq!(a.addr_at(CHUNK_SIZE + 100), Some(big + 100));
        assert_eq!(a.reserved(), CHUNK_SIZE + 2 * CHUNK_SIZE);
        assert_eq!(a.carved(&top), CHUNK_SIZE + (3 << 20));
        // A request larger than twice the newest region gets a region of its own size.
        let huge = a.carve(&mut top, 40 << 20, false, &mut |s, l| gaps.push((s, l))).unwrap();
        assert_eq!(a.voff_of(huge), Some(3 * CHUNK_SIZE));
        assert_eq!(a.region_count(), 3);
        assert!(a.locate(huge + (40 << 20) - 1).is_some());
    }
}
