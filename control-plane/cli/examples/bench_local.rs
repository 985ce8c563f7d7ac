//! Local-mode benchmark (issue 9): how long `seldon-mesh up` takes from the command to the
//! first successful prediction, cold and warm, and a hot reload from the manifest's save to
//! the new graph answering. Run through `scripts/bench-local.sh`, which builds everything
//! first (a warm build) and writes `docs/benchmarks/local-mode.md`:
//!
//! ```text
//! scripts/bench-local.sh [--runs 10] [--cold 3] [--out docs/benchmarks/local-mode.md]
//! ```
//!
//! Every run starts a fresh `seldon-mesh up` (the debug binary users run after `make demo`)
//! on a free port and polls the prediction URL every 5 ms until a 200 carries the graph's
//! expected answer. A *cold* run first evicts from the page cache every file `up` and its
//! children load (the binaries, the filter module, Envoy, ONNX Runtime, the Python venv), as
//! after a reboot; a *warm* run finds them cached, as the second `up` of the day does.
//! Graphs of `testmodel` nodes (they start in milliseconds, so the figures are local mode's
//! own cost) get three edits, each giving an answer no earlier graph gave (so an answer from
//! a replaced listener still draining cannot pass for the new graph): a new node `o` added as
//! the root (its process starts); 7 s later, past the first reload's retiring, `t` removed (no
//! process starts); 0.3 s after that, `o` removed too (an edit right after another: `up`
//! retires what a reload replaced, Envoy's drain time + 1 s, before it reads the manifest
//! again). Each save renames a new file over the manifest, as editors do; `up` reads it every
//! 200 ms, so up to 200 ms of every reload figure is that poll. A reload is timed twice from
//! the same save: polling on new connections (as `curl` does), then on a connection kept
//! alive from before the save (as a client with a connection pool does). The iris A/B sample (two `seldon-server` nodes) and the income sample (a
//! Python TRANSFORMER in the project's wrapper + `seldon-server`) measure start-up with real
//! model loading. After each run `up` gets SIGTERM and no process it started may be left (a
//! marker variable in `/proc/*/environ`).

use std::fmt::Write as _;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use serde_json::{Value, json};

const MARK: &str = "SELDON_BENCH_LOCAL_MARK";
const POLL: Duration = Duration::from_millis(5);
const GIVE_UP: Duration = Duration::from_secs(60);
/// Lines after this one in the report are written by people and kept when it is rewritten
/// (the marker of `bench/`'s reports).
const HAND_WRITTEN_MARKER: &str =
    "<!-- hand-written below: kept when the benchmark rewrites this file -->";

/// What a good answer looks like.
#[derive(Clone, Copy)]
enum Expect {
    /// `data.ndarray[0][0]` is this number (the `testmodel` graphs, request `[[1]]`).
    First(f64),
    /// `data.ndarray[0]` is a row of this many probabilities summing to 1.
    Probabilities(usize),
}

