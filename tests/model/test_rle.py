"""model.rle: the vectorised counts walk agrees with the pure-Python reference on real and corrupt counts."""
from __future__ import annotations

import numpy as np
import pytest

from model import rle


def _outcome(fn, counts: bytes):
    try:
        return fn(counts)
    except rle.InvalidRLE as exc:
        return f"error: {exc}"


def _masks():
    rng = np.random.default_rng(0)
    yield np.zeros((7, 5), bool)
    yield np.ones((7, 5), bool)
    yield rng.random((48, 64)) > 0.5  # many short runs, negative deltas
    big = np.zeros((480, 640), bool)
    big[100:300, 50:600] = True
    yield big
    yield rng.random((480, 640)) > 0.97


def test_valid_masks_give_their_pixel_count_both_ways():
    for mask in _masks():
        encoded = rle.encode(mask)
        counts = encoded["counts"].encode("ascii")
        assert rle._run_total(counts) == rle._run_total_python(counts) == mask.size
        assert rle.validate(encoded, size=mask.shape) == encoded


def test_corrupt_counts_fail_exactly_like_the_reference():
    rng = np.random.default_rng(1)
    samples = [b"", b"0", b"o", b"!!!", b"0123", b"zz", b"x", b"ooooooo", b"oooooooo1", b"0" * 20 + b"o",
               b"1O" * 3, b"\x7f", b"0a"]
    real = [rle.encode(mask)["counts"].encode("ascii") for mask in _masks()]
    for counts in real:
        samples += [counts[:-1], counts + b"o", counts[: len(counts) // 2]]
        for _ in range(20):  # random single-character corruptions, alphabet and not
            chars = bytearray(counts)
            chars[int(rng.integers(len(chars)))] = int(rng.integers(40, 120))
            samples.append(bytes(chars))
    samples += [bytes(rng.integers(48, 112, size=int(n)).astype(np.uint8)) for n in rng.integers(1, 60, 200)]
    for counts in samples:
        assert _outcome(rle._run_total, counts) == _outcome(rle._run_total_python, counts), counts


def test_numbers_too_long_for_int64_take_the_exact_path():
    counts = b"o" * 30 + b"0"  # one 31-character number: far beyond 64 bits
    assert _outcome(rle._run_total, counts) == _outcome(rle._run_total_python, counts)
    with pytest.raises(rle.InvalidRLE, match="pixels"):
        rle.validate({"size": [4, 4], "counts": "_" * 12 + "0"}, size=(4, 4))


def test_share_inside_is_the_part_of_each_mask_covered_by_the_union_of_the_others():
    def box(x0, x1):
        mask = np.zeros((10, 20), bool)
        mask[:, x0:x1] = True
        return rle.encode(mask)

    # [0, 10) lies fully inside [0, 5) ∪ [5, 10); [5, 15) half inside [0, 10); [15, 20) not at all.
    shares = rle.share_inside([box(0, 10), box(5, 15), box(15, 20)], [box(0, 5), box(5, 10)])
    assert shares.tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert rle.share_inside([box(0, 10)], []).tolist() == [0.0] and rle.share_inside([], [box(0, 5)]).shape == (0,)
