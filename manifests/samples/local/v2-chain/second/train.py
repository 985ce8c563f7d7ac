#!/usr/bin/env python3
"""Trains `second` of the v2-chain sample, deterministically: the final estimator of a
stacked ensemble, fitted on `first`'s class probabilities (the iris logistic regression of
model-servers/onnx/testdata) to answer the iris class.

    ~/.cache/seldon-mesh/onnxvenv/bin/python manifests/samples/local/v2-chain/second/train.py

(the venv of `model-servers/onnx/scripts/setup.sh`: the pinned scikit-learn and skl2onnx).
Writes model.joblib here and converts it with model-servers/onnx/python/convert_sklearn.py
into model.onnx + conversion.json, what SKLEARN_SERVER serves.
"""

import os
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..", "..", "..", "..")
sys.path.insert(0, os.path.join(ROOT, "model-servers", "onnx", "python"))
import convert_sklearn  # noqa: E402


def main():
    x, y = load_iris(return_X_y=True)
    first = joblib.load(os.path.join(ROOT, "model-servers", "onnx", "testdata", "logreg", "model.joblib"))
    probabilities = first.predict_proba(x)
    second = LogisticRegression(max_iter=1000, solver="lbfgs").fit(probabilities, y)
    joblib.dump(second, os.path.join(HERE, "model.joblib"))
    convert_sklearn.main([HERE])
    print(f"accuracy on iris through first → second: {second.score(probabilities, y):.3f}", file=sys.stderr)


if __name__ == "__main__":
    main()
