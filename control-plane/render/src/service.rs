//! Services (Seldon §2.5): one per graph-node container (`<sdep>-<pred>-<container>`, its
//! http/grpc ports, selecting `seldon-app-svc-<container>`), and the predictor's entry Service
//! `<sdep>-<pred>` (http 8000, selecting `seldon-app`), whose port 8000 the graph filter serves
//! in the sidecar. Its `grpc` port 5001 is added only with `RenderOptions::grpc_entry`: nothing
//! serves gRPC at the entry yet, and a Service port is an advertised endpoint (the operator
//! writes it into `status.serviceStatus[].grpcEndpoint`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use seldon_crd::defaults::find_unit;
use seldon_crd::names;

use crate::{Context, Predictor, RenderOptions};

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: number,
        target_port: Some(IntOrString::Int(number)),
        protocol: Some("TCP".to_string()),
        ..Default::default()
    }
}

/// Node Services (componentSpec and container order), then the predictor Service.
pub fn render(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Vec<Service> {
    let mut out = Vec::new();
    for component in &p.spec.component_specs {
        for container in &component.spec.containers {
            let Some(unit) = find_unit(&p.spec.graph, &container.name) else {
                continue;
            };
            let Some(endpoint) = &unit.endpoint else {
                continue;
            };
            let svc = names::container_service(&cx.name, &p.spec.name, &container.name);
            let selector_key = names::container_svc_label(&container.name);
            let mut labels = cx.base_labels();
            labels.insert(selector_key.clone(), svc.clone());
            let mut meta = cx.meta(&svc, labels);
            meta.annotations = (!p.spec.annotations.is_empty()).then(|| p.spec.annotations.clone());
            out.push(Service {
                metadata: meta,
                spec: Some(ServiceSpec {
                    type_: Some("ClusterIP".to_string()),
                    selector: Some(BTreeMap::from([(selector_key, svc.clone())])),
                    ports: Some(vec![
                        port(
                            names::PORT_NAME_HTTP,
                            endpoint.http_port.unwrap_or(names::HTTP_PORT_BASE),
                        ),
                        port(
                            names::PORT_NAME_GRPC,
                            endpoint.grpc_port.unwrap_or(names::GRPC_PORT_BASE),
                        ),
                    ]),
                    ..Default::default()
                }),
                status: None,
            });
        }
    }
    out.push(predictor_service(cx, p, opts));
    out
}

fn predictor_service(cx: &Context, p: &Predictor<'_>, opts: &RenderOptions) -> Service {
    let mut labels = cx.base_labels();
    labels.insert(names::LABEL_SELDON_APP.to_string(), p.service.clone());
    let mut meta = cx.meta(&p.service, labels);
    meta.annotations = (!p.spec.annotations.is_empty()).then(|| p.spec.annotations.clone());
    let headless = p.annotation(cx, names::ANNOTATION_HEADLESS_SVC) == Some("true");
    let mut ports = vec![port(names::PORT_NAME_HTTP, names::PREDICTOR_HTTP_PORT)];
    if opts.grpc_entry {
        ports.push(port(names::PORT_NAME_GRPC, names::PREDICTOR_GRPC_PORT));
    }
    Service {
        metadata: meta,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_string()),
            cluster_ip: headless.then(|| "None".to_string()),
            selector: Some(BTreeMap::from([(
                names::LABEL_SELDON_APP.to_string(),
                p.service.clone(),
            )])),
            ports: Some(ports),
            ..Default::default()
        }),
        status: None,
    }
}
