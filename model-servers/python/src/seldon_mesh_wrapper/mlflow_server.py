"""MLFLOW_SERVER's Python path: an MLflow model directory served with `mlflow.pyfunc`.

`seldon-server --implementation MLFLOW_SERVER` serves the flavors it runs natively (onnx,
xgboost, lightgbm, converted sklearn) itself; a model it cannot run (only `python_function`,
e.g. a custom `mlflow.pyfunc.PythonModel`, or a sklearn flavor without its ONNX twin) is
handed to this class, as Seldon v1's `MLFlowServer` served every MLflow model:

    seldon-core-microservice seldon_mesh_wrapper.mlflow_server.MLFlowServer --service-type MODEL \\
        --parameters '[{"name":"model_uri","value":"/mnt/models","type":"STRING"}]'

Parameters (Seldon v1's): `model_uri` (the folder holding `MLmodel`; the model initializer
has copied it there), `xtype` = `ndarray` (default: the request's array goes to
`predict` as is) or `DataFrame` (a pandas DataFrame whose columns are the request's `names`).
Needs the `mlflow` extra (`pip install seldon-mesh-wrapper[mlflow]`: mlflow-skinny + pandas)
plus whatever the model's own flavor imports (e.g. scikit-learn); no conda environment is
built (Seldon v1 built one from `conda.yaml` at start).
"""

from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger(__name__)
XTYPES = ("ndarray", "DataFrame")


class MLFlowServer:
    def __init__(self, model_uri: str = "/mnt/models", xtype: str = "ndarray"):
        if xtype not in XTYPES:
            raise ValueError(f"unknown xtype `{xtype}` ({', '.join(XTYPES)})")
        self.model_uri = model_uri
        self.xtype = xtype
        self.ready = False
        self._model = None
        self._columns: list[str] | None = None

    def load(self):
        if not os.path.isfile(os.path.join(self.model_uri, "MLmodel")):
            raise FileNotFoundError(f"{self.model_uri} holds no MLmodel file: not an MLflow model")
        from mlflow import pyfunc  # imported here: the wrapper itself does not need mlflow

        self._model = pyfunc.load_model(self.model_uri)
        flavor = self._model.metadata.flavors.get("python_function", {}).get("loader_module", "?")
        log.info("MLFLOW_SERVER (Python) loaded %s with mlflow.pyfunc (%s), xtype %s", self.model_uri, flavor, self.xtype)
        self.ready = True

    def predict(self, X, feature_names=None, **kwargs):
        if not self.ready:
            self.load()
        if self.xtype == "DataFrame":
            import pandas as pd

            names = list(feature_names) if feature_names else None
            X = pd.DataFrame(data=X, columns=names)
        result = self._model.predict(X)
        # A DataFrame answer keeps its column names as the response's `names` (Seldon's
        # MLFlowServer did); anything else gets the wrapper's default `t:<i>`.
        columns = getattr(result, "columns", None)
        if hasattr(result, "to_numpy"):
            result = result.to_numpy()
        result = np.asarray(result)
        width = result.shape[1] if result.ndim == 2 else 0
        self._columns = [str(c) for c in columns] if columns is not None else [f"t:{i}" for i in range(width)]
        return result

    def class_names(self):
        return self._columns or []
