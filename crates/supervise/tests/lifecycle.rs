//! Real processes: a supervised child and everything it started are gone after drop, after
//! a SIGTERM-ignoring child's grace period, and after its owner is SIGKILLed.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use seldon_supervise::{Supervised, command, shell, stop_all};

/// Running = /proc/<pid> exists and is not a zombie (PID 1 here may not reap orphans).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if !running(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    !running(pid)
}

#[test]
fn drop_stops_the_child_and_its_grandchildren() {
    let mut cmd = shell("sh -c 'sleep 1000 & echo $!; wait'");
    let (reader, writer) = std::io::pipe().unwrap();
    cmd.stdout(writer);
    let sup = Supervised::spawn("tree", cmd).unwrap();
    let leader = sup.pid();
    let mut line = String::new();
    BufReader::new(reader).read_line(&mut line).unwrap();
    let grandchild: u32 = line.trim().parse().unwrap();
    assert!(running(leader) && running(grandchild));
    drop(sup);
    assert!(
        wait_gone(leader, Duration::from_secs(2)),
        "leader {leader} still runs"
    );
    assert!(
        wait_gone(grandchild, Duration::from_secs(2)),
        "grandchild {grandchild} outlived the drop"
    );
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_the_grace_period() {
    let cmd = shell("sh -c 'trap \"\" TERM; while :; do sleep 0.05; done'");
    let mut sup = Supervised::spawn("stubborn", cmd)
        .unwrap()
        .with_grace(Duration::from_millis(300));
    let pid = sup.pid();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let status = sup.stop().unwrap();
    let took = started.elapsed();
    assert!(!status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(250),
        "killed before the grace period: {took:?}"
    );
    assert!(wait_gone(pid, Duration::from_secs(2)));
}

#[test]
fn stop_all_costs_one_grace_period_and_reports_exits() {
    let mut children: Vec<Supervised> = (0..4)
        .map(|i| {
            Supervised::spawn(format!("s{i}"), shell("sh -c 'trap \"\" TERM; sleep 1000'"))
                .unwrap()
                .with_grace(Duration::from_millis(400))
        })
        .collect();
    let pids: Vec<u32> = children.iter().map(Supervised::pid).collect();
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    stop_all(&mut children).unwrap();
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    for (c, pid) in children.iter_mut().zip(pids) {
        assert!(c.try_wait().unwrap().is_some());
        assert!(wait_gone(pid, Duration::from_secs(2)));
    }
}

#[test]
fn a_child_dies_when_its_owner_is_sigkilled() {
    let owner_bin = env!("CARGO_BIN_EXE_supervised-owner");
    let mut owner = Command::new(owner_bin)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(owner.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let child: u32 = line.trim().parse().unwrap();
    assert!(running(child));
    // The parent-death signal is armed by setpriv just before it execs the program; wait for
    // the exec (the README states this start-up window), or a loaded machine kills the owner
    // inside it and the test proves nothing.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{child}/comm"))
        .ok()
        .as_deref()
        .map(str::trim)
        != Some("sleep")
    {
        assert!(
            Instant::now() < deadline,
            "child {child} never exec'd sleep"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    owner.kill().unwrap(); // SIGKILL: no destructor runs in the owner
    owner.wait().unwrap();
    assert!(
        wait_gone(child, Duration::from_secs(3)),
        "child {child} outlived its SIGKILLed owner"
    );
}

#[test]
fn command_runs_the_program_itself_under_the_same_pid() {
    let mut cmd = command("sh");
    cmd.args(["-c", "echo $$"]);
    let (reader, writer) = std::io::pipe().unwrap();
    cmd.stdout(writer);
    let mut sup = Supervised::spawn("echo-pid", cmd).unwrap();
    let mut line = String::new();
    BufReader::new(reader).read_line(&mut line).unwrap();
    assert_eq!(
        line.trim(),
        sup.pid().to_string(),
        "setpriv must exec, not fork"
    );
    assert!(sup.wait().unwrap().success());
    assert!(
        sup.stop().unwrap().success(),
        "stop after exit keeps the exit status"
    );
}
