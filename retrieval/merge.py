"""Merge every source's records into concepts: records that share a UMLS CUI or an exact cross-reference are one.

Records are staged in SQLite as they stream in, so a full UMLS release is merged without holding it in memory;
only the identifiers (for the union-find) stay in memory.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

from vesalius.retrieval.concepts import Concept, SourceRef
from vesalius.retrieval.records import Definition, Mapping, Relation, SourceConcept
from vesalius.retrieval.terms import normalize

# Which source's name, definition and CUI win when records disagree: the project's own text first (it carries the
# plain-language explanation and urgency), then the licensed terminologies, then the open ontologies.
PRIORITY = ("VESALIUS", "UMLS", "SCTID", "HP", "DOID", "MONDO", "ICD10CM")
# Cross-references that say "the same concept" (ontology term ids); codes such as SNOMED CT or ICD-10-CM are
# attached to a concept but never merge two, because their mappings are many-to-one.
MERGING_PREFIXES = ("DOID:", "MONDO:", "HP:", "ORPHANET:", "OMIM:")


def _rank(record_id: str) -> int:
    prefix = record_id.split(":", 1)[0].upper() if ":" in record_id else "UMLS"
    return PRIORITY.index(prefix) if prefix in PRIORITY else len(PRIORITY)


def mapping_records(mappings: Iterable[Mapping]) -> Iterator[SourceConcept]:
    """An SSSOM set as records: each subject with its label and the codes it maps to.

    Exact matches name the concept's CUI; database cross-references (oboInOwl:hasDbXref) only add CUIs after them.
    """
    by_subject: dict[str, SourceConcept] = {}
    loose_cuis: dict[str, list[str]] = defaultdict(list)
    for m in mappings:
        rec = by_subject.get(m.subject_id)
        if rec is None:
            prefix, _, local = m.subject_id.partition(":")
            rec = by_subject[m.subject_id] = SourceConcept(
                source=m.source,
                id=m.subject_id,
                name=m.subject_label or "",
                license=m.license,
                link=f"http://purl.obolibrary.org/obo/{prefix}_{local}",  # subjects are OBO ontology terms
            )
        exact = m.predicate_id.lower() == "skos:exactmatch"
        prefix, _, local = m.object_id.partition(":")
        prefix = prefix.upper()
        if prefix == "UMLS":
            (rec.umls_cuis if exact else loose_cuis[m.subject_id]).append(local)
        elif prefix in ("SCTID", "SNOMEDCT", "SNOMEDCT_US"):
            rec.snomed_ct.append(local)
        elif prefix == "ICD10CM":
            rec.icd10cm.append(local)
        elif exact:
            rec.xrefs.append(m.object_id)
        if m.object_label and normalize(m.object_label) != normalize(rec.name):
            rec.synonyms.append(m.object_label)
    for subject, rec in by_subject.items():
        rec.umls_cuis = _distinct([*rec.umls_cuis, *loose_cuis.get(subject, [])])
        if rec.name:
            yield rec


class _UnionFind:
    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent.setdefault(x, x)
        while parent != x:
            grand = self.parent.setdefault(parent, parent)
            self.parent[x] = grand
            x, parent = parent, grand
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _keys(rec: SourceConcept) -> list[str]:
    keys = [rec.id.upper()]
    if rec.umls_cuis:
        keys.append(f"UMLS:{rec.umls_cuis[0]}")
    keys += [x.upper() for x in rec.xrefs if x.upper().startswith(MERGING_PREFIXES)]
    if ":" not in rec.id:
        # A UMLS concept's SNOMED CT codes are its own atoms, not cross-references: the SNOMED release's record of
        # that code is the same concept.
        keys += [f"SCTID:{code}" for code in rec.snomed_ct]
    return keys


def merge(records: Iterable[SourceConcept], staging: Path) -> Iterator[Concept]:
    """Concepts in a stable order (by the first record of each group); `staging` is a scratch SQLite file."""
    staging.unlink(missing_ok=True)
    db = sqlite3.connect(staging)
    db.execute("CREATE TABLE records (rid INTEGER PRIMARY KEY, data TEXT)")
    uf = _UnionFind()
    claims: dict[str, list[str]] = defaultdict(list)  # ICD-10-CM code -> the records that give it as theirs
    rid = 0
    for rid, rec in enumerate(records, start=1):
        db.execute("INSERT INTO records VALUES (?, ?)", (rid, json.dumps(dataclasses.asdict(rec))))
        node = f"#{rid:012d}"
        for key in _keys(rec):
            uf.union(node, key)
        if not rec.id.upper().startswith("ICD10CM:"):
            for code in rec.icd10cm:
                claims[f"ICD10CM:{code.upper()}"].append(node)
    db.commit()
    # An ICD-10-CM code's own record joins the concept that codes with it, when exactly one concept does (as UMLS
    # puts "Pneumonia, unspecified organism" among the atoms of C0032285); a code that several concepts claim
    # ("C71.9" for glioma and glioblastoma) stays a concept of its own.
    for code, nodes in claims.items():
        owners = {uf.find(node) for node in nodes}
        if len(owners) == 1 and code in uf.parent:
            uf.union(owners.pop(), code)
    del claims
    groups: dict[str, list[int]] = defaultdict(list)
    for r in range(1, rid + 1):
        groups[uf.find(f"#{r:012d}")].append(r)
    del uf
    for members in sorted(groups.values(), key=lambda m: m[0]):
        rows = db.execute(
            f"SELECT data FROM records WHERE rid IN ({','.join('?' * len(members))}) ORDER BY rid", members
        ).fetchall()
        yield merge_group([_record(json.loads(r[0])) for r in rows])
    db.close()
    staging.unlink(missing_ok=True)


def _record(d: dict) -> SourceConcept:
    d["definitions"] = [Definition(**x) for x in d["definitions"]]
    d["relations"] = [Relation(**x) for x in d["relations"]]
    return SourceConcept(**d)


def _distinct(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def merge_group(records: list[SourceConcept]) -> Concept:
    records = sorted(records, key=lambda r: _rank(r.id))  # stable: within a source, input order
    first = records[0]
    cuis = _distinct(r.umls_cuis[0] for r in records if r.umls_cuis)
    all_cuis = _distinct(c for r in records for c in r.umls_cuis)
    name = first.name
    seen = {normalize(name)}
    synonyms = []
    for term in (t for r in records for t in (r.name, *r.synonyms)):
        norm = normalize(term)
        if norm and norm not in seen:
            seen.add(norm)
            synonyms.append(term)
    imaging = next((r for r in records if r.urgency is not None), None)
    definitions = list({(d.text, d.source): d for r in records for d in r.definitions}.values())
    return Concept(
        id=cuis[0] if cuis else first.id,
        preferred_name=name,
        synonyms=synonyms,
        umls_cui=cuis[0] if cuis else None,
        other_cuis=[c for c in all_cuis if c != (cuis[0] if cuis else None)],
        snomed_ct=_distinct(c for r in records for c in r.snomed_ct),
        icd10cm=_distinct(c for r in records for c in r.icd10cm),
        semantic_types=_distinct(t for r in records for t in r.semantic_types),
        definitions=definitions,
        relations=list({(x.kind, x.target): x for r in records for x in r.relations}.values()),
        sources=[SourceRef(source=r.source, id=r.id, license=r.license, link=r.link) for r in records],
        xrefs=_distinct(x for r in records for x in r.xrefs),
        plain_language=imaging.plain_language if imaging else None,
        appearance=imaging.appearance if imaging else {},
        urgency=imaging.urgency if imaging else None,
        modalities=imaging.modalities if imaging else [],
        body_regions=imaging.body_regions if imaging else [],
        code_sources=imaging.code_sources if imaging else {},
    )
