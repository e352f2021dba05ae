//! The runner's parsing, medians, ratios and Markdown on fixed inputs.

use tensor_arena_real_program::report::{self, ALLOCATORS, BEGIN, END, INSERT_BEFORE, Meta, Metric, Sample};
use tensor_arena_real_program::{PHASES, PhaseOutput, RunOutput};

fn output(allocator: &str, scale: f64, peak_kib: u64, checksum: u64) -> RunOutput {
    let phases: Vec<PhaseOutput> = PHASES
        .iter()
        .enumerate()
        .map(|(i, name)| PhaseOutput {
            name: (*name).to_owned(),
            seconds: scale * (i + 1) as f64,
            checksum: checksum + i as u64,
            peak_rss_kib: peak_kib / 4 * (i as u64 + 1),
            work: format!("{name} work"),
        })
        .collect();
    RunOutput {
        allocator: allocator.to_owned(),
        quick: false,
        debug_build: false,
        rayon_threads: 2,
        peak_rss_reset: true,
        total_seconds: phases.iter().map(|p| p.seconds).sum(),
        cpu_seconds: 1.5,
        peak_rss_kib: phases.iter().map(|p| p.peak_rss_kib).max().unwrap_or(0),
        checksum,
        phases,
    }
}

/// 3 rounds; tensor-arena's medians are 2× glibc's time and 1.5× its peak.
fn samples(checksum_of: impl Fn(&str, usize) -> u64) -> Vec<Sample> {
    let base = [("tensor-arena", 2.0, 6_144 * 1024), ("system", 1.0, 4_096 * 1024), ("mimalloc", 0.8, 4_096 * 1024)];
    let mut v = Vec::new();
    for round in 0..3 {
        for (position, i) in report::rotation(round, base.len()).into_iter().enumerate() {
            let (name, scale, peak) = base[i];
            // Round 1 is an outlier the median must ignore.
            let noise = if round == 1 { 10.0 } else { 1.0 + round as f64 * 0.01 };
            v.push(Sample {
                round,
                position,
                process_seconds: 20.0 * scale * noise,
                foreign_cpu_seconds: round as f64 * 0.25,
                output: output(name, scale * noise, peak, checksum_of(name, round)),
            });
        }
    }
    v
}

