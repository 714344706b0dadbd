"""The one error type retrieval raises: a problem and what to do about it."""


class KnowledgeError(Exception):
    def __init__(self, problem: str, remedy: str):
        super().__init__(f"{problem}. {remedy}")
        self.problem = problem
        self.remedy = remedy
