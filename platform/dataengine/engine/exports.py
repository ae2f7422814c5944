"""SA-Co JSON (docs/data-engine §7) out of and into a project, and COCO results for predictions.

One SA-Co ``images`` entry is one (image, phrase) pair; its ``id`` is the datapoint id, so predictions in
COCO-results format (``image_id`` = datapoint id) line up with a snapshot of the same project.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction

from dataengine.accounts.models import Project
from dataengine.annotation.models import Mask, MaskSource, MaskState, Proposal
from dataengine.concepts.models import Datapoint, DatapointSource, DatapointState, FinalLabel
from dataengine.concepts.services import get_or_create_concept
from dataengine.engine.models import ModelVersion, Snapshot
from model.provenance import code_version
from dataengine.engine.services import record_audit
from dataengine.errors import InvalidInput
from dataengine.media.models import MediaItem
from model import rle as rle_lib

SACO_SOURCE = {MaskSource.MODEL: "created by SAM3", MaskSource.HUMAN: "manual", MaskSource.IMPORTED: "manual"}


def _normalised_bbox(bbox: list[float], width: int, height: int) -> list[float]:
    x, y, w, h = bbox
    return [x / width, y / height, w / width, h / height]


def sa_co_document(project: Project, *, gold: bool = False) -> dict:
    """The project's accepted datapoints (or its gold set) as an SA-Co JSON document."""
    datapoints = (Datapoint.objects.filter(project=project, is_gold=gold, state=DatapointState.ACCEPTED)
                  .select_related("media", "concept").order_by("id"))
    images, annotations = [], []
    masks_by_dp: dict[int, list[Mask]] = {}
    for mask in Mask.objects.filter(datapoint__in=datapoints, state=MaskState.ACCEPTED).order_by("id"):
        masks_by_dp.setdefault(mask.datapoint_id, []).append(mask)
    for dp in datapoints:
        media = dp.media
        images.append({
            "id": dp.pk, "file_name": media.name, "text_input": dp.concept.phrase, "width": media.width,
            "height": media.height, "queried_category": dp.concept.ontology_node or dp.concept.phrase,
            "is_instance_exhaustive": int(bool(dp.is_instance_exhaustive)),
            "is_pixel_exhaustive": int(bool(dp.is_pixel_exhaustive)),
            "media_sha256": media.sha256, "label": dp.final_label,
        })
        for mask in masks_by_dp.get(dp.pk, []):
            annotations.append({
                "id": mask.pk, "image_id": dp.pk, "bbox": _normalised_bbox(mask.bbox, media.width, media.height),
                "segmentation": mask.rle, "area": mask.area / (media.width * media.height), "category_id": 1,
                "iscrowd": int(mask.iscrowd), "source": SACO_SOURCE[mask.source],
            })
    return {
        "info": {"project": project.name, "project_id": project.pk, "gold": gold, "code_version": code_version(),
                 "created": dt.datetime.now(dt.timezone.utc).isoformat(), "format": "sa-co"},
        "images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}],
    }


def export_snapshot(project: Project, *, actor=None) -> Snapshot:
    """Freeze the accepted data as an SA-Co JSON file in storage and record it."""
    document = sa_co_document(project)
    blob = json.dumps(document, separators=(",", ":")).encode()
    sha = hashlib.sha256(blob).hexdigest()
    name = default_storage.save(f"snapshots/{project.pk}/{sha}.json", ContentFile(blob))
    positives = sum(1 for i in document["images"] if i["label"] == FinalLabel.POSITIVE)
    snapshot = Snapshot.objects.create(
        project=project, storage_name=name, sha256=sha, code_version=code_version(), created_by=actor,
        counts={"datapoints": len(document["images"]), "positives": positives,
                "negatives": len(document["images"]) - positives, "masks": len(document["annotations"])},
    )
    record_audit("snapshot.export", snapshot, actor=actor, project=project, **snapshot.counts)
    return snapshot


def coco_results(project: Project, model_version: ModelVersion) -> list[dict]:
    """The model version's proposals for the project's datapoints, in COCO results format."""
    results = []
    proposals = (Proposal.objects.filter(datapoint__project=project, model_version=model_version)
                 .select_related("datapoint__media").order_by("id"))
    for proposal in proposals:
        for instance in proposal.instances:
            x1, y1, x2, y2 = instance["box_xyxy"]
            results.append({"image_id": proposal.datapoint_id, "category_id": 1, "segmentation": instance["rle"],
                            "bbox": [x1, y1, x2 - x1, y2 - y1], "score": instance["score"]})
    return results


def import_gold(project: Project, document: dict, *, images_dir: Path | None = None, actor=None) -> dict:
    """Load an SA-Co gold file as the project's gold set: gold datapoints with imported masks.

    Each entry's ``file_name`` must name a media item of the project (by its name); with ``images_dir``
    missing media are ingested from there first. Malformed entries are refused before anything is written.
    """
    from dataengine.media.services import ingest_bytes

    if not isinstance(document, dict) or not isinstance(document.get("images"), list):
        raise InvalidInput("an SA-Co file needs an 'images' list")
    annotations = document.get("annotations", [])
    by_image: dict[int, list[dict]] = {}
    for i, ann in enumerate(annotations):
        if "image_id" not in ann or "segmentation" not in ann:
            raise InvalidInput(f"annotations[{i}] needs image_id and segmentation")
        by_image.setdefault(ann["image_id"], []).append(ann)
    media_by_name = {m.name: m for m in MediaItem.objects.filter(project=project)}
    created = 0
    with transaction.atomic():
        for i, entry in enumerate(document["images"]):
            try:
                file_name, phrase = entry["file_name"], entry["text_input"]
            except KeyError as exc:
                raise InvalidInput(f"images[{i}] lacks {exc.args[0]}") from None
            media = media_by_name.get(file_name) or media_by_name.get(Path(file_name).name)
            if media is None and images_dir is not None and (Path(images_dir) / file_name).is_file():
                media, _ = ingest_bytes(project, name=file_name, data=(Path(images_dir) / file_name).read_bytes())
                media_by_name[file_name] = media
            if media is None:
                raise InvalidInput(f"images[{i}]: no media item named {file_name!r} in this project")
            dp, made = Datapoint.objects.get_or_create(
                project=project, media=media, concept=get_or_create_concept(phrase), is_gold=True,
                defaults={"source": DatapointSource.GOLD, "state": DatapointState.ACCEPTED,
                          "is_instance_exhaustive": bool(entry.get("is_instance_exhaustive", 1)),
                          "is_pixel_exhaustive": bool(entry.get("is_pixel_exhaustive", 1))},
            )
            if not made:
                continue
            masks = []
            for j, ann in enumerate(by_image.get(entry.get("id"), [])):
                try:
                    rle = rle_lib.validate(ann["segmentation"], size=(media.height, media.width))
                except rle_lib.InvalidRLE as exc:
                    raise InvalidInput(f"annotation {ann.get('id', j)} of images[{i}]: {exc}") from None
                masks.append(Mask(datapoint=dp, rle=rle, bbox=rle_lib.bbox_xywh(rle), area=rle_lib.area([rle])[0],
                                  iscrowd=bool(ann.get("iscrowd", 0)), source=MaskSource.IMPORTED,
                                  state=MaskState.ACCEPTED))
            Mask.objects.bulk_create(masks)
            dp.final_label = FinalLabel.POSITIVE if masks else FinalLabel.NEGATIVE
            dp.save(update_fields=["final_label"])
            created += 1
        record_audit("gold.import", project, actor=actor, project=project, datapoints=created)
    return {"gold_datapoints": created}
