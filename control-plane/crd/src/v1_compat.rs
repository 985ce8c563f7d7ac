//! Nothing in a Seldon v1 manifest is dropped in silence (issue 10): every v1 field and
//! `seldon.io/*` annotation that seldon-mesh does not render is refused here, with its path and
//! what to do instead. `validate` calls `refusals`; the table of what is honoured and what is
//! refused, and why, is in the crate README ("Seldon v1 fields and annotations").

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;

use crate::spec::SeldonDeployment;
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
        if let Some(e) = &p.explainer {
            let mut e = e.clone();
            if e.container_spec.as_ref().is_some_and(empty_container) {
                e.container_spec = None;
            }
            if e != Default::default() {
                refuse(
                    &mut out,
                    format!("{path}.explainer"),
                    "explainers are not rendered yet; remove it or run the explainer as a \
                     separate SeldonDeployment (a MODEL node serving the Alibi explainer)",
                );
            }
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
            if c.keda_spec.is_some() {
                refuse(
                    &mut out,
                    format!("{path}.componentSpecs[{j}].kedaSpec"),
                    "KEDA ScaledObjects are not rendered yet; use hpaSpec (rendered as an \
                     autoscaling/v2 HorizontalPodAutoscaler) or remove kedaSpec",
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
                "  - name: p\n    annotations: {seldon.io/executor-logger-queue-size: '5'}\n    svcOrchSpec: {replicas: 2}\n    engineResources: {requests: {cpu: '1'}}\n    ssl: {certSecretName: tls}\n    explainer: {type: AnchorTabular}\n    componentSpecs:\n    - kedaSpec: {triggers: []}\n",
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
                "spec.predictors[0].explainer",
                "spec.predictors[0].ssl",
                "spec.predictors[0].componentSpecs[0].kedaSpec",
            ]
        );
    }
}
