"""Deterministic random draws keyed by (seed, question), independent of thread or task order.

A simulated mistake or a timing jitter is a pure function of the seed and the content of the question
(image hash, phrase, mask), so two runs with the same seed make the same mistakes on the same questions,
whichever annotator thread happens to lease the task and in whatever order tasks arrive.
"""
from __future__ import annotations

import hashlib
import math


def uniform(seed: int, *key: object) -> float:
    """A number in [0, 1) fixed by ``seed`` and ``key`` (a tuple of str/int/float)."""
    digest = hashlib.sha256(repr((int(seed),) + tuple(key)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def normal(seed: int, *key: object) -> float:
    """A standard normal draw fixed by ``seed`` and ``key`` (Box-Muller over two keyed uniforms)."""
    u1 = uniform(seed, *key, "normal-1")
    u2 = uniform(seed, *key, "normal-2")
    return math.sqrt(-2.0 * math.log(1.0 - u1)) * math.cos(2.0 * math.pi * u2)
