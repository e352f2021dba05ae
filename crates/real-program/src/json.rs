//! Phase 1: build a JSON document from derived structs, serialize it, parse it back twice
//! (untyped [`Value`] and typed), and check both round trips.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::rng::{Rng, WORDS};
use crate::{Error, PhaseResult, fnv, mix};

/// A postal address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Address {
    street: String,
    city: String,
    zip: String,
    geo: [f64; 2],
}

/// One event in a record's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    ts: u64,
    kind: String,
    amount: f64,
    note: Option<String>,
}

/// One record of the document.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    id: u64,
    name: String,
    email: String,
    active: bool,
    score: f64,
    parent: Option<u64>,
    tags: Vec<String>,
    address: Address,
    history: Vec<Event>,
    attrs: BTreeMap<String, String>,
}

/// A float with a short exact decimal form (a multiple of 1/1024), so every parser
/// reads back the very same bits.
fn dyadic(rng: &mut Rng, range: u64) -> f64 {
    let k = rng.below(range * 1024);
    let v = k as f64 / 1024.0;
    if rng.below(4) == 0 { -v } else { v }
}

fn words(rng: &mut Rng, n: u64, sep: &str) -> String {
    let count = 1 + rng.below(n);
    let mut s = String::new();
    for i in 0..count {
        if i > 0 {
            s.push_str(sep);
        }
        s.push_str(rng.pick(&WORDS));
    }
    s
}

fn record(rng: &mut Rng, id: u64) -> Record {
    let first = rng.pick(&WORDS);
    let last = rng.pick(&WORDS);
    // Some strings need escaping or are not ASCII.
    let name = match rng.below(16) {
        0 => format!("{first} \"{last}\" O'Neil"),
        1 => format!("{first}\t{last}\nJr."),
        2 => format!("{first} Müller-Æsir ✓"),
        _ => format!("{first} {last}"),
    };
    let tags = (0..rng.below(6)).map(|_| rng.pick(&WORDS).to_owned()).collect();
    let address = Address {
        street: format!("{} {} street", rng.below(9_999) + 1, rng.pick(&WORDS)),
        city: words(rng, 2, " "),
        zip: format!("{:05}", rng.below(100_000)),
        geo: [dyadic(rng, 90), dyadic(rng, 180)],
    };
    let history = (0..rng.below(5))
        .map(|_| Event {
            ts: 1_600_000_000 + rng.below(100_000_000),
            kind: rng.pick(&WORDS).to_owned(),
            amount: dyadic(rng, 10_000),
            note: (rng.below(3) == 0).then(|| words(rng, 6, " ")),
        })
        .collect();
    let attrs = (0..rng.below(4))
        .map(|_| (format!("x-{}", rng.pick(&WORDS)), format!("{}={}", rng.pick(&WORDS), rng.below(1_000_000))))
        .collect();
    Record {
        id,
        name,
        email: format!("{first}.{last}{}@{}.example", rng.below(1_000), rng.pick(&WORDS)),
        active: rng.below(2) == 0,
        score: dyadic(rng, 100),
        parent: (id > 0 && rng.below(2) == 0).then(|| rng.below(id)),
        tags,
        address,
        history,
        attrs,
    }
}

/// The document: `{"version": 1, "records": [...], "index": {...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Document {
    version: u32,
    records: Vec<Record>,
    /// Record ids by their first tag.
    index: BTreeMap<String, Vec<u64>>,
}

/// Builds the document with `records` records from a fixed seed.
#[must_use]
pub fn build(records: usize) -> Document {
    let mut rng = Rng::new(0x15_0001);
    let records: Vec<Record> = (0..records as u64).map(|id| record(&mut rng, id)).collect();
    let mut index: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for r in &records {
        if let Some(tag) = r.tags.first() {
            index.entry(tag.clone()).or_default().push(r.id);
        }
    }
    Document { version: 1, records, index }
}

/// Hashes every node of `v` in document order (object keys sorted, as `Value` keeps them).
fn walk(v: &Value, acc: &mut u64) {
    match v {
        Value::Null => *acc = mix(*acc, 1),
        Value::Bool(b) => *acc = mix(*acc, 2 + u64::from(*b)),
        Value::Number(n) => *acc = mix(*acc, n.as_u64().unwrap_or_else(|| n.as_f64().unwrap_or(0.0).to_bits())),
        Value::String(s) => *acc = mix(*acc, fnv(s.as_bytes())),
        Value::Array(a) => {
            *acc = mix(*acc, a.len() as u64);
            for x in a {
                walk(x, acc);
            }
        }
        Value::Object(o) => {
            *acc = mix(*acc, o.len() as u64);
            for (k, x) in o {
                *acc = mix(*acc, fnv(k.as_bytes()));
                walk(x, acc);
            }
        }
    }
}

/// Runs the phase.
///
/// # Errors
/// A serde error, or [`Error::Mismatch`] when a round trip does not reproduce the document.
pub fn run(records: usize) -> Result<PhaseResult, Error> {
    let doc = build(records);
    let text = serde_json::to_string(&doc)?;
    let bytes = text.len();

    // Untyped: parse into a Value tree, compare with the tree built from the structs,
    // serialize it again (keys come out sorted, so compare lengths, not text).
    let parsed: Value = serde_json::from_str(&text)?;
    let built = serde_json::to_value(&doc)?;
    if parsed != built {
        return Err(Error::Mismatch("JSON Value parsed from the text differs from the one built".into()));
    }
    drop(built);
    let mut tree = 0;
    walk(&parsed, &mut tree);
    let again = serde_json::to_string(&parsed)?;
    if again.len() != bytes {
        return Err(Error::Mismatch(format!("re-serialized Value is {} bytes, not {bytes}", again.len())));
    }
    drop(again);
    drop(parsed);

    // Typed: parse back into the structs.
    let typed: Document = serde_json::from_str(&text)?;
    if typed != doc {
        return Err(Error::Mismatch("typed JSON round trip differs".into()));
    }
    let checksum = mix(mix(fnv(text.as_bytes()), tree), bytes as u64);
    Ok(PhaseResult { checksum, work: format!("{:.1} MB document, {records} records", bytes as f64 / 1e6) })
}
