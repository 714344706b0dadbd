"""Spelling correction against the knowledge base's own words: "pnuemothorax" -> "pneumothorax".

A word that is neither in the base nor in an English word list is replaced by a base word within one edit of it (one
inserted, dropped or changed letter, or two swapped neighbours), or two edits for words of six letters or more ("chrons"
-> "crohns"), or three for a word that sounds the same or nearly ("kiari" -> "chiari"). Candidates are found by deletions (one on
the base's side, up to two on the typed side) and by a rough spoken form; they rank by edit distance plus the distance
of their spoken forms, then by how often the base uses them. `corrections` offers the runner-up readings too, so that the search
can keep the one that names a concept: "asites" is one edit from both "sites" and "ascites". Known words are never
changed, so correct text passes through untouched; the price is that a misspelling which happens to be an English word
("plural effusion") is left to the dense search.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vesalius.retrieval.terms import WORD, english_words

_WORD = re.compile(r"[a-z]+")
MIN_LENGTH = 5  # shorter words have too many neighbours one edit away to guess between
MAX_LENGTH = 50  # a longer run of letters is no misspelt term (its deletions would grow as n squared)
TWO_EDITS_FROM = 6  # and words shorter than this too many two edits away
SOUNDS_ALIKE = 3  # edits allowed to a word that sounds (almost) the same: "chrons" -> "crohn" is three
READINGS = 5  # suggestions kept per word for `corrections`


def _table_path(words: Path) -> Path:
    return words.with_name(words.stem + ".table.npz")


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}


_SOUNDS = [("ae", "e"), ("oe", "e"), ("ph", "f"), ("ch", "k"), ("sh", "s"), ("th", "t"), ("gh", "g"), ("rh", "r")]
_SOUNDS += [("ck", "k"), ("c", "k"), ("x", "ks"), ("q", "k"), ("z", "s"), ("y", "i")]


def sound(word: str) -> str:
    """A rough spoken form: letters that are often confused because they sound alike are made equal ("excema" and
    "eczema" are both "eksema", "kiari" and "chiari" both "kiari"), silent h dropped and doubled letters halved."""
    word = re.sub(r"c(?=[eiy])", "s", word)
    for written, said in _SOUNDS:
        word = word.replace(written, said)
    word = word[:1] + word[1:].replace("h", "")
    return re.sub(r"(.)\1+", r"\1", word)


def edit_distance(a: str, b: str) -> int:
    """Optimal string alignment distance: insertions, deletions, substitutions and adjacent transpositions."""
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = a[i - 1] != b[j - 1]
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return previous[-1]


def _hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "little", signed=True)


class _Table:
    """Lookup keys (a word, a deletion of it, its spoken form or a deletion of that) -> vocabulary positions, as two
    sorted arrays: saved with the base and memory-mapped, so that a search process does not rebuild it (a second of
    work over a default base's 31,000 words). A hash collision only adds a candidate that the edit distance drops."""

    def __init__(self, keys: np.ndarray, words: np.ndarray):
        self.keys, self.words = keys, words

    @classmethod
    def build(cls, vocabulary: list[str]) -> _Table:
        keys: list[int] = []
        words: list[int] = []
        for position, word in enumerate(vocabulary):
            if len(word) >= MIN_LENGTH - 1:
                said = sound(word)
                found = {f"={k}" for k in (word, *_deletes(word))} | {f"~{k}" for k in (said, *_deletes(said))}
                keys += [_hash(k) for k in found]
                words += [position] * len(found)
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        return cls(np.array(keys, dtype=np.int64)[order], np.array(words, dtype=np.int32)[order])

    def get(self, keys: Iterable[str]) -> set[int]:
        hashes = np.array([_hash(k) for k in keys], dtype=np.int64)
        first = np.searchsorted(self.keys, hashes, "left")
        last = np.searchsorted(self.keys, hashes, "right")
        return {int(p) for a, b in zip(first, last) for p in self.words[a:b]}


class Speller:
    def __init__(self, counts: dict[str, int], table: _Table | None = None):
        self.counts = counts
        self.vocabulary = list(counts)  # positions in the table
        self._table = table

    @classmethod
    def from_texts(cls, texts: Iterable[str]) -> Speller:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(w for w in _WORD.findall(text.lower()) if len(w) >= 3)
        return cls(dict(counts))

    def save(self, path: Path) -> None:
        """The word counts as JSON at `path` and the lookup table beside it (`<name>.table.npz`)."""
        path.write_text(json.dumps(self.counts, separators=(",", ":")))
        table = self._lookup()
        with _table_path(path).open("wb") as f:
            np.savez(f, keys=table.keys, words=table.words)

    @classmethod
    def load(cls, path: Path) -> Speller:
        counts = json.loads(path.read_text())
        table = None
        if _table_path(path).exists():  # bases built before the table existed build it on first use
            try:
                with np.load(_table_path(path)) as saved:
                    table = _Table(saved["keys"], saved["words"])
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
                raise ValueError(f"{_table_path(path)} is damaged ({exc})") from exc
            if table.words.size and int(table.words.max()) >= len(counts):
                raise ValueError(f"{_table_path(path)} does not match {path.name}")
        return cls(counts, table)

    def _lookup(self) -> _Table:
        if self._table is None:
            self._table = _Table.build(self.vocabulary)
        return self._table

    def suggestions(self, word: str, limit: int = READINGS) -> list[str]:
        """Base words the typed word may have meant, most likely first; none for a word the base or English knows."""
        if (
            not MIN_LENGTH <= len(word) <= MAX_LENGTH
            or word in self.counts
            or not word.isalpha()
            or word in english_words()
        ):
            return []
        most = 2 if len(word) >= TWO_EDITS_FROM else 1
        typed = {word, *_deletes(word)}
        if most == 2:
            typed |= {twice for once in _deletes(word) for twice in _deletes(once)}
        said = sound(word)
        keys = [f"={k}" for k in typed] + [f"~{k}" for k in (said, *_deletes(said))]
        ranked = []
        for candidate in {self.vocabulary[p] for p in self._lookup().get(keys)}:
            distance, heard = edit_distance(word, candidate), edit_distance(said, sound(candidate))
            if 0 < distance <= most or (heard <= 1 and distance <= SOUNDS_ALIKE):
                # Spelling by ear is the common mistake: of two words as many edits away, the one that sounds like
                # what was typed first ("cirosis" -> "cirrhosis", not "miosis").
                ranked.append((distance + heard, -self.counts[candidate], candidate))
        return [candidate for *_, candidate in sorted(ranked)[:limit]]

    def suggest(self, word: str) -> str | None:
        found = self.suggestions(word, 1)
        return found[0] if found else None

    def corrections(self, text: str, limit: int = 1 + 2 * READINGS) -> list[str]:
        """Readings of the text with unknown words corrected, the likeliest first: every word's first suggestion,
        then each word in turn taking its next one. Empty when nothing needs correcting.

        Correction is word for word, so the n-th word of a reading is the n-th word of the text."""
        words = list(WORD.finditer(text))
        options = [
            self.suggestions(m.group(0).lower()) if m.group(0).isascii() and m.group(0).isalpha() else [] for m in words
        ]
        if not any(options):
            return []

        def reading(choice: dict[int, str]) -> str:
            parts, last = [], 0
            for i, m in enumerate(words):
                if options[i]:
                    parts += [text[last : m.start()], choice.get(i, options[i][0])]
                    last = m.end()
            return "".join([*parts, text[last:]])

        readings = [reading({})]
        for i, suggestions in enumerate(options):
            readings += [reading({i: other}) for other in suggestions[1:]]
        return readings[:limit]

    def correct(self, text: str) -> str | None:
        """The text with unknown words corrected by their first suggestion, or None when nothing changed."""
        readings = self.corrections(text, 1)
        return readings[0] if readings else None
