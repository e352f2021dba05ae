//! As `ops`, and arbitrary bytes written over user memory (live, freed and never-issued
//! blocks) between operations: the allocator's metadata is out of band, so nothing
//! changes (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tensor_arena_fuzz::run(data, true));
