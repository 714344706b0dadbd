"""FAISS indexes over L2-normalised embeddings (similarity = inner product), the structure chosen by collection size.

- Small (n * dim <= FLAT_MAX_FLOATS, 31k 384-d vectors): exact search, IndexFlatIP. A query reads every vector (1.5 KB
  each at 384-d): ~0.14 ms per 1,000 vectors on one core here (4 ms at 31k, 29 ms at 200k).
- Larger: "ivf_pq_refine". An inverted file of nlist ~ 4 sqrt(n) lists (8192 at 3M); a query scans nprobe of them
  (128 at 3M) with 4-bit fast-scan PQ codes of the residuals (dim / 4 sub-quantisers: 48 bytes a vector) to propose
  k * k_factor candidates (640 for k=10), which are re-scored on 8-bit scalar-quantised copies (384 bytes a vector).
  About 450 bytes a vector in all, against 1536 for float32.
  Measured at 3M x 384 on 2 shared cores (bench/VECTORS.md): recall@10 0.977 against exact float32 search (the 8-bit
  re-scoring caps it at ~0.98), p50/p99 1.4/1.6 ms for one query per call, 1.37 GB resident, 7 min to build.
  Rejected: HNSW over 8-bit codes ("hnsw_sq8", kept for comparison) builds several times slower, needs ~40% more
  memory for its graph, and reached lower recall at efSearch values that keep it under a millisecond.

Search-time settings travel with each call (SearchParameters), never set on the shared index, so one loaded index
can serve concurrent searches. One query per call gains nothing from a second OpenMP thread, and on a busy machine
the idle thread's wake-ups cost 10+ ms at the tail: processes that search one query at a time should run with
OMP_NUM_THREADS=1 (or faiss.omp_set_num_threads(1)); building wants all cores.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from vesalius.retrieval.choices import KINDS, Kind
from vesalius.retrieval.errors import KnowledgeError

# faiss hands a batch of queries to BLAS only from 128000 queries up in this build, so batched flat searches (a batch
# of vectors being assigned to their IVF lists while adding, batched exact search) crawl; 20 is where BLAS pays off.
# It is a process-wide faiss setting with no per-call equivalent, and it changes speed only, never results.
faiss.cvar.distance_compute_blas_threshold = 20

FLAT_MAX_FLOATS = 12_000_000  # n * dim up to which exact search stays under ~5 ms at p99 (31k vectors of 384-d)
LARGE_KIND: Kind = "ivf_pq_refine"
PLAN_FORMAT = 1


@dataclass(frozen=True)
class IndexPlan:
    kind: Kind
    dim: int
    params: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        p = self.params
        if self.kind == "flat":
            return f"exact inner-product search over {self.dim}-d float32 vectors (flat)"
        if self.kind == "hnsw_sq8":
            return f"HNSW (M={p['M']}, efSearch={p['ef_search']}) over 8-bit scalar-quantised vectors"
        return (
            f"IVF (nlist={p['nlist']}, nprobe={p['nprobe']}) with 4-bit PQ codes (m={p['m']}) proposing "
            f"{p['k_factor']}x k candidates, re-ranked on 8-bit scalar-quantised vectors"
        )

    def training_size(self) -> int:
        """How many sample vectors training wants (0: the structure needs none)."""
        if self.kind == "flat":
            return 0
        if self.kind == "hnsw_sq8":
            return 100_000  # only per-dimension ranges for the 8-bit codes: a modest sample pins them down
        return self.params["nlist"] * 40  # k-means wants a few dozen points per centroid; more buys nothing

    def to_json(self) -> dict:
        return {"format": PLAN_FORMAT, "kind": self.kind, "dim": self.dim, "params": dict(self.params)}

    @staticmethod
    def from_json(data: dict) -> IndexPlan:
        if data.get("format") != PLAN_FORMAT or data.get("kind") not in KINDS:
            raise ValueError(f"unknown plan format {data.get('format')!r} or kind {data.get('kind')!r}")
        return IndexPlan(data["kind"], int(data["dim"]), {k: int(v) for k, v in data["params"].items()})


def plan_index(n: int, dim: int, kind: str | None = None) -> IndexPlan:
    """The structure for n vectors of dim dimensions; `kind` forces one (to exercise the large path on small data)."""
    if n < 0 or dim <= 0:
        raise ValueError(f"need n >= 0 and dim > 0, got n={n}, dim={dim}")
    if kind is None:
        kind = "flat" if n * dim <= FLAT_MAX_FLOATS else LARGE_KIND
    if kind == "flat":
        return IndexPlan("flat", dim, {})
    if kind == "hnsw_sq8":
        return IndexPlan("hnsw_sq8", dim, {"M": 32, "ef_construction": 80, "ef_search": 128})
    if kind == "ivf_pq_refine":
        return IndexPlan("ivf_pq_refine", dim, _ivf_params(n, dim))
    raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")


def _ivf_params(n: int, dim: int) -> dict[str, int]:
    # About 4 sqrt(n) lists (a power of two): 8192 at 3M, a few hundred vectors per list. Capped so that a small
    # collection still has ~40 training points per centroid.
    nlist = 2 ** round(math.log2(max(4 * math.sqrt(max(n, 1)), 1)))
    nlist = int(min(max(nlist, 16), 65536, max(n // 40, 1)))
    # 4-bit PQ (fast-scan SIMD tables) with one sub-quantiser per 4 dimensions: 96 for 384-d, 48 bytes a vector.
    # PQ only proposes candidates; the 8-bit refine stage decides the order.
    m = max(d for d in range(1, max(dim // 4, 1) + 1) if dim % d == 0)
    # A query's neighbours spread over more lists as lists get finer than the data's own clusters. 128 lists (1/64
    # beyond 8192) leaves recall limited by the 8-bit re-scoring, not by lists missed: on the bench data 32 were enough
    # at 3M but 64 were needed at 300k; the margin costs ~0.3 ms. Small indexes probe at most a quarter of their lists.
    nprobe = min(max(128, nlist // 64), max(nlist // 4, 1))
    # 640 candidates for k=10: 32x loses 0.01 of recall, 128x gains 0.002 for 0.2 ms more.
    return {"nlist": nlist, "m": m, "nprobe": nprobe, "k_factor": 64}


def _new_index(plan: IndexPlan) -> faiss.Index:
    p = plan.params
    if plan.kind == "flat":
        return faiss.IndexFlatIP(plan.dim)
    if plan.kind == "hnsw_sq8":
        index = faiss.index_factory(plan.dim, f"HNSW{p['M']}_SQ8", faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = p["ef_construction"]
        return index
    # The factory, unlike the bare constructors, makes the refine wrapper own its parts (no dangling sub-indexes).
    index = faiss.index_factory(plan.dim, f"IVF{p['nlist']},PQ{p['m']}x4fs,Refine(SQ8)", faiss.METRIC_INNER_PRODUCT)
    # PQ on the residual from the list centroid, not on the raw vector: at the same 48 bytes it proposes better
    # candidates (recall@10 0.94 -> 0.97 at nprobe 32, k_factor 32 on 300k vectors) for slower training.
    faiss.downcast_index(index.base_index).by_residual = True
    return index


def build_index(
    plan: IndexPlan,
    batches: Iterable[np.ndarray],
    train: np.ndarray | None = None,
    progress: bool = False,
    total: int | None = None,
) -> faiss.Index:
    """Train (on `train`, else on the first batch) when the structure needs it, then add batch by batch.

    Batches are consumed one at a time, so a caller can stream millions of vectors from disk or an encoder without
    holding them all as float32. `total` (the number of vectors, when known) sizes the progress bar.
    """
    index = _new_index(plan)
    bar = tqdm(total=total, unit="vec", unit_scale=True, desc="indexing", file=sys.stderr, disable=not progress)
    with bar:
        for batch in batches:
            batch = _as_matrix(batch, plan.dim)
            if not index.is_trained:
                sample = batch if train is None else _as_matrix(train, plan.dim)
                bar.set_description(f"training on {len(sample):,} vectors")
                index.train(sample)
                bar.set_description("indexing")
            index.add(batch)
            bar.update(len(batch))
    if not index.is_trained:  # no batches at all: an empty index is fine, but it must be searchable
        if train is None:
            raise ValueError(f"{plan.kind} needs training and got neither batches nor a training sample")
        index.train(_as_matrix(train, plan.dim))
    return index


def search(index: faiss.Index, plan: IndexPlan, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product under the plan's search-time settings: (scores, ids), each (n_queries, k).

    Missing results (k beyond what the index holds or reaches) have id -1 and score -inf.
    """
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    queries = _as_matrix(queries.reshape(1, -1) if queries.ndim == 1 else queries, plan.dim)
    scores, ids = index.search(queries, k, params=_search_params(plan, k))
    scores[ids < 0] = -np.inf
    return scores, ids


