#!/usr/bin/env python3
"""Regenerates `testdata/` (committed): iris models trained with the pinned scikit-learn,
converted by convert_sklearn.py, plus sklearn's own outputs on 1200 synthetic rows.

    ~/.cache/seldon-mesh/onnxvenv/bin/python model-servers/onnx/python/make_testdata.py

Layout: testdata/<name>/{model.joblib, model.onnx, [decision_function.onnx],
conversion.json | python-fallback.json}; testdata/reference.json holds the rows (float32
values written as JSON numbers) and, per model, sklearn's `predict`, `predict_proba`
and `decision_function` on them (float64).
"""

import json
import os
import sys

import joblib
import numpy as np
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import SVC

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
import convert_sklearn  # noqa: E402

out = os.path.join(here, "..", "testdata")
ROWS = 1200


def main():
    x, y = load_iris(return_X_y=True)
    models = {
        "logreg": LogisticRegression(max_iter=1000),
        "rf": RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0),
        "svc": Pipeline([("scale", StandardScaler()), ("svc", SVC(probability=True, random_state=0))]),
        # FunctionTransformer with a Python function: skl2onnx cannot convert it → fallback
        "unconvertible": Pipeline([("f", FunctionTransformer(np.abs)), ("lr", LogisticRegression(max_iter=1000))]),
    }
    rng = np.random.default_rng(42)
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = hi - lo
    rows = rng.uniform(lo - 0.25 * span, hi + 0.25 * span, size=(ROWS, 4)).astype(np.float32)
    rows64 = rows.astype(np.float64)
    reference = {"rows": rows.tolist(), "models": {}}
    for name, est in models.items():
        est.fit(x, y)
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        joblib.dump(est, os.path.join(d, "model.joblib"))
        convert_sklearn.main([d])
        ref = {"predict": est.predict(rows64).astype(float).tolist()}
        if hasattr(est, "predict_proba"):
            ref["predict_proba"] = est.predict_proba(rows64).tolist()
        if hasattr(est, "decision_function"):
            ref["decision_function"] = np.asarray(est.decision_function(rows64)).tolist()
        reference["models"][name] = ref
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(reference, f, separators=(",", ":"))


if __name__ == "__main__":
    main()
