//! `npm run bench:core`: runs every workload for every allocator, prints the tables and
//! rewrites the core section of BENCHMARK.md plus benchmark/core-ratios.svg.
//!
//! Environment: `TENSOR_ARENA_BENCH_WORKLOAD` / `TENSOR_ARENA_BENCH_ALLOCATOR` (exact names,
//! comma-separated; a workload entry ending in `*` is a prefix, e.g. `thread_scaling/*`), `TENSOR_ARENA_BENCH_QUICK=1` (few iterations), `TENSOR_ARENA_BENCH_WRITE`
//! (`1`/`0`: force/skip writing files; default: write only for a full, unfiltered run).
//! `core-bench --footprint WORKLOAD ALLOCATOR` measures one footprint and prints one line
//! (used internally, in a fresh process per measurement).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use tensor_arena_bench::footprint::Footprint;
use tensor_arena_bench::report::{self, Report};
use tensor_arena_bench::workloads::{self, Kind, Workload};
use tensor_arena_bench::{BenchError, Plan, SubjectKind, measure_all};

const COMMAND: &str = "npm run bench:core";

fn env_flag(name: &str) -> Option<bool> {
    std::env::var(name).ok().map(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

fn env_list(name: &str) -> Option<Vec<String>> {
    let value = std::env::var(name).ok()?;
    let items: Vec<String> = value.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
    (!items.is_empty()).then_some(items)
}

fn plan() -> Plan {
    if env_flag("TENSOR_ARENA_BENCH_QUICK") == Some(true) { Plan::quick() } else { Plan::full() }
}

fn has_footprint(w: &Workload) -> bool {
    matches!(w.kind, Kind::TensorSizes | Kind::CrossClassReuse { .. })
}

fn footprint_child(args: &[String]) -> ExitCode {
    let plan = plan();
    let (Some(wname), Some(sname)) = (args.first(), args.get(1)) else {
        eprintln!("usage: core-bench --footprint WORKLOAD ALLOCATOR");
        return ExitCode::from(2);
    };
    let workload = workloads::all(plan.divisor).into_iter().find(|w| &w.name == wname);
    let (Some(workload), Some(subject)) = (workload, SubjectKind::parse(sname)) else {
        eprintln!("unknown workload {wname} or allocator {sname}");
        return ExitCode::from(2);
    };
    match subject.footprint(&workload, plan.copies) {
        Ok(fp) => {
            println!("{}", fp.to_line());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("footprint failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_footprint(workload: &Workload, subject: SubjectKind) -> Result<Footprint, BenchError> {
    let exe = std::env::current_exe().map_err(|e| BenchError::Config(format!("current_exe: {e}")))?;
    let out = Command::new(exe)
        .args(["--footprint", &workload.name, subject.name()])
        .output()
        .map_err(|e| BenchError::Config(format!("spawn footprint child: {e}")))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    Footprint::parse(&stdout).ok_or_else(|| {
        BenchError::Alloc(format!(
            "footprint child failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    })
}

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn csv(r: &Report) -> String {
    let mut s = String::from("workload,allocator,repeat,run,value,unit\n");
    for c in &r.cells {
        let unit = r.workloads.iter().find(|w| w.name == c.workload).map_or("", |w| w.unit.suffix());
        for (ri, runs) in c.samples.iter().enumerate() {
            for (i, v) in runs.iter().enumerate() {
                let _ = writeln!(s, "{},{},{},{},{v:.4},{unit}", c.workload, c.subject.name(), ri + 1, i + 1);
            }
        }
    }
    s
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--footprint") {
        return footprint_child(&args[1..]);
    }
    let started = Instant::now();
    let plan = plan();
    let mut workloads = workloads::all(plan.divisor);
    let mut subjects = SubjectKind::ALL.to_vec();
    let workload_filter = env_list("TENSOR_ARENA_BENCH_WORKLOAD");
    let subject_filter = env_list("TENSOR_ARENA_BENCH_ALLOCATOR");
    if let Some(names) = &workload_filter {
        workloads.retain(|w| {
            names.iter().any(|n| n.strip_suffix('*').map_or(*n == w.name, |prefix| w.name.starts_with(prefix)))
        });
    }
    if let Some(names) = &subject_filter {
        let wanted: Vec<SubjectKind> = names.iter().filter_map(|n| SubjectKind::parse(n)).collect();
        subjects.retain(|s| wanted.contains(s));
    }
    if workloads.is_empty() || subjects.is_empty() {
        let names: Vec<_> = workloads::all(1).into_iter().map(|w| w.name).collect();
        let subs: Vec<_> = SubjectKind::ALL.iter().map(|s| s.name()).collect();
        eprintln!("nothing selected; workloads: {}; allocators: {}", names.join(", "), subs.join(", "));
        return ExitCode::from(2);
    }
    let filtered = workload_filter.is_some() || subject_filter.is_some();
    let write = env_flag("TENSOR_ARENA_BENCH_WRITE").unwrap_or(!filtered && plan.divisor == 1);
    eprintln!(
        "core-bench: {} workloads x {} allocators, {} repeats x ({} warm-up + {} runs){}",
        workloads.len(),
        subjects.len(),
        plan.repeats,
        plan.warmups,
        plan.samples,
        if plan.divisor > 1 { " [quick]" } else { "" }
    );

    let cells = measure_all(&plan, &workloads, &subjects, |repeat, w, row| {
        let mut line = format!(
            "[{:>4.0}s] repeat {}/{} {:<30}",
            started.elapsed().as_secs_f64(),
            repeat + 1,
            plan.repeats,
            w.name
        );
        for c in row {
            let text = match (&c.failure, c.samples.last()) {
                (Some(BenchError::OutOfMemory(_)), _) => "OOM".to_owned(),
                (Some(e), _) => format!("ERROR({e})"),
                (None, Some(s)) if !s.is_empty() => format!("{:.2}", tensor_arena_bench::median(s)),
                _ => "-".to_owned(),
            };
            let _ = write!(line, " {}={text}", c.subject.name());
        }
        eprintln!("{line} {}", w.unit.suffix());
    });

    let mut footprints = Vec::new();
    for w in workloads.iter().filter(|w| has_footprint(w)) {
        for &s in &subjects {
            let fp = run_footprint(w, s);
            match &fp {
                Ok(f) => eprintln!("footprint {} {}: {}", w.name, s.name(), f.to_line()),
                Err(e) => eprintln!("footprint {} {}: {e}", w.name, s.name()),
            }
            footprints.push((w.name.clone(), s, fp));
        }
    }

    let mut command = COMMAND.to_owned();
    for (var, value) in
        [("TENSOR_ARENA_BENCH_WORKLOAD", &workload_filter), ("TENSOR_ARENA_BENCH_ALLOCATOR", &subject_filter)]
    {
        if let Some(v) = value {
            command = format!("{var}={} {command}", v.join(","));
        }
    }
    if plan.divisor > 1 {
        command = format!("TENSOR_ARENA_BENCH_QUICK=1 {command}");
    }
    let report = Report {
        machine: report::machine(),
        command,
        date: report::utc_date(),
        wall_seconds: started.elapsed().as_secs_f64(),
        plan,
        workloads,
        subjects,
        cells,
        footprints,
    };
    let section = report::markdown(&report);
    println!("{section}");

    if write {
        let root = repo_root();
        let dir = root.join("benchmark");
        let result = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(dir.join("core-ratios.svg"), tensor_arena_bench::chart::svg(&report)))
            .and_then(|()| std::fs::write(dir.join("core-results.csv"), csv(&report)))
            .and_then(|()| report::write_section(&root.join("BENCHMARK.md"), &section));
        match result {
            Ok(()) => eprintln!(
                "wrote {}/BENCHMARK.md, benchmark/core-ratios.svg, benchmark/core-results.csv",
                root.display()
            ),
            Err(e) => {
                eprintln!("writing results failed: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        eprintln!("(files not written: filtered or quick run; set TENSOR_ARENA_BENCH_WRITE=1 to force)");
    }
    let errors = report
        .cells
        .iter()
        .filter(|c| matches!(c.failure, Some(ref e) if !matches!(e, BenchError::OutOfMemory(_))))
        .count()
        + report.footprints.iter().filter(|f| f.2.is_err()).count();
    eprintln!("done in {:.0} s", started.elapsed().as_secs_f64());
    if errors > 0 {
        eprintln!("{errors} measurement(s) failed");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
