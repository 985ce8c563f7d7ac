//! `check`: every problem of a SeldonDeployment — Seldon's CRD-level rules
//! (`seldon_crd::validate`), catalogue lookups, and `seldon_graph::compile` of each
//! predictor's rendered filter config — as one list with field paths. The CLI's `validate`,
//! the webhook and `render` all call it.

use seldon_crd::{Violation, names};
use seldon_graph::{Implementation, Rule, Transport, compile};

use crate::filter_config::filter_config;
use crate::{Context, NodeCalls, Predictor, RenderOptions};

/// Why `spec.transport: grpc` is refused (see `RenderOptions::grpc_entry`).
pub const GRPC_NOT_SERVED: &str = "grpc is not served yet: the ingress routes REST only \
(/seldon/<namespace>/<name>/ on port 8000) and the graph filter calls nodes over REST; gRPC \
at the entry comes with the filter's gRPC support. Use transport: rest (or leave it unset)";

/// Every problem, CRD rules first, then per predictor. Empty when `sdep` renders.
pub fn check(sdep: &seldon_crd::SeldonDeployment, opts: &RenderOptions) -> Vec<Violation> {
    let mut out = seldon_crd::validate(sdep);
    let crd_paths: Vec<String> = out.iter().map(|v| v.path.clone()).collect();
    let cx = Context::new(sdep);
    let protocol = cx.sdep.spec.protocol();
    // gRPC-only entry: refused while the entry serves REST only (one message, not one per node)
    let grpc_refused = cx.sdep.spec.transport() == Transport::Grpc && !opts.grpc_entry;
    if grpc_refused {
        out.push(Violation {
            path: "spec.transport".to_string(),
            message: GRPC_NOT_SERVED.to_string(),
        });
    }
    let node_calls_at = |annotations: Option<&std::collections::BTreeMap<String, String>>,
                         path: &str,
                         out: &mut Vec<Violation>| {
        if let Some(v) = annotations.and_then(|a| a.get(names::ANNOTATION_NODE_CALLS))
            && let Err(e) = v.parse::<NodeCalls>()
        {
            out.push(Violation {
                path: format!("{path}[{:?}]", names::ANNOTATION_NODE_CALLS),
                message: e.to_string(),
            });
        }
    };
    node_calls_at(
        sdep.metadata.annotations.as_ref(),
        "metadata.annotations",
        &mut out,
    );
    node_calls_at(Some(&sdep.spec.annotations), "spec.annotations", &mut out);
    for (i, spec) in cx.sdep.spec.predictors.iter().enumerate() {
        let p = Predictor::new(&cx, i, spec);
        let prefix = format!("spec.predictors[{i}]");
        node_calls_at(
            Some(&spec.annotations),
            &format!("{prefix}.annotations"),
            &mut out,
        );
        // Catalogue: every prepackaged key must exist and speak the protocol.
        let mut stack = vec![(&spec.graph, format!("{prefix}.graph"))];
        while let Some((unit, path)) = stack.pop() {
            if let Some(Implementation::Prepackaged(key)) = &unit.implementation {
                match opts.catalogue.get(key) {
                    None => out.push(Violation {
                        path: format!("{path}.implementation"),
                        message: format!(
                            "{key:?} is not a built-in implementation nor a server in the catalogue (known: {})",
                            opts.catalogue.servers.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    }),
                    Some(server) if !server.protocols.contains(&protocol) => out.push(Violation {
                        path: format!("{path}.implementation"),
                        message: format!("server {key} does not speak protocol {protocol:?}"),
                    }),
                    Some(_) => {}
                }
            }
            for (j, c) in unit.children.iter().enumerate().rev() {
                stack.push((c, format!("{path}.children[{j}]")));
            }
        }
        if let Err(e) = compile(&filter_config(&cx, &p, opts)) {
            for problem in e.problems {
                let graph_path = format!("{prefix}.{}", problem.path);
                // "no container" was already said by the CRD rules, in Seldon's words
                if problem.rule == Rule::MissingUpstream && crd_paths.contains(&graph_path) {
                    continue;
                }
                // said once at spec.transport
                if problem.rule == Rule::GrpcUnsupported && grpc_refused {
                    continue;
                }
                let path = if problem.path == "protocol" {
                    "spec.protocol".to_string()
                } else if problem.path.starts_with("graph") {
                    format!("{prefix}.{}", problem.path)
                } else {
                    // a filter-config field (nodes.<n>.*, bodyLimitBytes, protocol): name the node
                    format!(
                        "{prefix}.graph (node {:?}, filter config {})",
                        problem.node, problem.path
                    )
                };
                let v = Violation {
                    path,
                    message: problem.rule.to_string(),
                };
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
    }
    out
}
