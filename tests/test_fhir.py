"""FHIR R4 out and in: findings exported as a Bundle that fhirclient's strict R4 models accept and read back, and a
prior FHIR report read as clinical context without the patient, the reporter or the dates, whatever the file holds."""

from __future__ import annotations

import base64
import copy
import json
from datetime import UTC, datetime

import pytest
from fhirclient.models.bundle import Bundle

from vesalius.agent.context import MAX_CONTEXT_CHARS, clinical_context
from vesalius.agent.errors import AgentError
from vesalius.agent.fhir_context import fhir_context
from vesalius.agent.fhir_report import ICD10CM, SNOMED_CT, UMLS, to_fhir, validate_fhir
from vesalius.agent.findings import (
    AnomalyFinding,
    Coded,
    Findings,
    ImageRef,
    ModelRef,
    ProbabilityFinding,
    RegionFinding,
)
from vesalius.vision.study import StudySummary

PNEUMONIA = Coded(name="Pneumonia", umls_cui="C0032285", snomed_ct=["233604007"], icd10cm=["J18.9"])
STUDY_UID = "2.25.118230987345627364599237648127364"
IMAGE = ImageRef(
    study_uid=STUDY_UID,
    series_uid="2.25.297346592837465928374659283746",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
    sop_instance_uid="2.25.398475629384756293847562938475",
)
REGIONS = [
    RegionFinding(x=612, y=540, width=180, height=150, score=2.4, unit="x the normal patch limit", side="image right"),
    RegionFinding(x=140, y=300, width=96, height=120, score=1.3, unit="x the normal patch limit", side="image left"),
]


def _findings(**changes) -> Findings:
    model = ModelRef(name="pneumonia", version="1.2.0", validation="AUROC 0.95 on 624 held-out paediatric films")
    anomaly = ModelRef(name="chest_anomaly", version="1.0.0", validation="AUROC 0.81 against normal films")
    base = Findings(
        vesalius_version="0.2.0",
        written=datetime(2026, 3, 14, 9, 30, 0, tzinfo=UTC),
        thread_id="thread-7f3a",
        turn=2,
        question="Does this chest X-ray show pneumonia?",
        direct_answer="The film is in keeping with pneumonia.",
        answer="The pneumonia model puts the probability at 0.83, above its screening threshold.",
        uncertainty="A model can be wrong; a clinician should review the film.",
        urgent=["Seek care today if breathing is hard."],
        study=StudySummary(
            study_id="b41c09", source_format="dicom", modality="CR", modality_source="dicom", rows=1024, columns=880
        ),
        study_uid=STUDY_UID,
        image=IMAGE,
        image_size=(1024, 880),
        probabilities=[
            ProbabilityFinding(
                tool="pneumonia_classifier",
                model=model,
                label="pneumonia",
                probability=0.83,
                threshold=0.31,
                above_threshold=True,
                in_training_range=True,
                concept=PNEUMONIA,
                caveats=["trained on children aged 1-5"],
            )
        ],
        anomalies=[
            AnomalyFinding(
                tool="chest_anomaly",
                model=anomaly,
                score=1.62,
                threshold=1.0,
                normal_percentile=99.1,
                unusual=True,
                summary="anomaly score 1.620, unusual (threshold 1.000); 2 region(s) beyond the normal patch limit",
                regions=REGIONS,
                caveats=["unusual means unlike the normal training films, not diseased"],
            )
        ],
        concepts=[PNEUMONIA],
        context="5-year-old, fever and cough for three days",
        knowledge_base="imaging",
        answer_source="model",
        model="qwen",
    )
    return base.model_copy(update=changes)


def _resources(bundle: dict, kind: str) -> list[dict]:
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


def _problem(data: dict) -> str:
    with pytest.raises(AgentError) as caught:
        validate_fhir(data)
    line = caught.value.one_line()
    assert "\n" not in str(caught.value) and "<fhirclient" not in line and len(line) < 300
    return line


# --- out -------------------------------------------------------------------------------------------------------


