"""Development splits that every part of Vesalius draws the same way: a model trained without its development part
(`vesalius train`) and an evaluation of that part (`vesalius eval run --split dev`) agree on which items it holds.

An item goes to the development part when a hash of its key and the seed falls below the fraction: stable across
processes and machines, and independent of item order and of which other items are present. Key by image for an
honest number on new images, by question for one that resembles VQA-RAD's official split (whose test images also
appear in train).
"""

from __future__ import annotations

import hashlib

DEV_FRACTION, SEED = 0.2, 0


def dev_share(key: str, seed: int = SEED) -> float:
    # sha256 rather than hash(): Python salts str hashes per process, and the split must not change between runs.
    digest = hashlib.sha256(f"{seed}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_dev(key: str, fraction: float = DEV_FRACTION, seed: int = SEED) -> bool:
    return dev_share(key, seed) < fraction
