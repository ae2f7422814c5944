"""Click-to-segment (PVS) task: a pure function from (media, points/box, tracker model) to one mask as JSON.

``sam3.segment_click.v1`` is latency-bound: the web view waits for it. A worker process keeps one
ClickPredictor per tracker URI (the newest two) and one EmbeddingCache for all of them, keyed by (tracker
URI, media sha256): the second click on an image skips reading the media and the image encoder. Route it to
its own ``interactive`` queue, consumed by the GPU worker next to ``gpu`` (``-Q gpu,interactive``), so a
click waits at most for the job in progress, not for the batch proposal backlog; until that route exists
the ``sam3.*`` route sends it to ``gpu``, which works the same, only slower under load.

Expected failures come back as ``{"error": {"kind": "media"|"model"|"input", "message"}}`` with a null mask,
so the worker keeps running; anything else raises. Never imports Django; torch loads on first use.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from celery.signals import worker_process_init, worker_ready

from model.media import MediaError, open_image
from workers.app import app
from workers.config import CONFIG
from workers.model_cache import ModelCache
from workers.sam3 import client_for

if TYPE_CHECKING:
    from model.sam3.interactive import ClickPredictor, EmbeddingCache

TASK_NAME = "sam3.segment_click.v1"
QUEUE = "interactive"
TRAINED_TINY_TRACKER = Path(__file__).resolve().parents[1] / "checkpoints" / "sam3-tracker-tiny"
# The tracker for projects whose model names none: CLICK_TRACKER_URI, else the committed tiny tracker trained on
# the synthetic world (make tiny-tracker), else a random one.
DEFAULT_TRACKER_URI = os.environ.get("CLICK_TRACKER_URI") or (
    str(TRAINED_TINY_TRACKER) if (TRAINED_TINY_TRACKER / "manifest.json").is_file() else "preset:tiny-tracker")
MAX_CACHED_MODELS = 2


class TrackerRef(TypedDict):
    version: str | None  # the registry's model version whose manifest named the tracker (null: none)
    uri: str  # the tracker checkpoint: a folder, s3:// prefix, or preset:tiny-tracker


class ClickPayload(TypedDict):
    media_uri: str
    media_sha256: str
    model: TrackerRef
    points: list[list[float]]  # [[x, y], ...] pixels of the original image
    labels: list[int]  # 1 on the object, 0 not
    box: list[float] | None  # [x1, y1, x2, y2] pixels


_predictors: ModelCache["ClickPredictor"] = ModelCache(MAX_CACHED_MODELS)
_embeddings: "EmbeddingCache | None" = None


def embedding_cache() -> EmbeddingCache:
    """The process's embedding cache, shared by every tracker so its bound holds for the whole process."""
    global _embeddings
    if _embeddings is None:
        from model.sam3.interactive import EmbeddingCache

        _embeddings = EmbeddingCache()
    return _embeddings


def get_click_predictor(tracker_uri: str, *, s3: Any = None) -> ClickPredictor:
    """The cached ClickPredictor for ``tracker_uri``, loading it (and evicting the oldest) when new.

    Raises CheckpointError when the tracker cannot be loaded.
    """
    import torch

    from model.sam3.interactive import ClickPredictor, resolve_tracker

    def load() -> ClickPredictor:
        loaded = resolve_tracker(tracker_uri, cache_dir=CONFIG.model_cache_dir, s3_client=client_for(tracker_uri, s3))
        return ClickPredictor(loaded, device="cuda" if torch.cuda.is_available() else "cpu", cache=embedding_cache())

    return _predictors.get(tracker_uri, load)


def clear_click_predictors() -> None:
    """Forget every cached predictor and embedding (tests; a worker never needs this)."""
    _predictors.clear()
    if _embeddings is not None:
        _embeddings.clear()


def _validated(payload: Any) -> ClickPayload:
    """The payload's fields checked (prompt shape too, not yet against the image size); ValueError otherwise."""
    from model.sam3.interactive import check_prompts

    if not isinstance(payload, dict):
        raise ValueError("payload must be an object")
    media_uri, sha = payload.get("media_uri"), payload.get("media_sha256")
    if not isinstance(media_uri, str) or not media_uri:
        raise ValueError('"media_uri" must be a non-empty string')
    if not isinstance(sha, str) or len(sha) != 64:
        raise ValueError('"media_sha256" must be the 64-hex-digit sha256 of the media')
    model = payload.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("uri"), str) or not model["uri"]:
        raise ValueError('"model" must be an object with a non-empty "uri"')
    check_prompts(payload.get("points"), payload.get("labels"), payload.get("box"))
    return ClickPayload(media_uri=media_uri, media_sha256=sha, model=TrackerRef(version=model.get("version"),
                        uri=model["uri"]), points=payload.get("points") or [], labels=payload.get("labels") or [],
                        box=payload.get("box"))


def segment_click_for(payload: dict, *, s3: Any = None) -> dict:
    """The task's logic: payload (see ClickPayload) -> JSON-serialisable result dict."""
    from model.sam3.build import CheckpointError

    result: dict[str, Any] = {"task": TASK_NAME, "model_version": None, "tracker": None, "media_uri": None,
                              "image_size": None, "rle": None, "score": None, "object_score": None,
                              "cached_embedding": False, "timings_ms": None, "error": None}
    if isinstance(payload, dict):
        result["media_uri"] = payload.get("media_uri")
        model = payload.get("model")
        if isinstance(model, dict):
            result["model_version"], result["tracker"] = model.get("version"), model.get("uri")
    try:
        request = _validated(payload)
        media_uri = request["media_uri"]
        s3 = client_for(media_uri, s3)
        predictor = get_click_predictor(request["model"]["uri"], s3=s3)
        click = predictor.segment(lambda: open_image(media_uri, s3_client=s3), media_key=request["media_sha256"],
                                  points=request["points"], labels=request["labels"], box=request["box"])
    except MediaError as exc:
        result["error"] = {"kind": "media", "message": str(exc)}
    except CheckpointError as exc:
        result["error"] = {"kind": "model", "message": str(exc)}
    except ValueError as exc:
        result["error"] = {"kind": "input", "message": str(exc)}
    else:
        result.update(click.to_json())
    return result


def _serves_clicks(celery_app) -> bool:
    consumed = getattr(celery_app.amqp.queues, "consume_from", None) or {}
    return bool({QUEUE, "gpu"} & set(consumed))


def warm_up() -> None:
    """Import torch and transformers and build the default tracker: seconds that a worker pays at start,
    not the first click."""
    get_click_predictor(DEFAULT_TRACKER_URI)


@worker_process_init.connect
def _warm_prefork_child(**_: Any) -> None:
    if _serves_clicks(app):
        warm_up()


@worker_ready.connect
def _warm_single_process_worker(sender: Any = None, **_: Any) -> None:
    pool = getattr(sender, "pool", None)
    if pool is not None and "prefork" not in type(pool).__module__ and _serves_clicks(app):
        warm_up()


@app.task(name=TASK_NAME, bind=True, ignore_result=False, acks_late=False)
def segment_click(self, payload: dict) -> dict:
    """Celery adapter for segment_click_for. Its result is stored (the web view waits for it), and it is not
    redelivered after a worker crash: a click is cheap to repeat and its caller has given up by then."""
    return segment_click_for(payload)
