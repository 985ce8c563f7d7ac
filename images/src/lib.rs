//! The image tests' helpers: build images with `images/build.sh`, run containers that are
//! removed however the test ends, and a loopback OCI registry (`docker-registry`) to push to.
//!
//! Every `podman` call here uses the project's `images/containers.conf` (runc, no default
//! ulimits) through `CONTAINERS_CONF`, never `/etc`.
//!
//! Clean-up: a [`Container`] is `podman rm -f`'d on drop, so on success, failure and panic. A
//! test process killed outright (SIGKILL) cannot run drops; its containers carry the label
//! `io.seldon-mesh.test.pid=<pid>` and [`remove_stale_containers`] (called by
//! [`Container::run`]) removes those whose process is gone.

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Label put on every test container: the pid of the test process that started it.
pub const PID_LABEL: &str = "io.seldon-mesh.test.pid";

/// What went wrong building, running or talking to an image.
#[derive(Debug, Error)]
pub enum ImageError {
    #[error("cannot start `{program}`: {source}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("images/build.sh printed no line for image `{0}`")]
    NotBuilt(String),
    #[error("{what} not ready after {secs} s:\n{log}")]
    NotReady {
        what: String,
        secs: u64,
        log: String,
    },
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `podman` with the project's containers.conf.
pub fn podman() -> Command {
    let mut cmd = Command::new("podman");
    cmd.env("CONTAINERS_CONF", repo().join("images/containers.conf"));
    cmd
}

fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs `cmd` to completion; an exit status other than 0 is an error carrying its stderr.
pub fn run(cmd: &mut Command) -> Result<Output, ImageError> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|source| ImageError::Spawn {
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        })?;
    if !out.status.success() {
        return Err(ImageError::Failed {
            command: describe(cmd),
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out)
}

/// One image `images/build.sh` built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub name: String,
    /// The full reference, e.g. `ghcr.io/seldon-mesh/server:0.1.0`.
    pub reference: String,
    /// `podman image inspect` size in bytes.
    pub size: u64,
}

/// Builds `name` with `images/build.sh`, with extra environment (e.g. `SELDON_IMAGE_BIN_DIR`,
/// `SELDON_IMAGE_TAG`). Returns what the script reports for it.
pub fn build(name: &str, envs: &[(&str, &OsStr)]) -> Result<Built, ImageError> {
    let mut cmd = Command::new(repo().join("images/build.sh"));
    cmd.arg(name);
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let out = run(&mut cmd)?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let mut it = line.split_whitespace();
            let (n, r, s) = (it.next()?, it.next()?, it.next()?);
            (n == name).then_some(())?;
            Some(Built {
                name: n.to_string(),
                reference: r.to_string(),
                size: s.parse().ok()?,
            })
        })
        .ok_or_else(|| ImageError::NotBuilt(name.to_string()))
}

/// A free TCP port on 127.0.0.1 (for `--network host` containers that bind loopback only).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes test containers whose test process is gone (see the module docs).
pub fn remove_stale_containers() -> Result<usize, ImageError> {
    let out = run(podman().args([
        "ps",
        "-a",
        "--filter",
        &format!("label={PID_LABEL}"),
        "--format",
        &format!("{{{{.ID}}}} {{{{index .Labels \"{PID_LABEL}\"}}}}"),
    ]))?;
    let mut removed = 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let mut it = line.split_whitespace();
        let (Some(id), Some(pid)) = (it.next(), it.next()) else {
            continue;
        };
        if pid.parse().is_ok_and(|p: u32| !pid_alive(p)) {
            run(podman().args(["rm", "-f", id]))?;
            removed += 1;
        }
    }
    Ok(removed)
}

fn next_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "seldon-mesh-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A detached container, `podman rm -f`'d on drop.
#[derive(Debug)]
pub struct Container {
    pub name: String,
}

