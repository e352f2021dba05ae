//! The real-program workload under jemalloc (`tikv_jemallocator::Jemalloc`).
//! `real-program-jemalloc [--quick]` prints one JSON line; `real-program-bench` runs it.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> std::process::ExitCode {
    tensor_arena_real_program::child_main("jemalloc")
}
