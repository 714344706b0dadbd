"""`vesalius kb`: build, search and show the knowledge base."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vesalius.agent.errors import AgentError
from vesalius.agent.terminal import echo, echo_json
from vesalius.agent.user_text import lines, user_text
from vesalius.retrieval.choices import KINDS, MODES

if TYPE_CHECKING:
    from vesalius.agent.service import Vesalius

_kb_dir = click.option(
    "--kb-dir",
    type=click.Path(path_type=Path),
    help="knowledge-base root or one build (default: VESALIUS_KB_DIR, else <cache_dir>/kb)",
)
_json = click.option("--json", "as_json", is_flag=True, help="JSON for scripts")


def _agent(kb_dir: Path | None) -> Vesalius:
    """The knowledge commands' work is `Vesalius` methods; --kb-dir is one more setting."""
    from vesalius.agent.config import load_settings
    from vesalius.agent.service import Vesalius

    return Vesalius(load_settings(kb_dir=kb_dir))


@click.group()
def kb() -> None:
    """Build, search and show the knowledge base (UMLS CUIs, SNOMED CT and ICD-10-CM codes, with sources)."""


@kb.command("build")
@_kb_dir
@click.option(
    "--source",
    "source_names",
    multiple=True,
    metavar="NAME",
    help="add a source by name: an installed plugin or a built-in (repeatable; `vesalius kb sources` lists them)",
)
@click.option(
    "--source-option",
    "source_options",
    multiple=True,
    metavar="NAME.KEY=VALUE",
    help="an option of a --source (repeatable), e.g. obo.path=doid.obo",
)
@click.option("--umls", type=click.Path(path_type=Path, file_okay=False), help="UMLS Metathesaurus META folder (RRF)")
@click.option("--umls-language", "umls_languages", multiple=True, default=("ENG",), show_default=True)
@click.option("--umls-source", "umls_sources", multiple=True, help="keep only these source vocabularies (SAB)")
@click.option("--umls-include-suppressed", is_flag=True, help="keep suppressible and obsolete atoms")
@click.option("--snomed", type=click.Path(path_type=Path, file_okay=False), help="SNOMED CT RF2 Snapshot folder")
@click.option("--obo", multiple=True, type=click.Path(path_type=Path, dir_okay=False), help="OBO ontology (.obo/.gz)")
@click.option("--sssom", multiple=True, type=click.Path(path_type=Path, dir_okay=False), help="SSSOM mapping set")
@click.option("--imaging", type=click.Path(path_type=Path, dir_okay=False), help="imaging knowledge JSON to use")
@click.option("--no-imaging", is_flag=True, help="leave out the project's imaging knowledge")
@click.option("--no-diseases", is_flag=True, help="leave out the bundled Human Disease Ontology table")
@click.option("--no-lay", is_flag=True, help="leave out the project's lay terms")
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
def build_cmd(kb_dir, source_names, source_options, umls, umls_languages, umls_sources, umls_include_suppressed,
              snomed, obo, sssom, imaging, no_imaging, no_diseases, no_lay, no_hpo, no_icd10cm, icd10cm_extensions, on_error, index_kind,
              force, chunk_rows, quiet, as_json) -> None:  # fmt: skip
    """Build a versioned knowledge base: the bundled sources plus what you bring. Rerun to resume.

    The flags for UMLS, SNOMED CT, OBO, SSSOM, imaging knowledge, diseases, HPO and ICD-10-CM are shorthands for the built-in
    sources; --source adds any source by name, a plugin included, configured with --source-option."""
    from vesalius.agent.config import load_settings
    from vesalius.retrieval.build import BuildOptions
    from vesalius.retrieval.sources.builtin import SourceFlags
    from vesalius.retrieval.sources.registry import available_sources, choose_sources

    s = load_settings(kb_dir=kb_dir)
    flags = SourceFlags(
        imaging=not no_imaging,
        imaging_path=imaging or s.knowledge_path,
        diseases=not no_diseases,
        lay=not no_lay,
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
    )
    # A source a shorthand flag configured is not also taken from --source: two descriptions of one source.
    shorthands = (
        ("umls", "--umls", umls is not None),
        ("snomed", "--snomed", snomed is not None),
        ("obo", "--obo", bool(obo)),
        ("sssom", "--sssom", bool(sssom)),
        ("imaging", "--imaging", imaging is not None and not no_imaging),
        ("icd10cm", "--icd10cm-extensions", icd10cm_extensions and not no_icd10cm),
    )
    given = {name: flag for name, flag, used in shorthands if used}
    catalog = available_sources() if source_names else None
    for problem in catalog.problems if catalog else ():
        echo(f"warning: {problem}", err=True)
    sources = choose_sources(flags.sources(), given, source_names, source_options, catalog)
    opts = BuildOptions(
        sources,
        on_error=on_error,
        embedding_model=s.embedding_model,
        index_kind=index_kind,
        chunk_rows=chunk_rows,
    )
    try:
        from vesalius.agent.service import Vesalius

        with Vesalius(s) as agent:
            report = agent.build_knowledge(opts, progress=not quiet, force=force)
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


@kb.command("sources")
@_json
def sources_cmd(as_json) -> None:
    """The sources `kb build --source NAME` can use: built-in ones and installed plugins, with their options."""
    from vesalius.retrieval.sources.registry import available_sources

    catalog = available_sources()
    specs = list(catalog.specs.values())
    if as_json:
        records = [
            {
                "name": spec.name,
                "kind": "built-in" if spec.plugin is None else "plugin",
                "origin": spec.origin,
                "description": spec.description,
                "options": dict(spec.options),
            }
            for spec in specs
        ]
        echo_json(json.dumps(records, indent=2))
    else:
        for spec in specs:
            echo(f"{spec.name} ({spec.origin})\n  {spec.description}")
            for key, what in spec.options.items():
                echo(f"  --source-option {spec.name}.{key}=...{f'  {what}' if what else ''}")
    for problem in catalog.problems:
        echo(f"warning: {problem}", err=True)


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
    from vesalius.agent.render import hit_record, render_hits

    if not 1 <= k <= 1000:
        raise AgentError(f"--top {k} is out of range", "Ask for 1 to 1000 results")
    wanted = _queries(query, queries)
    with _agent(kb_dir) as agent:
        for q in wanted:
            hits = agent.search(q, k=k, mode=mode, semantic_types=semantic_types, sources=sources)
            if as_json:
                echo_json(json.dumps({"query": q, "hits": [hit_record(r, h) for r, h in enumerate(hits, start=1)]}))
            else:
                echo(render_hits(q, hits))


@kb.command()
@click.argument("code")
@_kb_dir
@_json
def show(code, kb_dir, as_json) -> None:
    """A concept by CUI, SNOMED CT id, ICD-10-CM code or source id (C0032285, SCTID:233604007, HP:0002090)."""
    with _agent(kb_dir) as agent:
        concept = agent.concept(code)
        if as_json:
            echo_json(concept.model_dump_json(indent=2))
        else:
            from vesalius.agent.render import render_concept

            echo(render_concept(concept, agent.knowledge()))


@kb.command()
@_kb_dir
@_json
def info(kb_dir, as_json) -> None:
    """The knowledge base in use: version, sources, counts, index."""
    with _agent(kb_dir) as agent:
        manifest = agent.knowledge_info()
    if as_json:
        echo_json(json.dumps(manifest, indent=2))
    else:
        from vesalius.agent.render import render_knowledge_info

        echo(render_knowledge_info(manifest))
