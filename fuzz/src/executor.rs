//! `executor`: the executor's state machine through its host-agnostic API, with a fake host
//! (as crates/executor/tests do) and events in random orders: request headers, body size,
//! body, node answers for real, stale, repeated and unknown tokens, failed dispatches.
//!
//! Properties: never panics; at most one response per request; never stuck (no call in flight
//! and no response is a hang); a response status is a valid HTTP status.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use arbitrary::{Result, Unstructured};
use seldon_executor::{Call, CallDone, CallResponse, Host, RequestExecutor, Span, Step};
use seldon_graph::{
    FilterConfig, NodeUpstream, PayloadLogger, Plan, PredictiveUnit, Protocol, Tracing, Transport,
    compile,
};

/// (protocol, graph YAML, gRPC nodes, tracing on). (The filter calls nodes over REST only and
/// refuses the tensorflow protocol, so no graph has gRPC nodes or that protocol.)
const GRAPHS: &[(Protocol, &str, &[&str], bool)] = &[
    (Protocol::Seldon, "name: m", &[], false),
    (
        Protocol::Seldon,
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        &[],
        true,
    ),
    (
        Protocol::Seldon,
        "{name: r, type: ROUTER, children: [{name: a}, {name: b}]}",
        &[],
        false,
    ),
    (
        Protocol::Seldon,
        "{name: c, type: COMBINER, children: [{name: a}, {name: b, logger: {mode: all}}]}",
        &[],
        false,
    ),
    (
        Protocol::Seldon,
        "{name: ab, implementation: RANDOM_ABTEST, parameters: [{name: ratioA, value: '0.5', type: FLOAT}], children: [{name: a}, {name: b}]}",
        &[],
        true,
    ),
    (
        Protocol::Seldon,
        "{name: u, type: UNKNOWN_TYPE, methods: [ROUTE, TRANSFORM_OUTPUT, SEND_FEEDBACK], children: [{name: a, type: OUTPUT_TRANSFORMER, children: [{name: m}]}, {name: b}]}",
        &[],
        false,
    ),
    (
        Protocol::V2,
        "{name: t, type: TRANSFORMER, children: [{name: m}]}",
        &[],
        true,
    ),
];

thread_local! {
    static PLANS: Vec<Rc<Plan>> = GRAPHS.iter().map(|g| Rc::new(plan(*g))).collect();
}

fn plan((protocol, yaml, grpc, tracing): (Protocol, &str, &[&str], bool)) -> Plan {
    let graph: PredictiveUnit = serde_yaml::from_str(yaml).expect("fixed graph parses");
    let nodes = graph
        .walk()
        .into_iter()
        .map(|n| {
            let transport = if grpc.contains(&n.name.as_str()) {
                Transport::Grpc
            } else {
                Transport::Rest
            };
            let up = NodeUpstream {
                cluster: format!("node_{}", n.name),
                authority: format!("{}:9000", n.name),
                port: 9000,
                transport,
                protocol: None,
                timeout_ms: 500,
            };
            (n.name.clone(), up)
        })
        .collect();
    let config = FilterConfig {
        deployment: "sdep".into(),
        namespace: "ns".into(),
        predictor: "default".into(),
        protocol,
        graph,
        nodes,
        body_limit_bytes: 4096,
        payload_logger: Some(PayloadLogger {
            cluster: "logger".into(),
            authority: "logger".into(),
            path: "/".into(),
            timeout_ms: 1000,
        }),
        tracing: tracing.then(|| Tracing::new("otel", "otel:4318")),
    };
    compile(&config).unwrap_or_else(|e| panic!("fixed graph {yaml} does not compile: {e}"))
}

/// Records calls; answers come from the fuzz input.
#[derive(Default)]
struct FakeHost {
    next_token: u32,
    /// Tokens dispatched and not yet answered.
    in_flight: BTreeSet<u32>,
    answered: Vec<u32>,
    calls: BTreeMap<u32, Call>,
    fail_dispatch: bool,
    random: f64,
    clock_ns: u64,
}

