"""Errors the agent raises for bad input or an unusable model server: a problem and what to do about it."""


class AgentError(Exception):
    def __init__(self, problem: str, remedy: str):
        super().__init__(f"{problem}. {remedy}")
        self.problem = problem
        self.remedy = remedy


class ModelError(AgentError):
    """The model server could not be reached or did not answer usefully."""
