"""`vesalius kb build`: sources in, a versioned knowledge base directory out.

Layout under the knowledge-base root (default: <cache_dir>/kb):

    builds/<version>/   manifest.json, concepts.sqlite, dense/ (FAISS), dense_rows.npy, lexical/ (BM25)
    CURRENT             the version in use, replaced atomically
    .work/<version>/    a build in progress
    .build.lock         held by the process building: a second build of the same root waits, then reuses
    embeddings/         vectors already computed, per embedding model (a rebuild embeds only new texts)

The version is a digest of everything the result depends on (each source's name and version stamp, in order; the
options; the embedding model), so rerunning an interrupted build finds its own work directory and resumes: each
stage writes its output under a temporary name and renames it when complete, and embeddings are saved chunk by
chunk. The work directory becomes builds/<version> with one rename, so a half-written base is never opened.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from filelock import FileLock, Timeout
from tqdm import tqdm

from vesalius.retrieval.concepts import Concept
from vesalius.retrieval.embedder import Embedder
from vesalius.retrieval.embedding_cache import EmbeddingCache
from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.merge import merge
from vesalius.retrieval.records import Problems, SourceConcept
from vesalius.retrieval.sources.base import Source
from vesalius.retrieval.sources.builtin import ImagingSource, SourceFlags
from vesalius.retrieval.store import ConceptStore, write_store
from vesalius.retrieval.terms import normalize

FORMAT = 2  # bump when what a build writes changes: the version (a digest that includes it) changes too
MAX_DENSE_TERMS = 16  # names and synonyms embedded per concept; all of them stay in the exact-match table


OnError = Literal["skip", "stop"]


@dataclass(frozen=True, init=False)
class BuildOptions:
    """The sources of a build, in the order they are read (it decides which names a merged concept first), and how
    to build from them."""

    sources: tuple[Source, ...]
    on_error: OnError = "stop"
    embedding_model: Path | None = None
    index_kind: str | None = None  # default: chosen by size (vesalius.retrieval.vectors.plan_index)
    chunk_rows: int = 4096  # embeddings saved per chunk: the unit of resumption

    def __init__(
        self,
        sources: Iterable[Source] | None = None,
        *,
        on_error: OnError = "stop",
        embedding_model: Path | None = None,
        index_kind: str | None = None,
        chunk_rows: int = 4096,
        **flags: Any,
    ) -> None:
        """`sources`, or the built-in ones that `flags` (the fields of `SourceFlags`: hpo=False, obo=(path,), ...)
        choose; with neither, the bundled base (imaging knowledge, Disease Ontology, HPO, ICD-10-CM)."""
        if sources is not None and flags:
            raise TypeError(f"give sources or source flags ({', '.join(flags)}), not both")
        chosen = tuple(sources) if sources is not None else SourceFlags(**flags).sources()
        names = [s.name for s in chosen]
        if twice := sorted({n for n in names if names.count(n) > 1}):
            raise KnowledgeError(f"the sources {twice} are given more than once", "Give each source once")
        for name, value in (
            ("sources", chosen),
            ("on_error", on_error),
            ("embedding_model", embedding_model),
            ("index_kind", index_kind),
            ("chunk_rows", chunk_rows),
        ):
            object.__setattr__(self, name, value)

    @classmethod
    def starter(cls, imaging_path: Path | None = None, embedding_model: Path | None = None) -> BuildOptions:
        """The imaging knowledge alone: builds in seconds, for an agent that finds no built base."""
        return cls((ImagingSource(imaging_path),), embedding_model=embedding_model)


@dataclass
class BuildReport:
    version: str
    path: Path
    concepts: int
    dense_rows: int
    resumed: list[str] = field(default_factory=list)  # stages found complete from an interrupted run
    reused: bool = False  # the same version was already built
    problems: dict = field(default_factory=dict)
    seconds: float = 0.0


def _is_plugin(source: Source) -> bool:
    return not type(source).__module__.startswith("vesalius.")


def _failed(source: Source, exc: Exception) -> KnowledgeError:
    """A plugin's bug as one line that names the plugin, rather than an internal error of Vesalius."""
    return KnowledgeError(
        f"the source '{source.name}' failed: {type(exc).__name__}: {' '.join(str(exc).split())}",
        f"Leave it out of the build, or report it to the authors of {type(source).__module__}",
    )