impl Host for FakeHost {
    fn dispatch(&mut self, call: &Call) -> std::result::Result<u32, String> {
        if self.fail_dispatch {
            return Err("BadArgument".into());
        }
        self.next_token += 1;
        self.in_flight.insert(self.next_token);
        self.calls.insert(self.next_token, call.clone());
        Ok(self.next_token)
    }
    fn send_later(&mut self, _: Call) {}
    fn random_f64(&mut self) -> f64 {
        self.random
    }
    fn random_u128(&mut self) -> u128 {
        0x1234_5678_9abc_def0_1234_5678_9abc_def0
    }
    fn now_ns(&mut self) -> u64 {
        self.clock_ns += 1_000_000;
        self.clock_ns
    }
    fn call_done(&mut self, _: &CallDone<'_>) {}
    fn span_done(&mut self, _: Span) {}
}

const PATHS: &[&str] = &[
    "/api/v1.0/predictions",
    "/api/v1.0/feedback",
    "/api/v0.1/predictions",
    "/api/v1.0/metadata",
    "/api/v1.0/metadata/m",
    "/api/v1.0/status",
    "/v2/models/m/infer",
    "/v2/models/t/infer",
    "/v2/models/sdep/infer",
    "/v2/models/m",
    "/v2/models/m/ready",
    "/v2/health/ready",
    "/ready",
    "/live",
    "/health/ping",
    "/health/status",
    "/seldon.protos.Seldon/Predict",
    "/seldon.protos.Seldon/SendFeedback",
    "/inference.GRPCInferenceService/ModelInfer",
    "/v1/models/m:predict",
    "/",
];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "application/grpc",
    "text/plain",
    "application/octet-stream",
    "",
];
/// Request and answer bodies that reach deep states; the fuzzer also sends arbitrary bytes.
const BODIES: &[&[u8]] = &[
    br#"{"data":{"ndarray":[[1,2]]}}"#,
    br#"{"data":{"ndarray":[[0]]}}"#,
    br#"{"data":{"ndarray":[[1]]}}"#,
    br#"{"data":{"tensor":{"shape":[1],"values":[-1]}}}"#,
    br#"{"data":{"ndarray":[[7]]}}"#,
    b"[1]",
    b"[[0]]",
    br#"{"meta":{"routing":{"r":1}},"data":{"ndarray":[[3]]}}"#,
    br#"{"request":{"data":{"ndarray":[[1]]}},"response":{"meta":{"routing":{"r":0,"u":1,"ab":1}}},"reward":1}"#,
    br#"{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}"#,
    br#"{"model_name":"t","outputs":[{"name":"y","shape":[1],"datatype":"INT64","data":[3]}]}"#,
    br#"{"model_name":"t","outputs":[{"name":"y","shape":[1]}]}"#,
    br#"{"status":{"code":500,"info":"boom","status":"FAILURE"}}"#,
    br#"{"name":"m","versions":[],"platform":"","inputs":[],"outputs":[]}"#,
    br#"{"instances":[[1,2]]}"#,
    br#"{"predictions":[[3]]}"#,
    b"garbage",
    b"",
    b"{}",
    b"null",
    b"\x00\x00\x00\x00\x05\x1a\x03\x0a\x01\x61",
    include_bytes!("../../crates/protocol/testdata/v1/tftensor.json"),
    include_bytes!("../../crates/protocol/testdata/v1/message_list.json"),
    include_bytes!("../../crates/protocol/testdata/v2/request_mixed.json"),
    include_bytes!("../../crates/protocol/testdata/v2/response_mixed.json"),
];

fn body(u: &mut Unstructured) -> Result<Vec<u8>> {
    if u.ratio(3, 4)? {
        Ok(u.choose(BODIES)?.to_vec())
    } else {
        Ok(u.arbitrary::<&[u8]>()?.to_vec())
    }
}

fn headers(u: &mut Unstructured, method: &str) -> Result<Vec<(String, String)>> {
    let path = if u.ratio(15, 16)? {
        (*u.choose(PATHS)?).to_string()
    } else {
        u.arbitrary::<String>()?
    };
    let mut h = vec![
        (":method".to_string(), method.to_string()),
        (":path".to_string(), path),
        (":authority".to_string(), "gateway".to_string()),
    ];
    if u.ratio(7, 8)? {
        h.push(("content-type".into(), (*u.choose(CONTENT_TYPES)?).into()));
    }
    let extra: &[(&str, &[&str])] = &[
        (
            "traceparent",
            &[
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                "zz",
            ],
        ),
        ("seldon-puid", &["p-1", "", "\u{7f}"]),
        ("seldon-skip-logging", &["true", "1"]),
        (
            "inference-header-content-length",
            &["0", "10", "x", "99999"],
        ),
        ("seldon-node", &["m"]),
        ("x-request-id", &["req-1"]),
    ];
    for (name, values) in extra {
        if u.ratio(1, 4)? {
            h.push(((*name).to_string(), (*u.choose(values)?).to_string()));
        }
    }
    Ok(h)
}

