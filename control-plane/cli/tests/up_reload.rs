//! `seldon-mesh up` hot-reloads the manifest over xDS: real binary, real Envoy, real
//! `testmodel` nodes; bodies asserted.
//!
//! - a graph change under 200 rps fails no request, the new graph answers within 2 s of the
//!   save (an editor-style rename), and Envoy is the same process;
//! - an invalid change is refused with the validator's message and the old graph serves;
//! - changed weights and a new predictor apply; a removed predictor's node process stops;
//! - nothing is left running afterwards (a marker variable in `/proc/*/environ`, as in
//!   `up_lifecycle.rs`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MARK: &str = "SELDON_RELOAD_TEST_MARK";

mod common;

use common::{alive, envoy_ready, filter, free_port, sibling};

/// `common::marked` for this file's marker variable.
fn marked(mark: &str, except: u32) -> Vec<(u32, String)> {
    common::marked(MARK, mark, except)
}

fn testmodel(name: &str, add: f64) -> String {
    format!(
        "exec {} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} --mode add --add {add}",
        sibling("testmodel").display()
    )
}

/// A running `seldon-mesh up` with the marker; stopped with SIGTERM on drop, after which no
/// marked process may be left.
struct Up {
    child: Child,
    mark: String,
    url: String,
    file: PathBuf,
    workdir: PathBuf,
    stderr: PathBuf,
}

impl Up {
    fn start(mark: &str, manifest: &str, runs: &[(&str, String)]) -> Up {
        envoy_ready();
        let dir = tempfile::tempdir().unwrap().keep();
        let file = dir.join("sdep.yaml");
        std::fs::write(&file, manifest).unwrap();
        let stderr = dir.join("up.stderr");
        let workdir = dir.join("run");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_seldon-mesh"));
        cmd.env(MARK, mark)
            .args(["up", "-f"])
            .arg(&file)
            .args(["--port", &free_port().to_string()])
            .arg("--filter")
            .arg(filter())
            .arg("--workdir")
            .arg(&workdir);
        for (node, command) in runs {
            cmd.arg("--run").arg(format!("{node}={command}"));
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines.by_ref() {
            if let Some(url) = line.unwrap().strip_prefix("ready: ") {
                let url = url.to_string();
                std::thread::spawn(move || lines.for_each(drop));
                return Up {
                    child,
                    mark: mark.to_string(),
                    url,
                    file,
                    workdir,
                    stderr,
                };
            }
        }
        let status = child.wait().unwrap();
        panic!(
            "seldon-mesh up exited ({status}) before it was ready:\n{}",
            std::fs::read_to_string(&stderr).unwrap_or_default()
        );
    }

    /// Saves the manifest as editors do: a new file renamed over the old one.
    fn save(&self, manifest: &str) -> Instant {
        let tmp = self.file.with_extension("yaml.swp");
        std::fs::write(&tmp, manifest).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
        Instant::now()
    }

    fn state(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.workdir.join("up.json")).unwrap())
            .unwrap()
    }

    fn envoy_pid(&self) -> u32 {
        self.state()["envoy"]["pid"].as_u64().unwrap() as u32
    }

    fn node_pid(&self, node: &str) -> Option<u32> {
        self.state()["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == node)
            .map(|n| n["pid"].as_u64().unwrap() as u32)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Waits until `up`'s stderr holds `needle`.
    fn wait_stderr(&self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let text = self.stderr();
            if text.contains(needle) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} within {within:?}; stderr:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let left = marked(&self.mark, 0);
        for (pid, _) in &left {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if !std::thread::panicking() {
            assert!(left.is_empty(), "processes left behind: {left:#?}");
        }
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// One prediction: the status and the body's `data.ndarray`, or the error.
async fn predict(client: &reqwest::Client, url: &str) -> Result<(u16, Value), String> {
    let r = client
        .post(url)
        .json(&json!({"data": {"ndarray": [[1.0]]}}))
        .send()
        .await
        .map_err(|e| format!("{e:?}"))?;
    let status = r.status().as_u16();
    let body: Value = r.json().await.map_err(|e| format!("{e:?}"))?;
    Ok((status, body))
}

/// `data.ndarray[0][0]` of a 200, else the whole outcome as an error.
fn answer(outcome: &Result<(u16, Value), String>) -> Result<f64, String> {
    match outcome {
        Ok((200, body)) => body["data"]["ndarray"][0][0]
            .as_f64()
            .ok_or_else(|| format!("no ndarray: {body}")),
        other => Err(format!("{other:?}")),
    }
}

/// 200 requests per second (4 workers, one every 20 ms each, keep-alive connections) until
/// `stop`; every outcome with the time it finished.
async fn load(url: String, stop: Arc<AtomicBool>) -> Vec<(Instant, Result<f64, String>)> {
    let client = client();
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (client, url, stop) = (client.clone(), url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(20));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut out = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    let outcome = predict(&client, &url).await;
                    out.push((Instant::now(), answer(&outcome)));
                }
                out
            })
        })
        .collect();
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort_by_key(|(t, _)| *t);
    all
}

