//! `graph_compile`: `seldon_graph::compile` on random graphs.
//!
//! First byte even: the rest is a `FilterConfig` as JSON (the filter's wire form; the corpus
//! holds real ones). Odd: the rest drives a generator of configs from names, types,
//! methods, implementations and parameters that `compile` knows, plus a few it does not.

use std::collections::BTreeSet;

use arbitrary::{Result, Unstructured};
use seldon_graph::{FilterConfig, compile};
use serde_json::{Map, Value, json};

pub fn graph_compile(data: &[u8]) {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(config) = FilterConfig::from_json(rest) {
            check(&config);
        }
        return;
    }
    let mut u = Unstructured::new(rest);
    let Ok(value) = config_value(&mut u) else {
        return;
    };
    let config: FilterConfig = serde_json::from_value(value.clone())
        .unwrap_or_else(|e| panic!("generated config does not deserialize ({e}): {value}"));
    check(&config);
}

/// compile never panics; what it accepts has unique DNS-1123 names, a plan node per graph
/// node, and survives the JSON round trip with the same verdict.
fn check(config: &FilterConfig) {
    let verdict = compile(config);
    if let Ok(plan) = &verdict {
        let mut seen = BTreeSet::new();
        for unit in config.graph.walk() {
            assert!(
                seen.insert(unit.name.as_str()),
                "compile accepted duplicate node name {:?}",
                unit.name
            );
            assert!(
                is_dns1123_label(&unit.name),
                "compile accepted node name {:?}",
                unit.name
            );
            assert!(
                plan.find(&unit.name).is_some(),
                "plan lost node {}",
                unit.name
            );
        }
        assert_eq!(plan.nodes.len(), seen.len(), "plan has extra nodes");
    } else if let Err(e) = &verdict {
        assert!(!e.problems.is_empty(), "compile failed with no problem");
    }
    let json = config.to_json();
    let back = FilterConfig::from_json(json.as_bytes())
        .unwrap_or_else(|e| panic!("FilterConfig does not re-parse its JSON ({e}): {json}"));
    assert_eq!(&back, config, "FilterConfig JSON round trip changed it");
    assert_eq!(
        compile(&back),
        verdict,
        "compile's verdict changed after a round trip"
    );
}

fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    let ok = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !b.is_empty()
        && b.len() <= 63
        && b.first().is_some_and(ok)
        && b.last().is_some_and(ok)
        && b.iter().all(|c| ok(c) || *c == b'-')
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "m",
    "r",
    "t",
    "model-1",
    "A",
    "bad_name",
    "-x",
    "",
    "é",
    "abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwxyz-0123456789",
];
const TYPES: &[&str] = &[
    "MODEL",
    "ROUTER",
    "COMBINER",
    "TRANSFORMER",
    "OUTPUT_TRANSFORMER",
    "UNKNOWN_TYPE",
    "model",
];
const METHODS: &[&str] = &[
    "TRANSFORM_INPUT",
    "TRANSFORM_OUTPUT",
    "ROUTE",
    "AGGREGATE",
    "SEND_FEEDBACK",
    "PREDICT",
];
const IMPLEMENTATIONS: &[&str] = &[
    "SIMPLE_MODEL",
    "SIMPLE_ROUTER",
    "RANDOM_ABTEST",
    "AVERAGE_COMBINER",
    "UNKNOWN_IMPLEMENTATION",
    "SKLEARN_SERVER",
    "XGBOOST_SERVER",
    "TRITON_SERVER",
    "",
];
const PARAM_NAMES: &[&str] = &["ratioA", "x", "model_uri", ""];
const PARAM_TYPES: &[&str] = &["INT", "FLOAT", "DOUBLE", "STRING", "BOOL", "LONG"];
const PARAM_VALUES: &[&str] = &[
    "0.5", "0", "1", "2", "-1", "abc", "NaN", "inf", "1e400", "true", "", "0x10", " 1",
];
const PROTOCOLS: &[&str] = &["seldon", "tensorflow", "v2", "kfserving"];

fn pick<'a>(u: &mut Unstructured, from: &[&'a str]) -> Result<&'a str> {
    Ok(*u.choose(from)?)
}

