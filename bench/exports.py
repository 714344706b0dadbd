"""What findings out and reports in cost: each export format against reading the thread it comes from, and reading
a prior report (FHIR, DICOM SR) against bare parsing of the same bytes, as the report grows to its limits.

    .venv/bin/python bench/exports.py [--repeats 30] [--out bench/EXPORTS.md]

1. Export: `Vesalius.export(thread, fmt)` for json, fhir and dicom-sr on a real thread (a question about pydicom's
   CT_small.dcm, and a Kermany validation film when ../shared/data is there, whose answer carries probabilities
   and anomaly regions), against the baseline `Vesalius.thread(thread)` (reading the stored state) in the same run.
   An export reads the study again (de-identified) for its UIDs and validates what it writes.
2. Context: `fhir_context` on bundles of 1 to 200 observations against `json.loads` of the same bytes;
   `sr_context` on SRs of 10 to 100,000 content items against `pydicom.dcmread` of the same bytes (the reader stops
   at 2,000 items and 4,000 characters).
Medians of --repeats runs. Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from test_dicom_sr import _many_items_sr  # the test's own writer of large SRs

from vesalius.agent.config import load_settings
from vesalius.agent.fhir_context import fhir_context
from vesalius.agent.service import Vesalius
from vesalius.agent.sr_context import sr_context

SHARED = REPO.parent / "shared" / "data"


def median_ms(fn, repeats: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def bundle(observations: int) -> bytes:
    entries = [
        {
            "fullUrl": "urn:uuid:00000000-0000-4000-8000-000000000000",
            "resource": {
                "resourceType": "DiagnosticReport",
                "status": "final",
                "code": {"text": "Chest X-ray"},
                "conclusion": "Right lower lobe consolidation in keeping with pneumonia.",
            }
            | (
                {
                    "result": [
                        {"reference": f"urn:uuid:00000000-0000-4000-8000-{i:012d}"} for i in range(1, observations)
                    ]
                }
                if observations > 1
                else {}
            ),
        }
    ]
    entries += [
        {
            "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{i:012d}",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}]},
                "valueQuantity": {"value": 38.9, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"},
            },
        }
        for i in range(1, observations)
    ]
    return json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}).encode()


def kermany_film() -> Path | None:
    if not SHARED.is_dir():
        return None
    import numpy as np

    from vesalius.vision.train.datasets import kermany_files

    paths, labels, _, held = kermany_files(SHARED)
    return paths[int(np.flatnonzero(held & (labels == 1))[0])]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "EXPORTS.md")
    args = parser.parse_args()
    rows: list[tuple[str, str, float, float]] = []
    studies = [("CT_small.dcm (CT, no trained model applies)", Path(get_testdata_file("CT_small.dcm")))]
    if film := kermany_film():
        studies.append(("a Kermany validation film (probabilities, 2 regions)", film))
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"HOME": tmp}, cache_dir=Path(tmp) / "cache", data_dir=Path(tmp) / "data")
        with Vesalius(settings) as agent:
            for name, study in studies:
                print(f"asking about {name} ...", file=sys.stderr)
                thread = agent.ask("Is there pneumonia?", study=study).thread_id
                base = median_ms(lambda t=thread: agent.thread(t), args.repeats)
                for fmt in ("json", "fhir", "dicom-sr"):
                    took = median_ms(lambda t=thread, f=fmt: agent.export(t, f), args.repeats)
                    size = len(agent.export(thread, fmt).data)
                    rows.append((f"export {fmt}: {name}", f"{size:,} bytes", took, base))
                    print(f"  {fmt}: {took:.1f} ms", file=sys.stderr)
    for n in (1, 50, 200):
        data = bundle(n)
        base = median_ms(lambda d=data: json.loads(d), args.repeats)
        took = median_ms(lambda d=data: fhir_context(d, "prior.json"), args.repeats)
        rows.append((f"read a FHIR bundle: report + {n - 1} observations", f"{len(data):,} bytes", took, base))
        print(f"FHIR {n}: {took:.1f} ms", file=sys.stderr)
    for n in (10, 500, 2000, 100_000):
        data = _many_items_sr(n)
        base = median_ms(lambda d=data: pydicom.dcmread(io.BytesIO(d), stop_before_pixels=True), args.repeats)
        repeats = args.repeats if n <= 2000 else max(3, args.repeats // 10)
        took = median_ms(lambda d=data: sr_context(d, "prior.dcm"), repeats)
        rows.append((f"read a DICOM SR: {n:,} content items", f"{len(data):,} bytes", took, base))
        print(f"SR {n}: {took:.1f} ms", file=sys.stderr)
    lines = [
        "# Exports and reports read as context",
        "",
        (
            f"Measured {date.today()} by `bench/exports.py --repeats {args.repeats}` on {platform.machine()}, "
            f"Python {platform.python_version()}. Baselines, in the same run: reading the thread's stored state "
            "(exports); `json.loads` (FHIR) and `pydicom.dcmread` (SR) of the same bytes (reports read). An export "
            "reads the study again and looks each model label up in the knowledge base (most of the film's time over the "
            "CT's); pydicom must read a sequence of undefined length item by item to find its end, so the SR "
            "baseline grows with the file while the reader stops walking at 2,000 items."
        ),
        "",
        "| what | size | median | baseline | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {what} | {size} | {took:.2f} ms | {base:.2f} ms | {took / base:.1f}x |" for what, size, took, base in rows
    ]
    args.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