/// One graph to measure.
struct Scenario {
    name: &'static str,
    /// `/seldon/<namespace>/<deployment>/api/v1.0/predictions`.
    namespace: &'static str,
    deployment: &'static str,
    /// A manifest written into the run's folder, or a sample file used where it is (its
    /// relative `modelUri`s resolve against its folder; never edited).
    manifest: Manifest,
    runs: Vec<(&'static str, String)>,
    request: Value,
    expect: Expect,
    /// Edits applied one after the other while it runs (text manifests only).
    edits: Vec<Edit>,
    /// Files and folders a cold run evicts besides the common ones.
    cold_extra: Vec<PathBuf>,
}

/// A change of the manifest while `up` runs.
struct Edit {
    /// For the report.
    what: &'static str,
    /// Wait this long after the previous answer.
    pause: Duration,
    manifest: String,
    expect: Expect,
}

enum Manifest {
    Text(String),
    File(PathBuf),
}

#[derive(Default)]
struct Timings {
    cold_first_answer: Vec<f64>,
    first_answer: Vec<f64>,
    ready_line: Vec<f64>,
    /// Per edit: (new connections, the kept-alive connection).
    edits: Vec<(Vec<f64>, Vec<f64>)>,
    stop: Vec<f64>,
}

/// Paths and versions the report names.
struct Setup {
    mesh: PathBuf,
    envoy: PathBuf,
    filter: PathBuf,
    ort: PathBuf,
    venv: PathBuf,
    /// Evicted before every cold run.
    cold_common: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let mut runs = 10usize;
    let mut cold = 3usize;
    let mut out = PathBuf::from("docs/benchmarks/local-mode.md");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = args.next().context("--runs N")?.parse()?,
            "--cold" => cold = args.next().context("--cold N")?.parse()?,
            "--out" => out = args.next().context("--out FILE")?.into(),
            other => bail!(
                "unknown argument {other}; usage: bench_local [--runs N] [--cold N] [--out FILE]"
            ),
        }
    }
    ensure!(runs > 0, "--runs must be at least 1");
    let bin_dir = std::env::current_exe()?
        .parent()
        .and_then(Path::parent)
        .context("the example runs from target/<profile>/examples")?
        .to_path_buf();
    let root = std::env::current_dir()?;
    ensure!(
        root.join("manifests/samples/local/income/income.yaml")
            .is_file(),
        "run from the repository root"
    );
    let ort: PathBuf = std::env::var_os("ORT_DYLIB_PATH")
        .context("ORT_DYLIB_PATH is not set (scripts/bench-local.sh sets it)")?
        .into();
    let venv: PathBuf = std::env::var_os("SELDON_BENCH_VENV")
        .context("SELDON_BENCH_VENV is not set (scripts/bench-local.sh sets it)")?
        .into();
    let setup = Setup {
        mesh: bin_dir.join("seldon-mesh"),
        envoy: seldon_envoy::envoy_binary()?,
        filter: bin_dir.join("../wasm32-wasip1/release/seldon_filter.wasm"),
        ort: ort.clone(),
        venv: venv.clone(),
        cold_common: Vec::new(),
    };
    let testmodel = bin_dir.join("testmodel");
    let server = bin_dir.join("seldon-server");
    for b in [
        &setup.mesh,
        &testmodel,
        &server,
        &setup.filter,
        &setup.envoy,
    ] {
        ensure!(
            b.is_file(),
            "{} is not built (scripts/bench-local.sh builds it)",
            b.display()
        );
    }
    let setup = Setup {
        cold_common: vec![
            setup.mesh.clone(),
            setup.filter.clone(),
            setup.envoy.clone(),
            testmodel.clone(),
            server.clone(),
        ],
        ..setup
    };
    let scenarios = scenarios(&root, &testmodel, &venv, &ort);
    let load_before = loadavg();
    let started = Instant::now();
    let mut load_max = 0.0f64;
    let mut residency = Vec::new();
    let mut results = Vec::new();
    for s in &scenarios {
        let mut t = Timings::default();
        for i in 0..cold + runs {
            let is_cold = i < cold;
            load_max = load_max.max(load1());
            if is_cold {
                let files: Vec<&Path> = setup
                    .cold_common
                    .iter()
                    .chain(&s.cold_extra)
                    .map(PathBuf::as_path)
                    .collect();
                evict(&files)?;
                if residency.is_empty() {
                    residency = resident(&files);
                }
            }
            let r = run_once(&setup.mesh, s, i).with_context(|| format!("{} run {i}", s.name))?;
            let edits: Vec<String> = r
                .edits
                .iter()
                .map(|(fresh, kept)| format!("{fresh:.3} (kept {kept:.3})"))
                .collect();
            eprintln!(
                "{} {} run {i}: first answer {:.3} s, edits [{}] s, stop {:.3} s",
                s.name,
                if is_cold { "cold" } else { "warm" },
                r.first_answer,
                edits.join(", "),
                r.stop
            );
            if is_cold {
                t.cold_first_answer.push(r.first_answer);
            } else {
                t.first_answer.push(r.first_answer);
                t.ready_line.push(r.ready_line);
            }
            t.edits.resize_with(r.edits.len(), Default::default);
            for (e, (fresh, kept)) in r.edits.iter().enumerate() {
                t.edits[e].0.push(*fresh);
                t.edits[e].1.push(*kept);
            }
            t.stop.push(r.stop);
        }
        results.push((s, t));
    }
    let load = Load {
        before: load_before,
        after: loadavg(),
        max1: load_max,
    };
    let report = report(
        &results,
        (runs, cold),
        &load,
        &residency,
        &setup,
        started.elapsed(),
    )?;
    // As `bench/`'s reports: what people wrote below the marker survives a rerun.
    let previous = std::fs::read_to_string(&out).unwrap_or_default();
    let kept = previous
        .split_once(HAND_WRITTEN_MARKER)
        .map_or("", |(_, tail)| tail.strip_prefix('\n').unwrap_or(tail));
    let report = format!("{report}\n{HAND_WRITTEN_MARKER}\n{kept}");
    std::fs::write(&out, &report).with_context(|| format!("writing {}", out.display()))?;
    print!("{report}");
    eprintln!("wrote {}", out.display());
    Ok(())
}