def test_export_validates_and_reads_back_through_strict_r4_models():
    exported = to_fhir(_findings())
    text = json.dumps(exported)
    parsed = Bundle(json.loads(text), strict=True)
    # fhirclient writes back what it read: nothing in the export is dropped or reshaped by the R4 models.
    assert parsed.as_json() == exported
    assert parsed.type == "collection" and all(e.fullUrl.startswith("urn:uuid:") for e in parsed.entry)

    by_type = {}
    for e in parsed.entry:
        by_type.setdefault(e.resource.resource_type, []).append(e.resource)
    [report], [study], [patient] = by_type["DiagnosticReport"], by_type["ImagingStudy"], by_type["Patient"]
    probability, anomaly = by_type["Observation"]
    assert report.status == "preliminary" and report.conclusion.startswith("The film is in keeping with pneumonia.")
    assert "a clinician should review" in report.conclusion
    assert {(c.system, c.code) for c in report.conclusionCode[0].coding} == {
        (SNOMED_CT, "233604007"),
        (UMLS, "C0032285"),
        (ICD10CM, "J18.9"),
    }
    assert report.code.coding[0].code == "18748-4" and report.category[0].coding[0].code == "RAD"
    assert report.issued.as_json() == "2026-03-14T09:30:00Z"
    urgent, answer = report.text.div.index("Seek care today"), report.text.div.index("in keeping with pneumonia")
    assert urgent < answer and "not diagnoses" in report.text.div and "preliminary" in report.text.div

    assert study.identifier[0].value == f"urn:oid:{STUDY_UID}"
    assert study.series[0].uid == IMAGE.series_uid and study.series[0].modality.code == "CR"
    assert study.series[0].instance[0].uid == IMAGE.sop_instance_uid
    assert study.series[0].instance[0].sopClass.code == f"urn:oid:{IMAGE.sop_class_uid}"

    assert probability.valueQuantity.value == 0.83 and probability.status == "preliminary"
    assert probability.referenceRange[0].high.value == 0.31
    assert probability.interpretation[0].coding[0].code == "POS"
    assert ("http://snomed.info/sct", "233604007") in {(c.system, c.code) for c in probability.code.coding}
    assert probability.method.text == "pneumonia 1.2.0"
    assert any("AUROC 0.95" in n.text for n in probability.note)

    assert anomaly.valueQuantity.value == 1.62 and anomaly.interpretation[0].coding[0].code == "A"
    values = {c.code.text: c.valueQuantity.value for c in anomaly.component}
    for i, r in enumerate(REGIONS, 1):
        rectangle = [values[f"region {i} {k}"] for k in ("x", "y", "width", "height")]
        assert rectangle == [r.x, r.y, r.width, r.height] and values[f"region {i} score"] == r.score
    assert {c.valueQuantity.code for c in anomaly.component} == {"{pixel}", "1"}

    # every link is by urn:uuid to an entry: results, the study, the (blank) subject
    urls = {e.fullUrl for e in parsed.entry}
    assert {r.reference for r in report.result} | {report.imagingStudy[0].reference, report.subject.reference} <= urls
    assert probability.derivedFrom[0].reference == report.imagingStudy[0].reference
    assert patient.id and probability.subject.reference == study.subject.reference == report.subject.reference


def test_the_same_findings_give_the_same_bundle_apart_from_the_time():
    first = to_fhir(_findings())
    later = to_fhir(_findings(written=datetime(2026, 3, 15, 8, 0, 0, tzinfo=UTC)))
    assert [e["fullUrl"] for e in first["entry"]] == [e["fullUrl"] for e in later["entry"]]
    for stamped in (first, later):
        stamped.pop("timestamp")
        _resources(stamped, "DiagnosticReport")[0].pop("issued")
    assert first == later
    other_turn = to_fhir(_findings(turn=3))
    assert not {e["fullUrl"] for e in other_turn["entry"]} & {e["fullUrl"] for e in first["entry"]}


def test_the_bundle_carries_nothing_that_identifies_the_patient():
    exported = to_fhir(_findings())
    [patient] = _resources(exported, "Patient")
    assert set(patient) == {"resourceType", "id"}  # no name, identifier, birthDate, gender, address, telecom
    text = json.dumps(exported)
    for element in ('"name"', '"birthDate"', '"address"', '"telecom"', '"effectiveDateTime"', "b41c09"):
        assert element not in text
    # the only identifier of the study is its de-identified UID; the conversation id is hashed into the uuids
    assert "thread-7f3a" not in text


def test_a_probability_outside_the_training_range_has_no_interpretation():
    outside = _findings().probabilities[0].model_copy(update={"in_training_range": False})
    exported = to_fhir(_findings(probabilities=[outside], anomalies=[]))
    [observation] = _resources(exported, "Observation")
    assert "interpretation" not in observation
    assert "no calibrated meaning" in observation["note"][0]["text"]
    below = _findings().probabilities[0].model_copy(update={"probability": 0.12, "above_threshold": False})
    [observation] = _resources(to_fhir(_findings(probabilities=[below])), "Observation")[:1]
    assert observation["interpretation"][0]["coding"][0]["code"] == "NEG"


