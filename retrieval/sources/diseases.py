"""The bundled disease table (`retrieval/data/diseases.json.gz`, made by `vesalius.retrieval.disease_table`) as
source records: one per Human Disease Ontology term, with its codes and its parents as is_a relations."""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, Field, ValidationError

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Definition, Relation, SourceConcept
from vesalius.retrieval.sources.textio import open_binary

MAX_BYTES = 64 * 1024 * 1024  # uncompressed: the shipped table is under 4 MB; a bomb stops here


class DiseaseRow(BaseModel):
    id: str = Field(pattern=r"^DOID:\d{1,9}$")
    name: str = Field(min_length=1, max_length=500)
    synonyms: list[str] = Field(default_factory=list, max_length=200)
    definition: str = Field("", max_length=10_000)
    parents: list[str] = Field(default_factory=list, max_length=50)
    umls: list[str] = Field(default_factory=list, max_length=50)
    snomed: list[str] = Field(default_factory=list, max_length=50)
    icd10cm: list[str] = Field(default_factory=list, max_length=50)
    mesh: list[str] = Field(default_factory=list, max_length=50)
    mondo: list[str] = Field(default_factory=list, max_length=50)
    hpo: list[str] = Field(default_factory=list, max_length=50)


class DiseaseTable(BaseModel):
    format: int
    source: str
    version: str
    license: str
    concepts: list[DiseaseRow]


def load_table(path: Path) -> DiseaseTable:
    try:
        with open_binary(path) as f:
            raw = f.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            raise KnowledgeError(
                f"{path} holds more than {MAX_BYTES // 2**20} MB of text", "Use the table Vesalius ships"
            )
        return DiseaseTable.model_validate(json.loads(raw))
    except (OSError, EOFError, zlib.error, ValueError, ValidationError) as exc:
        problem = str(exc).splitlines()[0][:200]
        raise KnowledgeError(
            f"the disease table {path} cannot be read ({problem})",
            "Reinstall Vesalius, or regenerate it with `python -m vesalius.retrieval.disease_table`",
        ) from exc


def disease_records(table: DiseaseTable) -> Iterator[SourceConcept]:
    source = f"DOID {table.version}"
    for row in table.concepts:
        yield SourceConcept(
            source=source,
            id=row.id,
            name=row.name,
            synonyms=list(row.synonyms),
            umls_cuis=list(row.umls),
            snomed_ct=list(row.snomed),
            icd10cm=list(row.icd10cm),
            definitions=[Definition(row.definition, source)] if row.definition else [],
            relations=[Relation("is_a", p) for p in row.parents],
            xrefs=[*(f"MESH:{m}" for m in row.mesh), *row.mondo, *row.hpo],
            license=table.license,
            link=f"https://disease-ontology.org/?id={row.id}",
        )


LAY_SOURCE = "Vesalius lay terms 2026.11"
MAX_LAY_BYTES = 1024 * 1024


def lay_records(paths: tuple[Path, ...]) -> Iterator[SourceConcept]:
    """The project's own lay phrases and abbreviations (`retrieval/data/lay_terms.tsv`, `abbreviations.tsv`: phrase,
    DOID id, HP id or UMLS CUI, concept), one record per concept.

    Each merges into that concept from another source (through the DOID or HP cross-reference, or the CUI) and leaves it
    its own name: a `LAY:` record ranks last when the merged concept is named. The phrases become its synonyms."""
    phrases: dict[str, list[str]] = {}
    for path in paths:
        with open_binary(path) as f:
            text = f.read(MAX_LAY_BYTES + 1)
        if len(text) > MAX_LAY_BYTES:
            raise KnowledgeError(f"{path} is larger than {MAX_LAY_BYTES // 1024} KB", "Use the file Vesalius ships")
        for number, line in enumerate(text.decode("utf-8", errors="replace").splitlines()[1:], start=2):
            fields = line.split("\t")
            if (
                len(fields) != 3
                or not re.fullmatch(r"C\d{7}|DOID:\d{1,9}|HP:\d{7}", fields[1])
                or not fields[0].strip()
            ):
                raise KnowledgeError(
                    f"{path}:{number} is not 'phrase<TAB>DOID id, HP id or CUI<TAB>concept'", "Fix or remove that line"
                )
            phrases.setdefault(fields[1], []).append(fields[0].strip())
    for target, said in phrases.items():
        crossref = not target.startswith("C")
        yield SourceConcept(
            source=LAY_SOURCE,
            id=f"LAY:{target}",
            name=said[0],
            synonyms=said[1:],
            umls_cuis=[] if crossref else [target],
            xrefs=[target] if crossref else [],
            license="CC BY 4.0 (Vesalius project)",
        )
