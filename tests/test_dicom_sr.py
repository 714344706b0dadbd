"""DICOM SR out (`to_sr`: a TID 1500 measurement report of a conversation's findings, read back with pydicom and
highdicom) and in (`sr_context`: an earlier report given as clinical context, read as hostile input)."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian

from vesalius.agent.context import MAX_CONTEXT_CHARS, clinical_context
from vesalius.agent.errors import AgentError
from vesalius.agent.findings import (
    AnomalyFinding,
    Coded,
    Findings,
    ImageRef,
    ModelRef,
    ProbabilityFinding,
    RegionFinding,
    derived_uid,
)
from vesalius.agent.sr_context import MAX_DEPTH, MAX_ITEMS, sr_context
from vesalius.agent.sr_report import SCHEME, SERIES_DESCRIPTION, to_sr
from vesalius.vision.study import StudySummary

DX = "1.2.840.10008.5.1.4.1.1.1.1"  # Digital X-Ray Image Storage - For Presentation
IMAGE = ImageRef(
    study_uid="2.25.101820317206214137218340862197530146001",
    series_uid="2.25.101820317206214137218340862197530146002",
    sop_class_uid=DX,
    sop_instance_uid="2.25.101820317206214137218340862197530146003",
)
PNEUMONIA = Coded(name="Pneumonia", umls_cui="C0032285", snomed_ct=["233604007"], icd10cm=["J18.9"])
PNEUMONIA_SCT = Code("233604007", "SCT", "Pneumonia")
REGIONS = [
    RegionFinding(x=10, y=20, width=30, height=40, score=2.1, unit="x the normal patch limit", side="left"),
    RegionFinding(x=300, y=200, width=50, height=60, score=1.4, unit="x the normal patch limit", side=None),
]
DIRECT_ANSWER = "Pneumonia is likely: probability 0.83, above the screening threshold 0.31 (not a diagnosis)."


def _findings(**changes: object) -> Findings:
    """A chest film's findings: pneumonia 0.83 above its threshold 0.31, and an unusual film with two regions."""
    f = Findings(
        vesalius_version="0.2.0",
        written=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        thread_id="a1b2c3d4e5f6",
        turn=2,
        question="Is there pneumonia?",
        direct_answer=DIRECT_ANSWER,
        answer="The model puts pneumonia at 0.83.",
        uncertainty="moderate",
        urgent=[],
        study=StudySummary(
            study_id="c0ffee", source_format="dicom", modality="DX", modality_source="dicom", rows=512, columns=512
        ),
        study_uid=IMAGE.study_uid,
        image=IMAGE,
        image_size=(512, 512),
        probabilities=[
            ProbabilityFinding(
                tool="pneumonia_classifier",
                model=ModelRef(name="pneumonia", version="1.3.0", validation="AUROC 0.91"),
                label="pneumonia",
                probability=0.83,
                threshold=0.31,
                above_threshold=True,
                in_training_range=True,
                concept=PNEUMONIA,
                caveats=[],
            )
        ],
        anomalies=[
            AnomalyFinding(
                tool="chest_anomaly",
                model=ModelRef(name="chest-anomaly", version="0.4.1", validation="AUROC 0.80"),
                score=2.5,
                threshold=1.0,
                normal_percentile=99.0,
                unusual=True,
                summary="unusual",
                regions=REGIONS,
                caveats=[],
            )
        ],
        concepts=[PNEUMONIA],
        context=None,
        knowledge_base="imaging",
        answer_source="rules",
        model=None,
    )
    return f.model_copy(update=changes)


def _plain() -> Findings:
    """The same findings about a PNG: no DICOM image to cite, the study UID derived from the picture's content."""
    summary = StudySummary(
        study_id="beef01", source_format="png", modality="CR", modality_source="user", rows=480, columns=640
    )
    return _findings(study=summary, study_uid=derived_uid(summary.study_id), image=None, image_size=(480, 640))


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _read_back(f: Findings) -> hd.sr.ComprehensiveSR:
    sr = hd.sr.srread(io.BytesIO(_bytes(to_sr(f))))
    assert isinstance(sr, hd.sr.ComprehensiveSR)
    return sr


