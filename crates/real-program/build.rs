//! Records the compiler version for the benchmark report.
#![allow(clippy::print_stdout)] // cargo reads build-script directives from stdout
use std::process::Command;

fn main() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| String::from("rustc"));
    let version = Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .map_or_else(|| String::from("unknown"), |v| v.trim().to_owned());
    println!("cargo:rustc-env=TENSOR_ARENA_REAL_RUSTC={version}");
    println!("cargo:rerun-if-env-changed=RUSTC");
}
