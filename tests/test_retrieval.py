"""The knowledge base for real: loaders, merge, FAISS and BM25 indexes, linking, builds (embedding model from the
installed wheel). The starter base (imaging knowledge) is built once per session; larger builds use small sources."""

import gzip
import json

import pytest
import simple_icd_10_cm as cm

from vesalius.retrieval import BuildOptions, KnowledgeBase, KnowledgeError, load_knowledge
from vesalius.retrieval.build import build, current_build
from vesalius.retrieval.spelling import Speller

PNEUMOTHORAX, PLEURAL_EFFUSION, PNEUMONIA = "C0032326", "C0032227", "C0032285"


@pytest.fixture(scope="session")
def kb(index_cache):
    return KnowledgeBase.open(index_cache / "kb")


def test_bundled_imaging_knowledge_is_complete_and_coded():
    kb, digest = load_knowledge()
    assert len(kb.concepts) >= 150 and len(digest) == 64
    cuis = [c.umls_cui for c in kb.concepts if c.umls_cui]
    assert len(cuis) == len(set(cuis)), "two concepts share a CUI"
    for c in kb.concepts:
        assert c.umls_cui or c.snomed_ct, c.id
        assert c.definition and c.plain_language and c.synonyms and c.urgency
        for code in ("umls_cui", "snomed_ct", "icd10cm"):
            if getattr(c, code):
                assert code in c.code_sources, f"{c.id}: {code} has no verifying source"
        assert all(cm.is_valid_item(code) for code in c.icd10cm), c.id
        assert set(c.appearance) <= set(c.modalities), c.id


@pytest.mark.parametrize(
    "query,expected",
    [
        ("fluid around the lung", PLEURAL_EFFUSION),
        ("collapsed lung", PNEUMOTHORAX),
        ("Is the heart enlarged?", "C0018800"),
        ("bleeding inside the skull", "C0151699"),
        ("kidney stone", "C0392525"),
    ],
)
def test_lay_terms_find_their_concept(kb, query, expected):
    ids = [h.concept.id for h in kb.search(query, k=3)]
    assert expected in ids, ids


def test_every_concept_carries_its_codes_and_sources(kb):
    c = kb.concept(PNEUMOTHORAX)
    assert c.umls_cui == PNEUMOTHORAX and c.snomed_ct and c.icd10cm
    assert (
        c.sources[0].source.startswith("Vesalius imaging knowledge") and c.definitions[0].source == c.sources[0].source
    )
    for code in (f"UMLS:{PNEUMOTHORAX}", f"SCTID:{c.snomed_ct[0]}", f"ICD10CM:{c.icd10cm[0]}", "VESALIUS:pneumothorax"):
        assert kb.concept(code).id == PNEUMOTHORAX, code


def test_terms_written_out_outrank_paraphrases(kb):
    hits = kb.search("PTX on the left?", k=3)
    assert hits[0].concept.id == PNEUMOTHORAX and hits[0].matched_term == "PTX"
    assert hits[0].score > 1 > hits[1].score


def test_abbreviations_match_only_in_capitals(kb):
    assert any(h.matched_term == "CAP" for h in kb.search("Is this CAP or aspiration?", k=5))
    assert all(h.matched_term != "CAP" for h in kb.search("Is my knee cap broken?", k=5))
    assert kb.exact("pleural EFFUSION?")  # ordinary terms ignore case


def test_modes_rank_differently_and_say_why(kb):
    lexical = kb.search("pnuemothorax", k=5, mode="lexical")  # corrected to a word of the base, then BM25
    assert lexical[0].concept.id == PNEUMOTHORAX and lexical[0].corrected == "pneumothorax"
    assert all(h.dense is None for h in lexical)
    dense = kb.search("pnuemothorax", k=5, mode="dense")  # the encoder sees the text as typed
    assert all(h.lexical is None and h.corrected is None for h in dense)
    assert kb.search("zzqxv", k=5, mode="lexical") == []
    hybrid = kb.search("air trapped around the lung", k=5, mode="hybrid")
    assert all(0 < h.score <= 1 for h in hybrid) and any(h.dense and h.lexical for h in hybrid)


def test_misspelt_terms_are_linked_after_correction(kb):
    hits = kb.search("is there a pnuemothorax?", k=3)
    assert hits[0].concept.id == PNEUMOTHORAX and hits[0].matched_term is None and hits[0].score > 1
    assert hits[0].corrected == "is there a pneumothorax?"
    links = kb.link("whats that pleural efusion, or a pnuemothorax?")
    assert [(link.text, link.concept.id, link.method) for link in links] == [
        ("pleural efusion", PLEURAL_EFFUSION, "spelling"),
        ("pnuemothorax", PNEUMOTHORAX, "spelling"),
    ]


