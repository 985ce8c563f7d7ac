//! The local-mode samples of `manifests/samples/local/<name>/`, run the way their READMEs
//! say. Each README is this test's script, so the two cannot drift apart:
//!
//! - its `bash` block (the `seldon-mesh up` command and its setup lines) runs as written from
//!   the repository root, with `exec` and the built binary in place of
//!   `target/debug/seldon-mesh`; the port, filter, server and workdir come from their
//!   `SELDON_*` variables, so the command line itself is untouched;
//! - every `$ ` command of its `console` blocks runs in order (port 8000 replaced by the
//!   test's), and its output must be the lines under it: JSON compared value by value
//!   (numbers within 1e-5, relative above 1), other text line by line;
//! - then per-sample checks of what the README's output means: the transformer really ran
//!   before the classifier, the bandit's routing shifted after feedback, the ensemble answers
//!   the mean of its models, the v2 chain answers what its two models give one after the
//!   other. Node ports come from `up.json`.
//!
//! After each sample no process it started may be left (a marker variable, as in
//! `up_lifecycle.rs`). The samples run one at a time (each is an Envoy, up to four model
//! servers and a Python process; in parallel on a 2-core machine they only slowed each other
//! into timeouts). Needs the release filter (`make wasm`) and `seldon-server` built beside
//! this test's binary; the README's own setup line installs the Python venv.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

use common::{Started, envoy_ready, filter, free_port, marked, sibling};

const MARK: &str = "SELDON_SAMPLES_TEST_MARK";
/// How the READMEs call the binary (from the repository root, after `make demo`).
const README_BIN: &str = "target/debug/seldon-mesh up";
/// The port the READMEs use (`up`'s default).
const README_ADDR: &str = "127.0.0.1:8000";

fn root() -> PathBuf {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .canonicalize()
        .unwrap()
}

/// One `$ ` command of a `console` block and the lines under it.
#[derive(Debug, Clone, PartialEq)]
struct Step {
    command: String,
    expected: String,
}

/// What a sample README says to run.
#[derive(Debug, PartialEq)]
struct Readme {
    /// The `bash` block that starts `seldon-mesh up`.
    up: String,
    steps: Vec<Step>,
}

/// Fenced blocks of a Markdown text: (info string, content).
fn fenced_blocks(text: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in text.lines() {
        match (&mut open, line.trim_start().strip_prefix("```")) {
            (None, Some(info)) => open = Some((info.trim().to_string(), String::new())),
            (Some(_), Some(rest)) if rest.trim().is_empty() => blocks.extend(open.take()),
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "an unclosed ``` block");
    blocks
}

/// The `bash` block with `seldon-mesh up` (exactly one) and the steps of every `console`
/// block. A `$ ` line ending in `\` continues on the next line.
fn parse_readme(text: &str) -> Readme {
    let blocks = fenced_blocks(text);
    let ups: Vec<&String> = blocks
        .iter()
        .filter(|(info, body)| info == "bash" && body.contains(README_BIN))
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        ups.len(),
        1,
        "exactly one ```bash block runs `{README_BIN}`"
    );
    let mut steps: Vec<Step> = Vec::new();
    for (_, body) in blocks.iter().filter(|(info, _)| info == "console") {
        let mut continued = false;
        for line in body.lines() {
            if continued {
                let step = steps.last_mut().unwrap();
                step.command.push('\n');
                step.command.push_str(line);
                continued = line.ends_with('\\');
            } else if let Some(command) = line.strip_prefix("$ ") {
                steps.push(Step {
                    command: command.to_string(),
                    expected: String::new(),
                });
                continued = command.ends_with('\\');
            } else {
                let step = steps
                    .last_mut()
                    .unwrap_or_else(|| panic!("output before any `$ ` command: {line}"));
                step.expected.push_str(line);
                step.expected.push('\n');
            }
        }
    }
    Readme {
        up: ups[0].clone(),
        steps,
    }
}

fn readme(sample: &str) -> Readme {
    let path = root().join(format!("manifests/samples/local/{sample}/README.md"));
    parse_readme(&std::fs::read_to_string(&path).unwrap())
}

