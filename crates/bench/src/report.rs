//! BENCHMARK.md core section and the SVG ratio chart.

use std::fmt::Write as _;
use std::path::Path;

use crate::footprint::Footprint;
use crate::workloads::{CROSS_CLASS_BYTES, Kind, SCALING_BATCH, SCALING_REMOTE_EVERY, SCALING_WINDOW, Workload};
use crate::{BenchError, Cell, Plan, SubjectKind};

/// Start marker of the section this benchmark owns in BENCHMARK.md.
pub const BEGIN: &str = "<!-- core:begin -->";
/// End marker.
pub const END: &str = "<!-- core:end -->";

/// "No collapse" in `thread_scaling/N`: tensor-arena's time ratio to mimalloc at any thread
/// count is at most this many times its ratio at 1 thread.
pub const NO_COLLAPSE_FACTOR: f64 = 1.25;

/// The no-collapse check of `thread_scaling/N` against mimalloc.
#[derive(Clone, Debug, PartialEq)]
pub struct Collapse {
    /// Per thread count (above 1): threads, ratio tensor-arena / mimalloc, that ratio ÷ the
    /// 1-thread ratio.
    pub points: Vec<(usize, f64, f64)>,
    /// Every point is within [`NO_COLLAPSE_FACTOR`].
    pub holds: bool,
}

/// Everything one benchmark run produced.
#[derive(Clone, Debug)]
pub struct Report {
    /// Machine description lines.
    pub machine: Vec<(String, String)>,
    /// Command that produced it.
    pub command: String,
    /// UTC date.
    pub date: String,
    /// Wall time of the whole benchmark, seconds.
    pub wall_seconds: f64,
    /// Run plan.
    pub plan: Plan,
    /// Workloads measured.
    pub workloads: Vec<Workload>,
    /// Subjects measured (ours first when present).
    pub subjects: Vec<SubjectKind>,
    /// Timing cells.
    pub cells: Vec<Cell>,
    /// Footprints: workload name, subject, result.
    pub footprints: Vec<(String, SubjectKind, Result<Footprint, BenchError>)>,
}

impl Report {
    /// The cell of `workload` x `subject`.
    #[must_use]
    pub fn cell(&self, workload: &str, subject: SubjectKind) -> Option<&Cell> {
        self.cells.iter().find(|c| c.workload == workload && c.subject == subject)
    }

    /// Time ratio ours / `other` on `workload` (< 1 = ours faster).
    #[must_use]
    pub fn ratio(&self, workload: &str, other: SubjectKind) -> Option<f64> {
        let ours = self.cell(workload, SubjectKind::Ours)?.value()?;
        let theirs = self.cell(workload, other)?.value()?;
        (theirs > 0.0).then(|| ours / theirs)
    }

    /// The `thread_scaling/N` workloads present, by thread count.
    #[must_use]
    pub fn scaling(&self) -> Vec<(usize, &Workload)> {
        self.workloads
            .iter()
            .filter_map(|w| match w.kind {
                Kind::ThreadScaling { threads } => Some((threads, w)),
                _ => None,
            })
            .collect()
    }

    /// The no-collapse check against mimalloc, when the 1-thread ratio and at least one
    /// more thread count were measured for both.
    #[must_use]
    pub fn collapse(&self) -> Option<Collapse> {
        let scaling = self.scaling();
        let base =
            scaling.iter().find(|(t, _)| *t == 1).and_then(|(_, w)| self.ratio(&w.name, SubjectKind::Mimalloc))?;
        let mut points = Vec::new();
        let mut holds = true;
        for (threads, w) in scaling.into_iter().filter(|(t, _)| *t > 1) {
            match self.ratio(&w.name, SubjectKind::Mimalloc) {
                Some(ratio) => {
                    let rel = ratio / base;
                    holds &= rel <= NO_COLLAPSE_FACTOR;
                    points.push((threads, ratio, rel));
                }
                None => holds = false,
            }
        }
        (!points.is_empty()).then_some(Collapse { points, holds })
    }

    /// Competitors present (every subject but ours).
    #[must_use]
    pub fn competitors(&self) -> Vec<SubjectKind> {
        self.subjects.iter().copied().filter(|&s| s != SubjectKind::Ours).collect()
    }
}

