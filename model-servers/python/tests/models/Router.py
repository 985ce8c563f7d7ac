"""A ROUTER sending rows whose first value is positive to child 1, else child 0."""

from seldon_mesh_wrapper import SeldonResponse


class Router:
    def __init__(self):
        self.feedback = []

    def route(self, X, feature_names):
        first = X.ravel()[0]
        if first == 99:
            return "not-an-int"
        if first == 42:
            return SeldonResponse(1, tags={"routed": "yes"}, metrics=[{"type": "COUNTER", "key": "routes", "value": 1}])
        return 1 if first > 0 else 0

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        self.feedback.append(routing)
        return [[reward, routing if routing is not None else -1]]
