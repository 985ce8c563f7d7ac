//! Seldon's defaulting (`defaults.go`), applied at reconcile/render time as Seldon does (it has
//! no mutating webhook): `version` labels, node types, replicas, a container for every
//! prepackaged node, container ports and node endpoints.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, ContainerPort};
use seldon_graph::{
    Endpoint, EndpointType, Implementation, PredictiveUnit, PredictiveUnitType, Transport,
};

use crate::names;
use crate::spec::{PredictorSpec, SeldonDeployment, SeldonPodSpec};

/// The three ports of one node container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodePorts {
    pub http: i32,
    pub grpc: i32,
    pub metrics: i32,
}

/// Ports per container name, shared across the whole SeldonDeployment: a container with the
/// same name in two predictors gets the same ports (Seldon's `portMap`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PortAllocation {
    ports: BTreeMap<String, NodePorts>,
    next: i32,
}

impl PortAllocation {
    /// The ports of `name`, allocating the next free triple on first use.
    pub fn get_or_allocate(&mut self, name: &str) -> NodePorts {
        if let Some(p) = self.ports.get(name) {
            return *p;
        }
        let p = NodePorts {
            http: names::HTTP_PORT_BASE + self.next,
            grpc: names::GRPC_PORT_BASE + self.next,
            metrics: names::METRICS_PORT_BASE + self.next,
        };
        self.next += 1;
        self.ports.insert(name.to_string(), p);
        p
    }

    /// Ports allocated so far.
    pub fn get(&self, name: &str) -> Option<NodePorts> {
        self.ports.get(name).copied()
    }
}

/// The namespace of a SeldonDeployment, `default` when unset.
pub fn namespace(sdep: &SeldonDeployment) -> String {
    sdep.metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string())
}

/// The name of a SeldonDeployment (empty when unset; `validate` reports it).
pub fn name(sdep: &SeldonDeployment) -> String {
    sdep.metadata.name.clone().unwrap_or_default()
}

/// Replica count of a component: componentSpec > predictor > spec > 1.
pub fn effective_replicas(
    sdep: &SeldonDeployment,
    predictor: &PredictorSpec,
    component: &SeldonPodSpec,
) -> i32 {
    component
        .replicas
        .or(predictor.replicas)
        .or(sdep.spec.replicas)
        .unwrap_or(1)
}

/// Whether the node's implementation names a prepackaged server.
pub fn is_prepackaged(unit: &PredictiveUnit) -> bool {
    matches!(unit.implementation, Some(Implementation::Prepackaged(_)))
}

/// Applies Seldon's defaults in place. Idempotent.
pub fn apply_defaults(sdep: &mut SeldonDeployment) -> PortAllocation {
    let sdep_name = name(sdep);
    let ns = namespace(sdep);
    let transport = sdep.spec.transport();
    let spec_replicas = sdep.spec.replicas;
    let mut ports = PortAllocation::default();

    for predictor in &mut sdep.spec.predictors {
        predictor
            .labels
            .entry(names::LABEL_VERSION.to_string())
            .or_insert_with(|| predictor.name.clone());
        default_types(&mut predictor.graph);

        // Every prepackaged node needs a container; Seldon adds one to the first component.
        let missing: Vec<String> = predictor
            .graph
            .walk()
            .into_iter()
            .filter(|u| is_prepackaged(u) && !has_container(predictor, &u.name))
            .map(|u| u.name.clone())
            .collect();
        if !missing.is_empty() && predictor.component_specs.is_empty() {
            predictor.component_specs.push(SeldonPodSpec::default());
        }
        if let Some(first) = predictor.component_specs.first_mut() {
            for node in missing {
                first.spec.containers.push(Container {
                    name: node,
                    ..Default::default()
                });
            }
        }

        let predictor_replicas = predictor.replicas;
        for component in &mut predictor.component_specs {
            if component.replicas.is_none() {
                component.replicas = Some(predictor_replicas.or(spec_replicas).unwrap_or(1));
            }
            for container in &mut component.spec.containers {
                let allocated = ports.get_or_allocate(&container.name);
                if find_unit(&predictor.graph, &container.name).is_none() {
                    continue;
                }
                let p = set_container_ports(container, allocated);
                if let Some(unit) = find_unit_mut(&mut predictor.graph, &container.name) {
                    set_endpoint(
                        unit,
                        p,
                        transport,
                        &names::fqdn(
                            &names::container_service(&sdep_name, &predictor.name, &container.name),
                            &ns,
                        ),
                    );
                }
            }
        }
    }
    ports
}

fn has_container(predictor: &PredictorSpec, name: &str) -> bool {
    predictor
        .component_specs
        .iter()
        .any(|c| c.spec.containers.iter().any(|k| k.name == name))
}

/// Node type defaults: MODEL when nothing is said, MODEL for prepackaged servers.
fn default_types(unit: &mut PredictiveUnit) {
    if (unit.unit_type.is_none() || is_prepackaged(unit))
        && let Some(t) = unit.effective_type()
    {
        unit.unit_type = Some(t);
    }
    if is_prepackaged(unit) {
        unit.unit_type = Some(PredictiveUnitType::Model);
    }
    for child in &mut unit.children {
        default_types(child);
    }
}

