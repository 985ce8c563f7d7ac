//! Local mode's control plane: an ADS server (state of the world, gRPC) that serves the
//! listeners and clusters of an [`EnvoyConfig`] to an Envoy started with
//! [`crate::Envoy::start_xds`].
//!
//! The resources are the JSON values of [`crate::resources`], the same ones a static
//! bootstrap holds, turned into protobuf through a descriptor pool of the vendored Envoy
//! protos (`proto/`, compiled by `build.rs`): one definition of each listener and cluster.
//!
//! A push waits for Envoy's answer: an ACK, or a NACK whose `error_detail` becomes
//! [`XdsError::Rejected`]. After a NACK Envoy keeps serving what it had.
//!
//! ```text
//!  push_clusters(v) ──► watch ──► ADS stream ──► Envoy ──ACK/NACK(nonce)──► ack channel ──► push returns
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_server::{
    AggregatedDiscoveryService, AggregatedDiscoveryServiceServer,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;

use crate::config::EnvoyConfig;
use crate::render::resources;

/// `type_url` of listeners (LDS).
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// `type_url` of clusters (CDS).
pub const CLUSTER_TYPE: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

/// How long a push waits for Envoy's ACK or NACK.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// What can go wrong serving xDS.
#[derive(Debug, thiserror::Error)]
pub enum XdsError {
    #[error(transparent)]
    Envoy(#[from] crate::EnvoyError),
    #[error("{kind} {name:?} does not fit Envoy's API ({detail}); this is a bug in the renderer")]
    Encode {
        kind: &'static str,
        name: String,
        detail: String,
    },
    #[error("Envoy rejected the {kind} of version {version}: {detail}")]
    Rejected {
        kind: &'static str,
        version: u64,
        detail: String,
    },
    #[error("Envoy did not answer the {kind} of version {version} within {secs} s")]
    NoAnswer {
        kind: &'static str,
        version: u64,
        secs: u64,
    },
    #[error("binding the xDS server to 127.0.0.1")]
    Bind(#[source] std::io::Error),
}

/// The descriptor pool of the vendored Envoy protos.
static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(
        include_bytes!(concat!(env!("OUT_DIR"), "/envoy_descriptors.bin")).as_slice(),
    )
    .expect("build.rs wrote a valid FileDescriptorSet")
});

/// `value` (protobuf JSON of `message`, e.g. `envoy.config.cluster.v3.Cluster`) as an `Any`.
/// Unknown fields are an error, so a typo in the renderer is caught here, not by Envoy.
pub fn to_any(message: &str, value: &Value) -> Result<Any, XdsError> {
    let kind = kind_of(message);
    let name = value
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let descriptor = POOL
        .get_message_by_name(message)
        .ok_or_else(|| XdsError::Encode {
            kind,
            name: name.clone(),
            detail: format!("no message {message} in the vendored protos"),
        })?;
    let dynamic =
        DynamicMessage::deserialize(descriptor, value.clone()).map_err(|e| XdsError::Encode {
            kind,
            name,
            detail: e.to_string(),
        })?;
    Ok(Any {
        type_url: format!("type.googleapis.com/{message}"),
        value: dynamic.encode_to_vec(),
    })
}

fn kind_of(message_or_type: &str) -> &'static str {
    if message_or_type.ends_with("listener.v3.Listener") {
        "listeners"
    } else if message_or_type.ends_with("cluster.v3.Cluster") {
        "clusters"
    } else {
        "resources"
    }
}

/// One type's state of the world.
#[derive(Debug, Default)]
struct Snapshot {
    version: u64,
    resources: Vec<Any>,
}

/// Envoy's answer to one response.
#[derive(Debug, Clone)]
struct Answer {
    type_url: String,
    version: u64,
    /// `Some(error_detail)` for a NACK.
    rejected: Option<String>,
}

#[derive(Debug)]
struct Shared {
    clusters: watch::Sender<Arc<Snapshot>>,
    listeners: watch::Sender<Arc<Snapshot>>,
    answers: broadcast::Sender<Answer>,
}

/// The ADS server; stops serving when dropped.
#[derive(Debug)]
pub struct XdsServer {
    port: u16,
    shared: Arc<Shared>,
    version: u64,
    task: tokio::task::JoinHandle<()>,
    /// Subscribed before any Envoy could connect, so Envoy's answers to the first snapshot
    /// (version 1) are kept for [`XdsServer::initial_config_accepted`].
    first_answers: broadcast::Receiver<Answer>,
}

