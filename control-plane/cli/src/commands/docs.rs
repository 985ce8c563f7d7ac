//! `seldon-mesh docs -f sdep.yaml --gateway URL`: Swagger UI for a SeldonDeployment that runs
//! in a cluster. Seldon's executor served it at `/seldon/<ns>/<sdep>/api/v1.0/doc/` inside the
//! predictor pod; our graph runs in the sidecar's filter, which serves no files. So this
//! command serves the page on this machine, in front of the cluster's ingress gateway (e.g.
//! `kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80`):
//!
//! ```text
//!  browser ─► 127.0.0.1:<port> (a local Envoy, seldon_local::apidocs::docs_proxy)
//!               /seldon/<ns>/<sdep>/api/v1.0/doc… ─► the docs server (in this process)
//!               /seldon/<ns>/<sdep>/…             ─► --gateway, path unchanged
//! ```
//!
//! The page and its "Try it out" requests share one origin, so no CORS is needed. Runs until
//! SIGINT, SIGTERM or SIGHUP, and stops its Envoy.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use seldon_local::apidocs::{DocsServer, docs_proxy, target_of};

use super::up::{StopSignals, default_swagger_ui};

#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// SeldonDeployment YAML file (the first document), as applied to the cluster.
    #[arg(short = 'f', long = "filename", env = "SELDON_FILE")]
    pub file: PathBuf,
    /// The cluster's ingress gateway, `http://HOST:PORT` (e.g. a `kubectl port-forward`).
    #[arg(long, env = "SELDON_GATEWAY")]
    pub gateway: String,
    /// Local port of the page (and of the requests it forwards).
    #[arg(long, default_value_t = 8001, env = "SELDON_DOCS_PORT")]
    pub port: u16,
    /// Swagger UI's files (see `seldon-mesh up --swagger-ui`).
    #[arg(long, value_name = "DIR", env = "SELDON_SWAGGER_UI_DIR")]
    pub swagger_ui: Option<PathBuf>,
}

/// `http://host[:port][/]` → (host, port).
fn gateway_address(url: &str) -> anyhow::Result<(String, u16)> {
    let Some(rest) = url.strip_prefix("http://") else {
        bail!("--gateway {url:?}: give http://HOST:PORT (the gateway's plain HTTP port)");
    };
    let authority = rest.trim_end_matches('/');
    if authority.is_empty() || authority.contains('/') {
        bail!("--gateway {url:?}: give http://HOST:PORT without a path");
    }
    Ok(match authority.rsplit_once(':') {
        Some((host, port)) => (
            host.to_string(),
            port.parse()
                .with_context(|| format!("--gateway {url:?}: bad port"))?,
        ),
        None => (authority.to_string(), 80),
    })
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let Some(parsed) = seldon_crd::parse_yaml(&text)?.into_iter().next() else {
        bail!("{} holds no SeldonDeployment", args.file.display());
    };
    let target = target_of(&parsed.sdep)?;
    let (host, port) = gateway_address(&args.gateway)?;
    let prefix = format!("/seldon/{}/{}/", target.namespace, target.deployment);
    let docs_listener = std::net::TcpListener::bind(("127.0.0.1", 0))?;
    let config = docs_proxy(
        &prefix,
        args.port,
        seldon_envoy::free_port()?,
        docs_listener.local_addr()?.port(),
        (&host, port),
    );
    let workdir = tempfile::tempdir()?;
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async move {
        let mut stop = StopSignals::new()?;
        let docs = DocsServer::serve(
            docs_listener,
            args.swagger_ui.clone().unwrap_or_else(default_swagger_ui),
            &target,
        )?;
        let envoy = tokio::select! {
            envoy = seldon_envoy::Envoy::start(config, workdir.path()) => envoy?,
            signal = stop.recv() => return Ok(signal.exit_code()),
        };
        println!(
            "swagger ui: http://127.0.0.1:{}{prefix}api/v1.0/doc/{}",
            args.port,
            if docs.assets_installed() {
                ""
            } else {
                "  (not installed: run scripts/setup-apidocs.sh)"
            }
        );
        println!(
            "requests from the page go to {}{prefix}…; Ctrl-C stops.",
            args.gateway.trim_end_matches('/')
        );
        let signal = stop.recv().await;
        drop(envoy);
        eprintln!("{signal}: stopped");
        Ok(signal.exit_code())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_plain_http_host_and_port() {
        assert_eq!(
            gateway_address("http://127.0.0.1:8080/").unwrap(),
            ("127.0.0.1".to_string(), 8080)
        );
        assert_eq!(
            gateway_address("http://gw.example").unwrap(),
            ("gw.example".to_string(), 80)
        );
        for bad in [
            "https://gw:443",
            "127.0.0.1:8080",
            "http://gw/seldon",
            "http://gw:x",
            "http://",
        ] {
            assert!(gateway_address(bad).is_err(), "{bad}");
        }
    }
}
