"""The one error type retrieval raises: a problem and what to do about it."""

from vesalius.errors import VesaliusError


class KnowledgeError(VesaliusError):
    """A knowledge base or a terminology source that cannot be built, opened or searched."""