impl Drop for XdsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl XdsServer {
    /// Binds 127.0.0.1 on a free port and serves `config`'s listeners and clusters (version 1)
    /// to whichever Envoy connects.
    pub async fn start(config: &EnvoyConfig) -> Result<Self, XdsError> {
        let (listeners, clusters) = encode(config)?;
        let snapshot = |resources| {
            Arc::new(Snapshot {
                version: 1,
                resources,
            })
        };
        let (answers, first_answers) = broadcast::channel(64);
        let shared = Arc::new(Shared {
            clusters: watch::Sender::new(snapshot(clusters)),
            listeners: watch::Sender::new(snapshot(listeners)),
            answers,
        });
        let socket = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(XdsError::Bind)?;
        let port = socket.local_addr().map_err(XdsError::Bind)?.port();
        let service = AggregatedDiscoveryServiceServer::new(Ads {
            shared: shared.clone(),
        });
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(socket);
        let task = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await;
        });
        Ok(Self {
            port,
            shared,
            version: 1,
            task,
            first_answers,
        })
    }

    /// Waits for Envoy's answers to the first snapshot (the config [`XdsServer::start`]
    /// serves): `Ok` once it ACKed both the clusters and the listeners, [`XdsError::Rejected`]
    /// with Envoy's `error_detail` if it NACKed either (e.g. a listener that cannot bind its
    /// port). Envoy reports itself ready even when a listener failed, so a caller that needs
    /// every listener checks this. Call once, after Envoy connected.
    pub async fn initial_config_accepted(&mut self) -> Result<(), XdsError> {
        let mut pending = vec![CLUSTER_TYPE, LISTENER_TYPE];
        let answers = &mut self.first_answers;
        let wait = async {
            while !pending.is_empty() {
                match answers.recv().await {
                    Ok(a) if a.version == 1 && pending.contains(&a.type_url.as_str()) => {
                        if let Some(detail) = a.rejected {
                            return Err(XdsError::Rejected {
                                kind: kind_of(&a.type_url),
                                version: 1,
                                detail,
                            });
                        }
                        pending.retain(|t| *t != a.type_url);
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_))
                    | Err(broadcast::error::RecvError::Closed) => {
                        return Err(XdsError::NoAnswer {
                            kind: kind_of(pending[0]),
                            version: 1,
                            secs: 0,
                        });
                    }
                }
            }
            Ok(())
        };
        tokio::time::timeout(ACK_TIMEOUT, wait)
            .await
            .unwrap_or(Err(XdsError::NoAnswer {
                kind: "listeners",
                version: 1,
                secs: ACK_TIMEOUT.as_secs(),
            }))
    }

    /// The port Envoy's `xds` cluster points at.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves `config`'s clusters, plus `keep` (clusters the listeners Envoy still runs may
    /// use), and waits for Envoy's ACK. A NACK is [`XdsError::Rejected`] with Envoy's
    /// `error_detail`; Envoy then keeps the clusters it had.
    pub async fn push_clusters(
        &mut self,
        config: &EnvoyConfig,
        keep: &EnvoyConfig,
    ) -> Result<u64, XdsError> {
        let (_, mut clusters) = encode(config)?;
        let names: Vec<&str> = config.clusters.iter().map(|c| c.name.as_str()).collect();
        let limited = EnvoyConfig {
            listeners: Vec::new(),
            clusters: keep
                .clusters
                .iter()
                .filter(|c| !names.contains(&c.name.as_str()))
                .cloned()
                .collect(),
            ..keep.clone()
        };
        let (_, kept) = encode(&limited)?;
        clusters.extend(kept);
        self.push(CLUSTER_TYPE, clusters).await
    }

    /// Serves `config`'s listeners and waits for Envoy's ACK (see [`Self::push_clusters`]).
    /// Envoy drains a replaced listener's connections; requests in flight on it finish.
    pub async fn push_listeners(&mut self, config: &EnvoyConfig) -> Result<u64, XdsError> {
        let (listeners, _) = encode(config)?;
        self.push(LISTENER_TYPE, listeners).await
    }

    async fn push(&mut self, type_url: &str, resources: Vec<Any>) -> Result<u64, XdsError> {
        self.version += 1;
        let version = self.version;
        let mut answers = self.shared.answers.subscribe();
        let sender = if type_url == CLUSTER_TYPE {
            &self.shared.clusters
        } else {
            &self.shared.listeners
        };
        sender.send_replace(Arc::new(Snapshot { version, resources }));
        let kind = kind_of(type_url);
        let wait = async {
            loop {
                match answers.recv().await {
                    Ok(a) if a.type_url == type_url && a.version == version => {
                        return match a.rejected {
                            None => Ok(version),
                            Some(detail) => Err(XdsError::Rejected {
                                kind,
                                version,
                                detail,
                            }),
                        };
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(XdsError::NoAnswer {
                            kind,
                            version,
                            secs: 0,
                        });
                    }
                }
            }
        };
        tokio::time::timeout(ACK_TIMEOUT, wait)
            .await
            .unwrap_or(Err(XdsError::NoAnswer {
                kind,
                version,
                secs: ACK_TIMEOUT.as_secs(),
            }))
    }
}

/// `config`'s listeners and clusters as `Any`s.
fn encode(config: &EnvoyConfig) -> Result<(Vec<Any>, Vec<Any>), XdsError> {
    let r = resources(config)?;
    let listeners = r
        .listeners
        .iter()
        .map(|l| to_any("envoy.config.listener.v3.Listener", l))
        .collect::<Result<_, _>>()?;
    let clusters = r
        .clusters
        .iter()
        .map(|c| to_any("envoy.config.cluster.v3.Cluster", c))
        .collect::<Result<_, _>>()?;
    Ok((listeners, clusters))
}