#[test]
fn median_of_fixed_inputs() {
    assert_eq!(report::median(&[]), None);
    assert_eq!(report::median(&[3.0]), Some(3.0));
    assert_eq!(report::median(&[5.0, 1.0, 3.0]), Some(3.0));
    assert_eq!(report::median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    assert_eq!(report::median(&[9.0, 1.0, 100.0, 2.0, 3.0]), Some(3.0));
    assert_eq!(report::median(&[1.0, f64::NAN]), None);
}

#[test]
fn rotation_puts_everyone_everywhere() {
    assert_eq!(report::rotation(0, 4), vec![0, 1, 2, 3]);
    assert_eq!(report::rotation(1, 4), vec![1, 2, 3, 0]);
    assert_eq!(report::rotation(5, 4), vec![1, 2, 3, 0]);
    for pos in 0..4 {
        let firsts: std::collections::BTreeSet<usize> = (0..4).map(|r| report::rotation(r, 4)[pos]).collect();
        assert_eq!(firsts.len(), 4);
    }
}

#[test]
fn parse_child_output() {
    let line = serde_json::to_string(&output("jemalloc", 1.0, 1024, 7)).unwrap();
    let parsed = report::parse_output(&format!("some log line\n{line}\n\n")).unwrap();
    assert_eq!(parsed, output("jemalloc", 1.0, 1024, 7));
    assert!(report::parse_output("no json here\n").is_err());
    assert!(report::parse_output("{\"allocator\": 1}\n").is_err());
    // The binaries are named after the allocators.
    for a in ALLOCATORS {
        assert_eq!(a.binary, format!("real-program-{}", a.name));
    }
}

#[test]
fn summary_medians_and_ratios() {
    let s = report::summarize(&samples(|_, _| 42)).unwrap();
    assert!(s.mismatches.is_empty());
    assert_eq!(s.rounds, 3);
    assert_eq!(s.orders[1], vec!["system", "mimalloc", "tensor-arena"]);
    assert_eq!(s.allocators.len(), 3);
    let ours = &s.allocators[0];
    assert_eq!(ours.allocator.name, "tensor-arena");
    assert_eq!(ours.runs, 3);
    // Medians of (1.00, 10, 1.02) × the base: the round-2 factor 1.02.
    assert!((ours.process_seconds - 40.0 * 1.02).abs() < 1e-9, "{}", ours.process_seconds);
    assert!((ours.phase_seconds[3] - 8.0 * 1.02).abs() < 1e-9);
    assert_eq!(ours.phase_peak_kib[0], 1_536.0 * 1024.0);
    assert_eq!(ours.peak_kib, 6_144.0 * 1024.0);
    let r = s.ratio("system", Metric::ProcessSeconds).unwrap();
    assert!((r - 2.0).abs() < 1e-9);
    assert!((s.ratio("mimalloc", Metric::PhaseSeconds(0)).unwrap() - 2.5).abs() < 1e-9);
    assert!((s.ratio("system", Metric::Peak).unwrap() - 1.5).abs() < 1e-9);
    assert_eq!(s.ratio("jemalloc", Metric::Peak), None); // jemalloc did not run
    assert_eq!(s.work[2], "collections work");

    let meta = Meta {
        date: "2026-01-02".into(),
        command: "npm run bench:real".into(),
        wall_seconds: 123.0,
        machine: vec![("cores".into(), "2".into())],
        discarded_runs: Some(2),
    };
    let md = report::render(&s, &meta);
    assert!(md.starts_with(BEGIN) && md.trim_end().ends_with(END));
    assert!(md.contains("## Core allocator: a real program"));
    assert!(md.contains("| **process** (spawn → exit) | 40.80 | 20.40 | 16.32 | 2.00× | 2.50× | — |"), "{md}");
    assert!(md.contains("| **whole run** | 6144 | 4096 | 4096 | 1.50× | 1.50× | — |"), "{md}");
    assert!(md.contains("| process wall time ≤ 1.00× glibc's | 2.00× | **not met** |"), "{md}");
    assert!(md.contains("all 9 runs agree"));
    assert!(md.contains("2 threads"));
    assert!(md.contains("This time 2 run(s) were discarded"));
    assert!(!md.contains("Not a measurement"));
    assert!(md.contains("| tensor-arena | 0.00 | 0.25 | 0.50 |"), "{md}");
}

#[test]
fn checksum_disagreement_is_reported() {
    let s = report::summarize(&samples(|name, round| if name == "mimalloc" && round == 2 { 43 } else { 42 })).unwrap();
    assert_eq!(s.mismatches.len(), PHASES.len());
    assert!(s.mismatches[0].starts_with("mimalloc round 3 phase json"));
    let meta = Meta {
        date: String::new(),
        command: String::new(),
        wall_seconds: 0.0,
        machine: Vec::new(),
        discarded_runs: None,
    };
    assert!(report::render(&s, &meta).contains("**Checksums disagree:**"));
    assert!(report::summarize(&[]).is_err());
}

#[test]
fn section_replacement() {
    let section = format!("{BEGIN}\nnew\n{END}\n");
    // Markers present: replaced in place.
    let doc = format!("# B\n\n{BEGIN}\nold\n{END}\n\n{INSERT_BEFORE} x\n");
    assert_eq!(
        report::replace_section(&doc, &section).unwrap(),
        format!("# B\n\n{BEGIN}\nnew\n{END}\n\n{INSERT_BEFORE} x\n")
    );
    // No markers: inserted before the v2-vs-v1 heading.
    let doc = format!("<!-- core:end -->\n\n{INSERT_BEFORE} x\n");
    assert_eq!(
        report::replace_section(&doc, &section).unwrap(),
        format!("<!-- core:end -->\n\n{BEGIN}\nnew\n{END}\n\n{INSERT_BEFORE} x\n")
    );
    // Neither: appended.
    assert_eq!(report::replace_section("# B\n", &section).unwrap(), format!("# B\n\n{BEGIN}\nnew\n{END}\n"));
    // Broken pairs are refused.
    assert!(report::replace_section(&format!("{END}\n{BEGIN}\n"), &section).is_err());
    assert!(report::replace_section(&format!("{BEGIN}\n"), &section).is_err());
}

#[test]
fn proc_parsers() {
    use tensor_arena_real_program::proc_status;
    let status = "Name:\tx\nVmPeak:\t  9999 kB\nVmHWM:\t   1234 kB\nVmRSS:\t  1000 kB\n";
    assert_eq!(proc_status::parse_status_field(status, "VmHWM:"), Some(1234));
    assert_eq!(proc_status::parse_status_field(status, "VmSwap:"), None);
    let stat = "4242 (real prog) R 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 3 0";
    assert_eq!(proc_status::parse_process_cpu(stat), Some(3.0));
    let machine = "cpu  100 10 40 5000 7 3 2 5 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
    assert_eq!(proc_status::parse_machine_busy(machine), Some(1.6));
    // The live process: CPU time and peak RSS can be read.
    assert!(proc_status::cpu_seconds().is_some());
    assert!(proc_status::peak_rss_kib().unwrap_or(0) > 0);
}
