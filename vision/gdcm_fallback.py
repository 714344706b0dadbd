"""GDCM's own reader, for greyscale files no pydicom decoder plugin reads.

pydicom's gdcm plugin refuses 12-bit JPEG Extended outright, and every plugin refuses a stream with a slightly
malformed header (JPEG-lossy.dcm: a scan header libjpeg rejects) that GDCM's reader decodes. Optional: without
python-gdcm (`pip install 'vesalius[gdcm]'`) this finds nothing and the caller reports the transfer syntax.

GDCM aborts the whole process on some damaged files (a C abort, not an exception), so it runs in a child
process with a time limit: a crash or a hang there is just "GDCM could not decode it".
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import numpy as np

TIMEOUT_S = 10.0  # plus a second per 5 MB of file: GDCM takes seconds on some damaged files, never minutes


def decode_file(path: Path) -> np.ndarray | None:
    """All frames of `path` as (frames, rows, columns) stored values, or None when GDCM is absent or fails."""
    if importlib.util.find_spec("gdcm") is None or sys.modules.get("gdcm", ...) is None:
        return None
    try:
        child = subprocess.run(
            [sys.executable, "-m", "vesalius.vision.gdcm_fallback", str(path)],
            capture_output=True,
            check=False,
            timeout=TIMEOUT_S + path.stat().st_size / 5e6,
            cwd=Path(__file__).resolve().parents[1],
        )
    except (subprocess.TimeoutExpired, OSError):
        return None
    if child.returncode != 0 or not child.stdout:
        return None
    try:
        return np.load(io.BytesIO(child.stdout), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


def _decode_here(path: Path) -> np.ndarray | None:
    import gdcm

    dtypes = {
        gdcm.PixelFormat.UINT8: np.uint8,
        gdcm.PixelFormat.INT8: np.int8,
        gdcm.PixelFormat.UINT16: np.uint16,
        gdcm.PixelFormat.INT16: np.int16,
        gdcm.PixelFormat.UINT32: np.uint32,
        gdcm.PixelFormat.INT32: np.int32,
    }
    reader = gdcm.ImageReader()
    reader.SetFileName(str(path))
    if not reader.Read():  # GDCM's codecs print to the C stderr: the parent captures it, so no user sees it
        return None
    image = reader.GetImage()
    buffer = image.GetBuffer()  # SWIG hands the bytes over as a str holding them as surrogate escapes
    pixel_format = image.GetPixelFormat()
    dtype = dtypes.get(pixel_format.GetScalarType())
    if dtype is None or pixel_format.GetSamplesPerPixel() != 1:
        return None  # colour comes back in its stored colour space; pydicom's own route handles conversions
    dims = [image.GetDimension(i) for i in range(image.GetNumberOfDimensions())]
    shape = (dims[2] if len(dims) > 2 else 1, dims[1], dims[0])
    data = buffer.encode("utf-8", "surrogateescape") if isinstance(buffer, str) else buffer
    values = np.frombuffer(data, dtype=dtype)
    return values.reshape(shape) if values.size == int(np.prod(shape)) else None


if __name__ == "__main__":
    decoded = _decode_here(Path(sys.argv[1]))
    if decoded is None:
        sys.exit(1)
    np.save(sys.stdout.buffer, decoded, allow_pickle=False)
