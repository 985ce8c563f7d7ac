//! The seldon-mesh operator: reconciles SeldonDeployments into owned Kubernetes and Istio objects and serves the validating webhook.

pub mod certs;
pub mod config;
pub mod leader;
pub mod metrics;
pub mod names;
pub mod owned;
pub mod reconcile;
pub mod run;
pub mod status;
pub mod validation;
pub mod webhook;

pub use config::{OperatorArgs, WebhookArgs};
pub use run::{main_operator, main_webhook, run_operator, run_webhook};
