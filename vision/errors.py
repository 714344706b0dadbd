"""The one error type vision raises for bad input: a problem and what to do about it."""


class StudyError(Exception):
    """A study that cannot be read or used. `problem` says what is wrong, `remedy` what the user can do."""

    def __init__(self, problem: str, remedy: str):
        super().__init__(f"{problem}. {remedy}")
        self.problem = problem
        self.remedy = remedy


class ModelError(StudyError):
    """A shipped model that cannot be loaded or rebuilt (missing or damaged weights, missing training data)."""


class LimitError(StudyError):
    """A limit on the bytes a whole load may read or inflate was reached: the load stops, rather than leaving out
    one file and going on."""
