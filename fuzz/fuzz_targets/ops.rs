//! Arbitrary operation sequences against the model (see `src/lib.rs`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tensor_arena_fuzz::run(data, false));
