//! The real-program workload under mimalloc (`mimalloc::MiMalloc`).
//! `real-program-mimalloc [--quick]` prints one JSON line; `real-program-bench` runs it.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tensor_arena_real_program::child_main("mimalloc")
}
