"""The one error base of every Vesalius package: what went wrong, and what the user can do about it.

Each package raises its own subclass (`StudyError` for studies, `KnowledgeError` for the knowledge base,
`AgentError` for questions, settings and the model server), so a caller can catch all of them at once with
`VesaliusError` or one kind alone. `problem` and `remedy` are plain sentences without a final full stop.
"""

from __future__ import annotations


class VesaliusError(Exception):
    def __init__(self, problem: str, remedy: str):
        super().__init__(f"{problem}. {remedy}")
        self.problem = problem
        self.remedy = remedy

    def one_line(self) -> str:
        """The error as one line, whatever a file name or header value inside it holds."""
        return " ".join(f"{self.problem}. {self.remedy}".split())