def _texts(item: Dataset) -> dict[str, str]:
    """The TEXT children of a content item by concept meaning (an algorithm's name and version)."""
    return {
        c.ConceptNameCodeSequence[0].CodeMeaning: c.TextValue
        for c in item.get("ContentSequence", [])
        if c.ValueType == "TEXT"
    }


# -- export ------------------------------------------------------------------------------------------------------


def test_probability_reads_back_through_highdicom():
    sr = _read_back(_findings())
    assert sr.StudyInstanceUID == IMAGE.study_uid
    assert sr.SeriesDescription == SERIES_DESCRIPTION and sr.Manufacturer == "Vesalius"
    assert sr.VerificationFlag == "UNVERIFIED" and sr.PreliminaryFlag == "PRELIMINARY"
    assert sr.get_evidence() == [(IMAGE.study_uid, IMAGE.series_uid, IMAGE.sop_instance_uid, IMAGE.sop_class_uid)]

    [group] = sr.content.get_image_measurement_groups(finding_type=PNEUMONIA_SCT)
    assert group.finding_type.value == "233604007" and group.finding_type.scheme_designator == "SCT"
    [source] = group.source_images
    assert source.referenced_sop_instance_uid == IMAGE.sop_instance_uid
    assert source.referenced_sop_class_uid == DX
    by_name = {m.name.meaning: m for m in group.get_measurements()}
    probability = by_name["Probability of pneumonia"]
    assert probability.name.scheme_designator == SCHEME
    assert probability.value == pytest.approx(0.83)
    assert (probability.unit.value, probability.unit.scheme_designator) == ("1", "UCUM")
    assert _texts(probability[0]) == {"Algorithm Name": "pneumonia", "Algorithm Version": "1.3.0"}
    assert by_name["Screening threshold"].value == pytest.approx(0.31)
    [evaluation] = group.get_qualitative_evaluations()
    assert evaluation.value.meaning == "Above screening threshold" and evaluation.value.scheme_designator == SCHEME


def test_anomaly_regions_are_closed_rectangles_on_the_cited_image():
    sr = _read_back(_findings())
    regions = sr.content.get_planar_roi_measurement_groups(referenced_sop_instance_uid=IMAGE.sop_instance_uid)
    assert len(regions) == 2
    for group, r in zip(regions, REGIONS, strict=True):
        roi = group.roi
        assert roi is not None and roi.graphic_type == hd.sr.GraphicTypeValues.POLYLINE
        corners = [[r.x, r.y], [r.x + r.width, r.y], [r.x + r.width, r.y + r.height], [r.x, r.y + r.height]]
        np.testing.assert_array_equal(roi.value, np.array([*corners, corners[0]], dtype=float))
        [score] = group.get_measurements()
        assert score.value == pytest.approx(r.score)
        assert _texts(score[0])["Algorithm Name"] == "chest-anomaly"
    assert regions[0].tracking_identifier == "anomaly 1 region 1 (left)"

    anomaly = [g for g in sr.content.get_image_measurement_groups() if g.finding_type != PNEUMONIA_SCT]
    [group] = anomaly
    values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
    assert values["Anomaly score"] == (pytest.approx(2.5), "1")
    assert values["Normal validation images scoring lower"] == (pytest.approx(99.0), "%")
    [evaluation] = group.get_qualitative_evaluations()
    assert evaluation.value.meaning == "Unusual compared with normal training images"


def test_direct_answer_is_text_in_the_qualitative_evaluations_container():
    ds = pydicom.dcmread(io.BytesIO(_bytes(to_sr(_findings()))))
    [container] = [i for i in ds.ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "C0034375"]
    assert container.ValueType == "CONTAINER" and container.RelationshipType == "CONTAINS"
    [text] = container.ContentSequence
    assert text.ValueType == "TEXT" and text.TextValue == DIRECT_ANSWER
    assert ds.SpecificCharacterSet == "ISO_IR 192"


