//! Smoke test: the harness runs every workload for every allocator in quick mode, the
//! allocators hand out sane pointers, the per-operation math is right, tensor-arena reuses
//! memory across size classes, and the report renders.
#![allow(clippy::unwrap_used)] // helpers outside #[test] fns

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use tensor_arena_bench::footprint;
use tensor_arena_bench::report::{self, Report};
use tensor_arena_bench::subjects::{
    ALIGNMENT, JemallocSubject, MimallocSubject, OrthotopeSubject, OursSubject, Subject, SystemSubject, ThreadCtx,
};
use tensor_arena_bench::workloads::{
    self, CROSS_CLASS_BYTES, Kind, MIXED_SIZES, SCALING_MIN_PER_THREAD, SCALING_PER_THREAD, SCALING_THREADS,
    TENSOR_SIZES,
};
use tensor_arena_bench::{BenchError, Plan, SubjectKind, measure_all, median, per_op};

/// Every size the workloads request, a few copies each, all live at once.
fn check_pointers<S: Subject>() {
    let run = Arc::new(S::new_run().unwrap());
    let mut ctx = S::thread_ctx(&run);
    let mut sizes: Vec<usize> = MIXED_SIZES.to_vec();
    sizes.extend([6_144, 96 << 10, 64 << 10, workloads::LARGE_BYTES, workloads::HANDOFF_BYTES, 1]);
    sizes.extend(TENSOR_SIZES);
    let mut live = Vec::new();
    for round in 0..3u8 {
        for &size in &sizes {
            let ptr = ctx.alloc(size).unwrap();
            assert_eq!(ptr.as_ptr() as usize % ALIGNMENT, 0, "{}: {size} B not 64-aligned", S::NAME);
            // SAFETY: the block is live and `size` bytes long.
            unsafe {
                ptr.as_ptr().write(round);
                ptr.as_ptr().add(size - 1).write(round);
            }
            live.push((ptr, size, round));
        }
    }
    let mut ranges: Vec<(usize, usize)> = live.iter().map(|&(p, s, _)| (p.as_ptr() as usize, s)).collect();
    ranges.sort_unstable();
    let distinct: HashSet<usize> = ranges.iter().map(|r| r.0).collect();
    assert_eq!(distinct.len(), ranges.len(), "{}: duplicate pointers", S::NAME);
    for pair in ranges.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0, "{}: overlapping blocks {pair:?}", S::NAME);
    }
    for (ptr, size, round) in live {
        // SAFETY: still live; written above.
        unsafe {
            assert_eq!(ptr.as_ptr().read(), round);
            assert_eq!(ptr.as_ptr().add(size - 1).read(), round);
            ctx.free(ptr, size).unwrap();
        }
    }
}

#[test]
fn every_subject_returns_distinct_aligned_pointers() {
    check_pointers::<OursSubject>();
    check_pointers::<OrthotopeSubject>();
    check_pointers::<MimallocSubject>();
    check_pointers::<JemallocSubject>();
    check_pointers::<SystemSubject>();
}

#[test]
fn per_operation_math() {
    let all = workloads::all(1);
    let find = |name: &str| all.iter().find(|w| w.name == name).unwrap().clone();
    let churn = find("same_thread_small_churn/32");
    assert_eq!(churn.iterations, 6_000_000);
    assert!((per_op(&churn, Duration::from_millis(60)) - 10.0).abs() < 1e-9, "60 ms / 6M pairs = 10 ns");
    let tensor = find("tensor_sizes");
    assert_eq!(tensor.operations(), tensor.iterations * 5);
    let cross = find("cross_class_reuse/96k");
    assert_eq!(cross.operations(), cross.iterations * (4_096 + 2_731));
    let cross15 = find("cross_class_reuse/1.5m");
    assert_eq!(cross15.operations(), cross15.iterations * (4_096 + 171));
    let large = find("concurrent_large_4x");
    assert!((per_op(&large, Duration::from_millis(120)) - 10.0).abs() < 1e-9, "120 ms / 12,000 pairs = 10 µs");
    for threads in SCALING_THREADS {
        let w = find(&format!("thread_scaling/{threads}"));
        assert_eq!(w.operations(), SCALING_PER_THREAD * threads as u64, "same work per thread at every count");
    }
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    // Quick mode keeps the shapes and splits threaded work evenly.
    for w in workloads::all(Plan::quick().divisor) {
        match w.kind {
            Kind::ConcurrentLarge4x => assert_eq!(w.iterations % 4, 0),
            Kind::Handoff { pairs } => assert_eq!(w.iterations % pairs as u64, 0),
            Kind::ThreadScaling { threads } => {
                assert_eq!(w.iterations, SCALING_MIN_PER_THREAD * threads as u64, "{}", w.name);
            }
            _ => assert!(w.iterations >= 1),
        }
    }
}

