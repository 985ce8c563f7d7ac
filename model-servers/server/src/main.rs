//! `seldon-server`: the model server with every prepackaged runtime (`--implementation`).

use clap::Parser;
use seldon_server::fallback::{self, FallbackArgs};
use seldon_server::{MLFLOW_SERVER, SKLEARN_SERVER, catalogue, local_path, mlflow};
use seldon_serving::config::{Config, parse_parameters};

#[derive(Debug, Parser)]
#[command(
    name = "seldon-server",
    about = "Seldon v1 + Open Inference Protocol v2 model server with the prepackaged runtimes"
)]
struct Args {
    #[command(flatten)]
    serving: Config,
    #[command(flatten)]
    fallback: FallbackArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = args.serving;
    if config.implementation == SKLEARN_SERVER || config.implementation == MLFLOW_SERVER {
        let parameters = parse_parameters(&config.parameters)?;
        let uri = config
            .model_uri
            .clone()
            .or_else(|| {
                parameters
                    .get("model_uri")
                    .and_then(|v| v.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "/mnt/models".into());
        let dir = local_path(&uri)?;
        // MLflow models only mlflow.pyfunc can run: Seldon v1's MLFlowServer in the wrapper
        if config.implementation == MLFLOW_SERVER {
            if let Some(reason) = mlflow::python_reason(&dir) {
                eprintln!(
                    "MLFLOW_SERVER: {}: {reason}; serving it with mlflow.pyfunc in the Python wrapper ({} {})",
                    dir.display(),
                    args.fallback.python_wrapper.display(),
                    fallback::MLFLOW_CLASS
                );
                let err = std::os::unix::process::CommandExt::exec(&mut fallback::command_for(
                    fallback::MLFLOW_CLASS,
                    &dir,
                    &config,
                    &args.fallback,
                    &dir,
                ));
                anyhow::bail!(
                    "starting the Python wrapper {} failed: {err}",
                    args.fallback.python_wrapper.display()
                );
            }
        } else if let Some(reason) = fallback::reason(&dir) {
            // No tracing subscriber yet (server::run installs it): plain stderr.
            eprintln!(
                "SKLEARN_SERVER: {reason}; serving {} with the Python wrapper ({} SKLearnServer) instead of ONNX Runtime",
                dir.display(),
                args.fallback.python_wrapper.display()
            );
            let err = std::os::unix::process::CommandExt::exec(&mut fallback::command(
                &config,
                &args.fallback,
                &dir,
            ));
            anyhow::bail!(
                "starting the Python wrapper {} failed: {err}",
                args.fallback.python_wrapper.display()
            );
        }
    }
    seldon_serving::server::run(config, &catalogue()).await?;
    Ok(())
}
