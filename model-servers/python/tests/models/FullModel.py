"""A MODEL using every optional hook a Seldon Core user class may have."""

import numpy as np

from seldon_mesh_wrapper import SeldonMicroserviceException


class FullModel:
    def __init__(self, scale=1, offset=0.0, label="x", enabled=False):
        self.scale = scale
        self.offset = offset
        self.label = label
        self.enabled = enabled
        self.loaded = False
        self.feedback = []

    def load(self):
        self.loaded = True

    def predict(self, X, features_names, meta=None):
        if isinstance(X, np.ndarray):
            if X.size and X.ravel()[0] == -1:
                raise SeldonMicroserviceException("negative one is not allowed")
            if X.size and X.ravel()[0] == -2:
                raise ValueError("boom")
            return X * self.scale + self.offset
        if isinstance(X, str):
            if X == "params":
                return {"scale": self.scale, "offset": self.offset, "label": self.label,
                        "enabled": self.enabled, "loaded": self.loaded}
            if X == "meta":
                return {"meta": meta, "names": list(features_names)}
            if X == "bytes":
                return b"\x00\x01hi"
            if X == "strings":
                return np.array([["a", "b"]])
            if X == "feedback":
                return {"feedback": self.feedback}
            if X == "bad-type":
                return 3.5
            return X.upper()
        if isinstance(X, bytes):
            return X[::-1]
        return {"echo": X}

    def class_names(self):
        return ["c0", "c1"]

    def tags(self):
        return {"model_tag": self.label}

    def metrics(self):
        return [
            {"type": "COUNTER", "key": "mycounter", "value": 1},
            {"type": "GAUGE", "key": "mygauge", "value": 100, "tags": {"mytag": "a"}},
            {"type": "TIMER", "key": "mytimer", "value": 20.2},
        ]

    def health_status(self):
        return [[1.0]]

    def init_metadata(self):
        return {
            "name": "full-model",
            "versions": ["v1"],
            "platform": "seldon",
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [-1, 2]}],
            "outputs": [{"messagetype": "ndarray", "schema": {"names": ["c0", "c1"]}}],
            "custom": {"author": "test"},
        }

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        self.feedback.append({"features": features.tolist(), "reward": reward,
                              "truth": truth.tolist(), "routing": routing})
        return None