#[test]
fn ours_reuses_memory_across_classes_and_orthotope_oom_is_a_result() {
    let all = workloads::all(1);
    let cross: Vec<_> = all.iter().filter(|w| matches!(w.kind, Kind::CrossClassReuse { .. })).collect();
    assert_eq!(cross.len(), 2);
    let limit = (CROSS_CLASS_BYTES as f64 * 1.15) as u64;
    for w in &cross {
        let fp = SubjectKind::Ours.footprint(w, 2).unwrap();
        assert!(fp.oom.is_none(), "{}: {:?}", w.name, fp.oom);
        let (first, end) = (fp.carved_first.unwrap(), fp.carved.unwrap());
        assert!(first >= CROSS_CLASS_BYTES as u64, "{}: phase 1 carved only {first}", w.name);
        assert!(end <= limit, "{}: no cross-class reuse: carved {first} then {end} (limit {limit})", w.name);
        // The timed cycle works too, on a fresh allocator.
        SubjectKind::Ours.run(w).unwrap();
    }
    let fp = SubjectKind::Orthotope.footprint(cross[0], 2).unwrap();
    assert!(fp.carved.unwrap() > 2 * CROSS_CLASS_BYTES as u64, "orthotope never reuses across classes");
    let fp = SubjectKind::Orthotope.footprint(cross[1], 2).unwrap();
    assert!(fp.oom.is_some(), "1.5 MiB blocks take 16 MiB each in orthotope: 1 GiB runs out");
    assert!(matches!(SubjectKind::Orthotope.run(cross[1]), Err(BenchError::OutOfMemory(_))));
    let tensor = all.iter().find(|w| w.kind == Kind::TensorSizes).unwrap();
    let ours = SubjectKind::Ours.footprint(tensor, 2).unwrap();
    let theirs = SubjectKind::Orthotope.footprint(tensor, 2).unwrap();
    assert_eq!(ours.live_bytes, 2 * TENSOR_SIZES.iter().sum::<usize>() as u64);
    assert!(ours.consumed_per_live() >= 1.0 && ours.consumed_per_live() < 1.5, "{ours:?}");
    assert!(theirs.consumed_per_live() > 3.0, "{theirs:?}");
    assert!(footprint::rss_bytes() > 0);
}

