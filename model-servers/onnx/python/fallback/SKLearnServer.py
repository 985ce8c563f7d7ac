"""SKLEARN_SERVER's Python fallback: the estimators skl2onnx cannot convert are served by the
project's Python wrapper (`seldon-core-microservice SKLearnServer`), with Seldon's contract:
`model_uri` holds `model.joblib`; `method` is predict_proba (default), predict or
decision_function."""

import logging
import os

import joblib
import numpy as np

log = logging.getLogger(__name__)
METHODS = ("predict_proba", "predict", "decision_function")


class SKLearnServer:
    def __init__(self, model_uri: str = "/mnt/models", method: str = "predict_proba"):
        if method not in METHODS:
            raise ValueError(f"unknown method `{method}` ({', '.join(METHODS)})")
        self.model_uri = model_uri
        self.method = method
        self.ready = False
        self._model = None

    def load(self):
        path = os.path.join(self.model_uri, "model.joblib")
        self._model = joblib.load(path)
        if not hasattr(self._model, self.method):
            raise ValueError(f"{type(self._model).__name__} has no {self.method}")
        log.info("SKLEARN_SERVER (Python fallback) loaded %s, method %s", path, self.method)
        self.ready = True

    def predict(self, X, features_names=None, **kwargs):
        if not self.ready:
            self.load()
        return getattr(self._model, self.method)(np.asarray(X, dtype=np.float64))