fn testmodel_run(testmodel: &Path, name: &str, add: f64) -> String {
    format!(
        "{} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} --mode add --add {add}",
        testmodel.display()
    )
}

/// A custom-node SeldonDeployment (`local/bench`, predictor `main`) with `graph` and one
/// container per node.
fn manifest(graph: &str, nodes: &[&str]) -> String {
    let containers: Vec<String> = nodes
        .iter()
        .map(|n| format!("{{name: {n}, image: bench/{n}:1}}"))
        .collect();
    format!(
        "apiVersion: machinelearning.seldon.io/v1\nkind: SeldonDeployment\n\
         metadata: {{name: bench, namespace: local}}\nspec:\n  predictors:\n  - name: main\n\
         \x20   graph: {graph}\n    componentSpecs: [{{spec: {{containers: [{}]}}}}]\n",
        containers.join(", ")
    )
}

fn scenarios(root: &Path, testmodel: &Path, venv: &Path, ort: &Path) -> Vec<Scenario> {
    // [[1]] through nodes that add: t 1, m 10, m1 10, m2 20, o 100; c sums. Every edit's
    // answer differs from every earlier one.
    let two = "{name: t, type: TRANSFORMER, children: [{name: m, type: MODEL}]}"; // 12
    let four = "{name: t, type: TRANSFORMER, children: [{name: c, type: COMBINER, children: \
                [{name: m1, type: MODEL}, {name: m2, type: MODEL}]}]}"; // 2 → 12 + 22 = 34
    let with_o = |g: &str| format!("{{name: o, type: OUTPUT_TRANSFORMER, children: [{g}]}}");
    let m_only = "{name: m, type: MODEL}";
    let c_only =
        "{name: c, type: COMBINER, children: [{name: m1, type: MODEL}, {name: m2, type: MODEL}]}";
    let edits = |nodes: &[&str], graphs: [(&str, f64); 3]| -> Vec<Edit> {
        let what = [
            "`o` added as the root (its process starts)",
            "7 s later, `t` removed (no process starts)",
            "0.3 s after that, `o` removed too",
        ];
        let pause = [300, 7000, 300];
        graphs
            .iter()
            .enumerate()
            .map(|(k, (g, answer))| Edit {
                what: what[k],
                pause: Duration::from_millis(pause[k]),
                manifest: manifest(g, nodes),
                expect: Expect::First(*answer),
            })
            .collect()
    };
    let tm = |n: &'static str, add: f64| (n, testmodel_run(testmodel, n, add));
    let one = json!({"data": {"ndarray": [[1.0]]}});
    let flower = json!({"data": {"ndarray": [[5.1, 3.5, 1.4, 0.2]]}});
    let samples = root.join("manifests/samples/local");
    vec![
        Scenario {
            name: "2 nodes (testmodel): TRANSFORMER → MODEL",
            namespace: "local",
            deployment: "bench",
            manifest: Manifest::Text(manifest(two, &["t", "m", "o"])),
            runs: vec![tm("t", 1.0), tm("m", 10.0), tm("o", 100.0)],
            request: one.clone(),
            // [[1]] → t 2 → m 12; with o as the root: 112
            expect: Expect::First(12.0),
            edits: edits(
                &["t", "m", "o"],
                [
                    (&with_o(two), 112.0),
                    (&with_o(m_only), 111.0),
                    (m_only, 11.0),
                ],
            ),
            cold_extra: vec![],
        },
        Scenario {
            name: "4 nodes (testmodel): TRANSFORMER → COMBINER → 2 MODELs",
            namespace: "local",
            deployment: "bench",
            manifest: Manifest::Text(manifest(four, &["t", "c", "m1", "m2", "o"])),
            runs: vec![
                tm("t", 1.0),
                tm("c", 0.0),
                tm("m1", 10.0),
                tm("m2", 20.0),
                tm("o", 100.0),
            ],
            request: one,
            // [[1]] → t 2 → m1 12, m2 22 → c (sum) 34; with o: 134
            expect: Expect::First(34.0),
            edits: edits(
                &["t", "c", "m1", "m2", "o"],
                // c alone: 11 + 21 = 32
                [
                    (&with_o(four), 134.0),
                    (&with_o(c_only), 132.0),
                    (c_only, 32.0),
                ],
            ),
            cold_extra: vec![],
        },
        Scenario {
            name: "2 nodes (seldon-server on ONNX Runtime): the iris A/B sample of `make demo`",
            namespace: "default",
            deployment: "iris",
            manifest: Manifest::File(samples.join("iris-abtest.yaml")),
            runs: vec![],
            request: flower,
            expect: Expect::Probabilities(3),
            edits: vec![],
            cold_extra: vec![ort.to_path_buf(), root.join("model-servers/onnx/testdata")],
        },
        Scenario {
            name: "2 nodes (Python TRANSFORMER + seldon-server): the income sample",
            namespace: "seldon",
            deployment: "income",
            manifest: Manifest::File(samples.join("income/income.yaml")),
            runs: vec![(
                "preprocess",
                format!(
                    "env PYTHONPATH={} {}/bin/seldon-core-microservice Preprocess --service-type TRANSFORMER",
                    samples.join("income").display(),
                    venv.display()
                ),
            )],
            request: json!({"data": {
                "names": ["age", "workclass", "education", "marital_status", "hours_per_week", "capital_gain"],
                "ndarray": [[52, "Self-emp", "Masters", "Married", 50, 15000]]
            }}),
            expect: Expect::Probabilities(2),
            edits: vec![],
            cold_extra: vec![
                ort.to_path_buf(),
                venv.to_path_buf(),
                samples.join("income"),
                PathBuf::from(python_stdlib()),
            ],
        },
    ]
}

