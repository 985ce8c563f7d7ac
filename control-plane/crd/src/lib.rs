//! `SeldonDeployment` (`machinelearning.seldon.io/v1`) CRD types embedding the graph types,
//! Seldon's defaulting, the CRD-level validation rules and the generated CRD.

pub mod crd;
pub mod defaults;
pub mod hpa;
pub mod names;
pub mod parse;
pub mod schema;
pub mod spec;
pub mod status;
pub mod v1_compat;
pub mod validate;

pub use crd::{crd, crd_yaml};
pub use defaults::{PortAllocation, apply_defaults};
pub use hpa::{MetricSpecV2Beta1, SeldonHpaSpec};
pub use parse::{ParseError, Parsed, parse_yaml};
pub use spec::{
    Explainer, KedaAuthenticationRef, KedaFallback, KedaTrigger, PredictorSpec, SeldonDeployment,
    SeldonDeploymentSpec, SeldonPdbSpec, SeldonPodSpec, SeldonScaledObjectSpec, ServerType, Ssl,
    SvcOrchSpec,
};
pub use status::{
    Addressable, Condition, DeploymentStatus, SeldonDeploymentStatus, ServiceStatus, State,
};
pub use validate::{Violation, validate};
