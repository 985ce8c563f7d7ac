"""Seldon's SKLEARN_SERVER for seldon-core's Python wrapper, as its image runs it
(`servers/sklearnserver/sklearnserver/SKLearnServer.py`: joblib in the constructor,
`predict_proba` by default). The image's class is not on PyPI; this is its documented
behaviour in a few lines."""

import os

import joblib


class SKLearnServer:
    def __init__(self, model_uri: str = os.environ.get("MODEL_URI", "/mnt/models"), method: str = "predict_proba"):
        self.method = method
        self.clf = joblib.load(os.path.join(model_uri, "model.joblib"))

    def predict(self, X, features_names=None):
        return getattr(self.clf, self.method)(X)