struct RunResult {
    first_answer: f64,
    ready_line: f64,
    /// (new connections, a kept-alive connection)
    /// Per edit: (new connections, the kept-alive connection).
    edits: Vec<(f64, f64)>,
    stop: f64,
}

fn run_once(mesh: &Path, s: &Scenario, i: usize) -> anyhow::Result<RunResult> {
    let dir = tempfile::tempdir()?;
    let file = match &s.manifest {
        Manifest::Text(text) => {
            let file = dir.path().join("sdep.yaml");
            std::fs::write(&file, text)?;
            file
        }
        Manifest::File(file) => file.clone(),
    };
    let port = free_port()?;
    let mark = format!("{}-{i}", std::process::id());
    let mut cmd = seldon_supervise::command(mesh);
    cmd.env(MARK, &mark)
        .args(["up", "-f"])
        .arg(&file)
        .args(["--port", &port.to_string(), "--workdir"])
        .arg(dir.path().join("run"));
    for (node, command) in &s.runs {
        cmd.arg("--run").arg(format!("{node}={command}"));
    }
    let (stdout, writer) = std::io::pipe()?;
    cmd.stdout(writer)
        .stderr(std::fs::File::create(dir.path().join("up.stderr"))?);
    let t0 = Instant::now();
    // The command (and with it this side's copy of the pipe's writer) is dropped here.
    let mut up = seldon_supervise::Supervised::spawn("seldon-mesh up", cmd)?;
    let ready_at: Arc<Mutex<Option<Duration>>> = Arc::default();
    {
        let ready_at = ready_at.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.starts_with("ready: ") {
                    *ready_at.lock().unwrap() = Some(t0.elapsed());
                }
            }
        });
    }
    let url = format!(
        "http://127.0.0.1:{port}/seldon/{}/{}/api/v1.0/predictions",
        s.namespace, s.deployment
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // `kept` reuses its connection (reqwest's pool); `fresh` opens one per request.
    let kept = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()?;
    let fresh = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .build()?;
    let stderr = || std::fs::read_to_string(dir.path().join("up.stderr")).unwrap_or_default();
    let request = s.request.to_string();
    let first = rt
        .block_on(until_answer(&kept, &url, &request, s.expect, t0, &mut up))
        .with_context(stderr)?;
    // `ready:` comes after the node table, which may be after the first answer.
    let waiting = Instant::now();
    let ready_line = loop {
        if let Some(d) = *ready_at.lock().unwrap() {
            break d.as_secs_f64();
        }
        ensure!(
            waiting.elapsed() < Duration::from_secs(10),
            "no `ready:` line within 10 s of the first answer"
        );
        std::thread::sleep(POLL);
    };
    // Both sides of a reload: new connections first, then the connection kept from before.
    // `before` is asked on `kept` just before the save, so its connection is open.
    let mut reload = |edit: &Edit, before: Expect| -> anyhow::Result<(f64, f64)> {
        std::thread::sleep(edit.pause);
        rt.block_on(until_answer(
            &kept,
            &url,
            &request,
            before,
            Instant::now(),
            &mut up,
        ))?;
        let saved = save(&file, &edit.manifest)?;
        let on_fresh = rt.block_on(until_answer(
            &fresh,
            &url,
            &request,
            edit.expect,
            saved,
            &mut up,
        ))?;
        let on_kept = rt.block_on(until_answer(
            &kept,
            &url,
            &request,
            edit.expect,
            saved,
            &mut up,
        ))?;
        Ok((on_fresh, on_kept))
    };
    let mut edits = Vec::new();
    if matches!(s.manifest, Manifest::Text(_)) {
        let mut before = s.expect;
        for edit in &s.edits {
            edits.push(reload(edit, before).with_context(stderr)?);
            before = edit.expect;
        }
    }
    let stopping = Instant::now();
    let status = up.stop()?;
    let stop = stopping.elapsed().as_secs_f64();
    ensure!(
        status.code() == Some(128 + 15),
        "up ended with {status} after SIGTERM; stderr:\n{}",
        stderr()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = marked(&mark);
        if left.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for pid in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            bail!("processes left behind after up stopped: {left:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(RunResult {
        first_answer: first,
        ready_line,
        edits,
        stop,
    })
}

