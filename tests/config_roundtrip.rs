#![allow(clippy::unwrap_used, clippy::expect_used)]
//! `shadowtap check` prints the effective config; that text must itself be a valid config
//! that means the same thing. For every example in `config/`, for `tests/configs/maximal.toml`
//! (every key set), and for generated variations of it: print, read back, print again, and
//! require success and the same text (a fixed point).
//!
//! The key coverage is generic: the parser is asked which keys each section accepts (by
//! the "unknown key, expected one of ..." answer to a probe key), and the maximal config's
//! effective form must contain each of them. A key added to the parser without being added
//! to `maximal.toml`, or printed under another name than it is read (`templates` against
//! `template`), fails here by name.

use proptest::prelude::*;
use proptest::test_runner::{Config as RunnerConfig, TestCaseError, TestRunner};
use shadowtap::config::{Config, Overrides};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The maximal config with its diff log placed in `dir`, and a client certificate and key
/// (made now, so no key is committed) written there for its TLS upstream.
fn maximal(dir: &Path) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/configs/maximal.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["client.test".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(dir.join("client.pem"), certificate.pem()).unwrap();
    std::fs::write(dir.join("client.key"), key.serialize_pem()).unwrap();
    let diff_log = dir.join("diffs.jsonl");
    text.replace("DIFF_LOG", diff_log.to_str().unwrap())
        .replace("TLS_DIR", dir.to_str().unwrap())
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml"))
        .collect();
    files.sort();
    files
}

/// `shadowtap check --config FILE`: (success, stdout, stderr).
fn check(file: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["check", "--config", file.to_str().unwrap()])
        .output()
        .expect("run shadowtap check");
    (
        output.status.success(),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn effective(text: &str) -> Result<String, String> {
    Config::from_toml(text, &Overrides::default())
        .map_err(|error| error.to_string())
        .map(|config| config.to_toml().expect("every valid config prints"))
}

#[test]
fn the_binary_prints_a_config_that_check_accepts_and_prints_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let maximal_file = dir.path().join("maximal.toml");
    std::fs::write(&maximal_file, maximal(dir.path())).unwrap();
    let mut files = examples();
    assert!(files.len() >= 3, "{files:?}");
    files.push(maximal_file);
    for (index, file) in files.iter().enumerate() {
        let (ok, printed, stderr) = check(file);
        assert!(ok, "{}: {stderr}", file.display());
        let again_file = dir.path().join(format!("printed-{index}.toml"));
        std::fs::write(&again_file, &printed).unwrap();
        let (ok, again, stderr) = check(&again_file);
        assert!(
            ok,
            "{}: check rejects its own output:\n{stderr}\n---\n{printed}",
            file.display()
        );
        assert_eq!(printed, again, "{}: not a fixed point", file.display());
    }
    assert!(
        !dir.path().join("diffs.jsonl").exists(),
        "check must not create the diff log"
    );
}

/// Where a probe key was inserted: the path of a table in the document.
#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn node_mut<'a>(root: &'a mut toml::Value, path: &[Step]) -> &'a mut toml::Value {
    path.iter().fold(root, |node, step| match step {
        Step::Key(key) => node.get_mut(key.as_str()).unwrap(),
        Step::Index(index) => node.get_mut(*index).unwrap(),
    })
}

fn show(path: &[Step]) -> String {
    let mut out = String::new();
    for step in path {
        match step {
            Step::Key(key) if out.is_empty() => out.push_str(key),
            Step::Key(key) => {
                out.push('.');
                out.push_str(key);
            }
            Step::Index(index) => out.push_str(&format!("[{index}]")),
        }
    }
    out
}

/// Every table in the document (arrays of tables included), with its path.
fn tables(node: &toml::Value, path: Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match node {
        toml::Value::Table(table) => {
            out.push(path.clone());
            for (key, value) in table {
                let mut inner = path.clone();
                inner.push(Step::Key(key.clone()));
                tables(value, inner, out);
            }
        }
        toml::Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                let mut inner = path.clone();
                inner.push(Step::Index(index));
                tables(item, inner, out);
            }
        }
        _ => {}
    }
}

const PROBE: &str = "zz_probe_key";

