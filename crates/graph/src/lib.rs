//! Seldon inference graph types, the filter's `FilterConfig`, and `compile`, the one validator
//! that the filter, the operator, the webhook and the CLI all call.
//!
//! ```text
//!   SeldonDeployment.spec.predictors[].graph ──► PredictiveUnit (unit.rs, CRD-shaped)
//!                                                    │  + per-node upstreams, limits
//!                                                    ▼
//!                                              FilterConfig (config.rs, JSON on the wire)
//!                                                    │  compile()  ── GraphError (every problem, with its path)
//!                                                    ▼
//!                                              Plan (plan.rs: flat arena, behaviours resolved)
//! ```
//!
//! Pure: no I/O, no async, builds for `wasm32-wasip1`.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod config;
pub mod error;
pub mod plan;
pub mod unit;

pub use config::{FilterConfig, NodeUpstream, PayloadLogger, Protocol, Tracing, Transport};
pub use error::{GraphError, Problem, Rule};
pub use plan::{Capabilities, InputStep, NodeId, Plan, PlanNode, RouteStep, compile, compile_with};
pub use unit::{
    Endpoint, EndpointType, Implementation, Logger, LoggerMode, Parameter, ParameterType,
    PredictiveUnit, PredictiveUnitMethod, PredictiveUnitType,
};
