//! The runner's side: parsing the children's JSON lines, medians, ratios, the Markdown
//! section and its place in BENCHMARK.md.

use std::fmt::Write as _;

use crate::{Error, PHASES, RunOutput};

/// Start marker of the section this benchmark owns in BENCHMARK.md.
pub const BEGIN: &str = "<!-- real-program:start -->";
/// End marker.
pub const END: &str = "<!-- real-program:end -->";
/// Where a missing section is inserted: before this heading (right after the core section).
pub const INSERT_BEFORE: &str = "## Core v2 against v1";

/// One allocator binary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allocator {
    /// Name in the child's output (`RunOutput::allocator`).
    pub name: &'static str,
    /// Column label.
    pub label: &'static str,
    /// Binary name (next to the runner).
    pub binary: &'static str,
}

/// The allocators, ours first.
pub const ALLOCATORS: [Allocator; 4] = [
    Allocator { name: "tensor-arena", label: "tensor-arena", binary: "real-program-tensor-arena" },
    Allocator { name: "system", label: "glibc (System)", binary: "real-program-system" },
    Allocator { name: "mimalloc", label: "mimalloc", binary: "real-program-mimalloc" },
    Allocator { name: "jemalloc", label: "jemalloc", binary: "real-program-jemalloc" },
];

/// Short labels for the ratio columns.
const RATIO_LABELS: [&str; 3] = ["glibc", "mimalloc", "jemalloc"];

/// The order of round `round` (0-based) over `n` allocators: rotated by one each round, so
/// every allocator runs in every position.
#[must_use]
pub fn rotation(round: usize, n: usize) -> Vec<usize> {
    (0..n).map(|i| (i + round) % n.max(1)).collect()
}

/// The child's [`RunOutput`]: the last line of `stdout` that starts with `{`.
///
/// # Errors
/// [`Error::Invalid`] when there is no such line or it does not parse.
pub fn parse_output(stdout: &str) -> Result<RunOutput, Error> {
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('{'))
        .ok_or_else(|| Error::Invalid("no JSON line in the child's output".into()))?;
    serde_json::from_str(line).map_err(|e| Error::Invalid(format!("child output: {e}")))
}

/// Median (mean of the two middle values for an even count); `None` when empty or NaN.
#[must_use]
pub fn median(values: &[f64]) -> Option<f64> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v.get(mid).copied() } else { Some((v.get(mid - 1)? + v.get(mid)?) / 2.0) }
}

/// One run of one allocator binary, as the runner saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Round (0-based).
    pub round: usize,
    /// Position in the round's order (0-based).
    pub position: usize,
    /// Wall time from spawn to exit, measured by the runner, seconds.
    pub process_seconds: f64,
    /// CPU time the rest of the machine used while the child ran (machine busy time minus
    /// the child's own CPU time), seconds: other processes' interference.
    pub foreign_cpu_seconds: f64,
    /// What the child printed.
    pub output: RunOutput,
}

/// Medians of one allocator's runs.
#[derive(Clone, Debug, PartialEq)]
pub struct AllocatorSummary {
    /// The allocator.
    pub allocator: Allocator,
    /// Runs measured.
    pub runs: usize,
    /// Median spawn-to-exit wall time, seconds.
    pub process_seconds: f64,
    /// Median in-process time of all phases, seconds.
    pub total_seconds: f64,
    /// Median wall time per phase ([`PHASES`] order), seconds.
    pub phase_seconds: Vec<f64>,
    /// Median peak RSS per phase, KiB.
    pub phase_peak_kib: Vec<f64>,
    /// Median peak RSS of the whole run, KiB.
    pub peak_kib: f64,
    /// Every run's spawn-to-exit time, by round.
    pub process_by_round: Vec<f64>,
    /// Every run's foreign CPU time, by round.
    pub foreign_by_round: Vec<f64>,
}