/// Adds the `http`, `grpc` and `metrics` ports the container lacks; declared ones win.
fn set_container_ports(container: &mut Container, allocated: NodePorts) -> NodePorts {
    let declared = |c: &Container, name: &str| {
        c.ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .map(|p| p.container_port)
    };
    let http = declared(container, names::PORT_NAME_HTTP).unwrap_or(allocated.http);
    let grpc = declared(container, names::PORT_NAME_GRPC).unwrap_or(allocated.grpc);
    let metrics = declared(container, names::PORT_NAME_METRICS).unwrap_or(allocated.metrics);
    let list = container.ports.get_or_insert_with(Vec::new);
    for (port_name, port) in [
        (names::PORT_NAME_HTTP, http),
        (names::PORT_NAME_GRPC, grpc),
        (names::PORT_NAME_METRICS, metrics),
    ] {
        if !list.iter().any(|p| p.name.as_deref() == Some(port_name)) {
            list.push(ContainerPort {
                name: Some(port_name.to_string()),
                container_port: port,
                protocol: Some("TCP".to_string()),
                ..Default::default()
            });
        }
    }
    NodePorts {
        http,
        grpc,
        metrics,
    }
}

fn set_endpoint(unit: &mut PredictiveUnit, ports: NodePorts, transport: Transport, host: &str) {
    let endpoint = unit.endpoint.get_or_insert_with(Endpoint::default);
    let endpoint_type = endpoint.endpoint_type.clone().unwrap_or(match transport {
        Transport::Rest => EndpointType::Rest,
        Transport::Grpc => EndpointType::Grpc,
    });
    endpoint.service_host = Some(host.to_string());
    endpoint.http_port = Some(ports.http);
    endpoint.grpc_port = Some(ports.grpc);
    endpoint.service_port = Some(if endpoint_type == EndpointType::Grpc {
        ports.grpc
    } else {
        ports.http
    });
    endpoint.endpoint_type = Some(endpoint_type);
}

/// The node called `name`.
pub fn find_unit<'a>(unit: &'a PredictiveUnit, name: &str) -> Option<&'a PredictiveUnit> {
    unit.walk().into_iter().find(|u| u.name == name)
}

fn find_unit_mut<'a>(unit: &'a mut PredictiveUnit, name: &str) -> Option<&'a mut PredictiveUnit> {
    if unit.name == name {
        return Some(unit);
    }
    unit.children
        .iter_mut()
        .find_map(|c| find_unit_mut(c, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdep(yaml: &str) -> SeldonDeployment {
        serde_yaml::from_str(yaml).unwrap()
    }

    const TWO_PREDICTORS: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: ab, namespace: models}
spec:
  replicas: 3
  predictors:
  - name: a
    replicas: 2
    graph:
      name: transformer
      type: TRANSFORMER
      children: [{name: model}]
    componentSpecs:
    - spec:
        containers:
        - {name: transformer, image: t}
        - name: model
          image: m
          ports: [{name: http, containerPort: 7777}]
      replicas: 5
    - spec:
        containers: [{name: sidecar, image: s}]
  - name: b
    graph: {name: clf, implementation: SKLEARN_SERVER, modelUri: "gs://x"}
"#;

    #[test]
    fn ports_are_allocated_per_container_name_and_declared_ports_win() {
        let mut s = sdep(TWO_PREDICTORS);
        let ports = apply_defaults(&mut s);
        let a = &s.spec.predictors[0];
        let t = a.graph.endpoint.as_ref().unwrap();
        assert_eq!(
            (t.http_port, t.grpc_port, t.service_port),
            (Some(9000), Some(9500), Some(9000))
        );
        assert_eq!(
            t.service_host.as_deref(),
            Some("ab-a-transformer.models.svc.cluster.local")
        );
        let m = a.graph.children[0].endpoint.as_ref().unwrap();
        assert_eq!((m.http_port, m.grpc_port), (Some(7777), Some(9501)));
        assert_eq!(ports.get("sidecar").unwrap().http, 9002);
        // prepackaged node got a container and the next ports
        let b = &s.spec.predictors[1];
        assert_eq!(b.component_specs[0].spec.containers[0].name, "clf");
        assert_eq!(b.graph.endpoint.as_ref().unwrap().http_port, Some(9003));
        assert_eq!(b.graph.unit_type, Some(PredictiveUnitType::Model));
    }

    #[test]
    fn replicas_follow_seldon_precedence() {
        let mut s = sdep(TWO_PREDICTORS);
        apply_defaults(&mut s);
        assert_eq!(s.spec.predictors[0].component_specs[0].replicas, Some(5));
        assert_eq!(s.spec.predictors[0].component_specs[1].replicas, Some(2));
        assert_eq!(s.spec.predictors[1].component_specs[0].replicas, Some(3));
    }

    #[test]
    fn version_label_defaults_to_predictor_name_but_user_value_wins() {
        let mut s = sdep(TWO_PREDICTORS);
        s.spec.predictors[1]
            .labels
            .insert("version".into(), "v7".into());
        apply_defaults(&mut s);
        assert_eq!(s.spec.predictors[0].labels["version"], "a");
        assert_eq!(s.spec.predictors[1].labels["version"], "v7");
    }

    #[test]
    fn defaulting_is_idempotent() {
        let mut once = sdep(TWO_PREDICTORS);
        apply_defaults(&mut once);
        let mut twice = once.clone();
        apply_defaults(&mut twice);
        assert_eq!(once, twice);
    }

    #[test]
    fn grpc_transport_points_service_port_at_grpc() {
        let mut s = sdep(TWO_PREDICTORS);
        s.spec.transport = Some(Transport::Grpc);
        apply_defaults(&mut s);
        let e = s.spec.predictors[0].graph.endpoint.clone().unwrap();
        assert_eq!(e.endpoint_type, Some(EndpointType::Grpc));
        assert_eq!(e.service_port, Some(9500));
    }

    #[test]
    fn node_without_container_gets_no_endpoint() {
        let mut s = sdep(
            "metadata: {name: x}\nspec:\n  predictors:\n  - name: p\n    graph: {name: ghost}\n",
        );
        apply_defaults(&mut s);
        assert!(s.spec.predictors[0].graph.endpoint.is_none());
        assert_eq!(namespace(&s), "default");
    }
}
