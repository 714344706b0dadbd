"""What a file is, from its first bytes only: a file is never read whole before its kind is known, so a huge file
that is nothing we read is refused at once, whatever its size."""

from __future__ import annotations

import struct
from typing import Literal

HEAD_BYTES = 132  # the preamble and "DICM"; also covers every image and zip signature
IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
ZIP_MAGIC = b"PK\x03\x04"
# PS3.5 6.2: every value representation; an explicit-VR element carries one of these two-letter codes.
# fmt: off
_VRS = frozenset((
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF", b"OL",
    b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
    b"UT", b"UV",
))
# fmt: on
_MAX_FIRST_LENGTH = 0xFFFF  # the first element of a dataset is a short one (a group length, a code, a UID)

Kind = Literal["zip", "image", "dicom"]


def kind_of(head: bytes) -> Kind | None:
    """The kind of file `head` begins. "DICM" after the preamble wins over an image signature: some scanners put
    a TIFF header in the preamble (dual-format files)."""
    if head.startswith(ZIP_MAGIC):
        return "zip"
    if is_dicom(head):
        return "dicom"
    if head.startswith(IMAGE_MAGIC):
        return "image"
    return None


def is_dicom(head: bytes) -> bool:
    """A DICOM file: "DICM" at offset 128, or, for files written without the preamble (older PACS exports), a
    plausible first element. pydicom's forced parse accepts anything (a file of zeros is read as endless empty
    elements), so this check, not the parser, decides what is tried as DICOM."""
    if head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and (_plausible_first_element(head, "<") or _plausible_first_element(head, ">"))


def _plausible_first_element(head: bytes, endian: str) -> bool:
    group, _ = struct.unpack(f"{endian}HH", head[:4])
    # Standard groups are even and non-zero (group 0 is the network command set, never stored in a file).
    if group == 0 or group % 2 or group > 0x7FE0:
        return False
    if head[4:6] in _VRS:
        return True
    # Implicit VR is little endian only: the 4-byte length must be a sane one.
    return endian == "<" and struct.unpack("<I", head[4:8])[0] <= _MAX_FIRST_LENGTH