/// Everything the Markdown needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Per allocator, in [`ALLOCATORS`] order (those that ran).
    pub allocators: Vec<AllocatorSummary>,
    /// Checksum disagreements (empty = every run of every allocator agrees on every phase).
    pub mismatches: Vec<String>,
    /// The combined checksum of the first run.
    pub checksum: u64,
    /// The work description of each phase (from the first run).
    pub work: Vec<String>,
    /// rayon threads in the children.
    pub rayon_threads: usize,
    /// Whether the children could reset VmHWM per phase.
    pub peak_rss_reset: bool,
    /// Whether any run used quick sizes or a debug build (then it is no measurement).
    pub not_a_measurement: bool,
    /// Rounds run.
    pub rounds: usize,
    /// Order of each round (allocator names).
    pub orders: Vec<Vec<String>>,
}

fn phase_values(runs: &[&Sample], f: impl Fn(&crate::PhaseOutput) -> f64) -> Vec<f64> {
    PHASES
        .iter()
        .map(|name| {
            let v: Vec<f64> =
                runs.iter().filter_map(|s| s.output.phases.iter().find(|p| p.name == *name).map(&f)).collect();
            median(&v).unwrap_or(f64::NAN)
        })
        .collect()
}

/// Medians per allocator and the checksum check.
///
/// # Errors
/// [`Error::Invalid`] when there are no samples, a sample names an unknown allocator, or a
/// run lacks a phase.
pub fn summarize(samples: &[Sample]) -> Result<Summary, Error> {
    let first = samples.first().ok_or_else(|| Error::Invalid("no samples".into()))?;
    let mut mismatches = Vec::new();
    for s in samples {
        if !ALLOCATORS.iter().any(|a| a.name == s.output.allocator) {
            return Err(Error::Invalid(format!("unknown allocator {}", s.output.allocator)));
        }
        for name in PHASES {
            let (Some(p), Some(q)) =
                (s.output.phases.iter().find(|p| p.name == name), first.output.phases.iter().find(|p| p.name == name))
            else {
                return Err(Error::Invalid(format!("{} round {}: no phase {name}", s.output.allocator, s.round + 1)));
            };
            if p.checksum != q.checksum {
                mismatches.push(format!(
                    "{} round {} phase {name}: {:#018x} (first run: {:#018x})",
                    s.output.allocator,
                    s.round + 1,
                    p.checksum,
                    q.checksum
                ));
            }
        }
    }
    let mut allocators = Vec::new();
    for a in ALLOCATORS {
        let mut runs: Vec<&Sample> = samples.iter().filter(|s| s.output.allocator == a.name).collect();
        if runs.is_empty() {
            continue;
        }
        runs.sort_by_key(|s| s.round);
        let process: Vec<f64> = runs.iter().map(|s| s.process_seconds).collect();
        let total: Vec<f64> = runs.iter().map(|s| s.output.total_seconds).collect();
        let peak: Vec<f64> = runs.iter().map(|s| s.output.peak_rss_kib as f64).collect();
        allocators.push(AllocatorSummary {
            allocator: a,
            runs: runs.len(),
            process_seconds: median(&process).unwrap_or(f64::NAN),
            total_seconds: median(&total).unwrap_or(f64::NAN),
            phase_seconds: phase_values(&runs, |p| p.seconds),
            phase_peak_kib: phase_values(&runs, |p| p.peak_rss_kib as f64),
            peak_kib: median(&peak).unwrap_or(f64::NAN),
            process_by_round: process,
            foreign_by_round: runs.iter().map(|s| s.foreign_cpu_seconds).collect(),
        });
    }
    let rounds = samples.iter().map(|s| s.round + 1).max().unwrap_or(0);
    let orders = (0..rounds)
        .map(|r| {
            let mut in_round: Vec<&Sample> = samples.iter().filter(|s| s.round == r).collect();
            in_round.sort_by_key(|s| s.position);
            in_round.iter().map(|s| s.output.allocator.clone()).collect()
        })
        .collect();
    Ok(Summary {
        allocators,
        mismatches,
        checksum: first.output.checksum,
        work: PHASES
            .iter()
            .map(|n| first.output.phases.iter().find(|p| p.name == *n).map_or_else(String::new, |p| p.work.clone()))
            .collect(),
        rayon_threads: first.output.rayon_threads,
        peak_rss_reset: samples.iter().all(|s| s.output.peak_rss_reset),
        not_a_measurement: samples.iter().any(|s| s.output.quick || s.output.debug_build),
        rounds,
        orders,
    })
}

