"""TensorFlow SavedModels for tests/tensorflow.rs (TENSORFLOW_SERVER), made at test time with
the pinned tensorflow-cpu (model-servers/initializer/scripts/setup-tensorflow.sh):

    python make_savedmodel.py <out dir>

* `<out>/keras/1/`  a Keras classifier (8 → Dense 32 relu → BatchNorm → Dense 16 tanh →
                    Dense 3 softmax), trained 3 epochs on synthetic data so the batch-norm
                    statistics are not the initial ones; TF Serving's versioned layout
* `<out>/module/`   a plain `tf.Module` with a `tf.function` signature (no Keras):
                    y = sum(tanh(x @ W + b) * v, axis=1, keepdims) + c
* `<out>/<name>.expected.json`  1000 rows (float32) and the `serving_default` signature's
                    answer, computed by TensorFlow itself from the reloaded SavedModel
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


class Regressor(tf.Module):
    def __init__(self, rng):
        super().__init__()
        self.w = tf.Variable(rng.normal(0, 0.5, size=(8, 5)).astype(np.float32))
        self.b = tf.Variable(rng.normal(0, 0.1, size=(5,)).astype(np.float32))
        self.v = tf.Variable(rng.normal(0, 1.0, size=(5,)).astype(np.float32))
        self.c = tf.Variable(np.float32(0.25))

    @tf.function(input_signature=[tf.TensorSpec([None, 8], tf.float32, name="x")])
    def __call__(self, x):
        h = tf.tanh(tf.matmul(x, self.w) + self.b)
        return {"y": tf.reduce_sum(h * self.v, axis=1, keepdims=True) + self.c}


def expected(path, rows):
    sig = tf.saved_model.load(path).signatures["serving_default"]
    name = list(sig.structured_input_signature[1])[0]
    outputs = sig(**{name: tf.constant(rows)})
    (key, value), = outputs.items()
    return {"tensorflow": tf.__version__, "input": name, "output": key,
            "rows": rows.tolist(), "predictions": value.numpy().astype(np.float64).tolist()}


def main(out):
    rng = np.random.default_rng(5)
    tf.random.set_seed(5)
    rows = rng.normal(0.0, 1.5, size=(1000, 8)).astype(np.float32)

    x = rng.normal(0.0, 1.5, size=(3000, 8)).astype(np.float32)
    y = np.digitize(x[:, 0] - x[:, 1] * x[:, 2], [-0.5, 0.5])
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(8,), name="features"),
        tf.keras.layers.Dense(32, activation="relu"),
        tf.keras.layers.BatchNormalization(),
        tf.keras.layers.Dense(16, activation="tanh"),
        tf.keras.layers.Dense(3, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=3, batch_size=64, verbose=0)
    keras_dir = os.path.join(out, "keras", "1")
    tf.saved_model.save(model, keras_dir)

    module_dir = os.path.join(out, "module")
    reg = Regressor(rng)
    tf.saved_model.save(reg, module_dir, signatures={"serving_default": reg.__call__})

    for name, path in [("keras", keras_dir), ("module", module_dir)]:
        with open(os.path.join(out, f"{name}.expected.json"), "w") as f:
            json.dump(expected(path, rows), f)
    print(out)


if __name__ == "__main__":
    main(sys.argv[1])
