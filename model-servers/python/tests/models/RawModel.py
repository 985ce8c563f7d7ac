"""Raw hooks: they get the whole message (dict on REST, protobuf on gRPC) and return it."""

import numpy as np


def _as_dict(msg):
    if isinstance(msg, dict) or isinstance(msg, (bytes, list)):
        return msg
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(msg)


class RawModel:
    def predict_raw(self, msg):
        if isinstance(msg, bytes):
            return msg.replace(b"in", b"out")
        body = _as_dict(msg)
        return {
            "jsonData": {"raw": True, "keys": sorted(body.keys())},
            "meta": {"metrics": [{"type": "COUNTER", "key": "raw_calls", "value": 1}]},
        }

    def transform_input_raw(self, msg):
        return {"strData": "ti-raw"}

    def transform_output_raw(self, msg):
        return {"strData": "to-raw"}

    def route_raw(self, msg):
        return {"data": {"ndarray": [[2]]}}

    def aggregate_raw(self, msgs):
        body = _as_dict(msgs)
        n = len(body["seldonMessages"]) if isinstance(body, dict) else len(body)
        return {"jsonData": {"count": n}}

    def send_feedback_raw(self, feedback):
        return {"strData": "fb-raw"}

    def health_status_raw(self):
        return {"strData": "healthy"}
