//! The real-program workload under glibc's malloc (`std::alloc::System`).
//! `real-program-system [--quick]` prints one JSON line; `real-program-bench` runs it.

#[global_allocator]
static GLOBAL: std::alloc::System = std::alloc::System;

fn main() -> std::process::ExitCode {
    tensor_arena_real_program::child_main("system")
}
