//! Model-server benchmark driver: the same iris models served by seldon-mesh, MLServer and seldon-core's Python wrapper, one core each, measured side by side.

mod oha;
mod report;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use oha::Run;
use report::Row;

#[derive(Debug, Parser)]
struct Args {
    /// Directory made by `python/train.py` (+ `ours-sklearn/` from the initializer).
    #[arg(long)]
    models: PathBuf,
    #[arg(long)]
    seldon_server: PathBuf,
    #[arg(long)]
    mlserver_venv: PathBuf,
    #[arg(long)]
    seldon_venv: PathBuf,
    /// Directory holding SKLearnServer.py / XGBoostServer.py.
    #[arg(long)]
    python_dir: PathBuf,
    #[arg(long)]
    oha: PathBuf,
    /// ghz for the gRPC rows (skipped when absent).
    #[arg(long)]
    ghz: Option<PathBuf>,
    /// `crates/protocol/proto` (for ghz).
    #[arg(long)]
    proto_dir: PathBuf,
    /// CPU the servers are pinned to.
    #[arg(long, default_value_t = 1)]
    server_cpu: u32,
    #[arg(long, default_value_t = 10)]
    secs: u32,
    #[arg(long, default_value_t = 16)]
    connections: u32,
    #[arg(long)]
    out: PathBuf,
    /// Extra markdown (machine, versions, command) put above the table.
    #[arg(long)]
    header: PathBuf,
}

const OURS: &str = "seldon-mesh";
const MLSERVER: &str = "MLServer";
const SELDON: &str = "seldon-core 1.14.1";
const ROW: &str = "[5.1,3.5,1.4,0.2]";

/// A server process, killed on drop.
struct Proc(Child, String);

