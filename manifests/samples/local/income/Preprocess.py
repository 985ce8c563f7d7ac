"""The income sample's TRANSFORMER: raw census-style rows in, the classifier's features out.

Seldon Core's Python class convention (`transform_input`), run by the project's wrapper:

    seldon-core-microservice Preprocess --service-type TRANSFORMER

Input columns (by `names`, any order): age, workclass, education, marital_status,
hours_per_week, capital_gain. Numbers are standardized with the training data's mean and
scale (capital_gain after log1p); categories are one-hot encoded, an unknown category is
all zeros. The fitted values are in preprocess.json (written by train.py, which also uses
this class to build the training matrix, so training and serving share one transform).
"""

import json
import math
import os

import numpy as np
from seldon_mesh_wrapper.errors import SeldonMicroserviceException  # answers 400

HERE = os.path.dirname(os.path.abspath(__file__))


class Preprocess:
    def __init__(self, **kwargs):
        with open(os.path.join(HERE, "preprocess.json")) as f:
            fitted = json.load(f)
        self.numeric = fitted["numeric"]  # [{"name", "log1p", "mean", "scale"}]
        self.categorical = fitted["categorical"]  # [{"name", "categories"}]
        self.feature_names = [n["name"] for n in self.numeric] + [
            f"{c['name']}={v}" for c in self.categorical for v in c["categories"]
        ]

    def columns(self):
        return [n["name"] for n in self.numeric] + [c["name"] for c in self.categorical]

    def transform_input(self, X, feature_names, meta=None):
        rows = np.asarray(X, dtype=object)
        if rows.ndim != 2:
            raise SeldonMicroserviceException(f"expected a 2-D ndarray of rows, got shape {rows.shape}")
        names = list(feature_names) if feature_names else self.columns()
        missing = [c for c in self.columns() if c not in names]
        if missing:
            raise SeldonMicroserviceException(
                f"missing columns {missing}; send data.names with {self.columns()}"
            )
        try:
            return self.transform(rows, names)
        except (TypeError, ValueError) as e:
            raise SeldonMicroserviceException(f"bad value: {e}") from e

    def transform(self, rows, names):
        at = {n: i for i, n in enumerate(names)}
        out = np.zeros((rows.shape[0], len(self.feature_names)), dtype=np.float64)
        for r, row in enumerate(rows):
            k = 0
            for n in self.numeric:
                v = float(row[at[n["name"]]])
                if n["log1p"]:
                    v = math.log1p(max(v, 0.0))
                out[r, k] = (v - n["mean"]) / n["scale"]
                k += 1
            for c in self.categorical:
                v = str(row[at[c["name"]]])
                for cat in c["categories"]:
                    out[r, k] = 1.0 if v == cat else 0.0
                    k += 1
        return out
