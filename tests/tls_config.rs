#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `[listeners.tls]` and `--tls-cert`/`--tls-key`: what validation accepts, defaults, and
//! every mistake reported at once with its key path and reason (as `check` prints them).

mod support;

use shadowtap::config::{ClientAuth, Config, Overrides};
use std::time::Duration;
use support::tls::Pki;

fn with_tls(tls: &str) -> String {
    format!(
        r#"
[[listeners]]
address = "127.0.0.1:0"
[listeners.tls]
{tls}
[upstreams.app]
url = "http://127.0.0.1:9"
[[routes]]
primary = "app"
"#
    )
}

fn problems(text: &str) -> Vec<String> {
    match Config::from_toml(text, &Overrides::default()) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(error) => error.problems().iter().map(|p| p.to_string()).collect(),
    }
}

#[test]
fn a_full_tls_section_is_read_with_its_defaults() {
    let pki = Pki::new("test CA");
    let default = pki.server("default", &["localhost"]);
    let api = pki.server("api", &["api.example.com", "*.example.com"]);
    let ca = pki.ca_file("ca.pem");
    let text = with_tls(&format!(
        r#"cert = {:?}
key = {:?}
client_ca = {:?}
client_subject_header = "X-Client-Subject"
[[listeners.tls.certificates]]
server_names = ["API.example.com", "*.example.com"]
cert = {:?}
key = {:?}
"#,
        default.cert, default.key, ca, api.cert, api.key
    ));
    let config = support::config(&text);
    let tls = config.listeners[0].tls.as_ref().expect("tls");
    assert_eq!(tls.handshake_timeout, Duration::from_secs(10));
    assert_eq!(tls.reload_interval, Duration::from_secs(30));
    assert_eq!(tls.client_auth, Some(ClientAuth::Required));
    assert_eq!(
        tls.client_subject_header.as_deref(),
        Some("x-client-subject")
    );
    assert_eq!(
        tls.certificates[0].server_names,
        ["api.example.com", "*.example.com"]
    );
    // The printed config reads back to the same TLS settings.
    let printed = config.to_toml().unwrap();
    let again = support::config(&printed);
    let tls_again = again.listeners[0].tls.as_ref().unwrap();
    assert_eq!(tls_again.certificates[0].cert, tls.certificates[0].cert);
    assert_eq!(tls_again.client_auth, tls.client_auth);
    assert_eq!(tls_again.handshake_timeout, tls.handshake_timeout);
}

#[test]
fn every_tls_mistake_is_reported_together() {
    let pki = Pki::new("test CA");
    let one = pki.server("one", &["one.test"]);
    let two = pki.server("two", &["two.test"]);
    let text = with_tls(&format!(
        r#"cert = {:?}
key = {:?}
handshake_timeout = "soon"
client_auth = "sometimes"
client_subject_header = "bad header"
[[listeners.tls.certificates]]
server_names = ["ok.test", "no spaces"]
cert = "/nonexistent/cert.pem"
key = {:?}
[[listeners.tls.certificates]]
cert = {:?}
"#,
        one.cert, two.key, one.key, two.cert
    ));
    let found = problems(&text);
    let expect = [
        "listeners[0].tls.handshake_timeout: \"soon\" is not a duration",
        "listeners[0].tls.cert: ",
        "does not belong to the certificate",
        "listeners[0].tls.certificates[0].server_names[1]: \"no spaces\"",
        "listeners[0].tls.certificates[0].cert: /nonexistent/cert.pem: cannot read",
        "listeners[0].tls.certificates[1].server_names: missing",
        "listeners[0].tls.certificates[1].key: missing",
        "listeners[0].tls.client_auth: unknown mode \"sometimes\"",
        "listeners[0].tls.client_subject_header: \"bad header\" is not a valid header name",
        "listeners[0].tls.client_subject_header: needs `client_ca`",
    ];
    for expected in expect {
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected:?} not in {found:#?}"
        );
    }
}

#[test]
fn a_tls_section_without_certificates_and_half_pairs_are_refused() {
    let found = problems(&with_tls("handshake_timeout = \"5s\""));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("listeners[0].tls.cert: missing")),
        "{found:#?}"
    );
    let found = problems(&with_tls("cert = \"a.pem\""));
    assert!(
        found
            .iter()
            .any(|p| p.starts_with("listeners[0].tls.key: missing")),
        "{found:#?}"
    );
    let found = problems(&with_tls(
        "client_auth = \"optional\"\ncert = \"a\"\nkey = \"b\"",
    ));
    assert!(
        found
            .iter()
            .any(|p| p.contains("client_auth: needs `client_ca`")),
        "{found:#?}"
    );
}

#[test]
fn tls_cert_and_key_flags_make_every_listener_terminate_tls() {
    let pki = Pki::new("test CA");
    let leaf = pki.server("leaf", &["localhost"]);
    let overrides = Overrides {
        primary: Some("http://127.0.0.1:9".to_string()),
        tls_cert: Some(leaf.cert.display().to_string()),
        tls_key: Some(leaf.key.display().to_string()),
        ..Overrides::default()
    };
    let config = Config::from_toml("", &overrides).unwrap();
    let tls = config.listeners[0].tls.as_ref().expect("tls from flags");
    assert_eq!(tls.cert.as_deref(), Some(leaf.cert.as_path()));

    let half = Overrides {
        primary: Some("http://127.0.0.1:9".to_string()),
        tls_cert: Some(leaf.cert.display().to_string()),
        ..Overrides::default()
    };
    let error = Config::from_toml("", &half).unwrap_err();
    assert!(error.to_string().contains("--tls-key: missing"), "{error}");
}
