"""Turn a path (DICOM, PNG or JPEG) into a `Study`, or fail with a `StudyError` that says what to do."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vision.dicom_io import read_dicom
from vision.errors import StudyError
from vision.image_io import read_image
from vision.study import Study

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"


def load_study(path: str | Path, *, modality: str | None = None) -> Study:
    """Load the study at `path`. `modality` (a DICOM code such as CR or CT) labels plain images, which carry none."""
    path = Path(path)
    if not path.exists():
        raise StudyError(f"no such file: {path}", "Check the path, or pass a DICOM, PNG or JPEG file")
    if path.is_dir():
        raise StudyError(
            f"{path} is a folder", "Pass one DICOM, PNG or JPEG file (series folders are not supported yet)"
        )
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StudyError(f"cannot read {path}: {exc.strerror}", "Check the file's permissions") from exc
    if not data:
        raise StudyError(f"{path} is empty (0 bytes)", "The file was not written completely: copy or export it again")
    study_id = hashlib.sha256(data).hexdigest()[:16]
    if data.startswith((_PNG, _JPEG)):
        return read_image(path, data, study_id, modality=modality)
    return read_dicom(path, study_id)
