"""Knowledge retrieval grounded in UMLS CUIs and SNOMED CT codes. Knows nothing of the agent.

Build a base with `vesalius.retrieval.build.build` (the function shares its module's name, so it is not a
package attribute here)."""

from typing import TYPE_CHECKING

from vesalius._lazy import installed_name, lazy_attributes

installed_name(__name__)

_WHERE = {
    "MODES": "vesalius.retrieval.search",
    "BuildOptions": "vesalius.retrieval.build",
    "BuildReport": "vesalius.retrieval.build",
    "Concept": "vesalius.retrieval.concepts",
    "Embedder": "vesalius.retrieval.embedder",
    "Hit": "vesalius.retrieval.search",
    "KnowledgeBase": "vesalius.retrieval.search",
    "KnowledgeError": "vesalius.retrieval.errors",
    "KnowledgeFile": "vesalius.retrieval.concepts",
    "Link": "vesalius.retrieval.search",
    "bundled_knowledge_path": "vesalius.retrieval.concepts",
    "current_build": "vesalius.retrieval.build",
    "load_knowledge": "vesalius.retrieval.concepts",
}
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
    "bundled_knowledge_path",
    "current_build",
    "load_knowledge",
]
__getattr__, __dir__ = lazy_attributes(__name__, globals(), _WHERE)

if TYPE_CHECKING:
    from vesalius.retrieval.build import BuildOptions, BuildReport, current_build
    from vesalius.retrieval.concepts import Concept, KnowledgeFile, bundled_knowledge_path, load_knowledge
    from vesalius.retrieval.embedder import Embedder
    from vesalius.retrieval.errors import KnowledgeError
    from vesalius.retrieval.search import MODES, Hit, KnowledgeBase, Link
