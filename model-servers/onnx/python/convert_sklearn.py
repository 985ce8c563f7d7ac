#!/usr/bin/env python3
"""Model-fetch step of SKLEARN_SERVER: `model.joblib` → `model.onnx` + `conversion.json`.

Run by the model initializer after the copy (Python is needed only here, never at serving
time):

    python convert_sklearn.py /mnt/models            # exit 0 on success *and* on fallback
    python convert_sklearn.py /mnt/models --source model.pkl     # MLflow sklearn flavor

Writes, next to `model.joblib`:
  * `model.onnx`                  label + probabilities (zipmap=False) or the regressor output
  * `decision_function.onnx`      raw scores, when the estimator has decision_function and
                                  skl2onnx's `raw_scores` output matches it
  * `conversion.json`             which method reads which file/output, classes, versions and
                                  the max error of every method against sklearn itself
  * `python-fallback.json`        instead of the above when skl2onnx cannot convert the
                                  estimator or the converted graph disagrees with sklearn:
                                  the server then runs the Python wrapper (and says why)

Every converted method is checked against the estimator on `--check-rows` synthetic rows
(float32, N(0, 2) per feature, shifted by the fitted StandardScaler/mean when visible).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback

import joblib
import numpy as np

TOLERANCE = 1e-5  # |onnx - sklearn| <= TOLERANCE * max(1, |sklearn|)
TIE = 1e-6  # probabilities closer than this to the row maximum count as tied
OPSET = {"": 17, "ai.onnx.ml": 3}


def final_estimator(est):
    steps = getattr(est, "steps", None)
    return steps[-1][1] if steps else est


def synthetic_rows(est, n_features: int, rows: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 2.0, size=(rows, n_features))
    for _, step in getattr(est, "steps", [("", est)]):
        mean = getattr(step, "mean_", None)
        scale = getattr(step, "scale_", None)
        if mean is not None and np.shape(mean) == (n_features,):
            x = x * (scale if scale is not None else 1.0) + mean
            break
    return x.astype(np.float32)


def max_rel_error(ours: np.ndarray, ref: np.ndarray) -> float:
    ours = np.asarray(ours, dtype=np.float64).reshape(ref.shape)
    return float(np.max(np.abs(ours - ref) / np.maximum(1.0, np.abs(ref)))) if ref.size else 0.0


def label_error(ours, ref) -> float:
    ref = np.asarray(ref)
    if np.issubdtype(ref.dtype, np.number):
        return max_rel_error(ours, ref.astype(np.float64))
    return 0.0 if np.array_equal(np.asarray(ours).astype(str), ref.astype(str)) else 1.0


def run_onnx(path: str, x: np.ndarray) -> dict:
    import onnxruntime as ort

    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: x})))


def convert(est, n_features: int, options: dict):
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    return to_onnx(
        est,
        initial_types=[("X", FloatTensorType([None, n_features]))],
        target_opset=OPSET,
        options=options,
    )


def classifier_outputs(onx):
    names = [o.name for o in onx.graph.output]
    label = "label" if "label" in names else names[0]
    proba = "probabilities" if "probabilities" in names else (names[1] if len(names) > 1 else None)
    return label, proba


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("--check-rows", type=int, default=1000)
    ap.add_argument("--source", default="model.joblib", help="pickle in model_dir (MLflow: model.pkl)")
    args = ap.parse_args(argv)
    d = args.model_dir
    src = os.path.join(d, args.source)
    for stale in ("model.onnx", "decision_function.onnx", "conversion.json", "python-fallback.json"):
        if os.path.exists(os.path.join(d, stale)):
            os.remove(os.path.join(d, stale))

    import onnx
    import onnxruntime
    import skl2onnx
    import sklearn

    versions = {
        "scikit-learn": sklearn.__version__,
        "skl2onnx": skl2onnx.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
    }
    est = joblib.load(src)
    name = type(est).__name__
    if getattr(est, "steps", None):
        name = "Pipeline(" + ", ".join(type(s).__name__ for _, s in est.steps) + ")"

    def fallback(reason: str) -> int:
        with open(os.path.join(d, "python-fallback.json"), "w") as f:
            json.dump({"estimator": name, "reason": reason, "versions": versions}, f, indent=2)
        print(f"convert_sklearn: {name} is served by the Python wrapper: {reason}", file=sys.stderr)
        return 0

    n_features = getattr(est, "n_features_in_", None)
    if n_features is None:
        return fallback("the estimator has no n_features_in_ (not fitted, or not an sklearn estimator)")
    last = final_estimator(est)
    is_classifier = getattr(last, "_estimator_type", None) == "classifier" or hasattr(last, "classes_")
    x = synthetic_rows(est, int(n_features), args.check_rows)
    x64 = x.astype(np.float64)
    methods: dict = {}
    errors: dict = {}
    try:
        options = {id(last): {"zipmap": False}} if is_classifier else {}
        onx = convert(est, int(n_features), options)
    except Exception as e:  # skl2onnx raises many types; all mean "cannot convert"
        traceback.print_exc()
        return fallback(f"skl2onnx {skl2onnx.__version__} cannot convert it: {type(e).__name__}: {e}")
    model_path = os.path.join(d, "model.onnx")
    onnx.save(onx, model_path)
    try:
        got = run_onnx(model_path, x)
    except Exception as e:
        os.remove(model_path)
        return fallback(f"onnxruntime cannot run the converted graph: {e}")

    if is_classifier:
        label, proba = classifier_outputs(onx)
        methods["predict"] = {"file": "model.onnx", "output": label}
        pred = est.predict(x64)
        errors["predict"] = label_error(got[label], pred)
        classes = getattr(last, "classes_", None)
        if errors["predict"] > TOLERANCE and proba is not None and classes is not None:
            # ONNX tree ensembles break probability ties differently from numpy's argmax;
            # when sklearn's predict is argmax(predict_proba) (forests, boosting, linear
            # models), the server takes the first maximum of the probabilities instead.
            # Ties are exact in sklearn's float64 average but off by an ulp in ONNX's
            # float32 sum (0.35 vs 0.35000002), so the first class within TIE of the
            # maximum wins, as numpy's argmax picks the first of equal values.
            p = np.asarray(got[proba], dtype=np.float64)
            first = np.argmax(p >= p.max(axis=1, keepdims=True) - TIE, axis=1)
            argmax = np.asarray(classes)[first]
            if label_error(argmax, pred) <= TOLERANCE:
                methods["predict"] = {"file": "model.onnx", "output": proba, "argmax_tie": TIE}
                errors["predict"] = label_error(argmax, pred)
        if proba is not None and hasattr(est, "predict_proba"):
            methods["predict_proba"] = {"file": "model.onnx", "output": proba}
            errors["predict_proba"] = max_rel_error(got[proba], est.predict_proba(x64))
    else:
        out = onx.graph.output[0].name
        methods["predict"] = {"file": "model.onnx", "output": out}
        errors["predict"] = max_rel_error(got[out], est.predict(x64).astype(np.float64))

    skipped: dict = {}
    if is_classifier and hasattr(est, "decision_function"):
        try:
            ref = np.asarray(est.decision_function(x64), dtype=np.float64)
            df = convert(est, int(n_features), {id(last): {"zipmap": False, "raw_scores": True}})
            df_path = os.path.join(d, "decision_function.onnx")
            onnx.save(df, df_path)
            _, raw = classifier_outputs(df)
            scores = np.asarray(run_onnx(df_path, x)[raw], dtype=np.float64)
            entry = {"file": "decision_function.onnx", "output": raw}
            if ref.ndim == 1 and scores.ndim == 2 and scores.shape[1] == 2:
                # binary: sklearn returns the positive class's score only
                entry["column"] = 1
                scores = scores[:, 1]
            err = max_rel_error(scores, ref) if scores.shape == ref.shape else float("inf")
            if err <= TOLERANCE:
                methods["decision_function"] = entry
                errors["decision_function"] = err
            else:
                os.remove(df_path)
                skipped["decision_function"] = (
                    f"skl2onnx raw scores differ from sklearn (max error {err:.3g}, shapes "
                    f"{list(scores.shape)} vs {list(ref.shape)})"
                )
        except Exception as e:
            skipped["decision_function"] = f"skl2onnx raw_scores conversion failed: {type(e).__name__}: {e}"

    bad = {m: e for m, e in errors.items() if not e <= TOLERANCE}
    if bad:
        for f in ("model.onnx", "decision_function.onnx"):
            if os.path.exists(os.path.join(d, f)):
                os.remove(os.path.join(d, f))
        return fallback(f"the converted graph disagrees with sklearn beyond {TOLERANCE}: {bad}")

    classes = getattr(last, "classes_", None)
    conversion = {
        "source": args.source,
        "estimator": name,
        "kind": "classifier" if is_classifier else "regressor",
        "n_features": int(n_features),
        "input": onx.graph.input[0].name,
        "classes": [c.item() if hasattr(c, "item") else c for c in classes] if classes is not None else None,
        "methods": methods,
        "unavailable": skipped,
        "check": {"rows": int(args.check_rows), "tolerance": TOLERANCE, "max_error": errors},
        "versions": versions,
    }
    with open(os.path.join(d, "conversion.json"), "w") as f:
        json.dump(conversion, f, indent=2)
    print(f"convert_sklearn: {name} → model.onnx; methods {sorted(methods)}; max error {errors}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
