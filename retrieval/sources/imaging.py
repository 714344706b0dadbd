"""The project's imaging knowledge file as source records."""

from __future__ import annotations

from collections.abc import Iterator

from vesalius.retrieval.concepts import KnowledgeFile
from vesalius.retrieval.records import Definition, SourceConcept


def imaging_records(kb: KnowledgeFile) -> Iterator[SourceConcept]:
    for c in kb.concepts:
        yield SourceConcept(
            source=kb.source,
            id=f"VESALIUS:{c.id}",
            name=c.preferred_name,
            synonyms=list(c.synonyms),
            umls_cuis=[c.umls_cui] if c.umls_cui else [],
            snomed_ct=[c.snomed_ct] if c.snomed_ct else [],
            icd10cm=list(c.icd10cm),
            semantic_types=[c.semantic_type],
            definitions=[Definition(c.definition, kb.source)],
            license=kb.license,
            plain_language=c.plain_language,
            appearance=dict(c.appearance),
            urgency=c.urgency,
            modalities=list(c.modalities),
            body_regions=list(c.body_regions),
            code_sources=dict(c.code_sources),
        )
