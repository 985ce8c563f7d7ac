//! Runs the built `seldon-mesh` binary on every sample and on broken inputs.

use std::path::PathBuf;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
}

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../manifests/samples")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

fn write(content: &str) -> tempfile::NamedTempFile {
    let f = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(f.path(), content).unwrap();
    f
}

#[test]
fn render_prints_each_samples_golden_manifests() {
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue; // samples/local/ holds local-mode samples, tested by tests/up.rs
        }
        let sample = path.file_stem().unwrap().to_string_lossy().to_string();
        let ingress = if sample.contains("ambassador") {
            "ambassador"
        } else {
            "istio"
        };
        let out = bin()
            .args(["render", "-f"])
            .arg(&path)
            .args(["--ingress", ingress])
            .output()
            .unwrap();
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{sample}: {stderr}");
        let golden = std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../render/tests/golden/{sample}.yaml")),
        )
        .unwrap();
        let body = golden.split_once('\n').unwrap().1; // minus the header comment
        assert_eq!(
            stdout, body,
            "{sample}: CLI output differs from the golden file"
        );
    }
}

#[test]
fn validate_accepts_every_sample() {
    for entry in std::fs::read_dir(samples_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.is_file() {
            continue; // samples/local/ holds local-mode samples, tested by tests/up.rs
        }
        let out = bin().args(["validate", "-f"]).arg(&path).output().unwrap();
        let (stdout, stderr) = text(&out);
        assert!(
            out.status.success(),
            "{}: {stdout} {stderr}",
            path.display()
        );
        assert!(stdout.contains("is valid"), "{stdout}");
    }
}

const BROKEN: &str = "apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: bad}
spec:
  predictors:
  - name: a
    traffic: 60
    graph:
      name: router
      type: ROUTER
      modelURI: x
      children:
      - {name: m1, implementation: SKLEARN_SERVER}
      - {name: m2, implementation: NOPE_SERVER, modelUri: gs://x}
  - name: a
    traffic: 30
    graph: {name: Bad_Name, implementation: SKLEARN_SERVER, modelUri: gs://y}
";

#[test]
fn validate_explains_every_problem_with_its_path() {
    let f = write(BROKEN);
    let out = bin()
        .args(["validate", "-f"])
        .arg(f.path())
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    for expected in [
        "has 7 problem(s)",
        "spec.predictors[0].graph.modelURI: unknown field",
        "spec.predictors[0].graph: node \"router\" has no container",
        "spec.predictors[1].name: duplicate predictor name \"a\"",
        "spec.predictors: traffic of the non-shadow predictors must sum to 100, got 90",
        "spec.predictors[0].graph.children[1].implementation: \"NOPE_SERVER\" is not a built-in implementation",
        "spec.predictors[0].graph.children[0].modelUri: prepackaged server SKLEARN_SERVER needs `modelUri`",
        "spec.predictors[1].graph: name must be a DNS-1123 label",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn yaml_and_type_errors_name_line_column_and_path() {
    let f = write(
        "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: x}\nspec:\n  predictors:\n  - name: a\n    replicas: lots\n",
    );
    let out = bin()
        .args(["validate", "-f"])
        .arg(f.path())
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("(line 7, column 15): spec.predictors[0].replicas: invalid type: string \"lots\", expected i32"), "{stdout}");

    let f = write("apiVersion: machinelearning.seldon.io/v1\nkind: [\n");
    let out = bin()
        .args(["validate", "-f"])
        .arg(f.path())
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("line 3"), "{stdout}");
}

#[test]
fn render_refuses_invalid_input_without_panicking() {
    let f = write(BROKEN);
    let out = bin().args(["render", "-f"]).arg(f.path()).output().unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty());
    assert!(
        stderr.starts_with("error: SeldonDeployment \"bad\""),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");

    let out = bin()
        .args(["render", "-f", "/does/not/exist.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).1.contains("reading /does/not/exist.yaml"),
        "{:?}",
        text(&out)
    );

    let f = write("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n");
    let out = bin()
        .args(["validate", "-f"])
        .arg(f.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .0
            .contains("apiVersion \"v1\" is not a SeldonDeployment version"),
        "{:?}",
        text(&out)
    );
}

#[test]
fn catalogue_flag_adds_user_servers() {
    let sdep = write(
        "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\nmetadata: {name: c, namespace: seldon}\nspec:\n  predictors:\n  - name: p\n    graph: {name: m, implementation: MY_SERVER, modelUri: gs://m}\n",
    );
    let out = bin()
        .args(["validate", "-f"])
        .arg(sdep.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out)
            .0
            .contains("\"MY_SERVER\" is not a built-in implementation")
    );
    let cat =
        write("servers:\n  MY_SERVER: {image: me/server:2, args: [\"--model={model_name}\"]}\n");
    let out = bin()
        .args(["render", "-f"])
        .arg(sdep.path())
        .arg("--catalogue")
        .arg(cat.path())
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("image: me/server:2") && stdout.contains("--model=m"),
        "{stdout}"
    );
    let out = bin()
        .env("SELDON_CATALOGUE", "/nope.yaml")
        .args(["render", "-f"])
        .arg(sdep.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).1.contains("reading /nope.yaml"));
}

