//! `seldon-mesh`: one binary, one module per subcommand under `commands/`.
//!
//! Adding a subcommand: write `commands/<name>.rs` with `Args` (clap, `env = "SELDON_…"`) and
//! `run(Args) -> anyhow::Result<ExitCode>`, then add one variant to `Command` and one arm to
//! `main`.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "seldon-mesh",
    version,
    about = "Seldon Core v1 SeldonDeployments on an Istio mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print every manifest a SeldonDeployment renders to (multi-document YAML, for GitOps).
    Render(commands::render::Args),
    /// Explain every problem of a SeldonDeployment, with its path; exit 1 when there is one.
    Validate(commands::validate::Args),
    /// Run the operator: reconcile SeldonDeployments (Lease leader election between replicas).
    Operator(seldon_operator::OperatorArgs),
    /// Serve the validating admission webhook over HTTPS.
    Webhook(seldon_operator::WebhookArgs),
    /// Run a SeldonDeployment locally: node processes and the graph filter in a real Envoy.
    Up(commands::up::Args),
    /// Show what a local `up` runs: nodes, addresses, pids, health, logs.
    Status(commands::up::status::Args),
    /// Print a node's log from a local `up` (`envoy` for Envoy's).
    Logs(commands::up::logs::Args),
    /// Serve Swagger UI for a SeldonDeployment in a cluster, in front of its ingress gateway.
    Docs(commands::docs::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(args) => commands::render::run(args),
        Command::Validate(args) => commands::validate::run(args),
        Command::Up(args) => commands::up::run(args),
        Command::Status(args) => commands::up::status::run(args),
        Command::Logs(args) => commands::up::logs::run(args),
        Command::Docs(args) => commands::docs::run(args),
        Command::Operator(args) => seldon_operator::main_operator(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Command::Webhook(args) => seldon_operator::main_webhook(args)
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
