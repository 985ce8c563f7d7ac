"""Regenerate the LightGBM test models, inputs and reference predictions.

Run from this folder with the pinned venv (see ../README.md):

    python -m venv ~/.cache/seldon-mesh/treesvenv
    ~/.cache/seldon-mesh/treesvenv/bin/pip install lightgbm==4.7.0 scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1
    ~/.cache/seldon-mesh/treesvenv/bin/python make_models.py

Writes, for each case NAME: NAME.txt (`booster.save_model`) and NAME.expected.json with
lightgbm's own `Booster.predict` output (and `raw_score=True`). All cases share one input
file, input.json ({"n_features": F, "rows": [[...], ...]}, NaN written as null, values
exactly representable in f64). Deterministic: fixed seeds, one thread.
"""

import json

import lightgbm as lgb
import numpy as np
import sklearn
from sklearn.datasets import make_classification

assert lgb.__version__ == "4.7.0", lgb.__version__
assert np.__version__ == "2.4.6", np.__version__
assert sklearn.__version__ == "1.9.1", sklearn.__version__

N_FEATURES = 8
N_TRAIN = 2000
N_TEST = 1200
ROUNDS = 20
NAN_RATE = 0.1
rng = np.random.default_rng(11)

x_all, y_bin = make_classification(
    n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, n_informative=5, random_state=1
)
raw = x_all[:, :4] @ np.array([1.5, -2.0, 0.7, 1.0])
y_multi = np.digitize(raw, np.quantile(raw, [1 / 3, 2 / 3]))
y_reg = 3.0 * raw + 10.0 + rng.normal(0, 0.5, size=raw.shape)
y_count = rng.poisson(np.exp(0.3 * raw))

x = x_all.copy()
# Exact zeros in two columns exercise missing type Zero (zero_as_missing) and use_missing=false.
x[rng.random(x.shape[0]) < 0.1, 5] = 0.0
x[rng.random(x.shape[0]) < 0.1, 6] = 0.0
x[rng.random(x.shape) < NAN_RATE] = np.nan
x_train, x_test = x[:N_TRAIN], x[N_TRAIN:]

BASE = {
    "num_leaves": 15,
    "learning_rate": 0.2,
    "min_data_in_leaf": 10,
    "num_threads": 1,
    "seed": 3,
    "deterministic": True,
    "verbose": -1,
}

CASES = {
    "binary": ({"objective": "binary"}, y_bin),
    "multiclass": ({"objective": "multiclass", "num_class": 3}, y_multi),
    "regression": ({"objective": "regression"}, y_reg),
    "regression_l1_zero_as_missing": (
        {"objective": "regression_l1", "zero_as_missing": True},
        y_reg,
    ),
    "poisson_no_missing": ({"objective": "poisson", "use_missing": False}, y_count),
    "rf_binary": (
        {
            "objective": "binary",
            "boosting": "rf",
            "bagging_fraction": 0.7,
            "bagging_freq": 1,
            "feature_fraction": 0.8,
        },
        y_bin,
    ),
}


def floats(values):
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


with open("input.json", "w") as f:
    json.dump({"n_features": N_FEATURES, "rows": [floats(r) for r in x_test]}, f)

for name, (params, y) in CASES.items():
    train = lgb.Dataset(x_train, label=y[:N_TRAIN], params={"verbose": -1})
    booster = lgb.train({**BASE, **params}, train, num_boost_round=ROUNDS)
    booster.save_model(f"{name}.txt")
    again = lgb.Booster(model_file=f"{name}.txt")
    pred = again.predict(x_test)
    raw_score = again.predict(x_test, raw_score=True)
    assert np.array_equal(pred, booster.predict(x_test)), name
    with open(f"{name}.expected.json", "w") as f:
        json.dump(
            {
                "objective": params["objective"],
                "shape": list(pred.shape),
                "predictions": floats(pred),
                "raw_scores": floats(raw_score),
            },
            f,
        )

# Categorical split: the native loader must reject it, naming tree and node.
x_cat = x_train.copy()
x_cat[:, 0] = rng.integers(0, 4, size=N_TRAIN)
y_cat = (x_cat[:, 0] == 2).astype(np.float64)
train = lgb.Dataset(x_cat, label=y_cat, categorical_feature=[0], params={"verbose": -1})
booster = lgb.train({**BASE, "objective": "binary", "num_leaves": 3}, train, num_boost_round=2)
booster.save_model("categorical.txt")

print("lightgbm", lgb.__version__, "cases:", ", ".join(CASES), "+ categorical")