/// A quantity measured per allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Median wall time of phase `i` ([`PHASES`] order).
    PhaseSeconds(usize),
    /// Median in-process time of all phases.
    TotalSeconds,
    /// Median spawn-to-exit wall time.
    ProcessSeconds,
    /// Median peak RSS of phase `i`.
    PhasePeak(usize),
    /// Median peak RSS of the whole run.
    Peak,
}

impl AllocatorSummary {
    /// The value of `m` (NaN when missing).
    #[must_use]
    pub fn value(&self, m: Metric) -> f64 {
        match m {
            Metric::PhaseSeconds(i) => self.phase_seconds.get(i).copied().unwrap_or(f64::NAN),
            Metric::TotalSeconds => self.total_seconds,
            Metric::ProcessSeconds => self.process_seconds,
            Metric::PhasePeak(i) => self.phase_peak_kib.get(i).copied().unwrap_or(f64::NAN),
            Metric::Peak => self.peak_kib,
        }
    }
}

impl Summary {
    fn get(&self, name: &str) -> Option<&AllocatorSummary> {
        self.allocators.iter().find(|a| a.allocator.name == name)
    }

    /// tensor-arena's value of `m` ÷ `other`'s (`other` = an allocator name).
    #[must_use]
    pub fn ratio(&self, other: &str, m: Metric) -> Option<f64> {
        let ours = self.get("tensor-arena")?.value(m);
        let theirs = self.get(other)?.value(m);
        (theirs > 0.0 && ours.is_finite() && theirs.is_finite()).then(|| ours / theirs)
    }
}

/// Run facts for the section's header.
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// UTC date.
    pub date: String,
    /// The command that produced it.
    pub command: String,
    /// Whole benchmark's wall time, seconds.
    pub wall_seconds: f64,
    /// Machine description.
    pub machine: Vec<(String, String)>,
    /// Runs discarded as disturbed by other processes and repeated (`None`: no retries).
    pub discarded_runs: Option<usize>,
}

/// A table of one value per allocator and round (`cells` formats an allocator's row).
fn by_round(out: &mut String, s: &Summary, cells: impl Fn(&AllocatorSummary) -> Vec<String>) {
    let _ = write!(out, "| allocator |");
    for r in 1..=s.rounds {
        let _ = write!(out, " {r} |");
    }
    let _ = write!(out, "\n| --- |");
    for _ in 0..s.rounds {
        let _ = write!(out, " ---: |");
    }
    out.push('\n');
    for a in &s.allocators {
        let _ = write!(out, "| {} |", a.allocator.label);
        for cell in cells(a) {
            let _ = write!(out, " {cell} |");
        }
        out.push('\n');
    }
}

