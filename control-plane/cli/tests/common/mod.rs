//! What the `up*` integration tests share: where the built binaries are, Envoy installed, a
//! free port, and finding the processes an `up` started by a marker variable it passed on.
// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A binary built beside `seldon-mesh` (`testmodel`, `seldon-server`).
pub fn sibling(name: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_BIN_EXE_seldon-mesh")).with_file_name(name);
    assert!(
        p.is_file(),
        "{} is not built; run `cargo build --workspace --bins` first",
        p.display()
    );
    p
}

/// The release filter module (`make wasm`).
pub fn filter() -> PathBuf {
    let exe = PathBuf::from(env!("CARGO_BIN_EXE_seldon-mesh"));
    let p = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|t| t.join("wasm32-wasip1/release/seldon_filter.wasm"))
        .unwrap_or_default();
    assert!(p.is_file(), "{} is not built; run `make wasm`", p.display());
    p
}

/// Envoy is installed (`scripts/setup.sh`, idempotent).
pub fn envoy_ready() {
    let status = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/setup.sh"
        ))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "scripts/setup.sh failed");
}

/// A port for a listener `up` will bind later: below the ephemeral range, like every port
/// `up` picks itself. A port from `bind(:0)` is ephemeral, and an outgoing connection may take
/// it as its source port before Envoy binds it (a CI run lost the gateway's port that way).
pub fn free_port() -> u16 {
    seldon_envoy::free_port().unwrap()
}

/// Live processes (zombies aside) whose environment holds `<var>=<mark>`, except `except`
/// and this test process, with their command lines.
pub fn marked(var: &str, mark: &str, except: u32) -> Vec<(u32, String)> {
    let needle = format!("{var}={mark}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == except || pid == std::process::id() {
            continue;
        }
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if !env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes()) || !alive(pid) {
            continue;
        }
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        found.push((pid, String::from_utf8_lossy(&cmd).replace('\0', " ")));
    }
    found
}

/// The process exists and is not a zombie (PID 1 here may not reap orphans).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    stat.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .is_some_and(|state| state != "Z")
}

/// A supervised `seldon-mesh up` that printed `ready:`; a failing assertion (panic) stops it
/// and everything it started.
pub struct Started {
    pub up: seldon_supervise::Supervised,
    /// The prediction URL after `ready: `.
    pub url: String,
    /// Every stdout line up to the `watching …` line that ends the start.
    pub printed: Vec<String>,
}

/// Writes `manifest` into `dir` and runs `up` on it with a free gateway port, the release
/// filter, workdir `dir/run`, `--run NODE=COMMAND` for each of `runs` and `extra` arguments.
pub fn start_up(
    dir: &std::path::Path,
    manifest: &str,
    extra: &[&str],
    runs: &[(&str, String)],
) -> Started {
    envoy_ready();
    let file = dir.join("sdep.yaml");
    std::fs::write(&file, manifest).unwrap();
    let mut cmd = seldon_supervise::command(env!("CARGO_BIN_EXE_seldon-mesh"));
    cmd.args(["up", "-f"])
        .arg(&file)
        .args(["--port", &free_port().to_string()])
        .arg("--filter")
        .arg(filter())
        .arg("--workdir")
        .arg(dir.join("run"))
        .args(extra);
    for (node, command) in runs {
        cmd.arg("--run").arg(format!("{node}={command}"));
    }
    start_command(cmd)
}

/// Spawns `cmd` (a `seldon_supervise::command` that ends in `seldon-mesh up`, e.g. `bash -c`
/// with an `exec`) with its stdout piped, and reads until the `watching …` line that ends
/// the start.
pub fn start_command(mut cmd: Command) -> Started {
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
