"""Predictions for a SA-Co gold file, in the COCO results format that ``python -m model.eval`` scores.

    python -m model.predict --checkpoint CKPT --gt GOLD.json --images DIR --out PRED.json [--refine-with TRACKER]

Every ``images`` entry of the gold file is one (image, noun phrase) pair; its ``file_name`` is read
relative to ``--images`` and its ``text_input`` is the prompt. Each image is encoded once for all of its
phrases. ``PRED.json`` is a list of ``{image_id, category_id, segmentation (RLE), bbox (xywh px), score}``;
``PRED.meta.json`` beside it records what produced it. ``--refine-with`` draws every kept mask again with a click
tracker (``model.sam3.refine``), as a project with ``refine_masks`` does.

``PRED.presence.json`` beside it records SAM 3's presence score of every pair (score = query score x presence),
so that ``python -m verifiers.compare`` can replace that presence exactly by the EV verifier's::

    {"format": "dataengine.pair-presence.v1", "pred_sha256": sha256 of PRED.json, "min_score": ...,
     "pairs": [{"image_id", "presence_score", "query_scores": [one per prediction of the pair, PRED.json order]}],
     "below_min_score": [COCO results + "query_score": instances with query score >= min_score whose
                         score (x presence) fell below min_score; not in PRED.json]}

The evaluator never reads it; the COCO results file is unchanged by it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import torch

from model.media import MediaError, open_image, sha256_of
from model.provenance import code_version
from model.sam3.build import CheckpointError, resolve_model
from model.sam3.interactive import ClickPredictor, resolve_tracker
from model.sam3 import DEFAULT_DEDUPE_IOU
from model.sam3.predictor import ConceptPredictor
from model.sam3.refine import refine_proposals

# The checkpoint the demo proposes with: the tiny SAM 3 that ``make tiny-model`` trains on the synthetic world.
DEFAULT_CHECKPOINT = str(Path(__file__).resolve().parents[1] / "checkpoints" / "sam3-tiny")
SACO_CATEGORY_ID = 1  # SA-Co files have one category, id 1; the evaluator ignores results in any other
PRESENCE_FORMAT = "dataengine.pair-presence.v1"


def presence_path(pred_path: str | Path) -> Path:
    """``PRED.presence.json`` beside ``PRED.json``."""
    return Path(pred_path).with_suffix(".presence.json")


def resolve_checkpoint(name: str) -> str:
    """``default`` -> DEFAULT_CHECKPOINT; any other name is already a model URI."""
    return DEFAULT_CHECKPOINT if name == "default" else name


def _category_id(gold: dict) -> int:
    categories = gold.get("categories") or []
    return categories[0]["id"] if len(categories) == 1 else SACO_CATEGORY_ID


def predict_gold(predictor: ConceptPredictor, gold: dict, images_dir: str | Path, *, min_score: float = 0.5,
                 max_instances: int | None = None, dedupe_iou: float | None = DEFAULT_DEDUPE_IOU,
                 click_predictor=None) -> list[dict]:
    """COCO results for every pair of ``gold``: instances with ``score >= min_score``, best first per pair, none
    overlapping a better one by IoU > ``dedupe_iou`` (None: duplicates kept); with ``click_predictor`` (a
    ClickPredictor), masks drawn again by it (model.sam3.refine).

    The evaluator counts only scores >= 0.5, so the default loses nothing it would see.
    Raises MediaError for an unreadable image, ValueError for an empty phrase.
    """
    return predict_gold_with_presence(predictor, gold, images_dir, min_score=min_score,
                                      max_instances=max_instances, dedupe_iou=dedupe_iou,
                                      click_predictor=click_predictor)[0]


def predict_gold_with_presence(predictor: ConceptPredictor, gold: dict, images_dir: str | Path, *,
                               min_score: float = 0.5, max_instances: int | None = None,
                               dedupe_iou: float | None = DEFAULT_DEDUPE_IOU,
                               click_predictor=None) -> tuple[list[dict], dict]:
    """(COCO results as ``predict_gold``, the presence document of ``PRED.presence.json`` less ``pred_sha256``).

    Instances are selected on their query score (>= min_score, at most ``max_instances`` per pair, best first):
    the presence multiplies every query of a pair alike, so the order is the score order and the results with
    ``score >= min_score`` are a prefix of each pair's list — exactly what selecting on the score gives. The rest
    go to ``below_min_score``: with another presence (the EV verifier's) they may pass.
    """
    pairs_by_file: dict[str, list[dict]] = {}
    for entry in gold["images"]:
        pairs_by_file.setdefault(entry["file_name"], []).append(entry)
    category_id = _category_id(gold)
    results: list[dict] = []
    pairs: list[dict] = []
    below: list[dict] = []
    for file_name, entries in pairs_by_file.items():
        image = open_image(Path(images_dir) / file_name)
        # The predictor keeps query > threshold; ask a little lower and apply >= here.
        proposals = predictor.propose(image, [pair["text_input"] for pair in entries], score_threshold=-1.0,
                                      query_threshold=min_score - 1e-6, max_instances=max_instances,
                                      dedupe_iou=dedupe_iou)
        if click_predictor is not None:
            proposals = refine_proposals(click_predictor, image, proposals, media_key=file_name, dedupe_iou=dedupe_iou)
        for pair, proposal in zip(entries, proposals):
            record = {"image_id": pair["id"], "presence_score": proposal.presence_score, "query_scores": []}
            pairs.append(record)
            for instance in proposal.instances:
                if instance.query_score < min_score:
                    continue
                x0, y0, x1, y1 = instance.box_xyxy
                result = {"image_id": pair["id"], "category_id": category_id, "segmentation": instance.rle,
                          "bbox": [x0, y0, x1 - x0, y1 - y0], "score": instance.score}
                if instance.score >= min_score:
                    results.append(result)
                    record["query_scores"].append(instance.query_score)
                else:
                    below.append({**result, "query_score": instance.query_score})
    document = {"format": PRESENCE_FORMAT, "generator": "model.predict", "min_score": min_score,
                "max_instances": max_instances, "dedupe_iou": dedupe_iou, "pairs": pairs, "below_min_score": below}
    return results, document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m model.predict", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True,
                        help=f"checkpoint folder, s3:// URI, preset:<name>, or 'default' ({DEFAULT_CHECKPOINT})")
    parser.add_argument("--gt", type=Path, required=True, help="SA-Co gold-format file whose pairs to predict")
    parser.add_argument("--images", type=Path, required=True, help="folder that the gold file_name entries are in")
    parser.add_argument("--out", type=Path, required=True, help="where to write the COCO results list")
    parser.add_argument("--min-score", type=float, default=0.5, help="keep instances with score >= this")
    parser.add_argument("--max-instances", type=int, default=None, help="at most this many instances per pair")
    parser.add_argument("--dedupe-iou", type=float, default=DEFAULT_DEDUPE_IOU,
                        help="drop a mask overlapping a better one of its pair by more than this IoU (the engine's "
                             f"default, {DEFAULT_DEDUPE_IOU})")
    parser.add_argument("--keep-duplicates", action="store_true", help="no deduplication (the raw model output)")
    parser.add_argument("--refine-with", default=None, metavar="TRACKER",
                        help="click tracker checkpoint (folder or s3:// URI) that draws every kept mask again")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "dataengine-model-cache",
                        help="where s3:// checkpoints are downloaded")
    args = parser.parse_args(argv)

    uri = resolve_checkpoint(args.checkpoint)
    dedupe_iou = None if args.keep_duplicates else args.dedupe_iou
    try:
        gold = json.loads(args.gt.read_text())
        loaded = resolve_model(uri, cache_dir=args.cache_dir)
        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        predictor = ConceptPredictor(loaded, device=device)
        click_predictor = None
        if args.refine_with:
            click_predictor = ClickPredictor(resolve_tracker(args.refine_with, cache_dir=args.cache_dir), device=device)
        results, presence = predict_gold_with_presence(predictor, gold, args.images, min_score=args.min_score,
                                                       max_instances=args.max_instances, dedupe_iou=dedupe_iou,
                                                       click_predictor=click_predictor)
    except KeyError as exc:
        print(f"error: {args.gt}: a gold entry has no {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, CheckpointError, MediaError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(results)
    args.out.write_text(text)
    presence["pred_sha256"] = hashlib.sha256(text.encode()).hexdigest()
    presence_path(args.out).write_text(json.dumps(presence) + "\n")
    meta = {
        "generator": "model.predict",
        "model_version": loaded.version or uri,
        "checkpoint": args.checkpoint,
        "code_version": code_version(),
        "gt": str(args.gt),
        "gt_sha256": sha256_of(args.gt),
        "min_score": args.min_score,
        "max_instances": args.max_instances,
        "dedupe_iou": dedupe_iou,
        "refined_with": click_predictor.version if click_predictor else None,
        "n_pairs": len(gold["images"]),
        "n_predictions": len(results),
        "presence": presence_path(args.out).name,
        "created": datetime.now(timezone.utc).isoformat(),
    }
    args.out.with_suffix(".meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    print(json.dumps({"out": str(args.out), "n_pairs": meta["n_pairs"], "n_predictions": len(results),
                      "model_version": meta["model_version"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
