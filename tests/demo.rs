#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `shadowtap demo --duration 5s`, the README's first command, run as a person would: the
//! real binary exits 0 on its own, and its final table shows the canary's regressions on
//! the regressed routes and none on the clean ones (their noise — timestamps, random ids,
//! shuffled lists, a slower but equal answer — is all recognised as noise); the verdict it
//! ends with fails the regressed routes and passes the clean ones.

mod support;

use std::time::Duration;
use support::Process;

/// One row of the demo's table.
#[derive(Debug)]
struct Row {
    requests: u64,
    primary_non2xx: u64,
    shadow_non2xx: u64,
    compared: u64,
    diverged: String,
    line: String,
}

/// The rows after `final:`, by route template.
fn final_table(stdout: &str) -> Vec<(String, Row)> {
    let (_, table) = stdout
        .split_once("final:\n")
        .unwrap_or_else(|| panic!("no final table in:\n{stdout}"));
    table
        .lines()
        .skip(1) // the header
        .take_while(|line| !line.trim().is_empty())
        .map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            assert!(columns.len() >= 8, "short row: {line}");
            let number = |i: usize| {
                columns[i]
                    .parse::<u64>()
                    .unwrap_or_else(|e| panic!("column {i} of {line}: {e}"))
            };
            let row = Row {
                requests: number(1),
                primary_non2xx: number(2),
                shadow_non2xx: number(3),
                compared: number(4),
                diverged: columns[5].to_string(),
                line: line.to_string(),
            };
            (columns[0].to_string(), row)
        })
        .collect()
}

fn percent(text: &str) -> f64 {
    text.strip_suffix('%')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a percentage: {text:?}"))
}

#[tokio::test]
async fn demo_runs_five_seconds_and_reports_the_regressions() {
    let mut demo = Process::start(&["demo", "--duration", "5s"], &[("RUST_LOG", "warn")]);
    let status = demo.wait_exit(Duration::from_secs(30)).await;
    let stdout = demo.stdout();
    assert!(status.success(), "{status}\n{stdout}\n{}", demo.stderr());
    // The web page's address comes first.
    let first = stdout.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("shadowtap demo: open http://127.0.0.1:")
            && first.ends_with("/ui/ in a browser"),
        "{first}"
    );

    let rows = final_table(&stdout);
    let names: Vec<&str> = rows.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        [
            "/api/users/{id}",
            "/api/orders/{id}",
            "/api/search",
            "/api/report",
            "/api/catalog"
        ],
        "{stdout}"
    );
    for (name, row) in &rows {
        // 200 req/s spread over five routes for 5 s: far more than this on any machine.
        assert!(row.requests >= 50, "{name}: {}", row.line);
        assert!(
            row.compared * 10 >= row.requests * 9,
            "{name}: most requests were compared: {}",
            row.line
        );
    }
    let row = |name: &str| &rows.iter().find(|(n, _)| n == name).unwrap().1;

    // Every answer of the regressed users and orders builds differs; search fails 1 in 20.
    for name in ["/api/users/{id}", "/api/orders/{id}"] {
        assert_eq!(row(name).diverged, "100.0%", "{}", row(name).line);
    }
    assert!(row("/api/users/{id}").line.contains("/plan"));
    assert!(row("/api/users/{id}").line.contains("header:cache-control"));
    assert!(row("/api/orders/{id}").line.contains("/items"));
    let search = row("/api/search");
    assert!(percent(&search.diverged) > 0.0, "{}", search.line);
    assert!(search.line.contains("status"), "{}", search.line);
    // The canary's search answers 500 now and then while the stable build never does: the
    // shadow's column shows them, the client's stays at zero.
    assert!(search.shadow_non2xx > 0, "{}\n{stdout}", search.line);
    assert_eq!(search.primary_non2xx, 0, "{}", search.line);
    for (name, row) in &rows {
        assert_eq!(row.primary_non2xx, 0, "{name}: {}", row.line);
        if name != "/api/search" {
            assert_eq!(row.shadow_non2xx, 0, "{name}: {}", row.line);
        }
    }

    // The clean routes: noise only.
    for name in ["/api/catalog", "/api/report"] {
        assert_eq!(row(name).diverged, "0.0%", "{}\n{stdout}", row(name).line);
    }

    // The verdict at the end: the regressed routes fail, each on its divergence ratio (search
    // against its 0.1 % override) or, for report (the same answers, 40 ms slower), on its p99
    // latency delta against its 20 ms override; catalog passes; the secondary is not judged.
    let verdicts = verdict_lines(&stdout);
    let names: Vec<&str> = verdicts.iter().map(|(route, ..)| route.as_str()).collect();
    assert_eq!(
        names,
        [
            "/api/catalog",
            "/api/orders/{id}",
            "/api/report",
            "/api/search",
            "/api/users/{id}"
        ],
        "{stdout}"
    );
    for (route, shadow, verdict, line) in &verdicts {
        assert_eq!(shadow, "canary", "{line}");
        // The pairs column: a machine too busy to compare 100 pairs of a route in 5 s gets an
        // honest inconclusive for it, never a guess.
        let pairs: u64 = line.split_whitespace().nth(3).unwrap().parse().unwrap();
        let expected = match route.as_str() {
            _ if pairs < 100 => "INCONCLUSIVE",
            "/api/catalog" => "PASS",
            _ => "FAIL",
        };
        assert_eq!(verdict, expected, "{line}\n{stdout}");
        match expected {
            "FAIL" if route == "/api/report" => {
                assert!(line.contains("max_latency_delta: p99 "), "{line}");
                assert!(line.contains(" over 20.0ms"), "{line}");
            }
            "FAIL" => {
                assert!(line.contains("max_divergence_ratio: "), "{line}");
                assert!(line.contains("lower bound over"), "{line}");
            }
            "INCONCLUSIVE" => assert!(line.contains("fewer than min_pairs = 100"), "{line}"),
            _ => assert!(line.contains("upper bound at or under 5.00%"), "{line}"),
        }
    }
    let search = &verdicts
        .iter()
        .find(|(route, ..)| route == "/api/search")
        .unwrap()
        .3;
    assert!(
        search.contains("fewer than min_pairs") || search.contains("0.10%"),
        "the per-route override: {search}"
    );
    let count = |word: &str| verdicts.iter().filter(|(_, _, v, _)| v == word).count();
    let overall = if count("FAIL") > 0 {
        "FAIL"
    } else {
        "INCONCLUSIVE"
    };
    assert!(
        stdout.contains(&format!(
            "verdict: {overall} ({} passed, {} failed, {} inconclusive)",
            count("PASS"),
            count("FAIL"),
            count("INCONCLUSIVE")
        )),
        "{stdout}"
    );
}

/// The verdict table's rows after the final table: (route, shadow, verdict, line).
fn verdict_lines(stdout: &str) -> Vec<(String, String, String, String)> {
    let (_, table) = stdout
        .split_once("verdict (shadowtap verdict --admin ")
        .unwrap_or_else(|| panic!("no verdict in:\n{stdout}"));
    table
        .lines()
        .filter(|line| {
            ["PASS ", "FAIL ", "INCONCLUSIVE "]
                .iter()
                .any(|word| line.starts_with(word))
        })
        .map(|line| {
            let columns: Vec<&str> = line.split_whitespace().collect();
            assert!(columns.len() > 8, "short verdict row: {line}");
            (
                columns[1].to_string(),
                columns[2].to_string(),
                columns[0].to_string(),
                line.to_string(),
            )
        })
        .collect()
}
