//! A real `istioctl analyze` (Istio 1.31-dev, built once by `scripts/istio-test-env.sh`, which
//! this test calls, so a fresh machine builds it) on every rendered golden file, offline
//! (`--use-kube=false`), together with what a user installs from `istio/` (the Gateway the
//! VirtualServices bind to, the Telemetry, and `mesh-config.yaml`'s `meshConfig` as
//! `--meshConfigFile`), with `--all-namespaces` (without it, analyze looks only at `default`
//! and silently skips our `seldon` objects).
//!
//! Every message fails the test unless [`EXPLAINED`] lists its code, kind and text; each entry
//! has a one-line reason, repeated in the README ("`istioctl analyze`"). Positive control: the
//! one explained message (IST0133) must appear once per EnvoyFilter, which proves our objects
//! were analyzed. Negative control: the same golden without the EnvoyFilter `priority` must
//! give IST0151, the warning the priority is there to fix; and a misspelt field in the
//! node-calls EnvoyFilter's cluster must be reported, which proves analyze parses the added
//! clusters as Envoy `Cluster`s.
//!
//! Cold, the script builds Istio from the Go module proxy (~26 min on 2 cores, shared with the
//! mesh test); warm, this test takes about 2 s.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// (code, origin kind, message) that may remain, each with why.
const EXPLAINED: &[(&str, &str, &str, &str)] = &[(
    "IST0133",
    "EnvoyFilter",
    "Schema validation warning: EnvoyFilter exposes internal implementation details that may change at any time. Prefer other APIs if possible, and exercise extreme caution, especially around upgrades.",
    "every EnvoyFilter gets it; the graph buffer has no other API (WasmPlugin cannot hold a request from the router), and it patches only the stable upstream buffer filter before the router; the node-calls one (node calls localhost only) adds plain STATIC clusters, which no Istio API can add for a Wasm callout",
)];

