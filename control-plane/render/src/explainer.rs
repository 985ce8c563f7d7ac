//! A predictor's Alibi `explainer`, as Seldon v1.18 rendered it
//! (`operator/controllers/seldondeployment_explainers.go`, reference §2.11): its own
//! Deployment and Service `<sdep>-<pred>-explainer` (hashed past 63 characters like every
//! derived name), port http 9000, and its own route `/seldon/<ns>/<sdep>-explainer/<pred>/`
//! rewritten to `/`, in a VirtualService `<svc>-http` with a DestinationRule `<svc>` (Istio), or
//! a Mapping (Ambassador).
//!
//! - protocol seldon/tensorflow: the Alibi explain server (catalogue `explainer.image`), args
//!   `--model_name=<graph> --predictor_host=<predSvc>.<ns>:8000 --protocol=<p>.http
//!   --http_port=9000 [--storage_uri=/mnt/models] <Type> [--k=v …]`; it serves
//!   `/api/v1.0/explain` (and `/v1/models/<m>:explain`), calling the predictor through its
//!   Service, i.e. through the graph like any client.
//! - protocol v2: MLServer's Alibi runtime (catalogue `explainer.image_v2`), configured by
//!   `MLSERVER_*` env, model name = the container name; it serves
//!   `/v2/models/<container>/infer`. The route also maps `…/v2/models/<graph>/explain` onto it
//!   (ours: the explain path the issue names, next to Seldon's).
//!
//! The explainer pod carries `seldon-app: <explainer svc>`, never the predictor's, so the graph
//! filter (selected by the predictor's `seldon-app`) is not in it.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, ExecAction, Lifecycle, LifecycleHandler, PodSpec,
    PodTemplateSpec, Probe, Service, ServicePort, ServiceSpec, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use seldon_crd::v1_compat::{EXPLAINER_TYPES, explainer_requested};
use seldon_crd::{Explainer, names};
use seldon_graph::{PredictiveUnit, Protocol};
use serde_json::json;

use crate::deployment::{MODELS_DIR, finish_pod, model_initializer};
use crate::{Context, CustomObject, Ingress, Predictor, RenderOptions, destination_rule};

/// Seldon's default explainer port.
pub const EXPLAINER_HTTP_PORT: i32 = 9000;

/// The predictor's explainer, when it asks for one (Seldon's `IsEmptyExplainer`).
pub fn of<'a>(p: &Predictor<'a>) -> Option<&'a Explainer> {
    p.spec.explainer.as_ref().filter(|e| explainer_requested(e))
}

/// The explainer's Deployment and Service name.
pub fn service_name(cx: &Context, p: &Predictor<'_>) -> String {
    names::explainer(&cx.name, &p.spec.name)
}

/// The external path prefix: `/seldon/<ns>/<sdep>-explainer/<predictor>/` (Seldon's).
pub fn path_prefix(cx: &Context, p: &Predictor<'_>) -> String {
    format!(
        "/seldon/{}/{}-explainer/{}/",
        cx.namespace, cx.name, p.spec.name
    )
}

/// The explainer's objects for predictor `p`: Deployment, Service, and its route (Istio
/// DestinationRule + VirtualService, or an Ambassador Mapping). Empty without an explainer.
pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Vec<crate::Manifest> {
    let Some(e) = of(p) else {
        return Vec::new();
    };
    let svc = service_name(cx, p);
    let container = container(cx, p, e, &svc, opts);
    let port = http_port(&container);
    let mut out = vec![
        crate::Manifest::Deployment(Box::new(deployment(cx, p, e, &svc, container, opts))),
        crate::Manifest::Service(Box::new(service(cx, p, &svc, port))),
    ];
    match opts.ingress {
        Ingress::Istio => {
            out.push(crate::Manifest::Custom(destination_rule::rule(
                cx, p, &svc, opts,
            )));
            out.push(crate::Manifest::Custom(virtual_service(
                cx, p, &svc, port, opts,
            )));
        }
        Ingress::Ambassador => out.push(crate::Manifest::Custom(mapping(cx, p, &svc, port))),
    }
    out
}

/// `seldon`/`tensorflow` as the Alibi server's `--protocol` prefix; `None` for v2 (MLServer).
fn alibi_protocol(cx: &Context) -> Option<&'static str> {
    match cx.sdep.spec.protocol() {
        Protocol::Seldon => Some("seldon"),
        Protocol::Tensorflow => Some("tensorflow"),
        Protocol::V2 => None,
    }
}