/// Machine facts: CPU, cores, OS, kernel, rustc.
#[must_use]
pub fn machine() -> Vec<(String, String)> {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let cpu = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let os = read("/etc/os-release")
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map_or_else(|| std::env::consts::OS.to_owned(), |v| v.trim_matches('"').to_owned());
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or_else(|| "unknown".to_owned(), |kib| format!("{:.1} GiB", kib as f64 / (1u64 << 20) as f64));
    vec![
        ("CPU".into(), cpu),
        ("cores".into(), cores.to_string()),
        ("memory".into(), mem),
        ("OS".into(), format!("{os}, Linux {kernel} ({})", std::env::consts::ARCH)),
        ("rustc".into(), env!("TENSOR_ARENA_BENCH_RUSTC").to_owned()),
    ]
}

/// Today's UTC date as YYYY-MM-DD.
#[must_use]
pub fn utc_date() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    // Civil-from-days (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else if v >= 1.0 {
        format!("{v:.2}")
    } else if v >= 0.1 {
        format!("{v:.3}")
    } else {
        format!("{v:.4}")
    }
}

pub(crate) fn fmt_ratio(r: f64) -> String {
    if r < 0.1 { format!("{r:.3}") } else { format!("{r:.2}") }
}

fn cell_text(cell: Option<&Cell>) -> String {
    match cell {
        None => "—".into(),
        Some(c) => match (&c.failure, c.value()) {
            (Some(BenchError::OutOfMemory(_)), _) => "OOM".into(),
            (Some(_), _) => "error".into(),
            (None, Some(v)) => fmt_value(v),
            (None, None) => "—".into(),
        },
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / f64::from(1u32 << 20))
}

