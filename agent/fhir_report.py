"""Findings out as FHIR R4 (4.0.1), and the validation every FHIR document in or out of Vesalius goes through.

`to_fhir` writes one `Bundle` (type "collection"): a `DiagnosticReport` with the direct answer, the uncertainty and
the cited concepts; one `Observation` per calibrated probability and per anomaly score; an `ImagingStudy` naming the
de-identified study; and a blank `Patient`, there only because R4 requires an ImagingStudy to have a subject. The
report stays "preliminary": it is machine output that no clinician has reviewed. Entries are named by urn:uuid
derived from the conversation and turn, so the same findings always give the same bundle apart from timestamps.

`validate_fhir` parses with fhirclient's strict models (unknown elements, wrong types, missing required elements,
malformed dates) and adds what fhirclient leaves out: bounded nesting, finite numbers, no empty values, one value
per choice element and, inside a bundle, references that resolve to an entry. Value-set bindings are not checked,
so only codes from the required value sets are written here."""

from __future__ import annotations

import html
import math
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from fhirclient.models.bundle import Bundle
from fhirclient.models.fhirabstractbase import FHIRAbstractBase, FHIRValidationError
from fhirclient.models.fhirelementfactory import FHIRElementFactory
from fhirclient.models.reference import Reference
from fhirclient.models.resource import Resource

from vesalius.agent.errors import AgentError
from vesalius.agent.findings import AnomalyFinding, Coded, Findings, ProbabilityFinding, RegionFinding
from vesalius.vision.models.probability import shown

Json = dict[str, Any]

MAX_DEPTH = 64  # a report nests a dozen levels; far deeper is an attack on the recursive parser
SNOMED_CT = "http://snomed.info/sct"
UMLS = "http://www.nlm.nih.gov/research/umls"
ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# R4 ImagingStudy names the Study Instance UID by this system, the value being "urn:oid:<uid>".
DICOM_UID = "urn:dicom:uid"
RFC_3986 = "urn:ietf:rfc:3986"
# Fixed, so a conversation's turn maps to the same entry UUIDs on every export.
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://vesalius.invalid/fhir/findings")
_NOT_DIAGNOSES = (
    "These are probabilities and scores from trained models, not diagnoses. This is machine output that no "
    "clinician has reviewed, so the report is preliminary."
)
_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def to_fhir(f: Findings) -> Json:
    """`f` as a validated FHIR R4 collection Bundle (JSON-ready dict)."""
    patient = _urn(f, "patient")
    study = _urn(f, "study") if f.study_uid else None
    observations: list[tuple[str, Json]] = []
    for i, p in enumerate(f.probabilities):
        observations.append((_urn(f, f"probability/{i}"), _probability(p, patient, study)))
    for i, a in enumerate(f.anomalies):
        observations.append((_urn(f, f"anomaly/{i}"), _anomaly(a, f.image_size, patient, study)))
    report = _report(f, patient, study, [url for url, _ in observations])
    resources: list[tuple[str, Json]] = [(_urn(f, "report"), report), (patient, {"resourceType": "Patient"})]
    if study is not None:
        resources.append((study, _imaging_study(f, patient)))
    resources += observations
    bundle_id = _urn(f, "bundle")
    bundle = {
        "resourceType": "Bundle",
        "id": _id(bundle_id),
        "identifier": {"system": RFC_3986, "value": bundle_id},
        "type": "collection",
        "timestamp": _instant(f.written),
        "entry": [
            {"fullUrl": url, "resource": {"resourceType": r["resourceType"], "id": _id(url), **r}}
            for url, r in resources
        ],
    }
    try:
        validate_fhir(bundle)
    except AgentError as exc:  # a bug here, or findings no report can carry (a probability that is not a number)
        raise AgentError(
            f"the FHIR export of these findings is not valid: {exc.problem}", "Export as JSON or DICOM SR instead"
        ) from None
    return bundle


