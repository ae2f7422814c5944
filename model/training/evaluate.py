"""Held-out evaluation during training: predict an SA-Co gold-format set and score it with cgF1.

``quick_cgf1`` follows docs/data-engine.md §8 (keep score ≥ 0.5; per pair Hungarian matching on mask IoU;
TP/FP/FN summed over positive pairs for τ = 0.50:0.05:0.95; IL_MCC over all pairs; cgF1 = 100·pmF1·IL_MCC).
It is a fallback with a single annotator and no crowd handling: ``score_gold`` uses the project's exact
SA-Co evaluator (``model.eval``) when it is importable, and reports cgF1 on the paper's ×100 scale.
"""
from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from model import rle as rle_utils

THRESHOLDS = np.linspace(0.5, 0.95, 10)


def predict_gold(predictor, gold: dict, images_dir: str | Path, *, min_score: float = 0.0,
                 max_instances: int | None = 6) -> list[dict]:
    """COCO-results predictions ``{image_id, segmentation, score}`` for every pair of ``gold``.

    ``predictor`` is a ConceptPredictor; each image is encoded once for all its phrases.
    """
    by_file: dict[str, list[dict]] = defaultdict(list)
    for entry in gold["images"]:
        by_file[entry["file_name"]].append(entry)
    results = []
    for file_name, entries in sorted(by_file.items()):
        with Image.open(Path(images_dir) / file_name) as image:
            proposals = predictor.propose(image.convert("RGB"), [e["text_input"] for e in entries],
                                          score_threshold=min_score, max_instances=max_instances)
        for entry, proposal in zip(entries, proposals):
            for instance in proposal.instances:
                results.append({"image_id": entry["id"], "category_id": 1, "segmentation": instance.rle,
                                "score": instance.score})
    return results


def _mcc(tp: int, tn: int, fp: int, fn: int) -> float:
    denominator = math.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return (tp * tn - fp * fn) / max(denominator, 1e-6)


