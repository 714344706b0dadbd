"""The choices the command line offers (index types, search modes), named without loading FAISS or bm25s."""

from typing import Literal

Kind = Literal["flat", "hnsw_sq8", "ivf_pq_refine"]  # dense index types (vectors.plan_index)
KINDS: tuple[Kind, ...] = ("flat", "hnsw_sq8", "ivf_pq_refine")
Mode = Literal["linked", "hybrid", "dense", "lexical"]  # how KnowledgeBase.search ranks
MODES: tuple[Mode, ...] = ("linked", "hybrid", "dense", "lexical")
