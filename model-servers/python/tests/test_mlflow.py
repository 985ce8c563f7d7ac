"""MLFLOW_SERVER's Python path (`seldon_mesh_wrapper.mlflow_server.MLFlowServer`): real MLflow
models saved by the pinned mlflow-skinny (tests/mlflow/make_models.py, run in a child process,
which also records `mlflow.pyfunc.load_model(...).predict` called directly on 1000 rows),
served by the real `seldon-core-microservice` and compared with those answers.

mlflow, pandas and sklearn are never imported into the pytest process: their threads made a
later test's fork (subprocess with preexec_fn) abort the whole run.

Tolerance: 1e-12 absolute (float64 through JSON; observed ≤ 2e-15)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import start_server, stop_server

HERE = Path(__file__).parent
CLASS = "seldon_mesh_wrapper.mlflow_server.MLFlowServer"
TOL = 1e-12


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mlflow")
    subprocess.run([sys.executable, str(HERE / "mlflow/make_models.py"), str(out)], check=True)
    return out


@pytest.fixture(scope="module")
def expected(models: Path) -> dict:
    return json.loads((models / "expected.json").read_text())


@pytest.fixture(scope="module")
def rows(expected: dict) -> np.ndarray:
    return np.asarray(expected["rows"], dtype=np.float64)


def direct(expected: dict, name: str) -> np.ndarray:
    return np.asarray(expected[name], dtype=np.float64)


def params(model_uri: Path, **extra: str) -> str:
    p = [{"name": "model_uri", "value": str(model_uri), "type": "STRING"}]
    p += [{"name": k, "value": v, "type": "STRING"} for k, v in extra.items()]
    return json.dumps(p)


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("mlflow-servers")
    started = []

    def make(model_uri: Path, **extra: str):
        s = start_server(CLASS, tmp, "--service-type", "MODEL", "--parameters", params(model_uri, **extra))
        started.append(s)
        return s

    yield make
    for s in started:
        stop_server(s)


def test_sklearn_pyfunc_matches_mlflow_on_1000_rows(models, expected, rows, serve):
    want = direct(expected, "sklearn")
    assert want.shape == (1000, 3)
    server = serve(models / "sklearn")
    with server.client() as c:
        r = c.post("/api/v1.0/predictions", json={"data": {"ndarray": rows.tolist()}})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["data"]["names"] == ["t:0", "t:1", "t:2"]
        got = np.asarray(body["data"]["ndarray"], dtype=np.float64)
        assert got.shape == want.shape
        assert np.max(np.abs(got - want)) <= TOL
        # Open Inference Protocol v2 on the same server
        r = c.post(
            "/v2/models/MLFlowServer/infer",
            json={"inputs": [{"name": "X", "datatype": "FP64", "shape": [1000, 4], "data": rows.ravel().tolist()}]},
        )
        assert r.status_code == 200, r.text
        out = r.json()["outputs"][0]
        assert out["shape"] == [1000, 3]
        assert np.max(np.abs(np.asarray(out["data"]).reshape(1000, 3) - want)) <= TOL
    assert "loaded" in server.output() and "mlflow.sklearn" in server.output()


def test_custom_python_model_matches_mlflow_on_1000_rows(models, expected, rows, serve):
    want = direct(expected, "custom")
    assert want.shape == (1000, 2)
    server = serve(models / "custom")
    with server.client() as c:
        r = c.post("/api/v1.0/predictions", json={"data": {"ndarray": rows.tolist()}})
        assert r.status_code == 200, r.text
        body = r.json()
        # the PythonModel's DataFrame columns become the response's names
        assert body["data"]["names"] == ["score", "positive"]
        got = np.asarray(body["data"]["ndarray"], dtype=np.float64)
        assert np.max(np.abs(got - want)) <= TOL
        # the artifact was read by load_context: score = X @ w + b
        w, b = np.array([0.5, -1.25, 2.0, 0.125]), -3.5
        assert np.allclose(got[:, 0], rows @ w + b, rtol=0, atol=1e-12)


def test_dataframe_xtype_passes_names_as_columns(models, expected, rows, serve):
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    want = direct(expected, "custom")[:5]  # the model reads the frame's values, in order
    server = serve(models / "custom", xtype="DataFrame")
    with server.client() as c:
        r = c.post("/api/v1.0/predictions", json={"data": {"names": names, "ndarray": rows[:5].tolist()}})
        assert r.status_code == 200, r.text
        got = np.asarray(r.json()["data"]["ndarray"], dtype=np.float64)
        assert np.max(np.abs(got - want)) <= TOL


def test_a_folder_without_mlmodel_does_not_start(tmp_path):
    with pytest.raises(RuntimeError) as e:
        start_server(CLASS, tmp_path, "--service-type", "MODEL", "--parameters", params(tmp_path))
    assert "holds no MLmodel file" in str(e.value)


def test_unknown_xtype_is_refused(tmp_path, models):
    with pytest.raises(RuntimeError) as e:
        start_server(CLASS, tmp_path, "--service-type", "MODEL", "--parameters", params(models / "custom", xtype="csv"))
    assert "unknown xtype `csv`" in str(e.value)
