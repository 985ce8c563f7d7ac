//! The validating admission webhook: AdmissionReview v1 in, allowed/denied out, over HTTPS.
//! The decision ([`review`]) is pure and calls the same validation `seldon-mesh validate`
//! uses; the server is axum on a rustls listener.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::names;

/// Validates one SeldonDeployment given as JSON; `Err` carries every problem, each naming
/// its path, in the words `seldon-mesh validate` prints.
pub type Validator = Arc<dyn Fn(&serde_json::Value) -> Result<(), Vec<String>> + Send + Sync>;

/// Decides one admission request. DELETE and requests without an object are allowed (there
/// is nothing to validate); anything else is validated whole.
pub fn review(req: &AdmissionRequest<DynamicObject>, validate: &Validator) -> AdmissionResponse {
    let resp = AdmissionResponse::from(req);
    if req.operation == Operation::Delete {
        return resp;
    }
    let Some(obj) = req.object.as_ref() else {
        return resp;
    };
    let value = match serde_json::to_value(obj) {
        Ok(v) => v,
        Err(e) => return resp.deny(format!("cannot read the object: {e}")),
    };
    match validate(&value) {
        Ok(()) => resp,
        Err(problems) => {
            let name = obj.metadata.name.as_deref().unwrap_or("<unnamed>");
            resp.deny(denial_message(name, &problems))
        }
    }
}

/// The message a denied user sees after `admission webhook "..." denied the request: `.
pub fn denial_message(name: &str, problems: &[String]) -> String {
    format!(
        "SeldonDeployment {name} is invalid: {}",
        problems.join("; ")
    )
}

/// The webhook's routes: the Seldon Core v1 path and `/healthz`.
pub fn router(validate: Validator) -> Router {
    Router::new()
        .route(names::WEBHOOK_PATH, post(handle))
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .with_state(validate)
}

async fn handle(
    State(validate): State<Validator>,
    body: Result<Json<AdmissionReview<DynamicObject>>, axum::extract::rejection::JsonRejection>,
) -> (StatusCode, Json<AdmissionReview<DynamicObject>>) {
    let review_in = match body {
        Ok(Json(r)) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(
                    AdmissionResponse::invalid(format!("not an AdmissionReview: {e}"))
                        .into_review(),
                ),
            );
        }
    };
    let req: AdmissionRequest<DynamicObject> = match review_in.try_into() {
        Ok(r) => r,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(AdmissionResponse::invalid(e.to_string()).into_review()),
            );
        }
    };
    let resp = review(&req, &validate);
    tracing::info!(
        uid = %req.uid,
        name = req.name.as_str(),
        namespace = req.namespace.as_deref().unwrap_or(""),
        allowed = resp.allowed,
        "admission review"
    );
    (StatusCode::OK, Json(resp.into_review()))
}

/// Serves `router` over TLS on `listener` until `shutdown` resolves; connections in flight
/// are finished first.
pub async fn serve_tls(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    router: Router,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let tracker = tokio_util_like::Tracker::default();
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => accepted?,
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let guard = tracker.guard();
        tokio::spawn(async move {
            let _guard = guard;
            let tls = match acceptor.accept(tcp).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
            };
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    tracker.wait().await;
    Ok(())
}

/// Counting in-flight connections for graceful shutdown without another dependency.
mod tokio_util_like {
    use std::sync::Arc;
    use tokio::sync::watch;

    #[derive(Debug)]
    pub struct Tracker {
        tx: watch::Sender<()>,
    }

    impl Default for Tracker {
        fn default() -> Self {
            Self {
                tx: watch::channel(()).0,
            }
        }
    }

    #[derive(Debug)]
    pub struct Guard(#[allow(dead_code)] Arc<watch::Receiver<()>>);

    impl Tracker {
        pub fn guard(&self) -> Guard {
            Guard(Arc::new(self.tx.subscribe()))
        }

        /// Resolves once every guard is dropped.
        pub async fn wait(&self) {
            self.tx.closed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(op: &str, object: serde_json::Value) -> AdmissionRequest<DynamicObject> {
        let review: AdmissionReview<DynamicObject> = serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u", "kind": {"group": "machinelearning.seldon.io", "version": "v1", "kind": "SeldonDeployment"},
                "resource": {"group": "machinelearning.seldon.io", "version": "v1", "resource": "seldondeployments"},
                "name": "x", "operation": op, "userInfo": {}, "object": object, "dryRun": false}
        }))
        .unwrap();
        review.try_into().unwrap()
    }

    fn validator(problems: &'static [&'static str]) -> Validator {
        Arc::new(move |_| {
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.iter().map(|s| (*s).to_string()).collect())
            }
        })
    }

    #[test]
    fn problems_deny_with_every_message_and_none_allow() {
        let obj = json!({"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment", "metadata": {"name": "x"}});
        let r = review(
            &request("CREATE", obj.clone()),
            &validator(&["a: 1", "b: 2"]),
        );
        assert!(!r.allowed);
        assert_eq!(
            r.result.message,
            "SeldonDeployment x is invalid: a: 1; b: 2"
        );
        assert!(review(&request("UPDATE", obj), &validator(&[])).allowed);
    }

    #[test]
    fn delete_is_never_validated() {
        assert!(review(&request("DELETE", json!(null)), &validator(&["never"])).allowed);
    }
}
