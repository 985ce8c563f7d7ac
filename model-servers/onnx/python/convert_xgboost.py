#!/usr/bin/env python3
"""Model-fetch step of XGBOOST_SERVER: a legacy binary `model.bst` → `model.ubj`.

XGBoost's binary model format (what `Booster.save_model("model.bst")` wrote before 2.0, and
what most Seldon v1 XGBOOST_SERVER buckets hold) has no public schema, so seldon-xgboost does
not parse it. XGBoost 3.0 is the last release that loads it (3.1 removed it), so the model
initializer runs this script with the pinned xgboost-cpu 3.0.5
(model-servers/onnx/python/requirements.txt, the init image's Python):

    python convert_xgboost.py /mnt/models

Writes, next to `model.bst`:
  * `model.ubj`                  the same booster as UBJSON (exact floats), which
                                 seldon-server's XGBOOST_SERVER reads before `model.bst`
  * `xgboost-conversion.json`    source, xgboost version, trees, objective, and the check below

Check: the converted booster, loaded again, predicts exactly what the legacy one predicts on
1000 synthetic rows (N(0, 2) per feature, 10 % missing), else the script fails.
"""

from __future__ import annotations

import json
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: convert_xgboost.py <model dir>", file=sys.stderr)
        return 2
    root = argv[1]
    src = os.path.join(root, "model.bst")
    out = os.path.join(root, "model.ubj")
    part = os.path.join(root, ".model.ubj.part.ubj")  # the extension picks the format
    try:
        import numpy as np
        import xgboost as xgb
    except ImportError as e:
        print(f"{e}: this Python ({sys.executable}) has no xgboost", file=sys.stderr)
        return 1
    try:
        legacy = xgb.Booster(model_file=src)
        legacy.save_model(part)
        converted = xgb.Booster(model_file=part)
    except xgb.core.XGBoostError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else repr(e)
        print(f"xgboost {xgb.__version__} cannot load {src}: {first}", file=sys.stderr)
        if os.path.exists(part):
            os.remove(part)
        return 1
    n = legacy.num_features()
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 2.0, size=(1000, n)).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    want = legacy.predict(xgb.DMatrix(x))
    got = converted.predict(xgb.DMatrix(x))
    diff = float(np.max(np.abs(want - got))) if want.size else 0.0
    if diff != 0.0:
        os.remove(part)
        print(f"{src}: the re-saved booster differs by {diff}", file=sys.stderr)
        return 1
    os.replace(part, out)
    config = json.loads(legacy.save_config())
    record = {
        "source": "model.bst",
        "output": "model.ubj",
        "xgboost": xgb.__version__,
        "objective": config["learner"]["objective"]["name"],
        "booster": config["learner"]["gradient_booster"]["name"],
        "features": n,
        "rounds": legacy.num_boosted_rounds(),
        "check": {"rows": int(x.shape[0]), "max_abs_diff": diff},
    }
    with open(os.path.join(root, "xgboost-conversion.json"), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    print(f"converted {src} → {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
