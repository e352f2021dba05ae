//! A real multi-threaded program running with `TensorArenaGlobalAlloc` as the process
//! allocator: 8 threads build Vecs, Strings, HashMaps and BTreeMaps and pass boxes to
//! each other through channels (so they are freed by another thread); the results are
//! checked, and `global_stats()` must show the arena served the allocations and saw
//! remote frees. A `Vec<u8>` grown by pushes to 512 MiB shows that `realloc` resizes in
//! place: the process's peak RSS never holds the old and the new buffer at once.

#![cfg(test)]

use std::collections::{BTreeMap, HashMap};
use std::sync::mpsc::channel;
use std::sync::{Mutex, MutexGuard, PoisonError};

use tensor_arena_core::{TensorArenaGlobalAlloc, global_stats};

#[global_allocator]
static A: TensorArenaGlobalAlloc = TensorArenaGlobalAlloc::new();

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

const THREADS: u64 = 8;
const ITEMS: u64 = 2000;

enum Parcel {
    Bytes(Box<[u8; 1000]>),
    Numbers(Vec<u64>),
    Text(String),
    Map(HashMap<u64, String>),
}

/// What thread `t` builds for item `i`, and the checksum the receiver expects.
fn parcel(t: u64, i: u64) -> (Parcel, u64) {
    let seed = t * 1_000_003 + i;
    match i % 4 {
        0 => (Parcel::Bytes(Box::new([(seed % 251) as u8; 1000])), (seed % 251) * 1000),
        1 => {
            let v: Vec<u64> = (0..(seed % 300)).map(|k| k * seed).collect();
            let sum = v.iter().fold(0u64, |a, &b| a.wrapping_add(b));
            (Parcel::Numbers(v), sum)
        }
        2 => {
            let s = format!("thread {t} item {i} {}", "x".repeat((seed % 500) as usize));
            let len = s.len() as u64;
            (Parcel::Text(s), len)
        }
        _ => {
            let m: HashMap<u64, String> = (0..(seed % 40)).map(|k| (k, k.to_string())).collect();
            let len = m.values().map(|v| v.len() as u64).sum();
            (Parcel::Map(m), len)
        }
    }
}

fn checksum(p: &Parcel) -> u64 {
    match p {
        Parcel::Bytes(b) => b.iter().map(|&x| u64::from(x)).sum(),
        Parcel::Numbers(v) => v.iter().fold(0u64, |a, &b| a.wrapping_add(b)),
        Parcel::Text(s) => s.len() as u64,
        Parcel::Map(m) => m.values().map(|v| v.len() as u64).sum(),
    }
}

/// Local work: a BTreeMap of Strings and a HashMap of Vecs, reduced to a number.
fn local_work(t: u64) -> u64 {
    let mut tree: BTreeMap<u64, String> = BTreeMap::new();
    let mut table: HashMap<String, Vec<u8>> = HashMap::new();
    for i in 0..ITEMS {
        tree.insert(i * THREADS + t, format!("{i:08}"));
        table.entry(format!("k{}", i % 97)).or_default().extend_from_slice(&i.to_le_bytes());
        if i % 3 == 0 {
            tree.remove(&(i / 2 * THREADS + t));
        }
    }
    let tree_sum: u64 = tree.values().map(|s| s.parse::<u64>().unwrap()).sum();
    let table_len: u64 = table.values().map(|v| v.len() as u64).sum();
    tree_sum + table_len
}

fn expected_local_work(t: u64) -> u64 {
    // The same computation with plain arithmetic (no heap).
    let mut present = vec![false; ITEMS as usize];
    for i in 0..ITEMS {
        present[i as usize] = true;
        if i % 3 == 0 {
            present[(i / 2) as usize] = false;
        }
    }
    let _ = t;
    let tree_sum: u64 = (0..ITEMS).filter(|&i| present[i as usize]).sum();
    tree_sum + ITEMS * 8
}

#[test]
fn a_multi_threaded_program_runs_on_the_arena_with_cross_thread_frees() {
    let _serial = serial();
    let before = global_stats().unwrap();
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS).map(|_| channel::<(Parcel, u64)>()).unzip();
    let mut senders: Vec<_> = senders.into_iter().map(Some).collect();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(t, rx)| {
            let tx = senders[(t + 1) % THREADS as usize].take().unwrap();
            std::thread::spawn(move || {
                let t = t as u64;
                for i in 0..ITEMS {
                    tx.send(parcel(t, i)).unwrap();
                }
                drop(tx);
                let local = local_work(t);
                let mut received = 0u64;
                for (p, expected) in rx {
                    assert_eq!(checksum(&p), expected, "a parcel was damaged in transit");
                    received += 1;
                    drop(p); // freed by a thread other than the one that allocated it
                }
                (local, received)
            })
        })
        .collect();
    for (t, h) in handles.into_iter().enumerate() {
        let (local, received) = h.join().unwrap();
        assert_eq!(local, expected_local_work(t as u64));
        assert_eq!(received, ITEMS);
    }
    let after = global_stats().unwrap();
    assert!(after.allocations_total > before.allocations_total + THREADS * ITEMS, "the arena served the program");
    assert!(after.remote_frees_total >= before.remote_frees_total + THREADS * ITEMS / 2, "boxes were freed remotely");
    assert!(after.frees_total > before.frees_total);
    assert_eq!(after.rejected_frees_total, before.rejected_frees_total, "no invalid free");
}