/// The port the explainer listens on: its container's `http` port.
fn http_port(c: &Container) -> i32 {
    c.ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(names::PORT_NAME_HTTP))
        .map_or(EXPLAINER_HTTP_PORT, |p| p.container_port)
}

fn container(
    cx: &Context,
    p: &Predictor<'_>,
    e: &Explainer,
    svc: &str,
    opts: &RenderOptions,
) -> Container {
    let mut c = e.container_spec.clone().unwrap_or_default();
    if c.name.is_empty() {
        c.name = svc.to_string();
    }
    let v2 = alibi_protocol(cx).is_none();
    if c.image.as_deref().is_none_or(str::is_empty) {
        let images = &opts.catalogue.explainer;
        c.image = Some(if v2 { &images.image_v2 } else { &images.image }.clone());
    }
    c.image_pull_policy
        .get_or_insert_with(|| "IfNotPresent".to_string());
    // port: a user `http` port wins, else endpoint.service_port, else 9000 (Seldon's order)
    let port = e
        .endpoint
        .as_ref()
        .and_then(|ep| ep.service_port)
        .filter(|p| *p > 0)
        .unwrap_or(EXPLAINER_HTTP_PORT);
    let ports = c.ports.get_or_insert_with(Vec::new);
    if !ports
        .iter()
        .any(|p| p.name.as_deref() == Some(names::PORT_NAME_HTTP))
    {
        ports.push(ContainerPort {
            name: Some(names::PORT_NAME_HTTP.to_string()),
            container_port: port,
            protocol: Some("TCP".to_string()),
            ..Default::default()
        });
    }
    let port = http_port(&c);
    let tcp = |delay, failure| Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(names::PORT_NAME_HTTP.to_string()),
            ..Default::default()
        }),
        initial_delay_seconds: Some(delay),
        period_seconds: Some(5),
        success_threshold: Some(1),
        failure_threshold: Some(failure),
        timeout_seconds: Some(1),
        ..Default::default()
    };
    c.liveness_probe.get_or_insert_with(|| tcp(60, 5));
    c.readiness_probe.get_or_insert_with(|| tcp(20, 7));
    c.lifecycle.get_or_insert_with(|| Lifecycle {
        pre_stop: Some(LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["/bin/sh".into(), "-c".into(), "/bin/sleep 10".into()]),
            }),
            ..Default::default()
        }),
        ..Default::default()
    });

    // The explainer calls the predictor through its Service: the graph runs for it as for
    // any client (Seldon's `HttpEndpoint`, `<svc>.<ns>:8000`).
    let predictor_host = format!(
        "{}.{}:{}",
        p.service,
        cx.namespace,
        names::PREDICTOR_HTTP_PORT
    );
    let graph = &p.spec.graph.name;
    let explainer_type = e.explainer_type.clone().unwrap_or_default();
    match alibi_protocol(cx) {
        Some(protocol) if c.args.is_none() && c.command.is_none() => {
            let mut args = vec![
                format!("--model_name={graph}"),
                format!("--predictor_host={predictor_host}"),
                format!("--protocol={protocol}.http"),
                format!("--http_port={port}"),
            ];
            if e.model_uri.is_some() {
                args.push(format!("--storage_uri={MODELS_DIR}"));
            }
            args.push(explainer_type.clone());
            if explainer_type == "AnchorImages" {
                args.push("--tf_data_type=float32".to_string());
            }
            // config, in key order; the model URI in a value becomes the local copy (Seldon's)
            for (k, v) in &e.config {
                let v = match &e.model_uri {
                    Some(uri) if !uri.is_empty() => v.replacen(uri.as_str(), MODELS_DIR, 1),
                    _ => v.clone(),
                };
                args.push(format!("--{k}={v}"));
            }
            c.args = Some(args);
        }
        Some(_) => {} // the user's own command/args win (Seldon overwrote them)
        None => {
            let tag = EXPLAINER_TYPES
                .iter()
                .find(|(t, _)| *t == explainer_type)
                .map_or(explainer_type.as_str(), |(_, tag)| tag);
            let mut extra = serde_json::Map::new();
            extra.insert("explainer_type".into(), json!(tag));
            extra.insert(
                "infer_uri".into(),
                json!(format!("http://{predictor_host}/v2/models/{graph}/infer")),
            );
            // `check` refuses initParameters that are not a JSON object
            if let Some(init) = e
                .init_parameters
                .as_deref()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            {
                extra.insert("init_parameters".into(), init);
            }
            let name = c.name.clone();
            let env = c.env.get_or_insert_with(Vec::new);
            for (k, v) in [
                ("MLSERVER_HTTP_PORT", port.to_string()),
                (
                    "MLSERVER_MODEL_IMPLEMENTATION",
                    "mlserver_alibi_explain.AlibiExplainRuntime".to_string(),
                ),
                ("MLSERVER_MODEL_NAME", name),
                ("MLSERVER_MODEL_URI", MODELS_DIR.to_string()),
                (
                    "MLSERVER_MODEL_EXTRA",
                    serde_json::Value::Object(extra).to_string(),
                ),
            ] {
                // a user value wins (Seldon replaced the user's env: [quirk] not copied)
                if !env.iter().any(|x| x.name == k) {
                    env.push(EnvVar {
                        name: k.to_string(),
                        value: Some(v),
                        ..Default::default()
                    });
                }
            }
        }
    }
    c
}

