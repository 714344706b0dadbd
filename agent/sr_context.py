"""An earlier report given as clinical context in a DICOM Structured Report: read as hostile input, turned into a
few plain sentences of what it found.

Only the content tree is read, and only the items that say what was found: headings (CONTAINER), text, codes with
their codes, numbers with their units. Names, dates, times, UIDs, image references and coordinates are passed over,
and so is the observation context (observer, institution, subject), because that is where an SR names people.
The header's patient, study and institution attributes are never read. Everything is bounded: the bytes, the depth
and number of items walked, each value's length and the text as a whole. `clinical_context` still de-identifies
the result by pattern, since free text inside a report may name anyone."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID_dictionary

from vesalius.agent.context import MAX_CONTEXT_CHARS
from vesalius.agent.errors import AgentError

MAX_SR_BYTES = 16 * 2**20
MAX_DEPTH = 10
MAX_ITEMS = 2000
MAX_VALUE_CHARS = 400  # one text value: a sentence or a short paragraph
MAX_NAME_CHARS = 120  # one concept name or code meaning
# The body leaves room for the heading and the "left out" note within what a thread keeps.
MAX_BODY_CHARS = MAX_CONTEXT_CHARS - 200

_SR_CLASSES = {uid: entry[0] for uid, entry in UID_dictionary.items() if " SR Storage" in entry[0]}
_SAID = frozenset({"CONTAINER", "TEXT", "CODE", "NUM"})
# Items that name no finding or point elsewhere; their children (an image under a SCOORD) are passed over too.
_PASSED_OVER = frozenset(
    {"PNAME", "DATE", "TIME", "DATETIME", "UIDREF", "IMAGE", "COMPOSITE", "WAVEFORM", "SCOORD", "SCOORD3D", "TCOORD"}
)
# DCM concepts of observer, subject, specimen, device and procedure identity (TID 1001-1010: names, ids, accession
# and placer numbers), wherever a hostile file puts them, and of the content's language.
_IDENTITY_CODES = frozenset(
    str(code)
    for code in (
        121005,  # Observer Type
        *range(121008, 121023),  # person and device observer, procedure study and accession numbers
        *range(121028, 121034),  # subject UID, name, id, birth date, sex, age
        *range(121035, 121038),  # breed, mother of fetus, fetus number
        *range(121039, 121042),  # specimen UID, accession number, identifier
        *range(121043, 121050),  # slide identifier and UID, languages
        128774,  # Person Observer's Login Name
        128775,  # Identifier within Person Observer's Role
        112039,  # Tracking Identifier
        112040,  # Tracking Unique Identifier
    )
)
_HIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
_SHOWN_SCHEMES = frozenset({"SCT", "SRT", "SNM3", "LN", "UMLS", "ICD10", "I10", "ICD10CM", "RADLEX", "NCIt", "FMA"})


@dataclass
class _Walk:
    """What walking the content tree gave: sentences, how much was left out, who observed."""

    sentences: list[str] = field(default_factory=list)
    chars: int = 0
    visited: int = 0
    left_out: int = 0
    unreadable: int = 0
    device_observer: bool = False


def sr_context(data: bytes, name: str) -> str:
    """The findings of the DICOM SR in `data` (a file called `name`, for messages) as plain text for
    `clinical_context`; one clear error for anything that is not a readable SR."""
    shown = _clean(name, 80) or "given"
    if len(data) > MAX_SR_BYTES:
        raise AgentError(f"the context file {shown} is over 16 MB", "Give the report alone, not the images")
    ds = _read(data, shown)
    try:
        kind, title, unverified, root = _header(ds, shown)
    except AgentError:
        raise
    except Exception:  # noqa: BLE001 - a header value pydicom cannot convert
        raise AgentError(f"the DICOM SR {shown} has a header that cannot be read", "Give the report as text") from None
    if not root:
        raise AgentError(f"the DICOM SR {shown} has no content", "Give a report that holds its findings")
    walk = _walk(root)
    if not walk.sentences:
        raise AgentError(
            f"the DICOM SR {shown} says nothing Vesalius can read as findings (only names, dates or references)",
            "Give the report as text instead",
        )
    flags = [kind] + ["not verified"] * unverified + ["machine generated"] * walk.device_observer
    text = f"Earlier report ({', '.join(flags)}): " + " ".join(([f"{title}."] if title else []) + walk.sentences)
    if walk.left_out or walk.unreadable:
        text += f" ... {_left_out(walk)}"
    return text


def _read(data: bytes, shown: str) -> Dataset:
    """The file parsed, or one line saying it is not DICOM. Any failure of the parser on hostile bytes is that."""
    try:
        # pydicom warns (and logs) about each malformed value it meets; those stay warnings, bounded by the walk's
        # limits, since silencing them would change process-wide warning filters under other threads.
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many kinds on hostile bytes, RecursionError included
        raise AgentError(
            f"the context file {shown} is not a DICOM file that can be read ({type(exc).__name__})",
            "Give a DICOM SR, a FHIR JSON report or a text report",
        ) from None
    if _truncated(ds):
        raise AgentError(f"the DICOM file {shown} is cut short", "Give the whole file")
    return ds


def _truncated(ds: Dataset) -> bool:
    """pydicom reads a file that ends early without a word; an element shorter than its own length says so."""
    for tag in list(ds.keys()):
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement) or not isinstance(raw.value, bytes) or raw.length == 0xFFFFFFFF:
            continue  # converted already, empty, or read to its delimiter (undefined length)
        if len(raw.value) < raw.length:
            return True
    return False


def _header(ds: Dataset, shown: str) -> tuple[str, str, bool, Sequence | None]:
    """The SR's kind, its title, whether it says it is unverified, and its content tree. Nothing else of the
    header is read: not the patient, the study, the observers or the institution."""
    kind = _kind(ds, shown)
    unverified = _clean(ds.get("VerificationFlag"), 16).upper() == "UNVERIFIED"
    root = _sequence(ds.get("ContentSequence"))
    return kind, _concept(ds), unverified, root


def _kind(ds: Dataset, shown: str) -> str:
    """ "DICOM SR, Comprehensive SR": the SR kind from pydicom's own dictionary, never from the file's text."""
    sop_class = _clean(ds.get("SOPClassUID"), 64)
    modality = _clean(ds.get("Modality"), 16).upper()
    if sop_class in _SR_CLASSES:
        return f"DICOM SR, {_SR_CLASSES[sop_class].removesuffix(' Storage')}"
    if modality == "SR":
        return "DICOM SR"
    what = f"a DICOM {modality} object" if modality else "a DICOM file"
    raise AgentError(
        f"the context file {shown} is {what}, not a DICOM Structured Report",
        "Give the report (a DICOM SR), not the images",
    )


def _walk(root: Sequence) -> _Walk:
    """Depth first without recursion, so a tree nested thousands deep costs a list, not the stack."""
    walk = _Walk()
    stack: list[tuple[Dataset, int]] = []
    _push(stack, root, 1, walk)
    while stack:
        if walk.visited >= MAX_ITEMS or walk.chars >= MAX_BODY_CHARS:
            walk.left_out += len(stack)
            break
        item, depth = stack.pop()
        walk.visited += 1
        try:
            sentence, children = _item(item, walk)
        except Exception:  # noqa: BLE001 - a value pydicom cannot convert: that item is left out, not the report
            walk.unreadable += 1
            continue
        if sentence:
            if walk.chars + len(sentence) + 1 > MAX_BODY_CHARS:
                walk.left_out += 1 + len(stack)
                break
            walk.sentences.append(sentence)
            walk.chars += len(sentence) + 1
        if children:
            if depth >= MAX_DEPTH:
                walk.left_out += len(children)
            else:
                _push(stack, children, depth + 1, walk)
    return walk


def _push(stack: list[tuple[Dataset, int]], items: Sequence, depth: int, walk: _Walk) -> None:
    """Children onto the stack, first child on top; no more than the items still to be walked."""
    room = max(0, MAX_ITEMS - walk.visited - len(stack))
    kept = [c for c in items[:room] if isinstance(c, Dataset)]
    walk.left_out += len(items) - len(kept)
    stack.extend((c, depth) for c in reversed(kept))


def _item(item: Dataset, walk: _Walk) -> tuple[str | None, Sequence | None]:
    """One content item as a sentence (or None), and the children to walk (or None)."""
    value_type = _clean(item.get("ValueType"), 16).upper()
    relationship = _clean(item.get("RelationshipType"), 20).upper()
    code = _code_of(item, "ConceptNameCodeSequence")
    if relationship == "HAS OBS CONTEXT" or (code is not None and code[0] == "DCM" and code[1] in _IDENTITY_CODES):
        if code is not None and code[:2] == ("DCM", "121005"):  # Observer Type
            walk.device_observer |= _code_of(item, "ConceptCodeSequence") == ("DCM", "121007", "Device")
        return None, None
    if value_type in _PASSED_OVER or value_type not in _SAID:
        return None, None
    children = _sequence(item.get("ContentSequence"))
    name = code[2] if code is not None else ""
    return _sentence(item, value_type, name), children


def _sentence(item: Dataset, value_type: str, name: str) -> str | None:
    if value_type == "CONTAINER":
        return f"{name}." if name else None
    if value_type == "TEXT":
        value = _clean(item.get("TextValue"), MAX_VALUE_CHARS)
    elif value_type == "CODE":
        value = _coded(_code_of(item, "ConceptCodeSequence"))
    else:
        value = _number(item)
    if not value:
        return None
    value = value if value.endswith((".", "…", "?", "!")) else value + "."
    return f"{name}: {value}" if name else value


def _number(item: Dataset) -> str:
    """ "0.83 (no units)"; the qualifier ("Not a number") when the value is absent."""
    measured = _sequence(item.get("MeasuredValueSequence"))
    if measured and isinstance(measured[0], Dataset):
        value = _clean(measured[0].get("NumericValue"), 32)
        unit = _code_of(measured[0], "MeasurementUnitsCodeSequence")
        if value:
            return f"{value} ({unit[2] or unit[1]})" if unit is not None else value
    qualifier = _code_of(item, "NumericValueQualifierCodeSequence")
    return f"({qualifier[2]})" if qualifier is not None and qualifier[2] else ""


def _coded(code: tuple[str, str, str] | None) -> str:
    """ "Pneumonia (SCT 233604007)": the code shown where a reader could look it up; DICOM's own and private
    codes would only add noise."""
    if code is None:
        return ""
    scheme, value, meaning = code
    if scheme in _SHOWN_SCHEMES and value:
        return f"{meaning} ({scheme} {value})" if meaning else f"{scheme} {value}"
    return meaning


def _code_of(ds: Dataset, keyword: str) -> tuple[str, str, str] | None:
    """(scheme, value, meaning) of the first item of a code sequence, each cleaned and bounded."""
    items = _sequence(ds.get(keyword))
    if not items or not isinstance(items[0], Dataset):
        return None
    code = items[0]
    value = next((v for k in ("CodeValue", "LongCodeValue", "URNCodeValue") if (v := code.get(k))), None)
    return (
        _clean(code.get("CodingSchemeDesignator"), 16),
        _clean(value, 64),
        _clean(code.get("CodeMeaning"), MAX_NAME_CHARS),
    )


def _concept(ds: Dataset) -> str:
    code = _code_of(ds, "ConceptNameCodeSequence")
    return code[2] if code is not None else ""


def _sequence(value: object) -> Sequence | None:
    """A sequence element's items, or None where a hostile file gave the tag some other kind of value."""
    return value if isinstance(value, Sequence) else None


def _clean(value: object, limit: int) -> str:
    """Any value as one short line: str() of whatever it is, hidden and control characters out, bounded."""
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        value = bytes(value[: limit * 4]).decode("utf-8", "replace")
    text = str(value)[: limit * 4]
    text = " ".join(_HIDDEN.sub(" ", text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _left_out(walk: _Walk) -> str:
    parts = []
    if walk.left_out:
        parts.append(f"{walk.left_out} more items left out")
    if walk.unreadable:
        parts.append(f"{walk.unreadable} unreadable items skipped")
    return ", ".join(parts)
