"""Reports what the wrapper handed to `predict` (numpy dtype and shape, or the protobuf Any's
type) in per-call tags; upper-cases strings and StringValue customData, echoes the rest."""

import numpy as np
from google.protobuf import any_pb2, wrappers_pb2

from seldon_mesh_wrapper import SeldonResponse


class Strings:
    def predict(self, X, feature_names, meta=None):
        if isinstance(X, any_pb2.Any):
            tags = {"got": "Any", "type_url": X.type_url}
            if X.Is(wrappers_pb2.StringValue.DESCRIPTOR):
                value = wrappers_pb2.StringValue()
                X.Unpack(value)
                out = any_pb2.Any()
                out.Pack(wrappers_pb2.StringValue(value=value.value.upper()))
                return SeldonResponse(out, tags=tags)
            return SeldonResponse(X, tags=tags)
        tags = {"got": type(X).__name__, "dtype": X.dtype.str, "shape": list(X.shape)}
        if X.dtype.kind == "U":
            return SeldonResponse(np.char.upper(X), tags=tags)
        return SeldonResponse(X, tags=tags)
