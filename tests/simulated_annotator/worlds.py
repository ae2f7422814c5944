"""Hand-made worlds for the simulated annotator tests: rectangles on small images, no files, no HTTP."""
from __future__ import annotations

import numpy as np

from model import rle
from simulated_annotator.ground_truth import GroundTruthPair

SIZE = 40  # images are SIZE x SIZE


def box(x0: int, y0: int, x1: int, y1: int, size: int = SIZE) -> dict:
    """An RLE of the rectangle [x0, x1) x [y0, y1)."""
    mask = np.zeros((size, size), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return rle.encode(mask)


def pair(image_id: int, phrase: str, instances=(), *, sha: str = "img-a", crowd=None, kind=None) -> GroundTruthPair:
    instances = tuple(instances)
    return GroundTruthPair(
        image_id=image_id, file_name=f"images/{sha}.png", sha256=sha, phrase=phrase,
        phrase_kind=kind or ("positive" if instances else "absent"), width=SIZE, height=SIZE,
        instances=instances, iscrowd=tuple(crowd) if crowd is not None else (False,) * len(instances),
    )


def task(kind: str, gt_pair: GroundTruthPair, *, mask: dict | None = None, masks=(), candidates=(), task_id: int = 1,
         revision: int = 3) -> dict:
    """A task dict shaped like the API's (masks given as RLEs get ids 101, 102, ..., rejected ``candidates``
    201, 202, ...)."""
    accepted = [{"id": 101 + i, "rle": m, "bbox": rle.bbox_xywh(m), "iscrowd": False, "score": 0.9,
                 "source": "model", "state": "accepted"} for i, m in enumerate(masks)]
    rejected = [{"id": 201 + i, "rle": m, "bbox": rle.bbox_xywh(m), "iscrowd": False, "score": 0.5,
                 "source": "model", "state": "rejected"} for i, m in enumerate(candidates)]
    return {
        "id": task_id, "kind": kind, "project": 1, "lease_token": 7, "lease_expires_at": None,
        "datapoint": {"id": gt_pair.image_id, "phrase": gt_pair.phrase, "revision": revision, "state": kind,
                      "media": {"id": 1, "name": gt_pair.file_name.split("/")[-1], "sha256": gt_pair.sha256,
                                "width": SIZE, "height": SIZE, "file_url": "/api/media/1/file"}},
        "mask": None if mask is None else {"id": 100, "rle": mask, "bbox": rle.bbox_xywh(mask), "iscrowd": False,
                                           "score": 0.9, "source": "model", "state": "proposed"},
        "masks": accepted,
        "candidates": rejected,
    }


# Image "img-a": two red squares and a strip of grass (a group mask).
RED_A = box(2, 2, 12, 12)     # 100 px
RED_B = box(20, 20, 30, 30)   # 100 px
CROWD = box(0, 32, 40, 40)    # a group region