const MODEL_ONLY: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: hot, namespace: test}
spec:
  predictors:
  - name: main
    graph: {name: m, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: m, image: me/m:1}, {name: o, image: me/o:1}]}}]
"#;

/// The same model behind a new output transformer `o` (adds 10).
const WITH_OUTPUT_TRANSFORMER: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: hot, namespace: test}
spec:
  predictors:
  - name: main
    graph:
      name: o
      type: OUTPUT_TRANSFORMER
      children: [{name: m, type: MODEL}]
    componentSpecs: [{spec: {containers: [{name: m, image: me/m:1}, {name: o, image: me/o:1}]}}]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_graph_change_under_load_fails_nothing_and_an_invalid_one_is_refused() {
    let mark = format!("graph-{}", std::process::id());
    let runs = [("m", testmodel("m", 1.0)), ("o", testmodel("o", 10.0))];
    let up = tokio::task::spawn_blocking(move || Up::start(&mark, MODEL_ONLY, &runs))
        .await
        .unwrap();
    let url = up.url.clone();
    assert_eq!(answer(&predict(&client(), &url).await), Ok(2.0));
    let envoy = up.envoy_pid();
    let model = up.node_pid("m").unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let loader = tokio::spawn(load(url.clone(), stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    let saved = up.save(WITH_OUTPUT_TRANSFORMER);
    // Load goes on until the new graph answered 2 s ago.
    let new_seen = loop {
        if predict(&client(), &url)
            .await
            .as_ref()
            .map(|(_, b)| b["data"]["ndarray"][0][0].clone())
            == Ok(json!(12.0))
        {
            break Instant::now();
        }
        assert!(
            saved.elapsed() < Duration::from_secs(10),
            "the new graph never answered; stderr:\n{}",
            up.stderr()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let outcomes = loader.await.unwrap();

    let failed: Vec<_> = outcomes
        .iter()
        .filter(|(_, a)| !matches!(a, Ok(v) if *v == 2.0 || *v == 12.0))
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {} requests failed or answered wrongly: {:?}",
        failed.len(),
        outcomes.len(),
        &failed[..failed.len().min(5)]
    );
    let before = outcomes.iter().filter(|(t, _)| *t < saved).count();
    assert!(before >= 150, "load ran: {before} requests before the save");
    let first_new = outcomes
        .iter()
        .find(|(_, a)| *a == Ok(12.0))
        .map(|(t, _)| *t)
        .unwrap_or(new_seen);
    let reload = first_new.saturating_duration_since(saved);
    eprintln!(
        "reload: the new graph answered {:.3} s after the save ({} requests under load, 0 failed)",
        reload.as_secs_f64(),
        outcomes.len()
    );
    assert!(reload < Duration::from_secs(2), "reload took {reload:?}");
    let stale: Vec<_> = outcomes
        .iter()
        .filter(|(t, a)| *t > first_new + Duration::from_secs(1) && *a == Ok(2.0))
        .collect();
    assert!(
        stale.is_empty(),
        "old graph answered 1 s after the new one: {}",
        stale.len()
    );
    assert_eq!(up.envoy_pid(), envoy, "Envoy was not restarted");
    assert!(alive(envoy));
    assert_eq!(
        up.node_pid("m"),
        Some(model),
        "the unchanged node kept its process"
    );
    up.wait_stderr("reloaded: the new graph answers", Duration::from_secs(5));

    // An invalid change: refused with the validator's message; the running graph stays.
    up.save(&WITH_OUTPUT_TRANSFORMER.replace("spec:\n", "spec:\n  transport: grpc\n"));
    let stderr = up.wait_stderr("refused:", Duration::from_secs(5));
    assert!(
        stderr.contains("spec.transport") && stderr.contains("the running graph stays"),
        "{stderr}"
    );
    for _ in 0..20 {
        assert_eq!(answer(&predict(&client(), &url).await), Ok(12.0));
    }
    assert_eq!(up.envoy_pid(), envoy);
    tokio::task::spawn_blocking(move || drop(up)).await.unwrap();
}

const ONE_PREDICTOR: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: split, namespace: test}
spec:
  predictors:
  - name: a
    graph: {name: ma, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: ma, image: me/m:1}]}}]
"#;

const TWO_PREDICTORS: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: split, namespace: test}
spec:
  predictors:
  - name: a
    traffic: 50
    graph: {name: ma, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: ma, image: me/m:1}]}}]
  - name: b
    traffic: 50
    graph: {name: mb, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: mb, image: me/m:1}]}}]
"#;

const ONLY_B: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: split, namespace: test}
spec:
  predictors:
  - name: b
    graph: {name: mb, type: MODEL}
    componentSpecs: [{spec: {containers: [{name: mb, image: me/m:1}]}}]
"#;

