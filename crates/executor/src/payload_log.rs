//! Payload logging: each logged payload becomes a CloudEvent (HTTP binary mode, v1.0) POSTed
//! to the predictor's payload logger, as Seldon's executor does.
//!
//! The executor builds the call itself and hands it to `Host::send_later`: the host sends it
//! outside the request (the filter queues it to its root context), so logging never delays
//! or fails a prediction.

use seldon_graph::{Plan, Protocol};

use crate::host::Call;
use crate::names;

/// What a logged payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogKind {
    Request,
    Response,
    Feedback,
}

impl LogKind {
    /// The CloudEvent type Seldon uses.
    pub fn ce_type(self) -> &'static str {
        match self {
            LogKind::Request => "io.seldon.serving.inference.request",
            LogKind::Response => "io.seldon.serving.inference.response",
            LogKind::Feedback => "io.seldon.serving.feedback",
        }
    }
}

/// One payload to log.
#[derive(Debug, Clone, PartialEq)]
pub struct PayloadLog {
    /// The node whose request, response or feedback this is.
    pub node: String,
    pub kind: LogKind,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    /// The request's `Seldon-Puid`.
    pub puid: String,
}

/// The call that delivers `log` to the plan's payload logger (none configured → `None`).
/// `id` must be unique per event (a UUID).
pub fn cloudevent(plan: &Plan, log: &PayloadLog, id: String) -> Option<Call> {
    let logger = plan.payload_logger.as_ref()?;
    let protocol = match plan.protocol {
        Protocol::Seldon => "seldon",
        Protocol::Tensorflow => "tensorflow",
        Protocol::V2 => "v2",
    };
    let source = format!(
        "seldon-mesh://{}/{}/{}",
        plan.namespace, plan.deployment, plan.predictor
    );
    let headers = vec![
        ("ce-specversion".to_string(), "1.0".to_string()),
        ("ce-id".to_string(), id),
        ("ce-type".to_string(), log.kind.ce_type().to_string()),
        ("ce-source".to_string(), source),
        ("ce-modelid".to_string(), log.node.clone()),
        ("ce-requestid".to_string(), log.puid.clone()),
        (
            "ce-inferenceservicename".to_string(),
            plan.deployment.clone(),
        ),
        ("ce-namespace".to_string(), plan.namespace.clone()),
        ("ce-endpoint".to_string(), plan.predictor.clone()),
        ("ce-protocol".to_string(), protocol.to_string()),
        (
            "content-type".to_string(),
            log.content_type
                .clone()
                .unwrap_or_else(|| "application/json".into()),
        ),
        (names::PUID_HEADER.to_string(), log.puid.clone()),
    ];
    Some(Call {
        node: String::new(),
        cluster: logger.cluster.clone(),
        method: "POST",
        path: logger.path.clone(),
        authority: logger.authority.clone(),
        headers,
        body: Some(log.body.clone()),
        timeout_ms: logger.timeout_ms,
    })
}
