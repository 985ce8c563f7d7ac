//! The kinds the operator owns, and the pure decisions about them: stamping ownership on
//! the desired set, and choosing what to prune. The install ClusterRole lists exactly
//! these kinds (checked by a test against `manifests/operator/rbac.yaml`).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::core::TypeMeta;
use serde_json::Value;

use crate::names;

/// One kind the operator creates and owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnedKind {
    /// API group (`""` for core).
    pub group: &'static str,
    /// API version.
    pub version: &'static str,
    /// Kind.
    pub kind: &'static str,
    /// Resource (plural), as RBAC and URLs name it.
    pub plural: &'static str,
    /// Traffic-routing kinds are applied only once the model Deployments are available
    /// (Seldon Core #1461: routing to pods that are not ready yet gives 503s).
    pub routing: bool,
}

impl OwnedKind {
    /// `group/version` or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The kube-rs description used to build a dynamic `Api`.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk(self.group, self.version, self.kind),
            self.plural,
        )
    }
}

const fn k(
    group: &'static str,
    version: &'static str,
    kind: &'static str,
    plural: &'static str,
    routing: bool,
) -> OwnedKind {
    OwnedKind {
        group,
        version,
        kind,
        plural,
        routing,
    }
}

/// Everything `seldon_render::render` can emit. Order is apply order: workloads first,
/// then what selects them, then routing.
pub const OWNED_KINDS: &[OwnedKind] = &[
    k("", "v1", "ConfigMap", "configmaps", false),
    k("apps", "v1", "Deployment", "deployments", false),
    k("", "v1", "Service", "services", false),
    k(
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        false,
    ),
    k(
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        false,
    ),
    k(
        "keda.sh",
        "v1alpha1",
        "ScaledObject",
        "scaledobjects",
        false,
    ),
    k(
        "extensions.istio.io",
        "v1alpha1",
        "WasmPlugin",
        "wasmplugins",
        false,
    ),
    k(
        "extensions.istio.io",
        "v1alpha1",
        "TrafficExtension",
        "trafficextensions",
        false,
    ),
    k(
        "networking.istio.io",
        "v1alpha3",
        "EnvoyFilter",
        "envoyfilters",
        false,
    ),
    k(
        "networking.istio.io",
        "v1",
        "DestinationRule",
        "destinationrules",
        true,
    ),
    k(
        "networking.istio.io",
        "v1",
        "VirtualService",
        "virtualservices",
        true,
    ),
    k("getambassador.io", "v3alpha1", "Mapping", "mappings", true),
];

/// Looks a kind up by `apiVersion` and `kind`.
pub fn owned_kind(api_version: &str, kind: &str) -> Option<&'static OwnedKind> {
    OWNED_KINDS
        .iter()
        .find(|k| k.kind == kind && k.api_version() == api_version)
}

/// Identity of an object within one namespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjKey {
    /// `apiVersion`.
    pub api_version: String,
    /// `kind`.
    pub kind: String,
    /// `metadata.name`.
    pub name: String,
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.kind, self.name)
    }
}

impl ObjKey {
    /// Key of a typed-as-dynamic object (empty strings where fields are missing).
    pub fn of(obj: &DynamicObject) -> Self {
        let (api_version, kind) = obj
            .types
            .as_ref()
            .map(|t| (t.api_version.clone(), t.kind.clone()))
            .unwrap_or_default();
        Self {
            api_version,
            kind,
            name: obj.metadata.name.clone().unwrap_or_default(),
        }
    }
}

/// Why a rendered object can't be applied by the operator.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DesiredError {
    /// The object is not valid Kubernetes object JSON.
    #[error("rendered object #{index} is not a Kubernetes object: {reason}")]
    NotAnObject {
        /// Position in the render output.
        index: usize,
        /// serde's message.
        reason: String,
    },
    /// Render produced a kind the operator has no RBAC for and would never prune.
    #[error("rendered object {0} is of a kind the operator does not own")]
    UnownedKind(ObjKey),
    /// Render produced the same object twice.
    #[error("rendered object {0} appears twice")]
    Duplicate(ObjKey),
}

