"""GPU tasks for SAM 3: pure functions from (media URI, phrases, model version) to JSON. Never imports Django.

A worker process keeps a predictor per model URI (the newest two), so a new model version is picked up
from the payload without a restart. torch and transformers are imported on first use, so the web tier
can import this module to build signatures (``propose_masks.s(...)``) without loading them.
With ``refine`` in the payload (a click-tracker checkpoint), every proposed mask is drawn again by that tracker from
one click on it (model.sam3.refine), with the tracker the click-to-segment task keeps (workers.interactive), so the
image embedding it computes also serves the annotators' first click on the image.
Expected failures (bad media, bad checkpoint, bad input) come back as
``{"error": {"kind", "message"}, "proposals": []}`` so the worker keeps running; anything else raises.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from model.media import MediaError, open_image
from workers.app import app
from workers.config import CONFIG
from workers.model_cache import ModelCache

if TYPE_CHECKING:
    from model.sam3.predictor import ConceptPredictor

TASK_NAME = "sam3.propose_masks.v1"
MAX_CACHED_MODELS = 2  # real SAM 3 is ~3.4 GB: keep the current and the previous version only


class ModelRef(TypedDict):
    version: str
    uri: str


class ProposePayload(TypedDict):
    media_uri: str
    phrases: list[str]
    model: ModelRef
    score_threshold: float
    mask_threshold: float
    max_instances: int | None
    dedupe_iou: float | None
    refine: str | None  # URI of the click tracker that draws every proposed mask again; None: masks as proposed
    media_sha256: str | None  # keys the tracker's embedding cache, as clicks do (else the media URI)


def _free_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


_predictors: ModelCache["ConceptPredictor"] = ModelCache(MAX_CACHED_MODELS, on_evict=_free_gpu_memory)
_s3 = None


def s3_client() -> Any:
    """The process's boto3 S3 client, built once from CONFIG.s3 (signature v4, path addressing, timeouts)."""
    global _s3
    if _s3 is None:
        import boto3
        from botocore.config import Config

        _s3 = boto3.client(
            "s3",
            endpoint_url=CONFIG.s3.endpoint_url,
            aws_access_key_id=CONFIG.s3.access_key_id,
            aws_secret_access_key=CONFIG.s3.secret_access_key,
            region_name=CONFIG.s3.region,
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, connect_timeout=10,
                          read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}),
        )
    return _s3


def client_for(uri: str, s3: Any = None) -> Any:
    """The S3 client to read ``uri`` with: ``s3`` when given (tests), the process's one for s3://, else None."""
    if s3 is not None:
        return s3
    return s3_client() if uri.startswith("s3://") else None


def get_predictor(model_uri: str, *, s3: Any = None) -> ConceptPredictor:
    """The cached predictor for ``model_uri``, loading it (and evicting the oldest) when new.

    Raises CheckpointError when the model cannot be loaded.
    """
    import torch

    from model.sam3.build import resolve_model
    from model.sam3.predictor import ConceptPredictor

    def load() -> ConceptPredictor:
        loaded = resolve_model(model_uri, cache_dir=CONFIG.model_cache_dir, s3_client=client_for(model_uri, s3))
        return ConceptPredictor(loaded, device="cuda" if torch.cuda.is_available() else "cpu")

    return _predictors.get(model_uri, load)


def clear_predictors() -> None:
    """Forget every cached predictor (tests; a worker never needs this)."""
    _predictors.clear()


