#!/usr/bin/env python3
"""Regenerates testdata/tensorflow: a small dense network as tf2onnx would emit it
(MatMul + Add + Relu + MatMul + Add + Softmax, opset 17, input `x:0` float32 [-1, 3]) and
onnxruntime's outputs on 64 rows. TensorFlow itself is not installed here (see README).

    ~/.cache/seldon-mesh/onnxvenv/bin/python model-servers/server/testdata/make_testdata.py
"""
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)
w1 = rng.normal(size=(3, 8)).astype(np.float32)
b1 = rng.normal(size=(8,)).astype(np.float32)
w2 = rng.normal(size=(8, 2)).astype(np.float32)
b2 = rng.normal(size=(2,)).astype(np.float32)
nodes = [
    helper.make_node("MatMul", ["x:0", "w1"], ["h0"]),
    helper.make_node("Add", ["h0", "b1"], ["h1"]),
    helper.make_node("Relu", ["h1"], ["h2"]),
    helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
    helper.make_node("Add", ["h3", "b2"], ["logits"]),
    helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
]
graph = helper.make_graph(
    nodes,
    "dense",
    [helper.make_tensor_value_info("x:0", TensorProto.FLOAT, ["unk__0", 3])],
    [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["unk__0", 2])],
    [numpy_helper.from_array(a, n) for a, n in [(w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2")]],
)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tf2onnx-like")
model.ir_version = 8
onnx.checker.check_model(model)
d = os.path.join(here, "tensorflow")
onnx.save(model, os.path.join(d, "model.onnx"))
x = rng.normal(size=(64, 3)).astype(np.float32)
y = ort.InferenceSession(os.path.join(d, "model.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x:0": x})[0]
with open(os.path.join(here, "tensorflow.expected.json"), "w") as f:
    json.dump({"rows": x.tolist(), "probabilities": y.tolist()}, f)