def test_findings_no_report_can_carry_give_one_clear_error_not_invalid_output():
    broken = _findings().probabilities[0].model_copy(update={"probability": float("nan")})
    with pytest.raises(AgentError, match=r"export of these findings is not valid: .*not finite at Bundle\.entry\["):
        to_fhir(_findings(probabilities=[broken]))


def test_findings_without_a_study_export_without_an_imaging_study():
    exported = to_fhir(
        _findings(study=None, image=None, study_uid=None, image_size=None, probabilities=[], anomalies=[])
    )
    validate_fhir(exported)
    Bundle(json.loads(json.dumps(exported)), strict=True)
    assert {e["resource"]["resourceType"] for e in exported["entry"]} == {"DiagnosticReport", "Patient"}
    [report] = _resources(exported, "DiagnosticReport")
    assert "imagingStudy" not in report and "result" not in report and "coding" not in report["code"]
    assert report["conclusionCode"][0]["text"] == "Pneumonia"


def test_a_plain_image_study_has_no_series():
    exported = to_fhir(_findings(image=None, study_uid="2.25.55512"))
    [study] = _resources(exported, "ImagingStudy")
    assert "series" not in study and study["identifier"][0]["value"] == "urn:oid:2.25.55512"


def test_validation_names_the_first_problem_in_one_line():
    exported = to_fhir(_findings())
    index = next(i for i, e in enumerate(exported["entry"]) if e["resource"]["resourceType"] == "Observation")

    missing = copy.deepcopy(exported)
    del missing["entry"][index]["resource"]["status"]
    line = _problem(missing)
    assert f"Observation.status (at Bundle.entry[{index}].resource) is required but missing" in line

    unknown = copy.deepcopy(exported)
    unknown["entry"][index]["resource"]["confidence"] = 0.9
    assert "Observation.confidence" in _problem(unknown) and "not an element" in _problem(unknown)

    broken = copy.deepcopy(exported)
    broken["entry"][index]["resource"]["derivedFrom"] = [{"reference": "urn:uuid:00000000-0000-0000-0000-000000000000"}]
    assert "Observation.derivedFrom[0].reference" in _problem(broken) and "names no entry" in _problem(broken)

    wrong_type = copy.deepcopy(exported)
    wrong_type["entry"][index]["resource"]["valueQuantity"]["value"] = "0.83"
    assert f"valueQuantity.value (at Bundle.entry[{index}].resource) must be a number" in _problem(wrong_type)

    bad_date = copy.deepcopy(exported)
    bad_date["timestamp"] = "14/03/2026"
    assert "Bundle.timestamp is not a valid FHIR date or time" in _problem(bad_date)

    two_values = copy.deepcopy(exported)
    two_values["entry"][index]["resource"]["valueString"] = "likely"
    assert "value[x] has more than one value" in _problem(two_values)

    assert "empty value at Bundle.entry" in _problem({**exported, "entry": [{"fullUrl": ""}]})
    assert "not a FHIR R4 resource" in _problem({"resourceType": "Coding"})


# --- in --------------------------------------------------------------------------------------------------------

PATIENT_URL = "urn:uuid:9b1deb4d-3b7d-4bad-9bdd-2b0d7b3dcb6d"
REPORT_TEXT = "Chest X-ray: right lower lobe consolidation, in keeping with pneumonia. No effusion."


