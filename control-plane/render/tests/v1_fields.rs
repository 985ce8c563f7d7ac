//! Nothing in a Seldon v1 manifest is dropped in silence (issue 10): for every field of Seldon
//! Core v1.18.2's SeldonDeployment types (`data/seldon-v1-fields.txt`, derived from Seldon's
//! Go types by `data/derive_seldon_v1_fields.py`) and every `seldon.io/*` annotation Seldon
//! reads (`data/seldon-v1-annotations.txt`), a sample manifest sets it and the test asserts one
//! of:
//!
//! - `Rendered(needle)`: `render` succeeds and the needle is in the rendered YAML but not in the
//!   render of the base manifest (`!needle`: absent from the rendered YAML, present in the base);
//! - `Refused`: `render` fails and a violation's path is the field's path or a parent of it
//!   (e.g. `spec.predictors[0].explainer` for `explainer.type`);
//! - `Inert(reason)`: the few fields Seldon v1 ignores or overwrites itself: the render is
//!   byte-identical with and without them.
//!
//! Every line of the data files needs an entry here, and every entry a line: a field added to
//! the list (or forgotten here) fails the test.

use std::collections::BTreeSet;

use seldon_render::{Ingress, RenderOptions, render, to_yaml};
use serde_json::Value;

const BASE: &str = "
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: fields, namespace: ns}
spec:
  predictors:
  - name: p
    componentSpecs:
    - spec:
        containers: [{name: clf, image: example/clf:1}]
    graph: {name: clf, type: MODEL}
";

/// A second predictor (merged as `predictors[1]`), for traffic and shadow.
const SECOND: &str = "{name: q, componentSpecs: [{spec: {containers: [{name: clf, image: example/clf:2}]}}], graph: {name: clf, type: MODEL}}";