#[repr(align(256))]
struct Aligned([u8; 300]);

#[test]
fn over_aligned_and_large_values_work_under_the_adapter() {
    let _serial = serial();
    let aligned = Box::new(Aligned([7; 300]));
    assert_eq!(&*aligned as *const Aligned as usize % 256, 0);
    assert!(aligned.0.iter().all(|&b| b == 7));
    drop(aligned);
    let before = global_stats().unwrap();
    let big = vec![1u8; 20 << 20];
    assert_eq!(global_stats().unwrap().large_live_allocations, before.large_live_allocations + 1);
    assert_eq!(big.iter().map(|&b| u64::from(b)).sum::<u64>(), 20 << 20);
    drop(big);
    assert_eq!(global_stats().unwrap().large_live_allocations, before.large_live_allocations);
    let mut grown: Vec<u64> = Vec::new();
    for i in 0..3_000_000u64 {
        grown.push(i);
    }
    assert_eq!(grown.iter().sum::<u64>(), 3_000_000 * 2_999_999 / 2);
}

#[test]
fn threads_that_come_and_go_leave_no_cached_blocks() {
    let _serial = serial();
    for round in 0..8 {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let v: Vec<String> = (0..500).map(|i| format!("{round}-{t}-{i}")).collect();
                    v.len()
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 500);
        }
    }
    // Only threads alive now (this one, the harness) may hold cached blocks: far fewer
    // caches than the 32 threads that came and went.
    let stats = global_stats().unwrap();
    assert!(stats.thread_caches < 16, "{} caches still bound", stats.thread_caches);
}

/// A `/proc/self/status` field (`VmRSS`, `VmHWM`) in bytes; `None` where there is none.
fn status_bytes(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The byte at index `i` of the grown vector.
const fn pattern(i: usize) -> u8 {
    (i % 251) as u8
}

#[test]
fn a_vec_grown_by_pushes_to_512_mib_never_holds_its_old_and_new_buffers_at_once() {
    const TARGET: usize = 512 << 20;
    let _serial = serial();
    // Linux >= 4.0: writing 5 resets the peak (VmHWM) to the current RSS.
    let reset = cfg!(target_os = "linux") && std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let rss_before = status_bytes("VmRSS");
    let peak_before = status_bytes("VmHWM");
    let before = global_stats().unwrap();
    let mut v: Vec<u8> = Vec::new();
    let mut moves_above_64_mib = 0;
    let mut last = v.as_ptr();
    for i in 0..TARGET {
        v.push(pattern(i));
        if v.as_ptr() != last {
            // Large blocks (above 16 MiB) grow into the free pages after them.
            moves_above_64_mib += usize::from(v.capacity() > 64 << 20);
            last = v.as_ptr();
        }
    }
    let peak = status_bytes("VmHWM");
    assert_eq!(v.len(), TARGET);
    let during = global_stats().unwrap();
    assert_eq!(during.large_live_allocations, before.large_live_allocations + 1, "the arena holds the vector");
    assert!(during.large_live_bytes >= before.large_live_bytes + TARGET as u64);
    // The contents survived every resize (compared a period of the pattern at a time).
    let period: Vec<u8> = (0..251 * 4096).map(pattern).collect();
    for (k, chunk) in v.chunks(period.len()).enumerate() {
        assert!(chunk == &period[..chunk.len()], "bytes lost in chunk {k} of the grown vector");
    }
    drop(v);
    let after = global_stats().unwrap();
    assert_eq!(after.large_live_allocations, before.large_live_allocations);
    assert_eq!(after.rejected_frees_total, before.rejected_frees_total, "no invalid free");
    let (Some(rss_before), Some(peak_before), Some(peak)) = (rss_before, peak_before, peak) else {
        println!("note: no /proc/self/status (not Linux): peak RSS not checked");
        return;
    };
    let bound = rss_before + TARGET as u64 / 10 * 11;
    if !reset && peak_before > bound {
        println!("note: the peak RSS could not be reset and was {peak_before} bytes already: not checked");
        return;
    }
    assert!(
        peak <= bound,
        "peak RSS {} MiB while growing a 512 MiB vector (RSS before {} MiB, bound {} MiB; {moves_above_64_mib} \
         moves above 64 MiB)",
        peak >> 20,
        rss_before >> 20,
        bound >> 20
    );
}