def _prior_report() -> dict:
    """A prior report as an EHR exports it: the patient in full, references, dates, a performer."""
    subject = {"reference": PATIENT_URL, "display": "Jane Roe"}
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": "2025-11-02T14:05:00+01:00",
        "entry": [
            {
                "fullUrl": PATIENT_URL,
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [{"system": "urn:oid:1.2.36.146.595.217.0.1", "value": "12345678"}],
                    "name": [{"family": "Roe", "given": ["Jane"]}],
                    "birthDate": "1987-06-21",
                    "gender": "female",
                    "address": [{"line": ["12 Harbour Lane"], "city": "Portsmouth"}],
                    "telecom": [{"system": "phone", "value": "+44 20 7946 0111"}],
                },
            },
            {
                "fullUrl": "urn:uuid:5f2b7a3e-6c1d-4e8f-9a0b-1c2d3e4f5a6b",
                "resource": {
                    "resourceType": "DiagnosticReport",
                    "identifier": [{"system": "http://hospital.example/reports", "value": "RAD-2025-99871"}],
                    "status": "final",
                    "category": [
                        {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD"}]}
                    ],
                    "code": {"coding": [{"system": "http://loinc.org", "code": "36643-5"}], "text": "Chest X-ray"},
                    "subject": subject,
                    "effectiveDateTime": "2025-11-02T13:40:00+01:00",
                    "issued": "2025-11-02T14:05:00+01:00",
                    "performer": [{"display": "Dr Alan Poole"}],
                    "result": [
                        {"reference": "urn:uuid:6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"},
                        {"reference": "urn:uuid:7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e"},
                    ],
                    "conclusion": "Right lower lobe consolidation.",
                    "conclusionCode": [
                        {
                            "coding": [
                                {"system": SNOMED_CT, "code": "233604007", "display": "Pneumonia"},
                                {"system": ICD10CM, "code": "J18.9"},
                            ]
                        }
                    ],
                    "presentedForm": [
                        {"contentType": "text/plain", "data": base64.b64encode(REPORT_TEXT.encode()).decode()},
                        {"contentType": "application/pdf", "data": base64.b64encode(b"%PDF-1.4 Jane Roe").decode()},
                    ],
                },
            },
            {
                "fullUrl": "urn:uuid:6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d",
                "resource": {
                    "resourceType": "Observation",
                    "status": "final",
                    "code": {
                        "coding": [{"system": "http://loinc.org", "code": "8310-5", "display": "Body temperature"}]
                    },
                    "subject": subject,
                    "effectiveDateTime": "2025-11-02T08:15:00+01:00",
                    "valueQuantity": {
                        "value": 38.9,
                        "unit": "Cel",
                        "system": "http://unitsofmeasure.org",
                        "code": "Cel",
                    },
                },
            },
            {
                "fullUrl": "urn:uuid:7b8c9d0e-1f2a-4b3c-9d4e-5f6a7b8c9d0e",
                "resource": {
                    "resourceType": "Observation",
                    "status": "preliminary",
                    "code": {"text": "Pneumonia probability"},
                    "subject": subject,
                    "effectiveDateTime": "2025-11-02T13:41:00+01:00",
                    "valueQuantity": {"value": 0.83},
                    "note": [{"authorString": "Jane Roe's GP", "time": "2025-11-02", "text": "computer-aided reading"}],
                },
            },
        ],
    }


def test_a_prior_report_is_read_without_the_patient_the_reporter_or_the_dates():
    text = fhir_context(json.dumps(_prior_report()).encode(), "prior.json")
    assert text.startswith("Earlier report (FHIR DiagnosticReport, final): Chest X-ray. Conclusion: Right lower lobe")
    assert "Coded: Pneumonia (SNOMED CT 233604007; ICD-10-CM J18.9)" in text
    assert "Body temperature 38.9 Cel" in text and "Pneumonia probability 0.83 (preliminary)" in text
    assert "No effusion." in text and "computer-aided reading" in text
    for phi in ("Jane", "Roe", "1987", "06-21", "12345678", "Harbour", "Portsmouth", "7946", "Poole", "RAD-2025"):
        assert phi not in text
    for date in ("2025", "13:40", "08:15", "urn:uuid", "female"):
        assert date not in text
    # the whole path: what the caller keeps after pattern de-identification still has the findings
    kept = clinical_context(text).text
    assert "Right lower lobe consolidation" in kept and "ICD-10-CM J18.9" in kept and "38.9 Cel" in kept


def test_a_report_pointing_at_records_left_out_of_the_file_is_still_read():
    # An EHR's bundle names its patient and reporter by reference without including them; context never reads
    # either, so only an export (which must be whole) is refused for a reference that names no entry.
    bundle = _prior_report()
    bundle["entry"] = bundle["entry"][1:]
    report = bundle["entry"][0]["resource"]
    report["subject"] = {"reference": "Patient/8812"}
    report["resultsInterpreter"] = [{"reference": "Practitioner/17"}]
    text = fhir_context(json.dumps(bundle).encode(), "ehr.json")
    assert "Right lower lobe consolidation" in text and "38.9" in text
    with pytest.raises(AgentError, match="names no entry"):
        validate_fhir(bundle)


