#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Which requests are mirrored: percentage sampling lands in its statistical band, sticky
//! sampling decides once per key, unsafe methods need an opt-in, a request already carrying
//! the marker is never mirrored again, and the path-prefix and required-header filters
//! apply. Filtered requests were never sampled, so they have no outcome at all.

mod support;

use http::{Method, Request};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use support::shadow::*;
use support::*;

/// Sends `n` requests built by `make(i)`, 32 at a time over one pooled client; each must
/// get the primary's 200.
async fn load<F>(proxy: &Shadowtap, n: usize, make: F)
where
    F: Fn(&str, usize) -> Request<Body> + Send + Sync + 'static,
{
    let client = Arc::new(http1_client());
    let base = proxy.url("");
    let make = Arc::new(make);
    let replies = run_concurrently(n, 32, move |i| {
        let client = client.clone();
        let request = make(&base, i);
        async move { send(&client, request).await.map(|reply| reply.status) }
    })
    .await;
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.expect("client request"), 200, "request {i}");
    }
}

fn request(method: Method, url: String, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    builder.body(full("payload")).unwrap()
}

async fn start(
    shadow_lines: &'static str,
    global: &'static str,
) -> (Upstream, Upstream, Shadowtap) {
    let primary = echo_primary().await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    let policy = Policy {
        global,
        route: "",
        shadow: shadow_lines,
    };
    let proxy = mirrored(primary.addr, shadow.addr, &policy).await;
    (primary, shadow, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_of_five_thousand_lands_in_its_binomial_band() {
    const N: usize = 5000;
    let (_primary, shadow, proxy) = start("percent = 10", "").await;
    load(&proxy, N, |base, i| get_request(&format!("{base}/p/{i}"))).await;

    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    let picked = sampled(&metrics);
    // Each request is sampled independently with p = 0.1, so the count is Binomial(5000,
    // 0.1): mean 500, sd = sqrt(5000 * 0.1 * 0.9) ≈ 21.2. Five sd either side, 500 ± 106,
    // fails a correct sampler about once in 1.7 million runs, while a sampler off by even
    // two points (8% or 12%, a shift of about 4.7 sd) is caught most of the time.
    assert!((394..=606).contains(&picked), "{picked} of {N} sampled");
    assert_eq!(counts["completed"], picked, "{counts:?}");
    assert_eq!(shadow.count() as u64, picked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_sampling_decides_once_per_key() {
    const KEYS: usize = 200;
    const ROUNDS: usize = 3;
    let (_primary, shadow, proxy) =
        start("percent = 30\nsticky = { header = \"x-user\" }", "").await;
    for _ in 0..ROUNDS {
        load(&proxy, KEYS, |base, i| {
            let user = format!("user-{i}");
            request(Method::GET, format!("{base}/s/{i}"), &[("x-user", &user)])
        })
        .await;
    }

    let metrics = settled(&proxy).await;
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for copy in shadow.received() {
        *per_key
            .entry(copy.header("x-user").unwrap().to_string())
            .or_default() += 1;
    }
    for (key, copies) in &per_key {
        assert_eq!(
            *copies, ROUNDS,
            "{key} was mirrored {copies} of {ROUNDS} times"
        );
    }
    // Keys in are Binomial(200, 0.3): mean 60, sd = sqrt(200 * 0.3 * 0.7) ≈ 6.5; 60 ± 5 sd.
    let keys_in = per_key.len();
    assert!(
        (28..=92).contains(&keys_in),
        "{keys_in} of {KEYS} keys sampled"
    );
    assert_eq!(sampled(&metrics), (keys_in * ROUNDS) as u64);
}

#[tokio::test]
async fn unsafe_methods_are_mirrored_only_when_opted_in() {
    let (primary, shadow, proxy) = start("", "").await;
    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let reply = send(
            &http1_client(),
            request(method.clone(), proxy.url("/m"), &[]),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 200, "{method} is still served");
    }
    assert_eq!(primary.count(), 3);
    assert_eq!(get(&proxy.url("/m")).await.status, 200);
    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["skipped_method"], 3, "{counts:?}");
    assert_eq!(counts["completed"], 1, "{counts:?}");
    assert_eq!(sampled(&metrics), 4, "{counts:?}");
    let methods: Vec<Method> = shadow.received().into_iter().map(|r| r.method).collect();
    assert_eq!(methods, [Method::GET]);

    let (_primary, shadow, proxy) = start(r#"methods = ["GET", "post"]"#, "").await;
    for method in [Method::POST, Method::PUT] {
        let reply = send(&http1_client(), request(method, proxy.url("/m"), &[]))
            .await
            .unwrap();
        assert_eq!(reply.status, 200);
    }
    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(counts["completed"], 1, "{counts:?}");
    assert_eq!(counts["skipped_method"], 1, "{counts:?}");
    let copy = shadow.last();
    assert_eq!(copy.method, Method::POST);
    assert_eq!(&copy.body[..], b"payload");
}

#[tokio::test]
async fn a_request_carrying_the_marker_is_served_but_not_mirrored() {
    let global = "marker_header = \"X-Mirror-Copy\"\nmarker_value = \"yes\"";
    let (primary, shadow, proxy) = start("", global).await;
    let reply = send(
        &http1_client(),
        request(Method::GET, proxy.url("/loop"), &[("x-mirror-copy", "yes")]),
    )
    .await
    .unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(primary.count(), 1);
    // An ordinary request is mirrored, carrying the configured marker.
    assert_eq!(get(&proxy.url("/once")).await.status, 200);
    let copies = received_at_least(&shadow, 1).await;

    let metrics = settled(&proxy).await;
    assert_eq!(
        metric_value(
            &metrics,
            "shadowtap_mirror_loop_guard_total",
            &[("route", "default")]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sampled(&metrics), 1, "{:?}", outcomes(&metrics));
    assert_eq!(copies.len(), 1);
    assert_eq!(copies[0].uri.path(), "/once");
    assert_eq!(copies[0].header("x-mirror-copy"), Some("yes"));
    assert_eq!(shadow.count(), 1);
}

#[tokio::test]
async fn path_prefix_and_required_headers_filter_before_sampling() {
    let lines = "path_prefix = \"/api/\"\nrequire_headers = [\"X-Canary\"]";
    let (primary, shadow, proxy) = start(lines, "").await;
    let cases = [
        ("/api/in", true, true),
        ("/api/no-header", false, false),
        ("/web/wrong-prefix", true, false),
    ];
    for (path, with_header, _) in cases {
        let headers: &[(&str, &str)] = if with_header {
            &[("x-canary", "1")]
        } else {
            &[]
        };
        let reply = send(
            &http1_client(),
            request(Method::GET, proxy.url(path), headers),
        )
        .await
        .unwrap();
        assert_eq!(reply.status, 200, "{path}");
    }
    assert_eq!(primary.count(), cases.len());

    let metrics = settled(&proxy).await;
    let mirrored = shadow.paths();
    let expected: Vec<&str> = cases
        .iter()
        .filter(|(_, _, mirrored)| *mirrored)
        .map(|(path, _, _)| *path)
        .collect();
    assert_eq!(mirrored, expected);
    // Filtered requests were never sampled: they have no outcome.
    assert_eq!(sampled(&metrics), 1, "{:?}", outcomes(&metrics));
}