def test_the_speller_changes_only_unknown_words():
    speller = Speller.from_texts(["pneumothorax pleural effusion meningioma scan"])
    assert speller.correct("whats the pleural effusion on the scan") is None  # words of the base or of English
    assert speller.correct("Pleural effusoin, menignioma") == "Pleural effusion, meningioma"
    assert speller.suggest("pnuemothorax") == "pneumothorax" and speller.suggest("hydronefrosis") is None


def test_the_speller_reaches_two_edits_and_hears_what_was_meant():
    speller = Speller.from_texts(["hydronephrosis cirrhosis miosis miosis eczema edema edema chiari crohn disease"])
    assert speller.suggest("hydronefrosis") == "hydronephrosis"  # two edits, the same sound
    assert speller.suggest("cirosis") == "cirrhosis"  # "miosis" is as many edits away and more frequent
    assert speller.suggest("excema") == "eczema"  # likewise "edema"
    assert speller.suggest("kiari") == "chiari" and speller.correct("chrons disease") == "crohn disease"
    assert speller.suggest("zzzzzz") is None and speller.suggest("abcdefgh") is None


def test_the_spellers_table_is_saved_with_it_and_a_damaged_one_is_refused(tmp_path):
    speller = Speller.from_texts(["hydronephrosis cirrhosis miosis eczema edema chiari crohn disease"])
    speller.save(tmp_path / "words.json")
    loaded = Speller.load(tmp_path / "words.json")
    assert loaded._table is not None  # read back, not rebuilt
    for typed in ("hydronefrosis", "cirosis", "excema", "kiari", "chrons"):
        assert loaded.suggestions(typed) == speller.suggestions(typed) != []
    (tmp_path / "words.table.npz").write_bytes(b"not a table")
    with pytest.raises(ValueError, match="words.table.npz is damaged"):
        Speller.load(tmp_path / "words.json")


def test_the_search_keeps_the_reading_that_names_a_concept(kb):
    readings = kb._lexical.speller.corrections("pancreattis")
    assert readings[:2] == ["pancreatic", "pancreatitis"]  # the likelier word first: the base uses it more
    assert kb.corrected("pancreattis") == "pancreatitis"  # but only the second reading names a concept
    assert [(link.term.lower(), link.method) for link in kb.link("pancreattis")] == [("pancreatitis", "spelling")]


def test_filters_by_semantic_type_and_source(kb):
    hits = kb.search("lung", k=10, semantic_types=["Neoplastic Process"])
    assert hits and all("Neoplastic Process" in h.concept.semantic_types for h in hits)
    assert kb.search("lung", k=10, sources=["HPO"]) == []  # the starter base has no HPO
    assert kb.search("lung", k=3, sources=["vesalius"])


def test_linking_names_spans_methods_and_falls_back_to_meaning(kb):
    text = "Left PTX and a small pleural effusion, no pneumonia."
    links = kb.link(text)
    assert [(link.text, link.concept.id, link.method) for link in links] == [
        ("PTX", PNEUMOTHORAX, "abbreviation"),
        ("pleural effusion", PLEURAL_EFFUSION, "exact"),
        ("pneumonia", PNEUMONIA, "exact"),
    ]
    assert all(text[link.start : link.end] == link.text for link in links)
    fallback = kb.link("air has leaked out around my lung and it collapsed")
    assert [(link.concept.id, link.method) for link in fallback] == [(PNEUMOTHORAX, "dense")]
    assert 0.7 <= fallback[0].score < 1
    assert kb.link("the quarterly sales figures of a bakery") == []


def test_unrelated_text_is_far_from_everything(kb):
    hits = kb.search("the quarterly sales figures of a bakery", k=5)
    assert all(h.matched_term is None and (h.dense or 0) < 0.45 for h in hits)


def test_builds_are_versioned_reused_and_leave_no_work_behind(tmp_path, small_imaging):
    root = tmp_path / "kb"
    first = build(root, BuildOptions.starter(small_imaging()))
    assert first.path == root / "builds" / first.version and current_build(root) == first.path
    again = build(root, BuildOptions.starter(small_imaging()))
    assert again.reused and again.version == first.version
    other = build(root, BuildOptions.starter(small_imaging(4)))
    assert other.version != first.version and current_build(root) == other.path
    assert KnowledgeBase.open(root).version == other.version and len(KnowledgeBase.open(root)) == 4
    assert list((root / ".work").iterdir()) == []
    manifest = json.loads((other.path / "manifest.json").read_text())
    assert manifest["concepts"] == 4 and manifest["problems"]["count"] == 0 and "dense_index" in manifest


