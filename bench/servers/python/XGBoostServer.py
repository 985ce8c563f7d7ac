"""Seldon's XGBOOST_SERVER for seldon-core's Python wrapper (`XGBoostServer.py`:
`xgb.Booster(model_file=<uri>/model.bst)`, `predict(DMatrix(X))`). Not on PyPI; this is
its documented behaviour."""

import os

import xgboost as xgb


class XGBoostServer:
    def __init__(self, model_uri: str = os.environ.get("MODEL_URI", "/mnt/models")):
        self._booster = xgb.Booster(model_file=os.path.join(model_uri, "model.bst"))

    def predict(self, X, features_names=None):
        return self._booster.predict(xgb.DMatrix(X))
