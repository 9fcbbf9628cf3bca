//! What deploy/ queries and deploys: the PromQL expressions of the Prometheus rules, the
//! Grafana dashboard and the Kubernetes analysis templates, and the Kubernetes documents.

use super::promql;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use yaml_rust2::{Yaml, YamlLoader};

/// A PromQL expression and where it was found.
pub struct Expression {
    pub source: String,
    pub promql: String,
}

fn deploy_files(dir: &str, extensions: &[&str]) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.extension()
                .is_some_and(|ext| extensions.iter().any(|e| ext == *e))
        })
        .collect();
    files.sort();
    files
}

fn yaml_documents(path: &Path) -> Vec<Yaml> {
    let text = std::fs::read_to_string(path).unwrap();
    YamlLoader::load_from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}

/// The rule files (not their unit tests): every expression, and the names they record.
pub fn rule_expressions() -> (Vec<Expression>, BTreeSet<String>) {
    let mut expressions = Vec::new();
    let mut recorded = BTreeSet::new();
    let files = deploy_files("prometheus", &["yml", "yaml"]);
    for file in files
        .iter()
        .filter(|f| !file_name(f).ends_with("_test.yml"))
    {
        for document in yaml_documents(file) {
            for group in document["groups"].as_vec().expect("groups") {
                for rule in group["rules"].as_vec().expect("rules") {
                    let name = match (rule["record"].as_str(), rule["alert"].as_str()) {
                        (Some(record), _) => {
                            recorded.insert(record.to_string());
                            record
                        }
                        (None, Some(alert)) => alert,
                        (None, None) => {
                            panic!("{}: a rule neither records nor alerts", file.display())
                        }
                    };
                    expressions.push(Expression {
                        source: format!("{} {name}", file_name(file)),
                        promql: rule["expr"].as_str().expect("expr").to_string(),
                    });
                }
            }
        }
    }
    (expressions, recorded)
}

/// The dashboard: every panel target (rows' nested panels too) and every query variable's
/// selector; panics when a required template variable is missing.
pub fn dashboard_expressions() -> Vec<Expression> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/shadowtap.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut expressions = Vec::new();
    let mut panels: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .collect();
    while let Some(panel) = panels.pop() {
        if let Some(nested) = panel["panels"].as_array() {
            panels.extend(nested);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            expressions.push(Expression {
                source: format!("shadowtap.json panel {:?}", panel["title"]),
                promql: target["expr"].as_str().expect("target expr").to_string(),
            });
        }
    }
    let variables = dashboard["templating"]["list"]
        .as_array()
        .expect("templating");
    let names: Vec<&str> = variables
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    for required in ["instance", "route", "shadow"] {
        assert!(
            names.contains(&required),
            "template variable {required} missing: {names:?}"
        );
    }
    for variable in variables.iter().filter(|v| v["type"] == "query") {
        let query = variable["query"]["query"]
            .as_str()
            .or(variable["query"].as_str())
            .expect("variable query");
        let selector = promql::grafana_variable_selector(query)
            .unwrap_or_else(|| panic!("variable {}: {query}", variable["name"]));
        expressions.push(Expression {
            source: format!("shadowtap.json variable {}", variable["name"]),
            promql: selector,
        });
    }
    expressions
}

/// Every Kubernetes document in deploy/kubernetes, with its file's name.
pub fn kubernetes_documents() -> Vec<(String, Yaml)> {
    deploy_files("kubernetes", &["yaml", "yml"])
        .iter()
        .flat_map(|file| {
            yaml_documents(file)
                .into_iter()
                .map(|document| (file_name(file), document))
        })
        .collect()
}

/// The Argo Rollouts AnalysisTemplate and Flagger MetricTemplate queries.
pub fn kubernetes_expressions() -> Vec<Expression> {
    let mut expressions = Vec::new();
    for (file, document) in kubernetes_documents() {
        let name = document["metadata"]["name"]
            .as_str()
            .unwrap_or("?")
            .to_string();
        match document["kind"].as_str() {
            Some("AnalysisTemplate") => {
                for metric in document["spec"]["metrics"].as_vec().expect("metrics") {
                    expressions.push(Expression {
                        source: format!("{file} {name}/{}", metric["name"].as_str().unwrap()),
                        promql: metric["provider"]["prometheus"]["query"]
                            .as_str()
                            .expect("prometheus query")
                            .to_string(),
                    });
                }
            }
            Some("MetricTemplate") => expressions.push(Expression {
                source: format!("{file} {name}"),
                promql: document["spec"]["query"]
                    .as_str()
                    .expect("query")
                    .to_string(),
            }),
            _ => {}
        }
    }
    expressions
}
