#!/usr/bin/env python3
"""Model-fetch step of TENSORFLOW_SERVER: a TensorFlow SavedModel → `model.onnx` (tf2onnx).

Run by the model initializer after the copy, with the Python that has the pinned
tensorflow-cpu and tf2onnx (model-servers/initializer/scripts/requirements-tensorflow.txt;
`SELDON_TF_PYTHON`):

    python convert_tensorflow.py /mnt/models

The SavedModel is `<dir>/saved_model.pb` or, in TF Serving's layout, the highest numbered
version folder `<dir>/<n>/saved_model.pb`. Writes, in `<dir>`:
  * `model.onnx`                   the `serving_default` signature, opset 17 (what
                                   seldon-server's TENSORFLOW_SERVER serves)
  * `tensorflow-conversion.json`   source folder, signature inputs/outputs, versions

Exits non-zero with tf2onnx's reason when the graph cannot be converted (an op tf2onnx does
not map, a string or tf.Example signature): the model then cannot be served by ONNX Runtime.
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before tensorflow is imported
import subprocess
import sys

OPSET = 17
SIGNATURE = "serving_default"


def saved_model_dir(root: str) -> str | None:
    if os.path.isfile(os.path.join(root, "saved_model.pb")):
        return root
    versions = [
        int(n)
        for n in os.listdir(root)
        if n.isdigit() and os.path.isfile(os.path.join(root, n, "saved_model.pb"))
    ]
    return os.path.join(root, str(max(versions))) if versions else None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: convert_tensorflow.py <model dir>", file=sys.stderr)
        return 2
    root = argv[1]
    source = saved_model_dir(root)
    if source is None:
        print(f"{root}: no saved_model.pb (nor <version>/saved_model.pb)", file=sys.stderr)
        return 1
    try:
        import tensorflow as tf
        import tf2onnx
    except ImportError as e:
        print(
            f"{e}: this Python ({sys.executable}) has no tensorflow/tf2onnx; install "
            "model-servers/initializer/scripts/requirements-tensorflow.txt and point "
            "SELDON_TF_PYTHON at it",
            file=sys.stderr,
        )
        return 1
    out = os.path.join(root, "model.onnx")
    part = os.path.join(root, ".model.onnx.part")
    cmd = [
        sys.executable, "-m", "tf2onnx.convert",
        "--saved-model", source,
        "--signature_def", SIGNATURE,
        "--opset", str(OPSET),
        "--output", part,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0 or not os.path.isfile(part):
        if os.path.exists(part):
            os.remove(part)
        tail = [l for l in done.stderr.splitlines() if l.strip()][-8:]
        print(f"tf2onnx could not convert {source}:", *tail, sep="\n", file=sys.stderr)
        return 1
    os.replace(part, out)
    loaded = tf.saved_model.load(source)
    sig = loaded.signatures[SIGNATURE]
    spec = lambda s: {"dtype": s.dtype.name, "shape": [d if d is not None else -1 for d in s.shape.as_list()]}
    record = {
        "source": os.path.relpath(source, root),
        "signature": SIGNATURE,
        "inputs": {k: spec(v) for k, v in sig.structured_input_signature[1].items()},
        "outputs": {k: spec(v) for k, v in sig.structured_outputs.items()},
        "opset": OPSET,
        "versions": {"tensorflow": tf.__version__, "tf2onnx": tf2onnx.__version__},
    }
    with open(os.path.join(root, "tensorflow-conversion.json"), "w") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    print(f"converted {source} → {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
