"""No protected health information leaves ingestion: every shared DICOM file goes through the whole agent, and
none of its identifying values may appear in the logs, the conversation store, the caches or the answer."""

from __future__ import annotations

import logging
import re
import shutil
import warnings

import pydicom

from vesalius.agent.service import Vesalius
from vesalius.vision import StudyError

# Random identifiers the agent and LangGraph mint (checkpoint UUIDs, thread ids, and channel versions such as
# "00000000000000000000000000000002.0.12345635414196487", a counter and a random fraction): digits that can contain a
# short numeric value such as a study time or "123456" by chance, without carrying anything from the study.
MINTED_IDS = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9]{32}\.[0-9]+\.[0-9]+")

# Identifying attributes whose values are searched for (UIDs too: they link a study back to a patient).
PHI_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "OtherPatientIDs", "InstitutionName", "InstitutionAddress",
    "ReferringPhysicianName", "PerformingPhysicianName", "OperatorsName", "AccessionNumber", "StudyID",
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID", "StationName",
    "StudyDate", "AcquisitionDateTime", "DeviceSerialNumber",
)  # fmt: skip
KEPT = ("Manufacturer", "ManufacturerModelName", "Modality", "BodyPartExamined", "SOPClassUID")


def phi_values(path) -> set[str]:
    """Values of `path`'s identifying attributes (top level and in sequences), long enough to be telling, and not
    also the value of an attribute the profile keeps (some test files name the manufacturer as institution)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            found, kept = set(), set()
            for elem in ds.iterall():
                text = str(elem.value).strip() if elem.VR not in ("SQ", "OB", "OW", "UN") else ""
                if elem.keyword in PHI_KEYWORDS:
                    found.add(text)
                elif elem.keyword in KEPT:
                    kept.add(text)
        except Exception:  # noqa: BLE001 - a file pydicom cannot parse has no values to look for
            return set()
    return {v for v in found - kept if len(v) >= 6 and v.strip("0^ ") and v.upper() not in ("ANONYMOUS", "ANONYMIZED")}


def test_no_identifying_value_reaches_logs_store_caches_or_answers(shared_data, make_settings, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    settings = make_settings()
    files = sorted(p for p in (shared_data / "dicom").rglob("*") if p.is_file() and p.suffix != ".json")
    phi = {path: phi_values(path) for path in files}
    caplog.clear()  # reading the originals above logs their values; only what the agent logs counts
    outputs, checked, thread_ids = [], {}, set()
    with Vesalius(settings) as agent:
        for i, path in enumerate(files):
            values = phi[path]
            if not values:
                continue
            # A neutral name: a file's own path may carry an ID (DICOMDIR folders are named by patient).
            copy = tmp_path / "studies" / f"study{i:04d}.dcm"
            copy.parent.mkdir(exist_ok=True)
            shutil.copy(path, copy)
            try:
                answer = agent.ask("Describe this study and any abnormality", study=copy, heatmap_dir=tmp_path / "maps")
            except StudyError:
                continue
            outputs.append(answer.model_dump_json())
            thread_ids.add(answer.thread_id.encode())
            checked[path.name] = values
    assert len(checked) >= 100, f"only {len(checked)} files with identifying values went through the agent"
    stores = [
        p for d in (settings.data_dir, settings.cache_dir, tmp_path / "maps") for p in d.rglob("*") if p.is_file()
    ]
    blobs = [p.read_bytes() for p in stores] + [t.encode() for t in outputs] + [caplog.text.encode()]
    blobs = [MINTED_IDS.sub(b"-", blob) for blob in blobs]
    for thread_id in thread_ids:
        blobs = [blob.replace(thread_id, b"-") for blob in blobs]
    assert any(p.name == "threads.sqlite" for p in stores)
    names = [str(p) for p in stores] + [f"answer {i}" for i in range(len(outputs))] + ["log"]
    leaks = {
        (name, value, where)
        for name, values in checked.items()
        for value in values
        for blob, where in zip(blobs, names, strict=True)
        if value.encode("utf-8", "ignore") in blob
    }
    assert not leaks, sorted(leaks)[:10]
