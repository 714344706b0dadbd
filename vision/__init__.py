"""Study ingestion and vision tools. Knows nothing of the agent: data in (a path), typed data out."""

from typing import TYPE_CHECKING

from vesalius._lazy import installed_name, lazy_attributes

installed_name(__name__)

_WHERE = {
    "Study": "vesalius.vision.study",
    "StudySummary": "vesalius.vision.study",
    "Window": "vesalius.vision.study",
    "StudyError": "vesalius.vision.errors",
    "load_study": "vesalius.vision.ingest",
}
__all__ = [
    "Study",
    "StudyError",
    "StudySummary",
    "Window",
    "load_study",
]
__getattr__, __dir__ = lazy_attributes(__name__, globals(), _WHERE)

if TYPE_CHECKING:
    from vesalius.vision.errors import StudyError
    from vesalius.vision.ingest import load_study
    from vesalius.vision.study import Study, StudySummary, Window
