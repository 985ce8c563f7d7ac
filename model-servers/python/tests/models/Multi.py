"""Two classes in one module, loaded as `Multi.Second`."""


class Multi:
    def predict(self, X, names):
        return "first"


class Second:
    def predict(self, X, names):
        return "second"
