//! Seldon's metric names in a real Prometheus (issue 8): `seldon-mesh up` under load, scraped by
//! Debian's `prometheus` (installed by `scripts/setup-prometheus.sh`) with the shipped
//! recording rules (`manifests/prometheus/seldon-rules.yaml`), then Prometheus's HTTP query API.
//!
//! The deployment: predictor `main` (traffic 80) is transformer `tin` → router `rt` (always
//! child 1) → models `m0`, `m1`, so `tin`, `rt` and `m1` run and `m0` does not; predictor
//! `canary` (traffic 20) is one node `bad` that answers 500. 300 predictions over 6 s.
//!
//! Every query the test checks is in [`QUERIES`], and the Grafana dashboard
//! (`manifests/grafana/seldon-mesh.json`) uses exactly those. They are the `_seconds` names of
//! Seldon v1, which only exist through the recording rules (Envoy exports `_ms`).
//!
//! Prometheus and `up` are supervised: a failing assertion stops them and everything they
//! started.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seldon_supervise::Supervised;
use serde_json::{Value, json};

mod common;

use common::{free_port, sibling, start_up};

const SDEP: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: watched, namespace: team}
spec:
  predictors:
  - name: main
    traffic: 80
    graph:
      name: tin
      type: TRANSFORMER
      children:
      - name: rt
        type: ROUTER
        children:
        - {name: m0, type: MODEL}
        - {name: m1, type: MODEL}
    componentSpecs:
    - spec:
        containers:
        - {name: tin, image: me/tin:1}
        - {name: rt, image: me/rt:1}
        - {name: m0, image: me/m:1}
        - {name: m1, image: me/m:1}
  - name: canary
    traffic: 20
    graph: {name: bad, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: bad, image: me/bad:1}]}}]
"#;

/// Per node (the filter's graph calls to it: /predict, /route, …): request rate. The node
/// queries leave out `service="ready"`, the readiness checks of `GET …/status`.
const NODE_RATE: &str = r#"sum by (model_name) (rate(seldon_api_executor_client_requests_seconds_count{service!="ready"}[30s]))"#;
/// Per node: rate of answers that are not 2xx.
const NODE_ERRORS: &str = r#"sum by (model_name) (rate(seldon_api_executor_client_requests_seconds_count{service!="ready", code!~"2.."}[30s]))"#;
/// Per node: median latency (seconds).
const NODE_P50: &str = r#"histogram_quantile(0.5, sum by (model_name, le) (rate(seldon_api_executor_client_requests_seconds_bucket{service!="ready"}[30s])))"#;
/// Per node: p99 latency (seconds).
const NODE_P99: &str = r#"histogram_quantile(0.99, sum by (model_name, le) (rate(seldon_api_executor_client_requests_seconds_bucket{service!="ready"}[30s])))"#;
/// Per predictor and response code: prediction rate. The predictor queries count
/// `service="predictions"` only: `up`'s readiness checks (`GET …/status`) and feedback are
/// other services.
const PREDICTOR_RATE: &str = r#"sum by (deployment_name, predictor_name, code) (rate(seldon_api_executor_server_requests_seconds_count{service="predictions"}[30s]))"#;
/// Per predictor: rate of answers that are not 2xx.
const PREDICTOR_ERRORS: &str = r#"sum by (deployment_name, predictor_name) (rate(seldon_api_executor_server_requests_seconds_count{service="predictions", code!~"2.."}[30s]))"#;
/// Per predictor: median latency (seconds).
const PREDICTOR_P50: &str = r#"histogram_quantile(0.5, sum by (deployment_name, predictor_name, le) (rate(seldon_api_executor_server_requests_seconds_bucket{service="predictions"}[30s])))"#;
/// Per predictor: p99 latency (seconds).
const PREDICTOR_P99: &str = r#"histogram_quantile(0.99, sum by (deployment_name, predictor_name, le) (rate(seldon_api_executor_server_requests_seconds_bucket{service="predictions"}[30s])))"#;

