"""Errors the verifiers raise for inputs they cannot judge (callers route such items to a human)."""
from __future__ import annotations


class VerifierInputError(ValueError):
    """An input the verifier refuses: an empty mask, a mask whose size differs from the image, a phrase that
    does not fit the model's context, an unknown option. The message says which."""


class VerifierModelError(RuntimeError):
    """A verifier checkpoint that cannot be used: unreachable, incomplete, tampered with, or inconsistent."""
