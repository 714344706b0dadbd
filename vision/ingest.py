"""Turn what a user opened (a DICOM file, a series folder or zip, a DICOMDIR, a PNG/JPEG/TIFF) into a `Study`,
or fail with a `StudyError` that says what to do. What a path is comes from its content, not its name.

Every input is treated as hostile until checked: only regular files and folders are read, a file's kind comes
from its first bytes before the rest is read, and every read is bounded (vesalius.vision.source).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from vesalius.vision import coded, series
from vesalius.vision.dicom_read import guarded, is_dicomdir, not_dicom_error, read_dataset
from vesalius.vision.dicom_study import load_file
from vesalius.vision.errors import StudyError
from vesalius.vision.image_io import read_image
from vesalius.vision.options import IngestOptions
from vesalius.vision.sniff import HEAD_BYTES, kind_of
from vesalius.vision.source import open_regular, path_kind, read_head, read_limited
from vesalius.vision.study import Study


def load_study(path: str | Path, *, modality: str | None = None, options: IngestOptions | None = None) -> Study:
    """Load the study at `path`. `modality` (a DICOM code such as CR or CT) labels plain images, which carry none."""
    options = options or IngestOptions()
    if modality:
        options = replace(options, modality=modality)
    if options.modality:
        options = replace(options, modality=coded.user_modality(options.modality))
    path = Path(path)
    if path_kind(path) == "folder":
        return series.load_series(path, "folder", series.folder_members(path, options), options)
    with open_regular(path, path.name) as stream:
        return _load_file(path, stream, options)


def _load_file(path: Path, stream: BinaryIO, options: IngestOptions) -> Study:
    size = os.fstat(stream.fileno()).st_size
    if size > options.max_file_bytes:
        raise StudyError(
            f"{path.name} is {size / 1024**3:.1f} GB, over the {options.max_file_bytes / 1024**3:.1f} GB limit",
            "Open a smaller export (one series), or raise the limit",
        )
    head = read_head(stream, HEAD_BYTES)
    if not head:
        raise StudyError(
            f"{path.name} is empty (0 bytes)", "The file was not written completely: copy or export it again"
        )
    kind = kind_of(head)
    if kind == "zip":
        stream.seek(0)
        return series.load_series(path, "zip", series.zip_members(path, stream, options), options)
    if kind == "image":
        _no_series(path, options)
        stream.seek(0)
        return read_image(path, stream, options)
    if kind is None:  # refused on its first bytes, whatever its size
        raise not_dicom_error(path.name)
    data = head + read_limited(stream, path.name, options.max_file_bytes - len(head))
    ds = read_dataset(data, path.name)
    with guarded(path.name):  # the first access to the file meta: a damaged element raises here
        dicomdir = is_dicomdir(ds)
    if dicomdir:
        return series.load_series(path, "dicomdir", series.dicomdir_members(path, ds, options), options)
    _no_series(path, options)
    return load_file(path, ds, hashlib.sha256(data).hexdigest()[:16], options, source=path)


def _no_series(path: Path, options: IngestOptions) -> None:
    """A series number chooses among the series of a folder, zip or DICOMDIR; on one file it would be ignored."""
    if options.series is not None:
        raise StudyError(
            f"--series applies to a folder, zip or DICOMDIR; {path.name} is a single file",
            "Leave --series out: the file is one image (or one multi-frame object) and opens as it is",
        )
