"""Training task: a pure function from (base model URI, data snapshot URIs, config, output URI) to JSON.

``train.sam3_finetune.v1`` runs on the ``train`` queue (workers/app.py routes ``train.*``). It never imports
Django; the caller persists the result (artifact URI, manifest, metrics) in a ``store_*`` task. Re-running a
payload retrains and overwrites the same artifact prefix, so a redelivered task is safe (only compute is
spent). Expected failures (bad payload, unreadable base checkpoint or data) come back as
``{"error": {"kind", "message"}}``; anything else raises.
"""
from __future__ import annotations

from typing import Any, TypedDict

from workers.app import app

TASK_NAME = "train.sam3_finetune.v1"


class TrainPayload(TypedDict, total=False):
    base_model_uri: str        # checkpoint folder / s3:// prefix, preset:NAME, or "scratch"
    annotations_uri: str | None  # SA-Co snapshot JSON; None trains on the synthetic world
    images_uri: str | None     # folder or s3:// prefix of the snapshot's images
    output_uri: str            # where the artifact (best checkpoint + manifest.json) is written
    eval_gold_uri: str | None  # held-out gold JSON
    eval_images_uri: str | None
    config: dict               # TrainConfig overrides: steps, lr, lora {rank, alpha}, arch, loss, ...


def _config(payload: Any):
    from model.training.trainer import TrainConfig

    if not isinstance(payload, dict):
        raise ValueError("payload must be an object")
    for key in ("base_model_uri", "output_uri"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise ValueError(f'"{key}" must be a non-empty string')
    overrides = payload.get("config") or {}
    if not isinstance(overrides, dict):
        raise ValueError('"config" must be an object')
    fields = {**overrides, "out": payload["output_uri"], "base": payload["base_model_uri"]}
    for key, field_name in (("annotations_uri", "annotations"), ("images_uri", "images"),
                            ("eval_gold_uri", "eval_gold"), ("eval_images_uri", "eval_images")):
        if payload.get(key) is not None:
            fields[field_name] = payload[key]
    try:
        return TrainConfig.from_dict(fields)
    except TypeError as exc:  # unknown config field
        raise ValueError(f"bad config: {exc}") from exc


def finetune_for(payload: dict, *, s3: Any = None, progress: bool = False) -> dict:
    """The task's logic: payload (see TrainPayload) -> JSON with ``artifact_uri``, ``model_version``, ``metrics``,
    ``manifest``, or ``error``."""
    from model.sam3.build import CheckpointError

    result: dict[str, Any] = {"task": TASK_NAME, "artifact_uri": None, "model_version": None, "metrics": None,
                              "manifest": None, "error": None}
    try:
        config = _config(payload)
        uris = (config.out, config.base, config.annotations, config.images, config.eval_gold)
        if s3 is None and any(str(u).startswith("s3://") for u in uris):
            from workers.sam3 import s3_client
            s3 = s3_client()
        from model.training.trainer import train
        trained = train(config, s3_client=s3, progress=progress)
    except CheckpointError as exc:
        result["error"] = {"kind": "model", "message": str(exc)}
    except (ValueError, OSError) as exc:
        result["error"] = {"kind": "input", "message": str(exc)}
    else:
        result.update(artifact_uri=trained["artifact_uri"], metrics=trained["metrics"],
                      manifest=trained["manifest"], model_version=trained["manifest"].get("model_version"))
    return result


@app.task(name=TASK_NAME, bind=True, acks_late=True)
def finetune(self, payload: dict) -> dict:
    """Celery adapter for finetune_for (queue "train")."""
    return finetune_for(payload)
