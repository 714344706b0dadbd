"""Vesalius: ask questions about a medical study and get calibrated findings and cited answers.

    import vesalius

    with vesalius.Vesalius(vesalius.load_settings()) as v:
        answer = v.ask("Is there a pleural effusion?", study="ct.dcm")
        print(answer.answer)

Names resolve on first use, so `import vesalius` costs milliseconds: torch, FAISS, pydicom and LangGraph load
only when a study is read, a model runs or a question is asked.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from vesalius._lazy import lazy_attributes
from vesalius.errors import VesaliusError

try:
    __version__ = version("vesalius")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_WHERE = {
    "Vesalius": "vesalius.agent.service",
    "Answer": "vesalius.agent.answer",
    "Turn": "vesalius.agent.answer",
    "Settings": "vesalius.agent.config",
    "load_settings": "vesalius.agent.config",
    "Inspection": "vesalius.agent.inspect",
    "ImageRecord": "vesalius.agent.batch",
    "AgentError": "vesalius.agent.errors",
    "ModelServerError": "vesalius.agent.errors",
    "StudyError": "vesalius.vision.errors",
    "LimitError": "vesalius.vision.errors",
    "ModelWeightsError": "vesalius.vision.errors",
    "KnowledgeError": "vesalius.retrieval.errors",
    "ToolDeclaration": "vesalius.vision.tools.registry",
    "Concept": "vesalius.retrieval.concepts",
    "Hit": "vesalius.retrieval.search",
}

__all__ = [
    "AgentError",
    "Answer",
    "Concept",
    "Hit",
    "ImageRecord",
    "Inspection",
    "KnowledgeError",
    "LimitError",
    "ModelServerError",
    "ModelWeightsError",
    "Settings",
    "StudyError",
    "ToolDeclaration",
    "Turn",
    "Vesalius",
    "VesaliusError",
    "__version__",
    "load_settings",
]


__getattr__, __dir__ = lazy_attributes(__name__, globals(), _WHERE)


if TYPE_CHECKING:
    from vesalius.agent.answer import Answer, Turn
    from vesalius.agent.batch import ImageRecord
    from vesalius.agent.config import Settings, load_settings
    from vesalius.agent.errors import AgentError, ModelServerError
    from vesalius.agent.inspect import Inspection
    from vesalius.agent.service import Vesalius
    from vesalius.retrieval.concepts import Concept
    from vesalius.retrieval.errors import KnowledgeError
    from vesalius.retrieval.search import Hit
    from vesalius.vision.errors import LimitError, ModelWeightsError, StudyError
    from vesalius.vision.tools.registry import ToolDeclaration
