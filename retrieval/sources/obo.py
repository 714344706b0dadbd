"""OBO 1.4 flat files (Disease Ontology, HPO, MONDO...): one SourceConcept per non-obsolete [Term] stanza.

Only what the knowledge base uses is read: name, definition, synonyms of the chosen scopes, cross-references, alt_ids,
is_a and relationship edges. Logical axioms (intersection_of, union_of, equivalent_to...) are ignored.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vesalius.retrieval.records import Definition, Problems, Relation, SourceConcept
from vesalius.retrieval.sources.curies import URL_PREFIXES, canonical_prefix, is_cui
from vesalius.retrieval.sources.licences import describe_licence
from vesalius.retrieval.sources.textio import read_lines

SYNONYM_SCOPES = frozenset({"EXACT", "RELATED", "BROAD", "NARROW"})
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_OBO_DATE = re.compile(r"(\d{2}):(\d{2}):(\d{4})")  # the header's `date:` tag is dd:MM:yyyy HH:mm
_OBO_ID = re.compile(r"([A-Za-z][A-Za-z0-9_]*):([A-Za-z0-9_.\-]+)")
_ESCAPES = {"n": "\n", "t": "\t", "W": " "}


@dataclass
class _Tag:
    line: int
    tag: str
    value: str


@dataclass
class _Stanza:
    kind: str  # "Term", "Typedef", "Instance"
    line: int
    tags: list[_Tag] = field(default_factory=list)


@dataclass(frozen=True)
class OboHeader:
    source: str  # "DOID 2024-01-31"
    license: str


def load_obo(path: Path, problems: Problems, synonym_scopes: Iterable[str] = ("EXACT",)) -> Iterator[SourceConcept]:
    """Stream the non-obsolete terms of an .obo or .obo.gz file.

    The source name is the header's `ontology` upper-cased with its release date ("DOID 2024-01-31"); licence from
    the header's licence property or a remark that mentions one. Malformed lines go to `problems`.
    """
    scopes = frozenset(s.upper() for s in synonym_scopes)
    unknown = scopes - SYNONYM_SCOPES
    if unknown:
        raise ValueError(f"unknown synonym scope(s) {sorted(unknown)}; use some of {sorted(SYNONYM_SCOPES)}")
    return _terms(path, _stanzas(path, read_lines(path, problems), problems), problems, scopes)


def _stanzas(path: Path, lines: Iterable[tuple[int, str]], problems: Problems) -> Iterator[_Stanza]:
    """The header first (kind ""), then each stanza with its tag lines."""
    current = _Stanza("", 0)
    for line_no, raw in lines:
        line = raw.strip()
        if not line or line.startswith("!"):
            continue
        if line.startswith("[") and line.endswith("]"):
            yield current
            current = _Stanza(line[1:-1].strip(), line_no)
            continue
        tag, sep, value = line.partition(":")
        if not sep or not tag or " " in tag:
            problems.report(path, line_no, f"not a 'tag: value' line: {line[:80]!r}")
            continue
        current.tags.append(_Tag(line_no, tag, value.strip()))
    yield current


def _terms(
    path: Path, stanzas: Iterator[_Stanza], problems: Problems, scopes: frozenset[str]
) -> Iterator[SourceConcept]:
    header = _read_header(path, next(stanzas))
    for stanza in stanzas:
        if stanza.kind == "Term":
            concept = _term(path, stanza, header, problems, scopes)
            if concept is not None:
                yield concept


def _read_header(path: Path, stanza: _Stanza) -> OboHeader:
    values: dict[str, str] = {}
    licence = ""
    remark_licence = ""
    version_info = ""
    for t in stanza.tags:
        if t.tag == "property_value":
            relation, _, rest = t.value.partition(" ")
            stated = _first_value(rest)
            if relation.lower().endswith(("license", "licence")) and not licence:
                licence = stated
            elif relation.endswith("versionInfo"):
                version_info = stated
        elif t.tag == "remark" and "licen" in t.value.lower() and not remark_licence:
            remark_licence = _unescape(t.value)
        else:
            values.setdefault(t.tag, t.value)

    name = values.get("ontology", "").removesuffix(".obo").removesuffix(".owl").upper()
    name = name or re.split(r"[-_.]", path.name, maxsplit=1)[0].upper()
    version = ""
    for candidate in (values.get("data-version", ""), version_info, path.name):
        if found := _DATE.search(candidate):
            version = found.group()
            break
    if not version and (found := _OBO_DATE.search(values.get("date", ""))):
        version = f"{found[3]}-{found[2]}-{found[1]}"
    version = version or values.get("data-version", "")
    return OboHeader(f"{name} {version}".strip(), describe_licence(licence) if licence else remark_licence)


def _first_value(text: str) -> str:
    """The value of a `property_value`: a quoted string (without its datatype) or a bare token."""
    text = text.strip()
    if text.startswith('"'):
        quoted, _ = _quoted(text)
        return quoted if quoted is not None else text
    return text.split(" ", 1)[0]


def _term(
    path: Path, stanza: _Stanza, header: OboHeader, problems: Problems, scopes: frozenset[str]
) -> SourceConcept | None:
    tags: dict[str, list[_Tag]] = {}
    for t in stanza.tags:
        tags.setdefault(t.tag, []).append(t)
    if any(_bare(t.value).lower() == "true" for t in tags.get("is_obsolete", [])):
        return None
    if "id" not in tags:
        problems.report(path, stanza.line, "[Term] stanza has no id")
        return None
    term_id = _bare(tags["id"][0].value)
    if "name" not in tags:
        problems.report(path, stanza.line, f"[Term] {term_id} has no name")
        return None
    name = _unescape(tags["name"][0].value)

    concept = SourceConcept(source=header.source, id=term_id, name=name, license=header.license, link=_purl(term_id))
    for t in tags.get("def", []):
        text, _ = _quoted_or_report(path, t, problems)
        if text:
            concept.definitions.append(Definition(text, header.source))
    seen = {name.casefold()}
    for t in tags.get("synonym", []):
        text, rest = _quoted_or_report(path, t, problems)
        words = rest.split()
        # OBO 1.4 makes the scope optional and RELATED when absent.
        scope = words[0] if words and words[0] in SYNONYM_SCOPES else "RELATED"
        if text and scope in scopes and text.casefold() not in seen:
            seen.add(text.casefold())
            concept.synonyms.append(text)
    for t in tags.get("xref", []):
        _add_xref(concept, _bare(t.value).split(" ", 1)[0])
    # alt_ids are retired identifiers of this same term; mapping sets made from older releases still use them.
    for t in tags.get("alt_id", []):
        _append_new(concept.xrefs, _bare(t.value))
    for t in tags.get("is_a", []):
        target, target_name = _target(t.value)
        _append_new(concept.relations, Relation("is_a", target, target_name))
    for t in tags.get("relationship", []):
        kind, _, rest = t.value.partition(" ")
        target, target_name = _target(rest)
        if not target:
            problems.report(path, t.line, f"relationship without a target: {t.value[:80]!r}")
            continue
        _append_new(concept.relations, Relation(kind, target, target_name))
    return concept


def _add_xref(concept: SourceConcept, xref: str) -> None:
    prefix, sep, local = xref.partition(":")
    if not sep or not local or prefix.lower() in URL_PREFIXES:
        return  # a URL or free text, not an identifier
    canonical = canonical_prefix(prefix)
    if canonical == "UMLS" and is_cui(local):
        _append_new(concept.umls_cuis, local)
    elif canonical == "SCTID" and local.isdigit():
        _append_new(concept.snomed_ct, local)
    elif canonical == "ICD10CM":
        _append_new(concept.icd10cm, local)
    else:
        _append_new(concept.xrefs, f"{canonical}:{local}")


def _append_new(items: list, item: object) -> None:
    if item not in items:
        items.append(item)


def _purl(term_id: str) -> str | None:
    match = _OBO_ID.fullmatch(term_id)
    return f"http://purl.obolibrary.org/obo/{match[1]}_{match[2]}" if match else None


def _target(value: str) -> tuple[str, str | None]:
    """`DOID:850 {modifiers} ! lung disease` -> ("DOID:850", "lung disease")."""
    head, bang, comment = _split_comment(value)
    return _bare(head).split(" ", 1)[0], (comment.strip() or None) if bang else None


def _bare(value: str) -> str:
    """A value without its trailing `! comment` and `{modifiers}`, unescaped."""
    head, _, _ = _split_comment(value)
    head = head.strip()
    if head.endswith("}") and "{" in head:
        head = head[: head.rindex("{")].strip()
    return _unescape(head)


def _split_comment(value: str) -> tuple[str, bool, str]:
    escaped = False
    for i, char in enumerate(value):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == "!":
            return value[:i], True, value[i + 1 :]
    return value, False, ""


def _quoted_or_report(path: Path, tag: _Tag, problems: Problems) -> tuple[str | None, str]:
    text, rest = _quoted(tag.value)
    if text is None:
        problems.report(path, tag.line, f"{tag.tag}: expected text in double quotes, closed by a second '\"'")
    return text, rest


def _quoted(value: str) -> tuple[str | None, str]:
    """Parse `"text with \\" escapes" rest` into (unescaped text, rest); (None, "") when it is not closed."""
    if not value.startswith('"'):
        return None, ""
    chars: list[str] = []
    escaped = False
    for i, char in enumerate(value[1:], start=1):
        if escaped:
            chars.append(_ESCAPES.get(char, char))
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            return "".join(chars).strip(), value[i + 1 :].strip()
        else:
            chars.append(char)
    return None, ""


def _unescape(value: str) -> str:
    if "\\" not in value:
        return value
    chars: list[str] = []
    escaped = False
    for char in value:
        if escaped:
            chars.append(_ESCAPES.get(char, char))
            escaped = False
        elif char == "\\":
            escaped = True
        else:
            chars.append(char)
    return "".join(chars)
