//! A custom Seldon ROUTER in Rust on `seldon-serving`: epsilon-greedy over branches, learning from `send_feedback` rewards.

use std::sync::Mutex;

use rand::Rng;
use seldon_serving::{Feedback, Model, ModelError, Output, Payload, Request, async_trait};

/// Picks the branch with the best mean reward with probability `1 - epsilon`, a random
/// branch otherwise; `send_feedback` adds the reward to the branch the router chose.
#[derive(Debug)]
pub struct EpsilonGreedy {
    epsilon: f64,
    /// Per branch: (reward sum, feedback count).
    stats: Mutex<Vec<(f64, u32)>>,
}

impl EpsilonGreedy {
    pub fn new(branches: usize, epsilon: f64) -> Self {
        EpsilonGreedy {
            epsilon,
            stats: Mutex::new(vec![(0.0, 0); branches]),
        }
    }

    fn best(stats: &[(f64, u32)]) -> usize {
        let mean = |(sum, n): &(f64, u32)| if *n == 0 { 0.0 } else { sum / f64::from(*n) };
        (0..stats.len()).fold(0, |best, i| {
            if mean(&stats[i]) > mean(&stats[best]) {
                i
            } else {
                best
            }
        })
    }
}

#[async_trait]
impl Model for EpsilonGreedy {
    async fn route(&self, _request: Request) -> Result<Output<i32>, ModelError> {
        let stats = self
            .stats
            .lock()
            .map_err(|_| ModelError::internal("stats lock poisoned"))?;
        let mut rng = rand::rng();
        let branch = if rng.random::<f64>() < self.epsilon {
            rng.random_range(0..stats.len())
        } else {
            Self::best(&stats)
        };
        Ok(Output::new(i32::try_from(branch).unwrap_or(0)).tag("branch", branch))
    }

    async fn send_feedback(&self, feedback: Feedback) -> Result<Output<Payload>, ModelError> {
        let branch = feedback
            .routing
            .ok_or_else(|| ModelError::bad_data("feedback has no routing for this router"))?;
        let mut stats = self
            .stats
            .lock()
            .map_err(|_| ModelError::internal("stats lock poisoned"))?;
        let slot = usize::try_from(branch).ok().and_then(|b| stats.get_mut(b));
        let slot =
            slot.ok_or_else(|| ModelError::bad_data(format!("branch {branch} does not exist")))?;
        slot.0 += feedback.reward;
        slot.1 += 1;
        Ok(Output::new(Payload::None))
    }
}