def validate_fhir(data: Json, *, whole: bool = True) -> Resource:
    """`data` parsed, or one `AgentError` line naming the first problem when it is not a valid FHIR R4 resource or
    Bundle.
    `whole`: every reference inside a bundle must name one of its entries (an export must be whole; a report taken
    from an EHR points at a Patient or Practitioner it leaves out, which context never reads anyway)."""
    if not isinstance(data, dict):
        raise AgentError("the FHIR data is not a JSON object", "Give one FHIR R4 resource or Bundle as a JSON object")
    _check_shape(data)
    kind = data.get("resourceType")
    model = _model(kind)
    try:
        parsed = type(model)(data, strict=True)
    except FHIRValidationError as exc:
        raise AgentError(
            f"the FHIR {kind} is not valid R4: {_first_problem(exc, str(kind), data)}",
            "Give a FHIR R4 (4.0.1) JSON resource that validates",
        ) from None
    except RecursionError:
        raise AgentError(f"the FHIR {kind} nests too deeply to read", "Give a report as an EHR writes it") from None
    problem = _choice_problem(parsed, str(kind))
    if problem is None and isinstance(parsed, Bundle):
        problem = _reference_problem(parsed, whole)
    if problem is not None:
        raise AgentError(f"the FHIR {kind} is not valid R4: {problem}", "Give a FHIR R4 (4.0.1) JSON resource")
    return parsed


def entry_keys(url: str | None, resource: Resource | None) -> set[str]:
    """What a reference inside a bundle may say to mean this entry: its fullUrl, or "Type/id" (relative)."""
    keys = {url} if url else set()
    if resource is not None and resource.id:
        keys.add(f"{resource.resource_type}/{resource.id}")
    if url and not url.startswith("urn:"):
        keys.add("/".join(url.rstrip("/").split("/")[-2:]))  # a RESTful fullUrl ends in Type/id
    return keys


def reference_key(reference: str) -> str:
    """A reference without a version ("Observation/1/_history/2" means the entry "Observation/1")."""
    return reference.split("/_history/", 1)[0]


# --- the resources ---------------------------------------------------------------------------------------------


def _report(f: Findings, patient: str, study: str | None, results: list[str]) -> Json:
    report: Json = {
        "resourceType": "DiagnosticReport",
        "text": {"status": "generated", "div": _narrative(f)},
        "status": "preliminary",
        "code": (
            {"coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}]}
            if study
            else {"text": "Answer to a medical question, without an image"}
        ),
        "subject": {"reference": patient},
        "issued": _instant(f.written),
        "conclusion": " ".join(part for part in (f.direct_answer.strip(), f.uncertainty.strip()) if part),
    }
    if study:
        report["category"] = [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}]
        report["imagingStudy"] = [{"reference": study}]
    if results:
        report["result"] = [{"reference": url} for url in results]
    if f.concepts:
        report["conclusionCode"] = [_concept(c, c.name) for c in f.concepts]
    if not report["conclusion"]:
        del report["conclusion"]  # FHIR forbids empty strings
    return report


def _narrative(f: Findings) -> str:
    paragraphs = [f"<b>Urgent:</b> {_xhtml(note)}" for note in f.urgent]
    paragraphs += [_xhtml(text) for text in (f.direct_answer, f.uncertainty) if text.strip()]
    items = [_probability_line(p) for p in f.probabilities] + [_xhtml(a.summary) for a in f.anomalies]
    body = "".join(f"<p>{p}</p>" for p in paragraphs)
    if items:
        body += "<ul>" + "".join(f"<li>{item}</li>" for item in items) + "</ul>"
    body += f"<p>{_xhtml(_NOT_DIAGNOSES)} Written by Vesalius {_xhtml(f.vesalius_version)}.</p>"
    return f'<div xmlns="http://www.w3.org/1999/xhtml">{body}</div>'


def _probability_line(p: ProbabilityFinding) -> str:
    line = f"{p.label}: probability {shown(p.probability)}"
    if p.in_training_range is False:
        line += ", outside the model's training range, so it has no calibrated meaning here"
    elif p.threshold is not None and p.above_threshold is not None:
        side = "above" if p.above_threshold else "below"
        line += f", {side} the screening threshold {p.threshold:.2f}"
    return _xhtml(f"{line} ({p.model.name} {p.model.version})")