/// The keys the parser accepts in the table at `path`, from its answer to an unknown key;
/// `None` for tables that are maps of names (upstreams, noise, add_headers).
fn accepted_keys(document: &toml::Value, path: &[Step]) -> Option<Vec<String>> {
    let mut probed = document.clone();
    node_mut(&mut probed, path)
        .as_table_mut()
        .unwrap()
        .insert(PROBE.to_string(), toml::Value::Boolean(true));
    let text = toml::to_string(&probed).unwrap();
    let error = Config::from_toml(&text, &Overrides::default()).unwrap_err();
    let problem = error
        .problems()
        .iter()
        .find(|problem| problem.path.ends_with(PROBE))
        .unwrap_or_else(|| panic!("{}: probe not reported: {error}", show(path)));
    let reason = &problem.reason;
    if let Some(list) = reason.split_once("expected one of: ").map(|(_, list)| list) {
        // The top level's own message: a plain comma list.
        let list = list.trim_end_matches(')');
        return Some(list.split(", ").map(str::to_string).collect());
    }
    let (_, expected) = reason.strip_prefix("unknown key")?.split_once("expected")?;
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn the_maximal_config_sets_every_key_the_parser_accepts_and_prints_each_under_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let printed = effective(&maximal(dir.path())).unwrap();
    let document: toml::Value = toml::from_str(&printed).unwrap();
    let mut all = Vec::new();
    tables(&document, Vec::new(), &mut all);
    // A section may appear several times (routes[0], routes[1]) with different keys set,
    // some of them exclusive (sticky's header, cookie, query): the union over all instances
    // of one section must hold every accepted key.
    let mut probed = 0;
    let mut sections: std::collections::BTreeMap<String, (Vec<String>, Vec<String>)> =
        Default::default();
    for path in all {
        let Some(accepted) = accepted_keys(&document, &path) else {
            continue;
        };
        probed += 1;
        let mut here = document.clone();
        let present: Vec<String> = node_mut(&mut here, &path)
            .as_table()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        // Upstreams are a map of names, instances of one section like routes[0] and
        // routes[1]: a plaintext one has no `tls` table, an https one has.
        let under_upstreams = matches!(path.first(), Some(Step::Key(key)) if key == "upstreams");
        let section: Vec<Step> = path
            .iter()
            .enumerate()
            .map(|(at, step)| match step {
                Step::Index(_) => Step::Key("[*]".to_string()),
                Step::Key(_) if at == 1 && under_upstreams => Step::Key("*".to_string()),
                key => key.clone(),
            })
            .collect();
        let entry = sections
            .entry(show(&section).replace(".[*]", "[*]"))
            .or_default();
        entry.0.extend(accepted);
        entry.1.extend(present);
    }
    let mut missing = Vec::new();
    for (section, (accepted, present)) in &sections {
        for key in accepted {
            if !present.contains(key) && !missing.contains(&format!("{section} -> {key}")) {
                missing.push(format!("{section} -> {key}"));
            }
        }
    }
    // Top level, 2 listeners, admin, 4 upstreams, 3 routes (+ their compare, mirror, shadows,
    // sticky, path_rewrite), runtime, shutdown, logging, mirror, breaker, compare.
    assert!(probed >= 25, "only {probed} sections probed");
    assert!(
        missing.is_empty(),
        "keys the parser accepts but the effective config of tests/configs/maximal.toml \
         lacks (add them there, and print them under the name they are read with):\n{}",
        missing.join("\n")
    );
}

/// One change to the maximal config: which leaf, and the raw material for its new value.
#[derive(Debug, Clone)]
struct Mutation {
    leaf: prop::sample::Index,
    int: i64,
    float: f64,
    flag: bool,
    word: prop::sample::Index,
    words: Vec<prop::sample::Index>,
    millis: u64,
    /// Draw a string of the same kind as the one replaced (a duration for a duration, an
    /// address for an address), so most variations stay valid and reach the printer.
    same_kind: bool,
}

/// Strings that mean something to some key (addresses, URLs, durations, names, paths,
/// header names, enum words), and some that mean nothing.
const WORDS: &[&str] = &[
    "",
    "x",
    "prod",
    "canary",
    "prod-b",
    "127.0.0.1:0",
    "[::1]:0",
    "0.0.0.0:0",
    "http://127.0.0.1:9",
    "http://[::1]:9/",
    "http://Shadow.Internal:8080",
    "https://127.0.0.1:9",
    "all",
    "ALL",
    "native",
    "hyper",
    "human",
    "json",
    "http1",
    "http2",
    "/",
    "/v1/",
    "/users/{id}",
    "/items/*/price",
    "X-User",
    "x-user",
    "bad header",
    "*.example.com",
    "Example.COM",
    "noise",
    "signal",
    "GET",
    "1ms",
    "90s",
    "1h 2m 3s",
    "2days",
    "0s",
    "diffs.jsonl",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        any::<prop::sample::Index>(),
        prop_oneof![
            Just(0i64),
            Just(1),
            0i64..100_000,
            Just(i64::from(u32::MAX) + 1),
            Just(i64::MAX),
            Just(-1),
        ],
        prop_oneof![
            0.0..=1.0f64,
            0.0..=150.0f64,
            Just(0.0),
            Just(1e-9),
            Just(100.0)
        ],
        any::<bool>(),
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..4),
        0u64..10_000_000,
        prop::bool::weighted(0.75),
    )
        .prop_map(
            |(leaf, int, float, flag, word, words, millis, same_kind)| Mutation {
                leaf,
                int,
                float,
                flag,
                word,
                words,
                millis,
                same_kind,
            },
        )
}

/// Every leaf (a value that is not a table or an array of tables), with its path.
fn leaves(node: &toml::Value, path: Vec<Step>, out: &mut Vec<Vec<Step>>) {
    match node {
        toml::Value::Table(table) => {
            for (key, value) in table {
                let mut inner = path.clone();
                inner.push(Step::Key(key.clone()));
                leaves(value, inner, out);
            }
        }
        toml::Value::Array(items) if items.iter().any(toml::Value::is_table) => {
            for (index, item) in items.iter().enumerate() {
                let mut inner = path.clone();
                inner.push(Step::Index(index));
                leaves(item, inner, out);
            }
        }
        _ => out.push(path),
    }
}

