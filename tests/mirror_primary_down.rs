#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A primary that cannot be reached does not cost the shadow its copy: the client gets the
//! 502, the complete request is still mirrored (as nginx's `mirror` and Envoy's mirror
//! policy send it whatever the primary does), and the pair is counted
//! `primary_unavailable`, never as a copy the client aborted.

mod support;

use std::time::Duration;
use support::shadow::*;
use support::*;

async fn primary_down(engine: &str, client: TestClient) {
    let closed = closed_port().await;
    let shadow = healthy_shadow(Duration::ZERO).await;
    let toml = mirror_toml(closed, shadow.addr, &Policy::default()).replacen(
        "address = \"127.0.0.1:0\"\n",
        &format!("address = \"127.0.0.1:0\"\nhttp1_engine = \"{engine}\"\n"),
        1,
    );
    let proxy = Shadowtap::start(config(&toml)).await;
    for i in 0..3 {
        let reply = send(&client, get_request(&proxy.url(&format!("/down/{i}"))))
            .await
            .unwrap();
        assert_eq!(reply.status, 502, "{engine}");
    }
    let metrics = settled(&proxy).await;
    let counts = outcomes(&metrics);
    assert_eq!(sampled(&metrics), 3, "{engine}: {counts:?}");
    assert_eq!(counts["dropped_client_aborted"], 0, "{engine}: {counts:?}");
    assert_eq!(counts["completed"], 3, "{engine}: {counts:?}");
    assert_eq!(shadow.count(), 3, "{engine}");
    assert_eq!(
        metric_sum(
            &metrics,
            "shadowtap_mirror_pairs_total",
            &[("result", "primary_unavailable")]
        ),
        3.0,
        "{engine}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_primary_still_mirrors_the_complete_request_native() {
    primary_down("native", http1_client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_primary_still_mirrors_the_complete_request_hyper() {
    primary_down("hyper", http1_client()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_primary_still_mirrors_the_complete_request_h2c() {
    primary_down("native", h2_client()).await;
}
