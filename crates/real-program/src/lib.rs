//! A real-program benchmark for the core's `GlobalAlloc` adapter (issue 14).
//!
//! One deterministic workload in four phases, each a common shape of Rust program that
//! leans on the heap:
//!
//! - [`json`]: build a ~48 MB JSON document from derived structs, serialize it with
//!   `serde_json`, parse it back (untyped `Value` and typed), compare;
//! - [`regexes`]: generate and compile 1,500 distinct regexes and run each over generated
//!   text (counting matches, collecting captures, replacing);
//! - [`collections`]: 3 M string operations on a `HashMap<String, String>` and a
//!   `BTreeMap<String, u64>` (insert, lookup, remove, formatting, concatenation);
//! - [`parallel`]: a rayon `par_sort` of 2 M generated strings, plus `par_iter` map/collect.
//!
//! Each phase returns a checksum that must not depend on the allocator (nor on the number
//! of rayon threads). The allocator binaries (`real-program-system`, `-mimalloc`,
//! `-jemalloc`, `-tensor-arena`) differ only in their `#[global_allocator]`; they call
//! [`child_main`], which prints one JSON line ([`RunOutput`]). The runner
//! (`real-program-bench`) runs them as child processes and renders [`report`].

pub mod collections;
pub mod json;
pub mod parallel;
pub mod proc_status;
pub mod regexes;
pub mod report;
pub mod rng;

use std::fmt;
use std::process::ExitCode;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The phases, in the order they run.
pub const PHASES: [&str; 4] = ["json", "regex", "collections", "parallel"];

/// Workload sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizes {
    /// Records in the JSON document (~480 bytes each serialized).
    pub json_records: usize,
    /// Distinct regexes compiled and run.
    pub regexes: usize,
    /// Bytes of generated text each regex runs over.
    pub regex_text_bytes: usize,
    /// Map operations.
    pub collection_ops: usize,
    /// Strings sorted in parallel.
    pub parallel_strings: usize,
}

impl Sizes {
    /// The benchmark: a ~48 MB document, 1,500 regexes, 3 M map operations, 2 M strings.
    #[must_use]
    pub const fn full() -> Self {
        Self {
            json_records: 100_000,
            regexes: 1_500,
            regex_text_bytes: 64 * 1024,
            collection_ops: 3_000_000,
            parallel_strings: 2_000_000,
        }
    }

    /// Small sizes for tests (well under a second in a debug build).
    #[must_use]
    pub const fn quick() -> Self {
        Self {
            json_records: 300,
            regexes: 40,
            regex_text_bytes: 4 * 1024,
            collection_ops: 20_000,
            parallel_strings: 20_000,
        }
    }
}

/// What went wrong in a phase or in the runner.
#[derive(Debug)]
pub enum Error {
    /// `serde_json` failed.
    Json(serde_json::Error),
    /// A generated regex did not compile.
    Regex(regex::Error),
    /// A round trip or self-check did not reproduce its input.
    Mismatch(String),
    /// Reading or writing a file, or running a child process.
    Io(String),
    /// Bad command line or report input.
    Invalid(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Json(e) => write!(f, "json: {e}"),
            Self::Regex(e) => write!(f, "regex: {e}"),
            Self::Mismatch(m) => write!(f, "mismatch: {m}"),
            Self::Io(m) => write!(f, "io: {m}"),
            Self::Invalid(m) => write!(f, "invalid: {m}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Self::Json(e)
    }
}

impl From<regex::Error> for Error {
    fn from(e: regex::Error) -> Self {
        Self::Regex(e)
    }
}

/// What a phase computed: its checksum and a short description of the work done.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseResult {
    /// Allocator-independent checksum.
    pub checksum: u64,
    /// Human-readable size of the work, e.g. "48.2 MB document".
    pub work: String,
}

/// One phase's measurement in a child's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseOutput {
    /// Phase name (one of [`PHASES`]).
    pub name: String,
    /// Wall time of the phase, seconds (including freeing what it built).
    pub seconds: f64,
    /// Allocator-independent checksum.
    pub checksum: u64,
    /// The process's peak RSS during the phase, KiB (VmHWM at the phase's end; reset at its
    /// start when `peak_rss_reset` is true, else the peak since the process started).
    pub peak_rss_kib: u64,
    /// Human-readable size of the work.
    pub work: String,
}