/// `expected` (from the README) and `actual` agree: as JSON if the README shows JSON (numbers
/// within 1e-5, relative above magnitude 1), else line by line with runs of blanks
/// collapsed.
fn same_output(expected: &str, actual: &str) -> Result<(), String> {
    let (e, a) = (expected.trim(), actual.trim());
    if let Ok(e_json) = serde_json::from_str::<Value>(e) {
        let a_json: Value =
            serde_json::from_str(a).map_err(|err| format!("not JSON ({err}): {a}"))?;
        return close(&e_json, &a_json, "$");
    }
    let norm = |s: &str| -> Vec<String> {
        s.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    if norm(e) == norm(a) {
        Ok(())
    } else {
        Err(format!("expected\n{e}\ngot\n{a}"))
    }
}

fn close(e: &Value, a: &Value, at: &str) -> Result<(), String> {
    match (e, a) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            if (x - y).abs() <= 1e-5 * x.abs().max(1.0) {
                Ok(())
            } else {
                Err(format!("{at}: expected {x}, got {y}"))
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .try_for_each(|(i, (x, y))| close(x, y, &format!("{at}[{i}]"))),
        (Value::Object(x), Value::Object(y))
            if x.keys().collect::<Vec<_>>() == y.keys().collect::<Vec<_>>() =>
        {
            x.iter()
                .try_for_each(|(k, v)| close(v, &y[k], &format!("{at}.{k}")))
        }
        _ if e == a => Ok(()),
        _ => Err(format!("{at}: expected {e}, got {a}")),
    }
}

/// Spawns `cmd` (`bash -c` with an `exec seldon-mesh up …`) with its stdout piped and reads
/// until the `watching …` line that ends the start. (Like `common::start_up`, which writes
/// the manifest and builds the command line itself; here the README does.)
fn start_command(mut cmd: Command) -> Started {
    use std::io::BufRead as _;
    let (reader, writer) = std::io::pipe().unwrap();
    cmd.stdout(writer).stderr(Stdio::inherit());
    let mut up = seldon_supervise::Supervised::spawn("seldon-mesh up", cmd).unwrap();
    let mut printed = Vec::new();
    let mut url = None;
    for line in std::io::BufReader::new(reader).lines() {
        let line = line.unwrap();
        if let Some(u) = line.strip_prefix("ready: ") {
            url = Some(u.to_string());
        }
        let done = line.starts_with("watching ");
        printed.push(line);
        if done && let Some(url) = url {
            return Started { up, url, printed };
        }
    }
    let status = up.wait().unwrap();
    panic!("seldon-mesh up exited ({status}) before it was ready: {printed:#?}");
}

/// Held by the running sample: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A sample started by its README's command; stopped on drop, after which no process it
/// started may be left.
struct Running {
    started: Option<Started>,
    mark: String,
    addr: String,
    workdir: PathBuf,
    /// Holds `workdir`; kept (not deleted) when the test fails, for its logs.
    dir: Option<tempfile::TempDir>,
    readme: Readme,
    /// Released after `drop` has checked that nothing is left (fields drop after it).
    _turn: MutexGuard<'static, ()>,
}

impl Running {
    fn start(sample: &str) -> Running {
        // A sample that failed poisons the lock; the next one runs anyway.
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        envoy_ready();
        let readme = readme(sample);
        let bin = env!("CARGO_BIN_EXE_seldon-mesh");
        let script = readme
            .up
            .replacen(README_BIN, &format!("exec '{bin}' up"), 1);
        let dir = tempfile::tempdir().unwrap();
        let workdir = dir.path().join("run");
        let port = free_port();
        let mark = format!("{sample}-{}", std::process::id());
        let mut cmd = seldon_supervise::command("bash");
        cmd.arg("-c")
            .arg(&script)
            .current_dir(root())
            .env(MARK, &mark)
            .env("SELDON_LOCAL_PORT", port.to_string())
            .env("SELDON_FILTER_WASM", filter())
            .env("SELDON_SERVER_BIN", sibling("seldon-server"))
            .env("SELDON_LOCAL_DIR", &workdir);
        let started = start_command(cmd);
        Running {
            started: Some(started),
            mark,
            addr: format!("127.0.0.1:{port}"),
            workdir,
            dir: Some(dir),
            readme,
            _turn: turn,
        }
    }

    /// Runs every README step in order, asserting its output; returns the outputs.
    fn run_steps(&self) -> Vec<String> {
        assert!(
            !self.readme.steps.is_empty(),
            "the README shows no `$ ` command"
        );
        let mut outputs = Vec::new();
        for step in &self.readme.steps {
            let out = self.run(&step.command);
            let expected = step.expected.replace(README_ADDR, &self.addr);
            if let Err(why) = same_output(&expected, &out) {
                panic!(
                    "README step\n$ {}\nprinted something else: {why}",
                    step.command
                );
            }
            outputs.push(out);
        }
        outputs
    }

    /// One README command with bash from the repository root; its stdout.
    fn run(&self, command: &str) -> String {
        let child = Command::new("bash")
            .arg("-c")
            .arg(command.replace(README_ADDR, &self.addr))
            .current_dir(root())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || tx.send(child.wait_with_output()));
        let Ok(out) = rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("`{command}` ran for more than 60 s");
        };
        let out = out.unwrap();
        assert!(out.status.success(), "`{command}` failed: {}", out.status);
        String::from_utf8(out.stdout).unwrap()
    }

    /// The port `up` gave a node (from `up.json`).
    fn node_port(&self, node: &str) -> u16 {
        seldon_local::RunState::read(&self.workdir)
            .unwrap()
            .node(node)
            .unwrap()
            .port
    }

    /// POSTs JSON to a node or the gateway (`addr` = `host:port`); status and body.
    fn post(&self, addr: &str, path: &str, body: &Value) -> (u16, Value) {
        let url = format!("http://{addr}{path}");
        let (status, text) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let r = reqwest::Client::builder()
                    .no_proxy()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap()
                    .post(&url)
                    .json(body)
                    .send()
                    .await
                    .unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            });
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}: {text}"));
        (status, body)
    }

    fn post_node(&self, node: &str, path: &str, body: &Value) -> Value {
        let (status, body) = self.post(&format!("127.0.0.1:{}", self.node_port(node)), path, body);
        assert_eq!(status, 200, "{node}{path}: {body}");
        body
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut started) = self.started.take() {
            let _ = started.up.stop();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = marked(MARK, &self.mark, 0);
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            left = marked(MARK, &self.mark, 0);
        }
        for (pid, _) in &left {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
        if std::thread::panicking() {
            if let Some(dir) = self.dir.take() {
                eprintln!("the sample's logs: {}", dir.keep().join("run").display());
            }
        } else {
            assert!(left.is_empty(), "processes left behind: {left:#?}");
        }
    }
}

