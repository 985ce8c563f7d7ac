//! Child processes that never outlive the test, with their output in one log file each.
//!
//! The process lifecycle is `seldon-supervise`'s (own process group, parent-death SIGKILL via
//! `setpriv`, on drop SIGTERM to the group, a grace period, then SIGKILL); this module adds
//! what the harness needs on top: a log file per process, exit errors quoting the log, and a
//! `Group` stopped together. Spawn from a thread that lives as long as the child should (the
//! death signal follows the spawning thread), never from `spawn_blocking`.

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use seldon_supervise::{SuperviseError, Supervised};

use crate::HarnessError;

/// How long a child gets between `SIGTERM` and `SIGKILL` when it is dropped.
pub const DEFAULT_GRACE: Duration = seldon_supervise::DEFAULT_GRACE;

/// A running child process, leader of its own process group. Dropping it stops the group.
#[derive(Debug)]
pub struct Child {
    name: String,
    inner: Supervised,
    log_path: PathBuf,
    terminated: bool,
}

/// Starts `cmd` as `name` in a new process group, with its stdout and stderr appended to
/// `<log_dir>/<name>.log` and stdin closed. The program, arguments, environment changes and
/// working directory of `cmd` are kept; `env_clear` on `cmd` is not (std cannot read it back).
pub fn spawn(name: &str, cmd: Command, log_dir: &Path) -> Result<Child, HarnessError> {
    std::fs::create_dir_all(log_dir).map_err(|source| HarnessError::Io {
        context: format!("creating log dir {}", log_dir.display()),
        source,
    })?;
    let log_path = log_dir.join(format!("{name}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| HarnessError::Io {
            context: format!("opening {}", log_path.display()),
            source,
        })?;
    // Writable by everyone: a child that drops privileges (the sidecar's Envoy runs as uid
    // 1337) may reopen its stdout by path (`/dev/stdout`, Istio's default access log), which
    // checks the file's mode. In a pod stdout is a pipe, where this question does not arise.
    std::fs::set_permissions(&log_path, std::fs::Permissions::from_mode(0o666)).map_err(
        |source| HarnessError::Io {
            context: format!("chmod {}", log_path.display()),
            source,
        },
    )?;
    let log_err = log.try_clone().map_err(|source| HarnessError::Io {
        context: format!("duplicating {}", log_path.display()),
        source,
    })?;

    let mut wrapped = seldon_supervise::wrap(&cmd);
    wrapped
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log_err));
    let inner = Supervised::spawn(name, wrapped).map_err(|e| match e {
        SuperviseError::Spawn { source, .. } => HarnessError::Spawn {
            name: name.to_string(),
            program: cmd.get_program().to_string_lossy().into_owned(),
            source,
        },
    })?;
    tracing::debug!(name, pid = inner.pid(), log = %log_path.display(), "spawned");
    Ok(Child {
        name: name.to_string(),
        inner,
        log_path,
        terminated: false,
    })
}

impl Child {
    /// The name given to [`spawn`] (also the log file's stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, which is also the process group id.
    pub fn pid(&self) -> u32 {
        self.inner.pid()
    }

    /// Where stdout and stderr go.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Sets how long [`Drop`] waits between `SIGTERM` and `SIGKILL`.
    pub fn set_grace(&mut self, grace: Duration) {
        self.inner.set_grace(grace);
    }

    /// The last `n` lines of the log (fewer if the log is shorter; empty if unreadable).
    pub fn log_tail(&self, n: usize) -> String {
        tail_lines(&self.log_path, n)
    }

    /// `Ok(None)` while running, `Ok(Some(status))` once the process has exited.
    pub fn try_status(&mut self) -> Result<Option<ExitStatus>, HarnessError> {
        self.inner.try_wait().map_err(|source| HarnessError::Io {
            context: format!("waiting for {}", self.name),
            source,
        })
    }

    /// An error naming the process and quoting its log if it has exited; `Ok(())` if running.
    pub fn ensure_running(&mut self) -> Result<(), HarnessError> {
        match self.try_status()? {
            None => Ok(()),
            Some(status) => Err(HarnessError::Exited {
                name: self.name.clone(),
                status: status.to_string(),
                log: self.log_path.clone(),
                tail: self.log_tail(30),
            }),
        }
    }

    /// Sends `SIGTERM` to the whole group without waiting. [`Drop`] still waits and kills.
    /// Use it to stop many children in parallel: terminate all, then drop them.
    pub fn terminate(&mut self) {
        if !self.terminated {
            self.terminated = true;
            // ESRCH (the group is already gone) is fine.
            let _ = self.inner.signal_group(Signal::SIGTERM);
        }
    }

    /// Stops the group (`SIGTERM`, up to the grace period, `SIGKILL`) and returns the
    /// leader's status. Dropping does the same.
    pub fn stop(mut self) -> Result<ExitStatus, HarnessError> {
        self.inner.stop().map_err(|source| HarnessError::Io {
            context: format!("stopping {}", self.name),
            source,
        })
    }
}

/// Processes started in order and stopped together: `SIGTERM` to every group at once, then
/// each is waited for (newest first, so a server outlives its clients' shutdown). Dropping
/// the group does the same, also on an error path or during a panic's unwind.
#[derive(Debug, Default)]
pub struct Group {
    children: Vec<Child>,
}