@contextmanager
def _blamed(source: Source) -> Iterator[None]:
    """A plugin's own exception becomes a KnowledgeError that names it; a built-in source's is a bug, and stays one."""
    try:
        yield
    except KnowledgeError:
        raise
    except Exception as exc:
        if _is_plugin(source):
            raise _failed(source, exc) from exc
        raise


def _source_stamp(source: Source) -> dict | str:
    with _blamed(source):
        return source.stamp()


def _version_key(opts: BuildOptions, embedder: Embedder) -> tuple[str, dict]:
    inputs = {
        "format": FORMAT,
        "sources": [{"name": s.name, "stamp": _source_stamp(s)} for s in opts.sources],
        "on_error": opts.on_error,
        "embedding_model": embedder.model_id,
        "index_kind": opts.index_kind,
    }
    digest = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()
    return f"kb-{digest[:12]}", inputs


def _counted(records: Iterator[SourceConcept], label: str, progress: bool, counts: dict[str, int]):
    bar = tqdm(desc=f"reading {label}", unit=" records", disable=not progress, file=sys.stderr, leave=True)
    for rec in records:
        counts[rec.source] = counts.get(rec.source, 0) + 1
        bar.update()
        yield rec
    bar.close()


def _records(opts: BuildOptions, problems: Problems, progress: bool, counts: dict[str, int]) -> Iterator[SourceConcept]:
    for source in opts.sources:
        with _blamed(source):
            yield from _counted(source.records(problems), source.label, progress, counts)


def dense_texts(c: Concept) -> list[str]:
    """What is embedded for a concept: its distinct names and synonyms, and its name with its first definition."""
    seen, texts = set(), []
    for term in c.terms():
        norm = normalize(term)
        if norm and norm not in seen and len(texts) < MAX_DENSE_TERMS:
            seen.add(norm)
            texts.append(term)
    if c.definitions:
        texts.append(f"{c.preferred_name}: {c.definitions[0].text}"[:1000])
    return texts


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    if tmp.is_dir():
        shutil.rmtree(tmp)
    tmp.unlink(missing_ok=True)
    write(tmp)
    os.replace(tmp, path)


def _stage_concepts(work: Path, opts: BuildOptions, progress: bool) -> None:
    problems = Problems(on_error=opts.on_error)
    counts: dict[str, int] = {}
    merged = merge(_records(opts, problems, progress, counts), work / "staging.sqlite")
    bar = tqdm(desc="merging and storing concepts", unit=" concepts", disable=not progress, file=sys.stderr)

    def concepts() -> Iterator[Concept]:
        for c in merged:
            bar.update()
            yield c

    _atomic_write(work / "concepts.sqlite", lambda tmp: write_store(tmp, concepts()))
    bar.close()
    summary = {
        "sources": counts,
        "problems": {
            "count": problems.count,
            "by_file": problems.by_file,
            "examples": [str(p) for p in problems.examples],
            "summary": problems.summary(),
        },
    }
    _atomic_write(work / "sources.json", lambda tmp: tmp.write_text(json.dumps(summary, indent=2)))


def _embed(texts: list[str], embedder: Embedder, cache: EmbeddingCache) -> np.ndarray:
    vectors = cache.get(texts)
    missing = [i for i, v in enumerate(vectors) if v is None]
    if missing:
        fresh = embedder.encode([texts[i] for i in missing])
        cache.put([texts[i] for i in missing], fresh)
        for i, v in zip(missing, fresh):
            vectors[i] = v
    return np.stack(vectors)


