"""The bandit sample's ROUTER: an epsilon-greedy multi-armed bandit over the graph's children.

Seldon Core's Python class convention (`route`, `send_feedback`), run by the project's
wrapper, and the algorithm of Seldon's `mab_epsilon_greedy` component:

    seldon-core-microservice EpsilonGreedy --service-type ROUTER

Parameters (from the SeldonDeployment): n_branches, epsilon (the share of requests sent to
a branch that is not the best, to keep exploring), seed (a fixed seed makes the choices
repeatable). Every branch starts with value 0; the best is the lowest-numbered of the
highest values. Feedback on a request that went to branch b with reward r (0..1) over n
rows counts int(r * n) successes and n tries for b; a branch's value is successes / tries.
"""

import numpy as np
from seldon_mesh_wrapper.errors import SeldonMicroserviceException  # answers 400


class EpsilonGreedy:
    def __init__(self, n_branches=2, epsilon=0.1, seed=None, **kwargs):
        if n_branches < 1 or not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"need n_branches >= 1 and 0 <= epsilon <= 1, got {n_branches}, {epsilon}")
        self.n_branches = int(n_branches)
        self.epsilon = float(epsilon)
        self.rng = np.random.default_rng(seed)
        self.success = [0] * self.n_branches
        self.tries = [0] * self.n_branches
        self.best = 0

    def route(self, features, feature_names):
        if self.n_branches == 1 or self.rng.random() >= self.epsilon:
            return self.best
        others = [b for b in range(self.n_branches) if b != self.best]
        return int(others[self.rng.integers(len(others))])

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        if not isinstance(routing, int) or not 0 <= routing < self.n_branches:
            raise SeldonMicroserviceException(
                f"feedback needs response.meta.routing.eg-router in 0..{self.n_branches - 1}, got {routing!r}"
            )
        if not 0.0 <= reward <= 1.0:
            raise SeldonMicroserviceException(f"reward must be in 0..1, got {reward}")
        n = max(int(np.shape(features)[0]) if np.ndim(features) else 1, 1)
        self.success[routing] += int(reward * n)
        self.tries[routing] += n
        values = [s / t if t else 0.0 for s, t in zip(self.success, self.tries)]
        self.best = int(np.argmax(values))
        return []

    def tags(self):
        """Where the bandit stands, in every answer's meta.tags."""
        return {"best_branch": self.best, "success": list(self.success), "tries": list(self.tries)}