/// Renders the whole core section, markers included.
#[must_use]
pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let comps = r.competitors();
    let _ = writeln!(s, "{BEGIN}\n## Core allocator (Rust, in-process)\n");
    let _ = writeln!(
        s,
        "Generated {} by `{}` (the npm script runs `cargo run -p tensor-arena-bench --release --bin core-bench` from the repository root) in {:.0} s. Do not edit by hand: the benchmark rewrites everything between the `core` markers.\n",
        r.date, r.command, r.wall_seconds
    );
    let _ = writeln!(s, "| machine | |\n| --- | --- |");
    for (k, v) in &r.machine {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    let _ = writeln!(
        s,
        "\n**Method.** All allocators run in one process, interleaved: for each repeat and workload every allocator gets {} warm-up run(s), then {} measured runs go round-robin over the allocators (the starting allocator rotates every round). Value = median of the {} per-repeat medians; a run's value is its wall time ÷ operations. Every request uses `Layout(size, 64)`. System (glibc), mimalloc and jemalloc are `GlobalAlloc` statics called directly (none is the process allocator); orthotope 0.3.1 (crates.io) and tensor-arena run through their instance APIs: a fresh default `Allocator` per run (orthotope: a fixed 1 GiB arena; tensor-arena: no cap, its first region reserved to the machine's memory size and committed 4 MiB at a time), built outside the timed region, one `ThreadCache` per thread, size-checked frees (`deallocate_with_size_checked` / `deallocate_with_size`), caches drained when a thread finishes. Threads and caches are created before a start barrier; joins are timed. Both arena crates are compiled with the workspace release profile (thin LTO, 1 codegen unit, overflow checks off).\n",
        r.plan.warmups, r.plan.samples, r.plan.repeats
    );

    let _ = write!(s, "### Time per operation (lower is better; **bold** = fastest)\n\n| workload | unit / op |");
    for sub in &r.subjects {
        let _ = write!(s, " {} |", sub.name());
    }
    let _ = write!(s, "\n| --- | --- |");
    for _ in &r.subjects {
        let _ = write!(s, " ---: |");
    }
    s.push('\n');
    for w in &r.workloads {
        let best = r.subjects.iter().filter_map(|&x| r.cell(&w.name, x)?.value()).fold(f64::INFINITY, f64::min);
        let _ = write!(s, "| `{}` | {} / {} |", w.name, w.unit.suffix(), w.op);
        for &sub in &r.subjects {
            let cell = r.cell(&w.name, sub);
            let text = cell_text(cell);
            let is_best = cell.and_then(Cell::value).is_some_and(|v| v <= best);
            let _ = write!(s, " {} |", if is_best { format!("**{text}**") } else { text });
        }
        s.push('\n');
    }

    if r.subjects.contains(&SubjectKind::Ours) && !comps.is_empty() {
        let _ =
            write!(s, "\n### Ratio tensor-arena / competitor (time; < 1 means tensor-arena is faster)\n\n| workload |");
        for c in &comps {
            let _ = write!(s, " vs {} |", c.name());
        }
        let _ = write!(s, "\n| --- |");
        for _ in &comps {
            let _ = write!(s, " ---: |");
        }
        s.push('\n');
        let (mut slower, mut close) = (Vec::new(), Vec::new());
        for w in &r.workloads {
            let _ = write!(s, "| `{}` |", w.name);
            for &c in &comps {
                let text = match r.ratio(&w.name, c) {
                    Some(x) => {
                        let entry = format!("`{}` vs {} ({:.3}×)", w.name, c.name(), x);
                        if x > 1.05 {
                            slower.push(entry);
                        } else if x > 1.0 {
                            close.push(entry);
                        }
                        fmt_ratio(x)
                    }
                    None => cell_text(r.cell(&w.name, c).filter(|cell| cell.failure.is_some()))
                        .replace('—', "n/a")
                        .replace("OOM", "they OOM"),
                };
                let _ = write!(s, " {text} |");
            }
            s.push('\n');
        }
        let _ = writeln!(s, "\n![ratio chart](benchmark/core-ratios.svg)\n");
        if slower.is_empty() {
            let _ =
                writeln!(s, "tensor-arena is not more than 5% slower than any competitor on any workload in this run.");
        } else {
            let _ = writeln!(s, "tensor-arena is more than 5% slower on: {}.", slower.join(", "));
        }
        if !close.is_empty() {
            let _ =
                writeln!(s, "\nSlower by at most 5% (within this machine's run-to-run noise): {}.", close.join(", "));
        }
        s.push('\n');
    }

    scaling_table(&mut s, r);
    footprint_tables(&mut s, r);

    let _ = writeln!(
        s,
        "### Spread (per-repeat medians)\n\n| workload | allocator | repeats | min–max of all runs |\n| --- | --- | --- | --- |"
    );
    for c in &r.cells {
        let all: Vec<f64> = c.samples.iter().flatten().copied().collect();
        let (lo, hi) = all.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let meds: Vec<String> = c.repeat_medians().into_iter().map(fmt_value).collect();
        let range = if all.is_empty() { "—".into() } else { format!("{}–{}", fmt_value(lo), fmt_value(hi)) };
        let _ = writeln!(s, "| `{}` | {} | {} | {} |", c.workload, c.subject.name(), meds.join(" / "), range);
    }

    let _ = writeln!(
        s,
        "\n### Iterations per run (scaled to fit 10 minutes on this machine; shapes unchanged)\n\n| workload | here | orthotope's harness |\n| --- | ---: | ---: |"
    );
    for w in &r.workloads {
        let reference = if w.reference_iterations == 0 { "(new)".into() } else { w.reference_iterations.to_string() };
        let _ = writeln!(s, "| `{}` | {} | {} |", w.name, w.iterations, reference);
    }
    let _ = writeln!(
        s,
        "\nThe handoffs run a quarter of orthotope's count to fit the 10-minute budget; the two 20 MiB workloads run 10× more, because 1,200 pairs take about 0.1 ms, which is below this machine's scheduling noise (with 4 threads on 2 cores a run could even finish before the clock started). The handoff counts are total handoffs (split over the 4 pairs in `_4x`); `concurrent_large_4x` is split over its 4 threads. `tensor_sizes` counts one alloc+free pair per size per iteration (5 per iteration); `cross_class_reuse` runs one untimed cycle on the fresh allocator, then times 2 cycles (a cycle = 4,096 pairs of 64 KiB, then 2,731 of 96 KiB or 171 of 1.5 MiB; blocks are not written, as in every timed workload). `heap_churn/N` builds a live heap of N bytes of blocks of 64 B – 64 KiB (untimed), then times pairs of \"free a pseudo-random live block, allocate one of a pseudo-random size\": the same operations on a heap inside one 4 MiB chunk (1m) and on one spread over 64 chunks (256m); both grow with cache misses, for every allocator. Fairness notes inherited from orthotope's harness: System pays glibc's `posix_memalign` path for align 64; the handoff workloads mostly measure the rendezvous channel; arena allocators reuse one warm block in `large_path` while others may map/unmap. `thread_scaling/N` counts total pairs over its N threads (the same per thread at every N; quick mode keeps at least 1,024 per thread so every window fills and blocks cross threads)."
    );
    let _ = writeln!(s, "{END}");
    s
}

