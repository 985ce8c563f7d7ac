"""Hooks that misbehave: bad metrics, bad metadata, failing health."""


class Faulty:
    def predict(self, X, names):
        return X

    def metrics(self):
        return [{"type": "HISTOGRAM", "key": "nope", "value": 1}]

    def init_metadata(self):
        return {"inputs": [{"name": "only-a-name"}]}

    def health_status(self):
        raise RuntimeError("unhealthy")
