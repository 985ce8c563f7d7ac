//! Nothing in a Seldon v1 manifest is dropped in silence (issue 10): every v1 field and
//! `seldon.io/*` annotation that seldon-mesh does not render is refused here, with its path and
//! what to do instead. `validate` calls `refusals`; the table of what is honoured and what is
//! refused, and why, is in the crate README ("Seldon v1 fields and annotations").

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

use seldon_graph::{EndpointType, Protocol};

use crate::spec::{Explainer, SeldonDeployment};
use crate::validate::Violation;

/// `seldon.io/*` annotations that render (or the graph filter) honours. Anything else under
/// `seldon.io/` is refused by [`annotation_refusal`].
pub const HONOURED_ANNOTATIONS: &[&str] = &[
    "seldon.io/rest-timeout",
    "seldon.io/grpc-timeout",
    "seldon.io/svc-name",
    "seldon.io/no-engine",
    "seldon.io/headless-svc",
    "seldon.io/no-storage-initializer",
    "seldon.io/istio-gateway",
    "seldon.io/istio-host",
    "seldon.io/istio-retries",
    "seldon.io/istio-retries-timeout",
    "seldon.io/ambassador-service-name",
    "seldon.io/ambassador-header",
    "seldon.io/ambassador-id",
    "seldon.io/ambassador-retries",
    "mesh.seldon.io/body-limit-bytes",
    "mesh.seldon.io/node-calls",
];

const NO_EXECUTOR: &str = "there is no executor container: the graph runs in the sidecar's filter";

