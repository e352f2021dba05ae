//! The real-program workload under tensor-arena's `GlobalAlloc` adapter.
//! `real-program-tensor-arena [--quick]` prints one JSON line; `real-program-bench` runs it.

#[global_allocator]
static GLOBAL: tensor_arena_core::TensorArenaGlobalAlloc = tensor_arena_core::TensorArenaGlobalAlloc::new();

fn main() -> std::process::ExitCode {
    tensor_arena_real_program::child_main("tensor-arena")
}
