//! `npm run bench:real`: runs the real-program workload once per allocator per round, each
//! in its own process (the `real-program-*` binaries next to this one), the order rotating
//! each round, and prints the medians and ratios as a Markdown section.
//!
//! `real-program-bench [--rounds N] [--quick] [--write] [--no-retry]`: `--rounds` (default
//! 5), `--quick` (small sizes, for a smoke run; never written), `--write` (replace the
//! section between the `real-program` markers in BENCHMARK.md).
//!
//! The machine may be shared: before each run the runner waits (up to 2 minutes) until the
//! other processes use less than 0.2 of a core, and a run during which they used more than
//! 5% of its wall time in CPU is discarded and repeated (at most 3 tries per run, at most
//! 20 minutes of waiting in all; `--no-retry` turns both off). What the others used during
//! every kept run is in the report.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use tensor_arena_real_program::report::{self, ALLOCATORS, Allocator, Meta, Sample};
use tensor_arena_real_program::{Error, proc_status};

const COMMAND: &str = "npm run bench:real";

/// A run is disturbed when other processes used more CPU time than this share of its wall time.
const DISTURBED: f64 = 0.05;
/// Tries per run.
const TRIES: usize = 3;
/// Longest wait for a quiet machine before one run, and in all.
const WAIT_ONE: Duration = Duration::from_secs(120);
const WAIT_ALL: Duration = Duration::from_secs(1200);

struct Options {
    rounds: usize,
    quick: bool,
    write: bool,
    retry: bool,
}

fn options() -> Result<Options, Error> {
    let mut o = Options { rounds: 5, quick: false, write: false, retry: true };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--write" => o.write = true,
            "--no-retry" => o.retry = false,
            "--rounds" => {
                o.rounds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Error::Invalid("--rounds needs a positive number".into()))?;
            }
            other => return Err(Error::Invalid(format!("unknown argument {other}"))),
        }
    }
    Ok(o)
}

fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.ancestors().nth(2).map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn run_child(dir: &Path, binary: &str, quick: bool) -> Result<(f64, String), Error> {
    let path = dir.join(binary);
    let mut cmd = Command::new(&path);
    if quick {
        cmd.arg("--quick");
    }
    let started = Instant::now();
    let out = cmd.output().map_err(|e| Error::Io(format!("run {}: {e}", path.display())))?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(Error::Io(format!(
            "{binary} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok((seconds, String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// Sleeps until the rest of the machine used less than 0.2 of a core over one second, or
/// `limit` passed.
fn wait_quiet(limit: Duration) {
    let started = Instant::now();
    while started.elapsed() < limit {
        let (Some(before), cpu_before) = (proc_status::machine_busy_seconds(), proc_status::cpu_seconds()) else {
            return;
        };
        std::thread::sleep(Duration::from_secs(1));
        let (Some(after), cpu_after) = (proc_status::machine_busy_seconds(), proc_status::cpu_seconds()) else {
            return;
        };
        let ours = cpu_after.unwrap_or(0.0) - cpu_before.unwrap_or(0.0);
        if after - before - ours < 0.2 {
            return;
        }
    }
}

/// One run of one allocator binary, with the CPU time the rest of the machine used meanwhile.
fn run_once(dir: &Path, a: Allocator, quick: bool, round: usize, position: usize) -> Result<Sample, Error> {
    let busy_before = proc_status::machine_busy_seconds();
    let (process_seconds, stdout) = run_child(dir, a.binary, quick)?;
    let busy_after = proc_status::machine_busy_seconds();
    let output = report::parse_output(&stdout)?;
    if output.allocator != a.name {
        return Err(Error::Invalid(format!("{} reported itself as {}", a.binary, output.allocator)));
    }
    let foreign_cpu_seconds = match (busy_before, busy_after) {
        (Some(b), Some(after)) => (after - b - output.cpu_seconds).max(0.0),
        _ => f64::NAN,
    };
    Ok(Sample { round, position, process_seconds, foreign_cpu_seconds, output })
}

fn run() -> Result<bool, Error> {
    let o = options()?;
    let started = Instant::now();
    let exe = std::env::current_exe().map_err(|e| Error::Io(format!("current_exe: {e}")))?;
    let dir = exe.parent().ok_or_else(|| Error::Io("the runner has no directory".into()))?;
    for a in ALLOCATORS {
        if !dir.join(a.binary).is_file() {
            return Err(Error::Io(format!(
                "{} is missing next to the runner: cargo build --release -p tensor-arena-real-program --bins",
                a.binary
            )));
        }
    }
    let mut samples = Vec::new();
    let mut discarded = 0;
    let mut waited = Duration::ZERO;
    for round in 0..o.rounds {
        for (position, i) in report::rotation(round, ALLOCATORS.len()).into_iter().enumerate() {
            let Some(a) = ALLOCATORS.get(i) else { continue };
            let tries = if o.retry { TRIES } else { 1 };
            for attempt in 1..=tries {
                if o.retry && waited < WAIT_ALL {
                    let t = Instant::now();
                    wait_quiet(WAIT_ONE.min(WAIT_ALL - waited));
                    waited += t.elapsed();
                }
                let sample = run_once(dir, *a, o.quick, round, position)?;
                let disturbed = sample.foreign_cpu_seconds > DISTURBED * sample.process_seconds;
                eprintln!(
                    "round {}/{} {:>12}: {:.2} s, peak {} MiB, other processes {:.2} CPU s{}",
                    round + 1,
                    o.rounds,
                    a.name,
                    sample.process_seconds,
                    sample.output.peak_rss_kib / 1024,
                    sample.foreign_cpu_seconds,
                    if disturbed && attempt < tries { " (disturbed: discarded, repeating)" } else { "" }
                );
                if disturbed && attempt < tries {
                    discarded += 1;
                    continue;
                }
                samples.push(sample);
                break;
            }
        }
    }
    let summary = report::summarize(&samples)?;
    let meta = Meta {
        date: report::utc_date(),
        command: COMMAND.to_owned(),
        wall_seconds: started.elapsed().as_secs_f64(),
        machine: report::machine(),
        discarded_runs: o.retry.then_some(discarded),
    };
    let section = report::render(&summary, &meta);
    println!("{section}");
    let agree = summary.mismatches.is_empty();
    if o.write {
        if o.quick {
            eprintln!("--quick: BENCHMARK.md not written");
        } else if !agree {
            eprintln!("checksums disagree: BENCHMARK.md not written");
        } else {
            let path = repo_root().join("BENCHMARK.md");
            let doc = std::fs::read_to_string(&path).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
            let new = report::replace_section(&doc, &section)?;
            std::fs::write(&path, new).map_err(|e| Error::Io(format!("{}: {e}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(agree)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("real-program-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
