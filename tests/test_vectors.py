"""The size-chosen FAISS index: planning, building from batches, searching, saving and loading.

Small clustered data (a few thousand 64-d unit vectors) exercises every kind, the approximate ones forced with
`kind=`; bench/vector_scale.py measures the large path at millions of vectors.
"""

from __future__ import annotations

import json

import faiss
import numpy as np
import pytest

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.vectors import FLAT_MAX_FLOATS, KINDS, LARGE_KIND, build_index, load, plan_index, save, search

DIM = 64
N = 6000


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread():
    """At this size OpenMP's threads only spin against whatever else shares the 2 cores (5-10x slower under load)."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


def clustered(n: int, seed: int, clusters: int = 60) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1000).standard_normal((clusters, DIM))
    x = centres[rng.integers(clusters, size=n)] + 0.6 * rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return clustered(N, seed=0)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return clustered(50, seed=1)


@pytest.fixture(scope="module")
def exact_ids(data, queries) -> np.ndarray:
    return np.argsort(-(queries @ data.T), axis=1)[:, :10]


@pytest.fixture(scope="module")
def built(data) -> dict:
    """One index per kind, fed in uneven batches as a streaming caller would."""
    batches = lambda: (data[i : i + 1700] for i in range(0, N, 1700))
    indexes = {}
    for kind in KINDS:
        plan = plan_index(N, DIM, kind=kind)
        indexes[kind] = (build_index(plan, batches(), train=data[:N]), plan)
    return indexes


def test_small_collections_get_exact_search_and_large_ones_the_approximate_kind():
    assert plan_index(10_000, 384).kind == "flat"
    assert plan_index(FLAT_MAX_FLOATS // 384, 384).kind == "flat"
    assert plan_index(FLAT_MAX_FLOATS // 384 + 1, 384).kind == LARGE_KIND
    assert plan_index(FLAT_MAX_FLOATS // 64, 64).kind == "flat", "the threshold is bytes scanned, not a count"
    large = plan_index(3_000_000, 384)
    assert large.kind == LARGE_KIND != "flat"
    assert large.params == {"nlist": 8192, "m": 96, "nprobe": 128, "k_factor": 64}, (
        "the parameters bench/VECTORS.md measured"
    )
    assert large.dim == 384
    assert large.training_size() > 0
    for name in ("nlist", "nprobe", "k_factor", "m"):
        assert large.params[name] > 0
    assert str(large.params["nprobe"]) in large.describe()


def test_plans_describe_themselves_in_one_line():
    for kind in KINDS:
        text = plan_index(1_000_000, 384, kind=kind).describe()
        assert text and "\n" not in text


def test_an_unknown_kind_or_size_is_refused():
    with pytest.raises(ValueError, match="unknown index kind"):
        plan_index(1000, 64, kind="annoy")
    with pytest.raises(ValueError):
        plan_index(-1, 64)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_finds_the_exact_neighbours(built, queries, exact_ids, kind):
    index, plan = built[kind]
    assert index.ntotal == N
    scores, ids = search(index, plan, queries, k=10)
    assert ids.shape == scores.shape == (len(queries), 10)
    assert np.all(np.diff(scores, axis=1) <= 1e-6), "scores come best first"
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids)])
    assert recall >= (1.0 if kind == "flat" else 0.9), f"{kind}: recall@10 {recall:.3f}"


def test_one_query_as_a_plain_vector(built, queries):
    index, plan = built["flat"]
    scores, ids = search(index, plan, queries[0], k=3)
    assert ids.shape == (1, 3)
    np.testing.assert_allclose(scores[0, 0], float(queries[0] @ index.reconstruct(int(ids[0, 0]))), rtol=1e-5)


def test_ids_are_padded_with_minus_one_when_k_exceeds_the_collection(queries):
    few = clustered(5, seed=2)
    plan = plan_index(5, DIM)
    index = build_index(plan, [few])
    scores, ids = search(index, plan, queries[:2], k=8)
    assert sorted(ids[0, :5]) == [0, 1, 2, 3, 4]
    assert np.all(ids[:, 5:] == -1)
    assert np.all(np.isneginf(scores[:, 5:]))


def test_training_falls_back_to_the_first_batch_and_an_empty_collection_is_searchable(data, queries):
    plan = plan_index(N, DIM, kind="ivf_pq_refine")
    index = build_index(plan, [data])
    assert index.ntotal == N
    empty = build_index(plan_index(0, DIM), [])
    scores, ids = search(empty, plan_index(0, DIM), queries[:1], k=3)
    assert np.all(ids == -1) and np.all(np.isneginf(scores))
    with pytest.raises(ValueError, match="training"):
        build_index(plan, [])


def test_vectors_of_the_wrong_width_are_refused(built, queries):
    index, plan = built["flat"]
    with pytest.raises(ValueError, match="shape"):
        search(index, plan, queries[:, :32], k=3)
    with pytest.raises(ValueError, match="shape"):
        build_index(plan_index(10, DIM), [np.zeros((3, 32), np.float32)])


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_give_identical_results(built, queries, tmp_path, kind):
    index, plan = built[kind]
    save(index, plan, tmp_path / kind)
    loaded, loaded_plan = load(tmp_path / kind)
    assert loaded_plan == plan
    before, after = search(index, plan, queries, k=10), search(loaded, loaded_plan, queries, k=10)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_array_equal(before[0], after[0])


def test_loading_a_missing_index_names_the_path(tmp_path):
    with pytest.raises(KnowledgeError, match="plan.json") as err:
        load(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    assert err.value.remedy


def test_loading_a_truncated_index_names_the_file(built, tmp_path):
    index, plan = built["hnsw_sq8"]
    save(index, plan, tmp_path)
    path = tmp_path / "index.faiss"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(KnowledgeError, match="truncated or damaged") as err:
        load(tmp_path)
    assert str(path) in str(err.value)


def test_loading_without_the_index_file_or_with_a_damaged_plan_names_the_file(built, tmp_path):
    index, plan = built["flat"]
    save(index, plan, tmp_path)
    (tmp_path / "index.faiss").unlink()
    with pytest.raises(KnowledgeError, match="index.faiss"):
        load(tmp_path)
    (tmp_path / "plan.json").write_text("{not json")
    with pytest.raises(KnowledgeError, match="damaged") as err:
        load(tmp_path)
    assert str(tmp_path / "plan.json") in str(err.value)


def test_an_index_that_does_not_match_its_plan_is_refused(built, tmp_path):
    index, plan = built["flat"]
    save(index, plan, tmp_path)
    meta = json.loads((tmp_path / "plan.json").read_text())
    (tmp_path / "plan.json").write_text(json.dumps({**meta, "ntotal": N + 1}))
    with pytest.raises(KnowledgeError, match="does not match"):
        load(tmp_path)
