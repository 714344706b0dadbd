"""ICD-10-CM as bundled in the `simple-icd-10-cm` package (the CDC NCHS tabular list, public domain)."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from importlib import metadata, resources
from types import ModuleType

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Relation, SourceConcept

LICENSE = "public domain (CDC NCHS)"
_DATA_RELEASE = re.compile(r"([A-Z][a-z]+)-(?:\d{1,2}-)?(\d{4})")  # "icd10c-tabular-April-1-2026.xml" -> April 2026


def icd10cm_source() -> str:
    """ "ICD-10-CM April 2026 (simple-icd-10-cm 1.5.0)": the release from the package's data file name."""
    version = metadata.version("simple-icd-10-cm")
    release = ""
    for entry in resources.files("simple_icd_10_cm.data").iterdir():
        if entry.name.endswith(".xml") and (found := _DATA_RELEASE.search(entry.name)):
            release = f"{found[1]} {found[2]}"
    return f"ICD-10-CM {release} (simple-icd-10-cm {version})".replace("  ", " ")


def load_icd10cm(include_extensions: bool = False) -> Iterator[SourceConcept]:
    """Stream ICD-10-CM's chapters, blocks, categories and subcategories.

    Without `include_extensions`, codes that only add a 7th-character extension to another code (S52.521A "...,
    initial encounter for closed fracture") are left out: each repeats one condition up to a dozen times with an
    encounter type or healing stage, which crowds the knowledge base without naming a new condition (51,305 of
    98,466 codes in the April 2026 release). Only categories and subcategories fill `icd10cm` (chapters and blocks
    are headings, not codes anyone records); a block and a category with the same name ("B20") become one concept.
    """
    try:
        with warnings.catch_warnings():
            # The package reads its data with importlib.resources calls that Python 3.11+ deprecates.
            warnings.simplefilter("ignore", DeprecationWarning)
            import simple_icd_10_cm as icd
    except ModuleNotFoundError:
        raise KnowledgeError(
            "the simple-icd-10-cm package is not installed", "Install it: pip install 'simple-icd-10-cm>=1.5'"
        ) from None
    return _codes(icd, icd10cm_source(), include_extensions)


def _codes(icd: ModuleType, source: str, include_extensions: bool) -> Iterator[SourceConcept]:
    seen: set[str] = set()
    for code in icd.get_all_codes(True):
        if code in seen or (not include_extensions and icd.is_extended_subcategory(code)):
            continue
        seen.add(code)
        kind = _kind(icd, code)
        concept = SourceConcept(
            source=source,
            id=f"ICD10CM:{code}",
            name=icd.get_description(code),
            icd10cm=[code] if kind in ("category", "subcategory") else [],
            semantic_types=[f"ICD-10-CM {kind}"],
            license=LICENSE,
        )
        seen_terms = {concept.name.casefold()}
        for term in icd.get_inclusion_term(code):
            if term.casefold() not in seen_terms:
                seen_terms.add(term.casefold())
                concept.synonyms.append(term)
        # A category named like its block ("B20") has that block as its package parent: its real parent is above.
        parent = next((a for a in icd.get_ancestors(code) if a != code), None)
        if parent:
            concept.relations.append(Relation("is_a", f"ICD10CM:{parent}", icd.get_description(parent)))
        yield concept


def _kind(icd: ModuleType, code: str) -> str:
    if icd.is_chapter(code):
        return "chapter"
    if icd.is_category(code):  # before blocks: "B20" is both, and as a code it is the category
        return "category"
    if icd.is_block(code):
        return "block"
    return "subcategory"