/// Turns render output into the objects to apply: in `namespace`, labelled with
/// `seldon-deployment-id` (Seldon's id of `sdep_name`: the name up to 63 characters, else
/// `seldon-<md5>`, as render labels them), controller-owned by `owner`; sorted in
/// [`OWNED_KINDS`] order.
pub fn prepare_desired(
    rendered: Vec<Value>,
    namespace: &str,
    sdep_name: &str,
    owner: &OwnerReference,
) -> Result<Vec<DynamicObject>, DesiredError> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(rendered.len());
    for (index, value) in rendered.into_iter().enumerate() {
        let mut obj: DynamicObject =
            serde_json::from_value(value).map_err(|e| DesiredError::NotAnObject {
                index,
                reason: e.to_string(),
            })?;
        let key = ObjKey::of(&obj);
        if key.name.is_empty() || obj.types.is_none() {
            return Err(DesiredError::NotAnObject {
                index,
                reason: "apiVersion, kind and metadata.name are required".into(),
            });
        }
        if owned_kind(&key.api_version, &key.kind).is_none() {
            return Err(DesiredError::UnownedKind(key));
        }
        if !seen.insert(key.clone()) {
            return Err(DesiredError::Duplicate(key));
        }
        obj.metadata.namespace = Some(namespace.to_string());
        let labels = obj.metadata.labels.get_or_insert_with(BTreeMap::new);
        labels.insert(
            names::LABEL_SDEP_ID.into(),
            seldon_crd::names::sdep_id(sdep_name),
        );
        labels
            .entry(names::LABEL_MANAGED_BY.into())
            .or_insert_with(|| names::MANAGED_BY.into());
        // Server-side apply must not carry these: they belong to the API server.
        obj.metadata.resource_version = None;
        obj.metadata.uid = None;
        obj.metadata.creation_timestamp = None;
        obj.metadata.managed_fields = None;
        obj.metadata.owner_references = Some(vec![owner.clone()]);
        out.push(obj);
    }
    out.sort_by_key(|o| {
        let key = ObjKey::of(o);
        let rank = OWNED_KINDS
            .iter()
            .position(|k| k.kind == key.kind && k.api_version() == key.api_version)
            .unwrap_or(usize::MAX);
        (rank, key.name)
    });
    Ok(out)
}

/// Is `obj` controlled by the owner with `owner_uid`?
pub fn is_owned_by(obj: &DynamicObject, owner_uid: &str) -> bool {
    obj.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|r| r.uid == owner_uid && r.controller == Some(true))
}