impl Container {
    /// `podman run -d --name <unique> --label io.seldon-mesh.test.pid=<pid> <args…>`; `args`
    /// are podman options, then the image, then its arguments.
    pub fn run<S: AsRef<OsStr>>(args: &[S]) -> Result<Container, ImageError> {
        remove_stale_containers()?;
        // Own the name before starting, so a failed `run` still gets removed.
        let container = Container { name: next_name() };
        run(podman()
            .args(["run", "-d", "--name", &container.name, "--label"])
            .arg(format!("{PID_LABEL}={}", std::process::id()))
            .args(args))?;
        Ok(container)
    }

    /// The container's output so far (stdout and stderr).
    pub fn logs(&self) -> String {
        match podman().args(["logs", &self.name]).output() {
            Ok(o) => format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => format!("(podman logs failed: {e})"),
        }
    }

    /// Whether the container is still running.
    pub fn running(&self) -> bool {
        podman()
            .args(["inspect", "--format", "{{.State.Running}}", &self.name])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "true")
    }

    /// `podman exec <container> <args…>`.
    pub fn exec<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output, ImageError> {
        run(podman().arg("exec").arg(&self.name).args(args))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = podman()
            .args(["rm", "-f", "-t", "0", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// `podman run --rm <args…>` to completion (a one-shot container, e.g. the initializer).
/// The container is named and labelled like [`Container::run`]'s and removed even if the
/// wait is interrupted by a panic elsewhere.
pub fn run_to_completion<S: AsRef<OsStr>>(args: &[S]) -> Result<Output, ImageError> {
    remove_stale_containers()?;
    let container = Container { name: next_name() };
    run(podman()
        .args(["run", "--name", &container.name, "--label"])
        .arg(format!("{PID_LABEL}={}", std::process::id()))
        .args(args))
}

/// Polls `ready` every 100 ms until it returns true or `timeout` passes; `log` explains why.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut ready: impl FnMut() -> bool,
    log: impl Fn() -> String,
) -> Result<(), ImageError> {
    let deadline = Instant::now() + timeout;
    while !ready() {
        if Instant::now() > deadline {
            return Err(ImageError::NotReady {
                what: what.to_string(),
                secs: timeout.as_secs(),
                log: log(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// A real OCI registry (Debian's `docker-registry`, distribution 2.8) on 127.0.0.1 with its
/// storage in a temporary directory; killed on drop. The program runs under
/// `setpriv --pdeathsig KILL`, so it dies with the thread that started it even if the test is
/// killed.
#[derive(Debug)]
pub struct Registry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub host: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// Starts `docker-registry` (or `program`, for tests of this function) and waits until
    /// `/v2/` answers.
    pub fn start(program: Option<&Path>) -> Result<Registry, ImageError> {
        let dir = tempfile::tempdir().map_err(|source| ImageError::Spawn {
            program: "tempdir".into(),
            source,
        })?;
        let host = format!("127.0.0.1:{}", free_port());
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: {host}\n",
                dir.path().join("data").display()
            ),
        )
        .map_err(|source| ImageError::Spawn {
            program: config.display().to_string(),
            source,
        })?;
        let log = dir.path().join("registry.log");
        let program = program.unwrap_or(Path::new("docker-registry"));
        let stderr = std::fs::File::create(&log).map_err(|source| ImageError::Spawn {
            program: log.display().to_string(),
            source,
        })?;
        let child = Command::new("setpriv")
            .args(["--pdeathsig", "KILL", "--"])
            .arg(program)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|source| ImageError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        let mut registry = Registry {
            child,
            host,
            _dir: dir,
        };
        let url = format!("{}/v2/", registry.host);
        let mut exited = false;
        wait_until(
            "docker-registry",
            Duration::from_secs(30),
            || {
                if registry.child.try_wait().ok().flatten().is_some() {
                    exited = true;
                    return true;
                }
                std::net::TcpStream::connect(&registry.host).is_ok()
                    && http_get_ok(&registry.host, "/v2/")
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        )?;
        if exited {
            return Err(ImageError::NotReady {
                what: format!("{} ({url}): exited", program.display()),
                secs: 0,
                log: std::fs::read_to_string(&log).unwrap_or_default(),
            });
        }
        Ok(registry)
    }

    /// Pushes a local image as `<registry>/<path>` in OCI format (gzip layers).
    pub fn push(&self, image: &str, path: &str) -> Result<String, ImageError> {
        let dest = format!("{}/{path}", self.host);
        run(podman().args([
            "push",
            "--quiet",
            "--tls-verify=false",
            "--format",
            "oci",
            image,
            &dest,
        ]))?;
        Ok(dest)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.0 GET on loopback, true on a 200 (no client library needed for readiness).
fn http_get_ok(host: &str, path: &str) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.ends_with(b" 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_command_carries_stderr() {
        let err = run(Command::new("sh").args(["-c", "echo boom >&2; exit 3"])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("exit status: 3") && text.contains("boom"),
            "{text}"
        );
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = run(&mut Command::new("/nonexistent/podman")).unwrap_err();
        assert!(matches!(err, ImageError::Spawn { .. }), "{err}");
    }

    #[test]
    fn unknown_image_name_is_refused_by_build_sh() {
        let err = build("no-such-image", &[]).unwrap_err();
        assert!(
            err.to_string().contains("unknown image 'no-such-image'"),
            "{err}"
        );
    }

    #[test]
    fn running_a_missing_image_fails_and_leaves_no_container() {
        let err =
            Container::run(&["--pull=never", "localhost/seldon-mesh-test/absent:0"]).unwrap_err();
        assert!(matches!(err, ImageError::Failed { .. }), "{err}");
        let out = run(podman().args([
            "ps",
            "-a",
            "--filter",
            &format!("label={PID_LABEL}={}", std::process::id()),
            "--format",
            "{{.Names}}",
        ]))
        .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "");
    }

    #[test]
    fn registry_with_a_missing_program_fails() {
        let err = Registry::start(Some(Path::new("/nonexistent/registry"))).unwrap_err();
        // setpriv starts, then fails to exec: the registry never answers
        assert!(
            matches!(err, ImageError::NotReady { .. } | ImageError::Spawn { .. }),
            "{err}"
        );
    }

    #[test]
    fn containers_of_dead_test_processes_are_removed() {
        // a tiny local image, and a container labelled with the pid of a process that ended
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), "x").unwrap();
        std::fs::write(
            dir.path().join("Containerfile"),
            "FROM scratch\nCOPY f /f\n",
        )
        .unwrap();
        let image = format!("localhost/seldon-mesh-test/stale:{}", std::process::id());
        run(podman()
            .args([
                "build",
                "-q",
                "--pull=never",
                "--network",
                "none",
                "-t",
                &image,
            ])
            .arg(dir.path()))
        .unwrap();
        let mut child = Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let name = format!("seldon-mesh-test-stale-{}", std::process::id());
        run(podman()
            .args(["create", "--name", &name, "--label"])
            .arg(format!("{PID_LABEL}={dead}"))
            .args([&image, "/f"]))
        .unwrap();
        // and one of a live process (pid 1; not this one, so the other tests' checks of this
        // pid's containers are undisturbed), which must stay
        let live = Container {
            name: format!("seldon-mesh-test-live-{}", std::process::id()),
        };
        run(podman()
            .args(["create", "--name", &live.name, "--label"])
            .arg(format!("{PID_LABEL}=1"))
            .args([&image, "/f"]))
        .unwrap();

        assert!(remove_stale_containers().unwrap() >= 1);
        let exists = |n: &str| {
            podman()
                .args(["container", "exists", n])
                .status()
                .unwrap()
                .success()
        };
        assert!(
            !exists(&name),
            "the dead process's container is still there"
        );
        assert!(exists(&live.name), "a live process's container was removed");
        drop(live);
        let _ = run(podman().args(["rmi", &image]));
    }

    #[test]
    fn wait_until_times_out_with_the_log() {
        let err = wait_until(
            "thing",
            Duration::from_millis(50),
            || false,
            || "why".into(),
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "thing not ready after 0 s:\nwhy");
    }
}
