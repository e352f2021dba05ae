//! Memory footprint of the two tensor workloads: bytes the allocator consumes per live
//! byte. Every page of every live block is written, so resident memory is real; the main
//! binary runs each measurement in a fresh child process so earlier workloads' retained
//! memory does not blur the RSS deltas.

use core::ptr::NonNull;
use std::sync::Arc;

use crate::BenchError;
use crate::subjects::{Subject, ThreadCtx};
use crate::workloads::{CROSS_CLASS_FIRST, Kind, TENSOR_SIZES, Workload, cross_class_counts, fill, release};

/// Live buffers of each tensor size held at once by the footprint measurement.
pub const TENSOR_COPIES: usize = 8;

/// Footprint of one subject on one workload.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes requested and live at the measured point (the largest live set).
    pub live_bytes: u64,
    /// Largest VmRSS growth over the start, at any checkpoint.
    pub peak_rss_delta: u64,
    /// Arena bytes carved at the end (arena allocators only).
    pub carved: Option<u64>,
    /// Arena bytes carved after the first phase (cross-class only).
    pub carved_first: Option<u64>,
    /// Set when the allocator ran out of memory (the message).
    pub oom: Option<String>,
}

impl Footprint {
    /// Serializes to one line, parsed back by [`Footprint::parse`].
    #[must_use]
    pub fn to_line(&self) -> String {
        let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
        format!(
            "FOOTPRINT live={} peak_rss={} carved={} carved_first={} oom={}",
            self.live_bytes,
            self.peak_rss_delta,
            opt(self.carved),
            opt(self.carved_first),
            self.oom.as_deref().map_or_else(|| "-".to_owned(), |m| m.replace(' ', "_")),
        )
    }

    /// Parses the line written by [`Footprint::to_line`] from a child's output.
    #[must_use]
    pub fn parse(output: &str) -> Option<Self> {
        let line = output.lines().find(|l| l.starts_with("FOOTPRINT "))?;
        let mut fp = Self::default();
        for field in line.split_whitespace().skip(1) {
            let (key, value) = field.split_once('=')?;
            let num = || {
                if value == "-" { Ok(None) } else { value.parse::<u64>().map(Some) }
            };
            match key {
                "live" => fp.live_bytes = value.parse().ok()?,
                "peak_rss" => fp.peak_rss_delta = value.parse().ok()?,
                "carved" => fp.carved = num().ok()?,
                "carved_first" => fp.carved_first = num().ok()?,
                "oom" => fp.oom = (value != "-").then(|| value.replace('_', " ")),
                _ => {}
            }
        }
        Some(fp)
    }

    /// Consumed bytes per live byte: arena carved for the arena allocators, peak RSS growth
    /// for the others.
    #[must_use]
    pub fn consumed_per_live(&self) -> f64 {
        let consumed = self.carved.unwrap_or(self.peak_rss_delta);
        consumed as f64 / self.live_bytes.max(1) as f64
    }
}

/// Resident set size of this process in bytes (VmRSS).
#[must_use]
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Writes one byte in every 4 KiB page of the block (and its last byte) so it is resident.
fn touch(ptr: NonNull<u8>, size: usize) {
    let mut offset = 0;
    while offset < size {
        // SAFETY: `offset < size` and the block is live with `size` writable bytes.
        unsafe { ptr.as_ptr().add(offset).write_volatile(1) };
        offset += 4096;
    }
    // SAFETY: `size >= 1` for every request here, so `size - 1` is in bounds.
    unsafe { ptr.as_ptr().add(size - 1).write_volatile(1) };
}

/// Measures the footprint of `workload` for `S` (tensor_sizes and cross_class_reuse only).
/// `copies` = live buffers per tensor size.
///
/// # Errors
/// When a free is rejected or the workload has no footprint measurement. Running out of
/// memory is reported in [`Footprint::oom`], not as an error.
pub fn measure<S: Subject>(workload: &Workload, copies: usize) -> Result<Footprint, BenchError> {
    let run = Arc::new(S::new_run()?);
    let mut ctx = S::thread_ctx(&run);
    let base = rss_bytes();
    let mut peak = 0u64;
    let sample = |peak: &mut u64| *peak = (*peak).max(rss_bytes().saturating_sub(base));
    let carved = |run: &S::Run| S::arena_usage(run).map(|u| u.carved);
    let mut fp = Footprint::default();
    let mut slots = Vec::new();
    match workload.kind {
        Kind::TensorSizes => {
            let mut live = Vec::with_capacity(copies * TENSOR_SIZES.len());
            fp.live_bytes = (copies * TENSOR_SIZES.iter().sum::<usize>()) as u64;
            'outer: for _ in 0..copies {
                for size in TENSOR_SIZES {
                    match ctx.alloc(size) {
                        Ok(ptr) => {
                            touch(ptr, size);
                            live.push((ptr, size));
                        }
                        Err(BenchError::OutOfMemory(message)) => {
                            fp.oom = Some(message);
                            break 'outer;
                        }
                        Err(other) => return Err(other),
                    }
                }
            }
            sample(&mut peak);
            fp.carved = carved(&run);
            for (ptr, size) in live {
                // SAFETY: each entry is a live block allocated above with its size.
                unsafe { ctx.free(ptr, size)? };
            }
        }
        Kind::CrossClassReuse { second } => {
            let (a, b) = cross_class_counts(second);
            fp.live_bytes = (a * CROSS_CLASS_FIRST).max(b * second) as u64;
            let phases = [(CROSS_CLASS_FIRST, a), (second, b)];
            for (phase, (size, count)) in phases.into_iter().enumerate() {
                match fill(&mut ctx, &mut slots, size, count, touch) {
                    Ok(()) => {}
                    Err(BenchError::OutOfMemory(message)) => {
                        fp.oom = Some(message);
                        sample(&mut peak);
                        fp.carved = carved(&run);
                        break;
                    }
                    Err(other) => return Err(other),
                }
                sample(&mut peak);
                if phase == 0 {
                    fp.carved_first = carved(&run);
                } else {
                    fp.carved = carved(&run);
                }
                release(&mut ctx, &mut slots, size)?;
                sample(&mut peak);
            }
        }
        _ => {
            return Err(BenchError::Config(format!("{} has no footprint measurement", workload.name)));
        }
    }
    fp.peak_rss_delta = peak;
    drop(ctx);
    drop(run);
    Ok(fp)
}
