"""How the vector index the product chooses scales: build time, resident memory, single-query latency, recall@10.

    nice -n 10 .venv/bin/python bench/vector_scale.py --n 3000000 --sizes 20000,100000,1000000 [--out bench/VECTORS.md]
    .venv/bin/python bench/vector_scale.py --from-results /tmp/vesalius-vector-bench/results-n3000000-seed0.json

For each size the index is planned and built by the product's own code (vesalius.retrieval.vectors.plan_index/build_index):
1. Clustered synthetic unit vectors (see `make_space`) are generated deterministically chunk by chunk and streamed into
   build_index; the same chunks update an exact top-k of every query (float32 inner product, chunk-wise, so memory
   stays bounded). Build time is the time inside build_index (train + add) less the time spent generating chunks.
2. The index is saved; a fresh subprocess loads it (vesalius.retrieval.vectors.load) and measures its resident memory (RSS
   after the load less RSS before it, with python, numpy and faiss already imported), then single-query latency
   (one query per call, warm) and recall@10 against the exact top 10, under the plan's settings and a sweep around them.
3. Baseline, same run: exact search (IndexFlatIP, the product's small-collection path) over the same float32
   vectors (--baseline-n of them, all by default), one query per call.
Progress goes to stderr; the markdown report to --out.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from vesalius.retrieval.vectors import IndexPlan, build_index, load, plan_index, save, search

CHUNK = 50_000  # vectors are a function of (seed, stream, chunk start): changing this changes the data
COLLECTION, QUERIES, TRAINING = 1, 2, 3  # random streams
K = 10
TARGETS = {"p99_ms": 5.0, "recall": 0.95, "memory_gb": 3.0}


# --- data -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Space:
    """Where the vectors come from: a mixture of anisotropic Gaussian clusters, grouped into topics, on the sphere."""

    seed: int
    rotation: np.ndarray  # (dim, dim) orthogonal: noise directions are not the axes (8-bit codes are per axis)
    centres: np.ndarray  # (clusters, dim)
    spectra: np.ndarray  # (clusters, dim) noise scale per direction; clusters of one topic share their directions
    weights: np.ndarray  # (clusters,) probabilities, log-normal: uneven cluster sizes, as in real corpora
    sigma: float


def make_space(dim: int, clusters: int, seed: int, topic_size: int = 16, spread: float = 0.3) -> Space:
    """Clusters near each other within a topic, noise of low intrinsic dimension, so neighbourhoods look like those
    of sentence embeddings: cosine ~0.7 to the nearest neighbour, ~0 between random pairs, and a third of a query's
    true 10 nearest neighbours outside its own cluster (measured and reported per run).

    Isotropic noise in all 384 dimensions would make every point about equally far from every other in its cluster
    (recall then measures noise); instead each topic's noise has a power-law spectrum (variance ~ 1/rank, an
    effective dimension of ~26) along its own directions. spread sets how far cluster centres sit from their topic.
    """
    rng = np.random.default_rng([seed, 0])
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    topics = _unit(rng.standard_normal((max(1, clusters // topic_size), dim)))
    topic_of = np.arange(clusters) % len(topics)
    centres = _unit(topics[topic_of] + spread * rng.standard_normal((clusters, dim)) / np.sqrt(dim))
    spectrum = (np.arange(dim) + 1.0) ** -0.5
    spectrum /= np.linalg.norm(spectrum)
    topic_spectra = np.stack([rng.permutation(spectrum) for _ in topics])
    weights = rng.lognormal(0.0, 1.0, clusters)
    return Space(
        seed=seed,
        rotation=rotation.astype(np.float32),
        centres=centres.astype(np.float32),
        spectra=topic_spectra[topic_of].astype(np.float32),
        weights=weights / weights.sum(),
        sigma=1.0,
    )


def chunk(space: Space, stream: int, start: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Vectors start..start+size of a stream (start a multiple of CHUNK), with their cluster ids."""
    rng = np.random.default_rng([space.seed, stream, start])
    cluster = rng.choice(len(space.weights), size=size, p=space.weights)
    noise = rng.standard_normal((size, space.rotation.shape[0]), dtype=np.float32) * space.spectra[cluster]
    return _unit(space.centres[cluster] + space.sigma * (noise @ space.rotation)), cluster


