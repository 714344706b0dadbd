"""Identifiers as CURIEs with one spelling per namespace, whichever spelling a source used.

Sources spell the same namespace many ways ("UMLS_CUI:", "UMLS:"; "MeSH:", "mesh:", "MSH:"; "SNOMEDCT_US_2023_03_01:",
"SCTID:"). The builder matches identifiers by string, so every loader writes them through `normalise_curie`.
"""

from __future__ import annotations

import re

# Lower-cased prefix -> the spelling the knowledge base uses (OBO Foundry / bioregistry style where one exists).
_CANONICAL = {
    "umls": "UMLS",
    "umls_cui": "UMLS",
    "sctid": "SCTID",
    "snomed": "SCTID",
    "snomedct": "SCTID",
    "snomedct_us": "SCTID",
    "mesh": "MESH",
    "msh": "MESH",
    "nci": "NCIT",
    "ncit": "NCIT",
    "icd10cm": "ICD10CM",
    "icd9cm": "ICD9CM",
    "icd10": "ICD10",
    "icd-10": "ICD10",
    "icd9": "ICD9",
    "icd-9": "ICD9",
    "icdo": "ICDO",
    "icd-o": "ICDO",
    "omim": "OMIM",
    "mim": "OMIM",
    "ordo": "Orphanet",
    "orphanet": "Orphanet",
    "doid": "DOID",
    "hp": "HP",
    "mondo": "MONDO",
    "efo": "EFO",
    "gard": "GARD",
    "meddra": "MEDDRA",
    "kegg": "KEGG",
    "pmid": "PMID",
    "doi": "DOI",
}
# SNOMED CT xrefs in OBO files carry the edition date in the prefix: "SNOMEDCT_US_2023_03_01:266391003".
_DATED_SNOMED = re.compile(r"snomedct(_[a-z]+)?(_\d{4}_\d{2}_\d{2})?")
_CURIE = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*:[^\s:][^\s]*")
_CUI = re.compile(r"C\d{7}")
URL_PREFIXES = frozenset({"http", "https", "url", "ftp"})


def is_curie(text: str) -> bool:
    """`prefix:local` with no spaces: what SSSOM and OBO call a CURIE (URLs are not)."""
    return bool(_CURIE.fullmatch(text)) and text.split(":", 1)[0].lower() not in URL_PREFIXES


def canonical_prefix(prefix: str) -> str:
    key = prefix.lower()
    if key in _CANONICAL:
        return _CANONICAL[key]
    if _DATED_SNOMED.fullmatch(key):
        return "SCTID"
    return prefix


def normalise_curie(curie: str) -> str:
    """Rewrite the prefix to its canonical spelling; the local part is kept as written."""
    prefix, sep, local = curie.partition(":")
    return f"{canonical_prefix(prefix)}:{local}" if sep else curie


def is_cui(text: str) -> bool:
    return bool(_CUI.fullmatch(text))
