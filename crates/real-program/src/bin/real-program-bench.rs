//! `npm run bench:real`: runs the real-program workload once per allocator per round, each
//! in its own process (the `real-program-*` binaries next to this one), the order rotating
//! each round, and prints the medians and ratios as a Markdown section.
//!
//! `real-program-bench [--rounds N] [--quick] [--write]`: `--rounds` (default 5), `--quick`
//! (small sizes, for a smoke run; never written), `--write` (replace the section between
//! the `real-program` markers in BENCHMARK.md).
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use tensor_arena_real_program::report::{self, ALLOCATORS, Meta, Sample};
use tensor_arena_real_program::{Error, proc_status};

const COMMAND: &str = "npm run bench:real";

struct Options {
    rounds: usize,
    quick: bool,
    write: bool,
}

fn options() -> Result<Options, Error> {
    let mut o = Options { rounds: 5, quick: false, write: false };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--write" => o.write = true,
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
    for round in 0..o.rounds {
        for (position, i) in report::rotation(round, ALLOCATORS.len()).into_iter().enumerate() {
            let Some(a) = ALLOCATORS.get(i) else { continue };
            let busy_before = proc_status::machine_busy_seconds();
            let (process_seconds, stdout) = run_child(dir, a.binary, o.quick)?;
            let busy_after = proc_status::machine_busy_seconds();
            let output = report::parse_output(&stdout)?;
            let foreign_cpu_seconds = match (busy_before, busy_after) {
                (Some(b), Some(a)) => (a - b - output.cpu_seconds).max(0.0),
                _ => f64::NAN,
            };
            if output.allocator != a.name {
                return Err(Error::Invalid(format!("{} reported itself as {}", a.binary, output.allocator)));
            }
            eprintln!(
                "round {}/{} {:>12}: {process_seconds:.2} s, peak {} MiB, other processes {foreign_cpu_seconds:.2} CPU s",
                round + 1,
                o.rounds,
                a.name,
                output.peak_rss_kib / 1024
            );
            samples.push(Sample { round, position, process_seconds, foreign_cpu_seconds, output });
        }
    }
    let summary = report::summarize(&samples)?;
    let meta = Meta {
        date: report::utc_date(),
        command: COMMAND.to_owned(),
        wall_seconds: started.elapsed().as_secs_f64(),
        machine: report::machine(),
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
