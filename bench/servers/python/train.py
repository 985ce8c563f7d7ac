"""Trains the benchmark's models at bench time and lays out each server's directory.

    python train.py <out-dir>

<out-dir>/src/sklearn/model.joblib   iris LogisticRegression (Seldon SKLEARN_SERVER's file name)
<out-dir>/src/xgboost/model.bst      iris multi:softprob, 20 rounds, depth 3 (UBJSON, xgboost 3)
<out-dir>/src/xgboost/model.json     the same booster as JSON
<out-dir>/mlserver/                  settings.json + model-settings.json per model (MLServer)
Ports and paths of MLServer's settings are filled in by the driver (it rewrites settings.json).
"""

import json
import os
import sys

import joblib
import numpy as np
import sklearn
import xgboost as xgb
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

out = sys.argv[1]
X, y = load_iris(return_X_y=True)
sk_dir = os.path.join(out, "src", "sklearn")
xg_dir = os.path.join(out, "src", "xgboost")
os.makedirs(sk_dir, exist_ok=True)
os.makedirs(xg_dir, exist_ok=True)

lr = LogisticRegression(max_iter=1000).fit(X, y)
joblib.dump(lr, os.path.join(sk_dir, "model.joblib"))

booster = xgb.train(
    {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "eta": 0.3, "seed": 0},
    xgb.DMatrix(X.astype(np.float32), label=y),
    num_boost_round=20,
)
booster.save_model(os.path.join(xg_dir, "model.json"))
booster.save_model(os.path.join(xg_dir, "model.bst"))

row = np.array([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
reference = {
    "sklearn": lr.predict_proba(row).tolist(),
    "xgboost": booster.predict(xgb.DMatrix(row)).tolist(),
    "versions": {"scikit-learn": sklearn.__version__, "xgboost": xgb.__version__, "numpy": np.__version__},
}
with open(os.path.join(out, "reference.json"), "w") as f:
    json.dump(reference, f)

ml = os.path.join(out, "mlserver")
for name, impl, uri in [
    ("iris-sklearn", "mlserver_sklearn.SKLearnModel", os.path.join(sk_dir, "model.joblib")),
    ("iris-xgboost", "mlserver_xgboost.XGBoostModel", os.path.join(xg_dir, "model.bst")),
]:
    os.makedirs(os.path.join(ml, name), exist_ok=True)
    with open(os.path.join(ml, name, "model-settings.json"), "w") as f:
        json.dump({"name": name, "implementation": impl, "parameters": {"uri": uri}}, f)
print(json.dumps(reference))
