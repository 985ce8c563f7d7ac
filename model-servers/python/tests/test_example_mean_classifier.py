"""Seldon's MeanClassifier example served unchanged, with exact response bodies."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).parent / "examples" / "mean_classifier"


@pytest.fixture(scope="module")
def server(server_factory, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("mean_classifier")
    shutil.copy(EXAMPLE / "MeanClassifier.py", workdir)
    np.save(workdir / "model.npy", np.array([1.0, 2.0, 3.0]))  # mean 2.0
    return server_factory(
        "MeanClassifier", "--service-type", "MODEL", cwd=workdir,
        env={"PREDICTIVE_UNIT_PARAMETERS": '[{"name":"intValue","value":"1","type":"INT"}]'},
    )


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def test_documented_ndarray_request(server):
    with server.client() as c:
        r = c.post("/api/v1.0/predictions", json={"data": {"names": ["a", "b"], "ndarray": [[3, 5], [1, 3]]}})
    # threshold = mean([1, 2, 3]) + intValue = 3.0
    assert r.json() == {
        "data": {"names": ["proba"], "ndarray": [[sigmoid(4 - 3.0)], [sigmoid(2 - 3.0)]]},
        "meta": {},
    }


def test_documented_tensor_request(server):
    with server.client() as c:
        r = c.post("/predict", json={"data": {"tensor": {"shape": [1, 2], "values": [3, 3]}}})
    assert r.json() == {
        "data": {"names": ["proba"], "tensor": {"shape": [1, 1], "values": [0.5]}},
        "meta": {},
    }


def test_wrong_shape_is_an_internal_error(server):
    with server.client() as c:
        r = c.post("/predict", json={"data": {"ndarray": [1, 2]}})
    assert r.status_code == 500
    assert r.json() == {"status": {"status": 1, "info": "Incorrect shape", "code": -1,
                                   "reason": "MICROSERVICE_INTERNAL_ERROR"}}