/// `tests/golden/options/sklearn-iris-filter-url.yaml` is rendered with these (render's
/// `tests/options.rs`).
const CUSTOM_URL: &str = "oci://registry.example.com:5000/ml/graph-filter:0.1.0-rc1";
const CUSTOM_SHA: &str = "7f83b1657ff1fc53b92dc18148a1d65dfc2d4b1fa3d677284addd200126d9069";

#[test]
fn filter_url_flag_and_env_reach_the_wasm_plugin() {
    let golden = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../render/tests/golden/options/sklearn-iris-filter-url.yaml"),
    )
    .unwrap();
    let body = golden.split_once('\n').unwrap().1;
    let sample = samples_dir().join("sklearn-iris.yaml");
    let by_flag = bin()
        .args(["render", "-f"])
        .arg(&sample)
        .args(["--filter-url", CUSTOM_URL, "--filter-sha256", CUSTOM_SHA])
        .output()
        .unwrap();
    let by_env = bin()
        .env("SELDON_FILTER_URL", CUSTOM_URL)
        .env("SELDON_FILTER_SHA256", CUSTOM_SHA)
        .args(["render", "-f"])
        .arg(&sample)
        .output()
        .unwrap();
    for out in [by_flag, by_env] {
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stdout, body);
    }
}

#[test]
fn node_calls_flag_and_env_give_the_service_golden() {
    let golden = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../render/tests/golden/options/transformer-model-node-calls-service.yaml"),
    )
    .unwrap();
    let body = golden.split_once('\n').unwrap().1;
    let sample = samples_dir().join("transformer-model.yaml");
    let by_flag = bin()
        .args(["render", "-f"])
        .arg(&sample)
        .args(["--node-calls", "service"])
        .output()
        .unwrap();
    let by_env = bin()
        .env("SELDON_NODE_CALLS", "service")
        .args(["render", "-f"])
        .arg(&sample)
        .output()
        .unwrap();
    for out in [by_flag, by_env] {
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(stdout, body);
    }
    // localhost is the default: the plain golden
    let plain = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../render/tests/golden/transformer-model.yaml"),
    )
    .unwrap();
    let out = bin()
        .args(["render", "-f"])
        .arg(&sample)
        .args(["--node-calls", "localhost"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out).1);
    assert_eq!(text(&out).0, plain.split_once('\n').unwrap().1);
    assert_ne!(text(&out).0, body);
    let out = bin()
        .args(["render", "-f"])
        .arg(&sample)
        .args(["--node-calls", "pod"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("invalid value 'pod' for '--node-calls <NODE_CALLS>'"),
        "{stderr}"
    );
}

#[test]
fn filter_url_docker_hub_would_resolve_is_refused() {
    let out = bin()
        .args(["render", "-f"])
        .arg(samples_dir().join("sklearn-iris.yaml"))
        .args(["--filter-url", "oci://seldon-mesh/graph-filter:0.1.0"])
        .output()
        .unwrap();
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(
        stderr.starts_with(
            "error: filter URL \"oci://seldon-mesh/graph-filter:0.1.0\" names no registry host"
        ),
        "{stderr}"
    );
}

#[test]
fn validate_refuses_grpc_transport_with_the_reason() {
    let text_in = std::fs::read_to_string(samples_dir().join("sklearn-iris.yaml"))
        .unwrap()
        .replace("spec:\n", "spec:\n  transport: grpc\n");
    let f = write(&text_in);
    let out = bin()
        .args(["validate", "-f"])
        .arg(f.path())
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout.contains("has 1 problem(s)"), "{stdout}");
    assert!(
        stdout.contains("spec.transport: grpc is not served yet: the ingress routes REST only"),
        "{stdout}"
    );
    assert!(stdout.contains("Use transport: rest"), "{stdout}");
}

/// Nothing in a v1 manifest is dropped in silence (issue 10): `validate` prints the refusal of a
/// field and of an annotation seldon-mesh does not render, each with its path and what to do.
#[test]
fn validate_refuses_unrendered_v1_fields_with_what_to_do() {
    let text_in = std::fs::read_to_string(samples_dir().join("sklearn-iris.yaml"))
        .unwrap()
        .replace(
            "spec:\n",
            "spec:\n  annotations:\n    seldon.io/engine-separate-pod: \"true\"\n",
        )
        .replace(
            "  - name: default\n",
            "  - name: default\n    explainer: {type: Anchors, modelUri: gs://b/explainer}\n",
        );
    let f = write(&text_in);
    let out = bin()
        .args(["validate", "-f"])
        .arg(f.path())
        .output()
        .unwrap();
    let (stdout, _) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("has 2 problem(s)"), "{stdout}");
    assert!(
        stdout.contains(
            "spec.annotations[\"seldon.io/engine-separate-pod\"]: there is no executor container"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("spec.predictors[0].explainer.type: \"Anchors\" is not an Alibi explainer type Seldon knows (known: AnchorTabular,"),
        "{stdout}"
    );
}
