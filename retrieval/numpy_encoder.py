"""A question's embedding without torch: the BERT encoder of a sentence-transformers model, in numpy.

Embedding one short question is a few small matrix products, but loading sentence-transformers and torch to do
them costs seconds of start-up on every `vesalius ask`. This module runs the same forward pass (token, position
and type embeddings, post-norm self-attention layers with exact GELU, mean pooling over tokens, unit length) from
the model directory's own `tokenizer.json` and `model.safetensors`. It reads only what it can reproduce exactly:
a `BertModel` with absolute positions, GELU and mean pooling; for any other model `load` returns None and the
caller uses sentence-transformers. tests/test_numpy_encoder.py holds it to sentence-transformers' vectors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class _Layer:
    qkv: np.ndarray  # (hidden, 3 * hidden): query, key and value projections side by side
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


def _supported(path: Path) -> dict | None:
    """The model's config when this encoder reproduces it, else None."""
    try:
        config = json.loads((path / "config.json").read_text())
        modules = json.loads((path / "modules.json").read_text())
        pooling = next((m for m in modules if m["type"].endswith("Pooling")), None)
        pool = json.loads((path / (pooling or {}).get("path", "1_Pooling") / "config.json").read_text())
        st = json.loads((path / "sentence_bert_config.json").read_text())
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None
    mean_only = pool.get("pooling_mode_mean_tokens") and not any(
        pool.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens")
    )
    plain = [m["type"].rsplit(".", 1)[-1] for m in modules] in (
        ["Transformer", "Pooling"],
        ["Transformer", "Pooling", "Normalize"],
    )
    if not (
        config.get("architectures") == ["BertModel"]
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and mean_only
        and plain
        and (path / "model.safetensors").is_file()
        and (path / "tokenizer.json").is_file()
    ):
        return None
    return {**config, "max_seq_length": int(st.get("max_seq_length") or config["max_position_embeddings"])}


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 (Abramowitz and Stegun 7.1.26), below float32's resolution of GELU's output."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _norm(x: np.ndarray, weight_bias: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight_bias[0] + weight_bias[1]


class NumpyEncoder:
    def __init__(self, path: Path, config: dict):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(config["max_seq_length"])
        w = {k.removeprefix("bert."): v for k, v in load_file(str(path / "model.safetensors")).items()}
        self.eps = float(config["layer_norm_eps"])
        self.heads = int(config["num_attention_heads"])
        self.words = w["embeddings.word_embeddings.weight"]
        self.positions = w["embeddings.position_embeddings.weight"]
        self.type0 = w["embeddings.token_type_embeddings.weight"][0]
        self.norm0 = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{i}."
            att = p + "attention.self."
            self.layers.append(
                _Layer(
                    qkv=np.concatenate([w[att + n + ".weight"].T for n in ("query", "key", "value")], axis=1),
                    qkv_bias=np.concatenate([w[att + n + ".bias"] for n in ("query", "key", "value")]),
                    out=w[p + "attention.output.dense.weight"].T.copy(),
                    out_bias=w[p + "attention.output.dense.bias"],
                    norm1=(w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"]),
                    up=w[p + "intermediate.dense.weight"].T.copy(),
                    up_bias=w[p + "intermediate.dense.bias"],
                    down=w[p + "output.dense.weight"].T.copy(),
                    down_bias=w[p + "output.dense.bias"],
                    norm2=(w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"]),
                )
            )

    def _one(self, text: str) -> np.ndarray:
        ids = np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)
        n, hidden = len(ids), self.words.shape[1]
        head = hidden // self.heads
        x = _norm(self.words[ids] + self.positions[:n] + self.type0, self.norm0, self.eps)
        for layer in self.layers:
            q, k, v = np.split(x @ layer.qkv + layer.qkv_bias, 3, axis=1)
            q, k, v = (m.reshape(n, self.heads, head).transpose(1, 0, 2) for m in (q, k, v))
            scores = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(head))
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = (scores / scores.sum(-1, keepdims=True)) @ v
            x = _norm(
                context.transpose(1, 0, 2).reshape(n, hidden) @ layer.out + layer.out_bias + x, layer.norm1, self.eps
            )
            up = x @ layer.up + layer.up_bias
            up = 0.5 * up * (1.0 + _erf(up / np.float32(np.sqrt(2.0))))
            x = _norm(up.astype(np.float32) @ layer.down + layer.down_bias + x, layer.norm2, self.eps)
        pooled = x.mean(0)
        return pooled / max(float(np.linalg.norm(pooled)), 1e-12)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length embeddings, one row per text (each text alone: no padding to agree with)."""
        from threadpoolctl import threadpool_limits

        # Matrices this small run fastest on one thread; BLAS threads waiting on a busy machine cost 20x.
        with threadpool_limits(1, user_api="blas"):
            return np.stack([self._one(t) for t in texts]).astype(np.float32)


def load(path: Path) -> NumpyEncoder | None:
    config = _supported(path)
    return NumpyEncoder(path, config) if config else None
