"""Findings out as a DICOM Structured Report: a Comprehensive SR holding a TID 1500 Measurement Report, for a PACS
or a reporting system to file beside the de-identified study it describes.

Each calibrated probability becomes a TID 1501 measurement group (the finding's SNOMED CT code, the probability,
the screening threshold and where the probability falls against it), each anomaly score another, and each of its
regions a TID 1410 planar ROI outlined on the image the tools looked at. The direct answer goes in the report's
"Qualitative Evaluations" container as TEXT (TID 1500 row 14), the one place the template takes free text.

Nothing identifying goes in: the study, series and image are cited by the keyed UIDs of the de-identified copy, the
patient and study modules are left empty, and the only observer is Vesalius itself. The SR's own UIDs are derived
from the conversation and turn, so exporting the same answer twice gives the same instance, not a second one.
Coordinates need no patient space, so a Comprehensive SR (2D SCOORD) is enough and more widely read than 3D."""

from __future__ import annotations

import hashlib
import re

import highdicom as hd
import numpy as np
from highdicom._standard_utils import get_sop_class_iod_map
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from pydicom import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import ComprehensiveSRStorage

from vesalius.agent.errors import AgentError
from vesalius.agent.findings import (
    AnomalyFinding,
    Findings,
    ImageRef,
    ModelRef,
    ProbabilityFinding,
    RegionFinding,
    derived_uid,
)

SCHEME = "99VESALIUS"  # a private coding scheme: "99" designators are reserved for local use (PS3.16 8.2)
SERIES_DESCRIPTION = "Vesalius findings (machine generated, not reviewed)"
# High, so the SR's series is unlikely to share a number with the acquisition's own series in the same study.
SERIES_NUMBER = 9901

_NO_UNITS = Code("1", "UCUM", "no units")
_PERCENT = Code("%", "UCUM", "percent")
_PIXELS = Code("{pixels}", "UCUM", "pixels")  # a UCUM annotation: a count of image pixels, dimensionless
_QUALITATIVE_EVALUATIONS = Code("C0034375", "UMLS", "Qualitative Evaluations")  # TID 1500 row 12
_ENGLISH = Code("en-US", "RFC5646", "English (United States)")
_XR = codes.cid100.XRUnspecifiedBodyRegion
# CID 100 procedures by modality; anything else (an assumed modality too) is reported as an imaging procedure.
_PROCEDURES = {
    "CT": codes.cid100.CTUnspecifiedBodyRegion,
    "MR": codes.cid100.MRIUnspecifiedBodyRegion,
    "NM": codes.cid100.NMUnspecifiedBodyRegion,
    "PT": codes.cid100.PETUnspecifiedBodyRegion,
    "CR": _XR,
    "DX": _XR,
    "RG": _XR,
    "MG": _XR,
    "XA": codes.cid100.Angiography,
}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def to_sr(f: Findings) -> Dataset:
    """The findings as a DICOM SR dataset, ready for `save_as(..., enforce_file_format=True)`; one clear error for
    findings an SR cannot carry."""
    if f.study_uid is None:
        # An SR is a member of a study (General Study module, Type 1 StudyInstanceUID). Without an image there is no
        # study to file it in, and inventing one would put a report about nothing in front of a radiologist.
        raise AgentError(
            "this conversation has no study, so a DICOM SR has nothing to be filed with",
            "Export it as JSON or FHIR, or ask about an image first",
        )
    image = f.image if f.image is not None and _citable(f.image) else None
    series_uid = derived_uid(f"{f.thread_id} sr series")
    instance_uid = derived_uid(f"{f.thread_id} {f.turn} sr")
    groups: list[hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]
    groups = [_probability_group(f, i, p, image) for i, p in enumerate(f.probabilities, 1)]
    for i, a in enumerate(f.anomalies, 1):
        groups += _anomaly_groups(f, i, a, image)
    modality = f.study.modality if f.study is not None else "OT"
    evidence = _image_evidence(image, modality) if image else _self_evidence(f.study_uid, series_uid, instance_uid)
    sr = hd.sr.ComprehensiveSR(
        evidence=[evidence],
        content=_root(f, groups),
        series_instance_uid=series_uid,
        series_number=SERIES_NUMBER,
        sop_instance_uid=instance_uid,
        instance_number=max(f.turn, 1),
        manufacturer="Vesalius",
        is_complete=True,  # everything the turn measured is here
        is_final=False,  # machine generated: a person has not reviewed it
        is_verified=False,
        series_description=SERIES_DESCRIPTION,
        manufacturer_model_name="Vesalius",
        software_versions=_lo(f.vesalius_version),
        content_date=f.written.date(),
        content_time=f.written.time(),
        coding_schemes=[
            CodingSchemeIdentificationItem(SCHEME, name="Vesalius findings codes", responsible_organization="Vesalius")
        ],
        specific_character_set="ISO_IR 192",  # the direct answer may hold any character
    )
    sr.TimezoneOffsetFromUTC = "+0000"  # `written` is UTC
    if image is None:
        # No instance is cited in the content, so there is no evidence to list: the placeholder that only fed
        # highdicom the study UID (the SR itself) goes, and with it the Type 1C sequence it would have filled.
        del sr.CurrentRequestedProcedureEvidenceSequence
    return sr