fn deployment(
    cx: &Context,
    p: &Predictor<'_>,
    e: &Explainer,
    svc: &str,
    mut container: Container,
    opts: &RenderOptions,
) -> Deployment {
    let selector = BTreeMap::from([
        (names::LABEL_SELDON_ID.to_string(), cx.id.clone()),
        (names::LABEL_SELDON_APP.to_string(), svc.to_string()),
    ]);
    let mut labels = cx.base_labels();
    labels.insert(names::LABEL_APP.to_string(), svc.to_string());
    labels.insert(names::LABEL_FLUENTD.to_string(), "true".to_string());
    labels.extend(p.spec.labels.clone());
    labels.extend(selector.clone());
    labels.insert(names::LABEL_EXPLAINER.to_string(), "true".to_string());
    if p.spec.is_shadow() {
        labels.insert(names::LABEL_SHADOW.to_string(), "true".to_string());
    }
    // Seldon's annotations, and no prometheus.io/* (the explainer has no metrics endpoint)
    let mut annotations = cx.sdep.spec.annotations.clone();
    annotations.extend(p.spec.annotations.clone());

    let mut volumes = Vec::new();
    let mut init = Vec::new();
    if let Some(uri) = e.model_uri.as_deref().filter(|u| !u.is_empty()) {
        // the initializer reads these fields of a unit; the explainer's files are not converted
        let unit = PredictiveUnit {
            name: container.name.clone(),
            model_uri: Some(uri.to_string()),
            env_secret_ref_name: e.env_secret_ref_name.clone(),
            storage_initializer_image: e.storage_initializer_image.clone(),
            ..Default::default()
        };
        model_initializer(&unit, uri, &mut container, &mut volumes, &mut init, opts);
    }
    let mut pod = PodSpec {
        containers: vec![container],
        service_account_name: e.service_account_name.clone(),
        ..Default::default()
    };
    finish_pod(&mut pod, volumes, init, opts);

    // zero when the predictor (or the SeldonDeployment) is scaled to zero, else its own
    let replicas = match (p.spec.replicas, cx.sdep.spec.replicas) {
        (Some(0), _) | (None, Some(0)) => Some(0),
        _ => e.replicas,
    };
    Deployment {
        metadata: ObjectMeta {
            name: Some(svc.to_string()),
            namespace: Some(cx.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: (!annotations.is_empty()).then(|| annotations.clone()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas,
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_string()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::String("10%".to_string())),
                    ..Default::default()
                }),
            }),
            progress_deadline_seconds: p.spec.progress_deadline_seconds,
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    annotations: (!annotations.is_empty()).then_some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            ..Default::default()
        }),
        status: None,
    }
}

