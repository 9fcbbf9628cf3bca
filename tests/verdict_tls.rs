#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `shadowtap verdict --admin https://...`: the real binary judges a real shadowtap whose
//! admin port speaks HTTPS (`[admin.tls]`, a certificate from a CA made here with rcgen) and
//! wants its bearer token. With `--cacert` and `--token-file` the verdict is the one the
//! traffic gives; without the CA the self-signed chain is not trusted, and without the token
//! the port refuses: each is exit 3 with a message that says why, never a pass.

mod support;
mod verdict_common;

use std::net::SocketAddr;
use support::compare::{compared, mirror_toml, Mirrored};
use support::tls::{client_config, handshake, Pki, Sender};
use support::{config, get, Shadowtap, STEP};
use verdict_common::{upstreams, verdict, verdict_with_env, Upstreams};

const TOKEN: &str = "verdict-admin-token";

/// A shadowtap (the real server task) in front of `upstreams`, its admin port on HTTPS with
/// a certificate for `localhost` and `127.0.0.1` signed by `pki`, and a bearer token.
async fn instance(upstreams: &Upstreams, pki: &Pki) -> (Shadowtap, std::path::PathBuf) {
    let issued = pki.server("admin", &["localhost", "127.0.0.1"]);
    let token_file = pki.dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mirrored = Mirrored::pair(upstreams.primary.addr, upstreams.shadow.addr);
    let toml = mirror_toml(&mirrored, &verdict_common::TEMPLATES, "", "").replacen(
        "\n[admin]\naddress = \"127.0.0.1:0\"\n",
        &format!(
            "\n[admin]\naddress = \"127.0.0.1:0\"\ntoken_file = {token_file:?}\n\n[admin.tls]\n{}\n",
            issued.pair()
        ),
        1,
    );
    assert!(toml.contains("[admin.tls]"), "{toml}");
    (Shadowtap::start(config(&toml)).await, token_file)
}

/// `/metrics` of the HTTPS admin port, with the token, trusting `pki`.
async fn metrics(admin: SocketAddr, pki: &Pki) -> String {
    let stream = handshake(admin, "localhost", client_config(pki, &["http/1.1"], None))
        .await
        .unwrap();
    let request = http::Request::get("/metrics")
        .header(http::header::HOST, "localhost")
        .header(http::header::AUTHORIZATION, format!("Bearer {TOKEN}"))
        .body(support::empty())
        .unwrap();
    let answer = Sender::over(stream)
        .await
        .unwrap()
        .send(request)
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    String::from_utf8_lossy(answer.body()).into_owned()
}

