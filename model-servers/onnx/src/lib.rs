//! ONNX models served through ONNX Runtime (`ort`, library loaded at run time): Seldon's SKLEARN_SERVER on a converted `model.joblib`, and any ONNX graph.
//!
//! ```text
//!  init container:  model.joblib ──convert_sklearn.py──► model.onnx + conversion.json
//!                                   (or python-fallback.json → Python wrapper serves)
//!  seldon-server:   SklearnServer::new(dir, {method}) ─► inspect(dir) ─► OnnxSession (ort)
//!                   predict: Tensor ─► prepare (features, dtype → 400) ─► run ─► output of `method`
//! ```

pub mod error;
pub mod runtime;
pub mod session;
pub mod sklearn;

pub use error::OnnxError;
pub use runtime::RuntimeConfig;
pub use session::{ElemType, IoSpec, OnnxSession};
pub use sklearn::{Artifact, Conversion, Method, OnnxServer, SklearnServer, inspect};