/// Why `key` is refused, or `None` when it is honoured (or not a Seldon annotation at all).
pub fn annotation_refusal(key: &str) -> Option<String> {
    if HONOURED_ANNOTATIONS.contains(&key) {
        return None;
    }
    let msg = match key {
        "seldon.io/engine-separate-pod" => format!(
            "{NO_EXECUTOR} of the graph pod, so there is no engine pod to separate; remove it"
        ),
        "seldon.io/grpc-max-message-size" => "gRPC is not served (the entry and the node calls \
            are REST), so there is no gRPC message size to set; the request size limit is \
            mesh.seldon.io/body-limit-bytes — remove it or use that"
            .to_string(),
        "seldon.io/executor-logger-queue-size" | "seldon.io/executor-logger-write-timeout-ms" => {
            format!(
                "{NO_EXECUTOR}, which sends the node's `logger` payloads itself without \
                 Seldon's executor work queue; remove it"
            )
        }
        "seldon.io/ambassador-config" => "raw Ambassador v1 config is not applied: \
            --ingress ambassador renders getambassador.io/v3alpha1 Mappings from the \
            seldon.io/ambassador-{service-name,header,id,retries} annotations; remove it and use \
            those, or apply your own Mapping next to ours"
            .to_string(),
        "seldon.io/ambassador-regex-header" => "regex header routing is not rendered yet; use \
            seldon.io/ambassador-header (exact match) or remove it"
            .to_string(),
        "seldon.io/last-applied" => "is written by Seldon's operator on the Deployments it \
            creates and means nothing on a SeldonDeployment; remove it"
            .to_string(),
        k if k.starts_with("seldon.io/ambassador-circuit-breakers-") => "Ambassador circuit \
            breakers are not rendered yet; remove it (the Istio sidecar's default limits apply)"
            .to_string(),
        k if k.starts_with("seldon.io/engine-") => format!(
            "sets the environment variable {} of Seldon's executor; {NO_EXECUTOR}. Equivalents: \
             the per-hop timeout is seldon.io/rest-timeout (honoured), the request size limit \
             mesh.seldon.io/body-limit-bytes, tracing is the mesh's; remove it",
            k["seldon.io/engine-".len()..]
                .replace('-', "_")
                .to_uppercase()
        ),
        k if k.starts_with("seldon.io/") => {
            "is not a Seldon Core v1.18 annotation seldon-mesh knows; remove it".to_string()
        }
        k if k.starts_with("mesh.seldon.io/") => format!(
            "is not a seldon-mesh annotation (known: {})",
            HONOURED_ANNOTATIONS
                .iter()
                .filter(|a| a.starts_with("mesh."))
                .copied()
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => return None,
    };
    Some(msg)
}

/// The label Seldon's operators shard on; seldon-mesh runs one operator.
pub const LABEL_CONTROLLER_ID: &str = "seldon.io/controller-id";

fn annotations_at(map: &BTreeMap<String, String>, path: &str, out: &mut Vec<Violation>) {
    for key in map.keys() {
        if let Some(message) = annotation_refusal(key) {
            out.push(Violation {
                path: format!("{path}[{key:?}]"),
                message,
            });
        }
    }
}

/// A container Seldon's own serialisation leaves behind (`containerSpec: {name: "",
/// resources: {}}` in `kubectl get sdep -o yaml`): not a request for an explainer.
fn empty_container(c: &Container) -> bool {
    let mut c = c.clone();
    if c.resources
        .as_ref()
        .is_some_and(|r| *r == Default::default())
    {
        c.resources = None;
    }
    c == Container::default()
}

/// Seldon's `IsEmptyExplainer`: `explainer` is rendered when anything but Seldon's own empty
/// serialisation (`containerSpec: {name: "", resources: {}}`) is set.
pub fn explainer_requested(e: &Explainer) -> bool {
    let mut e = e.clone();
    if e.container_spec.as_ref().is_some_and(empty_container) {
        e.container_spec = None;
    }
    e != Explainer::default()
}

/// Seldon 1.18's Alibi explainer types (`AlibiExplainerType`) with MLServer's tag for each
/// (`ExplainerTypeToMLServerExplainerType`, `mlserver.go`), used by the v2 explainer.
pub const EXPLAINER_TYPES: &[(&str, &str)] = &[
    ("AnchorTabular", "anchor_tabular"),
    ("AnchorImages", "anchor_image"),
    ("AnchorText", "anchor_text"),
    ("Counterfactuals", "counterfactuals"),
    ("Contrastive", "contrastive"),
    ("KernelShap", "kernel_shap"),
    ("IntegratedGradients", "integrated_gradients"),
    ("ALE", "ALE"),
    ("TreeShap", "tree_shap"),
];

/// What of an explainer is not rendered: an unknown `type` (the server would exit at start),
/// the protocol's unused half (`config` is the Alibi server's, `initParameters` MLServer's:
/// Seldon dropped the other in silence), and a gRPC endpoint (the explainer serves HTTP only).
fn explainer_refusals(
    e: &Explainer,
    sdep: &SeldonDeployment,
    path: &str,
    out: &mut Vec<Violation>,
) {
    let v2 = sdep.spec.protocol() == Protocol::V2;
    let custom_image = e
        .container_spec
        .as_ref()
        .and_then(|c| c.image.as_deref())
        .is_some_and(|i| !i.is_empty());
    let known = || {
        EXPLAINER_TYPES
            .iter()
            .map(|(t, _)| *t)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut push = |at: &str, message: String| {
        out.push(Violation {
            path: format!("{path}{at}"),
            message,
        })
    };
    match e.explainer_type.as_deref() {
        Some(t) if EXPLAINER_TYPES.iter().any(|(k, _)| *k == t) => {}
        Some(t) => push(
            ".type",
            format!(
                "{t:?} is not an Alibi explainer type Seldon knows (known: {})",
                known()
            ),
        ),
        None if custom_image => {}
        None => push(
            ".type",
            format!(
                "is required: Seldon's explainer image runs the Alibi explainer named here \
                 (known: {}); or give containerSpec.image for an explainer of your own",
                known()
            ),
        ),
    }
    if v2 && !e.config.is_empty() {
        push(
            ".config",
            "is passed as command-line flags to the Alibi explain server of protocol seldon; \
             the v2 explainer (MLServer's Alibi runtime) reads initParameters instead — move \
             the values there (a JSON object string)"
                .to_string(),
        );
    }
    if !v2 && e.init_parameters.as_deref().is_some_and(|s| !s.is_empty()) {
        push(
            ".initParameters",
            "is read by the v2 explainer (MLServer) only; for protocol seldon/tensorflow put \
             the explainer's parameters in config (passed as --key=value flags)"
                .to_string(),
        );
    }
    if let Some(ip) = e.init_parameters.as_deref().filter(|s| !s.is_empty())
        && serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(ip).is_err()
    {
        push(
            ".initParameters",
            "must be a JSON object string (it is spliced into MLSERVER_MODEL_EXTRA)".to_string(),
        );
    }
    if e.endpoint.as_ref().and_then(|ep| ep.endpoint_type.as_ref()) == Some(&EndpointType::Grpc) {
        push(
            ".endpoint.type",
            "the explainer serves HTTP only (Seldon's too: \"Explainer only accepts http at \
             present\"); use REST or leave it unset"
                .to_string(),
        );
    }
}

/// Every v1 field or annotation that is present and not rendered, with what to do instead.
/// Empty values (`svcOrchSpec: {}`, `explainer: {containerSpec: {name: ""}}`, which
/// `kubectl get` prints for a Seldon-created object) are not refused.
pub fn refusals(sdep: &SeldonDeployment) -> Vec<Violation> {
    let mut out = Vec::new();
    let refuse = |out: &mut Vec<Violation>, path: String, message: &str| {
        out.push(Violation {
            path,
            message: message.to_string(),
        })
    };
    if let Some(labels) = &sdep.metadata.labels
        && labels.contains_key(LABEL_CONTROLLER_ID)
    {
        refuse(
            &mut out,
            format!("metadata.labels[{LABEL_CONTROLLER_ID:?}]"),
            "seldon-mesh runs one operator for the cluster and does not shard by controller id; \
             remove the label (an operator that skips labelled objects would leave this one \
             unserved)",
        );
    }
    for (field, value) in [
        ("oauth_key", &sdep.spec.oauth_key),
        ("oauth_secret", &sdep.spec.oauth_secret),
    ] {
        if value.as_deref().is_some_and(|v| !v.is_empty()) {
            refuse(
                &mut out,
                format!("spec.{field}"),
                "is a credential of Seldon's retired API gateway, ignored since Seldon 1.0; \
                 authentication is the mesh's (Istio RequestAuthentication/AuthorizationPolicy) \
                 — remove it",
            );
        }
    }
    if let Some(a) = &sdep.metadata.annotations {
        annotations_at(a, "metadata.annotations", &mut out);
    }
    annotations_at(&sdep.spec.annotations, "spec.annotations", &mut out);
    for (i, p) in sdep.spec.predictors.iter().enumerate() {
        let path = format!("spec.predictors[{i}]");
        annotations_at(&p.annotations, &format!("{path}.annotations"), &mut out);
        if p.engine_resources
            .as_ref()
            .is_some_and(|r| *r != Default::default())
        {
            refuse(
                &mut out,
                format!("{path}.engineResources"),
                "is deprecated and ignored by Seldon 1.18 too; there is no executor container \
                 (the graph runs in the sidecar's filter) — remove it",
            );
        }
        if let Some(s) = &p.svc_orch_spec
            && *s != Default::default()
        {
            refuse(
                &mut out,
                format!("{path}.svcOrchSpec"),
                "there is no executor container: the graph runs in the sidecar's filter; \
                 resources/env/replicas of the executor do not apply — remove svcOrchSpec \
                 (size the Istio sidecar with sidecar.istio.io/proxyCPU/proxyMemory pod \
                 annotations instead)",
            );
        }
        if let Some(e) = &p.explainer
            && explainer_requested(e)
        {
            explainer_refusals(e, sdep, &format!("{path}.explainer"), &mut out);
        }
        if let Some(ssl) = &p.ssl
            && ssl
                .cert_secret_name
                .as_deref()
                .is_some_and(|s| !s.is_empty())
        {
            refuse(
                &mut out,
                format!("{path}.ssl"),
                "TLS on the predictor's own endpoint is not rendered: inside the mesh Istio \
                 mTLS encrypts every hop; for clients outside, terminate TLS at the Istio \
                 Gateway (its credentialName = this secret) named by seldon.io/istio-gateway — \
                 remove ssl",
            );
        }
        for (j, c) in p.component_specs.iter().enumerate() {
            let at = format!("{path}.componentSpecs[{j}]");
            // Seldon's executor and Python wrapper also read seldon.io/* from the pod's own
            // annotations (podinfo), so one set here took effect in Seldon; render reads them
            // from the SeldonDeployment and predictor only: refused, never copied in silence.
            for key in c.metadata.annotations.iter().flat_map(|a| a.keys()) {
                let seldon = key.starts_with("seldon.io/") || key.starts_with("mesh.seldon.io/");
                let message = match annotation_refusal(key) {
                    Some(m) => m,
                    None if seldon => format!(
                        "is read from spec.annotations or {path}.annotations; on a componentSpec \
                         it would only be copied onto the pods — move it there"
                    ),
                    None => continue,
                };
                out.push(Violation {
                    path: format!("{at}.metadata.annotations[{key:?}]"),
                    message,
                });
            }
            let Some(keda) = &c.keda_spec else { continue };
            if c.hpa_spec.is_some() {
                refuse(
                    &mut out,
                    format!("{at}.kedaSpec"),
                    "hpaSpec and kedaSpec both scale this component's Deployment: KEDA's \
                     ScaledObject creates its own HorizontalPodAutoscaler, and two autoscalers \
                     on one Deployment fight over its replicas — keep one (KEDA's `cpu`/`memory` \
                     triggers cover what hpaSpec's Resource metrics do)",
                );
            }
            if keda.triggers.is_empty() {
                refuse(
                    &mut out,
                    format!("{at}.kedaSpec.triggers"),
                    "a KEDA ScaledObject needs at least one trigger (KEDA refuses it otherwise); \
                     add one, e.g. {type: cpu, metricType: Utilization, metadata: {value: \"50\"}}",
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(yaml: &str) -> Vec<String> {
        let s: SeldonDeployment = serde_yaml::from_str(yaml).unwrap();
        refusals(&s).into_iter().map(|v| v.to_string()).collect()
    }

    const BASE: &str = "metadata: {name: x}\nspec:\n  predictors:\n  - name: p\n    graph: {name: m, implementation: SKLEARN_SERVER, modelUri: gs://a}\n";

    #[test]
    fn honoured_and_foreign_annotations_pass_unknown_seldon_ones_are_refused() {
        for key in HONOURED_ANNOTATIONS {
            assert_eq!(annotation_refusal(key), None, "{key}");
        }
        assert_eq!(annotation_refusal("prometheus.io/scrape"), None);
        assert_eq!(annotation_refusal("sidecar.istio.io/inject"), None);
        let engine = annotation_refusal("seldon.io/engine-log-level").unwrap();
        assert!(engine.contains("LOG_LEVEL"), "{engine}");
        assert!(
            engine.contains("seldon.io/rest-timeout (honoured)"),
            "{engine}"
        );
        assert!(
            annotation_refusal("seldon.io/rest-timeot")
                .unwrap()
                .contains("not a Seldon Core v1.18 annotation"),
        );
        assert!(
            annotation_refusal("mesh.seldon.io/body-limit")
                .unwrap()
                .contains("mesh.seldon.io/body-limit-bytes"),
        );
    }

    #[test]
    fn a_plain_manifest_and_seldon_s_empty_values_are_not_refused() {
        assert!(refused(BASE).is_empty());
        let empty = BASE.replace(
            "  - name: p\n",
            "  - name: p\n    svcOrchSpec: {}\n    engineResources: {}\n    ssl: {certSecretName: ''}\n    explainer: {containerSpec: {name: '', resources: {}}}\n",
        );
        assert_eq!(refused(&empty), Vec::<String>::new());
    }

    #[test]
    fn every_unrendered_field_is_refused_with_its_path() {
        let yaml = BASE
            .replace("metadata: {name: x}", "metadata:\n  name: x\n  labels: {seldon.io/controller-id: c1}\n  annotations: {seldon.io/ambassador-config: 'x'}")
            .replace("spec:\n", "spec:\n  oauth_key: k\n  annotations: {seldon.io/grpc-max-message-size: '1'}\n")
            .replace(
                "  - name: p\n",
                "  - name: p\n    annotations: {seldon.io/executor-logger-queue-size: '5'}\n    svcOrchSpec: {replicas: 2}\n    engineResources: {requests: {cpu: '1'}}\n    ssl: {certSecretName: tls}\n    explainer: {type: Anchors}\n    componentSpecs:\n    - {hpaSpec: {maxReplicas: 2}, kedaSpec: {triggers: []}}\n",
            );
        let paths: Vec<String> = refused(&yaml)
            .iter()
            .map(|v| v.split(": ").next().unwrap().to_string())
            .collect();
        assert_eq!(
            paths,
            [
                "metadata.labels[\"seldon.io/controller-id\"]",
                "spec.oauth_key",
                "metadata.annotations[\"seldon.io/ambassador-config\"]",
                "spec.annotations[\"seldon.io/grpc-max-message-size\"]",
                "spec.predictors[0].annotations[\"seldon.io/executor-logger-queue-size\"]",
                "spec.predictors[0].engineResources",
                "spec.predictors[0].svcOrchSpec",
                "spec.predictors[0].explainer.type",
                "spec.predictors[0].ssl",
                "spec.predictors[0].componentSpecs[0].kedaSpec",
                "spec.predictors[0].componentSpecs[0].kedaSpec.triggers",
            ]
        );
    }

    #[test]
    fn seldon_annotations_on_a_component_are_refused_others_kept() {
        let yaml = BASE.replace(
            "  - name: p\n",
            "  - name: p\n    componentSpecs:\n    - metadata: {annotations: {seldon.io/rest-timeout: '5000', seldon.io/engine-x: '1', prometheus.io/port: '6000'}}\n",
        );
        assert_eq!(
            refused(&yaml),
            [
                "spec.predictors[0].componentSpecs[0].metadata.annotations[\"seldon.io/engine-x\"]: sets the environment variable X of Seldon's executor; there is no executor container: the graph runs in the sidecar's filter. Equivalents: the per-hop timeout is seldon.io/rest-timeout (honoured), the request size limit mesh.seldon.io/body-limit-bytes, tracing is the mesh's; remove it",
                "spec.predictors[0].componentSpecs[0].metadata.annotations[\"seldon.io/rest-timeout\"]: is read from spec.annotations or spec.predictors[0].annotations; on a componentSpec it would only be copied onto the pods — move it there",
            ]
        );
    }

    #[test]
    fn explainers_and_keda_render_what_they_can_and_refuse_the_rest() {
        let with = |spec: &str, predictor: &str| {
            BASE.replace("spec:\n", &format!("spec:\n{spec}"))
                .replace("  - name: p\n", &format!("  - name: p\n{predictor}"))
        };
        // rendered: a known type (seldon and v2), a custom image without a type, KEDA alone
        for (spec, pred) in [
            (
                "",
                "    explainer: {type: AnchorTabular, config: {threshold: '0.9'}}\n",
            ),
            (
                "  protocol: v2\n",
                "    explainer: {type: KernelShap, initParameters: '{\"a\": 1}'}\n",
            ),
            (
                "",
                "    explainer: {containerSpec: {name: e, image: me/explainer:1}}\n",
            ),
            (
                "",
                "    componentSpecs:\n    - kedaSpec: {triggers: [{type: cpu, metadata: {value: '50'}}]}\n",
            ),
        ] {
            assert_eq!(refused(&with(spec, pred)), Vec::<String>::new(), "{pred}");
        }
        let one = |spec: &str, pred: &str| {
            let r = refused(&with(spec, pred));
            assert_eq!(r.len(), 1, "{r:?}");
            r[0].clone()
        };
        let m = one("", "    explainer: {modelUri: gs://b/e}\n");
        assert!(
            m.starts_with("spec.predictors[0].explainer.type: is required"),
            "{m}"
        );
        assert!(m.contains("AnchorTabular, AnchorImages"), "{m}");
        let m = one(
            "  protocol: v2\n",
            "    explainer: {type: AnchorTabular, config: {a: b}}\n",
        );
        assert!(
            m.starts_with("spec.predictors[0].explainer.config:") && m.contains("initParameters"),
            "{m}"
        );
        let m = one(
            "",
            "    explainer: {type: AnchorTabular, initParameters: '{}'}\n",
        );
        assert!(
            m.starts_with("spec.predictors[0].explainer.initParameters:") && m.contains("config"),
            "{m}"
        );
        let m = one(
            "  protocol: v2\n",
            "    explainer: {type: AnchorTabular, initParameters: '[1]'}\n",
        );
        assert!(m.contains("JSON object"), "{m}");
        let m = one(
            "",
            "    explainer: {type: AnchorTabular, endpoint: {type: GRPC}}\n",
        );
        assert!(
            m.starts_with("spec.predictors[0].explainer.endpoint.type:") && m.contains("HTTP only"),
            "{m}"
        );
        let m = one(
            "",
            "    componentSpecs:\n    - {hpaSpec: {maxReplicas: 3}, kedaSpec: {triggers: [{type: cpu, metadata: {value: '50'}}]}}\n",
        );
        assert!(
            m.starts_with("spec.predictors[0].componentSpecs[0].kedaSpec:") && m.contains("fight"),
            "{m}"
        );
    }
}
