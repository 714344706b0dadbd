"""SSSOM mapping sets (TSV with a `#`-prefixed YAML metadata block), one Mapping per row.

Only the flat `key: value` lines of the metadata block are read (the nested curie_map is not needed: identifiers are
written through `normalise_curie`), so no YAML library is required.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Mapping, Problems
from vesalius.retrieval.sources.curies import is_curie, normalise_curie
from vesalius.retrieval.sources.licences import describe_licence
from vesalius.retrieval.sources.textio import read_lines

REQUIRED_COLUMNS = ("subject_id", "predicate_id", "object_id")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TOP_LEVEL = re.compile(r"#\s?([A-Za-z_][A-Za-z0-9_]*):\s*(.*)")


@dataclass(frozen=True)
class MappingSet:
    """What a mapping set's metadata block says about it."""

    name: str  # "mondo_exactmatch_umls"
    version: str  # "2026-08-04", or the stated mapping_set_version when it holds no date
    license: str  # "CC0 1.0 (https://creativecommons.org/publicdomain/zero/1.0/)", or "" when not stated
    source: str  # what each Mapping.source says: "MONDO mappings 2026-08-04 (mondo_exactmatch_umls)"
    metadata: dict[str, str]  # every top-level `key: value` of the block, as written


def mapping_set_info(path: Path) -> MappingSet:
    """Read only the metadata block of `path` (it is at the top, so this is quick)."""
    metadata: dict[str, str] = {}
    for _, line in read_lines(path, Problems(on_error="skip")):
        if not line.startswith("#"):
            break
        if match := _TOP_LEVEL.fullmatch(line):
            key, value = match[1], match[2].strip().strip("\"'")
            if value:
                metadata[key] = value
    return _describe(path, metadata)


def load_sssom(path: Path, problems: Problems) -> Iterator[Mapping]:
    """Stream the rows of an SSSOM TSV file as Mappings whose `source` names the set and its version.

    A header without subject_id, predicate_id or object_id raises KnowledgeError whatever the error mode (nothing
    in the file could be read); rows with the wrong number of fields or an identifier that is not a CURIE go to
    `problems`. Identifier prefixes are normalised ("mesh:D004194" -> "MESH:D004194").
    """
    return _rows(path, read_lines(path, problems), problems, mapping_set_info(path))


def _rows(path: Path, lines: Iterable[tuple[int, str]], problems: Problems, info: MappingSet) -> Iterator[Mapping]:
    columns: dict[str, int] | None = None
    for line_no, line in lines:
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if columns is None:
            columns = _columns(path, line_no, fields)
            continue
        if len(fields) != len(columns):
            problems.report(path, line_no, f"{len(fields)} tab-separated fields where the header has {len(columns)}")
            continue
        ids = {name: fields[columns[name]].strip() for name in REQUIRED_COLUMNS}
        bad = [f"{name} {value!r}" for name, value in ids.items() if not is_curie(value)]
        if bad:
            problems.report(path, line_no, f"not a CURIE (prefix:local): {', '.join(bad)}")
            continue
        yield Mapping(
            subject_id=normalise_curie(ids["subject_id"]),
            predicate_id=ids["predicate_id"],
            object_id=normalise_curie(ids["object_id"]),
            subject_label=_optional(fields, columns, "subject_label"),
            object_label=_optional(fields, columns, "object_label"),
            justification=_optional(fields, columns, "mapping_justification"),
            source=info.source,
            license=info.license,
        )
    if columns is None:
        raise KnowledgeError(
            f"{path} has no header row (subject_id, predicate_id, object_id...)",
            "Check that it is an SSSOM TSV file and not only its metadata",
        )


def _columns(path: Path, line_no: int, header: list[str]) -> dict[str, int]:
    columns = {name.strip(): i for i, name in enumerate(header)}
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise KnowledgeError(
            f"{path}:{line_no}: the header lacks the column(s) {', '.join(missing)} (it has: {', '.join(columns)})",
            "Check that the file is an SSSOM mapping set in TSV form (tab-separated, with subject_id, predicate_id "
            "and object_id columns)",
        )
    return columns


def _optional(fields: list[str], columns: dict[str, int], name: str) -> str | None:
    i = columns.get(name)
    value = fields[i].strip() if i is not None else ""
    return value or None


def _describe(path: Path, metadata: dict[str, str]) -> MappingSet:
    set_id = metadata.get("mapping_set_id", "")
    name = re.sub(r"\.sssom\.tsv$|\.tsv$", "", set_id.rstrip("/").rsplit("/", 1)[-1]) or path.name.split(".")[0]
    stated_version = metadata.get("mapping_set_version", "")
    found = _DATE.search(stated_version) or _DATE.search(set_id)
    version = found.group() if found else stated_version
    # Whose set it is: the subject source's name ("infores:mondo" -> "MONDO"), else the purl's ontology folder.
    owner = metadata.get("subject_source", "").rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    if not owner and (purl := re.search(r"purl\.obolibrary\.org/obo/([^/]+)/", set_id)):
        owner = purl[1]
    label = " ".join(part for part in (owner.upper(), "mappings", version) if part)
    return MappingSet(
        name=name,
        version=version,
        license=describe_licence(metadata["license"]) if "license" in metadata else "",
        source=f"{label} ({name})",
        metadata=metadata,
    )
