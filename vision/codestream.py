"""The image size a compressed frame declares in its own header (JPEG, JPEG-LS, JPEG 2000, HTJ2K).

Decoders allocate what the codestream declares, not what the DICOM header says: a damaged JPEG 2000 SIZ marker
made openjpeg allocate 2 GB and spend 18 s before failing (found by fuzzing). Reading the few header bytes first
lets the loader refuse a frame that declares more pixels than the DICOM header before any decoder runs.
"""

from __future__ import annotations

import struct

_J2K_SIZ = b"\xff\x4f\xff\x51"  # SOC then SIZ: the start of every JPEG 2000 codestream (also inside a JP2 file)
# Start-of-frame markers of JPEG (baseline, extended, progressive, lossless) and JPEG-LS (SOF55); not DHT/JPG/DAC.
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}
_SCAN_BYTES = 65_536


def declared_size(frame: bytes) -> tuple[int, int] | None:
    """(rows, columns) from the frame's codestream header, or None when there is no header to read."""
    head = frame[:_SCAN_BYTES]
    at = head.find(_J2K_SIZ)
    if at >= 0 and len(head) >= at + 24:
        # SIZ: Lsiz(2) Rsiz(2) Xsiz(4) Ysiz(4) XOsiz(4) YOsiz(4)
        xsiz, ysiz, xo, yo = struct.unpack(">IIII", head[at + 8 : at + 24])
        return max(ysiz - yo, 0), max(xsiz - xo, 0)
    if head.startswith(b"\xff\xd8"):
        return _jpeg_size(head)
    return None


def _jpeg_size(head: bytes) -> tuple[int, int] | None:
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None
        marker = head[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _JPEG_SOF:
            rows, columns = struct.unpack(">HH", head[at + 5 : at + 9])
            return rows, columns
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
            continue
        (length,) = struct.unpack(">H", head[at + 2 : at + 4])
        at += 2 + length
    return None