def _imaging_study(f: Findings, patient: str) -> Json:
    assert f.study_uid is not None
    study: Json = {
        "resourceType": "ImagingStudy",
        "status": "available",
        "identifier": [{"system": DICOM_UID, "value": f"urn:oid:{f.study_uid}"}],
        "subject": {"reference": patient},
    }
    modality = f.study.modality if f.study is not None and f.study.modality_source != "assumed" else None
    if modality:
        study["modality"] = [{"system": DCM, "code": modality}]
    if f.image is not None:
        instance: Json = {
            "uid": f.image.sop_instance_uid,
            "sopClass": {"system": RFC_3986, "code": f"urn:oid:{f.image.sop_class_uid}"},
        }
        if f.image.frame_number is not None:
            instance["title"] = f"frame {f.image.frame_number} of a multi-frame image"
        study["series"] = [
            {
                "uid": f.image.series_uid,
                "modality": {"system": DCM, "code": modality or "OT"},
                "instance": [instance],
            }
        ]
    return study


def _probability(p: ProbabilityFinding, patient: str, study: str | None) -> Json:
    code = _concept(p.concept, f"{p.label} probability")
    notes = [_validation(p.model.validation)] + p.caveats
    observation = _observation(code, p.model.name, p.model.version, patient, study)
    observation["valueQuantity"] = _quantity(p.probability, "probability", "1")
    if p.in_training_range is False:
        # Outside its training range the number is not a calibrated likelihood: no positive or negative reading.
        notes.insert(0, "Outside the model's training range: the probability has no calibrated meaning here.")
    elif p.above_threshold is not None and p.threshold is not None:
        observation["interpretation"] = [
            _interpretation("POS", "Positive") if p.above_threshold else _interpretation("NEG", "Negative")
        ]
    if p.threshold is not None:
        observation["referenceRange"] = [
            {
                "high": _quantity(p.threshold, "probability", "1"),
                "text": f"screening threshold {p.threshold:g} from the model card: above it screens positive",
            }
        ]
    observation["note"] = [{"text": n} for n in notes if n.strip()]
    return observation


def _anomaly(a: AnomalyFinding, size: tuple[int, int] | None, patient: str, study: str | None) -> Json:
    observation = _observation({"text": f"anomaly score ({a.tool})"}, a.model.name, a.model.version, patient, study)
    observation["valueQuantity"] = _quantity(a.score, "score", "1")
    observation["interpretation"] = [_interpretation("A", "Abnormal") if a.unusual else _interpretation("N", "Normal")]
    observation["referenceRange"] = [
        {
            "high": _quantity(a.threshold, "score", "1"),
            "text": f"threshold {a.threshold:g}, set from validation normal images: above it is unusual",
        }
    ]
    if a.regions:
        observation["component"] = [c for i, r in enumerate(a.regions, 1) for c in _region(i, r)]
    grid = f" of the {size[1]} x {size[0]} pixel image" if size else ""
    notes = [a.summary, _validation(a.model.validation)]
    if a.regions:
        notes.append(
            f"Regions are rectangles in pixels{grid}, origin top-left: components region N x, y, width, height."
        )
    notes += [f"Region {i}: {r.side}" for i, r in enumerate(a.regions, 1) if r.side]
    observation["note"] = [{"text": n} for n in notes + a.caveats if n.strip()]
    return observation


def _region(i: int, r: RegionFinding) -> list[Json]:
    """A rectangle as four pixel measurements and its score: each a number a program can read back."""
    sides = {"x": r.x, "y": r.y, "width": r.width, "height": r.height}
    parts = [
        {"code": {"text": f"region {i} {k}"}, "valueQuantity": _quantity(v, "pixel", "{pixel}")}
        for k, v in sides.items()
    ]
    return parts + [
        {"code": {"text": f"region {i} score"}, "valueQuantity": _quantity(r.score, r.unit or "score", "1")}
    ]


