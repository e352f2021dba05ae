//! The workload in quick mode under the test harness's allocator: every phase succeeds,
//! its checksum is the same on a second run, and the parallel phase's checksum does not
//! depend on rayon's thread count. The allocator binaries, run by the runner in quick mode,
//! agree with each other and with this process.

use std::process::Command;

use tensor_arena_real_program::{PHASES, Sizes, parallel, report, run_all, run_phase};

#[test]
fn phases_are_deterministic() {
    let sizes = Sizes::quick();
    let first = run_all("system", &sizes).unwrap();
    let second = run_all("system", &sizes).unwrap();
    assert!(first.quick);
    assert_eq!(first.phases.len(), PHASES.len());
    for (a, b) in first.phases.iter().zip(&second.phases) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.checksum, b.checksum, "phase {} is not deterministic", a.name);
        assert_eq!(a.work, b.work);
        assert!(a.seconds >= 0.0);
    }
    assert_eq!(first.checksum, second.checksum);
    // Phases are independent: one run alone gives the same checksum as in the sequence.
    let regex = run_phase("regex", &sizes).unwrap();
    assert_eq!(Some(regex.checksum), first.phases.iter().find(|p| p.name == "regex").map(|p| p.checksum));
    assert!(run_phase("nope", &sizes).is_err());
}

#[test]
fn parallel_checksum_ignores_thread_count() {
    let count = Sizes::quick().parallel_strings;
    let default_pool = parallel::run(count).unwrap();
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let single = one.install(|| parallel::run(count)).unwrap();
    let three = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
    let triple = three.install(|| parallel::run(count)).unwrap();
    assert_eq!(default_pool.checksum, single.checksum);
    assert_eq!(default_pool.checksum, triple.checksum);
}

#[test]
fn allocator_binaries_agree() {
    // The runner finds the four allocator binaries next to itself (target/<profile>/).
    let out = Command::new(env!("CARGO_BIN_EXE_real-program-bench"))
        .args(["--quick", "--rounds", "1", "--no-retry"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "runner failed: {}\n{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(report::BEGIN) && stdout.contains(report::END));
    assert!(stdout.contains("all 4 runs agree"), "{stdout}");
    assert!(stdout.contains("Not a measurement"), "{stdout}");
    // And they agree with this process (another allocator again: the harness's System).
    let ours = run_all("system", &Sizes::quick()).unwrap();
    assert!(stdout.contains(&format!("{:#018x}", ours.checksum)), "{stdout}");
}