impl Drop for Proc {
    fn drop(&mut self) {
        // seldon-core and MLServer fork workers: signal the whole process group.
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{}", self.0.id())])
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn(
    name: &str,
    cpu: u32,
    program: &Path,
    args: &[&str],
    env: &[(&str, String)],
    cwd: &Path,
    logs: &Path,
) -> anyhow::Result<Proc> {
    use std::os::unix::process::CommandExt;
    let log = std::fs::File::create(logs.join(format!("{name}.log")))?;
    let mut cmd = Command::new("taskset");
    cmd.arg("-c")
        .arg(cpu.to_string())
        .arg(program)
        .args(args)
        .current_dir(cwd);
    cmd.stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .process_group(0);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(Proc(
        cmd.spawn()
            .with_context(|| format!("starting {name}: {}", program.display()))?,
        name.into(),
    ))
}

/// A bare HTTP/1.0 exchange; returns (status, body).
fn http(port: u16, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut resp = String::new();
    s.read_to_string(&mut resp)?;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_ready(p: &mut Proc, port: u16, path: &str, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        if let Ok((200, _)) = http(port, "GET", path, "") {
            return Ok(());
        }
        if let Some(status) = p.0.try_wait()? {
            bail!(
                "{} exited with {status} before it was ready (see its log)",
                p.1
            );
        }
        if start.elapsed() > timeout {
            bail!("{} not ready on :{port}{path} after {timeout:?}", p.1);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What is measured: a server, a model, a protocol, where and with which body.
#[derive(Debug, Clone)]
struct Target {
    server: &'static str,
    model: &'static str,
    protocol: &'static str,
    port: u16,
    path: String,
    body: String,
}

fn v1_body() -> String {
    format!(r#"{{"data":{{"ndarray":[{ROW}]}}}}"#)
}

/// OIP v2 body; for sklearn it asks for `predict_proba` (MLServer's default output is
/// `predict`; Seldon's SKLEARN_SERVER and ours default to probabilities).
fn v2_body(model: &str) -> String {
    let outputs = if model.contains("sklearn") {
        r#","outputs":[{"name":"predict_proba"}]"#
    } else {
        ""
    };
    format!(
        r#"{{"inputs":[{{"name":"predict","shape":[1,4],"datatype":"FP32","data":{ROW}}}]{outputs}}}"#
    )
}

fn v2_grpc(model: &str) -> String {
    let outputs = if model.contains("sklearn") {
        r#","outputs":[{"name":"predict_proba"}]"#
    } else {
        ""
    };
    format!(
        r#"{{"model_name":"{model}","inputs":[{{"name":"predict","shape":[1,4],"datatype":"FP32","contents":{{"fp32_contents":{ROW}}}}}]{outputs}}}"#
    )
}

fn load(args: &Args, url: &str, body: &str, rate: Option<u32>) -> anyhow::Result<Run> {
    let out = Command::new(&args.oha)
        .args(oha::oha_args(url, body, args.secs, args.connections, rate))
        .output()?;
    if !out.status.success() {
        bail!("oha: {}", String::from_utf8_lossy(&out.stderr));
    }
    oha::parse_oha(&String::from_utf8_lossy(&out.stdout)).map_err(anyhow::Error::msg)
}

fn grpc_load(
    args: &Args,
    ghz: &Path,
    port: u16,
    model: &str,
    rate: Option<u32>,
) -> anyhow::Result<Run> {
    let proto = args.proto_dir.join("inference/open_inference_grpc.proto");
    let a = oha::ghz_args(
        &proto.to_string_lossy(),
        &args.proto_dir.to_string_lossy(),
        &format!("127.0.0.1:{port}"),
        &v2_grpc(model),
        args.secs,
        args.connections,
        rate,
    );
    let out = Command::new(ghz).args(a).output()?;
    if !out.status.success() {
        bail!(
            "ghz: {}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
    oha::parse_ghz(&String::from_utf8_lossy(&out.stdout)).map_err(anyhow::Error::msg)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let logs = args.models.join("logs");
    std::fs::create_dir_all(&logs)?;
    let cpu = args.server_cpu;
    let (src_sk, src_xgb) = (
        args.models.join("src/sklearn"),
        args.models.join("src/xgboost"),
    );
    let ort = std::env::var("ORT_DYLIB_PATH")
        .context("ORT_DYLIB_PATH (model-servers/onnx/scripts/setup.sh)")?;

    // Ports: ours sklearn 19000/19500, ours xgboost 19001/19501, MLServer 18080/18081,
    // seldon-core sklearn 17000, xgboost 17001.
    let ours = |imp: &str,
                uri: &Path,
                name: &str,
                http: u16,
                grpc: u16,
                metrics: u16|
     -> anyhow::Result<Proc> {
        spawn(
            &format!("ours-{name}"),
            cpu,
            &args.seldon_server,
            &[
                "--implementation",
                imp,
                "--model-uri",
                &uri.to_string_lossy(),
                "--http-port",
                &http.to_string(),
                "--grpc-port",
                &grpc.to_string(),
                "--metrics-port",
                &metrics.to_string(),
            ],
            &[
                ("ORT_DYLIB_PATH", ort.clone()),
                ("SELDON_MODEL_NAME", name.into()),
                ("SELDON_LOG_LEVEL", "warn".into()),
            ],
            &args.models,
            &logs,
        )
    };
    let mut procs = Vec::new();
    let mut p = ours(
        "SKLEARN_SERVER",
        &args.models.join("ours-sklearn"),
        "iris-sklearn",
        19000,
        19500,
        19600,
    )?;
    wait_ready(&mut p, 19000, "/v2/health/ready", Duration::from_secs(60))?;
    procs.push(p);
    let mut p = ours(
        "XGBOOST_SERVER",
        &src_xgb,
        "iris-xgboost",
        19001,
        19501,
        19601,
    )?;
    wait_ready(&mut p, 19001, "/v2/health/ready", Duration::from_secs(60))?;
    procs.push(p);

    let ml_dir = args.models.join("mlserver");
    std::fs::write(
        ml_dir.join("settings.json"),
        r#"{"debug":false,"parallel_workers":0,"host":"127.0.0.1","http_port":18080,"grpc_port":18081,"metrics_port":18082}"#,
    )?;
    let mut p = spawn(
        "mlserver",
        cpu,
        &args.mlserver_venv.join("bin/mlserver"),
        &["start", &ml_dir.to_string_lossy()],
        &[("MLSERVER_PARALLEL_WORKERS", "0".into())],
        &ml_dir,
        &logs,
    )?;
    wait_ready(
        &mut p,
        18080,
        "/v2/models/iris-sklearn/ready",
        Duration::from_secs(120),
    )?;
    wait_ready(
        &mut p,
        18080,
        "/v2/models/iris-xgboost/ready",
        Duration::from_secs(60),
    )?;
    procs.push(p);

    for (class, model_dir, port) in [
        ("SKLearnServer", &src_sk, 17000u16),
        ("XGBoostServer", &src_xgb, 17001),
    ] {
        let mut p = spawn(
            &format!("seldon-core-{class}"),
            cpu,
            &args.seldon_venv.join("bin/seldon-core-microservice"),
            &[class, "--service-type", "MODEL"],
            &[
                ("MODEL_URI", model_dir.to_string_lossy().into_owned()),
                ("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", port.to_string()),
                (
                    "PREDICTIVE_UNIT_GRPC_SERVICE_PORT",
                    (port + 100).to_string(),
                ),
                (
                    "PREDICTIVE_UNIT_METRICS_SERVICE_PORT",
                    (port + 200).to_string(),
                ),
                ("GUNICORN_WORKERS", "1".into()),
                ("GUNICORN_THREADS", "1".into()),
                (
                    "PATH",
                    format!(
                        "{}:{}",
                        args.seldon_venv.join("bin").display(),
                        std::env::var("PATH").unwrap_or_default()
                    ),
                ),
            ],
            &args.python_dir,
            &logs,
        )?;
        wait_ready(&mut p, port, "/health/ping", Duration::from_secs(120))?;
        procs.push(p);
    }

    let mut targets = Vec::new();
    for (model, port_ours, port_seldon) in [
        ("iris-sklearn", 19000u16, 17000u16),
        ("iris-xgboost", 19001, 17001),
    ] {
        targets.push(Target {
            server: OURS,
            model,
            protocol: "REST v1",
            port: port_ours,
            path: "/api/v1.0/predictions".into(),
            body: v1_body(),
        });
        targets.push(Target {
            server: SELDON,
            model,
            protocol: "REST v1",
            port: port_seldon,
            path: "/api/v1.0/predictions".into(),
            body: v1_body(),
        });
        let v2 = format!("/v2/models/{model}/infer");
        targets.push(Target {
            server: OURS,
            model,
            protocol: "REST v2",
            port: port_ours,
            path: v2.clone(),
            body: v2_body(model),
        });
        targets.push(Target {
            server: MLSERVER,
            model,
            protocol: "REST v2",
            port: 18080,
            path: v2,
            body: v2_body(model),
        });
    }

    // One request each: the answers go into the report (same model, same numbers).
    let mut answers = String::new();
    for t in &targets {
        let (status, body) = http(t.port, "POST", &t.path, &t.body)?;
        if status != 200 {
            bail!(
                "{} {} {}: HTTP {status}: {body}",
                t.server,
                t.model,
                t.protocol
            );
        }
        answers.push_str(&format!(
            "- {} {} {}: `{}`\n",
            t.server,
            t.model,
            t.protocol,
            body.trim()
        ));
    }

    let url = |t: &Target| format!("http://127.0.0.1:{}{}", t.port, t.path);
    let mut rows: Vec<Row> = Vec::new();
    for t in &targets {
        eprintln!(
            "bench-servers: saturating {} {} {}",
            t.server, t.model, t.protocol
        );
        load(&args, &url(t), &t.body, None)?; // warm-up
        let sat = load(&args, &url(t), &t.body, None)?;
        rows.push(Row {
            model: t.model.into(),
            protocol: t.protocol.into(),
            server: t.server.into(),
            saturation: sat,
            common: None,
            half_own: None,
        });
    }
    let grpc_targets: Vec<(&str, &str, u16)> = match &args.ghz {
        Some(g) if g.exists() => vec![
            (OURS, "iris-sklearn", 19500),
            (MLSERVER, "iris-sklearn", 18081),
            (OURS, "iris-xgboost", 19501),
            (MLSERVER, "iris-xgboost", 18081),
        ],
        _ => vec![],
    };
    for (server, model, port) in &grpc_targets {
        let ghz = args.ghz.as_deref().unwrap_or(Path::new("ghz"));
        eprintln!("bench-servers: saturating {server} {model} gRPC v2");
        let sat = grpc_load(&args, ghz, *port, model, None)?;
        rows.push(Row {
            model: (*model).into(),
            protocol: "gRPC v2".into(),
            server: (*server).into(),
            saturation: sat,
            common: None,
            half_own: None,
        });
    }

    // Moderate load: half the slowest server's saturation for the model (same rate for all),
    // and each server at half its own saturation.
    for i in 0..rows.len() {
        let (model, proto) = (rows[i].model.clone(), rows[i].protocol.clone());
        let slowest = rows
            .iter()
            .filter(|r| r.model == model && r.protocol.starts_with(&proto[..4]))
            .map(|r| r.saturation.rps)
            .fold(f64::MAX, f64::min);
        let common = ((slowest / 2.0) as u32).max(1);
        let own = ((rows[i].saturation.rps / 2.0) as u32).max(1);
        let server = rows[i].server.clone();
        eprintln!("bench-servers: {server} {model} {proto} at {common} and {own} rps");
        let measure = |rate: u32| -> anyhow::Result<Run> {
            if proto.starts_with("gRPC") {
                let port = grpc_targets
                    .iter()
                    .find(|(s, m, _)| *s == server && *m == model)
                    .map(|t| t.2)
                    .unwrap_or(0);
                grpc_load(
                    &args,
                    args.ghz.as_deref().unwrap_or(Path::new("ghz")),
                    port,
                    &model,
                    Some(rate),
                )
            } else {
                let t = targets
                    .iter()
                    .find(|t| t.server == server && t.model == model && t.protocol == proto)
                    .context("target")?;
                load(&args, &url(t), &t.body, Some(rate))
            }
        };
        rows[i].common = Some((common, measure(common)?));
        if own > common {
            rows[i].half_own = Some((own, measure(own)?));
        }
    }
    drop(procs);

    let header = std::fs::read_to_string(&args.header)
        .with_context(|| format!("{}", args.header.display()))?;
    let doc = format!(
        "{header}\n## Results\n\n{}\n### One answer from each (same model, same row `{ROW}`)\n\n{answers}",
        report::table(&rows, OURS, MLSERVER)
    );
    std::fs::write(&args.out, doc)?;
    eprintln!("bench-servers: wrote {}", args.out.display());
    Ok(())
}
