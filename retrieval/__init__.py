"""Knowledge retrieval grounded in UMLS CUIs and SNOMED CT codes. Knows nothing of the agent."""

from retrieval.build import BuildOptions, BuildReport, build, current_build
from retrieval.concepts import Concept, KnowledgeFile, bundled_knowledge_path, load_knowledge
from retrieval.embedder import Embedder
from retrieval.errors import KnowledgeError
from retrieval.search import MODES, Hit, KnowledgeBase, Link

__all__ = [
    "MODES",
    "BuildOptions",
    "BuildReport",
    "Concept",
    "Embedder",
    "Hit",
    "KnowledgeBase",
    "KnowledgeError",
    "KnowledgeFile",
    "Link",
    "build",
    "bundled_knowledge_path",
    "current_build",
    "load_knowledge",
]
