#![allow(clippy::unwrap_used, clippy::expect_used)]
//! JSON diff throughput next to a parse-only baseline.
//!
//! Method: one process, one thread (criterion runs each function in turn on the calling
//! thread; nothing else of shadowtap runs). For each size (~1 KB, ~100 KB, ~1 MB) a
//! deterministic API-like document pair is generated: the primary's, and the shadow's with
//! a few changed fields (one price, one name, one timestamp, one removed field). Every
//! function is measured on the *same two documents*, and throughput is the size of both, so
//! MB/s are directly comparable:
//!
//! - `parse` — the baseline: `serde_json::from_slice` of both documents, nothing else;
//! - `diff_values` — `compare::json::diff` alone, on documents parsed beforehand;
//! - `compare` — the production path for a pair, bytes in, differences out
//!   (`compare::compare`: status, headers, decode, parse both, structural diff);
//! - `compare_ignore_unordered` — the same with an ignore rule (`/data/*/updated_at`) and
//!   every array compared as a multiset (`unordered_arrays`).
//!
//! The target is `compare` ≤ 2 × `parse`: the diff itself may cost at most as much as the
//! parse it cannot avoid. Run: `cargo bench --bench json_diff -- --warm-up-time 1
//! --measurement-time 3`; the latest figures are in docs/PERFORMANCE.md, "JSON diff
//! (criterion)".

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::StatusCode;
use shadowtap::compare::json::{self, JsonRules, PointerPattern};
use shadowtap::compare::{self, CompareRules};
use shadowtap::shadow::budget::Held;
use shadowtap::shadow::fields::Fields;
use shadowtap::shadow::pair::CapturedResponse;
use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

/// One list item of a typical API answer (~400 bytes of JSON).
fn item(rng: &mut fastrand::Rng, index: usize, out: &mut String) {
    const CITIES: [&str; 5] = ["Berlin", "Lisbon", "Osaka", "Toronto", "Nairobi"];
    const TAGS: [&str; 6] = ["new", "sale", "gift", "eco", "bulk", "limited"];
    let tags: Vec<String> = (0..rng.usize(1..4))
        .map(|_| format!("{:?}", TAGS[rng.usize(..TAGS.len())]))
        .collect();
    let _ = write!(
        out,
        r#"{{"id":{index},"uuid":"{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}","name":"Product {index}","description":"A fine product, item {index} of the catalog, in stock.","price":{{"amount":{}.{:02},"currency":"EUR"}},"stock":{},"active":{},"tags":[{}],"address":{{"city":"{}","zip":"{:05}"}},"created_at":"2026-0{}-1{}T10:{:02}:{:02}Z","updated_at":"2026-11-2{}T08:{:02}:{:02}.{:03}Z","rating":{{"score":{}.{},"count":{}}}}}"#,
        rng.u32(..),
        rng.u16(..),
        rng.u16(..0x1000),
        rng.u16(..0x1000),
        rng.u64(..1 << 48),
        rng.u32(1..500),
        rng.u8(..100),
        rng.u32(..10_000),
        rng.bool(),
        tags.join(","),
        CITIES[rng.usize(..CITIES.len())],
        rng.u32(..100_000),
        rng.u8(1..10),
        rng.u8(..10),
        rng.u8(..60),
        rng.u8(..60),
        rng.u8(..10),
        rng.u8(..60),
        rng.u8(..60),
        rng.u16(..1000),
        rng.u8(1..5),
        rng.u8(..10),
        rng.u32(..5000),
    );
}

/// A primary document of about `target` bytes (deterministic), and the shadow's version.
fn pair(target: usize) -> (Bytes, Bytes) {
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut items = String::new();
    let mut count = 0;
    while items.len() + 200 < target {
        if count > 0 {
            items.push(',');
        }
        item(&mut rng, count, &mut items);
        count += 1;
    }
    let doc = format!(
        r#"{{"data":[{items}],"meta":{{"page":1,"per_page":{count},"total":{},"generated_at":"2026-11-22T10:00:00.000Z","request_id":"0f3c9b2e-7d41-4a8e-9c55-2b1e6f0a9d13"}}}}"#,
        count * 7
    );
    let mut value: serde_json::Value = serde_json::from_str(&doc).expect("generated JSON");
    // The shadow: a few changed fields, wherever the document is.
    let data = value["data"].as_array_mut().expect("data");
    let last = data.len() - 1;
    data[last / 2]["price"]["amount"] = serde_json::json!(999.99);
    data[last]["name"] = serde_json::json!("Product renamed");
    if let Some(object) = data[0].as_object_mut() {
        object.remove("rating");
    }
    value["meta"]["generated_at"] = serde_json::json!("2026-11-22T10:00:00.042Z");
    let shadow = serde_json::to_vec(&value).expect("shadow JSON");
    // The primary keeps its own byte layout (key order is the same: serde_json's map is ordered,
    // so reserialise it too for a fair, equally formatted pair).
    let primary: serde_json::Value = serde_json::from_str(&doc).expect("primary JSON");
    let primary = serde_json::to_vec(&primary).expect("primary JSON");
    (Bytes::from(primary), Bytes::from(shadow))
}

fn response(body: &Bytes) -> CapturedResponse {
    let headers = Fields::from_pairs([("content-type", "application/json")]);
    CapturedResponse {
        status: StatusCode::OK,
        headers,
        body: body.clone(),
        truncated: false,
        over_budget: false,
        digest: None,
        cut_short: false,
        held: Held::nothing(),
        latency: Duration::ZERO,
    }
}

fn rules(ignore_unordered: bool) -> CompareRules {
    let mut rules = CompareRules {
        max_decoded_bytes: 8 * 1024 * 1024,
        ..CompareRules::default()
    };
    rules.json.max_changes = 100;
    if ignore_unordered {
        rules.json.ignore = vec![PointerPattern::parse("/data/*/updated_at").expect("pattern")];
        rules.json.unordered_arrays = true;
    }
    rules
}

fn bench(c: &mut Criterion) {
    for (label, size) in [("1KB", 1_000), ("100KB", 100_000), ("1MB", 1_000_000)] {
        let (primary, shadow) = pair(size);
        let mut group = c.benchmark_group(format!("json_diff/{label}"));
        group.throughput(Throughput::Bytes((primary.len() + shadow.len()) as u64));
        if size >= 1_000_000 {
            group.sample_size(20);
        }

        group.bench_function("parse", |b| {
            b.iter(|| {
                let a: serde_json::Value = serde_json::from_slice(black_box(&primary)).unwrap();
                let b: serde_json::Value = serde_json::from_slice(black_box(&shadow)).unwrap();
                (a, b)
            })
        });

        let a: serde_json::Value = serde_json::from_slice(&primary).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&shadow).unwrap();
        let plain = JsonRules {
            max_changes: 100,
            ..JsonRules::default()
        };
        let changes = json::diff(&a, &b, &plain);
        assert_eq!(changes.len(), 4, "the injected changes: {changes:?}");
        group.bench_function("diff_values", |bench| {
            bench.iter(|| json::diff(black_box(&a), black_box(&b), &plain))
        });

        let (left, right) = (response(&primary), response(&shadow));
        for (name, ignore_unordered) in [("compare", false), ("compare_ignore_unordered", true)] {
            let rules = rules(ignore_unordered);
            let found = compare::compare(&left, &right, &rules);
            assert!(!found.differences.is_empty() && found.body_skipped.is_none());
            group.bench_with_input(BenchmarkId::new(name, label), &rules, |bench, rules| {
                bench.iter(|| compare::compare(black_box(&left), black_box(&right), rules))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
