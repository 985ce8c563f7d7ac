//! One module per subcommand, plus the options they share.

pub mod docs;
pub mod render;
pub mod up;
pub mod validate;

use std::path::PathBuf;

use anyhow::Context as _;
use seldon_render::{Catalogue, Ingress, NodeCalls, RenderOptions};

/// Ingress flag values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum IngressArg {
    Istio,
    Ambassador,
}

/// `--node-calls` values (`seldon_render::NodeCalls`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NodeCallsArg {
    /// Through the node's Service (Istio's outbound cluster): any replica, mTLS.
    Service,
    /// Nodes in the filter's own pod over 127.0.0.1 (a static cluster), like Seldon's executor.
    Localhost,
}

/// Options shared by `render` and `validate`.
#[derive(Debug, Clone, clap::Args)]
pub struct Shared {
    /// SeldonDeployment YAML file (one or more documents; `-` reads stdin).
    #[arg(short = 'f', long = "filename", env = "SELDON_FILE")]
    pub file: PathBuf,
    /// Prepackaged-server catalogue (default: the built-in manifests/catalogue.yaml).
    #[arg(long, env = "SELDON_CATALOGUE")]
    pub catalogue: Option<PathBuf>,
    /// Graph filter module, the WasmPlugin `url` (`oci://`, `https://` or `file://`; default
    /// `oci://ghcr.io/seldon-mesh/graph-filter:<version>`, what `make images` builds).
    #[arg(long, env = "SELDON_FILTER_URL")]
    pub filter_url: Option<String>,
    /// sha256 of the filter module (WasmPlugin `sha256`), checked by the sidecar after pulling.
    #[arg(long, env = "SELDON_FILTER_SHA256")]
    pub filter_sha256: Option<String>,
    /// Where the graph filter calls nodes in its own pod (default `localhost`); nodes in other
    /// pods always go through their Service. A `mesh.seldon.io/node-calls` annotation wins.
    #[arg(long, value_enum, env = "SELDON_NODE_CALLS")]
    pub node_calls: Option<NodeCallsArg>,
}

impl Shared {
    pub fn read_input(&self) -> anyhow::Result<String> {
        if self.file.as_os_str() == "-" {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)
                .context("reading stdin")?;
            return Ok(s);
        }
        std::fs::read_to_string(&self.file)
            .with_context(|| format!("reading {}", self.file.display()))
    }

    pub fn options(&self, ingress: IngressArg) -> anyhow::Result<RenderOptions> {
        let ingress = match ingress {
            IngressArg::Istio => Ingress::Istio,
            IngressArg::Ambassador => Ingress::Ambassador,
        };
        let mut opts = RenderOptions {
            ingress,
            ..RenderOptions::default()
        };
        if let Some(url) = &self.filter_url {
            seldon_render::check_filter_url(url)?;
            opts.filter_url.clone_from(url);
        }
        if self.filter_sha256.is_some() {
            opts.filter_sha256.clone_from(&self.filter_sha256);
        }
        match self.node_calls {
            Some(NodeCallsArg::Service) => opts.node_calls = NodeCalls::Service,
            Some(NodeCallsArg::Localhost) => opts.node_calls = NodeCalls::Localhost,
            None => {}
        }
        if let Some(path) = &self.catalogue {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            opts.catalogue =
                Catalogue::from_yaml(&text).with_context(|| format!("in {}", path.display()))?;
        }
        Ok(opts)
    }
}