def _stage_embeddings(
    work: Path, store: ConceptStore, embedder: Embedder, cache: EmbeddingCache, opts: BuildOptions, progress: bool
):
    """Embeds chunk by chunk; a chunk already on disk (from an interrupted run) is kept, and so is every vector the
    cache already holds."""
    texts, owners = [], []
    for pos, c in store.all():
        for text in dense_texts(c):
            texts.append(text)
            owners.append(pos)
    chunks = work / "vectors"
    chunks.mkdir(exist_ok=True)
    n_chunks = (len(texts) + opts.chunk_rows - 1) // opts.chunk_rows
    done = [i for i in range(n_chunks) if (chunks / f"{i:06d}.npy").exists()]
    bar = tqdm(total=len(texts), desc="embedding", unit=" texts", disable=not progress, file=sys.stderr)
    bar.update(min(len(texts), len(done) * opts.chunk_rows))
    for i in range(n_chunks):
        path = chunks / f"{i:06d}.npy"
        if path.exists():
            continue
        part = texts[i * opts.chunk_rows : (i + 1) * opts.chunk_rows]
        vectors = _embed(part, embedder, cache)
        _atomic_write(path, lambda tmp, v=vectors: _save_array(tmp, v))
        bar.update(len(part))
    bar.close()
    np.save(work / "dense_rows.npy", np.asarray(owners, dtype=np.int64))
    return n_chunks, len(done)


