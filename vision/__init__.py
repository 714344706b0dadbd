"""Study ingestion and vision tools. Knows nothing of the agent: data in (a path), typed data out."""

from vision.errors import StudyError
from vision.study import Study, StudySummary, Window
from vision.ingest import load_study

__all__ = ["Study", "StudyError", "StudySummary", "Window", "load_study"]
