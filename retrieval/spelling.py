"""Spelling correction against the knowledge base's own words: "pnuemothorax" -> "pneumothorax".

A word that is neither in the base nor in an English word list is replaced by a base word one deletion away from it
on either side (this covers one inserted, dropped or changed letter and two swapped neighbours), the most frequent
such word winning. Known words are never changed, so correct text passes through untouched; the price is that a
misspelling which happens to be an English word ("plural effusion") is left to the dense search.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from vesalius.retrieval.terms import WORD, english_words

_WORD = re.compile(r"[a-z]+")
MIN_LENGTH = 5  # shorter words have too many neighbours one edit away to guess between


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


class Speller:
    def __init__(self, counts: dict[str, int]):
        self.counts = counts
        self._by_delete: dict[str, list[str]] | None = None

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Speller:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(w for w in _WORD.findall(text.lower()) if len(w) >= 3)
        return cls(dict(counts))

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.counts, separators=(",", ":")))

    @classmethod
    def load(cls, path: Path) -> Speller:
        return cls(json.loads(path.read_text()))

    def _index(self) -> dict[str, list[str]]:
        if self._by_delete is None:  # built on the first unknown word: most questions never need it
            index: dict[str, list[str]] = {}
            for word in self.counts:
                if len(word) >= MIN_LENGTH - 1:
                    for key in (word, *_deletes(word)):
                        index.setdefault(key, []).append(word)
            self._by_delete = index
        return self._by_delete

    def suggest(self, word: str) -> str | None:
        if len(word) < MIN_LENGTH or word in self.counts or not word.isalpha() or word in english_words():
            return None
        index = self._index()
        candidates = {c for key in (word, *_deletes(word)) for c in index.get(key, ())}
        candidates.discard(word)
        return max(sorted(candidates), key=lambda c: self.counts[c]) if candidates else None

    def correct(self, text: str) -> str | None:
        """The text with unknown words corrected, or None when nothing changed."""
        changed = False

        def fix(match: re.Match[str]) -> str:
            nonlocal changed
            word = match.group(0)
            suggestion = self.suggest(word.lower()) if word.isascii() and word.isalpha() else None
            if suggestion is None:
                return word
            changed = True
            return suggestion

        corrected = WORD.sub(fix, text)  # word for word, so that the words of both texts line up
        return corrected if changed else None
