//! Process edge: load the model, bind the three ports, serve until shutdown (SIGTERM/Ctrl-C).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::catalogue::{Catalogue, LoadContext};
use crate::config::{Config, ConfigError, parse_parameters};
use crate::error::ModelError;
use crate::metadata::{MetadataError, MetadataOverride};
use crate::model::Model;
use crate::otel::{Edge, Otel, OtelError};
use crate::service::Service;

/// Why the server did not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("binding {what} port {addr} failed: {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{what} server failed: {reason}")]
    Serve { what: &'static str, reason: String },
    #[error("tracing: {0}")]
    Tracing(#[from] OtelError),
    #[error(transparent)]
    Metadata(#[from] MetadataError),
}

/// The user's metadata (`MODEL_METADATA` over `<model_uri>/metadata.yaml`), checked.
pub fn metadata_override(config: &Config) -> Result<MetadataOverride, StartError> {
    let parameters = parse_parameters(&config.parameters)?;
    let uri = config.model_uri(&parameters);
    Ok(crate::metadata::load(
        config.model_metadata.as_deref(),
        Some(std::path::Path::new(&uri)),
    )?)
}

/// Builds the model from the catalogue and runs `load`.
pub async fn load_model(
    config: &Config,
    catalogue: &Catalogue,
) -> Result<Arc<dyn Model>, StartError> {
    let parameters = parse_parameters(&config.parameters)?;
    let model_uri = config.model_uri(&parameters);
    let ctx = LoadContext {
        model_uri,
        parameters,
    };
    let mut model = catalogue.create(&config.implementation, &ctx)?;
    tracing::info!(implementation = %config.implementation, model_uri = %ctx.model_uri, "loading model");
    model.load().await?;
    Ok(Arc::from(model))
}

/// Bound listeners, ready to serve; the addresses are known (tests bind port 0).
#[derive(Debug)]
pub struct Bound {
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: SocketAddr,
    http: TcpListener,
    grpc: TcpListener,
    metrics: TcpListener,
    service: Service,
    config: Config,
    otel: Option<Otel>,
}

async fn bind(what: &'static str, config: &Config, port: u16) -> Result<TcpListener, StartError> {
    let addr = SocketAddr::new(config.bind, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { what, addr, source })
}

/// Binds the HTTP, gRPC and metrics ports for `model`, and sets up span export when
/// `config.otlp_endpoint` is set. Invalid user metadata fails here, before any port is bound.
pub async fn bind_all(config: Config, model: Arc<dyn Model>) -> Result<Bound, StartError> {
    let user_metadata = metadata_override(&config)?;
    let otel = Otel::from_config(&config)?;
    let http = bind("http", &config, config.http_port).await?;
    let grpc = bind("grpc", &config, config.grpc_port).await?;
    let metrics = bind("metrics", &config, config.metrics_port).await?;
    let local = |l: &TcpListener, what, port| {
        l.local_addr().map_err(|source| StartError::Bind {
            what,
            addr: SocketAddr::new(config.bind, port),
            source,
        })
    };
    let service = Service::new(model, &config).with_metadata(user_metadata);
    if let Some(otel) = &otel {
        for (name, help, counter) in otel.stats().counters() {
            service.metrics.register_counter(name, help, counter);
        }
    }
    Ok(Bound {
        http_addr: local(&http, "http", config.http_port)?,
        grpc_addr: local(&grpc, "grpc", config.grpc_port)?,
        metrics_addr: local(&metrics, "metrics", config.metrics_port)?,
        service,
        http,
        grpc,
        metrics,
        config,
        otel,
    })
}

impl Bound {
    /// Serves until `shutdown` resolves, then drains in-flight requests on all ports and
    /// exports the spans still queued.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = tx.send(true);
        });
        let wait = |mut rx: watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let spans = self.otel.as_ref().map(Otel::spans);
        let mut rest = crate::rest::app(self.service.clone(), self.config.max_body_bytes);
        if let Some(spans) = &spans {
            rest = rest.layer(spans.on(Edge::Rest));
        }
        let metrics_service = self.service.metrics.clone();
        let metrics_app = axum::Router::new().route(
            &self.config.metrics_path,
            get(move || {
                let m = metrics_service.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        m.encode(),
                    )
                }
            }),
        );
        let grpc_routes = crate::grpc::routes(self.service.clone(), self.config.max_body_bytes);
        tracing::info!(http = %self.http_addr, grpc = %self.grpc_addr, metrics = %self.metrics_addr, "serving");

        // hyper's own refusals of a malformed request head answer JSON too (parse_errors.rs)
        let http = axum::serve(crate::parse_errors::JsonParseErrors(self.http), rest)
            .with_graceful_shutdown(wait(rx.clone()));
        let metrics =
            axum::serve(self.metrics, metrics_app).with_graceful_shutdown(wait(rx.clone()));
        // without tracing, `option_layer` is the bare routes: no span code on the path
        let grpc = tonic::transport::Server::builder()
            .layer(tower::util::option_layer(
                spans.as_ref().map(|s| s.on(Edge::Grpc)),
            ))
            .add_routes(grpc_routes)
            .serve_with_incoming_shutdown(grpc_incoming(self.grpc), wait(rx));
        let (h, m, g) = tokio::join!(http, metrics, grpc);
        if let Some(otel) = self.otel {
            otel.shutdown().await;
        }
        h.map_err(|e| StartError::Serve {
            what: "http",
            reason: e.to_string(),
        })?;
        m.map_err(|e| StartError::Serve {
            what: "metrics",
            reason: e.to_string(),
        })?;
        g.map_err(|e| StartError::Serve {
            what: "grpc",
            reason: e.to_string(),
        })?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Accepted gRPC connections with `TCP_NODELAY`: tonic applies its own `tcp_nodelay` only to
/// listeners it binds itself, and without it small replies wait for delayed ACKs (~40 ms each).
fn grpc_incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt as _;
    tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        if let Ok(stream) = &conn {
            let _ = stream.set_nodelay(true);
        }
        conn
    })
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
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown signal received, draining");
}

/// What a server binary's `main` calls: parse config, init logging, load, serve.
pub async fn run(config: Config, catalogue: &Catalogue) -> Result<(), StartError> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log_level)
                .unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    // bad metadata is reported before a (possibly long) model load, not after it
    metadata_override(&config)?;
    let model = load_model(&config, catalogue).await?;
    bind_all(config, model)
        .await?
        .serve(shutdown_signal())
        .await
}