def _auc(positives: list[float], negatives: list[float]) -> float:
    if not positives or not negatives:
        return float("nan")
    pos, neg = np.asarray(positives)[:, None], np.asarray(negatives)[None, :]
    return float(((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size))


def quick_cgf1(gold: dict, predictions: list[dict], *, score_threshold: float = 0.5) -> dict:
    """cgF1, pmF1, IL_MCC (and τ = 0.5 / 0.75 cgF1, top-score AUC) of predictions against one gold file."""
    gts: dict[int, list[dict]] = defaultdict(list)
    for ann in gold["annotations"]:
        if not ann.get("iscrowd", 0):
            gts[ann["image_id"]].append(ann["segmentation"])
    dts: dict[int, list[dict]] = defaultdict(list)
    top: dict[int, float] = defaultdict(float)
    for pred in predictions:
        top[pred["image_id"]] = max(top[pred["image_id"]], pred["score"])
        if pred["score"] >= score_threshold:
            dts[pred["image_id"]].append(pred["segmentation"])
    tp = np.zeros(len(THRESHOLDS))
    fp = np.zeros(len(THRESHOLDS))
    fn = np.zeros(len(THRESHOLDS))
    il = {"tp": 0, "tn": 0, "fp": 0, "fn": 0}
    top_pos, top_neg = [], []
    evaluated = [e for e in gold["images"] if e.get("is_instance_exhaustive", 1)]
    for entry in evaluated:
        image_id = entry["id"]
        gt, dt = gts.get(image_id, []), dts.get(image_id, [])
        (top_pos if gt else top_neg).append(top.get(image_id, 0.0))
        if not gt:
            il["fp" if dt else "tn"] += 1
            continue
        if not dt:
            il["fn"] += 1
            fn += len(gt)
            continue
        il["tp"] += 1
        ious = rle_utils.iou(dt, gt)
        rows, cols = linear_sum_assignment(-ious)
        matched = ious[rows, cols]
        for k, tau in enumerate(THRESHOLDS):
            hits = int((matched >= tau).sum())
            tp[k] += hits
            fp[k] += len(dt) - hits
            fn[k] += len(gt) - hits
    f1 = 2 * tp / np.maximum(2 * tp + fp + fn, 1e-9)
    mcc = _mcc(il["tp"], il["tn"], il["fp"], il["fn"])
    cg = 100 * f1 * mcc
    return {
        "cgF1": float(cg.mean()),
        "cgF1_50": float(cg[0]),
        "cgF1_75": float(cg[5]),
        "pmF1": float(f1.mean()),
        "IL_MCC": float(mcc),
        "top_score_auc": _auc(top_pos, top_neg),
        "n_pairs": len(evaluated),
        "n_positive_pairs": il["tp"] + il["fn"],
        **{f"IL_{k.upper()}": v for k, v in il.items()},
    }


def diagnostics(gold: dict, predictions: list[dict]) -> dict:
    """Where a model stands below the 0.5 cut (predictions unthresholded, every query).

    ``best_mask_recall``: share of GT instances that one of the predicted masks (the top ``max_instances``
    queries of ``predict_gold``) covers at IoU ≥ 0.5 (masks);
    ``top1_hit``: share of positive pairs whose top-scoring query hits a GT at IoU ≥ 0.5 (ranking);
    ``score_p99_negative`` / ``score_median_positive``: the top score per pair on negatives and positives.
    """
    gts: dict[int, list[dict]] = defaultdict(list)
    for ann in gold["annotations"]:
        gts[ann["image_id"]].append(ann["segmentation"])
    dts: dict[int, list[dict]] = defaultdict(list)
    for pred in predictions:
        dts[pred["image_id"]].append(pred)
    covered = total = hits = positives = 0
    top_pos, top_neg = [], []
    for entry in gold["images"]:
        gt, dt = gts.get(entry["id"], []), sorted(dts.get(entry["id"], []), key=lambda p: -p["score"])
        (top_pos if gt else top_neg).append(dt[0]["score"] if dt else 0.0)
        if not gt:
            continue
        positives += 1
        total += len(gt)
        if dt:
            ious = rle_utils.iou([p["segmentation"] for p in dt], gt)
            covered += int((ious.max(0) >= 0.5).sum())
            hits += int(ious[0].max() >= 0.5)
    return {
        "best_mask_recall": covered / max(total, 1),
        "top1_hit": hits / max(positives, 1),
        "score_median_positive": float(np.median(top_pos)) if top_pos else 0.0,
        "score_p99_negative": float(np.percentile(top_neg, 99)) if top_neg else 0.0,
    }


def score_gold(gold: dict, predictions: list[dict]) -> dict:
    """cgF1 (×100), pmF1, IL_MCC, ... from the official evaluator ``model.eval`` (else ``quick_cgf1``)."""
    quick = {**quick_cgf1(gold, predictions), **diagnostics(gold, predictions)}
    try:
        from model.eval import evaluate
    except ImportError:
        return {**quick, "evaluator": "model.training.evaluate.quick_cgf1"}
    official = evaluate(gold, predictions).to_json()
    return {
        **quick,
        "cgF1": 100 * official["cgF1"],
        "cgF1_50": 100 * official["cgF1@0.5"],
        "cgF1_75": 100 * official["cgF1@0.75"],
        "pmF1": official["positive_micro_F1"],
        "IL_MCC": official["IL_MCC"],
        "evaluator": "model.eval",
    }


def evaluate_predictor(predictor, gold_path: str | Path, images_dir: str | Path | None = None, *,
                       max_instances: int | None = 6) -> dict:
    """Predict (the top ``max_instances`` queries per pair, any score) and score one gold file; images default
    to the gold file's folder."""
    gold_path = Path(gold_path)
    gold = json.loads(gold_path.read_text())
    predictions = predict_gold(predictor, gold, images_dir or gold_path.parent, max_instances=max_instances)
    return score_gold(gold, predictions)
