"""Regenerate the XGBoost test models, inputs and reference predictions.

Run from this folder with the pinned venv (see ../README.md):

    python -m venv ~/.cache/seldon-mesh/treesvenv
    ~/.cache/seldon-mesh/treesvenv/bin/pip install xgboost-cpu==3.2.0 scikit-learn==1.9.1 numpy==2.4.6 scipy==1.17.1
    ~/.cache/seldon-mesh/treesvenv/bin/python make_models.py

Writes, for each case NAME: NAME.json and NAME.ubj (the same booster saved twice),
and NAME.expected.json with xgboost's own `Booster.predict` output (plus margins).
All cases share one input file, input.json ({"n_features": F, "rows": [[...], ...]},
NaN written as null). Everything is deterministic (fixed seeds, one thread).
"""

import json

import numpy as np
import sklearn
import xgboost as xgb
from sklearn.datasets import make_classification, make_regression

assert xgb.__version__ == "3.2.0", xgb.__version__
assert np.__version__ == "2.4.6", np.__version__
assert sklearn.__version__ == "1.9.1", sklearn.__version__

N_FEATURES = 8
N_TRAIN = 2000
N_TEST = 1200
ROUNDS = 20
NAN_RATE = 0.1
rng = np.random.default_rng(7)


def with_nans(x):
    x = x.astype(np.float32)
    mask = rng.random(x.shape) < NAN_RATE
    x[mask] = np.nan
    return x


def f32_list(values):
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=np.float32).ravel()]


# One pool of rows: the first N_TRAIN train, the rest are the shared test input.
x_cls, y_bin = make_classification(
    n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, n_informative=5, random_state=1
)
_, y_multi = make_classification(
    n_samples=N_TRAIN + N_TEST,
    n_features=N_FEATURES,
    n_informative=5,
    n_classes=3,
    random_state=1,
)
x_reg, y_reg = make_regression(
    n_samples=N_TRAIN + N_TEST, n_features=N_FEATURES, noise=5.0, random_state=2
)
# Use the same X for every case so one input file serves all models.
x = with_nans(x_cls)
x_train, x_test = x[:N_TRAIN], x[N_TRAIN:]
# Multiclass labels and regression targets derived from X so they are learnable.
raw = np.nan_to_num(x_cls[:, :4]) @ np.array([1.5, -2.0, 0.7, 1.0])
y_multi = np.digitize(raw, np.quantile(raw, [1 / 3, 2 / 3]))
y_reg = 3.0 * raw + 10.0 + rng.normal(0, 0.5, size=raw.shape)
y_prob = 1.0 / (1.0 + np.exp(-raw))  # in [0, 1] for reg:logistic
y_count = rng.poisson(np.exp(0.3 * raw))

BASE = {"max_depth": 4, "eta": 0.3, "nthread": 1, "seed": 3, "tree_method": "hist"}

CASES = {
    "binary_logistic": ({"objective": "binary:logistic"}, y_bin),
    "binary_logitraw": ({"objective": "binary:logitraw"}, y_bin),
    "reg_logistic": ({"objective": "reg:logistic"}, y_prob),
    "multi_softprob": ({"objective": "multi:softprob", "num_class": 3}, y_multi),
    "multi_softmax": ({"objective": "multi:softmax", "num_class": 3}, y_multi),
    "reg_squarederror": ({"objective": "reg:squarederror"}, y_reg),
    "count_poisson": ({"objective": "count:poisson"}, y_count),
    "dart_binary": (
        {
            "objective": "binary:logistic",
            "booster": "dart",
            "rate_drop": 0.3,
            "skip_drop": 0.0,
            "sample_type": "weighted",
            "normalize_type": "forest",
        },
        y_bin,
    ),
}

with open("input.json", "w") as f:
    json.dump({"n_features": N_FEATURES, "rows": [f32_list(r) for r in x_test]}, f)

for name, (params, y) in CASES.items():
    dtrain = xgb.DMatrix(x_train, label=y[:N_TRAIN])
    booster = xgb.train({**BASE, **params}, dtrain, num_boost_round=ROUNDS)
    booster.save_model(f"{name}.json")
    booster.save_model(f"{name}.ubj")
    dtest = xgb.DMatrix(x_test)
    pred = booster.predict(dtest)
    margin = booster.predict(dtest, output_margin=True)
    # Round-trip check: reloading each file reproduces the predictions.
    for ext in ("json", "ubj"):
        again = xgb.Booster(model_file=f"{name}.{ext}").predict(dtest)
        assert np.array_equal(again, pred), (name, ext)
    with open(f"{name}.expected.json", "w") as f:
        json.dump(
            {
                "objective": params["objective"],
                "shape": list(pred.shape),
                "predictions": f32_list(pred),
                "margins": f32_list(margin),
            },
            f,
        )

# Early stopping: the booster keeps all trees, `best_iteration` says where to stop.
dtrain = xgb.DMatrix(x_train[:1500], label=y_bin[:1500])
dvalid = xgb.DMatrix(x_train[1500:], label=y_bin[1500:N_TRAIN])
booster = xgb.train(
    {**BASE, "objective": "binary:logistic", "eta": 0.9},
    dtrain,
    num_boost_round=60,
    evals=[(dvalid, "valid")],
    early_stopping_rounds=3,
    verbose_eval=False,
)
booster.save_model("early_stop.json")
best = booster.best_iteration
assert booster.num_boosted_rounds() > best + 1, "early stopping did not stop early"
dtest = xgb.DMatrix(x_test)
with open("early_stop.expected.json", "w") as f:
    json.dump(
        {
            "objective": "binary:logistic",
            "best_iteration": best,
            "rounds": booster.num_boosted_rounds(),
            "predictions": f32_list(booster.predict(dtest)),
            "predictions_best": f32_list(booster.predict(dtest, iteration_range=(0, best + 1))),
        },
        f,
    )

# Categorical split: the native loader must reject it, naming tree and node.
x_cat = x_train.copy()
x_cat[:, 0] = rng.integers(0, 4, size=N_TRAIN)
y_cat = (x_cat[:, 0] == 2).astype(np.float32)
dcat = xgb.DMatrix(
    x_cat, label=y_cat, feature_types=["c"] + ["q"] * (N_FEATURES - 1), enable_categorical=True
)
booster = xgb.train({**BASE, "objective": "binary:logistic", "max_depth": 2}, dcat, num_boost_round=2)
booster.save_model("categorical.json")

print("xgboost", xgb.__version__, "cases:", ", ".join(CASES), "+ early_stop, categorical")