#[derive(Debug, Clone)]
enum Expect {
    Rendered(&'static str),
    Refused,
    Inert(&'static str),
}
use Expect::*;

struct Case {
    /// The field as listed in the data file.
    field: &'static str,
    /// YAML merged into BASE (maps merged key by key, lists element by element).
    patch: String,
    expect: Expect,
    /// Render with `--ingress ambassador` and the gRPC entry (for Ambassador annotations).
    ambassador: bool,
    /// For `Inert`: the manifest to compare with (merged into BASE) when it is not BASE
    /// itself, e.g. an explainer without the explainer field under test.
    inert_against: Option<&'static str>,
}

fn case(field: &'static str, patch: &str, expect: Expect) -> Case {
    Case {
        field,
        patch: patch.to_string(),
        expect,
        ambassador: false,
        inert_against: None,
    }
}

/// A patch at `spec.predictors[0]`.
fn pred(field: &'static str, inner: &str, expect: Expect) -> Case {
    case(
        field,
        &format!("{{spec: {{predictors: [{inner}]}}}}"),
        expect,
    )
}

/// A patch at `spec.predictors[0].componentSpecs[0]`.
fn comp(field: &'static str, inner: &str, expect: Expect) -> Case {
    pred(field, &format!("{{componentSpecs: [{inner}]}}"), expect)
}

/// A patch at `spec.predictors[0].graph`.
fn graph(field: &'static str, inner: &str, expect: Expect) -> Case {
    pred(field, &format!("{{graph: {inner}}}"), expect)
}

const SEQ_ANNOTATION: &str = "seldon.io/engine-*";

/// The explainer the explainer fields' cases add to (their `Inert` baseline).
const EXPLAINER: &str = "{spec: {predictors: [{explainer: {type: AnchorTabular}}]}}";

fn field_cases() -> Vec<Case> {
    let keda = |f: &'static str, v: &str, needle: &'static str| {
        comp(
            f,
            &format!("{{kedaSpec: {{{v}, triggers: [{{type: cpu, metadata: {{value: '50'}}}}]}}}}"),
            Rendered(needle),
        )
    };
    // an explainer with a type (Seldon's image needs one) plus the field under test
    let explainer = |f: &'static str, v: &str, expect: Expect| {
        pred(
            f,
            &format!("{{explainer: {{type: AnchorTabular, {v}}}}}"),
            expect,
        )
    };
    let explainer_v2 = |f: &'static str, v: &str, needle: &'static str| {
        case(
            f,
            &format!(
                "{{spec: {{protocol: v2, predictors: [{{explainer: {{type: AnchorTabular, {v}}}}}]}}}}"
            ),
            Rendered(needle),
        )
    };
    let svc_orch =
        |f: &'static str, v: &str| pred(f, &format!("{{svcOrchSpec: {{{v}}}}}"), Refused);
    let overwritten = Inert(
        "filled in by the operator from the node's container ports, as Seldon v1 does (a user value is overwritten there too)",
    );
    vec![
        case(
            "metadata.labels",
            "{metadata: {labels: {team: fraud}}}",
            Inert(
                "labels of the SeldonDeployment object itself (kept by the API server); Seldon v1 copies none of them to the objects it creates either (predictor and componentSpec labels are copied, see below); seldon.io/controller-id is refused (annotations list)",
            ),
        ),
        case(
            "metadata.annotations",
            "{metadata: {annotations: {seldon.io/rest-timeout: '1234'}}}",
            Rendered("1234"),
        ),
        case(
            "spec.name",
            "{spec: {name: legacy-name}}",
            Inert("deprecated; Seldon 1.18 reads it nowhere either"),
        ),
        case("spec.predictors", "{}", Rendered("name: fields-p")),
        pred("spec.predictors.name", "{}", Rendered("subset: p")),
        pred("spec.predictors.graph", "{}", Rendered("seldon.io/model")),
        comp(
            "spec.predictors.componentSpecs",
            "{}",
            Rendered("example/clf:1"),
        ),
        comp(
            "spec.predictors.componentSpecs.metadata",
            "{metadata: {labels: {tier: gold}}}",
            Rendered("tier: gold"),
        ),
        comp(
            "spec.predictors.componentSpecs.spec",
            "{spec: {terminationGracePeriodSeconds: 77}}",
            Rendered("terminationGracePeriodSeconds: 77"),
        ),
        comp(
            "spec.predictors.componentSpecs.hpaSpec",
            "{hpaSpec: {maxReplicas: 7}}",
            Rendered("HorizontalPodAutoscaler"),
        ),
        comp(
            "spec.predictors.componentSpecs.hpaSpec.minReplicas",
            "{hpaSpec: {minReplicas: 3, maxReplicas: 7}}",
            Rendered("minReplicas: 3"),
        ),
        comp(
            "spec.predictors.componentSpecs.hpaSpec.maxReplicas",
            "{hpaSpec: {maxReplicas: 7}}",
            Rendered("maxReplicas: 7"),
        ),
        comp(
            "spec.predictors.componentSpecs.hpaSpec.metrics",
            "{hpaSpec: {maxReplicas: 7, metrics: [{type: Resource, resource: {name: cpu, targetAverageUtilization: 71}}]}}",
            Rendered("averageUtilization: 71"),
        ),
        comp(
            "spec.predictors.componentSpecs.hpaSpec.metricsv2",
            "{hpaSpec: {maxReplicas: 7, metricsv2: [{type: Resource, resource: {name: memory, target: {type: Utilization, averageUtilization: 72}}}]}}",
            Rendered("averageUtilization: 72"),
        ),
        comp(
            "spec.predictors.componentSpecs.replicas",
            "{replicas: 4}",
            Rendered("replicas: 4"),
        ),
        comp(
            "spec.predictors.componentSpecs.kedaSpec",
            "{kedaSpec: {triggers: [{type: cpu, metadata: {value: '50'}}]}}",
            Rendered("kind: ScaledObject"),
        ),
        keda(
            "spec.predictors.componentSpecs.kedaSpec.pollingInterval",
            "pollingInterval: 15",
            "pollingInterval: 15",
        ),
        keda(
            "spec.predictors.componentSpecs.kedaSpec.cooldownPeriod",
            "cooldownPeriod: 301",
            "cooldownPeriod: 301",
        ),
        keda(
            "spec.predictors.componentSpecs.kedaSpec.minReplicaCount",
            "minReplicaCount: 1",
            "minReplicaCount: 1",
        ),
        keda(
            "spec.predictors.componentSpecs.kedaSpec.maxReplicaCount",
            "maxReplicaCount: 5",
            "maxReplicaCount: 5",
        ),
        keda(
            "spec.predictors.componentSpecs.kedaSpec.advanced",
            "advanced: {restoreToOriginalReplicaCount: true}",
            "restoreToOriginalReplicaCount: true",
        ),
        comp(
            "spec.predictors.componentSpecs.kedaSpec.triggers",
            "{kedaSpec: {triggers: [{type: prometheus, metadata: {query: up_total}}]}}",
            Rendered("query: up_total"),
        ),
        keda(
            "spec.predictors.componentSpecs.kedaSpec.idleReplicaCount",
            "idleReplicaCount: 0",
            "idleReplicaCount: 0",
        ),
        keda(
            "spec.predictors.componentSpecs.kedaSpec.fallback",
            "fallback: {failureThreshold: 3, replicas: 2}",
            "failureThreshold: 3",
        ),
        comp(
            "spec.predictors.componentSpecs.pdbSpec",
            "{pdbSpec: {minAvailable: 2}}",
            Rendered("PodDisruptionBudget"),
        ),
        comp(
            "spec.predictors.componentSpecs.pdbSpec.minAvailable",
            "{pdbSpec: {minAvailable: 2}}",
            Rendered("minAvailable: 2"),
        ),
        comp(
            "spec.predictors.componentSpecs.pdbSpec.maxUnavailable",
            "{pdbSpec: {maxUnavailable: 33%}}",
            Rendered("maxUnavailable: 33%"),
        ),
        pred(
            "spec.predictors.replicas",
            "{replicas: 5}",
            Rendered("replicas: 5"),
        ),
        pred(
            "spec.predictors.annotations",
            "{annotations: {seldon.io/rest-timeout: '4321'}}",
            Rendered("4321"),
        ),
        pred(
            "spec.predictors.engineResources",
            "{engineResources: {requests: {cpu: '1'}}}",
            Refused,
        ),
        pred(
            "spec.predictors.labels",
            "{labels: {owner: ml-team}}",
            Rendered("owner: ml-team"),
        ),
        svc_orch("spec.predictors.svcOrchSpec", "replicas: 2"),
        svc_orch(
            "spec.predictors.svcOrchSpec.resources",
            "resources: {requests: {cpu: '1'}}",
        ),
        svc_orch(
            "spec.predictors.svcOrchSpec.env",
            "env: [{name: SELDON_LOG_LEVEL, value: DEBUG}]",
        ),
        svc_orch("spec.predictors.svcOrchSpec.replicas", "replicas: 2"),
        case(
            "spec.predictors.traffic",
            &format!(
                "{{spec: {{predictors: [{{traffic: 60}}, {}]}}}}",
                SECOND.replace("{name: q,", "{name: q, traffic: 40,")
            ),
            Rendered("weight: 40"),
        ),
        pred(
            "spec.predictors.explainer",
            "{explainer: {type: AnchorTabular}}",
            Rendered("name: fields-p-explainer"),
        ),
        pred(
            "spec.predictors.explainer.type",
            "{explainer: {type: KernelShap}}",
            Rendered("- KernelShap"),
        ),
        explainer(
            "spec.predictors.explainer.modelUri",
            "modelUri: gs://b/explainer",
            Rendered("gs://b/explainer"),
        ),
        explainer(
            "spec.predictors.explainer.serviceAccountName",
            "serviceAccountName: sa-explainer",
            Rendered("serviceAccountName: sa-explainer"),
        ),
        explainer(
            "spec.predictors.explainer.containerSpec",
            "containerSpec: {name: explainer, image: example/explainer:1}",
            Rendered("example/explainer:1"),
        ),
        explainer(
            "spec.predictors.explainer.config",
            "config: {threshold: '0.95'}",
            Rendered("--threshold=0.95"),
        ),
        explainer(
            "spec.predictors.explainer.endpoint",
            "endpoint: {service_port: 9123}",
            Rendered("--http_port=9123"),
        ),
        Case {
            inert_against: Some(EXPLAINER),
            ..explainer(
                "spec.predictors.explainer.endpoint.service_host",
                "endpoint: {service_host: h}",
                Inert(
                    "Seldon's explainer reads only endpoint.service_port and type: its Service name is derived (`<sdep>-<pred>-explainer`)",
                ),
            )
        },
        explainer(
            "spec.predictors.explainer.endpoint.service_port",
            "endpoint: {service_port: 9123}",
            Rendered("containerPort: 9123"),
        ),
        explainer(
            "spec.predictors.explainer.endpoint.type",
            "endpoint: {type: GRPC}",
            Refused,
        ),
        Case {
            inert_against: Some(EXPLAINER),
            ..explainer(
                "spec.predictors.explainer.endpoint.httpPort",
                "endpoint: {httpPort: 9124}",
                Inert(
                    "Seldon's explainer reads only endpoint.service_port (its http port) and type",
                ),
            )
        },
        Case {
            inert_against: Some(EXPLAINER),
            ..explainer(
                "spec.predictors.explainer.endpoint.grpcPort",
                "endpoint: {grpcPort: 9501}",
                Inert(
                    "Seldon's explainer serves HTTP only and reads only endpoint.service_port and type",
                ),
            )
        },
        explainer(
            "spec.predictors.explainer.envSecretRefName",
            "modelUri: gs://b/e, envSecretRefName: explainer-secret",
            Rendered("explainer-secret"),
        ),
        explainer(
            "spec.predictors.explainer.storageInitializerImage",
            "modelUri: gs://b/e, storageInitializerImage: example/init:3",
            Rendered("example/init:3"),
        ),
        explainer(
            "spec.predictors.explainer.replicas",
            "replicas: 3",
            Rendered("replicas: 3"),
        ),
        explainer_v2(
            "spec.predictors.explainer.initParameters",
            "initParameters: '{\"threshold\": 0.9}'",
            "\"init_parameters\":{\"threshold\":0.9}",
        ),
        case(
            "spec.predictors.shadow",
            &format!(
                "{{spec: {{predictors: [{{}}, {}]}}}}",
                SECOND.replace("{name: q,", "{name: q, shadow: true,")
            ),
            Rendered("mirror"),
        ),
        pred(
            "spec.predictors.ssl",
            "{ssl: {certSecretName: tls-secret}}",
            Refused,
        ),
        pred(
            "spec.predictors.ssl.certSecretName",
            "{ssl: {certSecretName: tls-secret}}",
            Refused,
        ),
        pred(
            "spec.predictors.progressDeadlineSeconds",
            "{progressDeadlineSeconds: 611}",
            Rendered("progressDeadlineSeconds: 611"),
        ),
        case("spec.oauth_key", "{spec: {oauth_key: k}}", Refused),
        case("spec.oauth_secret", "{spec: {oauth_secret: s}}", Refused),
        case(
            "spec.annotations",
            "{spec: {annotations: {seldon.io/rest-timeout: '2468'}}}",
            Rendered("2468"),
        ),
        case(
            "spec.protocol",
            "{spec: {protocol: v2}}",
            Rendered("protocol: v2"),
        ),
        case("spec.transport", "{spec: {transport: grpc}}", Refused),
        case(
            "spec.replicas",
            "{spec: {replicas: 6}}",
            Rendered("replicas: 6"),
        ),
        case("spec.serverType", "{spec: {serverType: kafka}}", Refused),
        graph("spec.predictors.graph.name", "{}", Rendered("name: clf")),
        case(
            "spec.predictors.graph.children",
            "{spec: {predictors: [{componentSpecs: [{spec: {containers: [{}, {name: child, image: example/child:1}]}}], graph: {type: TRANSFORMER, children: [{name: child, type: MODEL}]}}]}}",
            Rendered("fields-p-child"),
        ),
        graph(
            "spec.predictors.graph.type",
            "{type: TRANSFORMER}",
            Rendered("seldon.io/transformer"),
        ),
        graph(
            "spec.predictors.graph.implementation",
            "{implementation: SKLEARN_SERVER, modelUri: gs://b/m}",
            Rendered("SKLEARN"),
        ),
        graph(
            "spec.predictors.graph.methods",
            "{type: UNKNOWN_TYPE, methods: [TRANSFORM_INPUT]}",
            Rendered("TRANSFORM_INPUT"),
        ),
        graph(
            "spec.predictors.graph.endpoint",
            "{endpoint: {type: GRPC}}",
            Refused,
        ),
        graph(
            "spec.predictors.graph.endpoint.service_host",
            "{endpoint: {service_host: elsewhere}}",
            overwritten.clone(),
        ),
        graph(
            "spec.predictors.graph.endpoint.service_port",
            "{endpoint: {service_port: 1234}}",
            overwritten.clone(),
        ),
        graph(
            "spec.predictors.graph.endpoint.type",
            "{endpoint: {type: GRPC}}",
            Refused,
        ),
        graph(
            "spec.predictors.graph.endpoint.httpPort",
            "{endpoint: {httpPort: 1234}}",
            overwritten.clone(),
        ),
        graph(
            "spec.predictors.graph.endpoint.grpcPort",
            "{endpoint: {grpcPort: 1235}}",
            overwritten,
        ),
        graph(
            "spec.predictors.graph.parameters",
            "{parameters: [{name: alphaparam, value: '0.5', type: FLOAT}]}",
            Rendered("alphaparam"),
        ),
        graph(
            "spec.predictors.graph.parameters.name",
            "{parameters: [{name: alphaparam, value: '0.5', type: FLOAT}]}",
            Rendered("alphaparam"),
        ),
        graph(
            "spec.predictors.graph.parameters.value",
            "{parameters: [{name: alphaparam, value: '0.567', type: FLOAT}]}",
            Rendered("0.567"),
        ),
        graph(
            "spec.predictors.graph.parameters.type",
            "{parameters: [{name: alphaparam, value: '0.5', type: FLOAT}]}",
            Rendered("FLOAT"),
        ),
        graph(
            "spec.predictors.graph.modelUri",
            "{modelUri: gs://bucket/model}",
            Rendered("gs://bucket/model"),
        ),
        graph(
            "spec.predictors.graph.serviceAccountName",
            "{serviceAccountName: sa-model}",
            Rendered("serviceAccountName: sa-model"),
        ),
        graph(
            "spec.predictors.graph.envSecretRefName",
            "{modelUri: gs://b/m, envSecretRefName: secret-x}",
            Rendered("secret-x"),
        ),
        graph(
            "spec.predictors.graph.storageInitializerImage",
            "{modelUri: gs://b/m, storageInitializerImage: example/init:2}",
            Rendered("example/init:2"),
        ),
        graph(
            "spec.predictors.graph.logger",
            "{logger: {url: 'http://logger.example:8080', mode: all}}",
            Rendered("logger.example"),
        ),
        graph(
            "spec.predictors.graph.logger.url",
            "{logger: {url: 'http://logger.example:8080', mode: all}}",
            Rendered("logger.example"),
        ),
        graph(
            "spec.predictors.graph.logger.mode",
            "{logger: {mode: request}}",
            Rendered("mode: request"),
        ),
    ]
}

fn annotation_cases() -> Vec<Case> {
    let ann = |key: &'static str, value: &str, expect: Expect| {
        case(
            key,
            &format!("{{spec: {{annotations: {{{key}: '{value}'}}}}}}"),
            expect,
        )
    };
    let amb = |key: &'static str, value: &str, expect: Expect| Case {
        ambassador: true,
        ..ann(key, value, expect)
    };
    vec![
        amb(
            "seldon.io/ambassador-circuit-breakers-max-connections",
            "10",
            Refused,
        ),
        amb(
            "seldon.io/ambassador-circuit-breakers-max-pending-requests",
            "10",
            Refused,
        ),
        amb(
            "seldon.io/ambassador-circuit-breakers-max-requests",
            "10",
            Refused,
        ),
        amb(
            "seldon.io/ambassador-circuit-breakers-max-retries",
            "10",
            Refused,
        ),
        amb(
            "seldon.io/ambassador-config",
            "apiVersion: ambassador/v1",
            Refused,
        ),
        amb(
            "seldon.io/ambassador-header",
            "x-canary: yes",
            Rendered("x-canary"),
        ),
        amb("seldon.io/ambassador-id", "amb-7", Rendered("amb-7")),
        amb("seldon.io/ambassador-regex-header", "x-user: .*", Refused),
        amb(
            "seldon.io/ambassador-retries",
            "3",
            Rendered("num_retries: 3"),
        ),
        amb(
            "seldon.io/ambassador-service-name",
            "other-sdep",
            Rendered("other-sdep"),
        ),
        case(
            "seldon.io/controller-id",
            "{metadata: {labels: {seldon.io/controller-id: c1}}}",
            Refused,
        ),
        ann(SEQ_ANNOTATION, "debug", Refused),
        ann("seldon.io/engine-separate-pod", "true", Refused),
        ann("seldon.io/executor-logger-queue-size", "100", Refused),
        ann("seldon.io/executor-logger-write-timeout-ms", "100", Refused),
        ann("seldon.io/grpc-max-message-size", "10000000", Refused),
        amb(
            "seldon.io/grpc-timeout",
            "2345",
            Rendered("timeout_ms: 2345"),
        ),
        ann(
            "seldon.io/headless-svc",
            "true",
            Rendered("clusterIP: None"),
        ),
        ann(
            "seldon.io/istio-gateway",
            "ns/my-gateway",
            Rendered("ns/my-gateway"),
        ),
        ann(
            "seldon.io/istio-host",
            "models.example.com",
            Rendered("models.example.com"),
        ),
        ann("seldon.io/istio-retries", "4", Rendered("attempts: 4")),
        case(
            "seldon.io/istio-retries-timeout",
            "{spec: {annotations: {seldon.io/istio-retries: '4', seldon.io/istio-retries-timeout: '7'}}}",
            Rendered("perTryTimeout: 7s"),
        ),
        ann("seldon.io/last-applied", "x", Refused),
        pred(
            "seldon.io/no-engine",
            "{annotations: {seldon.io/no-engine: 'true'}}",
            Inert(
                "there is never an executor here: the graph runs in the sidecar's filter, so a single-node graph already goes straight to the model (validate keeps Seldon's single-node rule)",
            ),
        ),
        case(
            "seldon.io/no-storage-initializer",
            "{spec: {annotations: {seldon.io/no-storage-initializer: 'true'}, predictors: [{graph: {modelUri: gs://b/m}}]}}",
            Rendered("!model-initializer"),
        ),
        ann("seldon.io/rest-timeout", "3579", Rendered("3579")),
        pred(
            "seldon.io/svc-name",
            "{annotations: {seldon.io/svc-name: my-svc}}",
            Rendered("name: my-svc"),
        ),
    ]
}

fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (Value::Array(b), Value::Array(p)) => {
            for (i, v) in p.iter().enumerate() {
                if i < b.len() {
                    merge(&mut b[i], v);
                } else {
                    b.push(v.clone());
                }
            }
        }
        (b, p) => *b = p.clone(),
    }
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// `Ok(rendered YAML)` or `Err(violations as "path: message")`.
fn run(doc: &Value, ambassador: bool) -> Result<String, Vec<(String, String)>> {
    let text = serde_yaml::to_string(doc).unwrap();
    let parsed = seldon_crd::parse_yaml(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
    assert!(
        parsed[0].unknown_fields.is_empty(),
        "{text}\nunknown fields {:?}",
        parsed[0].unknown_fields
    );
    let mut opts = RenderOptions::default();
    if ambassador {
        opts.ingress = Ingress::Ambassador;
        opts.grpc_entry = true;
    }
    match render(&parsed[0].sdep, &opts) {
        Ok(m) => Ok(to_yaml(&m)),
        Err(seldon_render::RenderError::Invalid(v)) => {
            Err(v.into_iter().map(|v| (v.path, v.message)).collect())
        }
    }
}

/// `spec.predictors.explainer.type` → `spec.predictors[0].explainer.type` (annotations:
/// the key in brackets, as `validate` names it; or the dotted key).
fn indexed(field: &str) -> String {
    field
        .replace("spec.predictors.", "spec.predictors[0].")
        .replace("componentSpecs.", "componentSpecs[0].")
}

fn listed(file: &str) -> BTreeSet<String> {
    let path = format!("{}/tests/data/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// Checks one case; returns a description of the failure, if any.
fn verify(c: &Case, base_yaml: &str, base_amb_yaml: &str) -> Option<String> {
    let mut doc = yaml(BASE);
    merge(&mut doc, &yaml(&c.patch));
    let base = if c.ambassador {
        base_amb_yaml
    } else {
        base_yaml
    };
    let got = run(&doc, c.ambassador);
    let own_base;
    let base = match c.inert_against {
        Some(patch) => {
            let mut b = yaml(BASE);
            merge(&mut b, &yaml(patch));
            own_base = run(&b, c.ambassador).expect("the Inert baseline renders");
            own_base.as_str()
        }
        None => base,
    };
    match (&c.expect, got) {
        (Rendered(needle), Ok(out)) => {
            let ok = match needle.strip_prefix('!') {
                Some(n) => {
                    !out.contains(n) && {
                        // the absence must be this field's doing: the same manifest without the
                        // annotation has it
                        let mut without = doc.clone();
                        without["spec"]["annotations"] = Value::Object(Default::default());
                        run(&without, c.ambassador).is_ok_and(|o| o.contains(n))
                    }
                }
                None => out.contains(needle) && (!base.contains(needle) || is_base_field(c)),
            };
            (!ok).then(|| {
                format!(
                    "{}: rendered, but needle {needle:?} does not show it",
                    c.field
                )
            })
        }
        (Refused, Err(violations)) => {
            let path = indexed(c.field);
            let named = violations.iter().any(|(p, m)| {
                // a graph problem names its node: `spec.predictors[0].graph (node "clf", …)`
                let p = p.split(" (node ").next().unwrap_or(p);
                // the field itself, a parent of it, or a field inside it (`endpoint.type`
                // for the `endpoint` case)
                path.starts_with(p)
                    || p.starts_with(&format!("{path}."))
                    || p.contains(c.field)
                    || m.contains(c.field)
                    || c.field == SEQ_ANNOTATION && p.contains("seldon.io/engine-")
            });
            (!named).then(|| {
                format!(
                    "{}: refused, but no violation names it: {violations:?}",
                    c.field
                )
            })
        }
        (Inert(why), Ok(out)) => {
            // an annotation is copied onto the objects (as Seldon copies them): that is all
            let strip = |s: &str| -> Vec<String> {
                s.lines()
                    .filter(|l| !l.contains(c.field) && l.trim() != "annotations: {}")
                    .map(str::to_string)
                    .collect()
            };
            let (out, base) = (strip(&out), strip(base));
            // `annotations:` headers left empty by the strip
            let clean = |v: Vec<String>| -> Vec<String> {
                let mut r: Vec<String> = Vec::new();
                for l in v {
                    if let Some(prev) = r.last()
                        && prev.trim() == "annotations:"
                        && l.len() - l.trim_start().len() <= prev.len() - prev.trim_start().len()
                    {
                        r.pop();
                    }
                    r.push(l);
                }
                r
            };
            (clean(out) != clean(base)).then(|| {
                format!(
                    "{}: said to be inert ({why}), but the render changed",
                    c.field
                )
            })
        }
        (expect, got) => Some(format!(
            "{}: expected {expect:?}, got {}",
            c.field,
            match got {
                Ok(_) => "a render".to_string(),
                Err(v) => format!("{v:?}"),
            }
        )),
    }
}

/// Fields every manifest has (the needle is in the base render too).
fn is_base_field(c: &Case) -> bool {
    c.patch == "{}"
        || c.patch.ends_with("[{}]}}")
        || c.patch.ends_with("[{graph: {}}]}}")
        || c.patch.ends_with("[{componentSpecs: [{}]}]}}")
}

fn check_all(cases: Vec<Case>, file: &str) {
    let base = run(&yaml(BASE), false).expect("the base manifest renders");
    let base_amb = run(&yaml(BASE), true).expect("the base manifest renders (ambassador)");
    let covered: BTreeSet<String> = cases.iter().map(|c| c.field.to_string()).collect();
    let wanted = listed(file);
    let missing: Vec<_> = wanted.difference(&covered).collect();
    let stale: Vec<_> = covered.difference(&wanted).collect();
    assert!(missing.is_empty(), "{file}: no case for {missing:?}");
    assert!(
        stale.is_empty(),
        "cases for fields not in {file}: {stale:?}"
    );
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|c| verify(c, &base, &base_amb))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Prints the render (or the violations) of one case, to pick a needle:
/// `FIELD=spec.predictors.graph.logger cargo test -p seldon-render --test v1_fields debug_dump -- --ignored --nocapture`
#[test]
#[ignore]
fn debug_dump() {
    for c in field_cases().into_iter().chain(annotation_cases()) {
        if std::env::var("FIELD").ok().as_deref() == Some(c.field) {
            let mut doc = yaml(BASE);
            merge(&mut doc, &yaml(&c.patch));
            match run(&doc, c.ambassador) {
                Ok(s) => println!("{s}"),
                Err(v) => println!("{v:#?}"),
            }
        }
    }
}

#[test]
fn every_seldon_v1_field_is_rendered_or_refused() {
    check_all(field_cases(), "seldon-v1-fields.txt");
}

#[test]
fn every_seldon_v1_annotation_is_rendered_or_refused() {
    let mut cases = annotation_cases();
    // the prefix entry is exercised with a concrete executor variable
    for c in &mut cases {
        if c.field == SEQ_ANNOTATION {
            c.patch = "{spec: {annotations: {seldon.io/engine-log-level: debug}}}".to_string();
        }
    }
    check_all(cases, "seldon-v1-annotations.txt");
}

/// The refusal says what to do instead, and names the annotation (what `seldon-mesh validate`
/// prints for it).
#[test]
fn refusals_say_what_to_do_instead() {
    let mut doc = yaml(BASE);
    merge(
        &mut doc,
        &yaml(
            "{spec: {annotations: {seldon.io/engine-log-level: debug, seldon.io/grpc-max-message-size: '1'}, predictors: [{explainer: {type: AnchorTabular, endpoint: {type: GRPC}}, svcOrchSpec: {env: [{name: A, value: b}]}}]}}",
        ),
    );
    let v = run(&doc, false).unwrap_err();
    let text: Vec<String> = v.iter().map(|(p, m)| format!("{p}: {m}")).collect();
    let has = |s: &str| text.iter().any(|t| t.contains(s));
    assert!(
        has(
            "spec.annotations[\"seldon.io/engine-log-level\"]: sets the environment variable LOG_LEVEL of Seldon's executor"
        ),
        "{text:#?}"
    );
    assert!(has("seldon.io/rest-timeout (honoured)"), "{text:#?}");
    assert!(
        has("spec.annotations[\"seldon.io/grpc-max-message-size\"]: gRPC is not served"),
        "{text:#?}"
    );
    assert!(
        has(
            "spec.predictors[0].explainer.endpoint.type: the explainer serves HTTP only (Seldon's too"
        ),
        "{text:#?}"
    );
    assert!(
        has("spec.predictors[0].svcOrchSpec: there is no executor container"),
        "{text:#?}"
    );
    assert_eq!(text.len(), 4, "{text:#?}");
}

/// What `kubectl get sdep -o yaml` prints for an object Seldon created (empty svcOrchSpec,
/// engineResources, explainer container and ssl) is not refused.
#[test]
fn seldon_s_empty_defaults_are_accepted() {
    let mut doc = yaml(BASE);
    merge(
        &mut doc,
        &yaml(
            "{spec: {predictors: [{svcOrchSpec: {}, engineResources: {}, explainer: {containerSpec: {name: '', resources: {}}}, ssl: {}}]}}",
        ),
    );
    let base = run(&yaml(BASE), false).unwrap();
    assert_eq!(run(&doc, false), Ok(base));
}
