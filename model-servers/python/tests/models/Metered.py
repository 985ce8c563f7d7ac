"""Custom metrics whose values come from the request: `metrics()` after each call reports the
first input value as a COUNTER increment, the GAUGE value and the TIMER milliseconds."""

import numpy as np


class Metered:
    def __init__(self):
        self.last = 0.0

    def predict(self, X, names=None, meta=None):
        self.last = float(np.asarray(X, dtype=float).ravel()[0])
        return X

    def metrics(self):
        v = self.last
        return [
            {"type": "COUNTER", "key": "metered_units", "value": v, "tags": {"unit": "ms"}},
            {"type": "GAUGE", "key": "metered_last", "value": v},
            {"type": "TIMER", "key": "metered_latency", "value": v},
        ]
