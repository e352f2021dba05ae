//! Side-by-side benchmark of `tensor-arena-core` against orthotope 0.3.1, mimalloc,
//! jemalloc and the system allocator, all in one process and interleaved run by run.
//!
//! The binary `core-bench` drives it (`npm run bench:core`); the smoke test runs the same
//! code in quick mode.

use std::fmt::{Display, Formatter};
use std::time::Duration;

pub mod chart;
pub mod footprint;
pub mod report;
pub mod subjects;
pub mod workloads;

use footprint::Footprint;
use subjects::{JemallocSubject, MimallocSubject, OrthotopeSubject, OursSubject, Subject, SystemSubject};
use workloads::Workload;

/// Harness error. Running out of memory is its own variant: it is a result, not a crash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BenchError {
    /// The allocator returned out-of-memory (or null).
    OutOfMemory(String),
    /// An allocation or free was rejected, or an allocator could not be built.
    Alloc(String),
    /// A worker thread failed.
    Thread(String),
    /// Bad configuration or filter.
    Config(String),
}

impl Display for BenchError {
    fn fmt(&self, f: &mut Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::OutOfMemory(m) => write!(f, "out of memory: {m}"),
            Self::Alloc(m) | Self::Thread(m) | Self::Config(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for BenchError {}

/// The allocators under test, in report order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SubjectKind {
    /// tensor-arena-core.
    Ours,
    /// orthotope 0.3.1.
    Orthotope,
    /// mimalloc.
    Mimalloc,
    /// jemalloc.
    Jemalloc,
    /// The system allocator.
    System,
}

impl SubjectKind {
    /// All subjects, ours first.
    pub const ALL: [Self; 5] = [Self::Ours, Self::Orthotope, Self::Mimalloc, Self::Jemalloc, Self::System];

    /// Display name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ours => OursSubject::NAME,
            Self::Orthotope => OrthotopeSubject::NAME,
            Self::Mimalloc => MimallocSubject::NAME,
            Self::Jemalloc => JemallocSubject::NAME,
            Self::System => SystemSubject::NAME,
        }
    }

    /// Parses a display name (case-insensitive; "ours" also names tensor-arena).
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        let name = name.trim().to_ascii_lowercase();
        if name == "ours" {
            return Some(Self::Ours);
        }
        Self::ALL.into_iter().find(|s| s.name().eq_ignore_ascii_case(&name))
    }

    /// Runs `workload` once on a fresh allocator; returns the timed duration.
    ///
    /// # Errors
    /// See [`workloads::run`].
    pub fn run(self, workload: &Workload) -> Result<Duration, BenchError> {
        match self {
            Self::Ours => workloads::run::<OursSubject>(workload),
            Self::Orthotope => workloads::run::<OrthotopeSubject>(workload),
            Self::Mimalloc => workloads::run::<MimallocSubject>(workload),
            Self::Jemalloc => workloads::run::<JemallocSubject>(workload),
            Self::System => workloads::run::<SystemSubject>(workload),
        }
    }

    /// Measures the footprint of `workload` in this process.
    ///
    /// # Errors
    /// See [`footprint::measure`].
    pub fn footprint(self, workload: &Workload, copies: usize) -> Result<Footprint, BenchError> {
        match self {
            Self::Ours => footprint::measure::<OursSubject>(workload, copies),
            Self::Orthotope => footprint::measure::<OrthotopeSubject>(workload, copies),
            Self::Mimalloc => footprint::measure::<MimallocSubject>(workload, copies),
            Self::Jemalloc => footprint::measure::<JemallocSubject>(workload, copies),
            Self::System => footprint::measure::<SystemSubject>(workload, copies),
        }
    }
}

/// How much to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// Independent repeats (the reported value is the median of their medians).
    pub repeats: usize,
    /// Unmeasured warm-up runs per allocator and workload, each repeat.
    pub warmups: usize,
    /// Measured runs per allocator and workload, each repeat.
    pub samples: usize,
    /// Iteration divisor applied to every workload (1 = full run).
    pub divisor: u64,
    /// Live buffers per tensor size in the footprint measurement.
    pub copies: usize,
}