/// Every query the test checks; the dashboard may use these and no other.
const QUERIES: [&str; 8] = [
    NODE_RATE,
    NODE_ERRORS,
    NODE_P50,
    NODE_P99,
    PREDICTOR_RATE,
    PREDICTOR_ERRORS,
    PREDICTOR_P50,
    PREDICTOR_P99,
];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
}

fn rules_file() -> PathBuf {
    repo("manifests/prometheus/seldon-rules.yaml")
}

/// `scripts/setup-prometheus.sh` (idempotent): the paths of `prometheus` and `promtool`.
fn prometheus_installed() -> BTreeMap<String, PathBuf> {
    let out = Command::new("bash")
        .arg(repo("scripts/setup-prometheus.sh"))
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(out.status.success(), "scripts/setup-prometheus.sh failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
        .collect()
}

/// The millisecond bounds the rules file converts (`{le="…"}` of the `_ms_bucket` selectors).
fn rule_bounds(side: &str) -> BTreeSet<String> {
    let rules = std::fs::read_to_string(rules_file()).unwrap();
    let selector = format!("seldon_api_executor_{side}_requests_ms_bucket{{le=\"");
    rules
        .lines()
        .filter_map(|l| l.split_once(selector.as_str()))
        .map(|(_, rest)| rest.split('"').next().unwrap().to_string())
        .collect()
}

/// A real Prometheus on a free port scraping Envoy's admin `/stats/prometheus` every second,
/// evaluating the shipped rules every second.
struct Prometheus {
    process: Supervised,
    base: String,
    log: PathBuf,
}

impl Prometheus {
    async fn start(bin: &Path, dir: &Path, envoy_admin: &str) -> Self {
        let port = free_port();
        let target = envoy_admin
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let config = format!(
            r#"
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
- {rules}
scrape_configs:
- job_name: envoy
  metrics_path: /stats/prometheus
  static_configs:
  - targets: ["{target}"]
"#,
            rules = rules_file().display()
        );
        let file = dir.join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let log = dir.join("prometheus.log");
        let mut cmd = seldon_supervise::command(bin);
        cmd.arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut process = Supervised::spawn("prometheus", cmd).unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = process.try_wait().unwrap() {
                panic!(
                    "prometheus exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            let ready = http
                .get(format!("{base}/-/ready"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "prometheus not ready in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self { process, base, log }
    }

    /// An instant query: `(labels, value)` per series.
    async fn query(&self, q: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/api/v1/query", self.base), [("query", q)])
                .unwrap();
        let body: Value = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["status"], "success", "{q}: {body}");
        assert_eq!(body["data"]["resultType"], "vector", "{q}: {body}");
        body["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                    .collect();
                let value = s["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (labels, value)
            })
            .collect()
    }

    /// `by`, polled until it holds exactly `keys` (30 s): Envoy merges its histograms into
    /// what /stats/prometheus shows every stats flush (5 s), so a rate over recorded series
    /// needs a few scrapes after the load before it has two samples.
    async fn by_when(&self, q: &str, label: &str, keys: &[&str]) -> BTreeMap<String, f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let found = self.by(q, label).await;
            if found.keys().map(String::as_str).eq(keys.iter().copied()) {
                return found;
            }
            assert!(
                Instant::now() < deadline,
                "{q}: after 30 s by {label} {found:?}, want {keys:?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// `query`, as `label value → value` by one label.
    async fn by(&self, q: &str, label: &str) -> BTreeMap<String, f64> {
        self.query(q)
            .await
            .into_iter()
            .map(|(labels, v)| (labels.get(label).cloned().unwrap_or_default(), v))
            .collect()
    }
}

fn testmodel(name: &str, args: &str) -> String {
    format!(
        "exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} {args}",
        sibling("testmodel").display()
    )
}

/// The shipped rules file is valid for Prometheus's own checker (lint included).
#[test]
fn promtool_accepts_the_rules() {
    let tools = prometheus_installed();
    let out = Command::new(&tools["PROMTOOL"])
        .arg("check")
        .arg("rules")
        .arg(rules_file())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    // sum, count and 20 buckets (19 bounds and +Inf), for server and client
    assert!(text.contains("SUCCESS: 44 rules found"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_node_rate_and_p99_in_a_real_prometheus_under_seldon_names() {
    let tools = prometheus_installed();
    let dir = tempfile::tempdir().unwrap();
    let runs = [
        ("tin", testmodel("tin", "--mode add --add 1")),
        ("rt", testmodel("rt", "--route 1")),
        ("m0", testmodel("m0", "--mode add --add 10")),
        ("m1", testmodel("m1", "--mode add --add 100")),
        ("bad", testmodel("bad", "--mode fail --fail-status 500")),
    ];
    let common::Started { up: _up, url, .. } = start_up(dir.path(), SDEP, &[], &runs);
    let state: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run/up.json")).unwrap())
            .unwrap();
    let admin = state["envoy"]["adminUrl"]
        .as_str()
        .unwrap_or_else(|| panic!("no envoy.adminUrl in up.json: {state}"))
        .to_string();
    let prom = Prometheus::start(&tools["PROMETHEUS"], dir.path(), &admin).await;

    // 300 predictions over 6 s, one every 20 ms.
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let start = Instant::now();
    let (mut ok, mut failed) = (0u32, 0u32);
    for i in 0..300u32 {
        let r = client
            .post(&url)
            .json(&json!({"data": {"ndarray": [[1.0]]}}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        match status {
            // tin adds 1, the router picks m1, which adds 100
            200 => {
                assert_eq!(body["data"]["ndarray"], json!([[102.0]]), "{body}");
                ok += 1;
            }
            500 => failed += 1,
            other => panic!("unexpected {other}: {body}"),
        }
        let next = start + Duration::from_millis(20 * u64::from(i + 1));
        tokio::time::sleep_until(next.into()).await;
    }
    assert!(
        ok > 0 && failed > 0,
        "both predictors answered: {ok} ok, {failed} failed"
    );

    // Envoy's bucket bounds are exactly the ones the rules convert.
    let raw = client
        .get(format!("{}/stats/prometheus", admin.trim_end_matches('/')))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for side in ["server", "client"] {
        let prefix = format!("seldon_api_executor_{side}_requests_ms_bucket{{");
        let envoy: BTreeSet<String> = raw
            .lines()
            .filter(|l| l.starts_with(&prefix))
            .filter_map(|l| l.split_once("le=\""))
            .map(|(_, rest)| rest.split('"').next().unwrap().to_string())
            .collect();
        assert!(!envoy.is_empty(), "no {prefix} in Envoy's output:\n{raw}");
        assert_eq!(
            envoy,
            rule_bounds(side),
            "{side}: Envoy's bounds vs the rules'"
        );
    }

    // Scraped and recorded: the `_seconds` counts reach what was sent (fails if Prometheus
    // never scraped, or the rules never ran). Each node of main ran once per request main
    // answered; m0 never did.
    let want_server = BTreeMap::from([
        ("canary".to_string(), f64::from(failed)),
        ("main".to_string(), f64::from(ok)),
    ]);
    let want_client = BTreeMap::from([
        ("bad".to_string(), f64::from(failed)),
        ("m1".to_string(), f64::from(ok)),
        ("rt".to_string(), f64::from(ok)),
        ("tin".to_string(), f64::from(ok)),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let server = prom
            .by(
                r#"sum by (predictor_name) (seldon_api_executor_server_requests_seconds_count{service="predictions"})"#,
                "predictor_name",
            )
            .await;
        let client = prom
            .by(
                r#"sum by (model_name) (seldon_api_executor_client_requests_seconds_count{service!="ready"})"#,
                "model_name",
            )
            .await;
        if server == want_server && client == want_client {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s Prometheus holds {server:?} {client:?}, sent {want_server:?} \
             {want_client:?}; series: {:?}\ntargets: {}\nlog:\n{}",
            prom.query("seldon_api_executor_client_requests_seconds_count")
                .await,
            reqwest::get(format!("{}/api/v1/targets", prom.base))
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
            std::fs::read_to_string(&prom.log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The sum is in seconds: the mean call is well under a second, not milliseconds.
    let mean = prom
        .query("sum(seldon_api_executor_client_requests_seconds_sum) / sum(seldon_api_executor_client_requests_seconds_count)")
        .await;
    assert!(
        mean.len() == 1 && mean[0].1 > 0.0 && mean[0].1 < 1.0,
        "{mean:?}"
    );

    // Per node: rate, errors, p50, p99.
    let nodes = ["bad", "m1", "rt", "tin"];
    let rate = prom.by_when(NODE_RATE, "model_name", &nodes).await;
    // 50 requests/s were sent in all; a node cannot see more
    for (node, r) in &rate {
        assert!(*r > 0.0 && *r <= 60.0, "{node}: rate {r}");
    }
    let errors = prom.by_when(NODE_ERRORS, "model_name", &["bad"]).await;
    // every call to bad fails (the queries run at different instants: no equality)
    assert!(
        errors["bad"] > 0.0 && errors["bad"] <= 60.0,
        "{errors:?} {rate:?}"
    );
    for q in [NODE_P50, NODE_P99] {
        let latency = prom.by_when(q, "model_name", &nodes).await;
        for (node, s) in &latency {
            assert!(*s > 0.0 && *s < 5.0, "{q}: {node} {s} s");
        }
    }

    // Per predictor: rate by code (main 200, canary 500), errors, p50, p99.
    prom.by_when(PREDICTOR_RATE, "predictor_name", &["canary", "main"])
        .await;
    let rate: BTreeMap<(String, String, String), f64> = prom
        .query(PREDICTOR_RATE)
        .await
        .into_iter()
        .map(|(l, v)| {
            (
                (
                    l["deployment_name"].clone(),
                    l["predictor_name"].clone(),
                    l["code"].clone(),
                ),
                v,
            )
        })
        .collect();
    let key = |p: &str, code: &str| ("watched".to_string(), p.to_string(), code.to_string());
    assert_eq!(
        rate.keys().cloned().collect::<Vec<_>>(),
        [key("canary", "500"), key("main", "200")],
        "{rate:?}"
    );
    for r in rate.values() {
        assert!(*r > 0.0 && *r <= 60.0, "{rate:?}");
    }
    let errors = prom
        .by_when(PREDICTOR_ERRORS, "predictor_name", &["canary"])
        .await;
    assert!(errors["canary"] > 0.0, "{errors:?}");
    for q in [PREDICTOR_P50, PREDICTOR_P99] {
        let latency = prom.by_when(q, "predictor_name", &["canary", "main"]).await;
        for (p, s) in &latency {
            assert!(*s > 0.0 && *s < 5.0, "{q}: {p} {s} s");
        }
    }

    // Everything is stopped by the supervisors (Prometheus first, then up and what it started).
    let Prometheus { mut process, .. } = prom;
    process.stop().unwrap();
}

/// The shipped Grafana dashboard charts exactly the queries the Prometheus test checks: every
/// panel `expr` is one of [`QUERIES`], and each of them is charted.
#[test]
fn the_dashboard_uses_exactly_the_tested_queries() {
    let text = std::fs::read_to_string(repo("manifests/grafana/seldon-mesh.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    let mut stack: Vec<&Value> = dashboard["panels"].as_array().unwrap().iter().collect();
    while let Some(panel) = stack.pop() {
        if let Some(inner) = panel["panels"].as_array() {
            stack.extend(inner);
        }
        for target in panel["targets"].as_array().into_iter().flatten() {
            exprs.push(
                target["expr"]
                    .as_str()
                    .unwrap_or_else(|| panic!("a target without expr in {panel}"))
                    .to_string(),
            );
        }
    }
    for expr in &exprs {
        assert!(QUERIES.contains(&expr.as_str()), "untested query: {expr}");
    }
    let charted: BTreeSet<&str> = exprs.iter().map(String::as_str).collect();
    for q in QUERIES {
        assert!(charted.contains(q), "tested but not charted: {q}");
    }
}
