"""The disease table and the lay terms the default knowledge base ships: what they hold, that the table is the one
the shared ontology files make, and that a damaged or hostile file is one clear error."""

from __future__ import annotations

import gzip
import json

import pytest

from vesalius.retrieval.disease_table import TABLE, build_table, write_table
from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Problems
from vesalius.retrieval.sources.builtin import DiseaseSource, LaySource, SourceFlags
from vesalius.retrieval.sources.diseases import MAX_BYTES, disease_records, lay_records, load_table


def test_the_shipped_table_holds_the_disease_ontology_with_codes_and_parents():
    table = load_table(TABLE)
    assert len(table.concepts) > 10_000 and TABLE.stat().st_size < 2_000_000
    records = {r.id: r for r in disease_records(table)}
    hypertension = records["DOID:10763"]
    assert hypertension.name == "hypertension" and "C0020538" in hypertension.umls_cuis
    assert "38341003" in hypertension.snomed_ct and "I10" in hypertension.icd10cm and "HTN" in hypertension.synonyms
    assert hypertension.definitions and hypertension.link.endswith("DOID:10763")
    assert {r.kind for r in hypertension.relations} == {"is_a"}
    assert all(r.target in records for r in hypertension.relations)
    assert "CC0" in table.license
    with_cui = sum(1 for r in records.values() if r.umls_cuis)
    assert with_cui / len(records) > 0.8


def test_the_table_is_what_the_shared_ontology_files_make(shared_data, tmp_path):
    made = write_table(build_table(shared_data / "ontologies"), tmp_path / "diseases.json.gz")
    assert made.read_bytes() == TABLE.read_bytes(), (
        "the shipped disease table is stale: run `python -m vesalius.retrieval.disease_table --data ../shared/data`"
    )


def _gz(path, payload: bytes):
    with gzip.open(path, "wb") as f:
        f.write(payload)
    return path


@pytest.mark.parametrize(
    "payload, problem",
    [
        (b"not json", "cannot be read"),
        (
            json.dumps(
                {"format": 1, "source": "s", "version": "v", "license": "l", "concepts": [{"id": "X:1", "name": "a"}]}
            ).encode(),
            "cannot be read",
        ),
        (b"{" + b" " * (MAX_BYTES + 10) + b"}", "more than"),
    ],
    ids=["not-json", "bad-id", "bomb"],
)
def test_a_damaged_or_hostile_table_is_one_clear_error(tmp_path, payload, problem):
    path = _gz(tmp_path / "d.json.gz", payload)
    with pytest.raises(KnowledgeError, match=problem) as err:
        list(DiseaseSource(path).records(Problems()))
    assert "\n" not in err.value.one_line()


def test_a_file_that_is_not_gzip_is_one_clear_error(tmp_path):
    path = tmp_path / "d.json.gz"
    path.write_bytes(b"plain text")
    with pytest.raises(KnowledgeError, match="cannot be read"):
        list(DiseaseSource(path).records(Problems()))


def test_lay_terms_join_their_concept_and_never_name_it():
    records = list(LaySource().records(Problems()))
    by_target = {(r.xrefs or r.umls_cuis)[0]: r for r in records}
    assert "high blood pressure" in [by_target["DOID:10763"].name, *by_target["DOID:10763"].synonyms]
    assert by_target["C0020649"].umls_cuis == ["C0020649"]  # hypotension: HPO's, joined by CUI
    assert all(r.id.startswith("LAY:") and r.license.startswith("CC BY 4.0") for r in records)
    from vesalius.retrieval.merge import PRIORITY

    assert "LAY" not in PRIORITY  # a lay phrase never becomes the merged concept's name


def test_a_malformed_lay_line_is_one_clear_error(tmp_path):
    path = tmp_path / "lay.tsv"
    path.write_text("phrase\tid\tconcept\nhigh blood pressure\tnot-a-cui\thypertension\n")
    with pytest.raises(KnowledgeError, match=r"lay.tsv:2 is not"):
        list(lay_records((path,)))


def test_the_default_sources_include_the_disease_table_and_lay_terms():
    names = [s.name for s in SourceFlags().sources()]
    assert names[:3] == ["imaging", "diseases", "lay"] and {"hpo", "icd10cm"} <= set(names)


def test_the_labelled_query_set_is_well_formed_and_split_in_halves():
    import csv
    import re
    from collections import Counter

    from vesalius.eval.concept_linking import bundled_queries, lay_phrases, load_queries

    with bundled_queries().open(newline="", encoding="utf-8") as f:
        assert next(csv.reader(f, delimiter="\t")) == ["query", "expected_cui", "category", "split", "note"]
    queries = load_queries(bundled_queries())
    assert len(queries) >= 520
    assert all(re.fullmatch(r"C\d{7}", q.expected_cui) for q in queries)
    assert {q.category for q in queries} == {"lay", "abbreviation", "misspelling", "synonym"}
    keys = Counter(" ".join(q.query.lower().split()) for q in queries)
    assert keys.most_common(1)[0][1] == 1, "a query appears twice"
    for category in ("lay", "abbreviation", "misspelling", "synonym"):
        splits = Counter(q.split for q in queries if q.category == category)
        assert set(splits) == {"dev", "test"} and abs(splits["dev"] - splits["test"]) <= 2
    # The lay terms spell out only a few queries word for word; the results table reports the test half without them.
    assert sum(1 for q in queries if " ".join(q.query.lower().split()) in lay_phrases()) <= 20


def test_a_pipe_an_oversize_or_an_empty_lay_file_is_handled_in_bounded_time(tmp_path):
    import os
    import time

    from vesalius.retrieval.sources.diseases import MAX_LAY_BYTES

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    started = time.monotonic()
    for read in (lambda: list(lay_records((pipe,))), lambda: list(DiseaseSource(pipe).records(Problems()))):
        with pytest.raises(KnowledgeError, match="not a regular file"):
            read()
    assert time.monotonic() - started < 5  # no writer ever comes: the check must not wait for one
    huge = tmp_path / "huge.tsv"
    huge.write_bytes(b"phrase\tid\tconcept\n" + b"a\tC0000001\tx\n" * (MAX_LAY_BYTES // 10))
    with pytest.raises(KnowledgeError, match="larger than"):
        list(lay_records((huge,)))
    empty, header = tmp_path / "empty.tsv", tmp_path / "header.tsv"
    empty.write_bytes(b"")
    header.write_bytes(b"phrase\tid\tconcept\n")
    assert list(lay_records((empty, header))) == []
