"""Findings out and reports in, end to end through the command line: a conversation's findings exported as FHIR R4,
DICOM SR and JSON, read back by their own readers; an earlier report given as FHIR or DICOM SR context."""

from __future__ import annotations

import json
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from fhirclient.models.bundle import Bundle

from vesalius.agent.config import load_settings
from vesalius.agent.findings import Findings
from vesalius.agent.service import Vesalius

SNOMED = "http://snomed.info/sct"
PNEUMONIA_SCT = "233604007"


def _film(shared_data) -> Path:
    from vesalius.vision.train.datasets import kermany_files

    paths, labels, _, held = kermany_files(shared_data)
    return paths[int(np.flatnonzero(held & (labels == 1))[0])]  # a validation child with pneumonia


def _ask(cli, *args) -> dict:
    p = cli("ask", "--json", *args)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def _resources(bundle: Bundle, kind: str) -> list:
    return [e.resource for e in bundle.entry if e.resource.resource_type == kind]


def test_a_chest_film_exports_as_fhir_sr_and_json_that_read_back(cli, shared_data, tmp_path):
    answer = _ask(cli, "--study", _film(shared_data), "Is there pneumonia?")
    [p] = next(t for t in answer["tools"] if t["tool"] == "pneumonia_classifier")["probabilities"]
    anomaly = next(t for t in answer["tools"] if t["tool"] == "chest_anomaly")
    thread = answer["thread_id"]

    fhir = cli("export", thread, "--format", "fhir")
    assert fhir.returncode == 0, fhir.stderr
    bundle = Bundle(json.loads(fhir.stdout), strict=True)  # the FHIR R4 (4.0.1) reader validates as it parses
    [report] = _resources(bundle, "DiagnosticReport")
    assert report.conclusion.startswith(answer["direct_answer"])
    observations = _resources(bundle, "Observation")
    [pneumonia] = [o for o in observations if any(c.code == PNEUMONIA_SCT for c in o.code.coding or [])]
    assert pneumonia.valueQuantity.value == pytest.approx(p["probability"])
    assert {(c.system, c.code) for c in pneumonia.code.coding} >= {(SNOMED, PNEUMONIA_SCT)}
    scored = [
        o
        for o in observations
        if o.valueQuantity and o.valueQuantity.value == pytest.approx(anomaly["anomaly"]["score"])
    ]
    assert len(scored) == 1 and len(scored[0].component or []) >= len(anomaly["regions"])

    out = tmp_path / "findings.dcm"
    sr = cli("export", thread, "--format", "dicom-sr", "--out", out)
    assert sr.returncode == 0 and "wrote" in sr.stderr, sr.stderr
    read = hd.sr.srread(out)
    values = [m.value for group in read.content.get_image_measurement_groups() for m in group.get_measurements()]
    assert any(v == pytest.approx(p["probability"], abs=1e-6) for v in values), values

    as_json = cli("export", thread)
    findings = Findings.model_validate_json(as_json.stdout)
    assert (
        findings.probabilities[0].concept is not None and PNEUMONIA_SCT in findings.probabilities[0].concept.snomed_ct
    )
    assert len(findings.anomalies[0].regions) == len(anomaly["regions"])
    # A plain JPEG has no UIDs: the study is named by a UID derived from its content, the same in every report.
    assert bundle_study_uid(json.loads(fhir.stdout)) == findings.study_uid == read.StudyInstanceUID


def bundle_study_uid(bundle: dict) -> str:
    [study] = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "ImagingStudy"]
    return study["identifier"][0]["value"].removeprefix("urn:oid:")


def test_a_dicom_study_is_cited_by_its_de_identified_uids(cli, cli_env, ct_path, tmp_path):
    answer = _ask(cli, "--study", ct_path, "Is there a pleural effusion?")
    out = tmp_path / "ct.dcm"
    assert cli("export", answer["thread_id"], "--format", "dicom-sr", "--out", out).returncode == 0
    sr = pydicom.dcmread(out)
    original = pydicom.dcmread(ct_path)
    with Vesalius(load_settings(cli_env)) as same_key:  # the UIDs are keyed by the installation's secret
        ref = same_key.deps.study(ct_path).sources[0].dicom
    assert ref is not None
    assert sr.StudyInstanceUID == ref.study_uid != original.StudyInstanceUID
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == ref.sop_instance_uid
    assert str(sr.get("PatientName", "")) == "" and str(original.PatientName).encode() not in out.read_bytes()
    fhir = json.loads(cli("export", answer["thread_id"], "--format", "fhir").stdout)
    assert bundle_study_uid(fhir) == ref.study_uid


def test_export_mistakes_get_one_line(cli, ct_path, tmp_path):
    thread = _ask(cli, "--study", ct_path, "What is this?")["thread_id"]
    cases = [
        (("export", "no-such-thread"), "there is no conversation"),
        (("export", thread, "--format", "hl7v2"), "--format"),
        (("export", thread, "--format", "fhir", "--out", tmp_path / "missing" / "x.json"), "cannot write"),
    ]
    for args, why in cases:
        p = cli(*args)
        assert p.returncode == 2 and why in p.stderr, p.stderr
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr


