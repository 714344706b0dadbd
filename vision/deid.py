"""De-identification: DICOM PS3.15 Annex E, Basic Application Level Confidentiality Profile.

The attribute table is vision/data/deid_basic_profile.json (Table E.1-1, Basic Profile column, 2026c), written by
scripts/build_deid_profile.py. On top of it, as the profile requires: every private attribute is removed, and every
UID that is not a well-known standard UID is replaced by one derived from a keyed HMAC, so the same study keeps
the same (new) UIDs across files and sessions while nobody without the key can map them back. Dates are removed,
or shifted by a keyed per-patient offset (Retain Longitudinal Temporal Information with Modified Dates Option).

The record lists attribute keywords and counts only: it is shown and stored, so it never holds a value.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, empty_value_for_VR
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary
from pydicom.valuerep import VR

from vesalius.vision.deid_record import DeidOptions, DeidRecord

PROFILE_PATH = Path(__file__).with_name("data") / "deid_basic_profile.json"
PROFILE = "DICOM PS3.15 E.1-1 Basic Application Level Confidentiality Profile (2026c)"
_METHOD = "Vesalius: DICOM PS3.15 E.1-1 Basic Profile (2026c)"  # LO: at most 64 characters a value
RETAIN_CHARACTERISTICS = "Retain Patient Characteristics"
MODIFIED_DATES = "Retain Longitudinal Temporal Information with Modified Dates"

# Table E.1-1 offers alternatives "unless required to maintain IOD conformance (Type 3 / 2 / 1)". Types differ per
# IOD and the table does not carry them, so one choice per combination: Z wherever offered (a zero-length value is
# valid for Type 2 and Type 3 and says nothing); X for X/D, whose attributes (Series Date/Time, Protocol Name,
# Instance Creation Date, Detector ID ...) are Type 3 in the image IODs read here. An enhanced or RT object where
# one is Type 1 may then not validate: that costs a viewer nothing, and no alternative ever keeps a value.
# X/Z/U* sequences (Referenced/Source Image Sequence) are kept with their items cleaned ("K"), so references
# survive with replaced UIDs.
_RESOLVED = {"X": "X", "Z": "Z", "D": "D", "U": "U", "Z/D": "Z", "X/Z": "Z", "X/Z/D": "Z", "X/D": "X", "X/Z/U*": "K"}
# The file meta group is not part of the dataset the table covers, but is written with it: its AE titles and
# presentation addresses name network nodes, like Station Name (X/Z/D) does in the dataset.
_FILE_META_X = (0x00020016, 0x00020017, 0x00020018, 0x00020026, 0x00020027, 0x00020028)
_TRANSFER_SYNTAX = 0x00020010  # names an encoding, never an instance; without it the file cannot be written
# Attributes the table does not list: sequences are cleaned item by item, every UID is replaced unless well-known,
# and (dates removed) every date goes too.
_OUTSIDE_TABLE = MappingProxyType({"SQ": "K", "UI": "U", "DA": "Z", "DT": "Z"})
_AGE = 0x00101010
# Attributes marked K in the option's column of Table E.1-1. An option permits keeping, it does not require it:
# Ethnic Group is not kept, reading images never needs it.
_CHARACTERISTICS = frozenset(
    {
        _AGE,
        0x00100040,  # Patient's Sex
        0x00101020,  # Patient's Size
        0x00101030,  # Patient's Weight
        0x00102203,  # Patient's Sex Neutered
        0x001021A0,  # Smoking Status
        0x001021C0,  # Pregnancy Status
    }
)
# Birth date and time follow the profile even when dates are shifted: a shifted birth date next to shifted study
# dates still gives the exact age, which would undo the collapse of ages over 89.
_BIRTH = frozenset({0x00100030, 0x00100032})
_MAX_SHIFT_DAYS = 3650
_DICOM_ROOT = "1.2.840.10008."  # reserved for the standard (PS3.5 9.1): never an instance UID
_DUMMY_TEXT = "ANONYMIZED"  # fits every text VR, CS (upper case, 16 characters) included
_DUMMY_BYTES = b"\0" * 8  # a whole number of words of every binary VR (OB, OW, OL, OF, OD, OV, UN)
_DUMMY: Mapping[str, object] = MappingProxyType(
    {
        **dict.fromkeys(("AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT"), _DUMMY_TEXT),
        "PN": "Anonymous",
        "AS": "000D",
        "DA": "19000101",
        "DT": "19000101",
        "TM": "000000",
        "UR": "http://anonymized.invalid",
        **dict.fromkeys(("DS", "IS"), "0"),
        **dict.fromkeys(("FL", "FD"), 0.0),
        **dict.fromkeys(("SL", "SS", "SV", "UL", "US", "UV"), 0),
        **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW", "UN"), _DUMMY_BYTES),
    }
)
_METHOD_CODES = {
    PROFILE: ("113100", "Basic Application Confidentiality Profile"),
    RETAIN_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    MODIFIED_DATES: ("113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
}
_VRS = frozenset(VR)
_UNREADABLE = object()
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DT_REST = re.compile(r"[0-9.]*([+-][0-9]{4})?")
_AGE_VALUE = re.compile(r"(\d{3})([DWMY])")


def deidentify(ds: pydicom.Dataset, options: DeidOptions) -> DeidRecord:
    """Apply the Basic Profile to `ds` in place, items of sequences and the file meta group included.

    Values are read only where the result depends on them (UIDs, dates, ages, sequences). pydicom parses lazily,
    so a damaged element raises on first access: an attribute that cannot be read is removed by tag rather than
    left in place. Pixel data is never read. A TIFF/DICOM dual-personality preamble is zeroed.
    """
    burned_in = _burned_in_annotation(ds)
    shift_days = _shift_days(ds, options.key) if options.dates == "shift" else 0
    walk = _Walk(_load_profile(PROFILE_PATH), options, shift_days)
    walk.clean(ds)
    meta = getattr(ds, "file_meta", None)
    if meta is not None:
        walk.clean(meta)
    if getattr(ds, "preamble", None):
        ds.preamble = b"\0" * 128
    applied = [RETAIN_CHARACTERISTICS] if options.retain_patient_characteristics else []
    if options.dates == "shift":
        applied.append(MODIFIED_DATES)
    _declare(ds, applied, options.dates == "shift")
    return DeidRecord(
        profile=PROFILE,
        options=applied,
        removed=sorted(walk.removed),
        emptied=sorted(walk.emptied),
        replaced=sorted(walk.replaced),
        uids_replaced=walk.uids_replaced,
        private_removed=walk.private_removed,
        dates="shifted" if options.dates == "shift" else "removed",
        burned_in_annotation=burned_in,
    )


def merge_records(records: Iterable[DeidRecord]) -> DeidRecord:
    """One record for the files of a series: lists united, counts summed, the least reassuring burned-in value."""
    records = list(records)
    if not records:
        raise ValueError("no records to merge")
    burned = {r.burned_in_annotation for r in records}
    return DeidRecord(
        profile=records[0].profile,
        options=sorted({o for r in records for o in r.options}),
        removed=sorted({a for r in records for a in r.removed}),
        emptied=sorted({a for r in records for a in r.emptied}),
        replaced=sorted({a for r in records for a in r.replaced}),
        uids_replaced=sum(r.uids_replaced for r in records),
        private_removed=sum(r.private_removed for r in records),
        dates=records[0].dates,
        burned_in_annotation="YES" if "YES" in burned else "unknown" if "unknown" in burned else "NO",
    )


def _new_uid(uid: str, key: bytes) -> str:
    """The replacement of a UID: "2.25." and a 128-bit number (PS3.5 B.2): 96 bits of HMAC-SHA256(key, uid) and a
    32-bit keyed tag of those, so that a UID this key already replaced is recognised and kept. De-identifying twice
    (a stored de-identified copy read again) then gives the copy's own UIDs, which reports about it must cite; a
    file cannot pass its real UIDs off as replaced without the key. Well-known standard UIDs (SOP classes, transfer
    syntaxes ...) are returned unchanged."""
    uid = uid.strip("\0 ")
    if not uid or uid in UID_dictionary or uid.startswith(_DICOM_ROOT) or _replaced_by(uid, key):
        return uid
    body = hmac.new(key, uid.encode("ascii", "replace"), hashlib.sha256).digest()[:12]
    return f"2.25.{int.from_bytes(body + _uid_tag(body, key), 'big')}"


def _uid_tag(body: bytes, key: bytes) -> bytes:
    return hmac.new(key, b"vesalius replaced uid:" + body, hashlib.sha256).digest()[:4]


def _replaced_by(uid: str, key: bytes) -> bool:
    digits = uid[5:]
    if not uid.startswith("2.25.") or not digits.isdigit() or len(digits) > 39:
        return False
    value = int(digits)
    if value >= 2**128:
        return False
    raw = value.to_bytes(16, "big")
    return hmac.compare_digest(raw[12:], _uid_tag(raw[:12], key))


@dataclass(frozen=True)
class _Profile:
    actions: Mapping[int, str]  # tag -> resolved action (X, Z, D, U, K; "=" keeps the Transfer Syntax UID)
    masked: tuple[tuple[int, int, str], ...]  # (mask, masked tag, action) for repeating groups (50xx, 60xx)
    keywords: Mapping[int, str]  # for 2026c attributes unknown to pydicom's dictionary


@functools.cache
def _load_profile(path: Path) -> _Profile:
    table = json.loads(path.read_text(encoding="utf-8"))
    actions, masked, keywords = {}, [], {}
    for row in table["attributes"]:
        tag, action = int(row["tag"], 16), _RESOLVED[row["action"]]
        if row["mask"]:
            masked.append((int(row["mask"], 16), tag, action))
        else:
            actions[tag] = action
            keywords[tag] = row["keyword"]
    actions.update(dict.fromkeys(_FILE_META_X, "X"))
    actions[_TRANSFER_SYNTAX] = "="
    return _Profile(MappingProxyType(actions), tuple(masked), MappingProxyType(keywords))


class _Walk:
    """One de-identification: the options, the per-patient date offset, and what was done (for the record)."""

    def __init__(self, profile: _Profile, options: DeidOptions, shift_days: int):
        self.profile = profile
        self.key = options.key
        self.shift_days = shift_days
        self.retained = _CHARACTERISTICS if options.retain_patient_characteristics else frozenset()
        self.removed: set[str] = set()
        self.emptied: set[str] = set()
        self.replaced: set[str] = set()
        self.uids_replaced = 0
        self.private_removed = 0

    def clean(self, ds: Dataset) -> None:
        for tag in list(ds.keys()):
            if tag >> 16 & 1:  # odd group: private (counted, not listed: there are hundreds and they name nothing)
                del ds[tag]
                self.private_removed += 1
                continue
            if tag in self.retained:
                if tag == _AGE:
                    self._collapse_age(ds, tag)
                continue
            vr = _vr(ds, tag)
            action = self.profile.actions.get(tag)
            if action is None and tag >> 24 in (0x50, 0x60):  # repeating groups: curves, overlays
                action = self._masked(tag)
            if self.shift_days and vr in ("DA", "DT", "TM") and tag not in _BIRTH:
                # Modified Dates Option: whole days are shifted, so times of day stay as they are
                if vr != "TM":
                    self._shift(ds, tag, vr)
                continue
            if action is None:
                action = _OUTSIDE_TABLE.get(vr)
                if action is None:
                    continue
            self._apply(ds, tag, vr, action)

    def _apply(self, ds: Dataset, tag: int, vr: str, action: str) -> None:
        if action == "=":
            return
        if action == "X":
            self._remove(ds, tag)
        elif action == "Z":
            ds[tag] = DataElement(tag, vr, empty_value_for_VR(vr))
            self.emptied.add(self._name(tag))
        elif vr == "SQ" and action in ("D", "K", "U"):
            items = self._items(ds, tag)
            if items is not None and action == "D":
                for item in items:
                    self._dummy_item(item)
                self.replaced.add(self._name(tag))
            elif items is not None:
                for item in items:
                    self.clean(item)
        elif action == "D" and vr != "UI":
            if vr in _DUMMY:
                ds[tag] = DataElement(tag, vr, _DUMMY[vr])
                self.replaced.add(self._name(tag))
            else:  # no dummy is defined for this VR (AT): removing keeps no value either
                self._remove(ds, tag)
        elif action == "K":  # an X/Z/U* attribute that is not a sequence: nothing in it to keep
            self._remove(ds, tag)
        elif self._replace_uids(ds, tag) and action == "D":  # U, or D on a UI: a replaced UID is a valid dummy
            self.replaced.add(self._name(tag))

    def _remove(self, ds: Dataset, tag: int) -> None:
        if tag in ds:
            del ds[tag]
        self.removed.add(self._name(tag))

    def _items(self, ds: Dataset, tag: int) -> Sequence | None:
        value = _value(ds, tag)
        if isinstance(value, Sequence):
            return value
        self._remove(ds, tag)  # unreadable, or not a sequence: what it holds cannot be cleaned, so it goes
        return None

    def _dummy_item(self, item: Dataset) -> None:
        # D on a sequence: its structure stays, every value in it becomes a dummy (UIDs replaced, private removed)
        for tag in list(item.keys()):
            if tag >> 16 & 1:
                del item[tag]
                self.private_removed += 1
            else:
                self._apply(item, tag, _vr(item, tag), "D")

    def _replace_uids(self, ds: Dataset, tag: int) -> bool:
        values = _strings(_value(ds, tag))
        if values is None:
            self._remove(ds, tag)
            return False
        new = [_new_uid(v, self.key) for v in values]
        self.uids_replaced += sum(old.strip("\0 ") != uid for old, uid in zip(values, new, strict=True))
        ds[tag] = DataElement(tag, "UI", new if len(new) > 1 else new[0] if new else "")
        return True

    def _shift(self, ds: Dataset, tag: int, vr: str) -> None:
        values = _strings(_value(ds, tag))
        if values is None:
            self._remove(ds, tag)
            return
        shifted = [_shift_date(v, vr, self.shift_days) for v in values]
        if None in shifted:  # not a date that can be shifted (partial, malformed): it cannot stay
            ds[tag] = DataElement(tag, vr, "")
            self.emptied.add(self._name(tag))
        elif shifted:
            ds[tag] = DataElement(tag, vr, shifted if len(shifted) > 1 else shifted[0])

    def _collapse_age(self, ds: Dataset, tag: int) -> None:
        values = _strings(_value(ds, tag))
        if values is None:
            self._remove(ds, tag)
            return
        age = "\\".join(values).strip()
        match = _AGE_VALUE.fullmatch(age)
        if age and match is None:  # not an age string: could be any text
            ds[tag] = DataElement(tag, "AS", "")
            self.emptied.add(self._name(tag))
        elif match and match[2] == "Y" and int(match[1]) > 89:  # HIPAA Safe Harbor: 90 or older is one category
            ds[tag] = DataElement(tag, "AS", "090Y")

    def _masked(self, tag: int) -> str | None:
        for mask, masked_tag, action in self.profile.masked:
            if tag & mask == masked_tag:
                return action
        return None

    def _name(self, tag: int) -> str:
        return keyword_for_tag(tag) or self.profile.keywords.get(tag) or f"({tag >> 16:04X},{tag & 0xFFFF:04X})"


def _vr(ds: Dataset, tag: int) -> str:
    """The VR without converting the value (a raw element keeps its bytes until read)."""
    vr = ds.get_item(tag, keep_deferred=True).VR
    if vr not in _VRS or vr == "UN":  # implicit VR, UN or a damaged VR: pydicom reads it with the dictionary's
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            return "UN"
    return vr.split(" or ")[0]  # "US or SS", "OB or OW": an empty or dummy value is valid in either


def _value(ds: Dataset, tag: int) -> object:
    """The value, or _UNREADABLE: pydicom converts on first access and a damaged element can raise anything."""
    try:
        return ds[tag].value
    except Exception:  # noqa: BLE001 - every parse error means the same here: the value cannot be cleaned
        return _UNREADABLE


def _strings(value: object) -> list[str] | None:
    """A text value as its values (none for an empty one); None where it is unreadable or not text."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return value.split("\\")
    if isinstance(value, MultiValue | list):
        return [str(v) for v in value]
    if isinstance(value, bytes) or value is _UNREADABLE:
        return None
    return [str(value)]  # a date or time pydicom converted (config.datetime_conversion)


