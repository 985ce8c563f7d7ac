//! The external API of a SeldonDeployment, as a client sees it through the gateway: one
//! OpenAPI 3.1 document (`openapi.yaml` beside this crate), its form for one deployment (the
//! one Swagger UI loads), Swagger UI's page, and a checker that validates real requests and
//! answers against the document.
//!
//! ```text
//!  openapi.yaml ──spec()──► for_deployment(Target) ──► /seldon/<ns>/<sdep>/api/v1.0/doc/openapi.json
//!        │                                               (served by `seldon-mesh up`, seldon_local::apidocs)
//!        └──────► check_response / check_request ◄── tests: real answers of the filter
//! ```
//!
//! Pure: no I/O. Serving lives in `seldon-local` (`apidocs` module).

mod check;
mod spec;
mod ui;

pub use check::{CheckError, check_request, check_response};
pub use spec::{SPEC_YAML, SpecError, Target, for_deployment, spec};
pub use ui::{
    DOC_PATH, INITIALIZER_JS, SWAGGER_UI_ASSETS, SWAGGER_UI_VERSION, asset_content_type, index_html,
};
