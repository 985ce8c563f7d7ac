//! The spec passes a real OpenAPI validator: `openapi-spec-validator` 0.9.0 from PyPI
//! (installed into the project's venv by `scripts/setup-apidocs.sh`), on the committed
//! document and on the per-deployment forms `seldon-mesh up` serves. A broken document is
//! refused by the same command, so the check can fail.

use std::path::{Path, PathBuf};
use std::process::Command;

use seldon_apidocs::{Target, for_deployment, spec};
use seldon_graph::Protocol;
use serde_json::json;

/// Runs the setup script; returns the venv's python.
fn python() -> PathBuf {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/setup-apidocs.sh"
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/setup-apidocs.sh failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("PYTHON="))
        .map(PathBuf::from)
        .expect("setup-apidocs.sh prints PYTHON=")
}

/// `openapi-spec-validator --schema 3.1 <file>`: exit status and output.
fn validate(python: &Path, file: &Path) -> (bool, String) {
    let out = Command::new(python)
        .args(["-m", "openapi_spec_validator", "--schema", "3.1"])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_spec_and_its_served_forms_pass_openapi_spec_validator() {
    let python = python();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("openapi.yaml");
    let (ok, text) = validate(&python, &committed);
    assert!(ok, "{text}");
    assert!(text.contains(": OK"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    for protocol in [Protocol::Seldon, Protocol::V2] {
        let served = for_deployment(
            &spec().unwrap(),
            &Target {
                namespace: "default".into(),
                deployment: "iris".into(),
                protocol,
                root: "classifier".into(),
                nodes: vec!["classifier".into()],
            },
        );
        let file = dir.path().join(format!("{protocol:?}.json"));
        std::fs::write(&file, serde_json::to_vec_pretty(&served).unwrap()).unwrap();
        let (ok, text) = validate(&python, &file);
        assert!(ok, "{protocol:?}: {text}");
    }
}

#[test]
fn a_broken_spec_is_refused_by_the_validator() {
    let python = python();
    let dir = tempfile::tempdir().unwrap();
    let mut broken = spec().unwrap();
    // An operation without `responses`, and a path parameter the path does not have.
    broken["paths"]["/live"]["get"]
        .as_object_mut()
        .unwrap()
        .remove("responses");
    broken["paths"]["/ready"]["get"]["parameters"] =
        json!([{"name": "nope", "in": "path", "required": true, "schema": {"type": "string"}}]);
    let file = dir.path().join("broken.json");
    std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
    let (ok, text) = validate(&python, &file);
    assert!(!ok, "the validator accepted a broken spec:\n{text}");
}
