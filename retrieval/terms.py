"""How terms are compared: one normal form for names, synonyms and the words of a question."""

from __future__ import annotations

import functools
import re
import unicodedata
from functools import cache

WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)?")  # what counts as a word everywhere: spans, spelling, links
_APOSTROPHES = re.compile(r"['\u2019`]")
_NON_WORD = re.compile(r"[^0-9a-z]+")
MAX_TERM_WORDS = 10  # longer names are never typed out verbatim in a question


@functools.cache
def stopwords() -> frozenset[str]:
    """The words BM25 ignores ("is", "there", "a"); bm25s loads only when text is searched."""
    from bm25s.stopwords import STOPWORDS_EN_PLUS

    return frozenset(STOPWORDS_EN_PLUS)


def normalize(text: str) -> str:
    """Lower case, no accents, apostrophes dropped ("Crohn's" = "crohns"), other punctuation a space."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _APOSTROPHES.sub("", text.lower())
    return _NON_WORD.sub(" ", text).strip()


def is_abbreviation(term: str) -> bool:
    """All capitals and short: "PTX", "COPD", "T2DM"."""
    letters = [ch for ch in term if ch.isalpha()]
    return 2 <= len(term) <= 6 and bool(letters) and all(ch.isupper() for ch in letters) and " " not in term


def needs_capitals(term: str) -> bool:
    """Two- and three-letter abbreviations match only when written in capitals: "PE", not the "pe" of a typo; so do
    longer ones that spell an English word: "AIDS", not the "aids" of "hearing aids"."""
    if not is_abbreviation(term):
        return False
    norm = normalize(term)
    return len(norm) <= 3 or (norm.isalpha() and norm in english_words())


@cache
def english_words() -> frozenset[str]:
    """pyspellchecker's English word list (MIT, 160k words), loaded once per process on first use: by the capitals
    rule for long abbreviations and by spelling correction ("whats" must not become "warts")."""
    from spellchecker import SpellChecker

    return frozenset(SpellChecker(language="en", distance=1).word_frequency.keys())


def linkable(term: str) -> bool:
    """Terms worth finding verbatim in free text: very short lower-case words are mostly noise ("ab", "no")."""
    norm = normalize(term)
    return bool(norm) and (len(norm) >= 3 or is_abbreviation(term)) and len(norm.split()) <= MAX_TERM_WORDS


def word_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in WORD.finditer(text)]


def spans(text: str, max_words: int = MAX_TERM_WORDS) -> list[tuple[int, int, str]]:
    """Every run of up to `max_words` words, as (start, end) character offsets and its normal form."""
    words = word_spans(text)
    out = []
    for i in range(len(words)):
        for j in range(i, min(len(words), i + max_words)):
            start, end = words[i][0], words[j][1]
            out.append((start, end, normalize(text[start:end])))
    return out