fn istioctl() -> PathBuf {
    let out = Command::new("bash")
        .arg(repo().join("scripts/istio-test-env.sh"))
        .output()
        .expect("running scripts/istio-test-env.sh");
    assert!(
        out.status.success(),
        "scripts/istio-test-env.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let path = stdout
        .lines()
        .find(|l| l.ends_with("/istioctl"))
        .unwrap_or_else(|| panic!("no istioctl path in:\n{stdout}"));
    PathBuf::from(path)
}

/// `istio/mesh-config.yaml`'s `spec.meshConfig`, written where `--meshConfigFile` reads it.
struct MeshConfig(PathBuf);

impl MeshConfig {
    fn write(name: &str) -> Self {
        let text = std::fs::read_to_string(repo().join("istio/mesh-config.yaml")).unwrap();
        let operator: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        let mesh = &operator["spec"]["meshConfig"];
        assert!(
            mesh.is_mapping(),
            "istio/mesh-config.yaml has no spec.meshConfig"
        );
        let path = std::env::temp_dir().join(format!(
            "seldon-render-analyze-{}-{name}-mesh.yaml",
            std::process::id()
        ));
        std::fs::write(&path, serde_yaml::to_string(mesh).unwrap()).unwrap();
        Self(path)
    }
}

impl Drop for MeshConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// The messages `istioctl analyze` prints as JSON for `files` plus the `istio/` objects.
fn analyze(istioctl: &Path, mesh: &MeshConfig, files: &[PathBuf]) -> Vec<Value> {
    let out = Command::new(istioctl)
        .args([
            "analyze",
            "--use-kube=false",
            "--all-namespaces",
            "-o",
            "json",
        ])
        .arg("--meshConfigFile")
        .arg(&mesh.0)
        .arg(repo().join("istio/gateway.yaml"))
        .arg(repo().join("istio/telemetry.yaml"))
        .args(files)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // rc 0: nothing at Error level; 79: an Error-level message (judged below). Anything
    // else (a file it could not read or parse) fails here.
    assert!(
        matches!(out.status.code(), Some(0 | 79)),
        "istioctl analyze {files:?}: {:?}\n{stderr}",
        out.status
    );
    assert!(
        !stderr.contains("Error(s) adding files"),
        "{files:?}: {stderr}"
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "istioctl analyze output is not JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

fn goldens() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut out = Vec::new();
    for d in [dir.clone(), dir.join("options")] {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_explained(m: &Value) -> bool {
    let kind = m["origin"].as_str().unwrap_or_default().split(' ').next();
    EXPLAINED
        .iter()
        .any(|(code, k, text, _)| m["code"] == *code && kind == Some(*k) && m["message"] == *text)
}

fn envoy_filters(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter(|l| *l == "kind: EnvoyFilter")
        .count()
}

#[test]
fn every_rendered_golden_is_clean_or_explained() {
    let istioctl = istioctl();
    let mesh = MeshConfig::write("each");
    let files = goldens();
    assert!(files.len() >= 14, "{files:?}");
    for file in &files {
        let messages = analyze(&istioctl, &mesh, std::slice::from_ref(file));
        let unexplained: Vec<&Value> = messages.iter().filter(|m| !is_explained(m)).collect();
        assert!(
            unexplained.is_empty(),
            "{}: istioctl analyze reports what the README does not explain:\n{}",
            file.display(),
            serde_json::to_string_pretty(&unexplained).unwrap()
        );
        // positive control: our objects were analyzed (one IST0133 per EnvoyFilter)
        assert_eq!(
            messages.len(),
            envoy_filters(file),
            "{}: {messages:?}",
            file.display()
        );
    }
}

#[test]
fn all_samples_together_are_clean_or_explained() {
    // one cluster holding every sample: VirtualServices of all SeldonDeployments share the
    // gateway (as in the feasibility run, where the gateway merged 12 of them)
    let istioctl = istioctl();
    let mesh = MeshConfig::write("all");
    let files: Vec<PathBuf> = goldens()
        .into_iter()
        .filter(|p| !p.parent().unwrap().ends_with("options"))
        .collect();
    let messages = analyze(&istioctl, &mesh, &files);
    let unexplained: Vec<&Value> = messages.iter().filter(|m| !is_explained(m)).collect();
    assert!(
        unexplained.is_empty(),
        "{}",
        serde_json::to_string_pretty(&unexplained).unwrap()
    );
    assert_eq!(
        messages.len(),
        files.iter().map(|f| envoy_filters(f)).sum::<usize>()
    );
}

#[test]
fn without_its_priority_the_envoy_filter_gets_ist0151() {
    // the check can fail: the relative INSERT_BEFORE patch without a priority is IST0151
    let istioctl = istioctl();
    let mesh = MeshConfig::write("negative");
    let golden = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/sklearn-iris.yaml"),
    )
    .unwrap();
    let line = format!("  priority: {}\n", seldon_render::envoy_filter::PRIORITY);
    assert!(golden.contains(&line));
    let path = std::env::temp_dir().join(format!(
        "seldon-render-analyze-{}-no-priority.yaml",
        std::process::id()
    ));
    std::fs::write(&path, golden.replace(&line, "")).unwrap();
    let messages = analyze(&istioctl, &mesh, std::slice::from_ref(&path));
    let _ = std::fs::remove_file(&path);
    let codes: Vec<&str> = messages
        .iter()
        .filter(|m| !is_explained(m))
        .map(|m| m["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["IST0151"], "{messages:?}");
    assert_eq!(
        messages.iter().find(|m| m["code"] == "IST0151").unwrap()["origin"],
        "EnvoyFilter seldon/iris-default-graph-buffer"
    );
}

#[test]
fn a_misspelt_field_in_an_added_localhost_cluster_is_reported() {
    // the CLUSTER ADD values are parsed as envoy.config.cluster.v3.Cluster (strict): clean
    // above means Istio reads them as written
    let istioctl = istioctl();
    let mesh = MeshConfig::write("negative-cluster");
    let golden = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/transformer-model.yaml"),
    )
    .unwrap();
    assert_eq!(golden.matches("connect_timeout: 10s").count(), 2);
    let path = std::env::temp_dir().join(format!(
        "seldon-render-analyze-{}-bad-cluster.yaml",
        std::process::id()
    ));
    std::fs::write(
        &path,
        golden.replacen("connect_timeout:", "conect_timeout:", 1),
    )
    .unwrap();
    let messages = analyze(&istioctl, &mesh, std::slice::from_ref(&path));
    let _ = std::fs::remove_file(&path);
    let unexplained: Vec<&Value> = messages.iter().filter(|m| !is_explained(m)).collect();
    assert_eq!(unexplained.len(), 1, "{messages:?}");
    assert_eq!(
        unexplained[0]["origin"],
        "EnvoyFilter seldon/income-default-node-calls"
    );
    assert_eq!(
        unexplained[0]["message"],
        "Schema validation warning: Envoy filter: unknown field \"conect_timeout\" in envoy.config.cluster.v3.Cluster"
    );
}

/// The shipped `istio/local-replies.yaml` (issue 11: Envoy's own replies on the ingress
/// gateway as Seldon status JSON, from `seldon_envoy::local_reply`) with the mesh config
/// (`pathNormalization: MERGE_SLASHES`): only its IST0133, which also proves it was analyzed.
#[test]
fn the_shipped_local_replies_envoy_filter_is_clean_or_explained() {
    let istioctl = istioctl();
    let mesh = MeshConfig::write("local-replies");
    let file = repo().join("istio/local-replies.yaml");
    let messages = analyze(&istioctl, &mesh, std::slice::from_ref(&file));
    let unexplained: Vec<&Value> = messages.iter().filter(|m| !is_explained(m)).collect();
    assert!(
        unexplained.is_empty(),
        "{}",
        serde_json::to_string_pretty(&unexplained).unwrap()
    );
    assert_eq!(messages.len(), envoy_filters(&file), "{messages:?}");
    assert_eq!(envoy_filters(&file), 1);
}