async fn answers(url: &str, n: usize) -> Vec<f64> {
    let client = client();
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(answer(&predict(&client, url).await).unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_new_node_is_refused_weights_and_a_new_predictor_apply_a_removed_node_stops() {
    let mark = format!("split-{}", std::process::id());
    let runs = [
        ("ma", testmodel("ma", 1.0)),
        ("mb", testmodel("mb", 100.0)),
        ("bad", "false".to_string()),
    ];
    let up = tokio::task::spawn_blocking(move || Up::start(&mark, ONE_PREDICTOR, &runs))
        .await
        .unwrap();
    let url = up.url.clone();
    assert!(answers(&url, 10).await.iter().all(|v| *v == 2.0));
    let envoy = up.envoy_pid();
    let ma = up.node_pid("ma").unwrap();

    // A new node that exits at once: the reload fails naming it, and the old graph stays.
    up.save(
        &ONE_PREDICTOR
            .replace(
                "graph: {name: ma, type: MODEL}",
                "graph: {name: bad, type: OUTPUT_TRANSFORMER, children: [{name: ma, type: MODEL}]}",
            )
            .replace(
                "[{name: ma, image: me/m:1}]",
                "[{name: ma, image: me/m:1}, {name: bad, image: me/b:1}]",
            ),
    );
    let stderr = up.wait_stderr("reload failed:", Duration::from_secs(10));
    assert!(
        stderr.contains("node `bad` exited before it was ready")
            && stderr.contains("the running graph stays"),
        "{stderr}"
    );
    assert!(answers(&url, 10).await.iter().all(|v| *v == 2.0));
    assert_eq!(up.node_pid("ma"), Some(ma));

    up.save(TWO_PREDICTORS);
    up.wait_stderr("reloaded: the new graph answers", Duration::from_secs(10));
    let got = answers(&url, 200).await;
    let b = got.iter().filter(|v| **v == 101.0).count();
    let a = got.iter().filter(|v| **v == 2.0).count();
    assert_eq!(a + b, 200, "only the two predictors answer: {got:?}");
    assert!((60..=140).contains(&b), "50/50 split: {a} to a, {b} to b");
    assert_eq!(
        up.node_pid("ma"),
        Some(ma),
        "predictor a's node was not restarted"
    );

    up.save(ONLY_B);
    let stderr = up.wait_stderr("stopped a.ma", Duration::from_secs(20));
    assert!(
        stderr.contains("reloaded: the new graph answers"),
        "{stderr}"
    );
    let got = answers(&url, 20).await;
    assert!(
        got.iter().all(|v| *v == 101.0),
        "only b answers after a's node stopped: {got:?}"
    );
    assert!(!alive(ma), "the removed node's process {ma} is stopped");
    assert_eq!(up.node_pid("ma"), None, "up.json no longer lists it");
    assert_eq!(up.envoy_pid(), envoy, "Envoy was not restarted");
    tokio::task::spawn_blocking(move || drop(up)).await.unwrap();
}

/// Edits in quick succession each apply at once: the second save, right after the first
/// reload, answers with its graph within 3 s (it used to wait out the first reload's 5 s drain
/// and 1 s margin, 6 s). What the reloads replaced still goes after the drain: the removed
/// predictor's node stops, and Envoy is the same process throughout.
#[tokio::test(flavor = "multi_thread")]
async fn a_second_edit_right_after_a_reload_applies_at_once() {
    let mark = format!("quick-{}", std::process::id());
    let runs = [("ma", testmodel("ma", 1.0)), ("mb", testmodel("mb", 100.0))];
    let up = tokio::task::spawn_blocking(move || Up::start(&mark, ONE_PREDICTOR, &runs))
        .await
        .unwrap();
    let url = up.url.clone();
    assert!(answers(&url, 5).await.iter().all(|v| *v == 2.0));
    let envoy = up.envoy_pid();
    let ma = up.node_pid("ma").unwrap();

    up.save(TWO_PREDICTORS);
    up.wait_stderr("reloaded: the new graph answers", Duration::from_secs(10));
    let got = answers(&url, 40).await;
    assert!(got.contains(&101.0) && got.contains(&2.0), "{got:?}");

    // the second edit, at once
    let saved = up.save(ONLY_B);
    let deadline = saved + Duration::from_secs(3);
    let client = client();
    loop {
        let got = answers(&url, 10).await;
        if got.iter().all(|v| *v == 101.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the second edit did not answer within 3 s of its save: {got:?}\n{}",
            up.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = saved.elapsed();
    // still only b afterwards, on a kept-alive client too
    for _ in 0..10 {
        assert_eq!(answer(&predict(&client, &url).await), Ok(101.0));
    }

    // and the removed node still goes once the drain is over
    let stderr = up.wait_stderr("stopped a.ma", Duration::from_secs(20));
    assert_eq!(
        stderr.matches("reloaded: the new graph answers").count(),
        2,
        "{stderr}"
    );
    assert!(!alive(ma), "the removed node's process {ma} is stopped");
    assert_eq!(up.node_pid("ma"), None, "up.json no longer lists it");
    assert_eq!(up.envoy_pid(), envoy, "Envoy was not restarted");
    eprintln!("second edit answered {took:?} after its save");
    tokio::task::spawn_blocking(move || drop(up)).await.unwrap();
}
