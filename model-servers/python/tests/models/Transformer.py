"""An input/output TRANSFORMER with feature_names()."""


class Transformer:
    def transform_input(self, X, feature_names, meta=None):
        return X + 1

    def transform_output(self, X, feature_names, meta=None):
        return X * 10

    def feature_names(self):
        return ["f0", "f1"]
