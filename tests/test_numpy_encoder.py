"""The torch-free question encoder gives sentence-transformers' vectors (the index is built with the latter)."""

import numpy as np
import pytest

from vesalius.retrieval.embedder import Embedder
from vesalius.retrieval.numpy_encoder import load

TEXTS = [
    "Is there a pleural effusion on this CT?",
    "water on the brain",
    "PTX",
    "Crohn's disease with an abscess, and what does it mean for my mother?",
    "épanchement pleural",
    "What is the attenuation of the tissue? " * 60,  # longer than the model's 256 tokens: truncated alike
    "x",
]


def test_numpy_vectors_match_sentence_transformers():
    embedder = Embedder()
    small = load(embedder.model_path)
    assert small is not None, "the default model is one the numpy encoder reads"
    ours = small.encode(TEXTS)
    theirs = embedder._model.encode(TEXTS, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    assert ours.dtype == np.float32 and ours.shape == theirs.shape
    assert np.abs(ours - theirs).max() < 1e-5
    assert (ours * theirs).sum(axis=1).min() > 0.99999


def test_a_model_it_cannot_reproduce_is_left_to_sentence_transformers(tmp_path):
    embedder = Embedder()
    for name in ("config.json", "modules.json", "sentence_bert_config.json", "tokenizer.json"):
        (tmp_path / name).write_bytes((embedder.model_path / name).read_bytes())
    (tmp_path / "1_Pooling").mkdir()
    pooling = (embedder.model_path / "1_Pooling" / "config.json").read_text()
    (tmp_path / "1_Pooling" / "config.json").write_text(
        pooling.replace('"pooling_mode_cls_token": false', '"pooling_mode_cls_token": true')
    )
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert load(tmp_path) is None  # CLS pooling: not what this encoder computes


@pytest.mark.parametrize("count", [1, 16])
def test_the_embedder_uses_it_for_a_few_texts(count):
    embedder = Embedder()
    vectors = embedder.encode(TEXTS[:1] * count)
    assert vectors.shape == (count, 384)
    assert "_model" not in embedder.__dict__  # sentence-transformers was not loaded