def test_nothing_identifying_and_the_same_turn_gives_the_same_uids():
    f = _findings()
    sr = _read_back(f)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber", "StudyID"):
        assert str(sr.get(keyword, "")) == "", keyword
    assert "InstitutionName" not in sr and not sr.get("StudyDate") and not sr.get("ReferringPhysicianName")
    assert sr.content.get_observer_contexts(observer_type=codes.DCM.Person) == []
    [device] = sr.content.get_observer_contexts(observer_type=codes.DCM.Device)
    assert device.observer_identifying_attributes.name == "Vesalius"
    assert hd.sr.utils.find_content_items(sr, value_type=hd.sr.ValueTypeValues.PNAME, recursive=True) == []

    again = to_sr(f)
    assert (again.SOPInstanceUID, again.SeriesInstanceUID) == (sr.SOPInstanceUID, sr.SeriesInstanceUID)
    next_turn = to_sr(_findings(turn=3))
    assert next_turn.SOPInstanceUID != sr.SOPInstanceUID
    assert next_turn.SeriesInstanceUID == sr.SeriesInstanceUID  # one series per conversation
    assert next_turn.InstanceNumber == 3


def test_a_probability_outside_the_training_range_is_not_compared_with_the_threshold():
    [p] = _findings().probabilities
    outside = p.model_copy(update={"in_training_range": False})
    sr = _read_back(_findings(probabilities=[outside], anomalies=[]))
    [group] = sr.content.get_image_measurement_groups(finding_type=PNEUMONIA_SCT)
    [evaluation] = group.get_qualitative_evaluations()
    assert evaluation.value.meaning == "Outside training range: probability not calibrated"


def test_a_label_without_a_snomed_code_gets_a_private_finding_type():
    [p] = _findings().probabilities
    uncoded = p.model_copy(update={"label": "cardiomegaly", "concept": None})
    sr = _read_back(_findings(probabilities=[uncoded], anomalies=[]))
    [group] = sr.content.get_image_measurement_groups()
    assert (group.finding_type.scheme_designator, group.finding_type.meaning) == (SCHEME, "cardiomegaly")


def test_plain_image_is_reported_in_its_derived_study_without_image_references():
    f = _plain()
    sr = _read_back(f)
    assert sr.StudyInstanceUID == f.study_uid
    assert "CurrentRequestedProcedureEvidenceSequence" not in sr and sr.get_evidence() == []
    assert hd.sr.utils.find_content_items(sr, value_type=hd.sr.ValueTypeValues.IMAGE, recursive=True) == []
    assert sr.content.get_planar_roi_measurement_groups() == []
    groups = sr.content.get_image_measurement_groups()
    assert [g.source_images for g in groups] == [[]] * len(groups)
    regions = [g for g in groups if (g.tracking_identifier or "").startswith("anomaly 1 region")]
    assert len(regions) == 2
    for group, r in zip(regions, REGIONS, strict=True):
        values = {m.name.meaning: (m.value, m.unit.value) for m in group.get_measurements()}
        assert values["Region left edge (pixel column)"] == (r.x, "{pixels}")
        assert values["Region top edge (pixel row)"] == (r.y, "{pixels}")
        assert values["Region width"] == (r.width, "{pixels}")
        assert values["Region height"] == (r.height, "{pixels}")


def test_a_frame_of_a_multi_frame_image_is_cited_by_its_number():
    enhanced_ct = "1.2.840.10008.5.1.4.1.1.2.1"
    frame = IMAGE.model_copy(update={"sop_class_uid": enhanced_ct, "frame_number": 7})
    sr = _read_back(_findings(image=frame))
    for group in sr.content.get_image_measurement_groups():
        assert [s.referenced_frame_numbers for s in group.source_images] == [[7]]
    for group in sr.content.get_planar_roi_measurement_groups():
        [source] = group.roi.ContentSequence
        assert (source.ReferencedSOPSequence[0].ReferencedFrameNumber, source.referenced_sop_class_uid) == (
            7,
            enhanced_ct,
        )


def test_an_image_of_a_class_highdicom_does_not_know_is_reported_without_references():
    unknown = IMAGE.model_copy(update={"sop_class_uid": "1.2.826.0.1.3680043.9.9999.1"})
    sr = _read_back(_findings(image=unknown))
    assert sr.StudyInstanceUID == IMAGE.study_uid and sr.get_evidence() == []
    assert sr.content.get_planar_roi_measurement_groups() == []


