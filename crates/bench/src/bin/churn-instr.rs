//! `churn-instr ALLOCATOR SIZE PAIRS`: `PAIRS` alloc+free pairs of `SIZE` bytes on one
//! thread (the `same_thread_small_churn` loop), after a warm-up of 1,000 pairs, for
//! counting instructions per pair under callgrind (`scripts/instr-per-op.sh` runs it at
//! two pair counts and divides the difference, so start-up and warm-up cancel out).
#![allow(clippy::print_stderr)]

use std::hint::black_box;
use std::process::ExitCode;
use std::sync::Arc;

use tensor_arena_bench::BenchError;
use tensor_arena_bench::subjects::{
    JemallocSubject, MimallocSubject, OrthotopeSubject, OursSubject, Subject, SystemSubject, ThreadCtx,
};

fn churn<S: Subject>(size: usize, pairs: usize) -> Result<(), BenchError> {
    let run = Arc::new(S::new_run()?);
    let mut ctx = S::thread_ctx(&run);
    for _ in 0..1000 {
        let ptr = black_box(ctx.alloc(size)?);
        // SAFETY: `ptr` was just allocated by `ctx` with `size`.
        unsafe { ctx.free(ptr, size)? };
    }
    for _ in 0..pairs {
        let ptr = black_box(ctx.alloc(size)?);
        // SAFETY: as above.
        unsafe { ctx.free(ptr, size)? };
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(name), Some(size), Some(pairs)) = (
        args.first(),
        args.get(1).and_then(|s| s.parse::<usize>().ok()),
        args.get(2).and_then(|s| s.parse::<usize>().ok()),
    ) else {
        eprintln!(
            "usage: churn-instr ALLOCATOR SIZE PAIRS (ALLOCATOR: tensor-arena, orthotope, mimalloc, jemalloc, System)"
        );
        return ExitCode::from(2);
    };
    let result = match name.as_str() {
        n if n == OursSubject::NAME => churn::<OursSubject>(size, pairs),
        n if n == OrthotopeSubject::NAME => churn::<OrthotopeSubject>(size, pairs),
        n if n == MimallocSubject::NAME => churn::<MimallocSubject>(size, pairs),
        n if n == JemallocSubject::NAME => churn::<JemallocSubject>(size, pairs),
        n if n == SystemSubject::NAME => churn::<SystemSubject>(size, pairs),
        other => Err(BenchError::Config(format!("unknown allocator {other}"))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("churn-instr: {e}");
            ExitCode::FAILURE
        }
    }
}
