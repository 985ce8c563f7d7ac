//! Test helper for `tests/lifecycle.rs`: spawns `sleep 1000` supervised, prints its pid, and
//! waits to be killed. Proves a child dies with its owner, even when the owner gets SIGKILL.

fn main() {
    let mut cmd = seldon_supervise::command("sleep");
    cmd.arg("1000");
    match seldon_supervise::Supervised::spawn("sleep", cmd) {
        Ok(child) => {
            println!("{}", child.pid());
            std::thread::sleep(std::time::Duration::from_secs(1000));
            drop(child);
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    }
}
