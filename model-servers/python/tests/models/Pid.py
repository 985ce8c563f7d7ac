"""Answers with the pid of the worker process that served the call (tag `pid`) and counts
each call as a COUNTER `pid_requests`, so tests can tell workers apart."""

import os

from seldon_mesh_wrapper import SeldonResponse


class Pid:
    def predict(self, X, feature_names):
        return SeldonResponse(
            X,
            tags={"pid": os.getpid()},
            metrics=[{"type": "COUNTER", "key": "pid_requests", "value": 1}],
        )