impl Group {
    pub fn push(&mut self, child: Child) {
        self.children.push(child);
    }

    /// The most recently started child.
    pub fn last_mut(&mut self) -> Option<&mut Child> {
        self.children.last_mut()
    }

    /// A child by name.
    pub fn find(&self, name: &str) -> Option<&Child> {
        self.children.iter().find(|c| c.name() == name)
    }

    /// The first child that has exited, as an error with its log.
    pub fn ensure_running(&mut self) -> Result<(), HarnessError> {
        self.children.iter_mut().try_for_each(Child::ensure_running)
    }

    /// Stops every child (see the type's docs). Idempotent.
    pub fn stop_all(&mut self) {
        for c in &mut self.children {
            c.terminate();
        }
        while let Some(c) = self.children.pop() {
            drop(c);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// The last `n` lines of a file, joined with newlines; empty if it cannot be read.
pub fn tail_lines(path: &Path, n: usize) -> String {
    let Ok(file) = File::open(path) else {
        return String::new();
    };
    let mut last: VecDeque<String> = VecDeque::with_capacity(n + 1);
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        last.push_back(line);
        if last.len() > n {
            last.pop_front();
        }
    }
    Vec::from(last).join("\n")
}

/// A program on `PATH` or an absolute path, as an error if it is missing (for clear messages
/// before spawning).
pub fn require_program(program: impl AsRef<OsStr>) -> Result<PathBuf, HarnessError> {
    let program = PathBuf::from(program.as_ref());
    if program.is_absolute() {
        return if program.is_file() {
            Ok(program)
        } else {
            Err(HarnessError::MissingProgram(program.display().to_string()))
        };
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(&program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| HarnessError::MissingProgram(program.display().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::unistd::Pid;
    use std::time::Instant;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[test]
    fn logs_output_and_reports_exit() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = sh("echo out-$FOO; echo err >&2; exit 3");
        cmd.env("FOO", "bar");
        let mut child = spawn("echo", cmd, dir.path()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_status().unwrap().is_none() {
            assert!(Instant::now() < deadline, "child did not exit");
            std::thread::sleep(Duration::from_millis(10));
        }
        let err = child.ensure_running().unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("echo") && text.contains("exit status: 3"),
            "{text}"
        );
        assert_eq!(child.log_tail(10), "out-bar\nerr");
        assert_eq!(child.log_tail(1), "err");
    }

    #[test]
    fn own_process_group_and_pdeathsig() {
        let dir = tempfile::tempdir().unwrap();
        let child = spawn("sleeper", sh("exec sleep 30"), dir.path()).unwrap();
        // setpriv execs sleep in place (same pid) once it has set the death signal.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let stat = std::fs::read_to_string(format!("/proc/{}/status", child.pid())).unwrap();
            if stat.starts_with("Name:\tsleep") {
                break;
            }
            assert!(Instant::now() < deadline, "{stat}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let pgid = nix::unistd::getpgid(Some(Pid::from_raw(child.pid() as i32))).unwrap();
        assert_eq!(pgid.as_raw() as u32, child.pid());
    }

    #[test]
    fn drop_kills_the_whole_group_even_when_term_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        // The leader ignores TERM and starts a grandchild that does too.
        let mut child = spawn(
            "stubborn",
            sh("trap '' TERM; sh -c \"trap '' TERM; sleep 60\" & echo started; wait"),
            dir.path(),
        )
        .unwrap();
        child.set_grace(Duration::from_millis(300));
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.log_tail(1) != "started" {
            assert!(Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(10));
        }
        let pgid = child.pid() as i32;
        let started = Instant::now();
        drop(child);
        assert!(started.elapsed() >= Duration::from_millis(300));
        // No live process is left in the group (a killed grandchild may stay a zombie until
        // whatever it was reparented to reaps it; zombies run nothing).
        let deadline = Instant::now() + Duration::from_secs(5);
        while !live_members(pgid).is_empty() {
            assert!(Instant::now() < deadline, "{:?}", live_members(pgid));
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Pids of the processes of group `pgid` that are not zombies, from /proc.
    fn live_members(pgid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...; comm may hold spaces, so split after ')'.
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string() {
                out.push(pid);
            }
        }
        out
    }

    #[test]
    fn spawn_fails_for_a_missing_program() {
        let dir = tempfile::tempdir().unwrap();
        // setpriv starts, then fails to exec: the child exits non-zero with setpriv's message.
        let mut child = spawn("missing", Command::new("/nonexistent/program"), dir.path()).unwrap();
        let status = loop {
            if let Some(s) = child.try_status().unwrap() {
                break s;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        assert!(!status.success());
        assert!(child.log_tail(5).contains("/nonexistent/program"));
        assert!(require_program("/nonexistent/program").is_err());
        assert!(require_program("sh").is_ok());
    }

    #[test]
    fn spawn_fails_when_the_log_dir_cannot_be_made() {
        let err = spawn("x", sh("true"), Path::new("/proc/no-such-dir")).unwrap_err();
        assert!(matches!(err, HarnessError::Io { .. }), "{err}");
    }
}
