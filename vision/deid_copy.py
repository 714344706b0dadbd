"""A de-identified copy of a study: what a service keeps of an upload, so that nothing it stores names a patient.

DICOM images are written back after the same de-identification ingestion applies (`deid.deidentify`: PS3.15 Basic
Profile, keyed UIDs and dates), one file per image, under generated names; files that are not DICOM images are left
out. A plain image keeps only its pixels, as decoded for analysis, written as `image.png`: text chunks, EXIF and TIFF
tags never reach the copy. Upload names are never used, so an entry called `../../etc/passwd` in a zip names nothing.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
from PIL import Image

from vesalius.vision import series
from vesalius.vision.deid import deidentify
from vesalius.vision.dicom_read import guarded, is_dicomdir, read_dataset
from vesalius.vision.errors import StudyError
from vesalius.vision.ingest import load_study
from vesalius.vision.options import IngestOptions
from vesalius.vision.sniff import HEAD_BYTES, is_dicom, kind_of
from vesalius.vision.source import open_regular, path_kind, read_head
from vesalius.vision.study import Study

PLAIN_IMAGE = "image.png"


def write_deidentified(path: Path, out: Path, options: IngestOptions) -> Study:
    """De-identified copies of the images `path` holds (a file, a folder or a zip) written into the empty folder
    `out`; returns the study as loaded back from `out`. Ingestion checks `path` first, with all its limits, so
    a file it would refuse is refused here before anything is written."""
    source = load_study(path, options=options)
    written = 0
    with ExitStack() as stack:
        for number, (label, data) in enumerate(_dicom_files(path, options, stack)):
            ds = read_dataset(data, label)
            with guarded(label):
                if is_dicomdir(ds) or "PixelData" not in ds and "FloatPixelData" not in ds:
                    continue
                deidentify(ds, options.deid)
                ds.save_as(out / f"{number:05d}.dcm", enforce_file_format=True)
            written += 1
    if written == 0:
        _write_pixels(source, out / PLAIN_IMAGE)
    return load_study(copy_source(out), options=options)


def copy_source(folder: Path) -> Path:
    """What to open in a copy's folder: the plain image, or the folder of DICOM images."""
    return folder / PLAIN_IMAGE if (folder / PLAIN_IMAGE).is_file() else folder


def content_id(folder: Path) -> str:
    """A digest of the folder's files, names and bytes: the same de-identified study gets the same id."""
    digest = hashlib.sha256()
    for name in sorted(os.listdir(folder)):
        digest.update(name.encode() + b"\0")
        with open(folder / name, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()[:24]


def _dicom_files(path: Path, options: IngestOptions, stack: ExitStack) -> Iterator[tuple[str, bytes]]:
    """(label, bytes) of every DICOM file in `path`, read within ingestion's limits."""
    if path_kind(path) == "folder":
        members = series.folder_members(path, options).items
    else:
        stream = stack.enter_context(open_regular(path, path.name))
        kind = kind_of(read_head(stream, HEAD_BYTES))
        stream.seek(0)
        if kind == "zip":
            members = series.zip_members(path, stream, options).items
        elif kind == "dicom":
            members = [series.Member(path.name, lambda: open_regular(path, path.name), path)]
        else:
            return
    for member in members:
        try:
            data = series.read_member(member, options)
        except StudyError:
            continue  # ingestion already accepted the study without it
        if is_dicom(data[:HEAD_BYTES]):
            yield member.label, data


def _write_pixels(study: Study, out: Path) -> None:
    values = study.values
    if values.ndim == 3:
        img = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "RGB")
    elif (study.summary.bits_stored or 8) <= 8:
        img = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), "L")
    else:
        img = Image.fromarray(np.clip(values, 0, 65535).astype(np.uint16))
    img.save(out, format="PNG")
