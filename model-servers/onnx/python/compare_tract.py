#!/usr/bin/env python3
"""tract vs ONNX Runtime on the converter outputs in testdata/ (a note for the README, not
a benchmark framework).

Runs every committed graph in both engines on the reference rows: does tract load and run
it, how far apart are the outputs, and µs per call (1 and 32 rows, calls alternated
between the engines so background load hits both alike, p10/median of 300 calls each).
tract comes from PyPI `tract==0.23.9` (ctypes over tract's Rust core, ~3-5 µs of Python
overhead per call, same for onnxruntime's binding); building tract in Rust took > 1 h on
this 2-core box, so the Rust crate is not a dependency.

    python3 -m venv ~/.cache/seldon-mesh/tractvenv
    ~/.cache/seldon-mesh/tractvenv/bin/pip install tract==0.23.9 numpy==2.4.6 onnxruntime==1.31.1
    ~/.cache/seldon-mesh/tractvenv/bin/python model-servers/onnx/python/compare_tract.py
"""

import json
import os
import time

import numpy as np
import onnxruntime as ort
import tract

here = os.path.dirname(os.path.abspath(__file__))
data = os.path.join(here, "..", "testdata")
rows = np.asarray(json.load(open(os.path.join(data, "reference.json")))["rows"], dtype=np.float32)


def ops(path):
    import onnx  # only if installed; op list is informative

    return sorted({n.op_type for n in onnx.load(path).graph.node})


def timed(fn, n=300):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1e6)
    return np.percentile(out, 10), np.median(out)


def main():
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    print("| graph | ONNX ops | tract | max abs diff tract vs ORT | rows | tract p10 / median µs | ORT p10 / median µs |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for model in ["logreg/model.onnx", "logreg/decision_function.onnx", "rf/model.onnx", "svc/model.onnx"]:
        path = os.path.join(data, model)
        try:
            op_list = ", ".join(ops(path))
        except ImportError:
            op_list = "?"
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        outs = [o.name for o in sess.get_outputs()]
        try:
            im = tract.onnx().load(path)
            im.set_input_fact(0, "1,4,f32")  # concretised per batch size below
            im.into_model()  # load + type-check now, so unsupported ops fail here
        except Exception as e:  # noqa: BLE001 - any load failure is the finding
            print(f"| {model} | {op_list} | **fails to load**: {str(e).splitlines()[0][:90]} | – | – | – | – |")
            continue
        try:
            plans = {}
            for n in (1, 32):
                im = tract.onnx().load(path)
                im.set_input_fact(0, f"{n},4,f32")
                plans[n] = im.into_model().into_runnable()
        except Exception as e:  # noqa: BLE001 - any load failure is the finding
            print(f"| {model} | {op_list} | **fails to load**: {str(e).splitlines()[0][:90]} | – | – | – | – |")
            continue
        for n in (1, 32):
            x = rows[:n]
            ref = sess.run(None, {name: x})
            plan = plans[n]
            got = plan.run([x])
            diff = max(
                float(np.max(np.abs(got[i].to_numpy().astype(np.float64) - np.asarray(ref[i], dtype=np.float64))))
                for i in range(len(outs))
            )
            tp, tm_ = [], []
            for _ in range(3):  # alternate engines in blocks
                tp.append(timed(lambda: plan.run([x]), 100))
                tm_.append(timed(lambda: sess.run(None, {name: x}), 100))
            t10, tmed = np.min([a for a, _ in tp]), np.median([b for _, b in tp])
            o10, omed = np.min([a for a, _ in tm_]), np.median([b for _, b in tm_])
            print(f"| {model} | {op_list} | runs | {diff:.1e} | {n} | {t10:.1f} / {tmed:.1f} | {o10:.1f} / {omed:.1f} |")


if __name__ == "__main__":
    main()