fn scaling_table(s: &mut String, r: &Report) {
    let scaling = r.scaling();
    if scaling.is_empty() {
        return;
    }
    let cores = r.machine.iter().find(|(k, _)| k == "cores").and_then(|(_, v)| v.parse::<usize>().ok()).unwrap_or(0);
    let over: Vec<String> =
        scaling.iter().filter(|(t, _)| cores > 0 && *t > cores).map(|(t, _)| t.to_string()).collect();
    let per_thread = scaling.first().map_or(0, |(t, w)| w.iterations / (*t).max(1) as u64);
    let _ = writeln!(
        s,
        "### Thread scaling

`thread_scaling/N`: N threads, each running the same {per_thread} alloc+free pairs on a window of {SCALING_WINDOW} live blocks (sizes 16 B – 64 KiB from a seeded LCG, about 60% up to 256 B; a pseudo-random slot is freed and refilled each time). Every {SCALING_REMOTE_EVERY}th block leaving a window is passed to the next thread (in batches of {SCALING_BATCH} over a bounded channel) and freed there, a remote free (at 1 thread the \"next thread\" is the thread itself, so those frees are local). Throughput in M ops/s (op = alloc+free pair) = all threads' pairs ÷ wall time (the time table's `thread_scaling/N` rows, ns per pair, are its inverse); scaling N/1 = throughput at N threads ÷ the allocator's own 1-thread throughput."
    );
    if !over.is_empty() {
        let _ = writeln!(
            s,
            "\n**{} threads on {cores} cores**: more threads than cores, so they take turns; beyond {cores} threads the ideal is flat throughput, not more.",
            join_and(&over)
        );
    }
    let _ = write!(s, "\n| allocator (M ops/s) |");
    for (t, _) in &scaling {
        let _ = write!(s, " {t} thread{} |", if *t == 1 { "" } else { "s" });
    }
    for (t, _) in scaling.iter().filter(|(t, _)| *t > 1) {
        let _ = write!(s, " scaling {t}/1 |");
    }
    let _ = write!(s, "\n| --- |");
    for _ in &scaling {
        let _ = write!(s, " ---: |");
    }
    for _ in scaling.iter().filter(|(t, _)| *t > 1) {
        let _ = write!(s, " ---: |");
    }
    s.push('\n');
    for &sub in &r.subjects {
        // Values are ns per pair: M pairs/s = 1000 / ns.
        let value = |w: &Workload| r.cell(&w.name, sub).and_then(Cell::value).filter(|v| *v > 0.0);
        let one = scaling.iter().find(|(t, _)| *t == 1).and_then(|(_, w)| value(w));
        let _ = write!(s, "| {} |", sub.name());
        for (_, w) in &scaling {
            let text = value(w).map_or_else(|| cell_text(r.cell(&w.name, sub)), |v| format!("{:.1}", 1_000.0 / v));
            let _ = write!(s, " {text} |");
        }
        for (_, w) in scaling.iter().filter(|(t, _)| *t > 1) {
            let text = match (one, value(w)) {
                (Some(a), Some(b)) => format!("{:.2}×", a / b),
                _ => "—".into(),
            };
            let _ = write!(s, " {text} |");
        }
        s.push('\n');
    }
    if !(r.subjects.contains(&SubjectKind::Ours) && r.subjects.contains(&SubjectKind::Mimalloc)) {
        s.push('\n');
        return;
    }
    let _ = write!(s, "| tensor-arena ÷ mimalloc (time) |");
    for (_, w) in &scaling {
        let _ = write!(s, " {} |", r.ratio(&w.name, SubjectKind::Mimalloc).map_or_else(|| "—".into(), fmt_ratio));
    }
    for _ in scaling.iter().filter(|(t, _)| *t > 1) {
        let _ = write!(s, " |");
    }
    s.push('\n');
    let _ = writeln!(
        s,
        "\n**No collapse** means: tensor-arena's time-per-pair ratio to mimalloc at every thread count is at most {NO_COLLAPSE_FACTOR}× its ratio at 1 thread (it may lose ground as threads are added, but by no more than 25%)."
    );
    match r.collapse() {
        None => {
            let _ = writeln!(s, "Not checked in this run: the 1-thread ratio or every other ratio is missing.");
        }
        Some(c) => {
            let points: Vec<String> = c
                .points
                .iter()
                .map(|(t, ratio, rel)| format!("{t} threads {} ({rel:.2}× the 1-thread ratio)", fmt_ratio(*ratio)))
                .collect();
            let verdict = if c.holds { "holds" } else { "does not hold" };
            let _ = writeln!(s, "In this run it **{verdict}**: {}.", points.join(", "));
        }
    }
    s.push('\n');
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

fn footprint_tables(s: &mut String, r: &Report) {
    if r.footprints.is_empty() {
        return;
    }
    let _ = writeln!(
        s,
        "### Memory footprint\n\nMeasured once per allocator in a fresh child process (`core-bench --footprint WORKLOAD ALLOCATOR`), every page of every live block written. *Consumed* is arena bytes carved for the two arena allocators and VmRSS growth for the others.\n"
    );
    let _ = writeln!(
        s,
        "`tensor_sizes`: {} live buffers of each of 1 MiB+1, 1.5 MiB, 3 MiB, 6 MiB and 12 MiB at once.\n\n| allocator | live MiB | consumed MiB | consumed / live | RSS growth MiB | result |\n| --- | ---: | ---: | ---: | ---: | --- |",
        r.plan.copies
    );
    for (name, sub, fp) in &r.footprints {
        if name != "tensor_sizes" {
            continue;
        }
        match fp {
            Ok(f) => {
                let consumed = f.carved.unwrap_or(f.peak_rss_delta);
                let result = f.oom.as_ref().map_or_else(|| "ok".to_owned(), |_| "OOM".to_owned());
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.2} | {} | {result} |",
                    sub.name(),
                    mib(f.live_bytes),
                    mib(consumed),
                    f.consumed_per_live(),
                    mib(f.peak_rss_delta)
                );
            }
            Err(e) => {
                let _ = writeln!(s, "| {} | | | | | error: {e} |", sub.name());
            }
        }
    }
    let _ = writeln!(
        s,
        "\n`cross_class_reuse`: fill {} MiB with 64 KiB blocks, free them all, then fill {} MiB with blocks of the second class. 1.00 = the second phase reused the first phase's memory; 2.00 = it took new memory.\n\n| workload | allocator | time / pair | arena carved after phase 1 → end (MiB) | carved / 256 MiB | peak RSS growth / 256 MiB | result |\n| --- | --- | ---: | --- | ---: | ---: | --- |",
        CROSS_CLASS_BYTES >> 20,
        CROSS_CLASS_BYTES >> 20
    );
    for w in r.workloads.iter().filter(|w| matches!(w.kind, Kind::CrossClassReuse { .. })) {
        for (name, sub, fp) in r.footprints.iter().filter(|(n, _, _)| *n == w.name) {
            let time = cell_text(r.cell(name, *sub));
            let time = if time.parse::<f64>().is_ok() { format!("{time} ns") } else { time };
            let base = CROSS_CLASS_BYTES as f64;
            match fp {
                Ok(f) => {
                    let carved = match (f.carved_first, f.carved) {
                        (Some(a), Some(b)) => format!("{} → {}", mib(a), mib(b)),
                        (None, Some(b)) => format!("→ {}", mib(b)),
                        _ => "—".into(),
                    };
                    let per = f.carved.map_or_else(|| "—".into(), |c| format!("{:.2}", c as f64 / base));
                    let result = f.oom.as_ref().map_or_else(|| "ok".to_owned(), |_| "OOM (arena exhausted)".to_owned());
                    let _ = writeln!(
                        s,
                        "| `{name}` | {} | {time} | {carved} | {per} | {:.2} | {result} |",
                        sub.name(),
                        f.peak_rss_delta as f64 / base
                    );
                }
                Err(e) => {
                    let _ = writeln!(s, "| `{name}` | {} | {time} | | | | error: {e} |", sub.name());
                }
            }
        }
    }
    s.push('\n');
}

/// Replaces (or appends) the core section of the markdown file at `path`.
///
/// # Errors
/// I/O errors reading or writing the file.
pub fn write_section(path: &Path, section: &str) -> std::io::Result<()> {
    let old = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_owned(),
        Err(e) => return Err(e),
    };
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if b > a => format!("{}{}{}", &old[..a], section.trim_end(), &old[b + END.len()..]),
        _ => format!("{}\n{}", if old.ends_with('\n') { old } else { old + "\n" }, section),
    };
    std::fs::write(path, new)
}