/// Sends `count` GETs of `path` through `proxy` and waits until the route has `count` pairs.
async fn traffic(proxy: &Shadowtap, pki: &Pki, path: &str, count: usize) {
    for _ in 0..count {
        let reply = get(&proxy.url(path)).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let text = metrics(proxy.admin, pki).await;
        if compared(&text, path) >= count as f64 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{count} pairs on {path} not compared within {STEP:?}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdict_judges_an_https_admin_port_trusting_its_cacert() {
    let upstreams = upstreams().await;
    let pki = Pki::new("verdict admin CA");
    let (proxy, token_file) = instance(&upstreams, &pki).await;
    traffic(&proxy, &pki, "/clean", 120).await;
    traffic(&proxy, &pki, "/broken", 100).await;
    let url = format!("https://127.0.0.1:{}", proxy.admin.port());
    let ca = pki.ca_file("ca.pem");
    let ca = ca.to_str().unwrap();
    let token_file = token_file.to_str().unwrap();

    // The CA and the token: the verdict the traffic gives, in every format.
    let run = verdict(&["--admin", &url, "--cacert", ca, "--token-file", token_file]).await;
    assert_eq!(run.code, 1, "{}", run.shown());
    assert!(
        run.line("/clean").contains("0/120 pairs diverged"),
        "{}",
        run.shown()
    );
    assert!(run.line("/clean").starts_with("PASS"), "{}", run.shown());
    let broken = run.line("/broken");
    assert!(broken.starts_with("FAIL"), "{}", run.shown());
    assert!(
        broken.contains("max_divergence_ratio: 100/100 pairs diverged"),
        "{}",
        run.shown()
    );
    assert!(
        run.stdout.contains(&url),
        "the source is named: {}",
        run.shown()
    );

    // The token from the environment, as `ctl` takes it; JSON for machines.
    let run = verdict_with_env(
        &["--admin", &url, "--cacert", ca, "--format", "json"],
        &[("SHADOWTAP_ADMIN_TOKEN", TOKEN)],
    )
    .await;
    assert_eq!(run.code, 1, "{}", run.shown());
    let report = run.json();
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["routes"].as_array().unwrap().len(), 2, "{report}");

    // Without --cacert the system's roots do not know the test CA: a certificate error,
    // exit 3, and no token sent (the handshake fails first).
    let run = verdict(&["--admin", &url, "--token-file", token_file]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    for expected in [
        "source unreachable",
        "TLS handshake with 127.0.0.1",
        "--cacert",
        "invalid peer certificate",
        "UnknownIssuer",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {}", run.shown());
    }
    let run = verdict(&["--admin", &url, "--format", "json"]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    assert_eq!(run.json()["verdict"], "error");

    // A CA that did not sign the certificate is no better.
    let another = Pki::new("another CA");
    let other = another.ca_file("other.pem");
    let run = verdict(&[
        "--admin",
        &url,
        "--cacert",
        other.to_str().unwrap(),
        "--token-file",
        token_file,
    ])
    .await;
    assert_eq!(run.code, 3, "{}", run.shown());
    assert!(run.stderr.contains("UnknownIssuer"), "{}", run.shown());

    // The CA without the token: the port refuses (401), an error, not a verdict.
    let run = verdict(&["--admin", &url, "--cacert", ca]).await;
    assert_eq!(run.code, 3, "{}", run.shown());
    assert!(run.stderr.contains("HTTP 401"), "{}", run.shown());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_arguments_name_their_flag() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.pem");
    let missing = missing.to_str().unwrap();
    let not_pem = dir.path().join("not-pem.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    let empty_token = dir.path().join("empty-token");
    std::fs::write(&empty_token, "\n").unwrap();
    let cases: [(Vec<&str>, &[&str]); 6] = [
        (
            vec!["--admin", "https://127.0.0.1:1", "--cacert", missing],
            &["--cacert", missing, "cannot read"],
        ),
        (
            vec![
                "--prometheus",
                "https://127.0.0.1:1",
                "--cacert",
                not_pem.to_str().unwrap(),
            ],
            &["--cacert", "no CERTIFICATE block"],
        ),
        (
            vec!["--prometheus", "ftp://127.0.0.1:1"],
            &["--prometheus \"ftp://127.0.0.1:1\": expected http://HOST:PORT or https://HOST:PORT"],
        ),
        (
            vec!["--admin", "127.0.0.1:9901"],
            &["--admin \"127.0.0.1:9901\": expected http://HOST:PORT or https://HOST:PORT"],
        ),
        (
            vec![
                "--admin",
                "http://127.0.0.1:1",
                "--token-file",
                empty_token.to_str().unwrap(),
            ],
            &["--token-file", "the file is empty"],
        ),
        // The admin token is never shown to a Prometheus: the flag is refused with it.
        (
            vec!["--prometheus", "http://127.0.0.1:1", "--token-file", missing],
            &["--token-file", "--admin"],
        ),
    ];
    for (args, expected) in cases {
        let run = verdict(&args).await;
        assert_eq!(run.code, 3, "{args:?}: {}", run.shown());
        for text in expected {
            assert!(
                run.stderr.contains(text),
                "{args:?}: {text}: {}",
                run.shown()
            );
        }
    }
}

/// Every `shadowtap verdict ...` command in the README parses with the binary's own parser
/// (`--help` appended, so nothing is asked).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_verdict_command_in_the_readme_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .unwrap()
        .replace("\\\n", " ");
    let commands: Vec<&str> = readme
        .lines()
        .filter(|line| line.starts_with("shadowtap verdict "))
        // Comments and the shell around the command are not its arguments.
        .map(|line| line.split(['#', '|', '>']).next().unwrap().trim())
        .collect();
    assert!(commands.len() >= 4, "{commands:?}");
    assert!(
        commands.iter().any(|command| command.contains("--cacert")),
        "{commands:?}"
    );
    for command in commands {
        let mut words: Vec<&str> = command.split_whitespace().skip(2).collect();
        words.push("--help");
        let run = verdict(&words).await;
        assert_eq!(run.code, 0, "{command}: {}", run.shown());
    }
}
