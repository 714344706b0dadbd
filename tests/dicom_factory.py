"""DICOM files written from pydicom's CT_small.dcm, for tests and benchmarks: series of slices (each slice's pixel
(0, 0) holds its position number, so a test can read the order back out of the volume) and single images with
other pixels and tags.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid


def write_series(
    folder: Path,
    count: int,
    *,
    spacing: float = 2.5,
    series_number: int = 1,
    shuffle_seed: int | None = 0,
    patient_name: str = "Doe^Jane",
) -> list[Path]:
    """Write `count` slices to `folder` under names unrelated to their order; returns them in spatial order."""
    folder.mkdir(parents=True, exist_ok=True)
    base = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    pixels = base.pixel_array.copy()
    series_uid, study_uid = generate_uid(), generate_uid()
    order = list(range(count))
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(order)  # file names and InstanceNumbers say nothing of position
    paths = []
    for i in range(count):
        ds = base.copy()
        ds.SeriesInstanceUID, ds.StudyInstanceUID = series_uid, study_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.SeriesNumber = series_number
        ds.InstanceNumber = order[i] + 1
        ds.PatientName = patient_name
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-40.0, -40.0, -100.0 + i * spacing]
        ds.SliceLocation = -100.0 + i * spacing
        frame = pixels.copy()
        frame[0, 0] = i
        ds.PixelData = frame.astype(pixels.dtype).tobytes()
        path = folder / f"s{series_number}_{order[i]:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def order_marks(volume: np.ndarray, intercept: float) -> list[int]:
    """The position numbers written into pixel (0, 0), read back from a loaded volume."""
    return [round(v - intercept) for v in volume[:, 0, 0]]


def write_image(path: Path, pixels: np.ndarray, *, modality: str, body_part: str, **tags: str) -> Path:
    """One 16-bit MONOCHROME2 image with the given pixels, Modality, Body Part Examined and other `tags`."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.Modality, ds.BodyPartExamined = modality, body_part
    for tag, value in tags.items():
        setattr(ds, tag, value)
    for tag in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        if tag in ds:
            delattr(ds, tag)
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PhotometricInterpretation, ds.SamplesPerPixel = "MONOCHROME2", 1
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path