fn service(cx: &Context, p: &Predictor<'_>, svc: &str, port: i32) -> Service {
    let mut labels = cx.base_labels();
    labels.insert(names::LABEL_SELDON_APP.to_string(), svc.to_string());
    let mut meta = cx.meta(svc, labels);
    meta.annotations = (!p.spec.annotations.is_empty()).then(|| p.spec.annotations.clone());
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            selector: Some(BTreeMap::from([(
                names::LABEL_SELDON_APP.to_string(),
                svc.to_string(),
            )])),
            ports: Some(vec![ServicePort {
                name: Some(names::PORT_NAME_HTTP.to_string()),
                port,
                target_port: Some(IntOrString::Int(port)),
                protocol: Some("TCP".to_string()),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        status: None,
    }
}

/// The route's timeout without `seldon.io/rest-timeout`: 5 minutes. Seldon's explainer
/// VirtualService had none (Istio: unlimited); a route here always has one (no default may
/// decide a user's timeout, issue 11), long enough for an Anchor explanation's many
/// predictions.
pub const DEFAULT_ROUTE_TIMEOUT_MS: u64 = 300_000;

/// The route's timeout: `seldon.io/rest-timeout` when set (an explanation makes many
/// predictions; Seldon's explainer example sets 100000, and its Ambassador explainer Mapping
/// took the same value), else [`DEFAULT_ROUTE_TIMEOUT_MS`].
fn timeout(cx: &Context, p: &Predictor<'_>) -> String {
    let ms = p
        .timeout_ms(cx, names::ANNOTATION_REST_TIMEOUT)
        .filter(|t| *t > 0)
        .unwrap_or(DEFAULT_ROUTE_TIMEOUT_MS);
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    }
}

/// `…/v2/models/<graph>/explain` → the v2 explainer's `/v2/models/<container>/infer`.
fn v2_explain_alias(cx: &Context, p: &Predictor<'_>, svc: &str) -> Option<(String, String)> {
    alibi_protocol(cx).is_none().then(|| {
        let model = of(p)
            .and_then(|e| e.container_spec.as_ref())
            .map(|c| c.name.clone())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| svc.to_string());
        (
            format!(
                "{}v2/models/{}/explain",
                path_prefix(cx, p),
                p.spec.graph.name
            ),
            format!("/v2/models/{model}/infer"),
        )
    })
}

