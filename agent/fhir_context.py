"""A FHIR R4 report given as the clinical context of a question (a prior DiagnosticReport, its Observations), read
as a few lines of plain English.

The file comes from outside and is treated as hostile: bounded in bytes, nesting and entries, validated by
`validate_fhir` before anything is read, and read by allow-list. Only what describes findings is taken (codes and
their names, statuses, conclusions, values, interpretations, notes, a plain-text presented form); the subject, the
performers, identifiers, names, addresses, contacts, dates and references are never copied, and Patient,
Practitioner and every other resource in a bundle are never read at all. Free text can still name someone, so the
caller runs the result through `clinical_context()` as it does any context."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhirclient.models.annotation import Annotation
from fhirclient.models.attachment import Attachment
from fhirclient.models.bundle import Bundle
from fhirclient.models.codeableconcept import CodeableConcept
from fhirclient.models.diagnosticreport import DiagnosticReport
from fhirclient.models.fhirelementfactory import FHIRElementFactory
from fhirclient.models.observation import Observation, ObservationComponent, ObservationReferenceRange
from fhirclient.models.quantity import Quantity
from fhirclient.models.resource import Resource

from vesalius.agent.context import MAX_CONTEXT_CHARS
from vesalius.agent.errors import AgentError
from vesalius.agent.fhir_report import ICD10CM, LOINC, SNOMED_CT, UMLS, entry_keys, reference_key, validate_fhir

MAX_BYTES = 1_000_000
MAX_ENTRIES = 200
MAX_FIELD_CHARS = 600  # one conclusion, note or value; the whole text is held to MAX_CONTEXT_CHARS
MAX_FORM_BYTES = 16_000  # a base64 plain-text presented form, before decoding (a multiple of 4)
MAX_FORM_CHARS = 1500
MAX_NOTES = 3
MAX_COMPONENTS = 8
MAX_CODES = 10
MAX_QUALIFIERS = 3
MAX_OBSERVATION_CHARS = 1500  # so the first observation always fits beside a report
READ = ("DiagnosticReport", "Observation")
_SYSTEMS = {SNOMED_CT: "SNOMED CT", ICD10CM: "ICD-10-CM", UMLS: "UMLS CUI", LOINC: "LOINC"}
_CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-]{0,31}")  # a code, not a sentence smuggled into one
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "true or false", type(None): "null"}
# ObservationStatus and DiagnosticReportStatus together: fhirclient does not check required bindings
_STATUSES = frozenset(
    [
        "registered",
        "partial",
        "preliminary",
        "final",
        "amended",
        "corrected",
        "appended",
        "cancelled",
        "entered-in-error",
        "unknown",
    ]
)
_COMPARATORS = frozenset(("<", "<=", ">=", ">"))
_LEFT_OUT = ("entered-in-error", "cancelled")  # withdrawn: not context at all


def fhir_context(data: bytes, name: str) -> str:
    """The findings a FHIR R4 JSON report (`data`, a file called `name`, for messages) holds, as plain text of at most
    `MAX_CONTEXT_CHARS` characters; one clear `AgentError` for anything that cannot be read."""
    document = _parse(data, name)
    kind = document.get("resourceType")
    if kind != "Bundle" and kind not in READ:
        raise AgentError(
            f"the FHIR file {name} is a {_kind(kind)}, which holds no report to read",
            "Give a DiagnosticReport, an Observation, or a Bundle holding them",
        )
    entries = document.get("entry")
    if kind == "Bundle" and isinstance(entries, list) and len(entries) > MAX_ENTRIES:
        raise AgentError(
            f"the FHIR bundle {name} has {len(entries):,} entries, over {MAX_ENTRIES}",
            "Give the prior report and its observations only",
        )
    try:
        parsed = validate_fhir(document, whole=False)  # what a report points at outside the file is never read
    except AgentError as exc:
        raise AgentError(f"{exc.problem} (the FHIR file {name})", exc.remedy) from None
    if isinstance(parsed, DiagnosticReport):
        return _text([parsed], [], {}, name)
    if isinstance(parsed, Observation):
        return _text([], [parsed], {}, name)
    assert isinstance(parsed, Bundle)  # the three kinds were checked above
    return _bundle_text(parsed, name)


def _parse(data: bytes, name: str) -> dict[str, Any]:
    if len(data) > MAX_BYTES:
        raise AgentError(f"the FHIR file {name} is over 1 MB", "Give the prior report alone, not a whole record")
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError:
        raise AgentError(f"the FHIR file {name} is not UTF-8", "Save the FHIR JSON as UTF-8") from None
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise AgentError(
            f"the FHIR file {name} nests too deeply to read", "Give a report as an EHR writes it"
        ) from None
    except ValueError as exc:  # JSONDecodeError, NaN or Infinity, an integer of thousands of digits
        where = f" (line {exc.lineno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise AgentError(f"the FHIR file {name} is not valid JSON{where}", "Give a FHIR R4 JSON report") from None
    if not isinstance(document, dict):
        raise AgentError(
            f"the FHIR file {name} holds a JSON {_JSON_TYPES.get(type(document), 'value')}, not an object",
            "Give one FHIR R4 resource or Bundle as a JSON object",
        )
    return document


def _no_constant(word: str) -> None:
    raise ValueError(f"{word} is not JSON")


def _kind(kind: object) -> str:
    """The resource type by its name when FHIR R4 defines it; any other word may be something the file holds."""
    known = isinstance(kind, str) and re.fullmatch(r"[A-Z][A-Za-z]{0,63}", kind)
    model = FHIRElementFactory.instantiate(kind, None) if known else None
    return str(kind) if isinstance(model, Resource) else "resource of unknown type"


def _bundle_text(bundle: Bundle, name: str) -> str:
    reports: list[DiagnosticReport] = []
    observations: list[Observation] = []
    by_key: dict[str, Observation] = {}
    for entry in bundle.entry or []:
        resource = entry.resource
        if isinstance(resource, DiagnosticReport):
            reports.append(resource)
        elif isinstance(resource, Observation):
            observations.append(resource)
            by_key |= dict.fromkeys(entry_keys(entry.fullUrl, resource), resource)
    if not reports and not observations:
        raise AgentError(
            f"the FHIR bundle {name} holds no DiagnosticReport or Observation",
            "Give the prior report as a DiagnosticReport with its Observations",
        )
    return _text(reports, observations, by_key, name)


@dataclass(frozen=True)
class _Block:
    """A report and the observations it lists, or (no report) the observations no report lists."""

    report: str
    label: str  # said before the first observation
    observations: list[str]


def _text(
    reports: list[DiagnosticReport], observations: list[Observation], by_key: dict[str, Observation], name: str
) -> str:
    """Each report followed by its own results, then the observations no report lists."""
    withdrawn = sum(r.status in _LEFT_OUT for r in reports) + sum(o.status in _LEFT_OUT for o in observations)
    blocks: list[_Block] = []
    listed: dict[int, Observation] = {}
    for report in (r for r in reports if r.status not in _LEFT_OUT):
        results = (by_key.get(reference_key(ref.reference or "")) for ref in report.result or [])
        own = {id(o): o for o in results if o is not None and o.status not in _LEFT_OUT and id(o) not in listed}
        listed |= own
        blocks.append(_Block(_report(report), "Observations:", [_observation(o) for o in own.values()]))
    rest = [_observation(o) for o in observations if id(o) not in listed and o.status not in _LEFT_OUT]
    if rest:
        blocks.append(_Block("", "Other observations (FHIR):" if blocks else "Observations (FHIR):", rest))
    if not blocks:
        raise AgentError(f"the FHIR file {name} holds only entries entered in error or cancelled", "Give a current one")
    tail = f" ({withdrawn} entered in error or cancelled, left out.)" if withdrawn else ""
    return _fill(blocks, tail)


def _fill(blocks: list[_Block], tail: str) -> str:
    """The blocks in order until `MAX_CONTEXT_CHARS` is reached, then how much was left out: what comes first (the
    report, then its own results) matters most, so it is what stays."""
    budget = MAX_CONTEXT_CHARS - len(tail) - 80  # room for the "left out" sentence
    out = ""
    for b, block in enumerate(blocks):
        if block.report:
            head = block.report if out else _clip(block.report, budget)
            if len(out) + 1 + len(head) > budget:
                return out + _left_out(blocks[b:], 0) + tail
            out = f"{out} {head}".lstrip()
        for i, item in enumerate(block.observations):
            prefix = f" {block.label} " if i == 0 else "; "
            if len(out) + len(prefix) + len(item) + 1 > budget:
                return _sentence(out) + _left_out(blocks[b + 1 :], len(block.observations) - i) + tail
            out = (out + prefix + item).lstrip()
        out = _sentence(out)
    return out + tail


def _sentence(text: str) -> str:
    return text if not text or text.endswith(".") else text + "."


def _left_out(blocks: list[_Block], observations: int) -> str:
    observations += sum(len(b.observations) for b in blocks)
    reports = sum(bool(b.report) for b in blocks)
    parts = [f"{n} more {word}" for n, word in ((observations, "observations"), (reports, "reports")) if n]
    return f" ... {' and '.join(parts)} left out." if parts else ""


def _report(r: DiagnosticReport) -> str:
    text = f"Earlier report (FHIR DiagnosticReport, {_status(r.status)}): {_label(r.code)}."
    if r.conclusion:
        text += f" Conclusion: {_clean(r.conclusion)}"
        text += "" if text.endswith(".") else "."
    coded = [_coded(c) for c in (r.conclusionCode or [])[:MAX_CODES]]
    if coded:
        text += f" Coded: {'; '.join(coded)}."
    forms = [f for f in (_plain_form(a) for a in r.presentedForm or []) if f]
    if forms:
        text += f" Report text: {forms[0]}" + ("" if forms[0].endswith(".") else ".")
    return text


def _observation(o: Observation) -> str:
    label = _label(o.code)
    text = f"{label} {value}" if (value := _value(o, label)) else label
    qualifiers = [_status(o.status)] if o.status not in ("final", "amended", "corrected") else []
    qualifiers += [_label(i) for i in (o.interpretation or [])[:MAX_QUALIFIERS]]
    qualifiers += [r for r in (_range(r) for r in (o.referenceRange or [])[:MAX_QUALIFIERS]) if r]
    if qualifiers:
        text += f" ({', '.join(qualifiers)})"
    components = [c for c in (_component(c) for c in (o.component or [])[:MAX_COMPONENTS]) if c]
    more = len(o.component or []) - MAX_COMPONENTS
    if components:
        text += ": " + ", ".join(components) + (f", {more} more components" if more > 0 else "")
    notes = _notes(o.note)
    return _clip(f"{text} [notes: {notes}]" if notes else text, MAX_OBSERVATION_CHARS)


def _component(c: ObservationComponent) -> str:
    label = _label(c.code)
    value = _value(c, label)
    return f"{label} {value}" if value else ""


def _status(status: str | None) -> str:
    """A status from R4's required value sets; any other text is not copied (it could be anything)."""
    return status if status in _STATUSES else "status not in FHIR R4"


