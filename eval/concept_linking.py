"""Concept linking measured on the labelled query set: recall@1, recall@10 and MRR for each retrieval mode.

    .venv/bin/python -m vesalius.eval.concept_linking [--kb-dir DIR] [--out eval/results/CONCEPT_LINKING.md]

A query counts as found at rank r when the r-th concept has the expected CUI (as its CUI or one merged into it).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tqdm import tqdm

from vesalius.retrieval import MODES, KnowledgeBase

K = 10


@dataclass(frozen=True)
class Query:
    query: str
    expected_cui: str
    category: str
    split: str


def bundled_queries() -> Path:
    return Path(str(resources.files("vesalius.eval") / "data" / "concept_queries.tsv"))


def load_queries(path: Path) -> list[Query]:
    with path.open(newline="", encoding="utf-8") as f:
        return [
            Query(r["query"], r["expected_cui"], r["category"], r["split"]) for r in csv.DictReader(f, delimiter="\t")
        ]


def rank_of(kb: KnowledgeBase, q: Query, mode: str) -> tuple[int | None, float]:
    started = time.perf_counter()
    hits = kb.search(q.query, k=K, mode=mode)
    elapsed = time.perf_counter() - started
    for r, h in enumerate(hits, start=1):
        if q.expected_cui in (h.concept.umls_cui, *h.concept.other_cuis):
            return r, elapsed
    return None, elapsed


def metrics(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "n": n,
        "recall@1": sum(r == 1 for r in ranks) / n,
        "recall@10": sum(r is not None for r in ranks) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
    }


def lay_phrases() -> set[str]:
    """The project's lay terms: a query that is one of them word for word tests the list, not the linking."""
    path = Path(str(resources.files("vesalius.retrieval") / "data" / "lay_terms.tsv"))
    with path.open(newline="", encoding="utf-8") as f:
        return {" ".join(r["phrase"].lower().split()) for r in csv.DictReader(f, delimiter="\t")}


def evaluate(kb: KnowledgeBase, queries: list[Query], progress: bool = True) -> dict:
    kb.search("warm up the embedding model", k=1)
    results: dict = {"modes": {}}
    for mode in MODES:
        ranks, times = [], []
        for q in tqdm(queries, desc=f"{mode:8s}", disable=not progress, file=sys.stderr):
            r, t = rank_of(kb, q, mode)
            ranks.append(r)
            times.append(t)
        by = {}
        for key in ("split", "category"):
            for value in sorted({getattr(q, key) for q in queries}):
                by[f"{key}={value}"] = metrics([r for r, q in zip(ranks, queries) if getattr(q, key) == value])
        for category in sorted({q.category for q in queries}):
            for split in sorted({q.split for q in queries}):
                chosen = [r for r, q in zip(ranks, queries) if (q.category, q.split) == (category, split)]
                if chosen:
                    by[f"category={category},split={split}"] = metrics(chosen)
        said = lay_phrases()
        unsaid = [
            r for r, q in zip(ranks, queries) if q.split == "test" and " ".join(q.query.lower().split()) not in said
        ]
        by["split=test,no-lay-term"] = metrics(unsaid)
        results["modes"][mode] = {
            "all": metrics(ranks),
            **by,
            "median_ms": statistics.median(times) * 1000,
            "misses": [q.query for r, q in zip(ranks, queries) if r is None],
        }
    return results


def markdown(results: dict, kb: KnowledgeBase, queries_path: Path, command: str) -> str:
    modes = results["modes"]
    groups = [g for g in modes["linked"] if "=" in g]
    lines = [
        "# Concept linking on the labelled query set",
        "",
        f"Command: `{command}`  ",
        (
            f"Knowledge base: {kb.version}, {len(kb)} concepts from {', '.join(kb.source_names)}; "
            f"embedding model {kb.manifest['embedding_model']['id']}; dense index {kb.manifest['dense_index']}.  "
        ),
        f"Queries: `{queries_path.name}`, {modes['linked']['all']['n']} queries. Tuning looked at the dev split only.",
        "",
        (
            "Modes: **dense** (FAISS over embedded names, synonyms and definitions), **lexical** (BM25), **hybrid** "
            "(reciprocal-rank fusion of the two), **linked** (hybrid, with concepts whose term is written out in the "
            "query first: what the agent uses)."
        ),
        "",
        "| mode | split | n | recall@1 | recall@10 | MRR | median ms/query |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode, m in modes.items():
        for group in ("split=test", "split=test,no-lay-term", "split=dev", "all"):
            g = m[group]
            name = group.removeprefix("split=").replace(",no-lay-term", " without rows a lay term spells out")
            lines.append(
                f"| {mode} | {name} | {g['n']} | {g['recall@1']:.3f} | {g['recall@10']:.3f} "
                f"| {g['mrr']:.3f} | {m['median_ms']:.1f} |"
            )
    lines += ["", "## Linked mode by category and split", ""]
    lines += ["| category | split | n | recall@1 | recall@10 | MRR |", "|---|---|---|---|---|---|"]
    for group in (g for g in groups if g.startswith("category=") and ",split=" in g):
        category, split = group.removeprefix("category=").split(",split=")
        g = modes["linked"][group]
        lines.append(
            f"| {category} | {split} | {g['n']} | {g['recall@1']:.3f} | {g['recall@10']:.3f} | {g['mrr']:.3f} |"
        )
    lines += ["", "## By category (both splits)", "", "| category | " + " | ".join(modes) + " |"]
    lines += ["|---|" + "---|" * len(modes)]
    for group in (g for g in groups if g.startswith("category=") and ",split=" not in g):
        cells = [f"{modes[m][group]['recall@1']:.2f} / {modes[m][group]['recall@10']:.2f}" for m in modes]
        lines.append(
            f"| {group.removeprefix('category=')} (n={modes['linked'][group]['n']}) | " + " | ".join(cells) + " |"
        )
    lines += ["", "Cells: recall@1 / recall@10.", "", "## Misses of the linked mode (not in the top 10)", ""]
    lines += [f"- {q}" for q in modes["linked"]["misses"]] or ["- none"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb-dir", type=Path, help="knowledge-base root or build (default: the agent's)")
    parser.add_argument("--queries", type=Path, default=None, help="TSV: query, expected_cui, category, split")
    parser.add_argument("--out", type=Path, help="markdown results table to write")
    args = parser.parse_args(argv)
    if args.kb_dir is None:
        from vesalius.agent.config import load_settings

        args.kb_dir = load_settings().knowledge_root
    queries_path = args.queries or bundled_queries()
    kb = KnowledgeBase.open(args.kb_dir)
    results = evaluate(kb, load_queries(queries_path))
    command = " ".join(["python -m vesalius.eval.concept_linking", *(argv if argv is not None else sys.argv[1:])])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(markdown(results, kb, queries_path, command))
        args.out.with_suffix(".json").write_text(json.dumps(results, indent=2))
    for mode, m in results["modes"].items():
        a = m["all"]
        print(f"{mode:8s} recall@1 {a['recall@1']:.3f}  recall@10 {a['recall@10']:.3f}  MRR {a['mrr']:.3f}")


if __name__ == "__main__":
    main()
