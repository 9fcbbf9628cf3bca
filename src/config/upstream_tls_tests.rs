//! Unit tests of `[upstreams.NAME.tls]`: accepted, printed back, every problem at once.

use crate::config::{Config, Overrides};

/// A CA certificate, a client certificate and its key, made now, in a temporary
/// directory (kept alive by the returned handle).
fn files() -> (tempfile::TempDir, impl Fn(&str) -> String) {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = params.self_signed(&key).unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
    let client_key = rcgen::KeyPair::generate().unwrap();
    let client = rcgen::CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca, &key)
        .unwrap();
    std::fs::write(dir.path().join("client.pem"), client.pem()).unwrap();
    std::fs::write(dir.path().join("client.key"), client_key.serialize_pem()).unwrap();
    let root = dir.path().to_path_buf();
    (dir, move |name: &str| root.join(name).display().to_string())
}

fn load(upstream: &str) -> Result<Config, Vec<String>> {
    let text = format!("[upstreams.up]\n{upstream}\n[[routes]]\nprimary = \"up\"\n");
    Config::from_toml(&text, &Overrides::default())
        .map_err(|error| error.problems().iter().map(ToString::to_string).collect())
}

#[test]
fn an_https_upstream_with_a_ca_file_and_a_client_certificate_is_accepted_and_printed_back() {
    let (_dir, file) = files();
    let config = load(&format!(
        "url = \"https://127.0.0.1:8443/\"\n[upstreams.up.tls]\nca_file = {:?}\n\
         client_cert = {:?}\nclient_key = {:?}\nserver_name = \"api.internal\"\n",
        file("ca.pem"),
        file("client.pem"),
        file("client.key"),
    ))
    .unwrap();
    let upstream = &config.upstreams["up"];
    assert_eq!(upstream.url, "https://127.0.0.1:8443");
    let tls = upstream.tls.as_ref().unwrap();
    assert_eq!(tls.server_name.as_deref(), Some("api.internal"));
    assert!(config.warnings().is_empty());
    let printed = config.to_toml().unwrap();
    assert!(printed.contains("[upstreams.up.tls]"), "{printed}");
    assert!(
        printed.contains("insecure_skip_verify = false"),
        "{printed}"
    );
}

#[test]
fn every_tls_problem_is_reported_at_once_each_under_its_key() {
    let problems = load(
        "url = \"https://127.0.0.1:8443\"\n[upstreams.up.tls]\n\
         ca_file = \"/nonexistent/ca.pem\"\nclient_cert = \"/nonexistent/c.pem\"\n\
         server_name = \"not a name\"\n",
    )
    .unwrap_err();
    let paths: Vec<&str> = problems
        .iter()
        .map(|problem| problem.split(": ").next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "upstreams.up.tls.server_name",
            "upstreams.up.tls.ca_file",
            "upstreams.up.tls.client_key",
        ],
        "{problems:#?}"
    );
    assert!(problems[1].contains("/nonexistent/ca.pem"), "{problems:#?}");
}

#[test]
fn tls_settings_on_a_plaintext_url_and_a_skipped_verification_with_a_ca_are_refused() {
    let (_dir, file) = files();
    let problems =
        load("url = \"http://127.0.0.1:80\"\ntls = { server_name = \"x\" }\n").unwrap_err();
    assert!(
        problems[0].starts_with("upstreams.up.tls: "),
        "{problems:#?}"
    );
    let problems = load(&format!(
        "url = \"https://127.0.0.1\"\ntls = {{ ca_file = {:?}, insecure_skip_verify = true }}\n",
        file("ca.pem")
    ))
    .unwrap_err();
    assert!(
        problems[0].starts_with("upstreams.up.tls.insecure_skip_verify: "),
        "{problems:#?}"
    );
}

#[test]
fn insecure_skip_verify_is_accepted_but_warned_about() {
    let config =
        load("url = \"https://[::1]:8443\"\ntls = { insecure_skip_verify = true }\n").unwrap();
    let warnings = config.warnings();
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("upstreams.up.tls.insecure_skip_verify"));
    assert!(warnings[0].contains("NOT verified"));
}

#[test]
fn a_client_key_that_is_not_a_key_is_reported_with_its_file() {
    let (_dir, file) = files();
    let problems = load(&format!(
        "url = \"https://127.0.0.1\"\ntls = {{ insecure_skip_verify = true, client_cert = {:?}, client_key = {:?} }}\n",
        file("client.pem"),
        file("client.pem"),
    ))
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].starts_with("upstreams.up.tls.client_key: "),
        "{problems:#?}"
    );
    assert!(problems[0].contains("client.pem"), "{problems:#?}");
}