/// The one JSON line an allocator binary prints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunOutput {
    /// Allocator name: `system`, `mimalloc`, `jemalloc` or `tensor-arena`.
    pub allocator: String,
    /// Quick (test) sizes?
    pub quick: bool,
    /// Built without optimizations (`debug_assertions` on)?
    pub debug_build: bool,
    /// rayon's thread count (the default pool: one per core).
    pub rayon_threads: usize,
    /// Whether VmHWM could be reset between phases (`/proc/self/clear_refs`).
    pub peak_rss_reset: bool,
    /// Per-phase results, in [`PHASES`] order.
    pub phases: Vec<PhaseOutput>,
    /// Wall time from before the first phase to after the last, seconds.
    pub total_seconds: f64,
    /// The process's CPU time (user + system, all threads) at the end of the last phase.
    pub cpu_seconds: f64,
    /// All phases' checksums combined.
    pub checksum: u64,
    /// Peak RSS of the whole run, KiB (the largest per-phase peak; with resets this is the
    /// VmHWM the process would show without them).
    pub peak_rss_kib: u64,
}

/// Combines checksums order-dependently (SplitMix64 finalizer over a running value).
#[must_use]
pub const fn mix(acc: u64, value: u64) -> u64 {
    rng::splitmix(acc ^ value.wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// FNV-1a of `bytes`.
#[must_use]
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Runs one phase by name.
///
/// # Errors
/// The phase's own errors, or [`Error::Invalid`] for an unknown name.
pub fn run_phase(name: &str, sizes: &Sizes) -> Result<PhaseResult, Error> {
    match name {
        "json" => json::run(sizes.json_records),
        "regex" => regexes::run(sizes.regexes, sizes.regex_text_bytes),
        "collections" => collections::run(sizes.collection_ops),
        "parallel" => parallel::run(sizes.parallel_strings),
        other => Err(Error::Invalid(format!("unknown phase {other}"))),
    }
}

/// Runs every phase, timing each and reading the peak RSS after each.
///
/// # Errors
/// The first phase error.
pub fn run_all(allocator: &str, sizes: &Sizes) -> Result<RunOutput, Error> {
    let mut phases = Vec::with_capacity(PHASES.len());
    let mut reset_ok = true;
    let started = Instant::now();
    for name in PHASES {
        reset_ok &= proc_status::reset_peak_rss();
        let t = Instant::now();
        let result = run_phase(name, sizes)?;
        let seconds = t.elapsed().as_secs_f64();
        let peak = proc_status::peak_rss_kib().unwrap_or(0);
        phases.push(PhaseOutput {
            name: name.to_owned(),
            seconds,
            checksum: result.checksum,
            peak_rss_kib: peak,
            work: result.work,
        });
    }
    let total_seconds = started.elapsed().as_secs_f64();
    let cpu_seconds = proc_status::cpu_seconds().unwrap_or(0.0);
    let checksum = phases.iter().fold(0, |acc, p| mix(acc, p.checksum));
    let peak_rss_kib = phases.iter().map(|p| p.peak_rss_kib).max().unwrap_or(0);
    Ok(RunOutput {
        allocator: allocator.to_owned(),
        quick: sizes == &Sizes::quick(),
        debug_build: cfg!(debug_assertions),
        rayon_threads: rayon::current_num_threads(),
        peak_rss_reset: reset_ok,
        phases,
        total_seconds,
        cpu_seconds,
        checksum,
        peak_rss_kib,
    })
}

/// Entry point of the allocator binaries: `real-program-ALLOC [--quick]` runs the workload
/// and prints one JSON line ([`RunOutput`]) to stdout.
#[must_use]
#[allow(clippy::print_stdout, clippy::print_stderr)] // the allocator binaries' output
pub fn child_main(allocator: &str) -> ExitCode {
    let mut sizes = Sizes::full();
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--quick" => sizes = Sizes::quick(),
            other => {
                eprintln!("usage: real-program-{allocator} [--quick] (unknown argument {other})");
                return ExitCode::from(2);
            }
        }
    }
    let output = run_all(allocator, &sizes).and_then(|out| Ok(serde_json::to_string(&out)?));
    match output {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("real-program-{allocator}: {e}");
            ExitCode::FAILURE
        }
    }
}