impl Plan {
    /// The full benchmark: 3 repeats of 2 warm-ups + 9 measured runs.
    #[must_use]
    pub const fn full() -> Self {
        Self { repeats: 3, warmups: 2, samples: 9, divisor: 1, copies: footprint::TENSOR_COPIES }
    }

    /// Quick mode (`TENSOR_ARENA_BENCH_QUICK=1`, and the smoke test): same shapes, few iterations.
    #[must_use]
    pub const fn quick() -> Self {
        Self { repeats: 1, warmups: 1, samples: 3, divisor: 500, copies: 2 }
    }
}

/// Measured value of one workload x allocator cell.
#[derive(Clone, Debug, PartialEq)]
pub struct Cell {
    /// Workload name.
    pub workload: String,
    /// Allocator.
    pub subject: SubjectKind,
    /// Per repeat: the measured samples (per-operation, in the workload's unit).
    pub samples: Vec<Vec<f64>>,
    /// Set when a run failed; OOM is reported this way too.
    pub failure: Option<BenchError>,
}

impl Cell {
    /// Median of the per-repeat medians, if every repeat has samples and nothing failed.
    #[must_use]
    pub fn value(&self) -> Option<f64> {
        if self.failure.is_some() || self.samples.is_empty() || self.samples.iter().any(Vec::is_empty) {
            return None;
        }
        let medians: Vec<f64> = self.samples.iter().map(|s| median(s)).collect();
        Some(median(&medians))
    }

    /// Per-repeat medians.
    #[must_use]
    pub fn repeat_medians(&self) -> Vec<f64> {
        self.samples.iter().filter(|s| !s.is_empty()).map(|s| median(s)).collect()
    }
}

/// Median (mean of the middle two for an even count); 0 for an empty slice.
#[must_use]
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Per-operation time of one run in the workload's unit.
#[must_use]
pub fn per_op(workload: &Workload, elapsed: Duration) -> f64 {
    workload.unit.scale(elapsed.as_secs_f64() / workload.operations().max(1) as f64)
}

/// Runs every workload for every subject: for each repeat and workload, each allocator
/// gets its warm-ups, then the measured runs go round-robin over the allocators (the
/// starting allocator rotates), so drift and noise hit every allocator alike.
/// `progress` is called after each workload of each repeat.
#[must_use]
pub fn measure_all(
    plan: &Plan,
    workloads: &[Workload],
    subjects: &[SubjectKind],
    mut progress: impl FnMut(usize, &Workload, &[Cell]),
) -> Vec<Cell> {
    let mut cells: Vec<Cell> = workloads
        .iter()
        .flat_map(|w| {
            subjects.iter().map(|&subject| Cell {
                workload: w.name.clone(),
                subject,
                samples: Vec::new(),
                failure: None,
            })
        })
        .collect();
    let n = subjects.len();
    for repeat in 0..plan.repeats {
        for (wi, workload) in workloads.iter().enumerate() {
            let row = &mut cells[wi * n..(wi + 1) * n];
            for cell in row.iter_mut() {
                cell.samples.push(Vec::with_capacity(plan.samples));
                for _ in 0..plan.warmups {
                    if cell.failure.is_none()
                        && let Err(error) = cell.subject.run(workload)
                    {
                        cell.failure = Some(error);
                    }
                }
            }
            for i in 0..plan.samples {
                for j in 0..n {
                    let cell = &mut row[(i + j) % n];
                    if cell.failure.is_some() {
                        continue;
                    }
                    match cell.subject.run(workload) {
                        Ok(elapsed) => {
                            let value = per_op(workload, elapsed);
                            if let Some(last) = cell.samples.last_mut() {
                                last.push(value);
                            }
                        }
                        Err(error) => cell.failure = Some(error),
                    }
                }
            }
            progress(repeat, workload, row);
        }
    }
    cells
}