def _save_array(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would add ".npy" to the temporary name
        np.save(f, array)


def _save_dir(path: Path, save: Callable[[Path], object]) -> None:
    path.mkdir()
    save(path)


def _chunks(work: Path, n_chunks: int) -> Iterator[np.ndarray]:
    for i in range(n_chunks):
        yield np.load(work / "vectors" / f"{i:06d}.npy")


def _training_sample(work: Path, n_chunks: int, rows: int, size: int) -> np.ndarray:
    """An even sample across the chunks (not the first rows, which all come from the first sources)."""
    step = max(1, rows // size)
    return np.concatenate([chunk[::step] for chunk in _chunks(work, n_chunks)])


BUILD_WAIT_S = 3600.0  # a full UMLS build holds the lock for hours; a starter build for seconds


def build(root: Path, opts: BuildOptions, progress: bool = False, force: bool = False) -> BuildReport:
    """Build (or reuse) the base `opts` describes under `root`. One process builds a root at a time: two first
    questions at once, or two `kb build` runs, would otherwise share one work directory."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = FileLock(root / ".build.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if progress:
                print(f"vesalius: waiting for another build under {root} to finish", file=sys.stderr)
            lock.acquire(timeout=BUILD_WAIT_S)
    except Timeout:
        raise KnowledgeError(
            f"another process has been building under {root} for over {BUILD_WAIT_S / 60:.0f} minutes",
            "Wait for it to finish, or stop it (rerunning resumes its work)",
        ) from None
    except OSError as exc:
        raise KnowledgeError(f"cannot write under {root}: {exc.strerror}", "Choose a writable --kb-dir") from exc
    try:
        return _build(root, opts, progress, force)
    finally:
        lock.release()


def _build(root: Path, opts: BuildOptions, progress: bool, force: bool) -> BuildReport:
    # FAISS and bm25s load when a build runs: opening or listing a base does not need them.
    from vesalius.retrieval import vectors
    from vesalius.retrieval.lexical import LexicalIndex, concept_document

    started = time.perf_counter()
    embedder = Embedder(opts.embedding_model)
    version, inputs = _version_key(opts, embedder)
    final = root / "builds" / version
    if final.joinpath("manifest.json").exists() and not force:
        set_current(root, version)
        manifest = json.loads(final.joinpath("manifest.json").read_text())
        return BuildReport(version, final, manifest["concepts"], manifest["dense_rows"], reused=True)
    work = root / ".work" / version
    try:
        work.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KnowledgeError(f"cannot write under {root}: {exc.strerror}", "Choose a writable --kb-dir") from exc
    resumed = []
    if (work / "concepts.sqlite").exists():
        resumed.append("concepts")
    else:
        try:
            _stage_concepts(work, opts, progress)
        except KnowledgeError:
            shutil.rmtree(work, ignore_errors=True)  # bad input: nothing of this run is worth resuming
            raise
    store = ConceptStore(work / "concepts.sqlite")
    try:
        if not len(store):
            shutil.rmtree(work, ignore_errors=True)
            raise KnowledgeError("the sources gave no concepts", "Include at least one source that has some")
        cache = EmbeddingCache(root / "embeddings", embedder.model_id)
        try:
            n_chunks, chunks_done = _stage_embeddings(work, store, embedder, cache, opts, progress)
        finally:
            cache.close()
        if chunks_done:
            resumed.append(f"embeddings ({chunks_done}/{n_chunks} chunks)")
        rows = len(np.load(work / "dense_rows.npy", mmap_mode="r"))
        if (work / "dense").exists():
            resumed.append("dense index")
        else:
            _stage_dense(work, n_chunks, rows, opts, progress)
        if (work / "lexical").exists():
            resumed.append("lexical index")
        else:
            docs = [concept_document(c) for _, c in store.all()]
            lexical = LexicalIndex.build(docs, progress=progress)
            _atomic_write(work / "lexical", lambda tmp: _save_dir(tmp, lexical.save))
        n_concepts = len(store)
    finally:
        store.close()
    summary = json.loads((work / "sources.json").read_text())
    _, plan = vectors.load(work / "dense")
    manifest = {
        "version": version,
        "format": FORMAT,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "concepts": n_concepts,
        "dense_rows": rows,
        "sources": summary["sources"],
        "problems": summary["problems"],
        # The path only when the user chose the model: the default one moves with the installation.
        "embedding_model": {
            "id": embedder.model_id,
            "path": str(opts.embedding_model) if opts.embedding_model else None,
        },
        "dense_index": plan.describe(),
        "inputs": inputs,
    }
    (work / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str))
    shutil.rmtree(work / "vectors", ignore_errors=True)  # the index holds them now
    _publish(work, final)
    set_current(root, version)
    return BuildReport(
        version, final, n_concepts, rows, resumed, problems=summary["problems"], seconds=time.perf_counter() - started
    )


def _stage_dense(work: Path, n_chunks: int, rows: int, opts: BuildOptions, progress: bool) -> None:
    from vesalius.retrieval import vectors

    dim = np.load(work / "vectors" / "000000.npy", mmap_mode="r").shape[1]
    plan = vectors.plan_index(rows, dim, opts.index_kind)
    if progress:
        print(f"vesalius: dense index: {plan.describe()} over {rows} vectors", file=sys.stderr)
    size = plan.training_size()
    train = _training_sample(work, n_chunks, rows, size) if size else None
    index = vectors.build_index(plan, _chunks(work, n_chunks), train=train, progress=progress, total=rows)
    _atomic_write(work / "dense", lambda tmp: _save_dir(tmp, lambda d: vectors.save(index, plan, d)))


def _publish(work: Path, final: Path) -> None:
    """One rename makes the build visible; over an existing one (--force) the old is swapped out, not removed first."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        trash = final.with_name(f".{final.name}.old")
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(final, trash)
        os.replace(work, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(work, final)


def set_current(root: Path, version: str) -> None:
    _atomic_write(root / "CURRENT", lambda tmp: tmp.write_text(version + "\n"))


def current_build(root: Path) -> Path | None:
    """The build in use under a knowledge-base root, or None when nothing has been built there."""
    try:
        version = (root / "CURRENT").read_text().strip()
    except OSError:
        return None
    path = root / "builds" / version
    return path if (path / "manifest.json").exists() else None
