"""`vesalius kb`: build, search and show the knowledge base."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from vesalius.agent.config import load_settings
from vesalius.agent.errors import AgentError
from vesalius.agent.terminal import echo, echo_json
from vesalius.agent.user_text import lines, user_text
from vesalius.retrieval import MODES, BuildOptions, Concept, Hit, KnowledgeBase, KnowledgeError
from vesalius.retrieval.build import build
from vesalius.retrieval.vectors import KINDS

_kb_dir = click.option(
    "--kb-dir",
    type=click.Path(path_type=Path),
    help="knowledge-base root or one build (default: VESALIUS_KB_DIR, else <cache_dir>/kb)",
)
_json = click.option("--json", "as_json", is_flag=True, help="JSON for scripts")


def _open(kb_dir: Path | None) -> KnowledgeBase:
    s = load_settings()
    return KnowledgeBase.open(kb_dir or s.knowledge_root, s.knowledge_path, s.embedding_model)


@click.group()
def kb() -> None:
    """Build, search and show the knowledge base (UMLS CUIs, SNOMED CT and ICD-10-CM codes, with sources)."""


@kb.command("build")
@_kb_dir
@click.option("--umls", type=click.Path(path_type=Path, file_okay=False), help="UMLS Metathesaurus META folder (RRF)")
@click.option("--umls-language", "umls_languages", multiple=True, default=("ENG",), show_default=True)
@click.option("--umls-source", "umls_sources", multiple=True, help="keep only these source vocabularies (SAB)")
@click.option("--umls-include-suppressed", is_flag=True, help="keep suppressible and obsolete atoms")
@click.option("--snomed", type=click.Path(path_type=Path, file_okay=False), help="SNOMED CT RF2 Snapshot folder")
@click.option("--obo", multiple=True, type=click.Path(path_type=Path, dir_okay=False), help="OBO ontology (.obo/.gz)")
@click.option("--sssom", multiple=True, type=click.Path(path_type=Path, dir_okay=False), help="SSSOM mapping set")
@click.option("--imaging", type=click.Path(path_type=Path, dir_okay=False), help="imaging knowledge JSON to use")
@click.option("--no-imaging", is_flag=True, help="leave out the project's imaging knowledge")
@click.option("--no-hpo", is_flag=True, help="leave out the bundled Human Phenotype Ontology")
@click.option("--no-icd10cm", is_flag=True, help="leave out the bundled ICD-10-CM")
@click.option("--icd10cm-extensions", is_flag=True, help="also codes that only add a 7th character (encounter type)")
@click.option(
    "--on-error",
    type=click.Choice(["stop", "skip"]),
    default="stop",
    show_default=True,
    help="at a malformed input line: stop, or skip it and count it",
)
@click.option("--index-kind", type=click.Choice(KINDS), help="force the dense index type (default: chosen by size)")
@click.option("--force", is_flag=True, help="rebuild even if this version is already built")
@click.option("--chunk-rows", default=4096, show_default=True, hidden=True)
@click.option("--quiet", is_flag=True, help="no progress bars")
@_json
def build_cmd(kb_dir, umls, umls_languages, umls_sources, umls_include_suppressed, snomed, obo, sssom, imaging,
              no_imaging, no_hpo, no_icd10cm, icd10cm_extensions, on_error, index_kind, force, chunk_rows, quiet,
              as_json) -> None:  # fmt: skip
    """Build a versioned knowledge base: the bundled sources plus what you bring. Rerun to resume."""
    s = load_settings()
    opts = BuildOptions(
        imaging=not no_imaging,
        imaging_path=imaging or s.knowledge_path,
        hpo=not no_hpo,
        icd10cm=not no_icd10cm,
        icd10cm_extensions=icd10cm_extensions,
        obo=tuple(obo),
        sssom=tuple(sssom),
        umls=umls,
        umls_languages=tuple(umls_languages),
        umls_sources=tuple(umls_sources),
        umls_include_suppressed=umls_include_suppressed,
        snomed=snomed,
        on_error=on_error,
        embedding_model=s.embedding_model,
        index_kind=index_kind,
        chunk_rows=chunk_rows,
    )
    try:
        report = build(kb_dir or s.knowledge_root, opts, progress=not quiet, force=force)
    except KeyboardInterrupt:
        echo("interrupted: run the same command again to resume where it stopped", err=True)
        sys.exit(130)
    if as_json:
        echo_json(json.dumps({**report.__dict__, "path": str(report.path)}, indent=2))
        return
    what = "already built; now in use" if report.reused else f"built in {report.seconds:.0f} s"
    echo(f"{report.version}: {report.concepts} concepts, {report.dense_rows} embedded texts, {what}")
    echo(f"  {report.path}")
    if report.resumed:
        echo(f"  resumed: {', '.join(report.resumed)} were already done")
    if report.problems.get("count"):
        echo(f"  {report.problems['summary']}")


def _hit_record(rank: int, hit: Hit) -> dict:
    c = hit.concept
    return {
        "rank": rank,
        "concept_id": c.id,
        "umls_cui": c.umls_cui,
        "name": c.preferred_name,
        "snomed_ct": c.snomed_ct,
        "icd10cm": c.icd10cm,
        "semantic_types": c.semantic_types,
        "sources": [f"{ref.source}: {ref.id}" for ref in c.sources],
        "score": hit.score,
        "dense": hit.dense,
        "lexical": hit.lexical,
        "matched_term": hit.matched_term,
    }


_SEARCH_EXAMPLE = 'vesalius kb search "water on the brain"'
MAX_QUERIES = 100_000  # all are checked before the knowledge base opens, so they are held at once


def _queries(query: str | None, queries) -> list[str]:
    if query is not None:
        return [user_text(query, "query", _SEARCH_EXAMPLE)]
    stream = queries or (sys.stdin.buffer if not sys.stdin.isatty() else None)
    if stream is None:
        raise click.UsageError("give a QUERY, or --queries FILE (one per line; '-' for standard input)")
    found = []
    for number, line in enumerate(lines(stream), start=1):
        try:
            if isinstance(line, AgentError):
                raise line
            if line.strip():
                found.append(user_text(line, "query", _SEARCH_EXAMPLE))
        except AgentError as exc:
            raise AgentError(f"line {number}: {exc.problem}", exc.remedy) from None
        if len(found) > MAX_QUERIES:
            raise AgentError(f"over {MAX_QUERIES:,} queries in one run", "Split the input into several runs")
    if not found:
        raise click.UsageError("no queries: the input had no non-empty line")
    return found


@kb.command()
@click.argument("query", required=False)
@click.option("--queries", type=click.File("rb"), help="one query per line ('-': standard input)")
@click.option("-k", "--top", "k", default=10, show_default=True)
@click.option("--mode", type=click.Choice(MODES), default="linked", show_default=True)
@click.option("--semantic-type", "semantic_types", multiple=True, help="keep concepts of this semantic type")
@click.option("--source", "sources", multiple=True, help="keep concepts from this source (e.g. HPO, DOID, UMLS)")
@_kb_dir
@_json
def search(query, queries, k, mode, semantic_types, sources, kb_dir, as_json) -> None:
    """Ranked concepts for a query, with codes, sources and scores (JSON: one line per query)."""
    if not 1 <= k <= 1000:
        raise AgentError(f"--top {k} is out of range", "Ask for 1 to 1000 results")
    wanted = _queries(query, queries)
    knowledge = _open(kb_dir)
    for q in wanted:
        hits = knowledge.search(q, k=k, mode=mode, semantic_types=list(semantic_types), sources=list(sources))
        if as_json:
            echo_json(json.dumps({"query": q, "hits": [_hit_record(r, h) for r, h in enumerate(hits, start=1)]}))
            continue
        echo(f"{q}")
        for r, h in enumerate(hits, start=1):
            c = h.concept
            codes = " ".join([*(f"SCTID:{x}" for x in c.snomed_ct[:2]), *(f"ICD10CM:{x}" for x in c.icd10cm[:2])])
            why = f" (named: {h.matched_term!r})" if h.matched_term else ""
            echo(f"  {r:2d}. {c.id:<14} {c.preferred_name}  {codes}  score {h.score:.3f}{why}")
        if not hits:
            echo("  (nothing found)")


def _show_text(c: Concept, knowledge: KnowledgeBase) -> str:
    out = [f"{c.preferred_name}  [{c.id}]"]
    out.append(f"  codes: {', '.join(c.codes) or 'none'}")
    if c.semantic_types:
        out.append(f"  semantic types: {', '.join(c.semantic_types)}")
    if c.urgency:
        out.append(f"  urgency when newly found on imaging: {c.urgency}")
    if c.synonyms:
        more = f" (+{len(c.synonyms) - 15} more)" if len(c.synonyms) > 15 else ""
        out.append(f"  synonyms: {'; '.join(c.synonyms[:15])}{more}")
    for d in c.definitions:
        out.append(f"  definition ({d.source}): {d.text}")
    if c.plain_language:
        out.append(f"  in plain words: {c.plain_language}")
    for modality, text in c.appearance.items():
        out.append(f"  on {modality}: {text}")
    for rel in c.relations[:20]:
        target = knowledge.concept(rel.target)
        name = target.preferred_name if target else rel.target_name or "not in this knowledge base"
        out.append(f"  {rel.kind.replace('_', ' ')}: {name} [{target.id if target else rel.target}]")
    for ref in c.sources:
        out.append(f"  source: {ref.source} {ref.id}{f' {ref.link}' if ref.link else ''}")
    return "\n".join(out)


@kb.command()
@click.argument("code")
@_kb_dir
@_json
def show(code, kb_dir, as_json) -> None:
    """A concept by CUI, SNOMED CT id, ICD-10-CM code or source id (C0032285, SCTID:233604007, HP:0002090)."""
    code = user_text(code, "code", "vesalius kb show C0032285")
    knowledge = _open(kb_dir)
    concept = knowledge.concept(code)
    if concept is None:
        raise KnowledgeError(
            f"no concept with the code {code!r} in {knowledge.version}",
            "Search for it by name with `vesalius kb search`",
        )
    if as_json:
        echo_json(concept.model_dump_json(indent=2))
    else:
        echo(_show_text(concept, knowledge))


@kb.command()
@_kb_dir
@_json
def info(kb_dir, as_json) -> None:
    """The knowledge base in use: version, sources, counts, index."""
    m = _open(kb_dir).manifest
    if as_json:
        echo_json(json.dumps(m, indent=2))
        return
    echo(f"{m['version']} (built {m['created']}): {m['concepts']} concepts, {m['dense_rows']} embedded texts")
    for source, n in m["sources"].items():
        echo(f"  {source}: {n} records")
    echo(f"  dense index: {m['dense_index']}; embedding model {m['embedding_model']['id']}")
    echo(f"  malformed input lines: {m['problems']['summary']}")
