"""The ensemble sample's COMBINER: the element-wise mean of its children's answers.

Seldon Core's Python class convention (`aggregate`), run by the project's wrapper:

    seldon-core-microservice Average --service-type COMBINER

Every child must answer the same shape (here: one row of 3 iris class probabilities per
input row); the mean keeps it, so the ensemble answers like each of its models.
"""

import numpy as np
from seldon_mesh_wrapper.errors import SeldonMicroserviceException  # answers 400


class Average:
    def __init__(self, **kwargs):
        pass

    def aggregate(self, features_list, feature_names_list):
        arrays = [np.asarray(f, dtype=np.float64) for f in features_list]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            raise SeldonMicroserviceException(f"children answered different shapes: {sorted(shapes)}")
        return np.mean(arrays, axis=0)

    def class_names(self):
        return ["setosa", "versicolor", "virginica"]
