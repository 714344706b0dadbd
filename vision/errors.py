"""The one error type vision raises for bad input: a problem and what to do about it."""

from vesalius.errors import VesaliusError


class StudyError(VesaliusError):
    """A study that cannot be read or used. `problem` says what is wrong, `remedy` what the user can do."""


class ModelWeightsError(StudyError):
    """A shipped model that cannot be loaded or rebuilt (missing or damaged weights, missing training data)."""


class LimitError(StudyError):
    """A limit on the bytes a whole load may read or inflate was reached: the load stops, rather than leaving out
    one file and going on."""
