//! `seldon-mesh status -f sdep.yaml`: what a local `up` of this deployment runs — each node's
//! address, pid, whether it runs and answers `/health/ping`, and its log. Exit 0 when `up`
//! and everything it started are healthy, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use seldon_local::RunState;
use seldon_local::state::alive;

use super::summary;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The SeldonDeployment `up` runs (finds its work directory).
    #[arg(
        short = 'f',
        long = "filename",
        env = "SELDON_FILE",
        required_unless_present = "workdir"
    )]
    pub file: Option<PathBuf>,
    /// The work directory `up` was given with `--workdir`.
    #[arg(long, env = "SELDON_LOCAL_DIR")]
    pub workdir: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = super::logs::workdir_of(args.file.as_deref(), args.workdir.as_deref())?;
    let state = RunState::read(&dir)?;
    print!("{}", summary(&state, false));
    let runtime = tokio::runtime::Runtime::new()?;
    let unhealthy = runtime.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(2))
            .build()?;
        let mut unhealthy = Vec::new();
        for n in &state.nodes {
            let url = format!("http://127.0.0.1:{}/health/ping", n.port);
            let ok = alive(n.pid)
                && client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
            if !ok {
                unhealthy.push(n.id());
            }
        }
        let ready = format!("{}/ready", state.envoy.admin_url);
        let envoy_ok = alive(state.envoy.pid)
            && client
                .get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
        if !envoy_ok {
            unhealthy.push("envoy".to_string());
        }
        anyhow::Ok(unhealthy)
    })?;
    if !alive(state.up_pid) {
        println!(
            "seldon-mesh up (pid {}) is not running; logs are kept in {}",
            state.up_pid,
            dir.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    if unhealthy.is_empty() {
        println!("healthy: {}{}", state.base_url, state.predict_path);
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "not healthy: {} (see `seldon-mesh logs <node>`)",
            unhealthy.join(", ")
        );
        Ok(ExitCode::FAILURE)
    }
}