def _value(o: Observation | ObservationComponent, label: str) -> str:
    """value[x] as words, for the types a report's findings take; the rest (dates, periods, samples) is not read."""
    if o.valueQuantity is not None:
        return _quantity(o.valueQuantity, label)
    if o.valueCodeableConcept is not None:
        return _label(o.valueCodeableConcept)
    if o.valueString is not None:
        return _clean(o.valueString)
    if o.valueBoolean is not None:
        return "yes" if o.valueBoolean else "no"
    if o.valueInteger is not None:
        return _clip(str(o.valueInteger), 24)
    return ""


def _quantity(q: Quantity, label: str) -> str:
    if q.value is None:
        return ""
    unit = _clean(q.unit or q.code or "", 24)
    shown = f"{q.comparator if q.comparator in _COMPARATORS else ''}{q.value:g}"
    # "pneumonia probability 0.83", not "... 0.83 probability"; "1" is UCUM's unit for a pure number
    return shown if not unit or unit == "1" or unit.lower() in label.lower() else f"{shown} {unit}"


def _range(r: ObservationReferenceRange) -> str:
    """The range's own words when it has them (a screening threshold says what it means), else its numbers."""
    if r.text:
        return _clean(r.text, 160)
    low, high = r.low.value if r.low else None, r.high.value if r.high else None
    if low is not None and high is not None:
        return f"reference {low:g} to {high:g}"
    if high is not None:
        return f"reference up to {high:g}"
    return f"reference from {low:g}" if low is not None else ""