def _shift_date(value: str, vr: str, days: int) -> str | None:
    value = value.strip()
    match = _DATE.match(value)
    rest = value[8:]
    if match is None or (vr == "DA" and rest) or not _DT_REST.fullmatch(rest):
        return None
    try:
        day = date(int(match[1]), int(match[2]), int(match[3])) - timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{day.year:04d}{day.month:02d}{day.day:02d}{rest}"


def _shift_days(ds: Dataset, key: bytes) -> int:
    """1 to 3650 days, the same for every file of a patient (or of a study, where the Patient ID is missing)."""
    identity = _text(ds, 0x00100020) or _text(ds, 0x0020000D)
    digest = hmac.new(key, b"vesalius date shift\0" + identity.encode("utf-8", "replace"), hashlib.sha256).digest()
    return 1 + int.from_bytes(digest[:8], "big") % _MAX_SHIFT_DAYS


def _text(ds: Dataset, tag: int) -> str:
    values = _strings(_value(ds, tag)) if tag in ds else None
    return "\\".join(values).strip("\0 ") if values else ""


def _burned_in_annotation(ds: Dataset) -> Literal["NO", "YES", "unknown"]:
    value = _text(ds, 0x00280301).upper()
    return "YES" if value == "YES" else "NO" if value == "NO" else "unknown"


def _declare(ds: Dataset, options: list[str], shifted: bool) -> None:
    """Patient Identity Removed and the De-identification Method attributes (PS3.15 E.1.1, PS3.3 C.7.1.1)."""
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = [_METHOD, *options]
    items = []
    for name in (PROFILE, *options):
        item = Dataset()
        item.CodeValue, item.CodeMeaning = _METHOD_CODES[name]
        item.CodingSchemeDesignator = "DCM"
        items.append(item)
    ds.DeidentificationMethodCodeSequence = items
    ds.LongitudinalTemporalInformationModified = "MODIFIED" if shifted else "REMOVED"
