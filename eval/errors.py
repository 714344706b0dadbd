"""Errors the evaluation data loaders raise: a benchmark file or item that cannot be used, and what to do about it."""

from __future__ import annotations

from vesalius.errors import VesaliusError


class BenchmarkError(VesaliusError):
    """A benchmark file, folder or item that cannot be loaded. The problem names the file and, for one bad item,
    the item (line number, qid or key); the remedy says what to change."""


class ItemProblem(ValueError):
    """One item is unusable, for the reason in the message. Loaders raise it while building an item; the collector
    turns it into a `BenchmarkError` naming file and item, or, with skip_bad, into a skipped entry. It never leaves
    the loaders."""