fn config_value(u: &mut Unstructured) -> Result<Value> {
    let mut names = Vec::new();
    let graph = unit(u, 0, &mut names)?;
    let protocols = PROTOCOLS;
    let mut nodes = Map::new();
    for name in &names {
        // Some nodes have no upstream (compile must say so, or not need one).
        if u.ratio(7, 8)? {
            let mut up = Map::new();
            up.insert("cluster".into(), json!(format!("outbound|9000||{name}")));
            up.insert("authority".into(), json!(format!("{name}:9000")));
            up.insert("port".into(), json!(u.int_in_range(0..=65535u16)?));
            up.insert("transport".into(), json!(*u.choose(&["rest", "grpc"])?));
            if u.ratio(1, 4)? {
                up.insert("protocol".into(), json!(pick(u, protocols)?));
            }
            if u.ratio(1, 3)? {
                up.insert("timeoutMs".into(), json!(u.arbitrary::<u64>()?));
            }
            nodes.insert(name.clone(), Value::Object(up));
        }
    }
    let mut config = json!({
        "deployment": pick(u, NAMES)?,
        "namespace": "ns",
        "predictor": pick(u, NAMES)?,
        "protocol": pick(u, protocols)?,
        "graph": graph,
        "nodes": nodes,
        "bodyLimitBytes": u.arbitrary::<u64>()?,
    });
    if u.ratio(1, 2)? {
        config["payloadLogger"] = json!({"cluster": "logger", "authority": "logger:80"});
    }
    if u.ratio(1, 4)? {
        config["tracing"] = json!({
            "cluster": "otel", "authority": "otel:4318",
            "sampleRatio": f64::from(u.int_in_range(0..=20u8)?) / 10.0,
        });
    }
    Ok(config)
}

fn unit(u: &mut Unstructured, depth: usize, names: &mut Vec<String>) -> Result<Value> {
    let name = if u.ratio(1, 16)? {
        u.arbitrary::<String>()?
    } else {
        pick(u, NAMES)?.to_string()
    };
    names.push(name.clone());
    let mut node = Map::new();
    node.insert("name".into(), json!(name));
    if u.ratio(1, 2)? {
        node.insert("type".into(), json!(pick(u, TYPES)?));
    }
    if u.ratio(1, 4)? {
        let n = u.int_in_range(0..=3)?;
        let methods: Vec<&str> = (0..n).map(|_| pick(u, METHODS)).collect::<Result<_>>()?;
        node.insert("methods".into(), json!(methods));
    }
    if u.ratio(1, 3)? {
        node.insert("implementation".into(), json!(pick(u, IMPLEMENTATIONS)?));
    }
    if u.ratio(1, 3)? {
        let n = u.int_in_range(0..=3)?;
        let params: Vec<Value> = (0..n)
            .map(|_| {
                Ok(json!({
                    "name": pick(u, PARAM_NAMES)?,
                    "type": pick(u, PARAM_TYPES)?,
                    "value": pick(u, PARAM_VALUES)?,
                }))
            })
            .collect::<Result<_>>()?;
        node.insert("parameters".into(), json!(params));
    }
    if u.ratio(1, 3)? {
        node.insert(
            "modelUri".into(),
            json!(*u.choose(&["gs://b/m", "", "s3://x"])?),
        );
    }
    if u.ratio(1, 5)? {
        let mut logger = json!({"mode": *u.choose(&["request", "response", "all"])?});
        if u.ratio(1, 2)? {
            logger["url"] = json!(*u.choose(&["http://log:80/", "ftp://x", "", "https://l"])?);
        }
        node.insert("logger".into(), logger);
    }
    if u.ratio(1, 5)? {
        node.insert(
            "endpoint".into(),
            json!({"type": *u.choose(&["REST", "GRPC", "HTTP"])?, "service_port": u.arbitrary::<i32>()?}),
        );
    }
    // Depth: mostly shallow, sometimes past compile's MAX_DEPTH (32).
    let max_children = if depth < 5 {
        3
    } else if depth < 40 {
        1
    } else {
        0
    };
    let n = u.int_in_range(0..=max_children)?;
    let mut children = Vec::new();
    for _ in 0..n {
        children.push(unit(u, depth + 1, names)?);
    }
    if !children.is_empty() {
        node.insert("children".into(), Value::Array(children));
    }
    Ok(Value::Object(node))
}