def test_an_incomplete_or_damaged_build_is_never_used(tmp_path, small_imaging):
    root = tmp_path / "kb"
    report = build(root, BuildOptions.starter(small_imaging()))
    (report.path / "concepts.sqlite").write_bytes(b"garbage" * 100)
    with pytest.raises(KnowledgeError, match="damaged"):
        KnowledgeBase(report.path)
    (report.path / "manifest.json").unlink()
    with pytest.raises(KnowledgeError, match="not a complete knowledge base"):
        KnowledgeBase(report.path)
    assert current_build(root) is None  # CURRENT names a build without a manifest: treated as nothing built


def test_an_unwritable_root_is_a_clear_error(tmp_path, small_imaging):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the knowledge-base folder should be")
    with pytest.raises(KnowledgeError, match="cannot write under"):
        build(blocker / "kb", BuildOptions.starter(small_imaging()))


def test_a_broken_knowledge_file_is_refused(tmp_path):
    bad = tmp_path / "kb.json"
    bad.write_text('{"name": "x", "version": "1", "license": "y", "concepts": [{"id": "a"}]}')
    with pytest.raises(KnowledgeError, match="invalid"):
        load_knowledge(bad)
    bad.write_text("{not json")
    with pytest.raises(KnowledgeError, match="invalid"):
        load_knowledge(bad)


def doid_subset(shared_data, tmp_path, ids: set[str]):
    """The shared Disease Ontology's header and the stanzas of `ids`, as a small OBO file."""
    text = gzip.decompress((shared_data / "ontologies" / "doid-2024-01-31.obo.gz").read_bytes()).decode()
    header, *stanzas = text.split("\n[Term]\n")
    keep = [s for s in stanzas if s.split("\n", 1)[0].removeprefix("id: ") in ids]
    path = tmp_path / "doid_subset.obo"
    path.write_text(header + "".join(f"\n[Term]\n{s}" for s in keep).rstrip() + "\n")
    return path


def sssom_subset(shared_data, tmp_path, subject: str):
    """The rows of one MONDO subject from the shared exact-match sets (DOID and ICD-10-CM), with a header."""
    folder = shared_data / "ontologies" / "mondo-sssom-2026-08"
    lines = []
    for name in ("mondo_exactmatch_doid.sssom.tsv", "mondo_exactmatch_icd10cm.sssom.tsv"):
        text = (folder / name).read_text().splitlines()
        header = [line for line in text if line.startswith("#")]
        columns = next(line for line in text if line.startswith("subject_id"))
        rows = [line for line in text if line.startswith(subject + "\t")]
        lines.append((name, header, columns, rows))
    paths = []
    for name, header, columns, rows in lines:
        path = tmp_path / name
        path.write_text("\n".join([*header, columns, *rows]) + "\n")
        paths.append(path)
    return tuple(paths)


def test_sources_merge_under_one_cui_with_every_definition_and_code(shared_data, tmp_path, small_imaging):
    obo = doid_subset(shared_data, tmp_path, {"DOID:552", "DOID:850"})
    sssom = sssom_subset(shared_data, tmp_path, "MONDO:0005249")
    report = build(
        tmp_path / "kb",
        BuildOptions(
            hpo=False, icd10cm=False, diseases=False, lay=False, imaging_path=small_imaging(), obo=(obo,), sssom=sssom
        ),
    )
    kb = KnowledgeBase(report.path)
    c = kb.concept(PNEUMONIA)
    # imaging knowledge and DOID share the CUI; MONDO joins through its exact match to DOID:552
    assert {ref.id for ref in c.sources} == {"VESALIUS:pneumonia", "DOID:552", "MONDO:0005249"}
    assert c.preferred_name == "Pneumonia" and c.urgency  # the project's name and urgency win
    assert [d.source.split(" ")[0] for d in c.definitions] == ["Vesalius", "DOID"]
    assert "J18.9" in c.icd10cm and "acute pneumonia" in c.synonyms
    assert kb.concept("DOID:552").id == kb.concept("MONDO:0005249").id == PNEUMONIA
    parent = next(r for r in c.relations if r.kind == "is_a")
    assert parent.target == "DOID:850" and kb.concept(parent.target).preferred_name == "lung disease"
    assert json.loads((report.path / "manifest.json").read_text())["sources"]["DOID 2024-01-31"] == 2


def test_an_endless_word_is_left_alone_at_once():
    import time

    speller = Speller.from_texts(["pneumothorax pleural effusion meningioma"])
    started = time.monotonic()
    assert speller.suggest("pneumothoraxx" * 300) is None and speller.correct("a " + "x" * 4000) is None
    assert time.monotonic() - started < 2  # its deletions (n squared) are never made