const ADDRESSES: &[&str] = &["127.0.0.1:0", "[::1]:0", "0.0.0.0:0", "[::]:0"];
const URLS: &[&str] = &[
    "http://127.0.0.1:9",
    "http://[::1]:9/",
    "http://Shadow.Internal:8080",
    "http://10.1.2.3",
];

fn word(mutation: &Mutation, current: &str, index: &prop::sample::Index) -> String {
    if mutation.same_kind {
        if humantime::parse_duration(current).is_ok() {
            return duration(mutation, index.index(2) == 0);
        }
        if current.parse::<std::net::SocketAddr>().is_ok() {
            return index.get(ADDRESSES).to_string();
        }
        if current.starts_with("http://") {
            return index.get(URLS).to_string();
        }
    }
    // Some strings are durations made from a number, in both spellings users write.
    let pool = WORDS.len() + 2;
    match index.index(pool) {
        i if i == WORDS.len() => duration(mutation, true),
        i if i == WORDS.len() + 1 => duration(mutation, false),
        i => WORDS[i].to_string(),
    }
}

/// A positive duration as `"1234ms"` or as humantime spells it (`"1s 234ms"`).
fn duration(mutation: &Mutation, millis_only: bool) -> String {
    let millis = mutation.millis.max(1);
    if millis_only {
        format!("{millis}ms")
    } else {
        humantime::format_duration(std::time::Duration::from_millis(millis)).to_string()
    }
}

fn apply(document: &mut toml::Value, mutation: &Mutation) -> String {
    let mut all = Vec::new();
    leaves(document, Vec::new(), &mut all);
    let path = &all[mutation.leaf.index(all.len())];
    let leaf = node_mut(document, path);
    *leaf = match &*leaf {
        toml::Value::Integer(_) => toml::Value::Integer(mutation.int),
        toml::Value::Float(_) => toml::Value::Float(mutation.float),
        toml::Value::Boolean(_) => toml::Value::Boolean(mutation.flag),
        toml::Value::String(current) => {
            toml::Value::String(word(mutation, current, &mutation.word))
        }
        // Same kind: the list's own items, reordered, repeated or dropped.
        toml::Value::Array(items) if mutation.same_kind && !items.is_empty() => toml::Value::Array(
            mutation
                .words
                .iter()
                .map(|index| index.get(items).clone())
                .collect(),
        ),
        toml::Value::Array(_) => toml::Value::Array(
            mutation
                .words
                .iter()
                .map(|index| toml::Value::String(word(mutation, "", index)))
                .collect(),
        ),
        other => other.clone(),
    };
    show(path)
}

#[test]
fn every_accepted_variation_of_the_maximal_config_prints_a_fixed_point() {
    let dir = tempfile::tempdir().unwrap();
    // Start from the effective form, so every printed key (defaults included) can change.
    let base: toml::Value = toml::from_str(&effective(&maximal(dir.path())).unwrap()).unwrap();
    let accepted = AtomicUsize::new(0);
    let cases = 512;
    // A fixed seed: the same variations on every run and machine (a failure reproduces;
    // the share of valid variations below cannot drift with luck).
    let mut runner = TestRunner::new_with_rng(
        RunnerConfig {
            cases,
            failure_persistence: None,
            ..RunnerConfig::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    );
    let strategy = prop::collection::vec(mutation(), 1..4);
    runner
        .run(&strategy, |mutations| {
            let mut document = base.clone();
            let changed: Vec<String> = mutations
                .iter()
                .map(|mutation| apply(&mut document, mutation))
                .collect();
            let text = toml::to_string(&document).unwrap();
            let Ok(printed) = effective(&text) else {
                return Ok(());
            };
            accepted.fetch_add(1, Ordering::Relaxed);
            let again = effective(&printed).map_err(|error| {
                TestCaseError::fail(format!(
                    "changed {changed:?}; the printed config is refused:\n{error}\n---\n{printed}"
                ))
            })?;
            prop_assert!(
                printed == again,
                "changed {:?}; not a fixed point:\n{}",
                changed,
                line_diff(&printed, &again)
            );
            Ok(())
        })
        .unwrap();
    // Most variations are valid configs; a generator that only made invalid ones would prove nothing.
    let accepted = accepted.load(Ordering::Relaxed);
    eprintln!("{accepted} of {cases} variations were valid");
    assert!(
        accepted * 4 >= cases as usize,
        "only {accepted} of {cases} variations were valid"
    );
}

/// The lines only one of two texts has, marked `-` (first) and `+` (second).
fn line_diff(first: &str, second: &str) -> String {
    let only = |a: &str, b: &str, mark: char| -> Vec<String> {
        a.lines()
            .filter(|line| !b.lines().any(|other| other == *line))
            .map(|line| format!("{mark} {line}"))
            .collect()
    };
    let mut out = only(first, second, '-');
    out.extend(only(second, first, '+'));
    out.join("\n")
}
