"""predict blocks until a file appears, to show the event loop keeps serving meanwhile."""

import os
import time


class Blocking:
    def predict(self, X, names):
        path = str(X)
        while not os.path.exists(path):
            time.sleep(0.01)
        return "released"