def _citable(image: ImageRef) -> bool:
    """Whether highdicom knows the image's SOP class: it looks the class up to place a region on the image and to
    copy the study from the evidence, and has no public way to ask. An image of a class it does not know is
    reported like a plain image (the study kept, the regions as numbers), never with a reference it cannot check."""
    return image.sop_class_uid in get_sop_class_iod_map()


def _root(
    f: Findings,
    groups: list[hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations],
) -> Dataset:
    """The TID 1500 root container: observation context, procedure, imaging measurements, the direct answer."""
    device = hd.sr.DeviceObserverIdentifyingAttributes(
        uid=derived_uid("vesalius device observer"),
        name="Vesalius",
        manufacturer_name="Vesalius",
        model_name=_lo(f"Vesalius {f.vesalius_version}"),
    )
    context = hd.sr.ObservationContext(
        observer_device_context=hd.sr.ObserverContext(
            observer_type=codes.cid270.Device, observer_identifying_attributes=device
        )
    )
    procedure = _procedure(f)
    answer = _answer(f)
    if groups:
        root = hd.sr.MeasurementReport(
            observation_context=context, procedure_reported=procedure, imaging_measurements=groups
        )[0]
    elif answer is None:
        raise AgentError(
            "this answer has no findings and no direct answer to put in a DICOM SR",
            "Ask a question about the image first",
        )
    else:
        # highdicom's MeasurementReport insists on an imaging measurement, but TID 1500 needs only one of rows 6,
        # 10 and 12: the root is built as MeasurementReport builds it, with the answer's row 12 alone.
        root = hd.sr.ContainerContentItem(name=codes.cid7021.ImagingMeasurementReport, template_id="1500")
        root.ContentSequence = hd.sr.ContentSequence(
            [
                *hd.sr.LanguageOfContentItemAndDescendants(hd.sr.CodedConcept.from_code(_ENGLISH)),
                *context,
                hd.sr.CodeContentItem(
                    name=codes.DCM.ProcedureReported,
                    value=procedure,
                    relationship_type=hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD,
                ),
            ]
        )
    if answer is not None:
        root.ContentSequence.append(answer)
    return root


def _procedure(f: Findings) -> Code:
    if f.study is None or f.study.modality_source == "assumed":
        return codes.cid100.ImagingProcedure
    return _PROCEDURES.get(f.study.modality, codes.cid100.ImagingProcedure)


def _answer(f: Findings) -> hd.sr.ContainerContentItem | None:
    """The direct answer as TEXT in the "Qualitative Evaluations" container (TID 1500 rows 12 and 14)."""
    text = f.direct_answer.strip()
    if not text:
        return None
    container = hd.sr.ContainerContentItem(
        name=_QUALITATIVE_EVALUATIONS, relationship_type=hd.sr.RelationshipTypeValues.CONTAINS
    )
    container.ContentSequence = hd.sr.ContentSequence(
        [
            hd.sr.TextContentItem(
                name=_private("Direct answer (machine generated, not reviewed)"),
                value=text,
                relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
            )
        ]
    )
    return container