def _search_params(plan: IndexPlan, k: int) -> faiss.SearchParameters | None:
    p = plan.params
    if plan.kind == "hnsw_sq8":
        return faiss.SearchParametersHNSW(efSearch=max(p["ef_search"], k))  # efSearch below k returns fewer than k
    if plan.kind == "ivf_pq_refine":
        ivf = faiss.SearchParametersIVF(nprobe=p["nprobe"])
        return faiss.IndexRefineSearchParameters(k_factor=p["k_factor"], base_index_params=ivf)
    return None


def save(index: faiss.Index, plan: IndexPlan, directory: Path) -> None:
    """index.faiss and plan.json in `directory`, each written to a temporary name and renamed into place."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {**plan.to_json(), "ntotal": int(index.ntotal)}
    faiss.write_index(index, str(directory / "index.faiss.tmp"))
    (directory / "plan.json.tmp").write_text(json.dumps(meta, indent=1))
    # The index goes in first: a plan.json next to a stale index.faiss is caught by load's ntotal check.
    os.replace(directory / "index.faiss.tmp", directory / "index.faiss")
    os.replace(directory / "plan.json.tmp", directory / "plan.json")


def load(directory: Path) -> tuple[faiss.Index, IndexPlan]:
    directory = Path(directory)
    plan_path, index_path = directory / "plan.json", directory / "index.faiss"
    rebuild = "Rebuild the vector index (build_index, then save) into that folder"
    try:
        meta = json.loads(plan_path.read_text())
        plan = IndexPlan.from_json(meta)
    except FileNotFoundError as exc:
        raise KnowledgeError(f"no vector index plan at {plan_path}", rebuild) from exc
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KnowledgeError(f"the vector index plan {plan_path} is unreadable or damaged ({exc})", rebuild) from exc
    if not index_path.is_file():
        raise KnowledgeError(f"no vector index file at {index_path}", rebuild)
    try:
        index = faiss.read_index(str(index_path))
    except RuntimeError as exc:  # faiss reports short reads and bad headers as RuntimeError
        raise KnowledgeError(f"the vector index file {index_path} is truncated or damaged", rebuild) from exc
    if index.d != plan.dim or index.ntotal != meta.get("ntotal"):
        raise KnowledgeError(
            f"the vector index file {index_path} does not match {plan_path} "
            f"(dim {index.d} vs {plan.dim}, {index.ntotal} vs {meta.get('ntotal')} vectors)",
            rebuild,
        )
    return index, plan


def _as_matrix(x: np.ndarray, dim: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected vectors of shape (n, {dim}), got {x.shape}")
    return x
