"""De-identification (PS3.15 Basic Profile): every real file in the shared data, then each rule on small datasets.

The expectations are read from the profile table itself, with the standard's meaning of each action, so the walk
checks the table is applied rather than restating the implementation.
"""

from __future__ import annotations

import io
import json
import re
import struct
import warnings
from collections.abc import Iterator
from datetime import date

import pydicom
import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from vesalius.vision.deid import PROFILE_PATH, DeidOptions, DeidRecord, deidentify, merge_records

pytestmark = pytest.mark.filterwarnings("ignore:Invalid value for VR")  # malformed values are tested on purpose

KEY = bytes(range(32))
STRICT = DeidOptions(key=KEY, retain_patient_characteristics=False)  # the Basic Profile with no option
WITH_OPTIONS = DeidOptions(key=KEY, dates="shift", retain_patient_characteristics=True)
# what Retain Patient Characteristics may keep (PS3.15 Table E.1-1, option column K)
CHARACTERISTICS = {
    tag
    for tag, entry in DicomDictionary.items()
    if entry[4]
    in (
        "PatientAge",
        "PatientSex",
        "PatientSize",
        "PatientWeight",
        "PatientSexNeutered",
        "SmokingStatus",
        "PregnancyStatus",
    )
}
BIRTH = {0x00100030, 0x00100032}
TABLE = json.loads(PROFILE_PATH.read_text(encoding="utf-8"))["attributes"]
ACTIONS = {int(a["tag"], 16): a["action"] for a in TABLE if a["mask"] is None}
MASKED = [(int(a["mask"], 16), int(a["tag"], 16), a["action"]) for a in TABLE if a["mask"]]
PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "OtherPatientIDs",
    "InstitutionName",
    "ReferringPhysicianName",
    "AccessionNumber",
    "StudyID",
)
PHI_TAGS = {tag for tag, entry in DicomDictionary.items() if entry[4] in PHI_KEYWORDS}
UID_RE = re.compile(r"2\.25\.(0|[1-9][0-9]*)")
PIXEL_TAGS = (0x7FE00008, 0x7FE00009, 0x7FE00010)


def well_known(uid: str) -> bool:
    return uid in UID_dictionary or uid.startswith("1.2.840.10008.")


def action_of(tag: int) -> str | None:
    if tag in ACTIONS:
        return ACTIONS[tag]
    return next((action for mask, masked, action in MASKED if tag & mask == masked), None)


def values_of(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes):
        return [value.decode("latin-1") if isinstance(value, bytes) else value]
    try:
        return [str(v) for v in value]
    except TypeError:
        return [str(value)]


def walk(ds: Dataset, path: tuple = ()) -> Iterator[tuple[tuple, int, str, object]]:
    """(path of enclosing sequence items, tag, VR, value) of every readable element, depth first."""
    for tag in list(ds.keys()):
        try:
            elem = ds[tag]
            value = elem.value
        except Exception:  # noqa: BLE001, S112 - damaged: unreadable here as it is to the de-identifier
            continue
        yield path, int(tag), elem.VR, value
        if elem.VR == "SQ" and isinstance(value, Sequence):
            for index, item in enumerate(value):
                yield from walk(item, (*path, (int(tag), index)))


def find(ds: Dataset, path: tuple, tag: int):
    """The element at `path`/`tag` after de-identification, or None where it (or a sequence above it) is gone."""
    for seq_tag, index in path:
        if seq_tag not in ds or not isinstance(ds[seq_tag].value, Sequence) or index >= len(ds[seq_tag].value):
            return None
        ds = ds[seq_tag].value[index]
    return ds.get(tag)


def is_empty(value) -> bool:
    return value is None or value == "" or value == b"" or (isinstance(value, list | Sequence) and len(value) == 0)


