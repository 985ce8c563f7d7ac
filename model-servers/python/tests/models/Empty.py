"""A class with no hooks at all: every operation falls back to Seldon's defaults."""


class Empty:
    pass
