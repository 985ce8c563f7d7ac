class BadInit:
    def __init__(self, needed):
        self.needed = needed
