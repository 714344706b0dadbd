"""Errors the agent raises for bad input or an unusable model server: a problem and what to do about it."""

from vesalius.errors import VesaliusError


class AgentError(VesaliusError):
    """A question, a setting or a path the user gave that cannot be used."""


class ModelServerError(AgentError):
    """The model server could not be reached or did not answer usefully."""