def test_an_answer_without_findings_still_exports_its_direct_answer():
    sr = _read_back(_findings(probabilities=[], anomalies=[]))
    assert sr.content.get_image_measurement_groups() == []
    texts = hd.sr.utils.find_content_items(sr, value_type=hd.sr.ValueTypeValues.TEXT, recursive=True)
    assert DIRECT_ANSWER in [t.TextValue for t in texts]


def test_a_conversation_without_a_study_is_refused_in_one_line():
    f = _findings(study=None, study_uid=None, image=None, image_size=None, probabilities=[], anomalies=[])
    with pytest.raises(AgentError, match="no study") as caught:
        to_sr(f)
    assert "\n" not in str(caught.value)
    with pytest.raises(AgentError, match="no findings and no direct answer"):
        to_sr(_findings(probabilities=[], anomalies=[], direct_answer=" "))


# -- sr_context ----------------------------------------------------------------------------------------------------


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    ds = Dataset()
    ds.CodeValue, ds.CodingSchemeDesignator, ds.CodeMeaning = value, scheme, meaning
    return ds


def _item(value_type: str, name: str, relationship: str = "CONTAINS", **values: object) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = [_code("T" + str(abs(hash(name)) % 10**6), "99TEST", name)]
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _measured(value: str, unit: Dataset) -> Dataset:
    ds = Dataset()
    ds.NumericValue, ds.MeasurementUnitsCodeSequence = value, [unit]
    return ds


def _sr_file(content: list[Dataset], title: str = "Chest X-ray report", **header: object) -> bytes:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = BasicTextSRStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = "2.25.1234"
    ds.SOPClassUID = BasicTextSRStorage
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = [_code("18748-4", "LN", title)]
    for keyword, value in header.items():
        setattr(ds, keyword, value)
    if content:
        ds.ContentSequence = content
    return _bytes(ds)


def _hand_written_report() -> bytes:
    return _sr_file(
        [
            _item("PNAME", "Person Observer Name", "HAS OBS CONTEXT", PersonName="Smith^John^^Dr."),
            _item("TEXT", "Person Observer's Organization Name", "HAS OBS CONTEXT", TextValue="St Elsewhere"),
            _item("DATE", "Report date", Date="20240105"),
            _item("PNAME", "Reviewed by", PersonName="Dr. Smith"),
            _item(
                "CONTAINER",
                "Findings",
                ContinuityOfContent="SEPARATE",
                ContentSequence=[
                    _item("TEXT", "Finding", TextValue="Right lower lobe consolidation."),
                    _item("CODE", "Diagnosis", ConceptCodeSequence=[_code("233604007", "SCT", "Pneumonia")]),
                    _item(
                        "NUM",
                        "Heart width",
                        MeasuredValueSequence=[_measured("12.5", _code("cm", "UCUM", "cm"))],
                    ),
                    _item("UIDREF", "Study UID", UID="2.25.999888777"),
                ],
            ),
        ],
        PatientName="Roe^Jane",
        PatientID="12345678",
        PatientBirthDate="19800101",
        InstitutionName="St Elsewhere Hospital",
        ReferringPhysicianName="Who^Doctor",
        StudyDate="20240105",
        VerificationFlag="VERIFIED",
    )