def _validated(payload: Any) -> ProposePayload:
    """The payload with defaults filled in; ValueError naming the first bad field."""
    from model.sam3.predictor import check_phrases

    if not isinstance(payload, dict):
        raise ValueError("payload must be an object")
    media_uri = payload.get("media_uri")
    if not isinstance(media_uri, str) or not media_uri:
        raise ValueError('"media_uri" must be a non-empty string')
    phrases = payload.get("phrases")
    if not isinstance(phrases, list):
        raise ValueError('"phrases" must be a list of strings')
    check_phrases(phrases)
    model = payload.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("uri"), str) or not model["uri"]:
        raise ValueError('"model" must be an object with a non-empty "uri"')
    if not isinstance(model.get("version"), str):
        raise ValueError('"model.version" must be a string')
    thresholds = {}
    for key in ("score_threshold", "mask_threshold"):
        value = payload.get(key, 0.5)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ValueError(f'"{key}" must be a number in [0, 1]')
        thresholds[key] = float(value)
    max_instances = payload.get("max_instances")
    if max_instances is not None and (isinstance(max_instances, bool) or not isinstance(max_instances, int)
                                      or max_instances < 0):
        raise ValueError('"max_instances" must be null or an integer >= 0')
    dedupe_iou = payload.get("dedupe_iou")
    if dedupe_iou is not None and (isinstance(dedupe_iou, bool) or not isinstance(dedupe_iou, (int, float))
                                   or not 0.0 < dedupe_iou <= 1.0):
        raise ValueError('"dedupe_iou" must be null or a number in (0, 1]')
    refine = payload.get("refine")
    if refine is not None and (not isinstance(refine, dict) or not isinstance(refine.get("uri"), str)
                               or not refine["uri"]):
        raise ValueError('"refine" must be null or an object with a non-empty "uri" (a click tracker)')
    sha = payload.get("media_sha256")
    if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
        raise ValueError('"media_sha256" must be null or the 64-hex-digit sha256 of the media')
    return ProposePayload(media_uri=media_uri, phrases=phrases, model=ModelRef(version=model["version"],
                          uri=model["uri"]), max_instances=max_instances, dedupe_iou=dedupe_iou,
                          refine=refine["uri"] if refine else None,
                          media_sha256=sha, **thresholds)


def propose_masks_for(payload: dict, *, s3: Any = None) -> dict:
    """The task's logic: payload (see ProposePayload) -> JSON-serialisable result dict."""
    from model.sam3.build import CheckpointError

    result: dict[str, Any] = {
        "task": TASK_NAME,
        "model_version": None,
        "media_uri": None,
        "image_size": None,
        "proposals": [],
        "refined_with": None,
        "error": None,
    }
    if isinstance(payload, dict):
        result["media_uri"] = payload.get("media_uri")
        model = payload.get("model")
        result["model_version"] = model.get("version") if isinstance(model, dict) else None
    try:
        request = _validated(payload)
        media_uri = request["media_uri"]
        s3 = client_for(media_uri, s3)
        image = open_image(media_uri, s3_client=s3)
        result["image_size"] = [image.height, image.width]
        predictor = get_predictor(request["model"]["uri"], s3=s3)
        proposals = predictor.propose(
            image, request["phrases"], score_threshold=request["score_threshold"],
            mask_threshold=request["mask_threshold"], max_instances=request["max_instances"],
            dedupe_iou=request["dedupe_iou"],
        )
        if request["refine"] is not None:
            from model.sam3.refine import refine_proposals
            from workers.interactive import get_click_predictor

            tracker = get_click_predictor(request["refine"], s3=s3)
            proposals = refine_proposals(tracker, image, proposals, media_key=request["media_sha256"] or media_uri,
                                         dedupe_iou=request["dedupe_iou"])
            result["refined_with"] = {"version": tracker.version, "uri": request["refine"]}
    except MediaError as exc:
        result["error"] = {"kind": "media", "message": str(exc)}
    except CheckpointError as exc:
        result["error"] = {"kind": "model", "message": str(exc)}
    except ValueError as exc:
        result["error"] = {"kind": "input", "message": str(exc)}
    else:
        result["proposals"] = [proposal.to_json() for proposal in proposals]
    return result


@app.task(name=TASK_NAME, bind=True, acks_late=True)
def propose_masks(self, payload: dict) -> dict:
    """Celery adapter for propose_masks_for (queue "gpu"); idempotent: same inputs, same result."""
    return propose_masks_for(payload)
