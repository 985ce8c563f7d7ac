//! Child processes that never outlive their owner.
//!
//! Every process local mode and the test harnesses start goes through [`command`] and
//! [`Supervised::spawn`]:
//!
//! ```text
//!  owner ──spawn──► setpriv --pdeathsig KILL -- program args…   (exec: same pid)
//!                    └─ own process group (pgid = its pid): its children join it
//!  owner drops it   ──► SIGTERM to the group ─ grace ─► SIGKILL to the group ─► reaped
//!  owner dies (even SIGKILL) ──► kernel sends SIGKILL to the child (parent-death signal)
//! ```
//!
//! Why `setpriv` (util-linux, on every Debian/Ubuntu/Fedora): the parent-death signal is set
//! with `prctl(PR_SET_PDEATHSIG)` between fork and exec, which in Rust needs
//! `CommandExt::pre_exec`, an `unsafe` function; the workspace forbids `unsafe`. `setpriv`
//! sets it and then execs the program, so the pid, the process group and the exit status
//! are the program's own.
//!
//! Caveats, stated where the reader lands:
//! - The parent-death signal fires when the *thread* that spawned the child exits. Spawn from
//!   a long-lived thread (the main thread or a runtime worker), never from `spawn_blocking`.
//! - It reaches the direct child only. Grandchildren die with the group on a normal stop; if
//!   the owner is SIGKILLed, a program that forks must watch its own parent (Envoy and our
//!   servers do not fork; `sh -c` is avoided by [`shell`], which `exec`s the command).

use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use thiserror::Error;

/// How long [`Supervised::stop`] waits after SIGTERM before it sends SIGKILL.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

/// What went wrong starting a supervised process.
#[derive(Debug, Error)]
pub enum SuperviseError {
    #[error("starting `{name}` ({program}) failed")]
    Spawn {
        name: String,
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// A `Command` for `program` that runs in its own process group and receives SIGKILL when
/// the spawning thread dies. Add args, env, stdio and cwd as usual, then pass it to
/// [`Supervised::spawn`].
pub fn command(program: impl AsRef<Path>) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--pdeathsig", "KILL", "--"])
        .arg(program.as_ref())
        .process_group(0);
    cmd
}

/// [`command`] around an existing `Command`: the same program, arguments, environment
/// changes and working directory, behind `setpriv`, in its own process group. Stdio is not
/// carried over (std cannot read it back): set it on the result. Nor is `env_clear`.
pub fn wrap(cmd: &Command) -> Command {
    let mut wrapped = command(cmd.get_program());
    wrapped.args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// [`command`] for a shell command line: `sh -c 'exec <line>'`, so the shell is replaced by
/// the program and the parent-death signal reaches it.
pub fn shell(line: &str) -> Command {
    let mut cmd = command("/bin/sh");
    cmd.arg("-c").arg(format!("exec {line}"));
    cmd
}

use std::os::unix::process::CommandExt as _;

/// A running child in its own process group; stopped (gracefully, then forcibly) on drop.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    child: Child,
    grace: Duration,
    status: Option<ExitStatus>,
}

impl Supervised {
    /// Spawns `cmd` (made by [`command`] or [`shell`]). `name` appears in errors.
    pub fn spawn(name: impl Into<String>, mut cmd: Command) -> Result<Self, SuperviseError> {
        let name = name.into();
        let child = cmd.spawn().map_err(|source| SuperviseError::Spawn {
            name: name.clone(),
            program: real_program(&cmd),
            source,
        })?;
        Ok(Self {
            name,
            child,
            grace: DEFAULT_GRACE,
            status: None,
        })
    }

    /// Sets how long a stop waits between SIGTERM and SIGKILL.
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// [`Supervised::with_grace`] in place.
    pub fn set_grace(&mut self, grace: Duration) {
        self.grace = grace;
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The child's pid, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `Some(status)` once it has exited (reaped here), `None` while it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = self.child.try_wait()?;
        }
        Ok(self.status)
    }

    /// Blocks until it exits by itself, and reaps it.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait()?;
        self.status = Some(status);
        Ok(status)
    }

    /// Sends `signal` to the whole process group. Errors only if the group is gone.
    pub fn signal_group(&self, signal: Signal) -> nix::Result<()> {
        killpg(self.pgid(), signal)
    }

    /// SIGTERM to the group, up to the grace period for the child to exit, then SIGKILL to
    /// the group. Returns how it ended. Idempotent.
    pub fn stop(&mut self) -> io::Result<ExitStatus> {
        stop_all(std::slice::from_mut(self))?;
        self.wait()
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Stops many at once: SIGTERM to every group first, then one shared grace period (the
/// longest of theirs), then SIGKILL to every group still there, then reaps all. Stopping N
/// children costs one grace period, not N.
pub fn stop_all(children: &mut [Supervised]) -> io::Result<()> {
    for c in children.iter_mut() {
        if c.try_wait()?.is_none() {
            let _ = c.signal_group(Signal::SIGTERM);
        }
    }
    let grace = children.iter().map(|c| c.grace).max().unwrap_or_default();
    let deadline = Instant::now() + grace;
    loop {
        let mut running = false;
        for c in children.iter_mut() {
            running |= c.try_wait()?.is_none();
        }
        if !running || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    for c in children.iter_mut() {
        // Also for exited leaders: members of the group (the child's own children) may
        // still be there. ESRCH (nobody left) is the normal case and ignored.
        let _ = c.signal_group(Signal::SIGKILL);
        if c.status.is_none() {
            c.status = Some(c.child.wait()?);
        }
    }
    Ok(())
}

/// The program behind the `setpriv … --` prefix, for error messages.
fn real_program(cmd: &Command) -> PathBuf {
    let mut args = cmd.get_args();
    if cmd.get_program() == "setpriv" {
        for a in args.by_ref() {
            if a == "--" {
                break;
            }
        }
        if let Some(p) = args.next() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from(cmd.get_program())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_program_sees_through_the_setpriv_prefix() {
        let mut c = command("/opt/bin/envoy");
        c.arg("-c");
        assert_eq!(real_program(&c), PathBuf::from("/opt/bin/envoy"));
        assert_eq!(real_program(&Command::new("plain")), PathBuf::from("plain"));
    }

    #[test]
    fn wrap_keeps_program_args_env_and_cwd() {
        let mut c = Command::new("/opt/srv");
        c.args(["--port", "1"])
            .env("A", "1")
            .env_remove("B")
            .current_dir("/tmp");
        let w = wrap(&c);
        assert_eq!(w.get_program(), "setpriv");
        let args: Vec<_> = w.get_args().collect();
        assert_eq!(
            args,
            ["--pdeathsig", "KILL", "--", "/opt/srv", "--port", "1"]
        );
        let envs: Vec<_> = w.get_envs().collect();
        assert!(
            envs.contains(&("A".as_ref(), Some("1".as_ref()))),
            "{envs:?}"
        );
        assert!(envs.contains(&("B".as_ref(), None)), "{envs:?}");
        assert_eq!(w.get_current_dir(), Some(Path::new("/tmp")));
        assert_eq!(real_program(&w), PathBuf::from("/opt/srv"));
    }

    #[test]
    fn spawn_failure_names_the_program() {
        // setpriv itself exists, so spawn succeeds and the child fails; a missing setpriv
        // is what `Spawn` reports. Use a plain command to exercise the error path.
        let err = Supervised::spawn("ghost", Command::new("/nonexistent/ghost")).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("ghost") && msg.contains("/nonexistent/ghost"),
            "{msg}"
        );
    }
}