fn virtual_service(
    cx: &Context,
    p: &Predictor<'_>,
    svc: &str,
    port: i32,
    opts: &RenderOptions,
) -> CustomObject {
    let route = json!([{
        "destination": {"host": names::fqdn(svc, &cx.namespace), "subset": p.spec.name, "port": {"number": port}},
        "weight": 100,
    }]);
    let timeout = timeout(cx, p);
    let mut http = Vec::new();
    if let Some((from, to)) = v2_explain_alias(cx, p, svc) {
        http.push(json!({
            "name": "explain-v2",
            "match": [{"uri": {"exact": from}}],
            "rewrite": {"uri": to},
            "route": route,
            "timeout": timeout,
        }));
    }
    http.push(json!({
        "name": "explainer",
        "match": [{"uri": {"prefix": path_prefix(cx, p)}}],
        "rewrite": {"uri": "/"},
        "route": route,
        "timeout": timeout,
    }));
    let hosts: Vec<String> = cx
        .annotation(names::ANNOTATION_ISTIO_HOST)
        .map(|h| {
            h.split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .unwrap_or_else(|| vec!["*".to_string()]);
    let gateway = cx
        .annotation(names::ANNOTATION_ISTIO_GATEWAY)
        .unwrap_or(&opts.istio_gateway);
    CustomObject {
        api_version: "networking.istio.io/v1".to_string(),
        kind: "VirtualService".to_string(),
        // Seldon's `<svc>-http`, cut to 63 characters
        metadata: cx.meta(&names::container_suffixed(svc, "http"), cx.base_labels()),
        spec: json!({"hosts": hosts, "gateways": [gateway], "http": http}),
    }
}

/// The Ambassador route (Seldon's explainer Mapping): the same prefix, to the explainer
/// Service; `timeout_ms` = `seldon.io/rest-timeout` (3000 when unset, as for the predictor).
fn mapping(cx: &Context, p: &Predictor<'_>, svc: &str, port: i32) -> CustomObject {
    let timeout_ms = p
        .timeout_ms(cx, names::ANNOTATION_REST_TIMEOUT)
        .unwrap_or(names::DEFAULT_REST_TIMEOUT_MS);
    let mut spec = json!({
        "hostname": "*",
        "prefix": path_prefix(cx, p),
        "rewrite": "/",
        "service": format!("{svc}.{}:{port}", cx.namespace),
        "timeout_ms": timeout_ms,
    });
    if timeout_ms > 300_000 {
        spec["idle_timeout_ms"] = json!(timeout_ms);
    }
    if let Some(id) = cx.annotation(names::ANNOTATION_AMBASSADOR_ID) {
        spec["ambassador_id"] = json!([id]);
    }
    CustomObject {
        api_version: "getambassador.io/v3alpha1".to_string(),
        kind: "Mapping".to_string(),
        metadata: cx.meta(
            &names::k8s_name(&format!(
                "seldon-{}-{}-{}-explainer",
                cx.namespace, cx.name, p.spec.name
            )),
            cx.base_labels(),
        ),
        spec,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Catalogue, Manifest, render as render_all};

    fn sdep(extra_spec: &str, explainer: &str) -> seldon_crd::SeldonDeployment {
        let yaml = format!(
            "metadata: {{name: x, namespace: ns}}\nspec:\n{extra_spec}  predictors:\n  - name: p\n    graph: {{name: m, implementation: SKLEARN_SERVER, modelUri: gs://a}}\n    explainer: {explainer}\n"
        );
        serde_yaml::from_str(&yaml).unwrap()
    }

    fn objects(s: &seldon_crd::SeldonDeployment, opts: &RenderOptions) -> Vec<Manifest> {
        render_all(s, opts)
            .unwrap()
            .into_iter()
            .filter(|m| m.name().contains("explainer"))
            .collect()
    }

    fn container(m: &[Manifest]) -> Container {
        match &m[0] {
            Manifest::Deployment(d) => {
                d.spec.clone().unwrap().template.spec.unwrap().containers[0].clone()
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_explainer_or_seldon_s_empty_one_renders_nothing() {
        let opts = RenderOptions::default();
        assert!(objects(&sdep("", "{containerSpec: {name: ''}}"), &opts).is_empty());
        assert!(objects(&sdep("", "{}"), &opts).is_empty());
    }

    #[test]
    fn ambassador_gets_a_mapping_and_istio_a_route_with_the_catalogue_image() {
        let mut opts = RenderOptions {
            catalogue: Catalogue::from_yaml(
                "explainer: {image: me/alibi:2, image_v2: me/mlserver:2}\nservers:\n  SKLEARN_SERVER: {image: s}\n",
            )
            .unwrap(),
            ..RenderOptions::default()
        };
        let s = sdep("", "{type: AnchorTabular}");
        let kinds: Vec<String> = objects(&s, &opts)
            .iter()
            .map(|m| m.kind().to_string())
            .collect();
        assert_eq!(
            kinds,
            ["Deployment", "Service", "DestinationRule", "VirtualService"]
        );
        assert_eq!(
            container(&objects(&s, &opts)).image.as_deref(),
            Some("me/alibi:2")
        );
        opts.ingress = Ingress::Ambassador;
        let m = objects(&s, &opts);
        assert_eq!(m.len(), 3);
        let v = m[2].to_value();
        assert_eq!(v["kind"], "Mapping");
        assert_eq!(v["metadata"]["name"], "seldon-ns-x-p-explainer");
        assert_eq!(v["spec"]["prefix"], "/seldon/ns/x-explainer/p/");
        assert_eq!(v["spec"]["service"], "x-p-explainer.ns:9000");
        let v2 = sdep("  protocol: v2\n", "{type: AnchorTabular}");
        assert_eq!(
            container(&objects(&v2, &opts)).image.as_deref(),
            Some("me/mlserver:2")
        );
    }

    #[test]
    fn user_args_and_env_win_and_zero_predictor_replicas_zero_the_explainer() {
        let opts = RenderOptions::default();
        let s = sdep(
            "  replicas: 0\n",
            "{type: AnchorTabular, replicas: 3, containerSpec: {name: e, image: me/e:1, args: [--mine], env: [{name: MLSERVER_HTTP_PORT, value: '1'}]}}",
        );
        let m = objects(&s, &opts);
        let c = container(&m);
        assert_eq!(c.args, Some(vec!["--mine".to_string()]));
        assert_eq!(c.name, "e");
        match &m[0] {
            Manifest::Deployment(d) => assert_eq!(d.spec.as_ref().unwrap().replicas, Some(0)),
            other => panic!("{other:?}"),
        }
        // v2: the user's MLSERVER_HTTP_PORT is kept, the rest is added
        let v2 = sdep(
            "  protocol: v2\n",
            "{type: KernelShap, containerSpec: {name: e, env: [{name: MLSERVER_HTTP_PORT, value: '1'}]}}",
        );
        let env = container(&objects(&v2, &opts)).env.unwrap();
        let get = |k: &str| {
            env.iter()
                .find(|e| e.name == k)
                .and_then(|e| e.value.clone())
        };
        assert_eq!(get("MLSERVER_HTTP_PORT").as_deref(), Some("1"));
        assert!(
            get("MLSERVER_MODEL_EXTRA")
                .unwrap()
                .contains("\"explainer_type\":\"kernel_shap\"")
        );
        assert_eq!(get("MLSERVER_MODEL_NAME").as_deref(), Some("e"));
    }

    #[test]
    fn an_unknown_type_is_refused_not_rendered() {
        let err = render_all(&sdep("", "{type: Anchors}"), &RenderOptions::default()).unwrap_err();
        assert!(
            err.to_string()
                .contains("spec.predictors[0].explainer.type"),
            "{err}"
        );
    }
}
