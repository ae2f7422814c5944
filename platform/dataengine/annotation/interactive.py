"""Click-to-segment for the annotator UI: points and a box on one image -> one mask (SAM 3's tracker, PVS).

Which tracker: the request's ``model_version`` (any registered, non-retired SAM 3 version) or the project's
active model; the version's manifest names its tracker checkpoint under ``tracker_uri``. Without one (no
active model, or a manifest without the key) the random-weight ``preset:tiny-tracker`` answers: the demo and
tests work, the masks mean nothing until a tracker checkpoint is trained and registered.

Where it runs (``click_mode``), chosen once per request from the Celery app's configuration:
- ``in-process``: no broker (the embedded default, tasks eager) or a broker without a result backend. The web
  process runs ``workers.interactive.segment_click_for`` itself and keeps its own embedding cache. Without a
  result backend the view could not read the answer back, and a click is only worth doing while the user
  waits, so it is computed here rather than fired into the queue. This loads torch in the web process.
- ``queue``: a broker and a result backend (``CELERY_RESULT_BACKEND``). The task goes to its queue
  (``interactive``, or ``gpu`` until that route exists) and the view blocks for at most
  CLICK_TIMEOUT_SECONDS; the message expires at the same time, so a click nobody waits for anymore is
  dropped by the worker instead of computed. Successive clicks on one image reuse the worker's embedding
  cache only when they reach the same worker process: one interactive worker per GPU makes that the rule.

Successful clicks leave no rows (they are interactive, not background jobs; the UI submits the final masks as a
correction). A failed click (bad media, a tracker that does not load, input the worker refuses) is recorded on a
FAILED Job row keyed by its inputs, like any failed job, and answered with its error.
"""
from __future__ import annotations

import math
from typing import Any

from django.db.models import F

from dataengine.accounts.services import WORKERS, access_project
from dataengine.engine.models import Job, JobState, ModelKind, ModelStatus, ModelVersion
from dataengine.engine.services import get_or_create_job
from dataengine.errors import Conflict, DomainError, InvalidInput, NotFound
from dataengine.media.models import MediaItem, MediaKind, MediaStatus
from dataengine.media.storage import media_uri
from workers.interactive import DEFAULT_TRACKER_URI, TASK_NAME

CLICK_TIMEOUT_SECONDS = 20
TRACKER_MANIFEST_KEY = "tracker_uri"


class ClickFailed(DomainError):
    """The media could not be read for this click (corrupt, missing, storage unreachable)."""

    status, code = 422, "media_error"


class ModelUnavailable(DomainError):
    status, code = 503, "model_unavailable"


class ClickTimeout(DomainError):
    status, code = 504, "timeout"


def click_mode() -> str:
    """``in-process`` or ``queue`` (see the module docstring)."""
    from workers.app import app

    if app.conf.task_always_eager or not app.conf.result_backend:
        return "in-process"
    return "queue"


def choose_tracker(project, model_version: str | None = None) -> tuple[ModelVersion | None, str]:
    """The model version a click answers for (None: the project has no active model) and its tracker URI."""
    if model_version:
        version = ModelVersion.objects.filter(name=model_version).first()
        if version is None:
            raise InvalidInput(f"unknown model_version {model_version!r}")
        if version.kind != ModelKind.SAM3:
            raise InvalidInput(f"model_version {model_version!r} is a {version.kind} model, not SAM 3")
        if version.status == ModelStatus.RETIRED:
            raise InvalidInput(f"model_version {model_version!r} is retired")
    else:
        version = project.active_model
    tracker = (version.manifest or {}).get(TRACKER_MANIFEST_KEY) if version is not None else None
    if tracker is not None and (not isinstance(tracker, str) or not tracker):
        raise ModelUnavailable(f"model_version {version.name!r}: manifest {TRACKER_MANIFEST_KEY!r} is not a URI")
    return version, tracker or DEFAULT_TRACKER_URI


