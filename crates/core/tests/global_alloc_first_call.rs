//! With `TensorArenaGlobalAlloc` installed, the very first call into the allocator may
//! be `global_stats()` (a library constructor, or a cdylib such as a Node addon whose
//! first entry point reads stats): building the global allocator then allocates through
//! the adapter itself, which must not deadlock.
//!
//! The probe runs in a child process (this same test binary, re-executed with
//! `PROBE_ENV` set) from an ELF constructor, i.e. before Rust's runtime or any other
//! code has allocated; the parent fails the test if the child does not finish in time.

#![cfg(test)]
#![cfg(target_os = "linux")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tensor_arena_core::{TensorArenaGlobalAlloc, global_stats};

#[global_allocator]
static A: TensorArenaGlobalAlloc = TensorArenaGlobalAlloc::new();

const PROBE_ENV: &str = "TENSOR_ARENA_PROBE_STATS_FIRST";
const PROBE_ENV_C: &[u8] = b"TENSOR_ARENA_PROBE_STATS_FIRST\0";
/// Exit status of a child whose `global_stats()` returned Ok.
const PROBE_OK: i32 = 42;

extern "C" fn probe_before_main() {
    // SAFETY: `getenv` with a NUL-terminated name; it does not allocate.
    let value = unsafe { libc::getenv(PROBE_ENV_C.as_ptr().cast()) };
    if value.is_null() {
        return;
    }
    // SAFETY: a non-null `getenv` result is a NUL-terminated string.
    if unsafe { *value } == b'a' as libc::c_char {
        // Control: an ordinary allocation first builds the global allocator.
        drop(std::hint::black_box(Box::new(1u64)));
    }
    let code = if global_stats().is_ok() { PROBE_OK } else { 3 };
    // SAFETY: ends the child process at once, without running the test harness.
    unsafe { libc::_exit(code) };
}

#[used]
#[unsafe(link_section = ".init_array")]
static PROBE: extern "C" fn() = probe_before_main;

/// Runs the probe in a child; `None` if it did not finish within the time limit.
fn run_probe(value: &str) -> Option<std::process::ExitStatus> {
    let exe = std::env::current_exe().unwrap();
    let mut child =
        Command::new(exe).env(PROBE_ENV, value).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    // Generous: the probe takes milliseconds, but the machine may be loaded (or the test
    // binary run under valgrind); a deadlock never finishes.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn global_stats_after_an_allocation_before_main_works() {
    // Checks the probe itself: the same constructor, with an allocation first.
    let status = run_probe("after-alloc").expect("the control probe hung");
    assert_eq!(status.code(), Some(PROBE_OK), "child: {status}");
}

#[test]
fn global_stats_as_the_first_call_under_the_adapter_does_not_deadlock() {
    let status = run_probe("first").unwrap_or_else(|| {
        panic!("global_stats() as the first allocator call under TensorArenaGlobalAlloc hung (deadlock)")
    });
    assert_eq!(status.code(), Some(PROBE_OK), "child: {status}");
}

#[test]
fn global_stats_after_ordinary_allocations_works() {
    let v = vec![1u8; 100];
    assert!(global_stats().unwrap().allocations_total > 0);
    drop(v);
}