def _probability_group(
    f: Findings, index: int, p: ProbabilityFinding, image: ImageRef | None
) -> hd.sr.MeasurementsAndQualitativeEvaluations:
    """TID 1501, image level: what the finding is, its calibrated probability and the screening threshold."""
    label = _lo(p.label, 40)
    measurements = [
        hd.sr.Measurement(
            name=_private(f"Probability of {label}"),
            value=float(p.probability),
            unit=_NO_UNITS,
            algorithm_id=_algorithm(p.model),
        )
    ]
    if p.threshold is not None:
        measurements.append(
            hd.sr.Measurement(name=_private("Screening threshold"), value=float(p.threshold), unit=_NO_UNITS)
        )
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(f, f"probability {index}: {label}"),
        finding_type=_finding_type(p),
        measurements=measurements,
        qualitative_evaluations=_threshold_evaluation(p),
        source_images=_source_images(image),
    )


def _finding_type(p: ProbabilityFinding) -> Code:
    """The concept's SNOMED CT code where the knowledge base has one; a private code of the label otherwise."""
    if p.concept is not None and p.concept.snomed_ct:
        return Code(p.concept.snomed_ct[0], "SCT", _lo(p.concept.name))
    return _private(p.concept.name if p.concept is not None else p.label)


def _threshold_evaluation(p: ProbabilityFinding) -> list[hd.sr.QualitativeEvaluation]:
    """Where the probability falls against the screening threshold. Private codes: "Present"/"Absent" would claim
    the finding itself, which a probability does not. Outside the training range the comparison means nothing, so
    that is said instead."""
    if p.in_training_range is False:
        return [
            hd.sr.QualitativeEvaluation(
                _private("Calibration"), _private("Outside training range: probability not calibrated")
            )
        ]
    if p.above_threshold is None:
        return []
    side = "Above screening threshold" if p.above_threshold else "Below screening threshold"
    return [hd.sr.QualitativeEvaluation(_private("Screening threshold evaluation"), _private(side))]


def _anomaly_groups(
    f: Findings, index: int, a: AnomalyFinding, image: ImageRef | None
) -> list[hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations]:
    """One TID 1501 group for the image's anomaly score, then one group per region."""
    finding = _private("Difference from normal training images")
    verdict = "Unusual compared with normal training images" if a.unusual else "Within range of normal training images"
    score = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=_tracking(f, f"anomaly {index}"),
        finding_type=finding,
        measurements=[
            hd.sr.Measurement(
                name=_private("Anomaly score"), value=float(a.score), unit=_NO_UNITS, algorithm_id=_algorithm(a.model)
            ),
            hd.sr.Measurement(name=_private("Anomaly threshold"), value=float(a.threshold), unit=_NO_UNITS),
            hd.sr.Measurement(
                name=_private("Normal validation images scoring lower"),
                value=float(a.normal_percentile),
                unit=_PERCENT,
            ),
        ],
        qualitative_evaluations=[
            hd.sr.QualitativeEvaluation(_private("Anomaly threshold evaluation"), _private(verdict))
        ],
        source_images=_source_images(image),
    )
    regions = [_region_group(f, index, j, r, a.model, finding, image) for j, r in enumerate(a.regions, 1)]
    return [score, *regions]


def _region_group(
    f: Findings,
    index: int,
    number: int,
    r: RegionFinding,
    model: ModelRef,
    finding: Code,
    image: ImageRef | None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations:
    """A region as a TID 1410 planar ROI on the image; without a DICOM image to draw on, its rectangle as numbers."""
    where = f" ({_lo(r.side, 20)})" if r.side else ""
    tracking = _tracking(f, f"anomaly {index} region {number}{where}")
    score = hd.sr.Measurement(
        name=_private(f"Region score ({_lo(r.unit, 40)})"),
        value=float(r.score),
        unit=_NO_UNITS,
        algorithm_id=_algorithm(model),
    )
    if image is not None:
        source = hd.sr.SourceImageForRegion(
            referenced_sop_class_uid=image.sop_class_uid,
            referenced_sop_instance_uid=image.sop_instance_uid,
            referenced_frame_numbers=[image.frame_number] if image.frame_number is not None else None,
        )
        region = hd.sr.ImageRegion(
            graphic_type=hd.sr.GraphicTypeValues.POLYLINE, graphic_data=rectangle(r), source_image=source
        )
        return hd.sr.PlanarROIMeasurementsAndQualitativeEvaluations(
            tracking_identifier=tracking, referenced_region=region, finding_type=finding, measurements=[score]
        )
    edges = [
        ("Region left edge (pixel column)", r.x),
        ("Region top edge (pixel row)", r.y),
        ("Region width", r.width),
        ("Region height", r.height),
    ]
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=finding,
        measurements=[score] + [hd.sr.Measurement(name=_private(name), value=v, unit=_PIXELS) for name, v in edges],
    )


