"""Legacy binary XGBoost models, as Seldon v1 users have them: trained and saved by xgboost
1.7.6 (`save_model("model.bst")` writes the binary format there), plus xgboost's own
predictions on 1000 rows. Run by tests/legacy.rs at test time (nothing committed):

    python make_legacy.py <out dir>

writes <out>/<case>/model.bst and <out>/<case>.expected.json
({"rows": [[...]], "predictions": [...], "xgboost": "1.7.6", ...}), rows with 10 % NaN.
"""

import json
import os
import sys

import numpy as np
import xgboost as xgb

CASES = {
    "binary_logistic": ({"objective": "binary:logistic", "max_depth": 4}, 2, 20),
    "multi_softprob": ({"objective": "multi:softprob", "num_class": 3, "max_depth": 3}, 3, 15),
    "reg_squarederror": ({"objective": "reg:squarederror", "max_depth": 5}, 0, 30),
    "dart": ({"booster": "dart", "objective": "binary:logistic", "rate_drop": 0.2,
              "max_depth": 3}, 2, 15),
}


def data(rng, n, n_features, classes):
    x = rng.normal(0.0, 2.0, size=(n, n_features)).astype(np.float32)
    score = x[:, 0] + 0.5 * x[:, 1] * x[:, 2] - np.abs(x[:, 3])
    if classes == 0:
        y = score + rng.normal(0.0, 0.1, size=n)
    elif classes == 2:
        y = (score > 0).astype(int)
    else:
        y = np.digitize(score, np.quantile(score, [1 / 3, 2 / 3]))
    x[rng.random(x.shape) < 0.1] = np.nan
    return x, y


def main(out):
    rng = np.random.default_rng(7)
    n_features = 8
    rows = rng.normal(0.0, 2.0, size=(1000, n_features)).astype(np.float32)
    rows[rng.random(rows.shape) < 0.1] = np.nan
    for name, (params, classes, rounds) in CASES.items():
        x, y = data(rng, 2000, n_features, classes)
        booster = xgb.train(params, xgb.DMatrix(x, label=y), rounds)
        os.makedirs(os.path.join(out, name), exist_ok=True)
        path = os.path.join(out, name, "model.bst")
        booster.save_model(path)
        with open(path, "rb") as f:
            assert f.read(4) == b"binf", "xgboost did not write the legacy binary format"
        # what Seldon v1's XGBOOST_SERVER answered: Booster.predict(DMatrix(X)) of the model
        # loaded from model.bst
        loaded = xgb.Booster(model_file=path)
        pred = loaded.predict(xgb.DMatrix(rows), validate_features=False)
        doc = {
            "xgboost": xgb.__version__,
            "objective": params["objective"],
            "rows": [[None if np.isnan(v) else float(v) for v in r] for r in rows],
            "predictions": pred.astype(np.float64).ravel().tolist(),
            "shape": list(pred.shape),
        }
        with open(os.path.join(out, name + ".expected.json"), "w") as f:
            json.dump(doc, f)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
