"""No protected health information leaves ingestion: every shared DICOM file goes through the whole agent, and
none of its identifying values may appear in the logs, the conversation store, the caches or the answer."""

from __future__ import annotations

import io
import json
import logging
import re
import shutil
import warnings

import pydicom
import pytest

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


# Identifiers written into clinical context, in each form it can take: text, a FHIR report, a DICOM SR.
CONTEXT_PHI = (
    "Jane Roe",
    "Roe^Jane",  # "Roe" alone is three bytes that a PNG or an index holds by chance
    "88812345",
    "2019-04-02",
    "02/04/2019",
    "jane.roe@example.org",
    "Alan Grey",
)
TEXT_CONTEXT = (
    "Patient name: Jane Roe, born 02/04/2019, MRN 88812345, mother's email jane.roe@example.org. "
    "Referred by Dr. Alan Grey with cough and fever for three days."
)


def _fhir_context(path) -> bytes:
    patient = {"resourceType": "Patient", "name": [{"family": "Roe", "given": ["Jane"]}], "birthDate": "2019-04-02",
               "identifier": [{"value": "88812345"}]}  # fmt: skip
    report = {
        "resourceType": "DiagnosticReport",
        "status": "final",
        "code": {"text": "Chest X-ray"},
        "subject": {"reference": "urn:uuid:0b9e4c6e-1111-4111-8111-000000000001"},
        "effectiveDateTime": "2019-04-02",
        "conclusion": "Small left pleural effusion. Reported by Dr. Alan Grey.",
    }
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:0b9e4c6e-1111-4111-8111-000000000001", "resource": patient},
        {"fullUrl": "urn:uuid:0b9e4c6e-1111-4111-8111-000000000002", "resource": report},
    ]}  # fmt: skip
    path.write_text(json.dumps(bundle))
    return path


def _sr_context(agent, ct_path, path):
    """An SR Vesalius wrote, given identifiers in its header as a hospital's copy would carry them."""
    first = agent.ask("Is there a pleural effusion?", study=ct_path)
    ds = pydicom.dcmread(io.BytesIO(agent.export(first.thread_id, "dicom-sr").data))
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Roe^Jane", "88812345", "20190402"
    ds.save_as(path)
    return path


@pytest.mark.vllm
def test_identifiers_in_clinical_context_reach_no_prompt_log_store_or_export(
    make_settings, vllm_server, ct_path, tmp_path, caplog
):
    from vesalius.agent.context_files import read_context_file

    caplog.set_level(logging.DEBUG)
    settings = make_settings(vlm_url=vllm_server.url, vlm_model=vllm_server.model, vlm_max_tokens=8)
    blobs: list[tuple[str, bytes]] = []
    with Vesalius(settings) as agent:
        contexts = {
            "text": TEXT_CONTEXT,
            "fhir": read_context_file(_fhir_context(tmp_path / "prior.json")),
            "dicom-sr": read_context_file(_sr_context(agent, ct_path, tmp_path / "prior.dcm")),
        }
        for kind, context in contexts.items():
            a = agent.ask("Is there an effusion?", study=ct_path, context=context)
            [trace] = agent.traces(a.thread_id)
            assert a.context is not None and (kind == "dicom-sr" or "[name]" in a.context.text)
            assert trace.prompt, "the model was not asked, so the prompt was not checked"
            blobs += [
                (f"{kind} prompt", json.dumps(trace.prompt).encode()),
                (f"{kind} answer", a.model_dump_json().encode()),
            ]
            blobs += [(f"{kind} {f} export", agent.export(a.thread_id, f).data) for f in ("json", "fhir", "dicom-sr")]
    assert "effusion" in contexts["fhir"].lower()
    stores = [p for d in (settings.data_dir, settings.cache_dir) for p in d.rglob("*") if p.is_file()]
    blobs += [(str(p), p.read_bytes()) for p in stores] + [("log", caplog.text.encode())]
    leaks = [(where, value) for where, blob in blobs for value in CONTEXT_PHI if value.encode() in blob]
    assert not leaks, leaks[:10]