/// The JSON after `-d '…'` of a README command.
fn request_body(command: &str) -> Value {
    let body = command
        .split_once("-d '")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map(|(body, _)| body)
        .unwrap_or_else(|| panic!("no -d '…' in {command}"));
    serde_json::from_str(body).unwrap()
}

fn ndarray(body: &Value) -> Vec<Vec<f64>> {
    body["data"]["ndarray"]
        .as_array()
        .unwrap_or_else(|| panic!("no data.ndarray: {body}"))
        .iter()
        .map(|row| {
            row.as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

fn assert_probabilities(rows: &[Vec<f64>]) {
    for row in rows {
        let sum: f64 = row.iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "a row of probabilities: {row:?}");
    }
}

#[test]
fn income_classifier_behind_its_transformer() {
    let s = Running::start("income");
    let outputs = s.run_steps();
    let predict = &s.readme.steps[0];
    let answer: Value = serde_json::from_str(&outputs[0]).unwrap();
    let rows = ndarray(&answer);
    assert_probabilities(&rows);
    assert!(
        rows[0][1] > 0.5 && rows[1][1] < 0.5,
        "the first person earns >50K, the second not: {answer}"
    );
    // The graph's answer is the model's on the transformer's output: both really ran.
    let request = request_body(&predict.command);
    let features = s.post_node("preprocess", "/transform-input", &request);
    assert_eq!(
        features["data"]["ndarray"][0].as_array().unwrap().len(),
        14,
        "3 scaled numbers + 11 one-hot columns: {features}"
    );
    let direct = s.post_node("model", "/predict", &features);
    close(&direct["data"], &answer["data"], "data").unwrap();
    // A request without a column is the transformer's 400, passed through.
    let (status, body) = s.post(
        &s.addr,
        "/seldon/seldon/income/api/v1.0/predictions",
        &json!({"data": {"names": ["age"], "ndarray": [[40]]}}),
    );
    assert_eq!(status, 400, "{body}");
    assert!(
        body.to_string().contains("missing columns"),
        "the transformer's message: {body}"
    );
}

/// Branch counts of a `… | grep -o '"eg-router":[0-9]' | sort | uniq -c` output.
fn branch_counts(output: &str) -> [u32; 2] {
    let mut counts = [0; 2];
    for line in output.lines() {
        let mut words = line.split_whitespace();
        let n: u32 = words.next().unwrap().parse().unwrap();
        let branch = words.next().unwrap().trim_start_matches("\"eg-router\":");
        counts[branch.parse::<usize>().unwrap()] = n;
    }
    counts
}

#[test]
fn bandit_routing_shifts_after_feedback() {
    let s = Running::start("bandit");
    let outputs = s.run_steps();
    let loops: Vec<usize> = s
        .readme
        .steps
        .iter()
        .enumerate()
        .filter(|(_, step)| step.command.contains("uniq -c"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(loops.len(), 2, "a routing count before and after feedback");
    let feedback = s
        .readme
        .steps
        .iter()
        .position(|step| step.command.contains("/api/v1.0/feedback"))
        .unwrap();
    assert!(
        loops[0] < feedback && feedback < loops[1],
        "count, feedback, count"
    );
    let before = branch_counts(&outputs[loops[0]]);
    let after = branch_counts(&outputs[loops[1]]);
    assert_eq!(before.iter().sum::<u32>(), 20, "{before:?}");
    assert_eq!(after.iter().sum::<u32>(), 20, "{after:?}");
    assert!(
        before[0] > before[1],
        "before feedback model-a (branch 0) gets most: {before:?}"
    );
    assert!(
        after[1] > after[0],
        "after feedback model-b (branch 1) gets most: {after:?}"
    );
    assert!(
        before[1] > 0 && after[0] > 0,
        "epsilon 0.2 keeps exploring both ways: {before:?} {after:?}"
    );
}

#[test]
fn ensemble_answers_the_mean_of_its_models() {
    let s = Running::start("ensemble");
    let outputs = s.run_steps();
    let answer: Value = serde_json::from_str(&outputs[0]).unwrap();
    let request = request_body(&s.readme.steps[0].command);
    let models: Vec<Vec<Vec<f64>>> = ["logreg", "forest", "svc"]
        .iter()
        .map(|m| ndarray(&s.post_node(m, "/predict", &request)))
        .collect();
    let got = ndarray(&answer);
    assert_probabilities(&got);
    for (r, row) in got.iter().enumerate() {
        for (c, v) in row.iter().enumerate() {
            let mean = models.iter().map(|m| m[r][c]).sum::<f64>() / 3.0;
            assert!(
                (v - mean).abs() < 1e-9,
                "row {r} class {c}: {v} is not the mean {mean} of {models:?}"
            );
        }
    }
    let differ = models[0] != models[1] || models[1] != models[2];
    assert!(differ, "the models disagree, so the mean means something");
}

#[test]
fn v2_chain_feeds_first_into_second() {
    let s = Running::start("v2-chain");
    let outputs = s.run_steps();
    let answer: Value = serde_json::from_str(&outputs[0]).unwrap();
    let request = request_body(&s.readme.steps[0].command);
    // The same two calls by hand: first's outputs become second's inputs.
    let first = s.post_node("first", "/v2/models/first/infer", &request);
    let probabilities = &first["outputs"][0];
    assert_eq!(probabilities["shape"], json!([2, 3]), "{first}");
    let second = s.post_node(
        "second",
        "/v2/models/second/infer",
        &json!({"inputs": first["outputs"]}),
    );
    close(&second["outputs"], &answer["outputs"], "outputs").unwrap();
    assert_eq!(answer["model_name"], "second", "{answer}");
    let tensor = &answer["outputs"][0];
    assert_eq!(tensor["shape"], json!([2]), "{answer}");
    let classes: Vec<f64> = tensor["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_f64().unwrap())
        .collect();
    assert_eq!(classes, [0.0, 2.0], "a setosa and a virginica: {answer}");
}

#[test]
fn readme_parser_reads_commands_outputs_and_continuations() {
    let text = "intro\n```bash\nexport A=1\ntarget/debug/seldon-mesh up -f x.yaml \\\n  --run a=b\n```\n\
                ```console\n$ curl -s a \\\n    -d '{\"x\":1}'\n{\"y\": 2}\n$ echo hi\nhi\n```\n";
    let r = parse_readme(text);
    assert_eq!(
        r.up,
        "export A=1\ntarget/debug/seldon-mesh up -f x.yaml \\\n  --run a=b\n"
    );
    assert_eq!(
        r.steps,
        vec![
            Step {
                command: "curl -s a \\\n    -d '{\"x\":1}'".into(),
                expected: "{\"y\": 2}\n".into()
            },
            Step {
                command: "echo hi".into(),
                expected: "hi\n".into()
            },
        ]
    );
    assert_eq!(request_body(&r.steps[0].command), json!({"x": 1}));
}

#[test]
#[should_panic(expected = "exactly one ```bash block")]
fn a_readme_without_the_up_command_is_refused() {
    parse_readme("```bash\necho no up here\n```\n");
}

#[test]
fn outputs_compare_as_json_within_tolerance_and_as_text_otherwise() {
    assert_eq!(same_output("{\"a\":[0.5]}", "{\"a\": [0.500001]}"), Ok(()));
    assert!(same_output("{\"a\":[0.5]}", "{\"a\":[0.51]}").is_err());
    assert!(same_output("{\"a\":1}", "{\"a\":1,\"b\":2}").is_err());
    assert!(same_output("{\"a\":1}", "not json").is_err());
    assert_eq!(same_output("  17 x\n   3 y", "     17 x\n 3 y\n"), Ok(()));
    assert!(same_output("17 x", "16 x").is_err());
}