def rectangle(r: RegionFinding) -> np.ndarray:
    """The region's outline as a closed POLYLINE of (column, row) points. SCOORD puts the top-left corner of pixel
    (c, r) at (c, r) and its centre at (c + 0.5, r + 0.5) (PS3.3 C.18.6.1.2), so the outline of pixels x .. x+w-1
    runs from x to x + w: no half-pixel shift."""
    x0, y0, x1, y1 = r.x, r.y, r.x + r.width, r.y + r.height
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], dtype=float)


def _source_images(image: ImageRef | None) -> list[hd.sr.SourceImageForMeasurementGroup] | None:
    if image is None:
        return None
    return [
        hd.sr.SourceImageForMeasurementGroup(
            referenced_sop_class_uid=image.sop_class_uid,
            referenced_sop_instance_uid=image.sop_instance_uid,
            referenced_frame_numbers=[image.frame_number] if image.frame_number is not None else None,
        )
    ]


def _algorithm(model: ModelRef) -> hd.sr.AlgorithmIdentification:
    return hd.sr.AlgorithmIdentification(name=_lo(model.name), version=_lo(model.version))


def _tracking(f: Findings, text: str) -> hd.sr.TrackingIdentifier:
    """A tracking identifier that stays the same when the same turn is exported again."""
    return hd.sr.TrackingIdentifier(uid=derived_uid(f"{f.thread_id} {f.turn} sr {text}"), identifier=_lo(text))


def _image_evidence(image: ImageRef, modality: str) -> Dataset:
    """The image as highdicom's evidence: its de-identified UIDs and nothing else. highdicom copies the SR's
    patient and study modules from here, so they come out empty rather than from any header."""
    ds = Dataset()
    ds.StudyInstanceUID = image.study_uid
    ds.SeriesInstanceUID = image.series_uid
    ds.SOPClassUID = image.sop_class_uid
    ds.SOPInstanceUID = image.sop_instance_uid
    ds.Modality = _lo(modality, 16)
    _empty_patient_and_study(ds)
    return ds


def _self_evidence(study_uid: str, series_uid: str, instance_uid: str) -> Dataset:
    """For an image that is not a DICOM instance there is nothing to cite, but highdicom takes the SR's study from
    its first piece of evidence. The SR itself stands in, so the SR is filed in the study `study_uid` names (for a
    plain image, a UID derived from its content, the same for every export about the same picture) and nothing
    pretends an instance exists."""
    ds = Dataset()
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SOPClassUID = ComprehensiveSRStorage
    ds.SOPInstanceUID = instance_uid
    ds.Modality = "SR"
    _empty_patient_and_study(ds)
    return ds


def _empty_patient_and_study(ds: Dataset) -> None:
    for keyword in (
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "StudyID",
        "ReferringPhysicianName",
    ):
        setattr(ds, keyword, "")


def _private(meaning: str) -> Code:
    """A code of Vesalius's own scheme. Its value is a digest of the meaning, so one meaning always has one code and
    a label of any length fits the 16 characters of a Code Value."""
    meaning = _lo(meaning)
    return Code("V" + hashlib.sha256(meaning.lower().encode()).hexdigest()[:12].upper(), SCHEME, meaning)


def _lo(text: str, limit: int = 64) -> str:
    """`text` as a DICOM LO value (Code Meaning, names): no control characters or backslashes, at most `limit`."""
    text = " ".join(_CONTROL.sub(" ", text.replace("\\", "/")).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