/// The objects among `existing` that the owner controls but that are no longer desired.
/// Objects owned by someone else (same label, another SeldonDeployment or a human) stay.
pub fn to_prune(
    desired: &[DynamicObject],
    existing: &[DynamicObject],
    owner_uid: &str,
) -> Vec<ObjKey> {
    let wanted: BTreeSet<ObjKey> = desired.iter().map(ObjKey::of).collect();
    let mut out: Vec<ObjKey> = existing
        .iter()
        .filter(|o| is_owned_by(o, owner_uid) && o.metadata.deletion_timestamp.is_none())
        .map(ObjKey::of)
        .filter(|k| !wanted.contains(k))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Splits the desired set into what is applied now and the routing objects held back until
/// the Deployments are available.
pub fn split_routing(desired: Vec<DynamicObject>) -> (Vec<DynamicObject>, Vec<DynamicObject>) {
    desired.into_iter().partition(|o| {
        let key = ObjKey::of(o);
        !owned_kind(&key.api_version, &key.kind).is_some_and(|k| k.routing)
    })
}

/// Sets `apiVersion`/`kind` on a listed object (list items come without them).
pub fn with_type(mut obj: DynamicObject, kind: &OwnedKind) -> DynamicObject {
    obj.types = Some(TypeMeta {
        api_version: kind.api_version(),
        kind: kind.kind.to_string(),
    });
    obj
}

/// Kinds the controller also watches (their changes re-trigger the owner's reconcile).
pub const WATCHED_KINDS: &[&str] = &["Deployment", "Service"];

/// The ClusterRole rules the operator needs, exactly: what [`crate::reconcile`] and the
/// controller call. `manifests/operator/rbac.yaml` must grant these and nothing more.
/// Each entry: (apiGroup, resource, sorted verbs).
pub fn required_rules() -> Vec<(String, String, Vec<String>)> {
    let v = |verbs: &[&str]| {
        let mut out: Vec<String> = verbs.iter().map(|s| (*s).to_string()).collect();
        out.sort();
        out
    };
    let mut rules = vec![
        (
            "machinelearning.seldon.io".into(),
            "seldondeployments".into(),
            v(&["list", "watch"]),
        ),
        (
            "machinelearning.seldon.io".into(),
            "seldondeployments/status".into(),
            v(&["patch"]),
        ),
        (
            "machinelearning.seldon.io".into(),
            "seldondeployments/finalizers".into(),
            v(&["update"]),
        ),
        (
            "events.k8s.io".into(),
            "events".into(),
            v(&["create", "patch"]),
        ),
    ];
    for k in OWNED_KINDS {
        // server-side apply creates and patches; pruning lists and deletes
        let mut verbs = vec!["create", "delete", "list", "patch"];
        if WATCHED_KINDS.contains(&k.kind) {
            verbs.push("watch");
        }
        rules.push((k.group.to_string(), k.plural.to_string(), v(&verbs)));
    }
    rules.sort();
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn owner(uid: &str) -> OwnerReference {
        OwnerReference {
            api_version: "machinelearning.seldon.io/v1".into(),
            kind: "SeldonDeployment".into(),
            name: "iris".into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }
    }

    fn obj(api_version: &str, kind: &str, name: &str) -> Value {
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "resourceVersion": "7", "uid": "x"}})
    }

    #[test]
    fn a_long_name_is_labelled_with_its_hashed_id_as_render_does() {
        let long = "a".repeat(64);
        let out = prepare_desired(
            vec![obj("v1", "Service", "seldon-x")],
            "seldon",
            &long,
            &owner("u1"),
        )
        .unwrap();
        let id = &out[0].metadata.labels.as_ref().unwrap()[names::LABEL_SDEP_ID];
        assert_eq!(id, &seldon_crd::names::hashed(&long));
        assert_eq!(
            crate::reconcile::sdep_selector(&long)[names::LABEL_SDEP_ID],
            *id
        );
    }

    #[test]
    fn desired_objects_are_namespaced_labelled_owned_and_in_apply_order() {
        let out = prepare_desired(
            vec![
                obj("networking.istio.io/v1", "VirtualService", "iris"),
                obj("v1", "Service", "iris-default"),
                obj("apps/v1", "Deployment", "iris-default-0-classifier"),
            ],
            "seldon",
            "iris",
            &owner("u1"),
        )
        .unwrap();
        let kinds: Vec<String> = out.iter().map(|o| ObjKey::of(o).kind).collect();
        assert_eq!(kinds, ["Deployment", "Service", "VirtualService"]);
        for o in &out {
            assert_eq!(o.metadata.namespace.as_deref(), Some("seldon"));
            assert_eq!(
                o.metadata.labels.as_ref().unwrap()[names::LABEL_SDEP_ID],
                "iris"
            );
            assert_eq!(o.metadata.owner_references.as_ref().unwrap()[0].uid, "u1");
            assert!(o.metadata.resource_version.is_none() && o.metadata.uid.is_none());
        }
        let (now, routing) = split_routing(out);
        assert_eq!(now.len(), 2);
        assert_eq!(ObjKey::of(&routing[0]).kind, "VirtualService");
    }

    #[test]
    fn unowned_kind_duplicate_and_non_object_are_refused() {
        let e =
            prepare_desired(vec![obj("v1", "Secret", "s")], "ns", "iris", &owner("u")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "rendered object Secret s is of a kind the operator does not own"
        );
        let e = prepare_desired(
            vec![obj("v1", "Service", "a"), obj("v1", "Service", "a")],
            "ns",
            "iris",
            &owner("u"),
        )
        .unwrap_err();
        assert_eq!(
            e,
            DesiredError::Duplicate(ObjKey {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: "a".into()
            })
        );
        let e = prepare_desired(vec![json!({"kind": "Service"})], "ns", "iris", &owner("u"))
            .unwrap_err();
        assert!(
            matches!(e, DesiredError::NotAnObject { index: 0, .. }),
            "{e}"
        );
        let e = prepare_desired(vec![json!(3)], "ns", "iris", &owner("u")).unwrap_err();
        assert!(
            matches!(e, DesiredError::NotAnObject { index: 0, .. }),
            "{e}"
        );
    }

    #[test]
    fn prune_only_what_we_control_and_no_longer_want() {
        let mine = |kind: &str, name: &str| {
            let mut o: DynamicObject = serde_json::from_value(obj("v1", kind, name)).unwrap();
            o.metadata.owner_references = Some(vec![owner("u1")]);
            o
        };
        let desired = vec![mine("Service", "keep")];
        let mut foreign = mine("Service", "foreign");
        foreign.metadata.owner_references = Some(vec![owner("other")]);
        let mut not_controller = mine("Service", "ref-only");
        not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        let mut deleting = mine("Service", "deleting");
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        let existing = vec![
            mine("Service", "keep"),
            mine("Service", "stale"),
            foreign,
            not_controller,
            deleting,
        ];
        let pruned = to_prune(&desired, &existing, "u1");
        assert_eq!(
            pruned,
            vec![ObjKey {
                api_version: "v1".into(),
                kind: "Service".into(),
                name: "stale".into()
            }]
        );
        assert!(to_prune(&desired, &existing, "nobody").is_empty());
    }

    #[test]
    fn kinds_resolve_and_required_rules_cover_every_owned_kind() {
        assert_eq!(
            owned_kind("apps/v1", "Deployment").unwrap().plural,
            "deployments"
        );
        assert!(owned_kind("apps/v1beta1", "Deployment").is_none());
        let rules = required_rules();
        for k in OWNED_KINDS {
            assert!(rules.iter().any(|(g, r, v)| g == k.group
                && r == k.plural
                && v.contains(&"delete".to_string())));
        }
        assert!(
            !rules.iter().any(|(_, r, _)| r == "secrets"),
            "the operator never touches Secrets"
        );
    }
}
