//! Implementation key → model factory: how runtime crates plug into the one binary.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::builtin::{IdentityModel, SumModel};
use crate::error::ModelError;
use crate::model::Model;

/// What a factory gets: where the artifact is and the unit's typed parameters.
#[derive(Debug, Clone, Default)]
pub struct LoadContext {
    /// `--model-uri`, else the `model_uri` parameter, else `/mnt/models`.
    pub model_uri: String,
    pub parameters: BTreeMap<String, Value>,
}

/// Builds an (unloaded) model; [`Model::load`] runs afterwards.
pub type Factory = fn(&LoadContext) -> Result<Box<dyn Model>, ModelError>;

/// The runtimes one binary knows, by Seldon implementation key.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    factories: BTreeMap<String, Factory>,
}

impl Catalogue {
    /// An empty catalogue.
    pub fn new() -> Self {
        Self::default()
    }

    /// `SUM_MODEL` and `IDENTITY_MODEL`.
    pub fn builtin() -> Self {
        Self::new()
            .with("SUM_MODEL", |_| Ok(Box::new(SumModel::default())))
            .with("IDENTITY_MODEL", |_| Ok(Box::new(IdentityModel)))
    }

    /// Adds (or replaces) a runtime.
    pub fn with(mut self, key: &str, factory: Factory) -> Self {
        self.factories.insert(key.to_string(), factory);
        self
    }

    /// Builds the model for `key`.
    pub fn create(&self, key: &str, ctx: &LoadContext) -> Result<Box<dyn Model>, ModelError> {
        let factory = self.factories.get(key).ok_or_else(|| {
            ModelError::Load(format!(
                "unknown implementation `{key}` (known: {})",
                self.factories
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        factory(ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_key_lists_known_ones() {
        let err = Catalogue::builtin()
            .create("NOPE", &LoadContext::default())
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "loading the model failed: unknown implementation `NOPE` (known: IDENTITY_MODEL, SUM_MODEL)"
        );
        assert!(
            Catalogue::builtin()
                .create("SUM_MODEL", &LoadContext::default())
                .is_ok()
        );
    }
}