/// The answer is what `expect` says.
fn good(body: &Value, expect: Expect) -> bool {
    let row = &body["data"]["ndarray"][0];
    match expect {
        Expect::First(a) => row[0].as_f64() == Some(a),
        Expect::Probabilities(n) => row.as_array().is_some_and(|r| {
            r.len() == n && (r.iter().filter_map(Value::as_f64).sum::<f64>() - 1.0).abs() < 1e-5
        }),
    }
}

/// Seconds from `since` until the URL answers 200 with what `expect` says.
async fn until_answer(
    client: &reqwest::Client,
    url: &str,
    request: &str,
    expect: Expect,
    since: Instant,
    up: &mut seldon_supervise::Supervised,
) -> anyhow::Result<f64> {
    loop {
        let send = client
            .post(url)
            .header("content-type", "application/json")
            .body(request.to_string())
            .send()
            .await;
        if let Ok(r) = send
            && r.status() == 200
            && let Ok(v) = r.json::<Value>().await
            && good(&v, expect)
        {
            return Ok(since.elapsed().as_secs_f64());
        }
        if let Some(status) = up.try_wait()? {
            bail!("seldon-mesh up exited ({status}) before the expected answer");
        }
        if since.elapsed() > GIVE_UP {
            bail!("no expected answer within {GIVE_UP:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Saves as editors do: a new file renamed over the old one. The time of the rename.
fn save(file: &Path, text: &str) -> anyhow::Result<Instant> {
    let tmp = file.with_extension("yaml.swp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, file)?;
    Ok(Instant::now())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(seldon_envoy::free_port()?)
}

/// Drops the files (folders: every file under them) from the page cache with
/// `posix_fadvise(POSIX_FADV_DONTNEED)` — python3's `os.posix_fadvise`, as std has no binding.
/// Pages mapped by a running process (another Envoy on this machine) stay.
fn evict(paths: &[&Path]) -> anyhow::Result<()> {
    const SCRIPT: &str = "import os, sys\n\
        def drop(p):\n\
        \x20   try:\n\
        \x20       fd = os.open(p, os.O_RDONLY)\n\
        \x20   except OSError:\n\
        \x20       return\n\
        \x20   try:\n\
        \x20       os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)\n\
        \x20   finally:\n\
        \x20       os.close(fd)\n\
        for top in sys.argv[1:]:\n\
        \x20   if os.path.isdir(top):\n\
        \x20       for d, _, files in os.walk(top):\n\
        \x20           for f in files:\n\
        \x20               drop(os.path.join(d, f))\n\
        \x20   else:\n\
        \x20       drop(top)\n";
    let status = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(paths)
        .status()
        .context("python3 (for posix_fadvise)")?;
    ensure!(
        status.success(),
        "evicting from the page cache failed: {status}"
    );
    Ok(())
}

/// `fincore`'s resident bytes / size of each plain file, right after an eviction.
fn resident(paths: &[&Path]) -> Vec<(PathBuf, String)> {
    paths
        .iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let out = cmd_out(
                "fincore",
                &[
                    "--bytes",
                    "--noheadings",
                    "--output",
                    "RES,SIZE",
                    &p.to_string_lossy(),
                ],
            );
            let mut w = out.split_whitespace();
            let text = match (
                w.next().and_then(|r| r.parse::<f64>().ok()),
                w.next().and_then(|s| s.parse::<f64>().ok()),
            ) {
                (Some(res), Some(size)) if size > 0.0 => {
                    format!("{:.0}% of {:.1} MB", 100.0 * res / size, size / 1e6)
                }
                _ => "unknown (fincore failed)".into(),
            };
            (p.to_path_buf(), text)
        })
        .collect()
}

fn python_stdlib() -> String {
    cmd_out(
        "python3",
        &[
            "-c",
            "import sysconfig; print(sysconfig.get_paths()['stdlib'])",
        ],
    )
}

/// Live processes whose environment holds `MARK=<mark>` (zombies aside).
fn marked(mark: &str) -> Vec<u32> {
    let needle = format!("{MARK}={mark}");
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        let zombie = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().next().map(|st| st == "Z"))
            })
            .unwrap_or(true);
        if !zombie && env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) {
            found.push(pid);
        }
    }
    found
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|l| l.parse().ok())
        .unwrap_or(0.0)
}

