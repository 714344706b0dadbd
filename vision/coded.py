"""Coded header values checked before anything downstream sees them.

Modality, view, laterality and the like go into the model prompt, --json output and the conversation store, and
Modality decides which models run. A header is written by whoever made the file: a value is kept only if it is
valid for its value representation (CS: at most 16 of A-Z, 0-9, space and underscore; one value) and, where the
standard defines the terms, one of them. Anything else is dropped, as if absent, with a warning that names the
attribute and quotes the value only when it is itself a valid short code.
"""

from __future__ import annotations

import re

from vesalius.vision.errors import StudyError

_CS = re.compile(r"[A-Z0-9 _]{1,16}")
_UID = re.compile(r"[0-9]+(\.[0-9]+)*")
_WINDOW_NAME = re.compile(r"[A-Za-z0-9 _-]{1,32}")

# PS3.3 C.7.3.1.1.1 Modality defined terms, current and retired (files from old equipment still carry these).
# fmt: off
MODALITIES = frozenset((
    "ANN", "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CFM", "CR", "CT", "CTPROTOCOL", "DG", "DMS", "DOC", "DX", "ECG",
    "EEG", "EMG", "EOG", "EPS", "ES", "FID", "GM", "HC", "HD", "IO", "IOL", "IVOCT", "IVUS", "KER", "KO", "LEN", "LS",
    "M3D", "MG", "MR", "NM", "OAM", "OCT", "OP", "OPM", "OPT", "OPTBSV", "OPTENF", "OPV", "OSS", "OT", "PA", "PLAN",
    "POS", "PR", "PT", "PX", "REG", "RESP", "RF", "RG", "RTDOSE", "RTIMAGE", "RTINTENT", "RTPLAN", "RTRAD",
    "RTRECORD", "RTSEGANN", "RTSTRUCT", "RWV", "SEG", "SM", "SMR", "SR", "SRF", "STAIN", "TEXTUREMAP", "TG", "US",
    "VA", "XA", "XAPROTOCOL", "XC",
    # retired
    "AS", "CD", "CF", "CP", "CS", "DD", "DF", "DM", "DS", "EC", "FA", "FS", "LP", "MA", "MS", "OPR", "ST", "VF",
))
# ViewPosition: the projection terms of PS3.3 C.8.11.5.1.2 and the mammography views (CID 4014 abbreviations),
# plus LAT/LATERAL, which chest radiograph exports use in practice.
VIEWS = frozenset((
    "AP", "PA", "LL", "RL", "RLD", "LLD", "RLO", "LLO", "LAO", "RAO", "LPO", "RPO", "LAT", "LATERAL",
    "CC", "MLO", "ML", "LM", "LMO", "FB", "SIO", "XCC", "XCCL", "XCCM", "AT", "CV", "RCC",
))
# fmt: on
_DEFINED: dict[str, tuple[frozenset[str], str]] = {
    "Modality": (MODALITIES, "a DICOM modality code"),
    "ViewPosition": (VIEWS, "a known view position"),
    "ImageLaterality": (frozenset("RLUB"), "R, L, U or B"),
    "Laterality": (frozenset("RL"), "R or L"),
    "PatientSex": (frozenset("FMO"), "F, M or O"),
}


def code(value: object, keyword: str, warnings: list[str]) -> str | None:
    """`value` (a header element's value) as a valid code for `keyword`, or None, noting why in `warnings`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):  # several values (a MultiValue) or bytes: the attributes read here have VM 1
        warnings.append(f"{keyword} holds several values or a non-text value, where one code belongs: ignored")
        return None
    text = value.strip().upper()
    if not _CS.fullmatch(text):
        warnings.append(
            f"{keyword} holds {len(value)} characters that are not a DICOM code (up to 16 letters, digits, spaces "
            "or underscores): ignored"
        )
        return None
    known, what = _DEFINED.get(keyword, (None, ""))
    if known is not None and text not in known:
        warnings.append(f"{keyword} '{text}' is not {what}: ignored")
        return None
    return text


def read(ds: object, keyword: str, warnings: list[str]) -> str | None:
    """The coded attribute `keyword` of dataset `ds` (anything with `.get`), checked."""
    return code(ds.get(keyword), keyword, warnings)  # type: ignore[attr-defined]


def uid(value: object, keyword: str, warnings: list[str]) -> str | None:
    """A UID (PS3.5 9.1: digits and dots, at most 64 characters), or None with a warning."""
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().rstrip("\0")
    if len(text) > 64 or not _UID.fullmatch(text):
        warnings.append(f"{keyword} is not a valid UID ({len(text)} characters): ignored")
        return None
    return text


def unit(value: object, warnings: list[str]) -> str | None:
    """A unit code (RescaleType, ModalityLUTType: HU, OD, MGML ...): a short code, or None with a warning."""
    return code(value, "the unit (RescaleType or ModalityLUTType)", warnings)


def window_name(value: str | None) -> str | None:
    """A window's explanation is meant to be a name such as "BONE"; anything else may be free text."""
    if value is None:
        return None
    text = value.strip()
    return text if _WINDOW_NAME.fullmatch(text) else None


def user_modality(value: str) -> str:
    """The modality a user passes for a plain image: one of the DICOM codes, or a StudyError naming them."""
    text = value.strip().upper()
    if text not in MODALITIES:
        raise StudyError(
            f"unknown modality code {_shown(text)}",
            f"Use a DICOM modality code, for example CR, DX, CT, MR, US, MG, PT, NM, XA or OT; all known: "
            f"{', '.join(sorted(MODALITIES))}",
        )
    return text


def printable(text: str) -> str:
    """Text whoever made a file (or typed a value) chose, for a message or a label: control characters become '?'."""
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _shown(text: str) -> str:
    """A user's own value, shortened and without control characters, for an error message."""
    return repr(printable(text[:24]) + ("..." if len(text) > 24 else ""))
