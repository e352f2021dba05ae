//! Phase 2: generate and compile distinct regexes, run each over generated text.

use std::collections::HashSet;

use regex::Regex;

use crate::rng::{Rng, WORDS};
use crate::{Error, PhaseResult, fnv, mix};

/// Generated text: log-like lines with words, numbers, e-mail addresses, key=value pairs,
/// capitalized and non-ASCII words; at least `bytes` long.
#[must_use]
pub fn text(bytes: usize) -> String {
    let mut rng = Rng::new(0x15_0002);
    let mut s = String::with_capacity(bytes + 256);
    let mut line = 0u64;
    while s.len() < bytes {
        line += 1;
        let (a, b, c) = (rng.pick(&WORDS), rng.pick(&WORDS), rng.pick(&WORDS));
        let cap = a.get(..1).map_or_else(String::new, str::to_uppercase) + a.get(1..).unwrap_or("");
        let extra = match rng.below(4) {
            0 => format!("{b}-{c} {}", rng.below(100_000)),
            1 => format!("Ünïcödé {cap}{b}"),
            2 => format!("{}-{}-{}", rng.below(1_000), rng.below(10_000), rng.below(100)),
            _ => format!("{c}_{b} id={}", rng.below(1 << 20)),
        };
        s.push_str(&format!(
            "{line:06} {cap} {b} {c}.{a}{}@{b}.{} {a}={}; {b}={c}; {extra}\n",
            rng.below(100),
            ["com", "org", "net", "io"][rng.index(4)],
            rng.below(10_000),
        ));
    }
    s
}

fn pattern(rng: &mut Rng) -> String {
    let (w1, w2, w3) = (rng.pick(&WORDS), rng.pick(&WORDS), rng.pick(&WORDS));
    let a = 1 + rng.below(4);
    let b = a + rng.below(5);
    match rng.below(12) {
        0 => format!(r"{w1}\s+(\w+)"),
        1 => format!(r"(?i){w1}[a-z]{{{a},{b}}}"),
        2 => format!(r"\b(?:{w1}|{w2}|{w3})\b"),
        3 => format!(r"(\d{{{a}}})-(\d{{{b}}})"),
        4 => format!(r"[A-Za-z0-9._%+-]+@{w1}\.(com|org|net|io)"),
        5 => format!(r"(?m)^\d+ [A-Z]\w* {w1} .*{w2}$"),
        6 => format!(r"{w1}(?:-{w2})?\s\d{{{a},{b}}}"),
        7 => format!(r"(?P<k>{w1})=(?P<v>[^;\s]+)"),
        8 => format!(r"\p{{Lu}}\p{{Ll}}+{w1}|{w2}\p{{L}}{{{a}}}"),
        9 => format!(r"{w1}.{{0,{}}}{w2}", a * 8),
        10 => format!(r"(?x) (\w+) _ {w1} \s id= (\d{{{a},}})"),
        _ => format!(r"{w1}[._]{w2}\d{{0,{a}}}@(\w+)\.\w+"),
    }
}

/// `count` distinct patterns from a fixed seed.
#[must_use]
pub fn patterns(count: usize) -> Vec<String> {
    let mut rng = Rng::new(0x15_0003);
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let p = pattern(&mut rng);
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out
}

/// Runs the phase: each regex is compiled, counts its matches over the whole text, collects
/// the first capture group of up to 256 matches into `String`s, and replaces its matches in
/// the first 8 KiB.
///
/// # Errors
/// [`Error::Regex`] when a generated pattern does not compile (a bug in the generator).
pub fn run(count: usize, text_bytes: usize) -> Result<PhaseResult, Error> {
    let text = text(text_bytes);
    let head = text.get(..text.len().min(8 * 1024)).unwrap_or(&text);
    let mut checksum = 0;
    let mut matches = 0u64;
    for p in patterns(count) {
        let re = Regex::new(&p)?;
        let found = re.find_iter(&text).count() as u64;
        matches += found;
        let groups: Vec<String> = re
            .captures_iter(&text)
            .take(256)
            .filter_map(|c| c.get(c.len().saturating_sub(1).min(1)).map(|m| m.as_str().to_owned()))
            .collect();
        let replaced = re.replace_all(head, "<$0>");
        checksum = mix(checksum, found);
        checksum = mix(checksum, groups.iter().fold(0, |acc, g| mix(acc, fnv(g.as_bytes()))));
        checksum = mix(checksum, fnv(replaced.as_bytes()));
    }
    Ok(PhaseResult {
        checksum,
        work: format!("{count} regexes over {:.0} KiB, {matches} matches", text.len() as f64 / 1024.0),
    })
}
