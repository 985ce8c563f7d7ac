"""Seldon Core's documented "MeanClassifier" example model, written from its documented behaviour.

It loads `model.npy` at start-up, takes an INT parameter `intValue`, sets the threshold to
the mean of the stored array plus `intValue`, and answers each row with
sigmoid(mean(row) - threshold) under the single class name "proba".
"""

import math

import numpy as np


def f(x):
    return 1 / (1 + math.exp(-x))


class MeanClassifier(object):
    def __init__(self, intValue=0):
        self.class_names = ["proba"]
        assert type(intValue) == int, "intValue parameters must be an integer"
        self.int_value = intValue
        X = np.load(open("model.npy", "rb"), encoding="latin1")
        self.threshold_ = X.mean() + self.int_value

    def _meaning(self, x):
        return f(x.mean() - self.threshold_)

    def predict(self, X, feature_names):
        X = np.array(X)
        assert len(X.shape) == 2, "Incorrect shape"
        return [[self._meaning(x)] for x in X]
