"""Turn what a user opened (a DICOM file, a series folder or zip, a DICOMDIR, a PNG/JPEG/TIFF) into a `Study`,
or fail with a `StudyError` that says what to do. What a path is comes from its content, not its name."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

from vision import series
from vision.dicom_read import guarded, is_dicomdir, read_dataset
from vision.dicom_study import load_file
from vision.errors import StudyError
from vision.image_io import read_image
from vision.options import IngestOptions
from vision.study import Study

_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_ZIP_MAGIC = b"PK\x03\x04"


def load_study(path: str | Path, *, modality: str | None = None, options: IngestOptions | None = None) -> Study:
    """Load the study at `path`. `modality` (a DICOM code such as CR or CT) labels plain images, which carry none."""
    options = options or IngestOptions()
    if modality:
        options = replace(options, modality=modality)
    path = Path(path)
    if not path.exists():
        raise StudyError(f"no such file or folder: {path}", "Check the path")
    if path.is_dir():
        return series.load_series(path, "folder", series.folder_members(path, options), options)
    try:
        size = path.stat().st_size
        if size > options.max_file_bytes:
            raise StudyError(
                f"{path.name} is {size / 1024**3:.1f} GB, over the {options.max_file_bytes / 1024**3:.1f} GB limit",
                "Open a smaller export (one series), or raise the limit",
            )
        data = path.read_bytes()
    except OSError as exc:
        raise StudyError(f"cannot read {path}: {exc.strerror}", "Check the file's permissions") from exc
    if not data:
        raise StudyError(
            f"{path.name} is empty (0 bytes)", "The file was not written completely: copy or export it again"
        )
    if data.startswith(_ZIP_MAGIC):
        return series.load_series(path, "zip", series.zip_members(path, options), options)
    study_id = hashlib.sha256(data).hexdigest()[:16]
    # "DICM" after the preamble wins: some scanners put a TIFF header in the preamble (dual-format files).
    if data[128:132] != b"DICM" and data.startswith(_IMAGE_MAGIC):
        return read_image(path, data, study_id, options)
    ds = read_dataset(data, path.name)
    with guarded(path.name):  # the first access to the file meta: a damaged element raises here
        dicomdir = is_dicomdir(ds)
    if dicomdir:
        return series.load_series(path, "dicomdir", series.dicomdir_members(path, ds, options), options)
    return load_file(path, ds, study_id, options, source=path)
