#!/usr/bin/env python3
"""Trains the income sample's classifier, deterministically, from synthetic census-style rows.

    ~/.cache/seldon-mesh/onnxvenv/bin/python manifests/samples/local/income/train.py

(the venv of `model-servers/onnx/scripts/setup.sh --with-wrapper`: the pinned scikit-learn,
skl2onnx and the wrapper). Writes, next to this file:

  * preprocess.json  the transformer's fitted values (means, scales, category lists)
  * model/           model.joblib (LogisticRegression on Preprocess's output), converted by
                     model-servers/onnx/python/convert_sklearn.py into model.onnx +
                     conversion.json: what SKLEARN_SERVER serves

The label `>50K` is drawn from a fixed logistic function of the features, so the model has
something true to learn. Same pinned versions → same files (fixed seed, one solver).
"""

import json
import math
import os
import sys

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..", "..")
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "model-servers", "onnx", "python"))
import convert_sklearn  # noqa: E402

ROWS = 4000
WORKCLASS = ["Private", "Self-emp", "Government"]
EDUCATION = ["HS-grad", "Some-college", "Bachelors", "Masters", "Doctorate"]
MARITAL = ["Married", "Never-married", "Divorced"]


def synthetic(rng, n):
    age = rng.integers(18, 75, n)
    workclass = rng.choice(WORKCLASS, n, p=[0.7, 0.12, 0.18])
    education = rng.choice(EDUCATION, n, p=[0.35, 0.25, 0.25, 0.1, 0.05])
    marital = rng.choice(MARITAL, n, p=[0.5, 0.35, 0.15])
    hours = np.clip(rng.normal(40, 10, n).round(), 1, 99).astype(int)
    gain = np.where(rng.random(n) < 0.1, rng.integers(1000, 20000, n), 0)
    score = (
        -7.0
        + 0.05 * age
        + 0.6 * np.array([EDUCATION.index(e) for e in education])
        + 1.2 * (marital == "Married")
        + 0.04 * hours
        + 0.3 * (workclass == "Self-emp")
        + 0.5 * np.log1p(gain)
    )
    label = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(int)
    rows = [
        [int(a), str(w), str(e), str(m), int(h), int(g)]
        for a, w, e, m, h, g in zip(age, workclass, education, marital, hours, gain)
    ]
    return rows, label


def main():
    rng = np.random.default_rng(20261207)
    rows, y = synthetic(rng, ROWS)
    names = ["age", "workclass", "education", "marital_status", "hours_per_week", "capital_gain"]
    col = {n: [r[i] for r in rows] for i, n in enumerate(names)}
    numeric = []
    for name, log in [("age", False), ("hours_per_week", False), ("capital_gain", True)]:
        v = np.array([math.log1p(x) if log else float(x) for x in col[name]])
        numeric.append({"name": name, "log1p": log, "mean": round(float(v.mean()), 6),
                        "scale": round(float(v.std()), 6)})
    fitted = {
        "numeric": numeric,
        "categorical": [
            {"name": "workclass", "categories": WORKCLASS},
            {"name": "education", "categories": EDUCATION},
            {"name": "marital_status", "categories": MARITAL},
        ],
    }
    with open(os.path.join(HERE, "preprocess.json"), "w") as f:
        json.dump(fitted, f, indent=2)
        f.write("\n")

    from Preprocess import Preprocess  # reads the preprocess.json just written

    x = Preprocess().transform_input(np.array(rows, dtype=object), names)
    model = LogisticRegression(max_iter=1000, solver="lbfgs").fit(x, y)
    out = os.path.join(HERE, "model")
    os.makedirs(out, exist_ok=True)
    joblib.dump(model, os.path.join(out, "model.joblib"))
    convert_sklearn.main([out])
    print(f"train accuracy {model.score(x, y):.3f} on {ROWS} rows; wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
