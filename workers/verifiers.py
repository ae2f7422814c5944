"""LLM tasks for the AI verifiers: pure functions from (media URI, phrase, masks, model version) to JSON.

``verifiers.verify_datapoint.v1`` (queue ``llm``) scores every proposed mask with MV, then EV on the masks MV
would keep, and the EV presence score (1 − P(accept | zero boxes)); with ``ev_only`` it asks EV alone, on exactly
the given masks (those a human check accepted). A worker process keeps a Verifier per model
URI (the newest two), so a new version is picked up from the payload without a restart; torch loads on first
use. Never imports Django. Expected failures (bad media, bad checkpoint, bad input: an empty mask, a mask
outside the image, a phrase too long for the model) come back as the result's ``error`` ({"kind", "message"})
so the worker keeps running and the platform routes the item to a human; anything else raises.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, TypedDict

from model.media import MediaError, open_image
from workers.app import app
from workers.config import CONFIG
from workers.model_cache import ModelCache
from workers.sam3 import client_for

if TYPE_CHECKING:
    from verifiers.model import Verifier

TASK_NAME = "verifiers.verify_datapoint.v1"
MAX_CACHED_MODELS = 2


class ModelRef(TypedDict):
    version: str
    uri: str


class MaskRef(TypedDict):
    id: int
    rle: dict


class VerifyPayload(TypedDict):
    media_uri: str
    phrase: str
    masks: list[MaskRef]
    model: ModelRef
    mv_accept_threshold: float
    ev_only: bool  # optional: no MV; EV judges exactly ``masks`` (the ones a human check accepted)


_verifiers: ModelCache["Verifier"] = ModelCache(MAX_CACHED_MODELS)


def get_verifier(model_uri: str, *, s3: Any = None) -> "Verifier":
    """The cached Verifier for ``model_uri``, loading it (and evicting the oldest) when new.

    Raises VerifierModelError when it cannot be loaded.
    """
    from verifiers.model import load_verifier

    def load() -> Verifier:
        return load_verifier(model_uri, cache_dir=CONFIG.model_cache_dir, s3_client=client_for(model_uri, s3))

    return _verifiers.get(model_uri, load)


def clear_verifiers() -> None:
    """Forget every cached verifier (tests; a worker never needs this)."""
    _verifiers.clear()


def _validated(payload: Any) -> VerifyPayload:
    """The payload, checked; ValueError naming the first bad field."""
    from verifiers.prompts import check_phrase

    if not isinstance(payload, dict):
        raise ValueError("payload must be an object")
    media_uri = payload.get("media_uri")
    if not isinstance(media_uri, str) or not media_uri:
        raise ValueError('"media_uri" must be a non-empty string')
    phrase = check_phrase(payload.get("phrase"))
    masks = payload.get("masks")
    if not isinstance(masks, list):
        raise ValueError('"masks" must be a list of {"id", "rle"}')
    seen = set()
    for i, mask in enumerate(masks):
        if not isinstance(mask, dict) or isinstance(mask.get("id"), bool) or not isinstance(mask.get("id"), int) \
                or not isinstance(mask.get("rle"), dict):
            raise ValueError(f'"masks[{i}]" must be {{"id": int, "rle": RLE}}')
        if mask["id"] in seen:
            raise ValueError(f'"masks" repeats id {mask["id"]}')
        seen.add(mask["id"])
    model = payload.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("uri"), str) or not model["uri"]:
        raise ValueError('"model" must be an object with a non-empty "uri"')
    if not isinstance(model.get("version"), str):
        raise ValueError('"model.version" must be a string')
    threshold = payload.get("mv_accept_threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0.0 <= threshold <= 1.0:
        raise ValueError('"mv_accept_threshold" must be a number in [0, 1]')
    ev_only = payload.get("ev_only", False)
    if not isinstance(ev_only, bool):
        raise ValueError('"ev_only" must be true or false')
    return VerifyPayload(media_uri=media_uri, phrase=phrase, masks=masks,
                         model=ModelRef(version=model["version"], uri=model["uri"]),
                         mv_accept_threshold=float(threshold), ev_only=ev_only)


def _finite(probabilities: dict[str, float]) -> dict[str, float]:
    if not all(math.isfinite(p) for p in probabilities.values()):
        from verifiers.errors import VerifierModelError

        raise VerifierModelError("the verifier returned non-finite probabilities")
    return probabilities


def verify_datapoint_for(payload: dict, *, s3: Any = None) -> dict:
    """The task's logic: payload (see VerifyPayload) -> JSON-serialisable result dict (see module docstring)."""
    from verifiers.errors import VerifierInputError, VerifierModelError
    from verifiers.model import EVItem, MVItem, mv_accept_probability
    from verifiers.prompts import TEMPLATE_VERSIONS

    result: dict[str, Any] = {
        "task": TASK_NAME,
        "model_version": None,
        "template_versions": dict(TEMPLATE_VERSIONS),
        "mv": [],
        "ev": {"mask_ids": [], "probabilities": {}},
        "presence_score": None,
        "error": None,
    }
    if isinstance(payload, dict) and isinstance(payload.get("model"), dict):
        result["model_version"] = payload["model"].get("version")
    try:
        request = _validated(payload)
        media_uri = request["media_uri"]
        s3 = client_for(media_uri, s3)
        image = open_image(media_uri, s3_client=s3)
        verifier = get_verifier(request["model"]["uri"], s3=s3)
        result["template_versions"] = verifier.template_versions
        phrase, masks = request["phrase"], request["masks"]
        if request["ev_only"]:
            mv, kept = [], masks
        else:
            mv = [_finite(p) for p in verifier.score_mv([MVItem(image, m["rle"], phrase) for m in masks])]
            kept = [m for m, p in zip(masks, mv) if mv_accept_probability(p) >= request["mv_accept_threshold"]]
        questions = [EVItem(image, [m["rle"] for m in kept], phrase)]
        if kept:
            questions.append(EVItem(image, [], phrase))  # the presence question: zero boxes
        ev = [_finite(p) for p in verifier.score_ev(questions)]
    except MediaError as exc:
        result["error"] = {"kind": "media", "message": str(exc)}
    except VerifierModelError as exc:
        result["error"] = {"kind": "model", "message": str(exc)}
    except (VerifierInputError, ValueError) as exc:
        result["error"] = {"kind": "input", "message": str(exc)}
    else:
        result["mv"] = [{"mask_id": m["id"], "probabilities": p} for m, p in zip(masks, mv)]
        result["ev"] = {"mask_ids": [m["id"] for m in kept], "probabilities": ev[0]}
        result["presence_score"] = 1.0 - ev[-1]["accept"]
    return result


@app.task(name=TASK_NAME, bind=True, acks_late=True)
def verify_datapoint(self, payload: dict) -> dict:
    """Celery adapter for verify_datapoint_for (queue "llm"); idempotent: same inputs, same result."""
    return verify_datapoint_for(payload)
