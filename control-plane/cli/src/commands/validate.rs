//! `seldon-mesh validate -f sdep.yaml`: every problem with its path — YAML syntax (line and
//! column), wrong types, unknown fields, Seldon's CRD rules and every `compile` error. Exit 1
//! on any problem.

use std::process::ExitCode;

use super::{IngressArg, Shared};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub shared: Shared,
    /// Validate for this ingress.
    #[arg(long, value_enum, default_value = "istio", env = "SELDON_INGRESS")]
    pub ingress: IngressArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = args.shared.read_input()?;
    let opts = args.shared.options(args.ingress)?;
    let file = args.shared.file.display().to_string();
    let docs = match seldon_crd::parse_yaml(&text) {
        Ok(docs) => docs,
        Err(e) => {
            println!("{file}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    let mut failed = false;
    for doc in docs {
        let name = doc.sdep.metadata.name.clone().unwrap_or_default();
        let mut problems: Vec<String> = doc
            .unknown_fields
            .iter()
            .map(|path| format!("{path}: unknown field (not part of SeldonDeployment; the API server would drop it)"))
            .collect();
        problems.extend(
            seldon_render::check(&doc.sdep, &opts)
                .iter()
                .map(ToString::to_string),
        );
        if problems.is_empty() {
            println!("{file}: SeldonDeployment {name:?} is valid");
        } else {
            failed = true;
            println!(
                "{file}: SeldonDeployment {name:?} has {} problem(s):",
                problems.len()
            );
            for p in problems {
                println!("  {p}");
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
