"""How to ingest: de-identification settings and the limits checked before anything is decoded."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from vesalius.vision.deid_record import DeidOptions


def _session_deid() -> DeidOptions:
    # Without a configured key, UIDs are remapped consistently within this process only.
    return DeidOptions(key=secrets.token_bytes(32))


@dataclass(frozen=True)
class IngestOptions:
    deid: DeidOptions = field(default_factory=_session_deid)
    modality: str | None = None  # labels plain images, which carry no tags
    series: int | None = None  # SeriesNumber to open when a folder, zip or DICOMDIR holds several series
    cine_frames: int = 8  # representative frames kept from a cine loop
    # Limits, checked on header values before decoding, so a hostile or damaged header cannot exhaust memory.
    max_file_bytes: int = 2 * 1024**3
    max_pixels_per_frame: int = 100_000_000
    max_frames: int = 4096
    max_voxels: int = 400_000_000  # 1.6 GB as float32
    max_files: int = 10_000
    # Bytes inflated from a zip in one load, all members and both passes (headers, then pixels) together: the
    # sizes a zip declares are never trusted, the bytes actually inflated are counted.
    max_archive_bytes: int = 4 * 1024**3
    # Plain images are worked on at up to this many pixels a side (a 10000x10000 PNG would need gigabytes as
    # float32); larger ones are downscaled on reading, with a warning. The DICOM limits above are separate.
    max_image_side: int = 4096
