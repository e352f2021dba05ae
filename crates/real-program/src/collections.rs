//! Phase 3: string operations on a `HashMap<String, String>` and a `BTreeMap<String, u64>`:
//! insert, lookup, remove, update in place, range scans, formatting and concatenation.

use std::collections::{BTreeMap, HashMap};

use crate::rng::{Rng, WORDS};
use crate::{Error, PhaseResult, fnv, mix};

/// Distinct keys per map.
const KEYSPACE: u64 = 250_000;

/// Runs `ops` operations from a fixed seed. `HashMap` iteration order changes from run to
/// run (`RandomState`), so its contents are hashed order-independently.
///
/// # Errors
/// Never, today; the signature matches the other phases.
pub fn run(ops: usize) -> Result<PhaseResult, Error> {
    let mut rng = Rng::new(0x15_0004);
    let keyspace = KEYSPACE.min(ops as u64 / 4 + 1);
    let mut users: HashMap<String, String> = HashMap::new();
    let mut paths: BTreeMap<String, u64> = BTreeMap::new();
    let mut acc = 0u64;
    for _ in 0..ops {
        let r = rng.next_u64();
        let k = (r >> 8) % keyspace;
        let word = WORDS.get(((r >> 40) % 64) as usize).copied().unwrap_or("");
        match r % 10 {
            0 | 1 => {
                let key = format!("user:{k:07}");
                let value = format!("{word}-{}-{}", k.wrapping_mul(31), r >> 48);
                if let Some(old) = users.insert(key, value) {
                    acc = acc.wrapping_add(old.len() as u64);
                }
            }
            2 => {
                let key = format!("user:{k:07}");
                if let Some(v) = users.get(&key) {
                    acc = acc.wrapping_add(fnv(v.as_bytes()));
                }
            }
            3 => {
                if let Some(v) = users.remove(&format!("user:{k:07}")) {
                    acc = acc.wrapping_add(v.len() as u64 * 7);
                }
            }
            4 => {
                // Update in place: append, and keep values short.
                let key = format!("user:{k:07}");
                if let Some(v) = users.get_mut(&key) {
                    v.push('+');
                    v.push_str(word);
                    if v.len() > 200 {
                        let cut = v.len() - 100;
                        v.replace_range(..cut, "");
                    }
                }
            }
            5 | 6 => {
                let key = format!("{word}/{:02}/{k:06}", k % 97);
                *paths.entry(key).or_insert(0) += r >> 56;
            }
            7 => {
                let key = format!("{word}/{:02}/{k:06}", k % 97);
                let hits: u64 = paths.range(key..).take(4).map(|(p, v)| p.len() as u64 + v).sum();
                acc = acc.wrapping_add(hits);
            }
            8 => {
                if let Some(v) = paths.remove(&format!("{word}/{:02}/{k:06}", k % 97)) {
                    acc = acc.wrapping_add(v);
                }
            }
            _ => {
                // Concatenation: build a string from pieces, look its parts up.
                let parts = [word, "::", WORDS.get((k % 64) as usize).copied().unwrap_or(""), "#"];
                let mut s = parts.concat();
                s += &k.to_string();
                let upper = s.to_uppercase();
                acc = acc.wrapping_add(fnv(upper.as_bytes()) >> 32);
                if let Some(v) = users.get(&format!("user:{k:07}")) {
                    acc = acc.wrapping_add((v.len() + s.len()) as u64);
                }
            }
        }
    }
    let user_hash = users.iter().fold(0u64, |h, (k, v)| h.wrapping_add(mix(fnv(k.as_bytes()), fnv(v.as_bytes()))));
    let path_hash = paths.iter().fold(0u64, |h, (k, v)| mix(mix(h, fnv(k.as_bytes())), *v));
    let (n_users, n_paths) = (users.len(), paths.len());
    drop(users);
    drop(paths);
    let checksum = mix(mix(mix(mix(acc, user_hash), path_hash), n_users as u64), n_paths as u64);
    Ok(PhaseResult { checksum, work: format!("{ops} operations, {n_users} + {n_paths} keys left") })
}
