"""Study ingestion and vision tools. Knows nothing of the agent: data in (a path), typed data out."""

from vision.errors import StudyError
from vision.ingest import load_study
from vision.study import Study, StudySummary, Window

__all__ = ["Study", "StudyError", "StudySummary", "Window", "load_study"]