fn answer(u: &mut Unstructured) -> Result<CallResponse> {
    let status = match u.int_in_range(0..=9u8)? {
        0 => None,
        1 => Some(400),
        2 => Some(500),
        3 => Some(503),
        // Any status Envoy passes on from an upstream.
        4 => Some(u.int_in_range(200..=599)?),
        _ => Some(200),
    };
    let mut headers = Vec::new();
    if u.ratio(7, 8)? {
        headers.push(("content-type".into(), (*u.choose(CONTENT_TYPES)?).into()));
    }
    if u.ratio(1, 8)? {
        headers.push(("grpc-status".into(), (*u.choose(&["0", "13", "x"])?).into()));
    }
    if u.ratio(1, 8)? {
        headers.push((
            "inference-header-content-length".into(),
            (*u.choose(&["0", "12", "x"])?).into(),
        ));
    }
    Ok(CallResponse {
        status,
        headers,
        body: body(u)?,
    })
}

pub fn executor(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let _ = run(&mut u);
}

/// One request. Properties are asserted on every step; running out of input ends the request
/// early (then it may still be waiting, which is fine).
fn run(u: &mut Unstructured) -> Result<()> {
    let pick = usize::from(u.arbitrary::<u8>()?);
    let plan = PLANS.with(|p| p.get(pick % p.len()).cloned());
    let Some(plan) = plan else { return Ok(()) };
    let mut host = FakeHost {
        random: f64::from(u.int_in_range(0..=10u8)?) / 10.0,
        ..FakeHost::default()
    };
    let mut exec = RequestExecutor::new(plan);
    let responded = RefCell::new(0u32);
    let step_ok = |step: &Step| {
        if let Step::Respond(r) = step {
            assert!((100..=599).contains(&r.status), "status {}", r.status);
            *responded.borrow_mut() += 1;
            assert_eq!(*responded.borrow(), 1, "a second response for one request");
        }
    };

    let method = *u.choose(&["POST", "GET", "PUT"])?;
    let end_of_stream = method == "GET" || u.ratio(1, 16)?;
    host.fail_dispatch = u.ratio(1, 32)?;
    let mut step = exec.on_headers(&mut host, headers(u, method)?, end_of_stream);
    step_ok(&step);
    if step == Step::WaitBody {
        if u.ratio(1, 4)?
            && let Some(s) = exec.on_body_size(&mut host, u.int_in_range(0..=10_000usize)?)
        {
            step_ok(&s);
            step = s;
        }
        if !matches!(step, Step::Respond(_)) {
            step = exec.on_body(&mut host, body(u)?);
            step_ok(&step);
        }
    }
    host.fail_dispatch = false;

    for _ in 0..48 {
        if u.is_empty() {
            break;
        }
        // The usual event: an answer to a call in flight. Sometimes a stale or unknown token.
        let token = match u.int_in_range(0..=15u8)? {
            0 => u.arbitrary::<u32>()?,
            1 if !host.answered.is_empty() => *u.choose(&host.answered)?,
            _ => {
                let in_flight: Vec<u32> = host.in_flight.iter().copied().collect();
                if in_flight.is_empty() {
                    break;
                }
                *u.choose(&in_flight)?
            }
        };
        if host.in_flight.remove(&token) {
            host.answered.push(token);
        }
        host.fail_dispatch = u.ratio(1, 64)?;
        let s = exec.on_call_response(&mut host, token, answer(u)?);
        host.fail_dispatch = false;
        step_ok(&s);
        if !matches!(step, Step::Respond(_)) {
            step = s;
        }
    }
    // Never stuck: with every call answered, the request has its response.
    if host.in_flight.is_empty() && *responded.borrow() == 0 && step != Step::WaitBody {
        let calls: Vec<String> = host
            .calls
            .values()
            .map(|c| format!("{}{}", c.node, c.path))
            .collect();
        panic!("every call answered ({calls:?}) but no response: {step:?}");
    }
    Ok(())
}