def vectors(space: Space, stream: int, n: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    for start in range(0, n, CHUNK):
        yield (start, *chunk(space, stream, start, min(CHUNK, n - start)))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


class ExactTopK:
    """The exact top-k of each query, merged chunk by chunk: memory is one chunk of scores, not the collection."""

    def __init__(self, queries: np.ndarray, k: int):
        self.queries, self.k = queries, k
        self.scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        self.ids = np.full((len(queries), k), -1, dtype=np.int64)

    def update(self, x: np.ndarray, offset: int) -> None:
        s = self.queries @ x.T
        top = np.argpartition(-s, self.k - 1, axis=1)[:, : self.k]
        scores = np.hstack([self.scores, np.take_along_axis(s, top, axis=1)])
        ids = np.hstack([self.ids, top + offset])
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        self.scores, self.ids = np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def recall_at(found: np.ndarray, exact: np.ndarray, k: int = K) -> float:
    return float(np.mean([len(set(f[:k]) & set(e[:k])) / k for f, e in zip(found, exact)]))


# --- measuring --------------------------------------------------------------------------------------------------------


def rss_bytes() -> tuple[int, int]:
    """(VmRSS, VmHWM) of this process."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["VmHWM"].split()[0]) * 1024


def latencies(
    index: faiss.Index, plan: IndexPlan, queries: np.ndarray, desc: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-query wall and CPU seconds (one query per call, after a warm-up) and the ids found.

    CPU time (all of the process's threads) leaves out the time the process waited for a core: on a shared machine
    the difference between the two is the neighbours' doing, not the index's.
    """
    for q in queries[:50]:
        search(index, plan, q, K)
    wall, cpu = np.empty(len(queries)), np.empty(len(queries))
    found = np.empty((len(queries), K), dtype=np.int64)
    for i, q in enumerate(tqdm(queries, desc=desc, unit="q", file=sys.stderr, leave=False)):
        t, c = time.perf_counter(), time.process_time()
        _, ids = search(index, plan, q, K)
        wall[i], cpu[i] = time.perf_counter() - t, time.process_time() - c
        found[i] = ids[0]
    return wall, cpu, found


def summary(wall: np.ndarray, cpu: np.ndarray, found: np.ndarray, exact: np.ndarray) -> dict:
    return {
        "p50_ms": float(np.percentile(wall, 50) * 1e3),
        "p99_ms": float(np.percentile(wall, 99) * 1e3),
        "cpu_p50_ms": float(np.percentile(cpu, 50) * 1e3),
        "cpu_p99_ms": float(np.percentile(cpu, 99) * 1e3),
        "recall": recall_at(found, exact),
    }


def sweep_plans(plan: IndexPlan) -> list[IndexPlan]:
    """The plan and its neighbours in search-time settings (build-time ones would need another build)."""
    if plan.kind == "ivf_pq_refine":
        grid = [{"nprobe": nprobe, "k_factor": kf} for nprobe in (16, 32, 64, 128) for kf in (16, 32, 64, 128)]
        grid = [g for g in grid if g["nprobe"] <= plan.params["nlist"]]
    elif plan.kind == "hnsw_sq8":
        grid = [{"ef_search": ef} for ef in (64, 128, 256, 512)]
    else:
        return []
    plans = [replace(plan, params={**plan.params, **g}) for g in grid]
    return plans if plan in plans else [*plans, plan]


def measure_loaded(directory: Path, threads: int) -> dict:
    """Runs in a fresh process: what a product process pays to load the index and to search it."""
    faiss.omp_set_num_threads(threads)
    queries, exact = np.load(directory / "queries.npy"), np.load(directory / "exact_ids.npy")
    before, _ = rss_bytes()
    t = time.perf_counter()
    index, plan = load(directory / "index")
    load_s = time.perf_counter() - t
    after, peak = rss_bytes()
    result = {"rss_before": before, "rss_index": after - before, "rss_peak_index": peak - before, "load_s": load_s}
    result |= summary(*latencies(index, plan, queries, "searching"), exact)
    result["sweep"] = [
        {"params": p.params, **summary(*latencies(index, p, queries, f"sweep {p.params}"), exact)}
        for p in sweep_plans(plan)
    ]
    return result


def run_size(n: int, args: argparse.Namespace) -> dict:
    clusters = args.clusters or int(min(max(n // 750, 16), 10_000))
    space = make_space(args.dim, clusters, args.seed)
    queries, query_cluster = chunk(space, QUERIES, 0, args.queries)
    plan = plan_index(n, args.dim, kind=args.kind)
    print(f"\n== {n:,} vectors, {clusters} clusters: {plan.describe()}", file=sys.stderr)
    train = None
    if plan.training_size():
        train = np.concatenate([x for _, x, _ in vectors(space, TRAINING, min(plan.training_size(), n))])

    exact = ExactTopK(queries, K + 1)  # one more than reported, to measure how close the 10th and 11th are
    cluster_of = np.empty(n, dtype=np.int32)
    producing = 0.0

    def batches() -> Iterator[np.ndarray]:
        nonlocal producing
        t = time.perf_counter()
        for start, x, cluster in vectors(space, COLLECTION, n):
            exact.update(x, start)
            cluster_of[start : start + len(x)] = cluster
            producing += time.perf_counter() - t
            yield x
            t = time.perf_counter()

    faiss.omp_set_num_threads(args.threads)
    t = time.perf_counter()
    index = build_index(plan, batches(), train=train, progress=True, total=n)
    build_s = time.perf_counter() - t - producing
    del train

    work = args.work_dir / f"n{n}-d{args.dim}-seed{args.seed}-{plan.kind}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    save(index, plan, work / "index")
    del index
    gc.collect()
    np.save(work / "queries.npy", queries)
    np.save(work / "exact_ids.npy", exact.ids[:, :K])
    measure = [sys.executable, __file__, "--measure", str(work), "--search-threads", str(args.search_threads)]
    loaded = json.loads(subprocess.run(measure, check=True, stdout=subprocess.PIPE, text=True).stdout)
    file_bytes = (work / "index" / "index.faiss").stat().st_size

    baseline = measure_flat(space, min(args.baseline_n or n, n), queries, exact.ids[:, :K], args)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return {
        "n": n,
        "clusters": clusters,
        "plan": plan.to_json(),
        "describe": plan.describe(),
        "build_s": build_s,
        "generate_s": producing,
        "file_bytes": file_bytes,
        **loaded,
        "baseline": baseline,
        "data": {
            "top1_cos": float(exact.scores[:, 0].mean()),
            "top10_cos": float(exact.scores[:, K - 1].mean()),
            "gap_10_11": float((exact.scores[:, K - 1] - exact.scores[:, K]).mean()),
            "own_cluster": float((cluster_of[exact.ids[:, :K]] == query_cluster[:, None]).mean()),
        },
    }


def measure_flat(space: Space, n: int, queries: np.ndarray, exact: np.ndarray, args: argparse.Namespace) -> dict:
    plan = plan_index(n, args.dim, kind="flat")
    index = build_index(plan, (x for _, x, _ in vectors(space, COLLECTION, n)), progress=True, total=n)
    picked = queries[: args.baseline_queries]
    faiss.omp_set_num_threads(args.search_threads)
    wall, cpu, found = latencies(index, plan, picked, "exact search")
    faiss.omp_set_num_threads(args.threads)
    result = {"n": n, "bytes": n * args.dim * 4, **summary(wall, cpu, found, exact[: len(picked)])}
    del index
    gc.collect()
    return result


# --- report -----------------------------------------------------------------------------------------------------------


def machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    return (
        f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, "
        f"faiss {faiss.__version__}, numpy {np.__version__}"
    )


def report(run: dict) -> str:
    args, results = run["args"], sorted(run["results"], key=lambda r: r["n"])
    head = results[-1]
    passes = {
        "p99": head["p99_ms"] <= TARGETS["p99_ms"],
        "recall": head["recall"] >= TARGETS["recall"],
        "memory": head["rss_index"] <= TARGETS["memory_gb"] * 1e9,
    }
    lines = [
        "# Vector index at scale",
        "",
        (
            f"Measured {run['date']} by `{run['command']}` on {run['machine']}. faiss threads: {args['threads']} for "
            f"building, {args['search_threads']} for single queries (one query per call gains nothing from a second "
            "OpenMP thread, whose spinning only lengthens the tail on a shared machine). The 2 cores were shared with "
            f"other work: load average {run['load_start']:.1f} at the start, {run['load_end']:.1f} at the end; so "
            "latency is reported as wall time (the target) and as CPU time (wall time less waiting for a core). "
            f"Whole run: {run['wall_s'] / 60:.0f} min."
        ),
        "",
        f"## Targets at {head['n']:,} vectors of {args['dim']} dimensions",
        "",
        f"Structure: {head['describe']}.",
        "",
        "| target | measured | |",
        "|---|---|---|",
        (
            f"| single-query latency p99 <= {TARGETS['p99_ms']:g} ms | {head['p99_ms']:.2f} ms "
            f"(p50 {head['p50_ms']:.2f} ms; CPU time p50 {head['cpu_p50_ms']:.2f}, p99 {head['cpu_p99_ms']:.2f} ms) "
            f"| {_verdict(passes['p99'])} |"
        ),
        (
            f"| recall@10 against exact float32 search >= {TARGETS['recall']} | {head['recall']:.4f} "
            f"({args['queries']:,} queries) | {_verdict(passes['recall'])} |"
        ),
        (
            f"| resident memory of the loaded index <= {TARGETS['memory_gb']:g} GB | {head['rss_index'] / 1e9:.2f} "
            f"GB (file {head['file_bytes'] / 1e9:.2f} GB; the float32 vectors alone: "
            f"{head['n'] * args['dim'] * 4 / 1e9:.2f} GB) | {_verdict(passes['memory'])} |"
        ),
        (
            f"| build time (train + add), reported | {head['build_s'] / 60:.1f} min (generating the data: "
            f"{head['generate_s'] / 60:.1f} min more) | |"
        ),
        "",
        "## By size",
        "",
        (
            "Each size is its own collection from the same generator (clusters = n / 750). Latency: one query per "
            "call, warm, wall time, over all queries, in a fresh process that loaded the saved index; memory: that "
            "process's RSS after the load less before it. Exact baseline, same run: IndexFlatIP (what plan_index "
            "picks for small collections) over the same float32 vectors, over the first "
            f"{args['baseline_queries']} queries."
        ),
        "",
        (
            "| vectors | structure | build (train + add) | index file | resident (peak while loading) | load "
            "| p50 | p99 | CPU p99 | recall@10 | exact search p50 / p99 | p50 speed-up |"
        ),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b = r["baseline"]
        exact_n = "" if b["n"] == r["n"] else f" (over {b['n']:,})"
        lines.append(
            f"| {r['n']:,} | {_structure(r['plan'])} | {_duration(r['build_s'])} "
            f"| {r['file_bytes'] / 1e6:,.0f} MB | {r['rss_index'] / 1e6:,.0f} MB ({r['rss_peak_index'] / 1e6:,.0f} MB) "
            f"| {r['load_s']:.1f} s | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['cpu_p99_ms']:.2f} ms "
            f"| {r['recall']:.4f} | {b['p50_ms']:,.1f} / {b['p99_ms']:,.1f} ms{exact_n} "
            f"| {b['p50_ms'] / r['p50_ms']:,.0f}x |"
        )
    if head["sweep"]:
        lines += [
            "",
            f"## Search-time settings at {head['n']:,} vectors",
            "",
            "The same loaded index and queries under other search-time settings; the plan's in bold.",
            "",
            "| settings | p50 | p99 | CPU p99 | recall@10 |",
            "|---|---|---|---|---|",
        ]
        for s in head["sweep"]:
            shown = {k: v for k, v in s["params"].items() if k not in ("nlist", "m", "M", "ef_construction")}
            cell = f"**{_params(shown)}**" if s["params"] == head["plan"]["params"] else _params(shown)
            lines.append(
                f"| {cell} | {s['p50_ms']:.2f} ms | {s['p99_ms']:.2f} ms | {s['cpu_p99_ms']:.2f} ms "
                f"| {s['recall']:.4f} |"
            )
    d = head["data"]
    lines += [
        "",
        "## Data",
        "",
        (
            f"`make_space` in bench/vector_scale.py, seed {args['seed']}: {head['clusters']:,} clusters in topics of "
            "16, log-normal cluster sizes, noise with a power-law spectrum (effective dimension ~26) along directions "
            f"shared within a topic, rotated off the axes, normalised; {args['queries']:,} queries from the same "
            f"mixture (not in the collection). Measured at {head['n']:,}: mean cosine to the nearest neighbour "
            f"{d['top1_cos']:.3f} and to the 10th {d['top10_cos']:.3f}; the 10th and 11th differ by "
            f"{d['gap_10_11']:.4f} on average (what makes recall@10 hard); {1 - d['own_cluster']:.0%} of the true 10 "
            "nearest neighbours lie outside the query's own cluster."
        ),
        "",
        PARAMETERS_WHY,
    ]
    return "\n".join(lines) + "\n"


def _verdict(passed: bool) -> str:
    return "**pass**" if passed else "**MISS**"


def _structure(plan: dict) -> str:
    return f"{plan['kind']}: {_params(plan['params'])}" if plan["params"] else plan["kind"]


def _params(params: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items())


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


PARAMETERS_WHY = """## Parameters and why

The structure comes from `plan_index` in retrieval/vectors.py; these are its choices and what they rest on.

- **Exact search (IndexFlatIP) while n x dim <= 12M (31k vectors of 384-d).** A flat query reads every vector: about
  0.14 ms per 1,000 384-d vectors on one core here (measured: 2.1 ms at 20k, 4.3 ms at 35k, 7.4 ms at 50k, 15 ms at
  100k, 29 ms at 200k). A 200k threshold would have cost ~30 ms a query, so exact search stops where it would break
  the 5 ms budget; above that the approximate index is faster at the same size (see the 100k row).
- **The stored vectors are compressed, twice.** float32 at 3M x 384 is 4.6 GB, over the 3 GB budget. Candidates come
  from 4-bit fast-scan product quantisation (`IVF{nlist},PQ{m}x4fs`, 48 bytes a vector at m = 96 = dim / 4) of each
  vector's residual from its list centroid; the candidates are re-scored on 8-bit scalar-quantised copies
  (`Refine(SQ8)`, 384 bytes a vector) and the best k returned. About 450 bytes a vector with ids and centroids:
  1.37 GB resident at 3M.
- **Recall is capped by the 8-bit codes at ~0.98.** Exact search over the 8-bit codes alone reaches recall@10 0.980 at
  1M on this data (float16 copies: 0.9996, bf16: 0.994, 8-bit with quantile or optimised ranges: 0.94-0.95); the
  10th and 11th neighbours are only ~0.0013 apart in cosine. Re-scoring on float16 instead (`Refine(SQfp16)`, +384
  bytes a vector: ~2.5 GB at 3M) would lift the cap to ~1.0 within the memory budget, at the cost of the margin.
- **nlist ~ 4 sqrt(n), a power of two (8192 at 3M, ~370 vectors a list),** trained by k-means on 40 x nlist sample
  vectors (328k at 3M). More lists shorten the scan but training grows with nlist squared: k-means is a good part of
  the build time on 2 cores.
- **nprobe = max(128, nlist / 64), at most a quarter of the lists.** On this data 32 lists already reach the cap at
  3M (see the sweep), but 64 were needed at 300k, where lists are finer relative to the clusters; real embeddings may
  spread wider. The margin costs ~0.3 ms.
- **k_factor = 64** (640 candidates for k = 10): 32 loses ~0.01 of recall, 128 gains ~0.002 for ~0.2 ms.
- **PQ on residuals** (`by_residual`): at 300k, recall@10 0.94 -> 0.97 (nprobe 32, k_factor 32) over PQ of the raw
  vectors, at the same 48 bytes; it costs training time. PQ on 48 sub-quantisers (24 bytes) was far worse (recall
  0.5 at k_factor 16, 300k).
- **HNSW over 8-bit codes was measured and rejected** (`--kind hnsw_sq8 --n 1000000`, same data, same day): M = 32,
  efConstruction 80 built in 3.6 min against 70-110 s for the IVF index (two runs), took 657 MB against 462 MB (the
  graph's links), and reached recall@10 0.941 / 0.953 / 0.959 at efSearch 128 / 256 / 512 (p50 0.33 / 0.55 /
  0.92 ms), below the IVF index's 0.98 at 0.76 ms; HNSW's recall at a given efSearch falls further with size.
- **One faiss thread for single queries.** A query per call runs on one thread anyway; a second OpenMP thread only
  has to be woken, and on a busy 2-core machine that cost 10-15 ms (flat search at 20k: p50 2.1 ms with one thread,
  16 ms with two). Serving processes should run with `OMP_NUM_THREADS=1`; building uses both cores.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3_000_000, help="vectors in the headline run")
    parser.add_argument(
        "--sizes", default="", help="smaller sizes also measured, comma-separated (e.g. 100000,1000000)"
    )
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--clusters", type=int, default=0, help="default: n / 750, between 16 and 10000")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="faiss (OpenMP) threads for building")
    parser.add_argument(
        "--search-threads", type=int, default=1, help="faiss threads while timing single queries (see the report)"
    )
    parser.add_argument("--kind", default=None, help="force a structure (default: what plan_index picks)")
    parser.add_argument("--baseline-n", type=int, default=0, help="vectors for the exact baseline (default: all)")
    parser.add_argument("--baseline-queries", type=int, default=200)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/vesalius-vector-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the saved index and ground truth in --work-dir")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("VECTORS.md"))
    parser.add_argument("--from-results", type=Path, help="rewrite the report from a run's raw results (JSON)")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the fresh-process half of a run
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_loaded(args.measure, args.search_threads)))
        return 0

    if args.from_results:
        run = json.loads(args.from_results.read_text())
    else:
        run = {"command": "python bench/vector_scale.py " + shlex.join(sys.argv[1:]), "args": vars(args).copy()}
        run |= {"date": date.today().isoformat(), "machine": machine(), "load_start": os.getloadavg()[0]}
        start = time.perf_counter()
        run["results"] = []
        for n in sorted({args.n, *(int(s) for s in args.sizes.split(",") if s)}):
            run["results"].append(run_size(n, args))
            print(json.dumps({k: v for k, v in run["results"][-1].items() if k != "sweep"}), file=sys.stderr)
        run |= {"load_end": os.getloadavg()[0], "wall_s": time.perf_counter() - start}
        args.work_dir.mkdir(parents=True, exist_ok=True)
        raw = args.work_dir / f"results-n{args.n}-seed{args.seed}.json"
        raw.write_text(json.dumps(run, default=str, indent=1))
        print(f"raw results: {raw} (--from-results rewrites the report from them)", file=sys.stderr)
    text = report(run)
    args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