#[derive(Debug)]
struct Ads {
    shared: Arc<Shared>,
}

type Responses = Pin<Box<dyn Stream<Item = Result<DiscoveryResponse, tonic::Status>> + Send>>;
type DeltaResponses =
    Pin<Box<dyn Stream<Item = Result<DeltaDiscoveryResponse, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl AggregatedDiscoveryService for Ads {
    type StreamAggregatedResourcesStream = Responses;
    type DeltaAggregatedResourcesStream = DeltaResponses;

    async fn stream_aggregated_resources(
        &self,
        request: tonic::Request<tonic::Streaming<DiscoveryRequest>>,
    ) -> Result<tonic::Response<Responses>, tonic::Status> {
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(serve_stream(self.shared.clone(), inbound, tx));
        Ok(tonic::Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn delta_aggregated_resources(
        &self,
        _request: tonic::Request<tonic::Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<tonic::Response<DeltaResponses>, tonic::Status> {
        Err(tonic::Status::unimplemented(
            "seldon-mesh up serves state-of-the-world ADS only",
        ))
    }
}

/// One ADS stream: answers each type's first request with its current snapshot, sends every
/// new snapshot of a subscribed type, and reports ACKs and NACKs by the nonce they answer.
async fn serve_stream(
    shared: Arc<Shared>,
    mut inbound: tonic::Streaming<DiscoveryRequest>,
    tx: mpsc::Sender<Result<DiscoveryResponse, tonic::Status>>,
) {
    let mut clusters = shared.clusters.subscribe();
    let mut listeners = shared.listeners.subscribe();
    let (mut cds, mut lds) = (false, false);
    // nonce → (type_url, version)
    let mut sent: HashMap<String, (String, u64)> = HashMap::new();
    let mut nonce = 0u64;
    let mut respond =
        |sent: &mut HashMap<String, (String, u64)>, type_url: &str, snapshot: &Snapshot| {
            nonce += 1;
            sent.insert(nonce.to_string(), (type_url.to_string(), snapshot.version));
            DiscoveryResponse {
                version_info: snapshot.version.to_string(),
                resources: snapshot.resources.clone(),
                type_url: type_url.to_string(),
                nonce: nonce.to_string(),
                ..Default::default()
            }
        };
    loop {
        let response = tokio::select! {
            request = inbound.message() => {
                let Ok(Some(request)) = request else { return };
                let Some(rx) = (match request.type_url.as_str() {
                    CLUSTER_TYPE => Some(&mut clusters),
                    LISTENER_TYPE => Some(&mut listeners),
                    _ => None,
                }) else {
                    continue;
                };
                if request.response_nonce.is_empty() {
                    // A first request (also after a reconnect): the current state.
                    if request.type_url == CLUSTER_TYPE { cds = true } else { lds = true }
                    let snapshot = rx.borrow_and_update().clone();
                    respond(&mut sent, &request.type_url, &snapshot)
                } else {
                    if let Some((type_url, version)) = sent.remove(&request.response_nonce) {
                        let _ = shared.answers.send(Answer {
                            type_url,
                            version,
                            rejected: request.error_detail.map(|s| s.message),
                        });
                    }
                    continue;
                }
            }
            Ok(()) = clusters.changed(), if cds => {
                let snapshot = clusters.borrow_and_update().clone();
                respond(&mut sent, CLUSTER_TYPE, &snapshot)
            }
            Ok(()) = listeners.changed(), if lds => {
                let snapshot = listeners.borrow_and_update().clone();
                respond(&mut sent, LISTENER_TYPE, &snapshot)
            }
        };
        if tx.send(Ok(response)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rendered_resources_become_protobuf() {
        let mut config = EnvoyConfig::new(9901);
        config
            .clusters
            .push(crate::Cluster::http1("c", "127.0.0.1", 9000));
        config.listeners.push(crate::Listener {
            name: "l".into(),
            port: 9001,
            kind: crate::ListenerKind::Route {
                cluster: "c".into(),
                prefix_rewrite: None,
                timeout: Some(Duration::ZERO),
            },
        });
        let (listeners, clusters) = encode(&config).unwrap();
        assert_eq!(listeners[0].type_url, LISTENER_TYPE);
        assert_eq!(clusters[0].type_url, CLUSTER_TYPE);
        let cluster = envoy_types::pb::envoy::config::cluster::v3::Cluster::decode(
            clusters[0].value.as_slice(),
        )
        .unwrap();
        assert_eq!(cluster.name, "c");
        assert_eq!(cluster.connect_timeout.unwrap().seconds, 1);
    }

    #[test]
    fn a_field_envoy_does_not_have_is_an_encode_error() {
        let err = to_any(
            "envoy.config.cluster.v3.Cluster",
            &json!({ "name": "c", "conect_timeout": "1s" }),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("clusters \"c\"") && text.contains("conect_timeout"),
            "{text}"
        );
        assert!(to_any("no.such.Message", &json!({})).is_err());
    }
}
