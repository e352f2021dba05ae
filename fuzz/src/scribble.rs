//! `scribble`: arbitrary bytes written over user memory between operations (live blocks,
//! their slack, freed blocks, never-issued carved memory); live blocks get their patterns
//! back, so the pattern check still proves the allocator never writes user memory.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Model<'_, '_> {
    /// Writes input bytes over `[start, start + len)` (user memory), then gives the live
    /// and in-flight blocks it reached their patterns back.
    pub(super) fn scribble_range(&mut self, start: usize, len: usize) {
        // The input's bytes, then a pseudo-random continuation seeded by them, as one
        // chunk copied over the range.
        let n = self.range(1, 64);
        let seed = self.u.bytes(n).map(<[u8]>::to_vec).unwrap_or_default();
        let mut word =
            seed.iter().fold(0x9E37_79B9_7F4A_7C15u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
        let mut chunk = seed;
        chunk.resize(4 * KIB + 7, 0);
        for byte in &mut chunk[n.min(4 * KIB)..] {
            word = word.rotate_left(9) ^ 0x9E37_79B9_7F4A_7C15;
            *byte = word as u8;
        }
        let mut offset = 0;
        while offset < len {
            // A different phase per chunk, so the bytes do not repeat every 4 KiB.
            let phase = (offset / (4 * KIB)) % 8;
            let n = (len - offset).min(4 * KIB);
            // SAFETY: `[start, start + len)` is committed user memory of the arena (no
            // Rust reference points into it); the blocks the model holds get their
            // patterns back below.
            unsafe { std::ptr::copy_nonoverlapping(chunk[phase..].as_ptr(), (start as *mut u8).add(offset), n) };
            offset += n;
        }
        let end = start + len;
        let touched: Vec<Block> = self
            .live
            .range(..end)
            .rev()
            .take_while(|&(&k, b)| k + b.size > start)
            .map(|(_, b)| *b)
            .chain(self.pending.iter().map(|p| p.block))
            .collect();
        for b in touched {
            // SAFETY: a block the model holds.
            unsafe { fill(b.ptr, b.size, b.id) };
        }
    }

    pub(super) fn scribble(&mut self) {
        let ranges = self.a.committed_ranges();
        if ranges.is_empty() {
            return;
        }
        let in_committed = |addr: usize, len: usize| {
            ranges.iter().any(|&(base, l)| {
                let b = base.as_ptr() as usize;
                addr >= b && addr + len <= b + l
            })
        };
        match self.byte() % 8 {
            0..=2 => {
                let (base, len) = ranges[self.below(ranges.len())];
                let from = self.below(len);
                let n = self.range(1, 256 * KIB).min(len - from);
                self.scribble_range(base.as_ptr() as usize + from, n);
            }
            3..=4 => {
                // A whole live block, its slack included.
                let Some(key) = self.pick_live() else { return };
                let len = self.a.block_len(nn(key).as_ptr()).unwrap_or(0).min(4 * MIB);
                if in_committed(key, len) {
                    self.scribble_range(key, len);
                }
            }
            5..=6 => {
                // A freed block (maybe handed out again since).
                if self.freed.is_empty() {
                    return;
                }
                let i = self.below(self.freed.len());
                let (ptr, len) = self.freed[i];
                let len = len.min(4 * MIB);
                if in_committed(ptr.as_ptr() as usize, len) {
                    self.scribble_range(ptr.as_ptr() as usize, len);
                }
            }
            _ => {
                // Everything (a few times per input).
                if self.full_scribbles >= 2 {
                    return;
                }
                self.full_scribbles += 1;
                for (base, len) in ranges {
                    self.scribble_range(base.as_ptr() as usize, len);
                }
            }
        }
    }

    // --- checks ---------------------------------------------------------------------
}
