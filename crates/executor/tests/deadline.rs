//! The graph's deadline (the longest chain of node-call timeouts) and the gateway route timeout
//! derived from it.

use std::collections::BTreeMap;

use seldon_executor::deadline::MAX_ROUTE_TIMEOUT_MS;
use seldon_executor::{GATEWAY_GRACE_MS, graph_deadline_ms, route_timeout_ms};
use seldon_graph::{FilterConfig, NodeUpstream, Plan, PredictiveUnit, Protocol, Transport};

/// A plan of `graph` whose node `n` has timeout `timeouts[n]` (10 s when not listed).
fn plan(graph: &str, timeouts: &[(&str, u64)]) -> Plan {
    let graph: PredictiveUnit = serde_yaml::from_str(graph).unwrap();
    let nodes: BTreeMap<String, NodeUpstream> = graph
        .walk()
        .into_iter()
        .map(|n| {
            let timeout_ms = timeouts
                .iter()
                .find(|(name, _)| *name == n.name)
                .map(|(_, t)| *t)
                .unwrap_or(10_000);
            let up = NodeUpstream {
                cluster: n.name.clone(),
                authority: format!("{}:9000", n.name),
                port: 9000,
                transport: Transport::Rest,
                protocol: None,
                timeout_ms,
            };
            (n.name.clone(), up)
        })
        .collect();
    let cfg = FilterConfig {
        deployment: "sdep".into(),
        namespace: "ns".into(),
        predictor: "default".into(),
        protocol: Protocol::Seldon,
        graph,
        nodes,
        body_limit_bytes: 1024,
        payload_logger: None,
        tracing: None,
    };
    seldon_graph::compile(&cfg).unwrap()
}

#[test]
fn one_model_is_its_own_timeout() {
    assert_eq!(
        graph_deadline_ms(&plan("{name: m, type: MODEL}", &[])),
        10_000
    );
}

#[test]
fn a_chain_sums_its_nodes() {
    // the issue's case: two nodes of 8 s each, each within its 10 s timeout, must fit
    let p = plan(
        "{name: t, type: TRANSFORMER, children: [{name: m, type: MODEL}]}",
        &[],
    );
    assert_eq!(graph_deadline_ms(&p), 20_000);
    assert!(route_timeout_ms([&p], None) > 16_000);
}

#[test]
fn a_node_with_several_calls_counts_each() {
    // t: /transform-input, then the router r: /route, then m, then o: /transform-output
    let p = plan(
        "{name: o, type: OUTPUT_TRANSFORMER, children: [{name: t, type: TRANSFORMER, children: [
           {name: r, type: ROUTER, children: [{name: m, type: MODEL}, {name: n, type: MODEL}]}]}]}",
        &[
            ("o", 1_000),
            ("t", 2_000),
            ("r", 300),
            ("m", 4_000),
            ("n", 5_000),
        ],
    );
    assert_eq!(graph_deadline_ms(&p), 1_000 + 2_000 + 300 + 5_000);
    // a node with transform-input and transform-output is called twice
    let both = plan(
        "{name: x, methods: [TRANSFORM_INPUT, TRANSFORM_OUTPUT], children: [{name: m, type: MODEL}]}",
        &[("x", 1_000), ("m", 4_000)],
    );
    assert_eq!(graph_deadline_ms(&both), 1_000 + 4_000 + 1_000);
}

#[test]
fn parallel_children_count_the_slowest_and_aggregate_adds() {
    let p = plan(
        "{name: c, type: COMBINER, children: [
           {name: a, type: MODEL},
           {name: t, type: TRANSFORMER, children: [{name: b, type: MODEL}]}]}",
        &[("c", 500), ("a", 9_000), ("t", 3_000), ("b", 4_000)],
    );
    assert_eq!(graph_deadline_ms(&p), 500 + 9_000);
}

#[test]
fn random_abtest_costs_nothing_itself() {
    let p = plan(
        "{name: ab, type: ROUTER, implementation: RANDOM_ABTEST,
          parameters: [{name: ratioA, value: '0.5', type: FLOAT}],
          children: [{name: a, type: MODEL}, {name: b, type: MODEL}]}",
        &[("a", 3_000), ("b", 7_000)],
    );
    assert_eq!(graph_deadline_ms(&p), 7_000);
}

#[test]
fn route_timeout_takes_the_slowest_predictor_and_the_whole_request_bound() {
    let fast = plan("{name: m, type: MODEL}", &[("m", 1_000)]);
    let slow = plan(
        "{name: t, type: TRANSFORMER, children: [{name: m, type: MODEL}]}",
        &[("t", 8_000), ("m", 8_000)],
    );
    assert_eq!(
        route_timeout_ms([&fast, &slow], None),
        16_000 + GATEWAY_GRACE_MS
    );
    // `seldon.io/rest-timeout` bounds the whole request at least (Seldon's ingress timeout)
    assert_eq!(
        route_timeout_ms([&fast], Some(30_000)),
        30_000 + GATEWAY_GRACE_MS
    );
    // a smaller whole-request value never cuts a graph whose nodes need longer
    assert_eq!(
        route_timeout_ms([&slow], Some(10_000)),
        16_000 + GATEWAY_GRACE_MS
    );
}

#[test]
fn no_plans_leave_only_the_grace() {
    assert_eq!(
        route_timeout_ms(std::iter::empty::<&Plan>(), None),
        GATEWAY_GRACE_MS
    );
    assert_eq!(
        route_timeout_ms(std::iter::empty::<&Plan>(), Some(u64::MAX)),
        MAX_ROUTE_TIMEOUT_MS,
        "a duration Envoy and Istio accept"
    );
}
