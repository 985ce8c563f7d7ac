//! Leader election on a `coordination.k8s.io/v1` Lease, so only one operator replica
//! reconciles at a time. The decision is pure ([`decide`]); [`LeaderElector`] only reads
//! and writes the Lease (optimistic concurrency through `resourceVersion`).

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, PostParams};

/// What a candidate does after reading the Lease.
#[derive(Debug, Clone, PartialEq)]
pub enum LeaseAction {
    /// No Lease yet: create it holding it.
    Create(LeaseSpec),
    /// Write this spec (renewal by the holder or takeover of an expired lease).
    Update(LeaseSpec),
    /// Someone else holds a live lease.
    Wait {
        /// Current holder.
        holder: String,
    },
}

/// Decides what `me` does with the current Lease spec at `now`. A lease whose
/// `renewTime + leaseDurationSeconds` has passed is free; so is one with no holder.
pub fn decide(
    current: Option<&LeaseSpec>,
    me: &str,
    now: Timestamp,
    duration: Duration,
) -> LeaseAction {
    let secs = i32::try_from(duration.as_secs()).unwrap_or(i32::MAX);
    let fresh = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(secs),
        acquire_time: acquired.or(Some(MicroTime(now))),
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(transitions),
        ..LeaseSpec::default()
    };
    let Some(spec) = current else {
        return LeaseAction::Create(fresh(0, None));
    };
    let holder = spec.holder_identity.clone().unwrap_or_default();
    let transitions = spec.lease_transitions.unwrap_or(0);
    if holder == me {
        return LeaseAction::Update(fresh(transitions, spec.acquire_time.clone()));
    }
    let expired = match (&spec.renew_time, spec.lease_duration_seconds) {
        (Some(MicroTime(renewed)), Some(d)) => {
            *renewed + SignedDuration::from_secs(i64::from(d)) < now
        }
        _ => true,
    };
    if holder.is_empty() || expired {
        LeaseAction::Update(fresh(transitions.saturating_add(1), None))
    } else {
        LeaseAction::Wait { holder }
    }
}

/// Failure talking to the API server about the Lease.
#[derive(Debug, thiserror::Error)]
pub enum LeaderError {
    /// Reading or writing the Lease failed for a reason other than a lost race.
    #[error("lease {name}: {source}")]
    Api {
        /// Lease name.
        name: String,
        /// The client error.
        #[source]
        source: kube::Error,
    },
}

/// Holds or waits for one Lease.
#[derive(Debug, Clone)]
pub struct LeaderElector {
    api: Api<Lease>,
    name: String,
    identity: String,
    duration: Duration,
}

impl LeaderElector {
    /// An elector for Lease `namespace/name` as `identity` (the pod name).
    pub fn new(
        client: Client,
        namespace: &str,
        name: &str,
        identity: &str,
        duration: Duration,
    ) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_string(),
            identity: identity.to_string(),
            duration,
        }
    }

    /// One round: read, decide, write. `Ok(true)` when we hold the lease afterwards;
    /// a lost write race (409) is `Ok(false)`.
    pub async fn try_acquire_or_renew(&self) -> Result<bool, LeaderError> {
        let err = |source| LeaderError::Api {
            name: self.name.clone(),
            source,
        };
        let current = self.api.get_opt(&self.name).await.map_err(err)?;
        let action = decide(
            current.as_ref().and_then(|l| l.spec.as_ref()),
            &self.identity,
            Timestamp::now(),
            self.duration,
        );
        let result = match action {
            LeaseAction::Wait { holder } => {
                tracing::debug!(%holder, "lease held by another replica");
                return Ok(false);
            }
            LeaseAction::Create(spec) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.name.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(spec),
                };
                self.api.create(&PostParams::default(), &lease).await
            }
            LeaseAction::Update(spec) => {
                let mut lease = current.unwrap_or_default();
                lease.spec = Some(spec);
                self.api
                    .replace(&self.name, &PostParams::default(), &lease)
                    .await
            }
        };
        match result {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(err(e)),
        }
    }

    /// Blocks until this replica holds the lease.
    pub async fn acquire(&self) -> Result<(), LeaderError> {
        loop {
            if self.try_acquire_or_renew().await? {
                tracing::info!(lease = %self.name, identity = %self.identity, "became leader");
                return Ok(());
            }
            tokio::time::sleep(self.retry_period()).await;
        }
    }

    /// Renews until a renewal fails or is lost; returns then (the caller stops reconciling).
    pub async fn keep_renewing(&self) -> Result<(), LeaderError> {
        loop {
            tokio::time::sleep(self.retry_period()).await;
            if !self.try_acquire_or_renew().await? {
                tracing::warn!(lease = %self.name, "lost the lease");
                return Ok(());
            }
        }
    }

    fn retry_period(&self) -> Duration {
        self.duration / 3
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn ts(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn held_by(who: &str, renewed: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(who.into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(ts(renewed))),
            acquire_time: Some(MicroTime(ts(0))),
            lease_transitions: Some(2),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn no_lease_creates_one_held_by_me() {
        let LeaseAction::Create(spec) = decide(None, "a", ts(0), D) else {
            panic!()
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_duration_seconds, Some(15));
        assert_eq!(spec.lease_transitions, Some(0));
    }

    #[test]
    fn holder_renews_and_keeps_acquire_time() {
        let LeaseAction::Update(spec) = decide(Some(&held_by("a", 5)), "a", ts(10), D) else {
            panic!()
        };
        assert_eq!(spec.renew_time, Some(MicroTime(ts(10))));
        assert_eq!(spec.acquire_time, Some(MicroTime(ts(0))));
        assert_eq!(spec.lease_transitions, Some(2));
    }

    #[test]
    fn live_lease_of_another_replica_means_wait() {
        assert_eq!(
            decide(Some(&held_by("b", 5)), "a", ts(19), D),
            LeaseAction::Wait { holder: "b".into() }
        );
    }

    #[test]
    fn expired_lease_is_taken_over_with_a_transition() {
        let LeaseAction::Update(spec) = decide(Some(&held_by("b", 5)), "a", ts(21), D) else {
            panic!()
        };
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(3));
        assert_eq!(spec.acquire_time, Some(MicroTime(ts(21))));
    }

    #[test]
    fn released_lease_is_free() {
        let mut spec = held_by("b", 5);
        spec.holder_identity = None;
        assert!(matches!(
            decide(Some(&spec), "a", ts(6), D),
            LeaseAction::Update(_)
        ));
    }
}
