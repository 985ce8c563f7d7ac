"""Real MLflow models for tests/test_mlflow.py, saved with the pinned mlflow-skinny:

    python make_models.py <out dir>

* `<out>/sklearn`: LogisticRegression (3 classes, 4 features) saved by `mlflow.sklearn`
  (flavors `python_function` + `sklearn`, cloudpickle, pyfunc answering `predict_proba`),
  signature from numpy arrays (tensor spec).
* `<out>/custom`: an `mlflow.pyfunc.PythonModel` (flavor `python_function` only) whose
  `load_context` reads an artifact (weights) and whose `predict` answers a DataFrame with
  named columns.
* `<out>/expected.json`: 1000 rows and both models' answers from `mlflow.pyfunc` called
  directly (model-servers/server/tests/mlflow_pyfunc.rs compares with them).

Run as a script so cloudpickle stores the PythonModel class by value (no import needed at
load time), as a user's notebook would.
"""

import json
import os
import sys

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression


class Scorer(mlflow.pyfunc.PythonModel):
    """score = X @ w + b per row, and its sign, as a two-column DataFrame."""

    def load_context(self, context):
        with open(context.artifacts["weights"]) as f:
            doc = json.load(f)
        self.w = np.asarray(doc["w"], dtype=np.float64)
        self.b = float(doc["b"])

    def predict(self, context, model_input, params=None):
        x = np.asarray(model_input, dtype=np.float64)
        score = x @ self.w + self.b
        return pd.DataFrame({"score": score, "positive": (score > 0).astype(np.float64)})


def main(out: str) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(0.0, 1.0, size=(600, 4)) * [0.8, 0.4, 1.7, 0.7] + [5.8, 3.0, 3.7, 1.2]
    y = np.digitize(x[:, 2] + 0.3 * x[:, 3], [3.0, 4.5])
    clf = LogisticRegression(max_iter=500).fit(x, y)
    mlflow.sklearn.save_model(
        clf,
        os.path.join(out, "sklearn"),
        serialization_format="cloudpickle",
        pyfunc_predict_fn="predict_proba",
        signature=infer_signature(x, clf.predict_proba(x)),
    )
    weights = os.path.join(out, "weights.json")
    with open(weights, "w") as f:
        json.dump({"w": [0.5, -1.25, 2.0, 0.125], "b": -3.5}, f)
    mlflow.pyfunc.save_model(
        os.path.join(out, "custom"), python_model=Scorer(), artifacts={"weights": weights}
    )
    # 1000 rows and what mlflow.pyfunc answers for them, called directly
    rows = rng.normal(0.0, 1.0, size=(1000, 4)) * [0.8, 0.4, 1.7, 0.7] + [5.8, 3.0, 3.7, 1.2]
    expected = {"rows": rows.tolist()}
    for name in ("sklearn", "custom"):
        answer = mlflow.pyfunc.load_model(os.path.join(out, name)).predict(rows)
        answer = answer.to_numpy() if hasattr(answer, "to_numpy") else np.asarray(answer)
        expected[name] = answer.astype(np.float64).tolist()
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main(sys.argv[1])