def _check_inside(media: MediaItem, points: list, box: list | None) -> None:
    """400 for a coordinate that is not a finite number inside the image (pixels, 0..width x 0..height)."""
    width, height = media.width, media.height
    values = [v for point in points for v in point] + list(box or [])
    if not all(math.isfinite(v) for v in values):
        raise InvalidInput("coordinates must be finite numbers")
    if width is None or height is None:
        return
    for i, (x, y) in enumerate(points):
        if not (0 <= x <= width and 0 <= y <= height):
            raise InvalidInput(f"point {i} ({x:g}, {y:g}) is outside the {width}x{height} image")
    if box is not None:
        x1, y1, x2, y2 = box
        if not (x1 < x2 and y1 < y2):
            raise InvalidInput("box must have x1 < x2 and y1 < y2")
        if not (0 <= x1 and 0 <= y1 and x2 <= width and y2 <= height):
            raise InvalidInput(f"box {box} is outside the {width}x{height} image")


def segment(user, media_id: int, *, points: list, labels: list, box: list | None = None,
            model_version: str | None = None) -> dict:
    """One mask for a click prompt on media ``media_id`` (pixels of the original image); see the module doc.

    Returns {"rle", "score", "model_version", "tracker", "cached_embedding", "image_size", "timings_ms"}.
    """
    media = MediaItem.objects.filter(pk=media_id).first()
    if media is None:
        raise NotFound(f"media {media_id} not found")
    project = access_project(user, media.project_id, WORKERS)
    if media.kind != MediaKind.IMAGE:
        raise InvalidInput(f"media {media_id} is a {media.kind}: click-to-segment works on images")
    if media.status != MediaStatus.READY:
        raise Conflict(f"media {media_id} failed ingest: {media.error}")
    if len(points) != len(labels):
        raise InvalidInput(f"{len(points)} points but {len(labels)} labels: give one label per point")
    if not points and box is None:
        raise InvalidInput("give at least one point or a box")
    _check_inside(media, points, box)
    version, tracker = choose_tracker(project, model_version)
    payload = {
        "media_uri": media_uri(media.storage_name),
        "media_sha256": media.sha256,
        "model": {"version": version.name if version else None, "uri": tracker},
        "points": [[float(x), float(y)] for x, y in points],
        "labels": [int(label) for label in labels],
        "box": [float(v) for v in box] if box is not None else None,
    }
    result = run_click(payload)
    if result.get("error"):
        raise _failure(project, media, payload, result["error"])
    return {
        "rle": result["rle"],
        "score": result["score"],
        "model_version": payload["model"]["version"],
        "tracker": tracker,
        "cached_embedding": result["cached_embedding"],
        "image_size": result["image_size"],
        "timings_ms": result["timings_ms"],
    }


def run_click(payload: dict) -> dict:
    """The task's result dict, computed in this process or by a worker (click_mode)."""
    from workers import interactive

    if click_mode() == "in-process":
        return interactive.segment_click_for(payload)
    from celery.exceptions import TimeoutError as CeleryTimeout

    async_result = interactive.segment_click.apply_async(args=[payload], expires=CLICK_TIMEOUT_SECONDS)
    try:
        return async_result.get(timeout=CLICK_TIMEOUT_SECONDS, propagate=True)
    except CeleryTimeout:
        raise ClickTimeout(f"no answer from the segmentation worker within {CLICK_TIMEOUT_SECONDS} s") from None
    finally:
        async_result.forget()


def _failure(project, media: MediaItem, payload: dict, error: dict[str, Any]) -> DomainError:
    """Record the failed click on its Job row (one row per distinct input; attempts counts repeats)."""
    message = f"{error.get('kind')}: {error.get('message')}"
    job, _ = get_or_create_job(
        TASK_NAME, project=project, payload={**payload, "media": media.pk},
        key_inputs={"media": media.sha256, "model": payload["model"], "points": payload["points"],
                    "labels": payload["labels"], "box": payload["box"]},
    )
    Job.objects.filter(pk=job.pk).update(state=JobState.FAILED, error=message, attempts=F("attempts") + 1)
    detail = {"job": job.pk}
    kind = error.get("kind")
    if kind == "media":
        return ClickFailed(error.get("message", ""), **detail)
    if kind == "model":
        return ModelUnavailable(error.get("message", ""), **detail)
    return InvalidInput(error.get("message", ""), **detail)
