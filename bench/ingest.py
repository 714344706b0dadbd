"""What ingestion costs over bare pydicom decoding, and how a large CT series scales in time and memory.

    .venv/bin/python bench/ingest.py [--repeats 15] [--slices 64,128,256,512] [--out bench/INGEST.md]

1. Per file, in one run: the baseline `pixel_array(dcmread(path))` with the decoder plugin the loader uses first,
   against `load_study(path).image` (read, de-identify, decode, modality LUT, window, 8-bit render); also pydicom's
   default plugin choice, and what de-identifying the header alone costs (a fixed ~0.5 ms that dominates the ratio
   for sub-millisecond files). Files: pydicom's bundled test files in several
   transfer syntaxes (always present), plus shared-data files when ../shared/data is there.
2. A CT series written from CT_small.dcm at several slice counts: load time per slice, and the peak of traced
   memory (tracemalloc follows numpy's allocations) as a multiple of the float32 voxel data.
Medians of --repeats runs. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import date
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.pixels import pixel_array

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dicom_factory import write_series

from vesalius.vision import load_study
from vesalius.vision.deid import deidentify
from vesalius.vision.dicom_pixels import decoder_plugins
from vesalius.vision.options import IngestOptions

BUNDLED = [
    "CT_small.dcm",  # explicit VR little endian, 16-bit CT with rescale
    "MR_small.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm",
    "MR_small_jp2klossless.dcm",
    "JPEG2000.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "US1_J2KR.dcm",
]
SHARED = [
    "pydicom-data/liver.dcm",
    "pydicom-data/RG3_J2KR.dcm",
    "pydicom-data/JLSL_16_15_1_1F.dcm",
    "pydicom-data/HTJ2KLossless_08_RGB.dcm",
    "pydicom-data/emri_small.dcm",
    "pydicom-data/US1_UNCR.dcm",
]


def median_time(fn, repeats: int) -> float:
    fn()  # warm: imports, plugin discovery, file cache
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def files() -> list[Path]:
    paths = [Path(found) for name in BUNDLED if (found := get_testdata_file(name, download=False))]
    shared = Path(__file__).resolve().parents[2] / "shared" / "data" / "dicom"
    paths += [shared / name for name in SHARED if (shared / name).exists()]
    return paths


def decode_rows(repeats: int, options: IngestOptions) -> tuple[list[str], float, float]:
    rows, base_total, ours_total = [], 0.0, 0.0
    for i, path in enumerate(files(), 1):
        print(f"[{i}] {path.name}", file=sys.stderr)
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        tsyntax = ds.file_meta.TransferSyntaxUID
        # The same decoder the loader uses first: pydicom's choice minus GDCM (see vision/dicom_pixels.py).
        plugin = next(iter(decoder_plugins(tsyntax)), "") if tsyntax.is_compressed else ""
        default = median_time(lambda p=path: pydicom.dcmread(p).pixel_array, repeats)
        base = median_time(lambda p=path, k=plugin: pixel_array(pydicom.dcmread(p), decoding_plugin=k), repeats)
        ours = median_time(lambda p=path: load_study(p, options=options).image, repeats)
        header = median_time(lambda p=path: pydicom.dcmread(p, stop_before_pixels=True), repeats)
        deid = median_time(
            lambda p=path: deidentify(pydicom.dcmread(p, stop_before_pixels=True), options.deid), repeats
        )
        base_total, ours_total = base_total + base, ours_total + ours
        rows.append(
            f"| {path.name} | {tsyntax.name} | {ds.Rows}x{ds.Columns}x{int(ds.get('NumberOfFrames') or 1)} | "
            f"{plugin or 'native'} | {default * 1e3:.2f} ms | {base * 1e3:.2f} ms | {ours * 1e3:.2f} ms | "
            f"{max(deid - header, 0.0) * 1e3:.2f} ms | {ours / base:.2f}x |"
        )
    return rows, base_total, ours_total


def series_rows(counts: list[int], repeats: int, options: IngestOptions) -> list[str]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in counts:
            folder = Path(tmp) / f"ct{count}"
            print(f"writing a {count}-slice series", file=sys.stderr)
            write_series(folder, count)
            seconds = median_time(lambda f=folder: load_study(f, options=options), max(3, repeats // 3))
            tracemalloc.start()
            study = load_study(folder, options=options)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            voxels = study.volume.nbytes
            rows.append(
                f"| {count} | {voxels / 1e6:.1f} MB | {seconds:.3f} s | {seconds / count * 1e3:.2f} ms | "
                f"{peak / 1e6:.1f} MB | {peak / voxels:.2f}x |"
            )
            del study
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--slices", default="64,128,256,512")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("INGEST.md"))
    args = parser.parse_args()
    options = IngestOptions()
    decode, base_total, ours_total = decode_rows(args.repeats, options)
    series = series_rows([int(n) for n in args.slices.split(",")], args.repeats, options)
    text = "\n".join(
        [
            "# Ingestion",
            "",
            (
                f"Measured {date.today()} by `bench/ingest.py --repeats {args.repeats}` on {platform.machine()}, "
                f"Python {platform.python_version()}, pydicom {pydicom.__version__}. Medians."
            ),
            "",
            "## Decode + LUT + render against bare `pixel_array` with the same decoder",
            "",
            (
                "The baseline decodes with the plugin the loader tries first. pydicom's default tries GDCM first where "
                "python-gdcm is installed (faster on large JPEG 2000); the loader never runs GDCM in-process, because "
                "it crashed the interpreter on fuzzed files, and uses it only in a child process as a last resort."
            ),
            "",
            (
                "| file | transfer syntax | size | decoder | pydicom default | baseline: same decoder | "
                "`load_study(...).image` | of which de-identification | ratio to baseline |"
            ),
            "|---|---|---|---|---|---|---|---|---|",
            *decode,
            (
                f"| **all files** | | | | | {base_total * 1e3:.1f} ms | {ours_total * 1e3:.1f} ms | | "
                f"**{ours_total / base_total:.2f}x** |"
            ),
            "",
            "## CT series (128x128 slices written from CT_small.dcm), a folder of files",
            "",
            "| slices | voxel data (float32) | load | per slice | peak traced memory | peak / voxel data |",
            "|---|---|---|---|---|---|",
            *series,
            "",
        ]
    )
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