def _observation(code: Json, model: str, version: str, patient: str, study: str | None) -> Json:
    observation: Json = {
        "resourceType": "Observation",
        "status": "preliminary",
        "category": [{"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}],
        "code": code,
        "subject": {"reference": patient},
        "method": {"text": f"{model} {version}"},
    }
    if study is not None:
        observation["derivedFrom"] = [{"reference": study}]
    return observation


def _validation(card: str) -> str:
    # A receiving system shows this beside the value: say where the numbers were measured, not only what they are.
    return (
        f"Model card validation, on images like the model's training data: {card}. These numbers are optimistic: "
        "on images from other hospitals, devices or populations expect lower accuracy and a larger calibration error."
    )


def _concept(c: Coded | None, text: str) -> Json:
    if c is None:
        return {"text": text}
    codings = [{"system": SNOMED_CT, "code": code} for code in c.snomed_ct if code]
    codings += [{"system": UMLS, "code": c.umls_cui}] if c.umls_cui else []
    codings += [{"system": ICD10CM, "code": code} for code in c.icd10cm if code]
    return {"coding": codings, "text": text} if codings else {"text": text}


def _quantity(value: float, unit: str, code: str) -> Json:
    return {"value": value, "unit": unit, "system": UCUM, "code": code}


def _interpretation(code: str, display: str) -> Json:
    return {"coding": [{"system": INTERPRETATION, "code": code, "display": display}]}


def _urn(f: Findings, role: str) -> str:
    name = "\n".join((f.thread_id, str(f.turn), role))
    return f"urn:uuid:{uuid.uuid5(_NAMESPACE, name)}"


def _id(urn: str) -> str:
    return urn.removeprefix("urn:uuid:")


def _instant(when: datetime) -> str:
    """An R4 instant: seconds and a zone are required. A naive time is taken as UTC, as `Findings` writes it."""
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _xhtml(text: str) -> str:
    return html.escape(" ".join(text.split()), quote=False)


# --- validation ------------------------------------------------------------------------------------------------


def _check_shape(data: Json) -> None:
    """What fhirclient lets through: nesting beyond `MAX_DEPTH`, numbers that are not finite, and the empty strings,
    arrays and objects FHIR's JSON format forbids. Walked without recursion, so no document can exhaust the stack."""
    stack: list[tuple[Any, str, int]] = [(data, str(data.get("resourceType") or "the data"), 1)]
    while stack:
        node, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise AgentError(f"the FHIR data nests over {MAX_DEPTH} levels deep", "Give a report as an EHR writes it")
        if node in ("", [], {}):
            raise AgentError(f"the FHIR data has an empty value at {where}", "Leave out elements that have no value")
        if isinstance(node, dict):
            stack += [(v, f"{where}.{_name(k)}", depth + 1) for k, v in node.items()]
        elif isinstance(node, list):
            stack += [(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(node)]
        elif isinstance(node, float) and not math.isfinite(node):
            raise AgentError(f"the FHIR data has a number that is not finite at {where}", "Give decimal numbers")


def _name(key: object) -> str:
    """An element name fit for a message: a hostile file's keys may be anything, a patient's name included."""
    return key if isinstance(key, str) and _SAFE_NAME.fullmatch(key) else "(an unknown element)"


def _model(kind: object) -> Resource:
    """An empty instance of the resource class `kind` names, or one clear error."""
    if not isinstance(kind, str) or not kind:
        raise AgentError("the FHIR data has no resourceType", 'Give a FHIR R4 resource with "resourceType"')
    model = FHIRElementFactory.instantiate(kind, None) if _SAFE_NAME.fullmatch(kind) else None
    if not isinstance(model, Resource):
        raise AgentError("the resourceType is not a FHIR R4 resource", "Give a FHIR R4 resource such as a Bundle")
    return model


def _first_problem(exc: FHIRValidationError, kind: str, data: Json) -> str:
    """fhirclient's nested error as one line: the first problem, at its path, without object reprs or values."""
    steps: list[str] = []
    err: BaseException = exc
    while isinstance(err, FHIRValidationError):
        steps += [s for s in (err.path or "").split(".") if s]
        if not err.errors:
            break
        err = err.errors[0]
    message = str(err.args[0]) if err.args else ""
    quoted = re.search(r'"([^"]*)"', message)
    name = quoted.group(1) if quoted and _SAFE_NAME.fullmatch(quoted.group(1)) else "an element"
    if isinstance(err, KeyError):
        steps.append(name)
        what = "is required but missing"
    elif isinstance(err, AttributeError):
        steps.append(name)
        what = "is not an element FHIR R4 defines there"
    elif isinstance(err, ValueError):
        what = "is not a valid FHIR date or time"
    else:  # TypeError, or fhirclient's bare Exception for text where a resource belongs
        what = _wrong_type(message)
    return f"{_where(kind, steps, data)} {what}"


def _wrong_type(message: str) -> str:
    if "expecting a list" in message:
        return "must be a JSON array"
    if "Expecting string" in message:
        return "must be text"
    expected = re.search(r"expecting <class '(?:[\w.]+\.)?(\w+)'>", message)
    simple = {"str": "text", "float": "a number", "int": "an integer", "bool": "true or false"}
    if expected and expected.group(1) in simple:
        return f"must be {simple[expected.group(1)]}"
    if expected and expected.group(1) == "Resource":
        return "must be a FHIR resource"
    return "must be a JSON object"


def _where(kind: str, steps: list[str], data: Json) -> str:
    """`steps` as "Observation.status (Bundle.entry[2].resource)": the element in its own resource, then where that
    resource sits, so a problem deep in a bundle is named the way FHIR's own pages name it."""
    node: Any = data
    owner, start = kind, 0
    names = [s.removesuffix("_fhir") for s in steps]
    for i, step in enumerate(names):
        node = _child(node, step)
        if isinstance(node, dict) and isinstance(node.get("resourceType"), str) and i + 1 < len(names):
            owner, start = node["resourceType"], i + 1
    path = owner + "".join(f"[{s}]" if s.isdigit() else f".{s}" for s in names[start:])
    if start == 0:
        return path
    container = kind + "".join(f"[{s}]" if s.isdigit() else f".{s}" for s in names[:start])
    return f"{path} (at {container})"


def _child(node: Any, step: str) -> Any:
    if isinstance(node, list) and step.isdigit() and int(step) < len(node):
        return node[int(step)]
    return node.get(step) if isinstance(node, dict) else None


def _walk(element: FHIRAbstractBase, path: str) -> Iterator[tuple[FHIRAbstractBase, str]]:
    """Every element under `element` with its path, in document order, without recursion."""
    stack = [(element, path)]
    while stack:
        node, where = stack.pop()
        yield node, where
        children = []
        for name, json_name, _, _, _, _ in node.elementProperties():
            value = getattr(node, name, None)
            items = value if isinstance(value, list) else [value]
            for i, item in enumerate(items):
                if isinstance(item, FHIRAbstractBase):
                    suffix = f"[{i}]" if isinstance(value, list) else ""
                    children.append((item, f"{where}.{json_name}{suffix}"))
        stack += reversed(children)


def _choice_problem(parsed: Resource, kind: str) -> str | None:
    """fhirclient accepts two values for one choice element (valueQuantity and valueString); FHIR does not."""
    for node, where in _walk(parsed, kind):
        counts: dict[str, int] = {}
        for name, _, _, _, of_many, _ in node.elementProperties():
            if of_many is not None and getattr(node, name, None) is not None:
                counts[of_many] = counts.get(of_many, 0) + 1
        if clash := next((choice for choice, n in counts.items() if n > 1), None):
            return f"{where}.{clash}[x] has more than one value"
    return None


def _reference_problem(bundle: Bundle, whole: bool) -> str | None:
    """Two entries with one fullUrl; with `whole`, the first reference inside `bundle` that names no entry."""
    entries = bundle.entry or []
    known: set[str] = set()
    for i, entry in enumerate(entries):
        keys = entry_keys(entry.fullUrl, entry.resource)
        if entry.fullUrl and entry.fullUrl in known:
            return f"Bundle.entry[{i}].fullUrl repeats another entry's fullUrl"
        known |= keys
    for i, entry in enumerate(entries):
        if entry.resource is None or not whole:
            continue
        contained = {f"#{c.id}" for c in getattr(entry.resource, "contained", None) or [] if c.id} | {"#"}
        for node, where in _walk(entry.resource, entry.resource.resource_type):
            if not isinstance(node, Reference) or node.reference is None:
                continue
            ref = reference_key(node.reference)
            if ref not in known and ref not in contained:
                return f"{where}.reference (at Bundle.entry[{i}].resource) names no entry of the bundle"
    return None