PRIOR_REPORT = {
    "resourceType": "Bundle",
    "type": "collection",
    "entry": [
        {
            "fullUrl": "urn:uuid:6f1c1a57-0000-4000-8000-000000000001",
            "resource": {
                "resourceType": "Patient",
                "name": [{"family": "Roe", "given": ["Jane"]}],
                "birthDate": "2019-04-02",
                "identifier": [{"system": "urn:oid:1.2.3.4", "value": "MRN-88812345"}],
            },
        },
        {
            "fullUrl": "urn:uuid:6f1c1a57-0000-4000-8000-000000000002",
            "resource": {
                "resourceType": "DiagnosticReport",
                "status": "final",
                "code": {
                    "coding": [{"system": "http://loinc.org", "code": "36643-5", "display": "Chest X-ray 2 views"}]
                },
                "subject": {"reference": "urn:uuid:6f1c1a57-0000-4000-8000-000000000001"},
                "effectiveDateTime": "2026-10-27T09:30:00Z",
                "conclusion": "Right lower lobe consolidation in keeping with pneumonia. Reported by Dr. Alan Grey.",
                "conclusionCode": [{"coding": [{"system": SNOMED, "code": PNEUMONIA_SCT, "display": "Pneumonia"}]}],
            },
        },
        {
            "fullUrl": "urn:uuid:6f1c1a57-0000-4000-8000-000000000003",
            "resource": {
                "resourceType": "Observation",
                "status": "final",
                "code": {"coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}]},
                "subject": {"reference": "urn:uuid:6f1c1a57-0000-4000-8000-000000000001"},
                "effectiveDateTime": "2026-10-27T08:00:00Z",
                "valueQuantity": {"value": 38.9, "unit": "Cel", "system": "http://unitsofmeasure.org", "code": "Cel"},
            },
        },
    ],
}
PRIOR_PHI = ("Roe", "Jane", "2019-04-02", "88812345", "2026-10-27", "Alan Grey")


def test_a_question_with_a_prior_fhir_report(cli, shared_data, tmp_path):
    prior = tmp_path / "prior.fhir.json"
    prior.write_text(json.dumps(PRIOR_REPORT))
    p = cli("ask", "--json", "--study", _film(shared_data), "--context", f"@{prior}", "Has the pneumonia cleared?")
    assert p.returncode == 0, p.stderr
    answer = json.loads(p.stdout)
    kept = answer["context"]["text"]
    assert "consolidation" in kept and PNEUMONIA_SCT in kept and "38.9" in kept
    assert not any(v in p.stdout for v in PRIOR_PHI)
    assert "Clinical context given (de-identified) [context]" in answer["answer"]
    if answer["short_answer"]["source"] == "pneumonia_classifier":  # "cleared?" is answered the right way round
        present = answer["short_answer"]["basis"] and any(
            p["above_threshold"] for t in answer["tools"] for p in t["probabilities"] if p["label"] == "pneumonia"
        )
        assert answer["short_answer"]["text"] == ("no" if present else "yes")
    said = _ask(cli, "--thread", answer["thread_id"], "And what did the earlier report say?")
    assert said["direct_answer"].startswith("The clinical context given (de-identified) says: Earlier report")
    assert "consolidation" in said["direct_answer"]
    # The thread's own findings go back out, and the exported report reads back in as the next thread's context.
    exported = tmp_path / "out.fhir.json"
    assert cli("export", answer["thread_id"], "--format", "fhir", "--out", exported).returncode == 0
    again = _ask(cli, "--study", _film(shared_data), "--context", f"@{exported}", "Is it still there?")
    assert "pneumonia" in again["context"]["text"].lower()


def test_a_prior_dicom_sr_is_context_too(cli, ct_path, tmp_path):
    first = _ask(cli, "--study", ct_path, "Is there a pleural effusion?")
    sr = tmp_path / "prior.dcm"
    assert cli("export", first["thread_id"], "--format", "dicom-sr", "--out", sr).returncode == 0
    answer = _ask(cli, "--study", ct_path, "--context", f"@{sr}", "Any change?")
    assert "DICOM SR" in answer["context"]["text"]
    image = tmp_path / "not-a-report.dcm"
    image.write_bytes(ct_path.read_bytes())
    p = cli("ask", "--study", ct_path, "--context", f"@{image}", "Any change?")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr


def test_hostile_report_files_given_as_context_are_one_line(cli, ct_path, tmp_path):
    huge = tmp_path / "huge.dcm"
    with huge.open("wb") as f:  # sparse: 17 MB that claims to be DICOM, past the 16 MB a report may be
        f.write(b"\0" * 128 + b"DICM")
        f.truncate(17 * 2**20)
    json_bomb = tmp_path / "deep.json"
    json_bomb.write_text("{" + '"a":[' * 50_000 + "]" * 50_000 + "}")
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    cases = [("/dev/zero", "not a file"), (huge, "over 16 MB"), (json_bomb, "FHIR"), (empty, "holds no report")]
    for path, why in cases:
        p = cli("ask", "--study", ct_path, "--context", f"@{path}", "Any change?")
        assert p.returncode == 2 and why in p.stderr, (path, p.stderr)
        assert len(p.stderr.strip().splitlines()) == 1 and "Traceback" not in p.stderr
