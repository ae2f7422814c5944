"""Building blocks for platform tests: media, a registered model, and proposals as the GPU task returns them."""
from __future__ import annotations

import numpy as np

from dataengine.annotation.proposing import PROPOSE_TASK, create_proposal_job, store_proposal_result
from dataengine.concepts.services import create_datapoints
from dataengine.engine.models import Job
from dataengine.engine.services import promote_model_version, register_model_version
from dataengine.media.services import ingest_bytes
from model import rle as rle_lib
from tests.conftest import png_bytes

WIDTH, HEIGHT = 64, 48


def image(project, name: str = "street.png", seed: int = 0):
    item, _ = ingest_bytes(project, name=name, data=png_bytes(WIDTH, HEIGHT, seed))
    return item


def box_mask(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def active_model(project, name: str = "sam3-tiny-test"):
    version = register_model_version(name=name, uri="preset:tiny")
    promote_model_version(project, version)
    project.refresh_from_db()
    return version


def propose(project, media, masks_by_phrase: dict[str, list[np.ndarray]]):
    """Create datapoints for the phrases and their job, and store a result carrying these masks (as if the GPU
    worker had returned them; no task is enqueued).

    Returns the datapoints by phrase, after routing.
    """
    if project.active_model is None:
        active_model(project)
    datapoints = create_datapoints(project, [(media, phrase) for phrase in masks_by_phrase])
    job, _, _ = create_proposal_job(project, media, datapoints)
    store_proposal_result(job.pk, proposal_result(project, job, masks_by_phrase))
    return {d.concept.phrase: type(d).objects.get(pk=d.pk) for d in datapoints}


def proposal_result(project, job: Job, masks_by_phrase: dict[str, list[np.ndarray]]) -> dict:
    proposals = []
    for phrase, masks in masks_by_phrase.items():
        instances = []
        for i, mask in enumerate(masks):
            ys, xs = np.nonzero(mask)
            instances.append({"rle": rle_lib.encode(mask), "score": 0.9 - 0.1 * i,
                              "box_xyxy": [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]})
        union = np.zeros((HEIGHT, WIDTH), bool)
        for mask in masks:
            union |= mask
        proposals.append({"phrase": phrase, "presence_score": 0.9 if masks else 0.1, "instances": instances,
                          "truncated": False, "best_beyond_cap": 0.05, "semantic_rle": rle_lib.encode(union)})
    return {"task": PROPOSE_TASK, "model_version": project.active_model.name, "media_uri": job.payload["media_uri"],
            "image_size": [HEIGHT, WIDTH], "proposals": proposals, "error": None}