def test_sr_context_gives_the_findings_and_nothing_identifying():
    text = sr_context(_hand_written_report(), "prior.dcm")
    assert text.startswith("Earlier report (DICOM SR, Basic Text SR): Chest X-ray report.")
    assert "Finding: Right lower lobe consolidation." in text
    assert "Diagnosis: Pneumonia (SCT 233604007)." in text
    assert "Heart width: 12.5 (cm)." in text
    for identifying in ("Roe", "Jane", "12345678", "Smith", "Elsewhere", "2024", "1980", "Who", "2.25.999"):
        assert identifying not in text, identifying
    kept = clinical_context(text)  # what the caller does next: the text is within what a thread keeps
    assert "name" not in kept.removed and "date" not in kept.removed


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns about each over-long value, writing and reading
def test_sr_context_cleans_and_bounds_hostile_values():
    hostile = _sr_file(
        [
            _item("TEXT", "Finding\x1b[31m\u202e", TextValue="nodule\x00\x07 " + "x" * 50_000),
            _item("CODE", "Diagnosis", ConceptCodeSequence=[_code("1", "SCT", "y" * 500)]),
            _item("NUM", "Size", MeasuredValueSequence=[]),
            _item("WHATEVER", "Odd", TextValue="never shown"),
        ],
        SpecificCharacterSet="ISO_IR 192",
    )
    text = sr_context(hostile, "hostile.dcm")
    assert len(text) <= MAX_CONTEXT_CHARS
    assert "\x1b" not in text and "\x00" not in text and "\u202e" not in text and "\x07" not in text
    assert "Finding [31m: nodule x" in text and "…" in text
    assert "never shown" not in text


def test_exported_sr_reads_back_as_context():
    text = sr_context(_bytes(to_sr(_findings())), "vesalius.dcm")
    assert text.startswith("Earlier report (DICOM SR, Comprehensive SR, not verified, machine generated):")
    assert "Finding: Pneumonia (SCT 233604007)." in text
    assert "Probability of pneumonia: 0.83 (no units)." in text
    assert "Screening threshold evaluation: Above screening threshold." in text
    assert DIRECT_ANSWER in text
    assert IMAGE.sop_instance_uid not in text and IMAGE.study_uid not in text
    assert len(clinical_context(text).text) <= MAX_CONTEXT_CHARS


def _refused(data: bytes, match: str) -> None:
    with pytest.raises(AgentError, match=match) as caught:
        sr_context(data, "given.dcm")
    assert "\n" not in str(caught.value) and "Traceback" not in str(caught.value)


@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom warns as it reads the broken files
def test_sr_context_refuses_what_is_not_a_readable_sr(ct_path: Path):
    _refused(b"Findings: pneumonia, nothing else.", "not a DICOM file")
    _refused(b"\0" * 128 + b"DICM" + b"\xff" * 64, "not a DICOM")
    _refused(ct_path.read_bytes(), "DICOM CT object, not a DICOM Structured Report")
    exported = _bytes(to_sr(_findings()))
    _refused(exported[: len(exported) // 2], "cut short")
    _refused(bytes(16 * 2**20 + 1), "over 16 MB")
    _refused(_sr_file([]), "no content")
    _refused(_sr_file([_item("PNAME", "Observer", PersonName="Roe^Jane")]), "says nothing")


def test_sr_context_walks_a_deep_tree_only_so_far():
    inner = _item("TEXT", "Level", TextValue="level 50")
    for level in range(49, 0, -1):
        inner = _item("CONTAINER", f"Level {level}", ContinuityOfContent="SEPARATE", ContentSequence=[inner])
    text = sr_context(_sr_file([inner]), "deep.dcm")
    assert f"Level {MAX_DEPTH}." in text and f"Level {MAX_DEPTH + 1}." not in text
    assert "level 50" not in text
    assert text.endswith("1 more items left out")


def _raw_element(group: int, element: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element with an undefined-length-free value."""
    return struct.pack("<HH", group, element) + vr + b"\0\0" + struct.pack("<I", len(value)) + value


def _many_items_sr(count: int) -> bytes:
    """An SR whose content sequence holds `count` items, written as bytes: pydicom would take seconds to write it."""
    item = _item("TEXT", "Finding", TextValue="nodule")
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, item)
    one = struct.pack("<HHI", 0xFFFE, 0xE000, len(body.getvalue())) + body.getvalue()
    sequence = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
    delimiter = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return _sr_file([]) + sequence + one * count + delimiter


def test_sr_context_bounds_an_sr_with_a_hundred_thousand_items():
    text = sr_context(_many_items_sr(100_000), "many.dcm")
    assert len(text) <= MAX_CONTEXT_CHARS
    shown = text.count("Finding: nodule.")
    assert 0 < shown <= MAX_ITEMS
    assert text.endswith(f"{100_000 - shown} more items left out")  # every item read is shown or counted
