"""The study store: de-identified studies in a folder that every worker sees, one folder per study, named by its
content, so the same upload twice is one study and two workers storing it at once agree.

    <store>/<study id>/00000.dcm ...   the de-identified images (or image.png)
    <store>/<study id>/modality        the modality the uploader gave a plain image, if any
    <store>/<study id>/heatmaps/       what the vision tools drew for it
    <store>/.incoming/<random>/        one upload while it is checked; removed whatever happens
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vesalius.vision.deid_copy import PLAIN_IMAGE, content_id, copy_source, write_deidentified
from vesalius.vision.errors import StudyError
from vesalius.vision.options import IngestOptions
from vesalius.vision.study import StudySummary

STUDY_ID = re.compile(r"[0-9a-f]{24}")


class StudyStore:
    def __init__(self, root: Path):
        self.root = root
        self.incoming = root / ".incoming"
        self.incoming.mkdir(parents=True, exist_ok=True, mode=0o700)

    @contextmanager
    def scratch(self) -> Iterator[Path]:
        """A private folder for one upload, inside the store (raw bytes never go to the system's temp folder)."""
        folder = self.incoming / uuid.uuid4().hex
        folder.mkdir(mode=0o700)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def add(self, files: list[Path], scratch: Path, options: IngestOptions) -> tuple[str, StudySummary]:
        """Check the uploaded `files` as ingestion would, store their de-identified copy, and return its id and
        summary. Nothing is stored when the study is refused."""
        if not files:
            raise StudyError("the upload has no files", "Send DICOM files, a zip of a series, or a PNG/JPEG/TIFF")
        out = scratch / "deidentified"
        out.mkdir()
        copy = write_deidentified(files[0] if len(files) == 1 else files[0].parent, out, options)
        if options.modality and (out / PLAIN_IMAGE).exists():  # a plain image carries no modality of its own
            (out / "modality").write_text(options.modality)
        study_id = content_id(out)
        target = self.root / study_id
        try:
            os.rename(out, target)  # atomic; a study that is already there stays as it is
        except OSError:
            if not target.is_dir():
                raise
        (target / "heatmaps").mkdir(exist_ok=True)
        # The store's id, not the content hash ingestion gives the folder: one id for the study everywhere.
        return study_id, copy.summary.model_copy(update={"study_id": study_id})

    def path(self, study_id: str) -> Path | None:
        if not STUDY_ID.fullmatch(study_id):
            return None
        path = self.root / study_id
        return path if path.is_dir() else None

    def source(self, study_id: str) -> tuple[Path, str | None] | None:
        """What to open for the study (its folder, or its plain image) and the modality it was uploaded with."""
        path = self.path(study_id)
        if path is None:
            return None
        modality = path / "modality"
        return copy_source(path), modality.read_text()[:16] if modality.is_file() else None

    def study_id_of(self, source: str | Path | None) -> str | None:
        """The id of the study a thread's stored path names, if it is one of this store's."""
        if not source:
            return None
        path = Path(source)
        folder = path.parent if path.name == PLAIN_IMAGE else path
        return folder.name if folder.parent == self.root.resolve() and STUDY_ID.fullmatch(folder.name) else None

    def heatmaps(self, study_id: str) -> Path | None:
        path = self.path(study_id)
        return path / "heatmaps" if path else None

    def delete(self, study_id: str) -> bool:
        path = self.path(study_id)
        if path is None:
            return False
        # Renamed first, so that no reader sees half a study, then removed.
        doomed = self.incoming / f"deleted-{uuid.uuid4().hex}"
        os.rename(path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        return True
