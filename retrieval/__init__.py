"""Knowledge retrieval grounded in UMLS CUIs and SNOMED CT codes. Knows nothing of the agent."""

from retrieval.concepts import Concept, KnowledgeFile, bundled_knowledge_path, load_knowledge
from retrieval.embedder import Embedder
from retrieval.errors import KnowledgeError
from retrieval.search import Hit, KnowledgeBase

__all__ = [
    "Concept",
    "Embedder",
    "Hit",
    "KnowledgeBase",
    "KnowledgeError",
    "KnowledgeFile",
    "bundled_knowledge_path",
    "load_knowledge",
]