def _notes(notes: list[Annotation] | None) -> str:
    """Annotation text only: its author and time are who and when, which context never carries."""
    texts = [_clean(n.text).rstrip(".") for n in (notes or [])[:MAX_NOTES] if n.text]
    more = len(notes or []) - MAX_NOTES
    return ". ".join(texts) + (f"; {more} more left out" if more > 0 else "")


def _plain_form(a: Attachment) -> str:
    """A presented form's text when it is plain text inline; a PDF, an image or a URL is not read."""
    if not a.data or (a.contentType or "").lower().split(";")[0].strip() != "text/plain":
        return ""
    data = "".join(a.data.split())  # base64Binary may be wrapped in lines
    if len(data) > MAX_FORM_BYTES:
        return _clean(_decode(data[:MAX_FORM_BYTES]), MAX_FORM_CHARS) + " ..."
    return _clean(_decode(data), MAX_FORM_CHARS)


def _decode(data: str) -> str:
    try:
        return base64.b64decode(data, validate=True).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""


def _label(c: CodeableConcept | None) -> str:
    if c is None:
        return "unnamed"
    if c.text:
        return _clean(c.text, 120)
    display = next((cd.display for cd in c.coding or [] if cd.display), None)
    if display:
        return _clean(display, 120)
    codes = _codes(c)
    return codes or "unnamed code"


def _coded(c: CodeableConcept) -> str:
    codes = _codes(c)
    return f"{_label(c)} ({codes})" if codes and codes != _label(c) else _label(c)


def _codes(c: CodeableConcept) -> str:
    """The codes from systems a reader knows, each checked to look like a code."""
    found = [
        f"{_SYSTEMS[cd.system]} {cd.code}"
        for cd in c.coding or []
        if cd.system in _SYSTEMS and cd.code and _CODE.fullmatch(cd.code)
    ]
    return "; ".join(_unique(found))


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _clean(text: str, limit: int = MAX_FIELD_CHARS) -> str:
    """One line of printable text, at most `limit` characters."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[: limit - 4].rstrip() + " ..."


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 4].rstrip() + " ..."
