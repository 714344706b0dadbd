"""BM25 over one document per concept (its names, synonyms and first definition), with English stemming."""

from __future__ import annotations

import logging
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from vesalius.retrieval.concepts import Concept
from vesalius.retrieval.errors import KnowledgeError
from vesalius.retrieval.spelling import Speller

MAX_SYNONYMS = 30  # UMLS concepts can carry hundreds of strings; the first ones are the useful ones


def concept_document(c: Concept) -> str:
    definition = c.definitions[0].text if c.definitions else ""
    # The name twice: a query that names the concept should beat one that only shares definition words.
    return " ".join([c.preferred_name, c.preferred_name, *c.synonyms[:MAX_SYNONYMS], definition])


class LexicalIndex:
    """BM25 and the speller over the same words: a misspelt query word is corrected to a word the index holds."""

    def __init__(self, retriever: bm25s.BM25, speller: Speller):
        self.retriever = retriever
        self.speller = speller
        self.stemmer = Stemmer.Stemmer("english")

    @classmethod
    def build(cls, documents: list[str], progress: bool = False) -> LexicalIndex:
        stemmer = Stemmer.Stemmer("english")
        tokens = bm25s.tokenize(documents, stopwords="en", stemmer=stemmer, show_progress=progress)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=progress)
        return cls(retriever, Speller.from_texts(documents))

    def save(self, directory: Path) -> None:
        self.retriever.save(str(directory), show_progress=False)
        self.speller.save(directory / "words.json")

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        logging.getLogger("bm25s").setLevel(logging.ERROR)
        try:
            retriever = bm25s.BM25.load(str(directory), mmap=True, show_progress=False)
            return cls(retriever, Speller.load(directory / "words.json"))
        except (OSError, ValueError, KeyError) as exc:
            raise KnowledgeError(
                f"the lexical index in {directory} is missing or damaged ({exc})",
                "Rebuild the knowledge base with `vesalius kb build --force`",
            ) from exc

    def search(self, text: str, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions, BM25 scores), best first; empty when no query word is in the vocabulary."""
        tokens = bm25s.tokenize([text], stopwords="en", stemmer=self.stemmer, return_ids=False, show_progress=False)
        if not tokens[0]:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        n = self.retriever.scores["num_docs"]
        ids, scores = self.retriever.retrieve(tokens, k=min(k, n), show_progress=False, n_threads=1)
        keep = scores[0] > 0
        return ids[0][keep].astype(np.int64), scores[0][keep]