def test_a_single_report_or_observation_is_read_too():
    observation = _prior_report()["entry"][2]["resource"]
    assert fhir_context(json.dumps(observation).encode(), "t.json") == "Observations (FHIR): Body temperature 38.9 Cel."
    report = _prior_report()["entry"][1]["resource"]
    del report["result"], report["subject"]  # a lone report cannot point at entries it does not hold
    text = fhir_context(json.dumps(report).encode(), "r.json")
    assert "Right lower lobe consolidation" in text and "Observations" not in text


def test_codes_from_a_required_value_set_are_copied_only_when_they_are_in_it():
    observation = _prior_report()["entry"][2]["resource"]
    observation["status"] = "Jane Roe"  # fhirclient does not check bindings; the reader does
    observation["valueQuantity"]["comparator"] = "MRN 12345678"
    text = fhir_context(json.dumps(observation).encode(), "t.json")
    assert text == "Observations (FHIR): Body temperature 38.9 Cel (status not in FHIR R4)."


def test_withdrawn_entries_are_left_out():
    bundle = _prior_report()
    bundle["entry"][2]["resource"]["status"] = "entered-in-error"
    text = fhir_context(json.dumps(bundle).encode(), "prior.json")
    assert "Body temperature" not in text and "1 entered in error or cancelled, left out" in text


def test_a_long_bundle_is_cut_and_says_how_much_was_left_out():
    bundle = _prior_report()
    template = bundle["entry"][2]
    for i in range(150):
        extra = copy.deepcopy(template)
        extra["fullUrl"] = f"urn:uuid:00000000-0000-4000-8000-{i:012d}"
        extra["resource"]["note"] = [{"text": f"reading {i} " + "repeated by the ward " * 10}]
        bundle["entry"].append(extra)
    text = fhir_context(json.dumps(bundle).encode(), "long.json")
    assert len(text) <= MAX_CONTEXT_CHARS and "more observations left out" in text
    assert text.startswith("Earlier report") and clinical_context(text).text


def test_the_exported_report_reads_back_as_context():
    exported = json.dumps(to_fhir(_findings())).encode()
    text = fhir_context(exported, "vesalius.json")
    assert "pneumonia probability 0.83" in text and "Positive" in text and "preliminary" in text
    assert "The film is in keeping with pneumonia." in text and "ICD-10-CM J18.9" in text
    assert "anomaly score (chest_anomaly) 1.62" in text and "Abnormal" in text
    kept = clinical_context(text).text
    assert "pneumonia probability 0.83" in kept and "in keeping with pneumonia" in kept


def _deep(n: int) -> bytes:
    return b'{"resourceType": "Observation", "note": ' + b"[" * n + b"]" * n + b"}"


HOSTILE = [
    (b"Chest X-ray: consolidation.", "not valid JSON"),
    (
        '{"resourceType": "Observation", "status": "final", "code": {"text": "Température"}}'.encode("latin-1"),
        "not UTF-8",
    ),
    (b'[{"resourceType": "Observation"}]', "holds a JSON array, not an object"),
    (_deep(100_000), "nests too deeply"),
    (_deep(200), "nests over 64 levels"),
    (b'{"resourceType": "Observation", "valueQuantity": {"value": NaN}}', "not valid JSON"),
    (b" " * 1_000_001, "over 1 MB"),
    (
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:x"}] * 10_000}).encode(),
        "10,000 entries, over 200",
    ),
    (json.dumps(_prior_report()["entry"][0]["resource"]).encode(), "is a Patient, which holds no report"),
    (
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [_prior_report()["entry"][0]]}).encode(),
        "holds no DiagnosticReport or Observation",
    ),
    (json.dumps({"resourceType": "Observation", "code": {"text": "Body temperature"}}).encode(), "status"),
    (json.dumps({"resourceType": "Jane Roe 12345678"}).encode(), "resource of unknown type"),
    (json.dumps({"resourceType": "Jane"}).encode(), "resource of unknown type"),
    (json.dumps({"resourceType": "Practitioner", "name": [{"text": "Dr Jane Roe"}]}).encode(), "is a Practitioner"),
    (b'"Jane Roe, MRN 12345678"', "holds a JSON string, not an object"),
]


@pytest.mark.parametrize(("data", "problem"), HOSTILE, ids=lambda v: v if isinstance(v, str) else None)
def test_hostile_files_give_one_clear_line(data: bytes, problem: str):
    with pytest.raises(AgentError) as caught:
        fhir_context(data, "prior.json")
    line = caught.value.one_line()
    assert problem in line and "prior.json" in line
    assert "Traceback" not in line and "<fhirclient" not in line and len(line) < 300
    assert "Jane" not in line and "12345678" not in line  # a message never echoes what the file holds