#[test]
fn quick_run_of_every_workload_and_report() {
    let plan = Plan { repeats: 1, warmups: 1, samples: 3, ..Plan::quick() };
    let workloads = workloads::all(plan.divisor);
    let names: Vec<&str> = workloads.iter().map(|w| w.name.as_str()).collect();
    for expected in [
        "same_thread_small_churn/65",
        "embedding_batch",
        "long_lived_handoff_4x",
        "tensor_sizes",
        "cross_class_reuse/96k",
        "thread_scaling/1",
        "thread_scaling/2",
        "thread_scaling/4",
        "thread_scaling/8",
    ] {
        assert!(names.contains(&expected), "{expected} missing");
    }
    let mut seen = 0;
    let cells = measure_all(&plan, &workloads, &SubjectKind::ALL, |_, _, row| seen += row.len());
    assert_eq!(seen, workloads.len() * 5);
    for cell in &cells {
        let expected_oom = cell.subject == SubjectKind::Orthotope && cell.workload == "cross_class_reuse/1.5m";
        if expected_oom {
            assert!(matches!(cell.failure, Some(BenchError::OutOfMemory(_))), "{cell:?}");
            continue;
        }
        assert!(cell.failure.is_none(), "{} {}: {:?}", cell.workload, cell.subject.name(), cell.failure);
        assert_eq!(cell.samples.len(), 1);
        assert_eq!(cell.samples[0].len(), 3);
        let value = cell.value().unwrap();
        assert!(value.is_finite() && value > 0.0, "{} {}: {value}", cell.workload, cell.subject.name());
    }
    let tensor = workloads.iter().find(|w| w.kind == Kind::TensorSizes).unwrap();
    let footprints = vec![("tensor_sizes".to_owned(), SubjectKind::Ours, SubjectKind::Ours.footprint(tensor, 1))];
    let r = Report {
        machine: report::machine(),
        command: "test".into(),
        date: report::utc_date(),
        wall_seconds: 1.0,
        plan,
        workloads: workloads.clone(),
        subjects: SubjectKind::ALL.to_vec(),
        cells,
        footprints,
    };
    let md = report::markdown(&r);
    assert!(md.starts_with(report::BEGIN) && md.trim_end().ends_with(report::END));
    assert!(md.contains("| `embedding_batch` |") && md.contains("vs mimalloc") && md.contains("rustc"));
    assert!(md.contains("| `thread_scaling/8` |") && md.contains("### Thread scaling"), "scaling rows and table");
    assert!(md.contains("| tensor-arena ÷ mimalloc (time) |") && md.contains("**No collapse** means"));
    let collapse = r.collapse().unwrap();
    assert_eq!(collapse.points.iter().map(|p| p.0).collect::<Vec<_>>(), [2, 4, 8]);
    let verdict = if collapse.holds { "it **holds**" } else { "it **does not hold**" };
    assert!(md.contains(verdict), "verdict printed");
    let svg = tensor_arena_bench::chart::svg(&r);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    let bars = svg.matches("<rect x=").count();
    let ratios = workloads.iter().flat_map(|w| r.competitors().into_iter().filter_map(|c| r.ratio(&w.name, c))).count();
    assert!(ratios >= workloads.len() * 4 - 1, "every ratio but orthotope's OOM is there");
    assert_eq!(bars, ratios + 4, "one bar per ratio plus 4 legend swatches");

    let path = std::env::temp_dir().join(format!("tensor-arena-bench-{}.md", std::process::id()));
    std::fs::write(&path, "# Benchmarks\n\nnode section\n\n<!-- core:begin -->\nold\n<!-- core:end -->\n\ntail\n")
        .unwrap();
    report::write_section(&path, &md).unwrap();
    report::write_section(&path, &md).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.matches(report::BEGIN).count(), 1);
    assert!(text.contains("node section") && text.contains("\ntail\n") && !text.contains("\nold\n"));
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn thread_scaling_frees_across_threads_and_returns_every_block() {
    for threads in [1, 2, 8] {
        let run = Arc::new(OursSubject::new_run().unwrap());
        workloads::thread_scaling_on::<OursSubject>(&run, threads, 2_048).unwrap();
        let stats = run.stats();
        let pairs = 2_048 * threads as u64;
        assert_eq!((stats.allocations_total, stats.frees_total), (pairs, pairs), "{threads} threads");
        assert_eq!(stats.live_allocations, 0, "{threads} threads: every block freed");
        if threads == 1 {
            assert_eq!(stats.remote_frees_total, 0, "one thread frees its own blocks");
        } else {
            // Every 4th block leaving a window (2,048 - 256 per thread) is freed remotely.
            assert!(stats.remote_frees_total >= 400 * threads as u64, "{threads} threads: {stats:?}");
        }
    }
}