fn secs(v: f64) -> String {
    if !v.is_finite() {
        "—".into()
    } else if v >= 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn mib(kib: f64) -> String {
    if kib.is_finite() { format!("{:.0}", kib / 1024.0) } else { "—".into() }
}

fn ratio_text(r: Option<f64>) -> String {
    r.map_or_else(|| "—".into(), |r| format!("{r:.2}×"))
}

const OTHERS: [&str; 3] = ["system", "mimalloc", "jemalloc"];

fn table(s: &Summary, out: &mut String, rows: &[(String, Metric)], fmt: fn(f64) -> String) {
    let _ = write!(out, "| |");
    for a in &s.allocators {
        let _ = write!(out, " {} |", a.allocator.label);
    }
    for l in RATIO_LABELS {
        let _ = write!(out, " ÷ {l} |");
    }
    let _ = write!(out, "\n| --- |");
    for _ in 0..s.allocators.len() + RATIO_LABELS.len() {
        let _ = write!(out, " ---: |");
    }
    out.push('\n');
    for (label, m) in rows {
        let _ = write!(out, "| {label} |");
        for a in &s.allocators {
            let _ = write!(out, " {} |", fmt(a.value(*m)));
        }
        for o in OTHERS {
            let _ = write!(out, " {} |", ratio_text(s.ratio(o, *m)));
        }
        out.push('\n');
    }
}

fn goal_row(out: &mut String, goal: &str, r: Option<f64>, limit: f64) {
    let verdict = match r {
        Some(r) if r <= limit => "met",
        Some(_) => "**not met**",
        None => "—",
    };
    let _ = writeln!(out, "| {goal} | {} | {verdict} |", ratio_text(r));
}

/// Renders the whole section, markers included.
#[must_use]
pub fn render(s: &Summary, meta: &Meta) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{BEGIN}");
    let _ = writeln!(out, "## Core allocator: a real program\n");
    let _ = writeln!(
        out,
        "Generated {} by `{}` in {:.0} s. Do not edit by hand: the benchmark rewrites everything between the `real-program` markers.\n",
        meta.date, meta.command, meta.wall_seconds
    );
    if s.not_a_measurement {
        let _ = writeln!(out, "**Not a measurement:** quick sizes or a debug build (a smoke run).\n");
    }
    let _ = writeln!(out, "| machine | |\n| --- | --- |");
    for (k, v) in &meta.machine {
        let _ = writeln!(out, "| {k} | {v} |");
    }
    let work: Vec<String> = PHASES.iter().zip(&s.work).map(|(p, w)| format!("`{p}`: {w}")).collect();
    let _ = writeln!(
        out,
        "\n**Method.** One Rust program (crate `crates/real-program`), compiled four times with the workspace release profile, each binary with its own `#[global_allocator]`: `std::alloc::System` (glibc malloc), `mimalloc::MiMalloc` (0.1.52), `tikv_jemallocator::Jemalloc` (0.7.0) and `tensor_arena_core::TensorArenaGlobalAlloc` (the core's `GlobalAlloc` adapter; the process-global arena with its default configuration). The program runs four deterministic phases: build a JSON document from derived structs, serialize it with serde_json, parse it back as `Value` and as the structs, compare both; generate, compile and run distinct regexes over generated text (count matches, collect captures, `replace_all`); string operations on a `HashMap<String, String>` and a `BTreeMap<String, u64>` (insert, lookup, remove, in-place append, range scans, `format!`, concatenation); a rayon `par_sort` of generated `String`s plus `par_iter` map/collect and `par_chunks` joins. This run: {}. rayon uses its default thread pool: {} threads (one per core). Each phase's time includes freeing what it built. \"Process\" is the wall time from spawn to exit measured by the runner (`real-program-bench`), the figure the goals use; \"all phases\" is the child's own clock around the four phases. Peak RSS is `VmHWM` from `/proc/self/status`{}. Each allocator runs in its own process, one at a time; {} rounds, the order rotating by one each round (alternating runs; every allocator runs first once every four rounds); values are medians over the rounds. Ratios are tensor-arena ÷ the competitor (< 1 = tensor-arena is faster or smaller).\n",
        work.join("; "),
        s.rayon_threads,
        if s.peak_rss_reset {
            ", reset at each phase's start (`5` written to `/proc/self/clear_refs`), so a phase's peak is its own plus whatever the allocator still holds resident from earlier phases; the whole run's peak is the largest phase peak, i.e. the VmHWM the process would end with without the resets"
        } else {
            " (could not be reset between phases: each phase's value is the peak so far)"
        },
        s.rounds,
    );
    match meta.discarded_runs {
        Some(n) => {
            let _ = writeln!(
                out,
                "The machine is shared with other builds, so the runner waits for it to be quiet before each run (other processes below 0.2 of a core for a second, at most 2 minutes), and discards and repeats a run during which other processes used more than 5% of its wall time in CPU (at most 3 tries per run; the last try is kept). This time {n} run(s) were discarded. The CPU time others used during each kept run is listed at the end.\n"
            );
        }
        None => {
            let _ = writeln!(
                out,
                "Runs were not repeated when other processes disturbed them (`--no-retry`); the CPU time others used during each run is listed at the end.\n"
            );
        }
    }
    let _ = writeln!(out, "### Wall time, seconds (median; lower is better)\n");
    let mut rows: Vec<(String, Metric)> =
        PHASES.iter().enumerate().map(|(i, p)| (format!("`{p}`"), Metric::PhaseSeconds(i))).collect();
    rows.push(("all phases".into(), Metric::TotalSeconds));
    rows.push(("**process** (spawn → exit)".into(), Metric::ProcessSeconds));
    table(s, &mut out, &rows, secs);
    let _ = writeln!(out, "\n### Peak RSS, MiB (median; lower is better)\n");
    let mut rows: Vec<(String, Metric)> =
        PHASES.iter().enumerate().map(|(i, p)| (format!("`{p}`"), Metric::PhasePeak(i))).collect();
    rows.push(("**whole run**".into(), Metric::Peak));
    table(s, &mut out, &rows, mib);
    let _ = writeln!(out, "\n### Goals (issue 14)\n");
    let _ = writeln!(out, "| goal | measured | |\n| --- | ---: | --- |");
    goal_row(&mut out, "process wall time ≤ 1.00× glibc's", s.ratio("system", Metric::ProcessSeconds), 1.0);
    goal_row(&mut out, "process wall time ≤ 1.00× mimalloc's", s.ratio("mimalloc", Metric::ProcessSeconds), 1.0);
    goal_row(&mut out, "peak RSS ≤ 1.10× glibc's", s.ratio("system", Metric::Peak), 1.10);
    let _ = writeln!(out, "\n### Every run: process wall time, seconds (by round)\n");
    by_round(&mut out, s, |a| a.process_by_round.iter().map(|v| secs(*v)).collect());
    let _ = writeln!(
        out,
        "\nOther processes' CPU time while each run went on (the machine's busy time from `/proc/stat` minus the child's own CPU time as it read it after its last phase, so its exit, e.g. unmapping its memory, counts here too), core-seconds; the machine is shared, so this shows which runs were disturbed:\n"
    );
    by_round(&mut out, s, |a| a.foreign_by_round.iter().map(|v| format!("{v:.2}")).collect());
    let orders: Vec<String> =
        s.orders.iter().enumerate().map(|(i, o)| format!("{}: {}", i + 1, o.join(" → "))).collect();
    let _ = writeln!(out, "\nOrder of each round: {}.\n", orders.join("; "));
    if s.mismatches.is_empty() {
        let runs: usize = s.allocators.iter().map(|a| a.runs).sum();
        let _ = writeln!(
            out,
            "**Checksums:** all {runs} runs agree on every phase's checksum (combined `{:#018x}`).",
            s.checksum
        );
    } else {
        let _ = writeln!(out, "**Checksums disagree:**\n");
        for m in &s.mismatches {
            let _ = writeln!(out, "- {m}");
        }
    }
    let _ = writeln!(out, "{END}");
    out
}

/// `doc` with the section between [`BEGIN`] and [`END`] replaced by `section` (which
/// includes the markers); without markers, `section` goes before [`INSERT_BEFORE`], or at
/// the end.
///
/// # Errors
/// [`Error::Invalid`] when only one marker is present or they are out of order.
pub fn replace_section(doc: &str, section: &str) -> Result<String, Error> {
    let section = section.trim_end();
    match (doc.find(BEGIN), doc.find(END)) {
        (Some(b), Some(e)) if b < e => {
            let after = e + END.len();
            Ok(format!("{}{section}{}", doc.get(..b).unwrap_or(""), doc.get(after..).unwrap_or("")))
        }
        (None, None) => Ok(match doc.find(INSERT_BEFORE) {
            Some(at) => format!("{}{section}\n\n{}", doc.get(..at).unwrap_or(""), doc.get(at..).unwrap_or("")),
            None => format!("{}\n\n{section}\n", doc.trim_end()),
        }),
        _ => Err(Error::Invalid(format!("BENCHMARK.md has a broken {BEGIN} … {END} pair"))),
    }
}

/// Machine facts and today's date: the core benchmark's (one definition for both reports).
pub use tensor_arena_bench::report::{machine, utc_date};