def check_profile_applied(original: Dataset, cleaned: Dataset, options: DeidOptions) -> None:
    shifted = options.dates == "shift"
    for path, tag, vr, value in walk(original):
        if tag >> 16 & 1 or is_empty(value):
            continue
        action = action_of(tag)
        if action is None and vr not in ("UI", "DA", "DT"):
            continue
        if options.retain_patient_characteristics and tag in CHARACTERISTICS:
            continue
        if shifted and vr == "TM" and tag not in BIRTH:
            continue  # whole days are shifted: times of day may stay
        # D on a sequence turns everything inside into dummies, whatever the table says of each
        in_dummy = any(action_of(seq_tag) == "D" for seq_tag, _ in path)
        elem = find(cleaned, path, tag)
        where = f"{pydicom.tag.Tag(tag)} at {path}"
        if elem is None:
            continue  # gone: nothing of the value survives
        new = elem.value
        if vr == "UI" or action == "U":
            for old_uid, new_uid in zip(values_of(value), values_of(new), strict=False):
                if well_known(old_uid.strip("\0 ")):
                    assert new_uid == old_uid.strip("\0 "), where
                elif old_uid.strip("\0 "):
                    assert new_uid != old_uid and UID_RE.fullmatch(new_uid) and len(new_uid) <= 64, where
        elif in_dummy or action in ("D", "Z/D", "X/D", "X/Z/D") or (shifted and vr in ("DA", "DT")):
            assert is_empty(new) or values_of(new) != values_of(value), where
        elif action == "X":
            pytest.fail(f"{where}: X attribute still present")
        elif action in ("Z", "X/Z") or vr in ("DA", "DT"):  # dates outside the table: removed with no option
            assert is_empty(new), where
        elif action == "X/Z/U*":
            assert vr == "SQ", where  # kept; the UIDs inside are checked as elements of their own


def phi_strings(ds: Dataset) -> set[str]:
    """Identifying values worth searching for after de-identification.

    Left out: values under 4 characters, short numbers (any dump holds them: a Patient ID "0010" is also a tag
    number), and values that also occur in an attribute the profile keeps (Institution Name "TOSHIBA" in a file
    whose Manufacturer is "TOSHIBA_MEC").
    """
    found, kept = set(), []
    for _, tag, vr, value in walk(ds):
        if tag in PHI_TAGS or vr == "UI":
            for v in values_of(value):
                v = v.strip("\0 ")
                if len(v) >= 4 and not (vr == "UI" and well_known(v)) and not (len(v) < 8 and v.isdigit()):
                    found.add(v)
        elif not tag >> 16 & 1 and action_of(tag) is None and vr not in ("DA", "DT", "SQ"):
            kept += values_of(value)
    return {v for v in found if not any(v in k for k in kept)}


def saved(ds: Dataset) -> bytes | None:
    """The de-identified dataset as written, pixel data left out: its bytes can hold any string by chance."""
    pixels = {tag: ds[tag] for tag in PIXEL_TAGS if tag in ds}
    for tag in pixels:
        del ds[tag]
    try:
        buffer = io.BytesIO()
        ds.save_as(buffer)
        return buffer.getvalue()
    except Exception:  # noqa: BLE001 - some test files cannot be written even untouched (deflate, command sets)
        return None
    finally:
        for elem in pixels.values():
            ds[elem.tag] = elem


def private_tags(ds: Dataset) -> list[int]:
    return [tag for _, tag, _, _ in walk(ds) if tag >> 16 & 1]


@pytest.mark.parametrize("options", [STRICT, WITH_OPTIONS], ids=["basic", "shifted-dates-and-characteristics"])
def test_every_shared_file_keeps_no_profile_value(shared_data, options):
    processed, unreadable = 0, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        files = sorted(p for p in (shared_data / "dicom").rglob("*") if p.is_file())
        for path in files:
            try:
                original = pydicom.dcmread(path, force=True)
                cleaned = pydicom.dcmread(path, force=True)
            except Exception:  # noqa: BLE001 - not DICOM enough for pydicom at all
                unreadable.append(path.name)
                continue
            phi = phi_strings(original)
            record = deidentify(cleaned, options)
            processed += 1
            check_profile_applied(original, cleaned, options)
            if "file_meta" in original:
                check_profile_applied(original.file_meta, cleaned.file_meta, options)
            assert not private_tags(cleaned), path.name
            texts = {"dataset": str(cleaned), "record": record.model_dump_json()}
            data = saved(cleaned)
            for value in phi:
                for name, text in texts.items():
                    assert value not in text, f"{path.name}: a PHI value survives in the {name}"
                if data is not None:
                    assert value.encode("utf-8", "replace") not in data, f"{path.name}: a PHI value is written"
    assert processed >= 0.9 * len(files), f"only {processed} of {len(files)} files parsed ({unreadable})"


