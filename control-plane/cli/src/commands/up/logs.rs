//! `seldon-mesh logs -f sdep.yaml <node>`: the log of one node of a local `up` (`envoy` for
//! Envoy's), its last `--lines` lines. A node is `<predictor>.<node>`, or `<node>` when only
//! one predictor has it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use seldon_local::RunState;

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The node (`<predictor>.<node>` or `<node>`), or `envoy`.
    pub node: String,
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
    /// How many lines from the end (0: the whole log).
    #[arg(short = 'n', long, default_value_t = 50)]
    pub lines: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let dir = workdir_of(args.file.as_deref(), args.workdir.as_deref())?;
    let state = RunState::read(&dir)?;
    let log = if args.node == "envoy" {
        state.envoy.log.clone()
    } else {
        state.node(&args.node)?.log.clone()
    };
    let text = std::fs::read(&log).with_context(|| format!("reading {}", log.display()))?;
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().collect();
    let from = if args.lines == 0 {
        0
    } else {
        lines.len().saturating_sub(args.lines)
    };
    eprintln!("==> {} <==", log.display());
    for line in &lines[from..] {
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `--workdir`, or the default work directory of the manifest's deployment.
pub fn workdir_of(file: Option<&Path>, workdir: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = workdir {
        return Ok(dir.to_path_buf());
    }
    let Some(file) = file else {
        anyhow::bail!("give the SeldonDeployment with -f, or the work directory with --workdir");
    };
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let Some(parsed) = seldon_crd::parse_yaml(&text)?.into_iter().next() else {
        anyhow::bail!("{} holds no SeldonDeployment", file.display());
    };
    super::default_workdir_of(&parsed.sdep)
}