struct Load {
    before: String,
    after: String,
    /// The highest 1-minute load average seen before a run.
    max1: f64,
}

/// (min, median, p90, max) of seconds, nearest-rank percentiles.
fn stats(v: &[f64]) -> Option<(f64, f64, f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = |p: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let k = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
        s[k - 1]
    };
    Some((s[0], rank(0.5), rank(0.9), s[s.len() - 1]))
}

fn row(out: &mut String, what: &str, v: &[f64], goal: Option<f64>) {
    match stats(v) {
        Some((min, median, p90, max)) => {
            let verdict = goal.map_or(String::new(), |g| {
                if max <= g {
                    format!("max ≤ {g} s: met")
                } else if median <= g {
                    format!("median ≤ {g} s, max over")
                } else {
                    format!("over {g} s")
                }
            });
            let _ = writeln!(
                out,
                "| {what} | {median:.3} | {min:.3} | {p90:.3} | {max:.3} | {} | {verdict} |",
                v.len()
            );
        }
        None => {
            let _ = writeln!(out, "| {what} | — | — | — | — | 0 | |");
        }
    }
}

fn report(
    results: &[(&Scenario, Timings)],
    (runs, cold): (usize, usize),
    load: &Load,
    residency: &[(PathBuf, String)],
    setup: &Setup,
    took: Duration,
) -> anyhow::Result<String> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")?
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let mem = std::fs::read_to_string("/proc/meminfo")?
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:").map(|m| m.trim().to_string()))
        .unwrap_or_else(|| "unknown".into());
    let kernel = cmd_out("uname", &["-r"]);
    let commit = cmd_out("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = if cmd_out("git", &["status", "--porcelain", "--untracked-files=no"]) == "unknown" {
        ""
    } else {
        " (with uncommitted changes in the tree)"
    };
    let date = cmd_out("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let envoy = cmd_out(&setup.envoy.to_string_lossy(), &["--version"]);
    let envoy = envoy
        .split_whitespace()
        .find(|w| w.contains('/') && w.chars().next().is_some_and(|c| c.is_ascii_hexdigit()))
        .map_or(envoy.clone(), str::to_string);
    let rustc = cmd_out("rustc", &["--version"]);
    let python = cmd_out(
        &setup.venv.join("bin/python").to_string_lossy(),
        &["--version"],
    );
    let ort = setup
        .ort
        .file_name()
        .map_or("unknown".into(), |f| f.to_string_lossy().into_owned());
    let mut out = String::new();
    let _ = writeln!(out, "# Local mode: start-up and hot reload\n");
    let _ = writeln!(
        out,
        "Written by `scripts/bench-local.sh` (`control-plane/cli/examples/bench_local.rs`); \
         do not edit above the marker at the end. At \
         {commit}{dirty}, {date}: per graph {cold} cold and {runs} warm runs, {:.0} s in all. \
         Issue 9's goals: ≤ 1 s from the command to the first answer with a warm build (2–4 \
         nodes), ≤ 1 s from saving the manifest to the new graph answering.\n",
        took.as_secs_f64()
    );
    let _ = writeln!(
        out,
        "Machine: {cores} cores ({cpu}), {mem}, Linux {kernel}, **shared with other work**: \
         load average (1, 5, 15 min) `{}` before, `{}` after, 1-minute load up to {:.1} before a \
         run. Versions: {rustc}; the debug `seldon-mesh` of `make demo` ({}); the release filter \
         module; Envoy {envoy} (`scripts/setup.sh`); ONNX Runtime `{ort}`; {python} for the \
         Python wrapper.\n",
        load.before,
        load.after,
        load.max1,
        setup.mesh.display()
    );
    let _ = writeln!(
        out,
        "Seconds: median, then the spread (min, p90 and max by nearest rank). *Cold*: every \
         file `up` and its nodes load was evicted from the page cache first (below); *warm*: \
         the same command again, files cached. Reload and stop figures are from every run.\n"
    );
    for (s, t) in results {
        let _ = writeln!(out, "## {}\n", s.name);
        let _ = writeln!(out, "| what | median | min | p90 | max | runs | goal |");
        let _ = writeln!(out, "| --- | ---: | ---: | ---: | ---: | ---: | --- |");
        row(
            &mut out,
            "**warm**: command → first 200 with the graph's answer",
            &t.first_answer,
            Some(1.0),
        );
        row(
            &mut out,
            "**cold**: command → first 200 with the graph's answer",
            &t.cold_first_answer,
            None,
        );
        row(
            &mut out,
            "warm: command → `ready:` printed",
            &t.ready_line,
            None,
        );
        for (edit, (fresh, kept)) in s.edits.iter().zip(&t.edits) {
            let what = format!("save → new graph answers: {}", edit.what);
            row(&mut out, &what, fresh, Some(1.0));
            row(
                &mut out,
                "… the same, on a kept-alive connection",
                kept,
                Some(1.0),
            );
        }
        row(
            &mut out,
            "SIGTERM → `up` exited, every process stopped",
            &t.stop,
            None,
        );
        let _ = writeln!(out);
    }
    let _ = writeln!(out, "## How it is measured\n");
    let _ = writeln!(
        out,
        "Each run starts `seldon-mesh up` on a free port with its own workdir and polls the \
         prediction URL every 5 ms until a 200 carries the expected answer (`[[1]]` through \
         `testmodel` nodes that add 1, 10, 20 and 100; for the samples a row of 3 or 2 \
         probabilities summing to 1). The `testmodel` graphs then get three edits, each \
         giving an answer no earlier graph gave (so a reply from a replaced listener that is \
         still draining cannot pass for the new graph): the node `o` (adds 100) added as the \
         new root; 7 s later `t` removed; 0.3 s after that `o` removed too. A reload saves \
         the manifest as editors do (a new file \
         renamed over it) and polls until the new graph's answer comes back, first on new \
         connections (one per request, as `curl`), then on a connection the client opened \
         before the save and keeps alive (as a client's connection pool does), both timed \
         from the save; `up` reads the manifest every 200 ms, so that poll (100 ms on \
         average) is part of every reload figure. Then `up` gets SIGTERM, and the run fails if any process it started is \
         left.\n"
    );
    let _ = writeln!(
        out,
        "A cold run first calls `posix_fadvise(POSIX_FADV_DONTNEED)` on `seldon-mesh`, \
         `testmodel`, `seldon-server`, the filter module, Envoy, and for the samples ONNX \
         Runtime, the models and (income) the Python venv and standard library: the nearest \
         to a first start after boot without dropping the whole machine's cache. Pages a \
         running process maps stay cached (other Envoys on this shared machine), so it \
         understates a real cold start when those run. Resident right after the first \
         eviction (`fincore`):\n"
    );
    for (path, text) in residency {
        let _ = writeln!(out, "- `{}`: {text}", path.display());
    }
    let _ = writeln!(
        out,
        "\nWhy the third edit is there: after applying a reload, `up` keeps what it replaced \
         (the old clusters, a removed node's process) for Envoy's drain time (5 s) + 1 s so \
         that requests in flight finish, and reads the manifest again only after that \
         (`seldon_local::Running::reload`). An edit saved within that time of the previous \
         reload waits for it.\n"
    );
    let _ = writeln!(
        out,
        "Notes: the machine ran other builds and tests at the same time (the load average \
         above), so the spread is wider than on an idle machine and the medians are what to \
         compare. Not measured here: a cold *build* (`make demo` on an empty target directory: \
         compiling takes minutes, see the README), and `up` with a remote `modelUri` (the \
         first fetch depends on the network; later starts reuse the model cache)."
    );
    Ok(out)
}

fn cmd_out(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}