def ct(**values) -> Dataset:
    """A small CT header with a file meta group, identifying values and a reference to another image."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = pydicom.uid.CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = values.get("SOPInstanceUID", "1.2.826.0.1.3680043.99.1.1")
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    ds.SOPClassUID = pydicom.uid.CTImageStorage
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.99.1.1"
    ds.StudyInstanceUID = "1.2.826.0.1.3680043.99.2"
    ds.SeriesInstanceUID = "1.2.826.0.1.3680043.99.3"
    ds.FrameOfReferenceUID = "1.2.826.0.1.3680043.99.4"
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-4711"
    ds.PatientBirthDate = "19500607"
    ds.PatientSex = "F"
    ds.PatientAge = "072Y"
    ds.PatientWeight = "61.5"
    ds.PatientSize = "1.68"
    ds.InstitutionName = "St. Elsewhere Hospital"
    ds.StudyDate = "20200101"
    ds.SeriesDate = "20200101"
    ds.AcquisitionDateTime = "20200101101500.25+0100"
    ds.StudyTime = "101500"
    ds.Modality = "CT"
    ref = Dataset()
    ref.ReferencedSOPClassUID = pydicom.uid.CTImageStorage
    ref.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.1.2"
    ds.ReferencedImageSequence = [ref]
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    return ds


def test_uids_are_replaced_consistently_across_datasets_and_calls():
    first = ct()
    second = ct(SOPInstanceUID="1.2.826.0.1.3680043.99.1.2")
    r1, r2 = deidentify(first, STRICT), deidentify(second, STRICT)
    assert first.StudyInstanceUID == second.StudyInstanceUID != "1.2.826.0.1.3680043.99.2"
    assert first.FrameOfReferenceUID == second.FrameOfReferenceUID
    # first's reference to the second image still points at it
    assert first.ReferencedImageSequence[0].ReferencedSOPInstanceUID == second.SOPInstanceUID
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID != second.SOPInstanceUID
    for ds in (first, second):
        assert ds.SOPClassUID == ds.file_meta.MediaStorageSOPClassUID == pydicom.uid.CTImageStorage
        assert ds.ReferencedImageSequence[0].ReferencedSOPClassUID == pydicom.uid.CTImageStorage
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        for uid in (ds.SOPInstanceUID, ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID):
            assert UID_RE.fullmatch(uid) and len(uid) <= 64
    assert r1.uids_replaced == 6  # 4 instance UIDs, the media storage copy, the reference
    assert deidentify(ct(), STRICT) == r1
    other_key = ct()
    deidentify(other_key, DeidOptions(key=b"another key of 32 random bytes!!"))
    assert other_key.StudyInstanceUID not in (first.StudyInstanceUID, "1.2.826.0.1.3680043.99.2")
    assert r2.uids_replaced == r1.uids_replaced


def test_a_de_identified_copy_read_again_keeps_its_uids_and_a_foreign_one_is_replaced():
    # The server keeps de-identified copies and reads them again: a report about the copy must cite the copy's UIDs.
    once = ct()
    deidentify(once, STRICT)
    twice = ct()
    deidentify(twice, STRICT)
    record = deidentify(twice, STRICT)
    assert (twice.StudyInstanceUID, twice.SOPInstanceUID) == (once.StudyInstanceUID, once.SOPInstanceUID)
    assert record.uids_replaced == 0
    # A UID of the same form that this key did not make (another site's, or a forged one) is still replaced.
    foreign = ct(StudyInstanceUID="2.25.1234567890123456789012345678901234567")
    deidentify(foreign, STRICT)
    assert foreign.StudyInstanceUID != "2.25.1234567890123456789012345678901234567"
    other = ct()
    deidentify(other, DeidOptions(key=b"another key of 32 random bytes!!"))
    before = other.StudyInstanceUID
    deidentify(other, STRICT)
    assert other.StudyInstanceUID != before  # replaced under one key, still replaced under another


def test_real_file_keeps_its_classes_and_transfer_syntax(ct_path):
    ds = pydicom.dcmread(ct_path)
    sop_uid = ds.SOPInstanceUID
    deidentify(ds, STRICT)
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID != sop_uid
    assert ds.SOPClassUID == pydicom.uid.CTImageStorage
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.PatientIdentityRemoved == "YES"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)
    assert "PixelData" in ds


def test_shifted_dates_keep_intervals_per_patient():
    options = DeidOptions(key=KEY, dates="shift")
    first, second = ct(), ct(StudyDate="20200315", StudyInstanceUID="1.2.826.0.1.3680043.99.9")
    record = deidentify(first, options)
    deidentify(second, options)
    shift = date(2020, 1, 1) - date.fromisoformat(first.StudyDate)
    assert 1 <= shift.days <= 3650
    assert date(2020, 3, 15) - date.fromisoformat(second.StudyDate) == shift
    assert first.SeriesDate == first.StudyDate
    assert first.AcquisitionDateTime == first.StudyDate + "101500.25+0100"  # time of day and zone kept
    assert first.StudyTime == "101500"
    assert first.PatientBirthDate == ""  # a shifted birth date would still give the exact age
    assert record.dates == "shifted"
    assert record.options[-1] == "Retain Longitudinal Temporal Information with Modified Dates"
    assert first.LongitudinalTemporalInformationModified == "MODIFIED"
    assert "113107" in [i.CodeValue for i in first.DeidentificationMethodCodeSequence]
    other = ct(PatientID="PID-0815")
    deidentify(other, options)
    assert other.StudyDate not in ("20200101", first.StudyDate)  # another patient, another offset
    without_id = ct(PatientID="")  # the study UID stands in for the patient
    again = ct(PatientID="", SOPInstanceUID="1.2.826.0.1.3680043.99.1.2")
    deidentify(without_id, options)
    deidentify(again, options)
    assert without_id.StudyDate == again.StudyDate != "20200101"


def test_unshiftable_dates_are_emptied():
    ds = ct(StudyDate="2020", ContentDate="20201301")
    deidentify(ds, DeidOptions(key=KEY, dates="shift"))
    assert ds.StudyDate == "" and ds.ContentDate == ""


def test_removed_dates_are_gone_or_empty():
    outside = next(
        tag
        for tag, entry in sorted(DicomDictionary.items())
        if entry[0] == "DA" and tag not in ACTIONS and entry[3] == ""
    )  # a date the table does not list
    ds = ct(ContentDate="20200101", AcquisitionDate="20200101")
    ds.add_new(outside, "DA", "20200101")
    record = deidentify(ds, STRICT)
    assert ds.StudyDate == ds.ContentDate == ds.AcquisitionDate == ds.AcquisitionDateTime == ""
    assert ds[outside].value == ""
    assert "SeriesDate" not in ds and "SeriesDate" in record.removed
    assert ds.PatientBirthDate == "" and record.dates == "removed"
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert not any(vr in ("DA", "DT") and v for _, _, vr, v in walk(ds))


@pytest.mark.parametrize(
    ("age", "kept"), [("095Y", "090Y"), ("090Y", "090Y"), ("089Y", "089Y"), ("006M", "006M"), ("ninety", "")]
)
def test_patient_characteristics_retained_with_ages_over_89_collapsed(age, kept):
    ds = ct(PatientAge=age)
    record = deidentify(ds, DeidOptions(key=KEY))
    assert (ds.PatientAge, ds.PatientSex, ds.PatientWeight, ds.PatientSize) == (kept, "F", 61.5, 1.68)
    assert record.options == ["Retain Patient Characteristics"]
    assert "113108" in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]


def test_patient_characteristics_removed_without_the_option():
    ds = ct(PatientAge="095Y")
    record = deidentify(ds, STRICT)
    assert "PatientAge" not in ds and "PatientWeight" not in ds and "PatientSize" not in ds
    assert ds.PatientSex == ""
    assert {"PatientAge", "PatientWeight", "PatientSize"} <= set(record.removed) and "PatientSex" in record.emptied
    assert record.options == []


@pytest.mark.parametrize(
    ("value", "expected", "warns"),
    [("YES", "YES", True), ("NO", "NO", False), (None, "unknown", True), ("MAYBE", "unknown", True)],
)
def test_burned_in_annotation(value, expected, warns):
    ds = ct()
    if value is not None:
        ds.BurnedInAnnotation = value
    record = deidentify(ds, STRICT)
    assert record.burned_in_annotation == expected
    assert bool(record.warnings()) == warns
    assert all("not masked" in w for w in record.warnings())


def test_private_attributes_are_removed_and_counted():
    ds = ct()
    block = ds.private_block(0x0009, "ACME 1.0", create=True)
    block.add_new(0x01, "LO", "Doe^Jane")
    block.add_new(0x02, "SH", "secret")
    inner = ds.ReferencedImageSequence[0].private_block(0x0019, "ACME 1.0", create=True)
    inner.add_new(0x01, "LO", "also secret")
    record = deidentify(ds, STRICT)
    assert record.private_removed == 5  # two creators, three values
    assert not private_tags(ds)
    assert not any(name.startswith("(0009") for name in record.removed)


def test_profile_actions_on_small_dataset():
    ds = ct(
        AccessionNumber="ACC123",
        StudyDescription="Head of Jane Doe",
        PerformingPhysicianName="Dr^Who",
        ContentCreatorName="Smith^John",
        ProtocolName="Doe protocol",
        StationName="CT-ROOM-3",
    )
    person = Dataset()
    person.CodeValue, person.CodingSchemeDesignator, person.CodeMeaning = "E123", "L", "Badge of Dr Who"
    ds.PersonIdentificationCodeSequence = [person]  # D: a sequence of dummies
    ds.add_new(0x60003000, "OB", b"\1" * 8)  # overlay data, a repeating group
    ds.add_new(0x60023000, "OB", b"\1" * 8)
    ds.add_new(0x60000010, "US", 8)  # overlay rows: not identifying, kept
    ds.add_new(0x50000005, "US", 1)  # curve: the whole 50xx group goes
    record = deidentify(ds, STRICT)
    assert ds.AccessionNumber == "" and ds.PatientName == "" and ds.InstitutionName == ""  # Z, X/Z/D
    assert "StudyDescription" not in ds and "PerformingPhysicianName" not in ds and "ProtocolName" not in ds
    assert ds.StationName == ""
    assert ds.ContentCreatorName == ""  # Z/D
    item = ds.PersonIdentificationCodeSequence[0]
    assert item.CodeValue == item.CodeMeaning == "ANONYMIZED" and "PersonIdentificationCodeSequence" in record.replaced
    assert 0x60003000 not in ds and 0x60023000 not in ds and 0x50000005 not in ds and ds[0x60000010].value == 8
    assert {"OverlayData", "StudyDescription"} <= set(record.removed)
    assert {"AccessionNumber", "PatientName", "InstitutionName"} <= set(record.emptied)


def element(group: int, elem: int, vr: bytes, value: bytes) -> bytes:
    """One explicit VR little endian element, for datasets damaged on purpose."""
    if vr in (b"SQ", b"OB", b"UN", b"UT"):
        return struct.pack("<HH2s2xI", group, elem, vr, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


def test_damaged_elements_are_removed_or_blanked_without_reading_them():
    data = (
        element(0x0008, 0x0018, b"UI", b"1.2.826.0.1.3680043.99.1.1\0")
        + element(0x0008, 0x1140, b"SQ", b"\xfe\xff\x00\xe0")  # a sequence cut inside its first item
        + element(0x0008, 0x2218, b"UN", b"\1\2\3\4\5\6")  # a sequence outside the table, unparseable
        + element(0x0010, 0x0010, b"US", b"Doe")  # a name with a wrong VR and length
        + element(0x0010, 0x0020, b"LO", b"PID-4711")
    )
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    with pytest.raises(OSError):
        ds[0x00081140].value  # noqa: B018 - the access is the point
    record = deidentify(ds, STRICT)
    assert 0x00081140 not in ds and 0x00082218 not in ds
    assert {"ReferencedImageSequence", "AnatomicRegionSequence"} <= set(record.removed)
    assert is_empty(ds[0x00100010].value) and ds.PatientID == ""
    assert "Doe" not in str(ds) and "PID-4711" not in str(ds)


def test_record_holds_names_and_counts_only():
    ds = ct()
    record = deidentify(ds, STRICT)
    text = record.model_dump_json()
    for value in ("Doe", "PID-4711", "1950", "Elsewhere", "1.2.826.0.1.3680043.99"):
        assert value not in text
    assert record.profile == "DICOM PS3.15 E.1-1 Basic Application Level Confidentiality Profile (2026c)"
    assert record == DeidRecord.model_validate_json(text)
    merged = merge_records([record, deidentify(ct(BurnedInAnnotation="YES"), STRICT)])
    assert merged.uids_replaced == 2 * record.uids_replaced and merged.burned_in_annotation == "YES"


def test_options_are_checked():
    with pytest.raises(ValueError):
        DeidOptions(key=b"short")
    with pytest.raises(ValueError):
        DeidOptions(key=KEY, dates="keep")  # type: ignore[arg-type]
