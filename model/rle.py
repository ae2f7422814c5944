"""COCO compressed RLE: the one mask format used everywhere (database, API, exports, workers).

An RLE is a dict ``{"size": [height, width], "counts": str}`` with pycocotools' compressed counts.
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np
from pycocotools import mask as mask_utils

# pycocotools' area() overflows on lists of >= 256 RLEs under numpy 2 (docs: infrastructure).
_AREA_CHUNK = 255


class InvalidRLE(ValueError):
    """A mask that is not a well-formed COCO compressed RLE (or does not fit its image)."""


def encode(mask: np.ndarray) -> dict:
    """Encode a boolean/0-1 array of shape (H, W) as compressed RLE with str counts."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("ascii")}


def _native(rle: dict) -> dict:
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}


def decode(rle: dict) -> np.ndarray:
    """Decode to a boolean array of shape (H, W)."""
    return mask_utils.decode(_native(rle)).astype(bool)


def validate(rle: Any, *, size: tuple[int, int] | None = None) -> dict:
    """Check that ``rle`` is a decodable compressed RLE, optionally of image size (height, width).

    Returns it normalised (str counts, int size). Raises InvalidRLE with a message a user can act on.
    """
    if not isinstance(rle, dict) or set(rle) != {"size", "counts"}:
        raise InvalidRLE('an RLE must be an object with exactly the keys "size" and "counts"')
    shape = rle["size"]
    if (
        not isinstance(shape, (list, tuple))
        or len(shape) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)
    ):
        raise InvalidRLE('"size" must be [height, width] with positive integers')
    if not isinstance(rle["counts"], str) or not rle["counts"]:
        raise InvalidRLE('"counts" must be a non-empty compressed RLE string (COCO format)')
    if size is not None and tuple(shape) != tuple(size):
        raise InvalidRLE(f'"size" {list(shape)} does not match the image size {list(size)} (height, width)')
    normalised = {"size": [int(shape[0]), int(shape[1])], "counts": rle["counts"]}
    try:
        counts = rle["counts"].encode("ascii")
    except UnicodeEncodeError as exc:
        raise InvalidRLE('"counts" must be ASCII') from exc
    total = _run_total(counts)
    if total != shape[0] * shape[1]:
        raise InvalidRLE(f'"counts" covers {total} pixels but size {list(shape)} has {shape[0] * shape[1]}')
    return normalised


# The vectorised walk keeps every intermediate in int64: at most 7 characters (35 bits) per number and fewer
# than 2**26 numbers, so a run (a sum of deltas) stays below 2**61. Anything else takes the exact Python walk.
_FAST_MAX_CHARS_PER_NUMBER = 7
_FAST_MAX_NUMBERS = 1 << 26


def _run_total(counts: bytes) -> int:
    """Sum of run lengths in a compressed counts string (pycocotools' rleFrString, vectorised with numpy).

    Raises InvalidRLE for a character outside the alphabet, a number cut off at the end or a negative run,
    exactly as ``_run_total_python`` does (the same checks in the same order), in microseconds for a real mask.
    """
    chars = np.frombuffer(counts, dtype=np.uint8)
    # Every character of compressed counts lies in 48..111 ('0'..'o'); anything else is corruption.
    if not chars.size:
        return 0
    if chars.min() < 48 or chars.max() > 111:
        raise InvalidRLE('"counts" contains characters outside the compressed RLE alphabet')
    values = chars.astype(np.int64) - 48
    ends = np.flatnonzero((values & 0x20) == 0)  # the last character of each number
    complete = int(ends[-1]) + 1 if ends.size else 0
    starts = np.empty_like(ends)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if ends.size >= _FAST_MAX_NUMBERS or (ends.size and int(lengths.max()) > _FAST_MAX_CHARS_PER_NUMBER):
        return _run_total_python(counts)
    if ends.size:
        # Position of each character inside its number: 5 more bits per position.
        position = np.arange(complete, dtype=np.int64) - np.repeat(starts, lengths)
        numbers = np.add.reduceat((values[:complete] & 0x1F) << (5 * position), starts)
        negative = (values[ends] & 0x10) != 0  # sign-extend from the last character's bit 4
        numbers[negative] -= np.left_shift(np.int64(1), 5 * lengths[negative])
        # Runs after the first two are stored as differences to the run two back: a running sum along each parity.
        runs = numbers.copy()
        for first in (1, 2):
            runs[first::2] = np.cumsum(numbers[first::2])
        if runs.min() < 0:
            raise InvalidRLE('"counts" has a negative run length')
    if complete != len(counts):
        raise InvalidRLE('"counts" ends in the middle of a number')
    if not ends.size:
        return 0
    if int(runs.max()) < (1 << 62) // runs.size:
        return int(runs.sum())
    return sum(runs.tolist())  # exact Python ints where the int64 sum could overflow


def _run_total_python(counts: bytes) -> int:
    """Sum of run lengths in a compressed counts string (pycocotools' rleFrString, in Python): the reference
    for ``_run_total`` and its path for numbers too long for int64."""
    if any(c < 48 or c > 111 for c in counts):
        raise InvalidRLE('"counts" contains characters outside the compressed RLE alphabet')
    runs: list[int] = []
    p, n = 0, len(counts)
    while p < n:
        x, k, more = 0, 0, True
        while more:
            if p >= n:
                raise InvalidRLE('"counts" ends in the middle of a number')
            c = counts[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and (c & 0x10):
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]  # runs after the first two are stored as differences to the run two back
        if x < 0:
            raise InvalidRLE('"counts" has a negative run length')
        runs.append(x)
    return sum(runs)


def area(rles: Iterable[dict]) -> list[int]:
    """Pixel area of each RLE."""
    native = [_native(r) for r in rles]
    out: list[int] = []
    for start in range(0, len(native), _AREA_CHUNK):
        out.extend(int(a) for a in mask_utils.area(native[start : start + _AREA_CHUNK]))
    return out


def bbox_xywh(rle: dict) -> list[float]:
    """Tight box [x, y, w, h] in pixels."""
    return [float(v) for v in mask_utils.toBbox(_native(rle))]


def bbox_xywh_many(rles: list[dict]) -> list[list[float]]:
    """Tight box [x, y, w, h] in pixels of each RLE (one pycocotools call)."""
    if not rles:
        return []
    return [[float(v) for v in box] for box in mask_utils.toBbox([_native(r) for r in rles])]


def iou(detections: list[dict], ground_truth: list[dict], iscrowd: list[int] | None = None) -> np.ndarray:
    """IoU matrix of shape (len(detections), len(ground_truth)) without sorting (as the SA-Co evaluator)."""
    if not detections or not ground_truth:
        return np.zeros((len(detections), len(ground_truth)))
    crowd = iscrowd if iscrowd is not None else [0] * len(ground_truth)
    return np.asarray(mask_utils.iou([_native(d) for d in detections], [_native(g) for g in ground_truth], crowd))


def share_inside(rles: list[dict], container: list[dict]) -> np.ndarray:
    """The share of each mask's area that lies inside the union of ``container`` (0 with no container): COCO's IoU
    against a crowd region is intersection over the detection's area."""
    if not rles or not container:
        return np.zeros(len(rles))
    return iou(rles, [merge(container)], iscrowd=[1])[:, 0]


def merge(rles: list[dict]) -> dict:
    """Union of several RLEs of one size."""
    merged = mask_utils.merge([_native(r) for r in rles], intersect=False)
    return {"size": [int(merged["size"][0]), int(merged["size"][1])], "counts": merged["counts"].decode("ascii")}
