//! `seldon-mesh up` never leaves a process behind: after SIGTERM, SIGINT or SIGHUP to `up`
//! alone (not its process group, as `kill <pid>`, systemd or `timeout` send them), after
//! `up` is SIGKILLed, and after a start that fails half way. Real processes: `up`, Envoy with
//! the filter, `testmodel` nodes.
//!
//! Every process `up` starts inherits a marker variable from `up`'s environment; a process
//! is "left behind" if /proc shows a live process (not a zombie) carrying the marker.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use seldon_supervise::Supervised;
use std::time::{Duration, Instant};

const MARK: &str = "SELDON_LIFECYCLE_TEST_MARK";

mod common;

use common::{envoy_ready, filter, free_port, sibling};

/// `common::marked` for this file's marker variable.
fn marked(mark: &str, except: u32) -> Vec<(u32, String)> {
    common::marked(MARK, mark, except)
}

fn assert_none_left(mark: &str, up_pid: u32, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let left = marked(mark, up_pid);
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            // Clean up before failing so the suite doesn't leak either.
            for (pid, _) in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
            panic!("{what}: processes left behind: {left:#?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const TWO_NODES: &str = r#"
apiVersion: machinelearning.seldon.io/v1
kind: SeldonDeployment
metadata: {name: life, namespace: test}
spec:
  predictors:
  - name: main
    graph:
      name: t
      type: TRANSFORMER
      children: [{name: m, type: MODEL}]
    componentSpecs: [{spec: {containers: [{name: t, image: me/t:1}, {name: m, image: me/m:1}]}}]
"#;

fn testmodel(name: &str) -> String {
    format!(
        "{} --port $PREDICTIVE_UNIT_HTTP_SERVICE_PORT --name {name} --mode add --add 1",
        sibling("testmodel").display()
    )
}

/// Starts `up` with the marker; returns it once it printed `ready:` (or panics with its
/// output if it exited first). It is supervised: a failing assertion (panic) stops it and
/// everything it started, so a failed test leaks nothing either.
fn start_up(mark: &str, runs: &[(&str, String)]) -> Supervised {
    envoy_ready();
    let dir = tempfile::tempdir().unwrap().keep();
    let file = dir.join("sdep.yaml");
    std::fs::write(&file, TWO_NODES).unwrap();
    let mut cmd = seldon_supervise::command(env!("CARGO_BIN_EXE_seldon-mesh"));
    cmd.env(MARK, mark)
        .args(["up", "-f"])
        .arg(&file)
        .args(["--port", &free_port().to_string()])
        .arg("--filter")
        .arg(filter())
        .arg("--workdir")
        .arg(dir.join("run"));
    for (node, command) in runs {
        cmd.arg("--run").arg(format!("{node}={command}"));
    }
    let (reader, writer) = std::io::pipe().unwrap();
    cmd.stdout(writer).stderr(Stdio::inherit());
    let mut child = Supervised::spawn("seldon-mesh up", cmd).unwrap();
    for line in BufReader::new(reader).lines() {
        if line.unwrap().starts_with("ready: ") {
            return child;
        }
    }
    let status = child.wait().unwrap();
    panic!("seldon-mesh up exited ({status}) before it was ready");
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}");
}

fn wait_exit(child: &mut Supervised, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "seldon-mesh up did not exit within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One node is a simple command (exec'd by the shell), the other a compound line (the shell
/// stays, the node is its child): both kinds must go.
fn runs() -> Vec<(&'static str, String)> {
    vec![
        ("t", testmodel("t")),
        ("m", format!("cd / && {}", testmodel("m"))),
    ]
}

#[test]
fn sigterm_sigint_and_sighup_to_up_alone_stop_every_process() {
    for (sig, code) in [("TERM", 143), ("INT", 130), ("HUP", 129)] {
        let mark = format!("{sig}-{}", std::process::id());
        let mut up = start_up(&mark, &runs());
        let started = marked(&mark, up.pid());
        // Envoy, node t, node m's shell and node m itself.
        assert!(
            started.len() >= 4,
            "expected Envoy and the nodes to carry the marker: {started:#?}"
        );
        assert!(
            started.iter().any(|(_, c)| c.contains("envoy")),
            "{started:#?}"
        );
        signal(up.pid(), sig);
        let status = wait_exit(&mut up, Duration::from_secs(20));
        assert_eq!(status.code(), Some(code), "exit status after SIG{sig}");
        assert_none_left(
            &mark,
            up.pid(),
            Duration::from_secs(2),
            &format!("SIG{sig}"),
        );
    }
}

#[test]
fn a_killed_up_leaves_no_process_behind() {
    let mark = format!("KILL-{}", std::process::id());
    // Simple commands only: they are exec'd, so the parent-death signal reaches the node.
    let runs = vec![("t", testmodel("t")), ("m", testmodel("m"))];
    let mut up = start_up(&mark, &runs);
    assert!(marked(&mark, up.pid()).len() >= 3);
    signal(up.pid(), "KILL"); // SIGKILL: nothing in `up` runs any more
    up.wait().unwrap();
    assert_none_left(&mark, up.pid(), Duration::from_secs(5), "SIGKILL of up");
}

#[test]
fn a_failed_start_stops_what_it_started_and_names_the_node() {
    envoy_ready();
    let mark = format!("FAIL-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sdep.yaml");
    std::fs::write(&file, TWO_NODES).unwrap();
    // t starts fine (and must be stopped again); m writes a line and exits 3.
    let out = Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
        .env(MARK, &mark)
        .args(["up", "-f"])
        .arg(&file)
        .args(["--port", &free_port().to_string()])
        .arg("--filter")
        .arg(filter())
        .arg("--workdir")
        .arg(dir.path().join("run"))
        .arg("--run")
        .arg(format!("t={}", testmodel("t")))
        .arg("--run")
        .arg("m=echo 'model file missing: /models/m.onnx' >&2; exit 3")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node `m` exited before it was ready"), "{err}");
    assert!(
        err.contains("model file missing: /models/m.onnx"),
        "the log's last lines: {err}"
    );
    assert!(err.contains("main.m.log"), "the log's path: {err}");
    assert_none_left(&mark, 0, Duration::from_secs(2), "failed start");
}

/// The gateway's port taken by another program: Envoy still reports itself ready (its other
/// listeners work) but NACKs the gateway listener; `up` must fail with Envoy's reason and
/// stop what it started, not print a URL that the other program answers. A CI run saw that:
/// a test's request got another server's answer.
#[test]
fn a_gateway_port_in_use_fails_the_start_and_leaks_nothing() {
    envoy_ready();
    let mark = format!("PORT-{}", std::process::id());
    let taken = std::net::TcpListener::bind(("127.0.0.1", free_port())).unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sdep.yaml");
    std::fs::write(&file, TWO_NODES).unwrap();
    // Supervised and waited for with a deadline: without the check, `up` would run on.
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut cmd = seldon_supervise::command(env!("CARGO_BIN_EXE_seldon-mesh"));
    cmd.env(MARK, &mark)
        .args(["up", "-f"])
        .arg(&file)
        .args(["--port", &port.to_string()])
        .arg("--filter")
        .arg(filter())
        .arg("--workdir")
        .arg(dir.path().join("run"))
        .arg("--run")
        .arg(format!("t={}", testmodel("t")))
        .arg("--run")
        .arg(format!("m={}", testmodel("m")))
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut up = Supervised::spawn("seldon-mesh up", cmd).unwrap();
    let status = wait_exit(&mut up, Duration::from_secs(30));
    let stdout = std::fs::read_to_string(&out_path).unwrap();
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert!(!status.success(), "{stdout}\n{err}");
    assert!(!stdout.contains("ready: "), "no URL is printed: {stdout}");
    assert!(
        err.contains("Envoy rejected the listeners")
            && err.contains(&format!("cannot bind '127.0.0.1:{port}'")),
        "{err}"
    );
    assert_none_left(&mark, 0, Duration::from_secs(2), "gateway port in use");
    drop(taken);
}

/// `status` and `logs` find a running `up` through its default work directory (here under a
/// private XDG_STATE_HOME), report it healthy, then name a stopped node; after `up` stops,
/// the logs are still there.
#[test]
fn status_and_logs_find_a_running_up_by_its_manifest() {
    envoy_ready();
    let state_home = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sdep.yaml");
    std::fs::write(&file, TWO_NODES).unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_seldon-mesh"))
            .env("XDG_STATE_HOME", state_home.path())
            .args(args)
            .arg("-f")
            .arg(&file)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = cli(&["status"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("nothing has run in") && err.contains("seldon-mesh up"),
        "{err}"
    );

    let mut cmd = seldon_supervise::command(env!("CARGO_BIN_EXE_seldon-mesh"));
    cmd.env("XDG_STATE_HOME", state_home.path())
        .args(["up", "-f"])
        .arg(&file)
        .args(["--port", &free_port().to_string()])
        .arg("--filter")
        .arg(filter())
        .args(["--run", &format!("t={}", testmodel("t"))])
        .args(["--run", &format!("m={}", testmodel("m"))]);
    let (reader, writer) = std::io::pipe().unwrap();
    // stdout and stderr (progress, the exit notice) in one pipe
    cmd.stderr(writer.try_clone().unwrap()).stdout(writer);
    let mut up = Supervised::spawn("seldon-mesh up", cmd).unwrap();
    let mut out = BufReader::new(reader);
    let mut printed = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "up exited: {printed}"
        );
        printed.push_str(&line);
        if line.starts_with("ready: ") {
            break;
        }
    }
    let workdir = state_home.path().join("seldon-mesh/up/test/life");
    assert!(
        printed.contains(&workdir.join("main.t.log").display().to_string()),
        "{printed}"
    );
    assert!(printed.contains("envoy"), "{printed}");

    let (code, stdout, _) = cli(&["status"]);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(stdout.contains("healthy: http://127.0.0.1:"), "{stdout}");

    let (code, _, err) = cli(&["logs", "nope"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no node `nope`; the nodes are: ")
            && err.contains("main.t")
            && err.contains("main.m"),
        "{err}"
    );

    // Stop one node behind up's back: status names it.
    let state = std::fs::read_to_string(workdir.join("up.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    let m_pid = state["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "m")
        .unwrap()["pid"]
        .as_u64()
        .unwrap();
    signal(m_pid as u32, "KILL");
    let (code, stdout, _) = cli(&["status"]);
    assert_eq!(code, Some(1), "{stdout}");
    assert!(stdout.contains("not healthy: main.m"), "{stdout}");
    // up notices: it reaps the node (no zombie stays) and says so once, with the log's path.
    let (lines, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines() {
            if lines.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(5);
    let notice = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("exited  main.m") => break line,
            Ok(line) => printed.push_str(&line),
            Err(_) => panic!("up did not report main.m's exit within 5 s: {printed}"),
        }
    };
    assert!(
        notice.contains("signal: 9")
            && notice.contains("503 naming it")
            && notice.contains(&workdir.join("main.m.log").display().to_string()),
        "{notice}"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{m_pid}")).exists(),
        "main.m (pid {m_pid}) is still a zombie after up reported it"
    );

    signal(up.pid(), "TERM");
    wait_exit(&mut up, Duration::from_secs(20));
    let (code, stdout, _) = cli(&["status"]);
    assert_eq!(code, Some(1));
    assert!(
        stdout.contains("is not running; logs are kept in"),
        "{stdout}"
    );
    let (code, log, _) = cli(&["logs", "t"]);
    assert_eq!(code, Some(0));
    assert!(
        !log.trim().is_empty(),
        "node t's log is kept after up stopped"
    );
}
