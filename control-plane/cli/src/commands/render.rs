//! `seldon-mesh render -f sdep.yaml [--ingress istio|ambassador] [--catalogue FILE]`.

use std::process::ExitCode;

use anyhow::Context as _;

use super::{IngressArg, Shared};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub shared: Shared,
    /// Which ingress routes external traffic.
    #[arg(long, value_enum, default_value = "istio", env = "SELDON_INGRESS")]
    pub ingress: IngressArg,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = args.shared.read_input()?;
    let opts = args.shared.options(args.ingress)?;
    let docs =
        seldon_crd::parse_yaml(&text).with_context(|| args.shared.file.display().to_string())?;
    let mut out = Vec::new();
    for doc in &docs {
        let name = doc.sdep.metadata.name.clone().unwrap_or_default();
        let manifests = seldon_render::render(&doc.sdep, &opts).with_context(|| {
            format!("SeldonDeployment {name:?} (run `seldon-mesh validate` for details)")
        })?;
        out.push(seldon_render::to_yaml(&manifests));
    }
    print!("{}", out.join("---\n"));
    Ok(ExitCode::SUCCESS)
}
