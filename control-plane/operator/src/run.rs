//! Entry points of the `operator` and `webhook` subcommands: wiring only (client, config,
//! servers, leader election, shutdown on SIGTERM/Ctrl-C).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::events::Reporter;
use kube::runtime::{Controller, watcher};
use kube::{Api, Client};
use seldon_crd::SeldonDeployment;
use tokio::net::TcpListener;

use crate::config::{self, OperatorArgs, WebhookArgs};
use crate::leader::LeaderElector;
use crate::metrics::{self, Metrics};
use crate::reconcile::{self, Context};
use crate::{certs, names, validation, webhook};

/// Why a subcommand stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Config unreadable.
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    /// No kubeconfig / in-cluster config.
    #[error("connecting to the Kubernetes API: {0}")]
    Client(#[source] kube::Error),
    /// Listening failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// Address.
        addr: std::net::SocketAddr,
        /// IO error.
        #[source]
        source: std::io::Error,
    },
    /// Leader election failed.
    #[error(transparent)]
    Leader(#[from] crate::leader::LeaderError),
    /// Certificates.
    #[error(transparent)]
    Cert(#[from] certs::CertError),
    /// The tokio runtime could not start.
    #[error("starting the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Reading a certificate directory.
    #[error("reading {path}: {source}")]
    CertDir {
        /// File.
        path: std::path::PathBuf,
        /// IO error.
        #[source]
        source: std::io::Error,
    },
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
    tracing::info!("shutdown requested");
}

/// Runs the controller until `shutdown` resolves (in-flight reconciles finish first).
pub async fn run_controller(
    client: Client,
    ctx: Arc<Context>,
    watch_namespace: Option<&str>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let (sdeps, deps, svcs) = match watch_namespace {
        Some(ns) => (
            Api::<SeldonDeployment>::namespaced(client.clone(), ns),
            Api::<Deployment>::namespaced(client.clone(), ns),
            Api::<Service>::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client.clone()),
        ),
    };
    // Only objects carrying the SeldonDeployment label are watched: a small cache.
    let owned = watcher::Config::default().labels(names::LABEL_SDEP_ID);
    Controller::new(sdeps, watcher::Config::default())
        .owns(deps, owned.clone())
        .owns(svcs, owned)
        .graceful_shutdown_on(shutdown)
        .run(reconcile::reconcile, reconcile::error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => {
                    tracing::debug!(sdep = %obj.name, ns = ?obj.namespace, "reconciled")
                }
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
}

/// `seldon-mesh operator`.
pub async fn run_operator(args: OperatorArgs) -> Result<(), RunError> {
    let client = Client::try_default().await.map_err(RunError::Client)?;
    run_operator_with(client, args, shutdown_signal()).await
}

/// The operator with a given client, until `shutdown` resolves: metrics server, leader
/// election (when enabled), then the controller while the lease is held.
pub async fn run_operator_with(
    client: Client,
    args: OperatorArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let options = config::load_render_options(args.config.as_deref())?;
    let metrics = Arc::new(Metrics::default());
    let listener = TcpListener::bind(args.metrics_addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.metrics_addr,
            source,
        })?;
    let metrics_router = metrics::router(metrics.clone());
    let metrics_task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, metrics_router).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    let ctx = Arc::new(Context {
        client: client.clone(),
        options,
        metrics,
        reporter: Reporter {
            controller: names::CONTROLLER_NAME.into(),
            instance: Some(args.pod_name.clone()),
        },
        resync: Duration::from_secs(args.resync_seconds),
    });
    // One shutdown signal, observed by the election wait, the renewal loop and the controller.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };

    if args.leader_election {
        let elector = LeaderElector::new(
            client.clone(),
            &args.pod_namespace,
            names::LEASE_NAME,
            &args.pod_name,
            Duration::from_secs(args.lease_duration_seconds),
        );
        tokio::select! {
            r = elector.acquire() => r?,
            () = stopped(stop_rx.clone()) => {
                metrics_task.abort();
                return Ok(());
            }
        }
        // Stop reconciling on shutdown or when the lease is lost (another replica takes over).
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
        let renew_stop = stop_rx.clone();
        let renew = tokio::spawn(async move {
            tokio::select! {
                r = elector.keep_renewing() => {
                    if let Err(e) = r { tracing::error!(error = %e, "lease renewal failed"); }
                }
                () = stopped(renew_stop) => {}
            }
            let _ = lost_tx.send(());
        });
        run_controller(client, ctx, args.watch_namespace.as_deref(), async move {
            let _ = lost_rx.await;
        })
        .await;
        renew.abort();
    } else {
        run_controller(
            client,
            ctx,
            args.watch_namespace.as_deref(),
            stopped(stop_rx),
        )
        .await;
    }
    metrics_task.abort();
    Ok(())
}

/// `seldon-mesh webhook`.
pub async fn run_webhook(args: WebhookArgs) -> Result<(), RunError> {
    let options = config::load_render_options(args.config.as_deref())?;
    let bundle = match &args.cert_dir {
        Some(dir) => {
            let read = |f: &str| {
                let path = dir.join(f);
                std::fs::read_to_string(&path).map_err(|source| RunError::CertDir { path, source })
            };
            certs::CertBundle {
                ca_pem: String::new(),
                cert_pem: read(certs::KEY_CERT)?,
                key_pem: read(certs::KEY_KEY)?,
            }
        }
        None => {
            let client = Client::try_default().await.map_err(RunError::Client)?;
            let dns = certs::service_dns_names(&args.service, &args.namespace);
            let bundle =
                certs::ensure_secret(client.clone(), &args.namespace, &args.cert_secret, &dns)
                    .await?;
            certs::patch_ca_bundle(client, &args.config_name, &bundle.ca_pem).await?;
            bundle
        }
    };
    let tls = certs::server_config(&bundle)?;
    let listener = TcpListener::bind(args.addr)
        .await
        .map_err(|source| RunError::Listen {
            addr: args.addr,
            source,
        })?;
    tracing::info!(addr = %args.addr, path = names::WEBHOOK_PATH, "webhook listening");
    webhook::serve_tls(
        listener,
        tls,
        webhook::router(validation::validator(options)),
        shutdown_signal(),
    )
    .await
    .map_err(|source| RunError::Listen {
        addr: args.addr,
        source,
    })
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .json()
        .try_init();
}

fn runtime() -> Result<tokio::runtime::Runtime, RunError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

/// What `seldon-mesh operator` calls: JSON logs (`RUST_LOG`), a tokio runtime, the operator.
pub fn main_operator(args: OperatorArgs) -> Result<(), RunError> {
    init_tracing();
    runtime()?.block_on(run_operator(args))
}

/// What `seldon-mesh webhook` calls.
pub fn main_webhook(args: WebhookArgs) -> Result<(), RunError> {
    init_tracing();
    runtime()?.block_on(run_webhook(args))
}
