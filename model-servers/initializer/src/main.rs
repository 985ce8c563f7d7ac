//! `seldon-mesh-initializer <uri> <dest>`: the model init container's entrypoint.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use seldon_mesh_initializer::{Options, run, sklearn::Converter};

/// Copies a model URI into the model directory (Seldon's `rclone copy <modelUri> /mnt/models`).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// file:///path, /path, http(s)://host/file[.tar.gz|.tgz|.tar|.zip], s3://bucket/prefix, gs://bucket/prefix, az://container/prefix, https://<account>.blob.core.windows.net/<container>/prefix, or rclone's remote:bucket/prefix
    uri: String,
    /// Destination directory (created if missing).
    #[arg(default_value = "/mnt/models")]
    dest: PathBuf,
    /// Prepackaged server the model is for: SKLEARN_SERVER converts model.joblib to ONNX,
    /// XGBOOST_SERVER a legacy binary model.bst to model.ubj, TENSORFLOW_SERVER a SavedModel
    /// to model.onnx (with SELDON_TF_PYTHON's tf2onnx).
    #[arg(long, env = "SELDON_IMPLEMENTATION")]
    implementation: Option<String>,
    /// The runtime's sklearn → ONNX script; convert_xgboost.py and convert_tensorflow.py are
    /// looked for beside it.
    #[arg(
        long,
        env = "SELDON_SKLEARN_CONVERTER",
        default_value = "/opt/seldon-mesh/convert_sklearn.py"
    )]
    sklearn_converter: PathBuf,
    /// Python interpreter with scikit-learn, skl2onnx and onnxruntime.
    #[arg(long, env = "SELDON_PYTHON", default_value = "python3")]
    python: PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SELDON_LOG_LEVEL")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let opts = Options {
        uri: args.uri,
        dest: args.dest,
        implementation: args.implementation,
        converter: Converter {
            python: args.python,
            script: args.sklearn_converter,
        },
    };
    match run(&opts, &|k| std::env::var(k).ok()).await {
        Ok(s) => {
            tracing::info!(uri = %opts.uri, dest = %opts.dest.display(), files = s.files, bytes = s.bytes, unpacked = s.unpacked, converted = s.converted, "model copied");
            ExitCode::SUCCESS
        }
        Err(e) => {
            let e = anyhow::Error::from(e);
            eprintln!("seldon-mesh-initializer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
