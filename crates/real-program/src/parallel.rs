//! Phase 4 (multi-threaded, rayon's default pool): generate strings in parallel, `par_sort`
//! them, then `par_iter` map/collect and a parallel reduction. Strings allocated on one
//! worker are freed on another or on the main thread.

use rayon::prelude::*;

use crate::rng::{WORDS, splitmix};
use crate::{Error, PhaseResult, fnv, mix};

fn string(i: u64) -> String {
    let h = splitmix(i ^ 0x15_0005);
    let word = WORDS.get((h % 64) as usize).copied().unwrap_or("");
    match (h >> 6) % 4 {
        0 => format!("{word}-{:016x}", h >> 8),
        1 => format!("{word}/{}/{}", (h >> 10) % 1000, i),
        2 => format!("{}{word}{}", (h >> 20) % 10, (h >> 24) % 100_000),
        _ => format!("{word}.{word}.{:x}", h >> 40),
    }
}

/// Runs the phase over `count` strings.
///
/// # Errors
/// [`Error::Mismatch`] when the sort's output is not sorted.
pub fn run(count: usize) -> Result<PhaseResult, Error> {
    let mut strings: Vec<String> = (0..count as u64).into_par_iter().map(string).collect();
    strings.par_sort();
    if !strings.par_windows(2).all(|w| matches!(w, [a, b] if a <= b)) {
        return Err(Error::Mismatch("par_sort output is not sorted".into()));
    }
    // Position-weighted sum: depends on the order, not on how rayon splits the work.
    let order = strings
        .par_iter()
        .enumerate()
        .map(|(i, s)| fnv(s.as_bytes()).wrapping_mul(i as u64 | 1))
        .reduce(|| 0, u64::wrapping_add);
    // Map/collect: a transformed copy, then joined chunks (growing strings).
    let upper: Vec<String> = strings.par_iter().map(|s| s.to_uppercase().replace('-', "_")).collect();
    let joined: Vec<String> = upper.par_chunks(1024).map(|c| c.join(",")).collect();
    let joined_hash = joined.iter().fold(0, |h, j| mix(h, fnv(j.as_bytes())));
    let upper_len: usize = upper.par_iter().map(String::len).sum();
    drop(joined);
    drop(upper);
    drop(strings);
    let checksum = mix(mix(order, joined_hash), upper_len as u64);
    Ok(PhaseResult { checksum, work: format!("{count} strings, {} threads", rayon::current_num_threads()) })
}
