"""A MODEL with only predict(X, names) — no meta kwarg, no other hooks."""


class Plain:
    def predict(self, X, feature_names):
        return X
