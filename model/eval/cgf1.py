"""SA-Co image cgF1: exactly the numbers the official SA-Co evaluator prints (docs/data-engine.md §8).

The official evaluator is ``CGF1Evaluator`` in facebookresearch/sam3 ``sam3/eval/cgf1_eval.py`` (commit
99d02f28, file last changed at 11dec293). This is an independent implementation of the same definition;
tests/model/fixtures/saco_eval/ holds inputs and the official code's outputs, and the tests hold us to them.

One ``images`` entry of a ground-truth file is one (image, noun phrase) *pair*. Per pair and per GT file:

- predictions with ``score >= 0.5`` are kept; crowd GTs (``iscrowd``) are dropped;
- no GT and no prediction: IL_TN, no box counts;  GT but no prediction: IL_FN, FN = #GT;
  no GT but predictions: IL_FP, FP = #predictions (these FPs reach ``precision``/``F1``, not the positive
  metrics);  both: IL_TP, Hungarian matching on mask IoU (``scipy.optimize.linear_sum_assignment``,
  masks in file order), then per threshold tau: TP = matches with IoU >= tau, FP = #pred - TP, FN = #GT - TP;
- local F1 = 2PR / (P + R + 1e-4) with P = TP / (TP + FP + 1e-4), R = TP / (TP + FN + 1e-4).

Only pairs that are instance-exhaustive in the first GT file and not marked non-exhaustive in any other
are evaluated. With several GT files (SA-Co/Gold has three annotators) each pair keeps one GT's outcome:
an IL_TN outcome wins outright; otherwise the highest mean-over-tau local F1, the earlier file on a tie.

Summed over pairs, with tau in 0.50:0.05:0.95 (pycocotools' linspace values; its 0.9 is 0.8999999999999999):
``positive_micro_F1`` is 2PR / (P + R + 1e-4) over positive pairs (P's FPs from IL_TP pairs only);
``IL_MCC`` = (TP*TN - FP*FN) / (sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN)) + 1e-6) on the IL counts;
``cgF1`` = positive_micro_F1 * IL_MCC; ``positive_macro_F1`` averages local F1 over IL_TP pairs only.
Each box-level metric is summarised as its mean over tau, and at tau = 0.5 and 0.75 (``cgF1@0.5``); as in
pycocotools a value that is NaN (``positive_macro_F1`` with no IL_TP pair) is reported as -1.
All values are fractions: the paper's tables print 100 x cgF1.

Inputs behave as pycocotools reads them: annotations and predictions are found through their
``category_id`` among the GT file's ``categories`` (others are ignored) and taken category by category
(sorted ids), then in file order; a repeated annotation id means its last annotation; a prediction without
``segmentation`` is its ``bbox`` rasterised as a polygon; polygons and uncompressed RLE are converted
with the image's ``height``/``width``. Where the official code crashes we do not: a pair missing from a
later GT file counts as a pair with no GT there, and with no pair to evaluate every count is zero (the
formulas then give 0, and -1 for ``positive_macro_F1``).
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
from pycocotools import mask as mask_utils
from scipy.optimize import linear_sum_assignment

from model import rle as rle_utils

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)  # same call as pycocotools' Params, bit for bit
SCORE_THRESHOLD = 0.5
LOCAL_EPS = 1e-4  # precision, recall and F1 (per pair and micro)
IMAGE_LEVEL_EPS = 1e-6  # IL precision, recall, F1, FPR and MCC

BOX_METRICS = ("cgF1", "precision", "recall", "F1", "positive_macro_F1", "positive_micro_F1",
               "positive_micro_precision")
IMAGE_LEVEL_METRICS = ("IL_precision", "IL_recall", "IL_F1", "IL_FPR", "IL_MCC")
SUMMARY_THRESHOLDS = (0.5, 0.75)
METRIC_NAMES = (
    BOX_METRICS + IMAGE_LEVEL_METRICS
    + tuple(f"{name}@{tau}" for tau in SUMMARY_THRESHOLDS for name in BOX_METRICS)
)

# Outcome of one pair against one GT file.
TRUE_NEGATIVE, FALSE_NEGATIVE, FALSE_POSITIVE, TRUE_POSITIVE = 0, 1, 2, 3


class SacoFormatError(ValueError):
    """A ground-truth or prediction file that is not SA-Co gold / COCO results as the evaluator needs it."""


# ----------------------------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------------------------


def _read_json(source: str | Path | Any, what: str) -> Any:
    if not isinstance(source, (str, Path)):
        return source
    try:
        with open(source) as f:
            return json.load(f)
    except json.JSONDecodeError as exc:
        raise SacoFormatError(f"{what} {source}: not JSON ({exc})") from exc


class _CategoryOrder:
    """pycocotools' ``for cId in sorted(getCatIds())``: category by category, repeated ids repeat."""

    def __init__(self, category_ids: list):
        self.sorted_ids = sorted(category_ids)

    def arrange(self, items: list, category_of=lambda item: item["category_id"]) -> list:
        if len(self.sorted_ids) == 1:  # the SA-Co case: one category
            only = self.sorted_ids[0]
            return [item for item in items if category_of(item) == only]
        buckets: dict[Any, list] = defaultdict(list)
        for item in items:
            buckets[category_of(item)].append(item)
        return [item for category in self.sorted_ids for item in buckets.get(category, ())]


@dataclass
class GroundTruth:
    """One SA-Co gold-format file, indexed as pycocotools indexes it."""

    images: list[dict]
    annotations: list[dict]
    categories: list[dict]
    source: str = ""
    _images_by_id: dict = field(init=False, repr=False)
    _annotations_by_image: dict = field(init=False, repr=False)
    _order: _CategoryOrder = field(init=False, repr=False)

    def __post_init__(self):
        for i, image in enumerate(self.images):
            for key in ("id", "is_instance_exhaustive"):
                if key not in image:
                    raise SacoFormatError(f"{self.source}: images[{i}] has no {key!r}")
        self._images_by_id = {image["id"]: image for image in self.images}
        by_id = {}
        for i, annotation in enumerate(self.annotations):
            for key in ("id", "image_id", "category_id"):
                if key not in annotation:
                    raise SacoFormatError(f"{self.source}: annotations[{i}] has no {key!r}")
            by_id[annotation["id"]] = annotation
        # An image's annotation ids resolve through the id index, where a repeated id means the last one.
        grouped: dict[Any, list[dict]] = defaultdict(list)
        for annotation in self.annotations:
            resolved = by_id[annotation["id"]]
            if resolved["image_id"] == annotation["image_id"]:
                grouped[annotation["image_id"]].append(resolved)
        self._annotations_by_image = grouped
        try:
            self._order = _CategoryOrder([category["id"] for category in self.categories])
        except (KeyError, TypeError) as exc:
            raise SacoFormatError(f"{self.source}: every category needs a comparable 'id'") from exc

    @classmethod
    def load(cls, source: str | Path | dict) -> GroundTruth:
        """Read a file (or take an already parsed dict) with ``images``, ``annotations`` and ``categories``."""
        data = _read_json(source, "ground truth")
        name = str(source) if isinstance(source, (str, Path)) else "ground truth"
        if not isinstance(data, dict):
            raise SacoFormatError(f"{name}: expected an object with images, annotations and categories")
        if "categories" not in data:
            raise SacoFormatError(f"{name}: no 'categories' (SA-Co files list one category, id 1)")
        return cls(images=list(data.get("images", [])), annotations=list(data.get("annotations", [])),
                   categories=list(data["categories"]), source=name)

    def is_exhaustive(self, image: dict) -> bool:
        return bool(image["is_instance_exhaustive"])

    def instance_masks(self, image_id: Any) -> list:
        """Non-crowd GT masks of a pair as RLEs, in evaluation order."""
        annotations = self._order.arrange(self._annotations_by_image.get(image_id, []))
        masks = []
        for annotation in annotations:
            if annotation.get("iscrowd", 0):
                continue
            if "segmentation" not in annotation:
                raise SacoFormatError(f"{self.source}: annotation {annotation['id']!r} has no 'segmentation'")
            masks.append(self.to_rle(annotation["segmentation"], image_id))
        return masks

    def prediction_masks(self, predictions: list[tuple[dict, Any]]) -> list:
        """Masks of the (prediction, mask) pairs whose category this file knows, in evaluation order."""
        return [mask for _, mask in self._order.arrange(predictions, lambda item: item[0]["category_id"])]

    def to_rle(self, segmentation: Any, image_id: Any) -> Any:
        """COCO.annToRLE: compressed RLE as is; polygons and uncompressed RLE use the image's size."""
        if isinstance(segmentation, dict) and not isinstance(segmentation.get("counts"), list):
            return segmentation
        image = self._images_by_id.get(image_id)
        if image is None or "height" not in image or "width" not in image:
            raise SacoFormatError(f"{self.source}: pair {image_id!r} needs height and width to rasterise a mask")
        height, width = image["height"], image["width"]
        if isinstance(segmentation, list):
            return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
        return mask_utils.frPyObjects(segmentation, height, width)


def load_predictions(source: str | Path | list) -> dict[Any, list[dict]]:
    """COCO results (a list of ``{image_id, category_id, segmentation or bbox, score}``) grouped by pair id."""
    data = _read_json(source, "predictions")
    if not isinstance(data, list):
        raise SacoFormatError("predictions must be a JSON list of COCO results")
    by_image: dict[Any, list[dict]] = defaultdict(list)
    for i, prediction in enumerate(data):
        if not isinstance(prediction, dict) or "image_id" not in prediction:
            raise SacoFormatError(f"prediction {i} has no 'image_id'")
        by_image[prediction["image_id"]].append(prediction)
    return by_image


def _kept_predictions(predictions: list[dict], image_id: Any, first: GroundTruth) -> list[tuple[dict, Any]]:
    """(prediction, mask) for the predictions of a pair with score >= 0.5, in file order.

    Masks are made once, with the first GT file's image size, and reused for every file (as the official
    evaluator, which converts the prediction dicts in place on their first use).
    """
    kept = []
    for prediction in predictions:
        for key in ("score", "category_id"):
            if key not in prediction:
                raise SacoFormatError(f"a prediction for pair {image_id!r} has no {key!r} (SA-Co uses category 1)")
        if not prediction["score"] >= SCORE_THRESHOLD:  # a NaN score does not count either
            continue
        if "segmentation" in prediction:
            mask = first.to_rle(prediction["segmentation"], image_id)
        elif prediction.get("bbox"):  # a box-only result is evaluated as its box polygon (COCO.loadRes)
            x, y, w, h = prediction["bbox"]
            mask = first.to_rle([[x, y, x, y + h, x + w, y + h, x + w, y]], image_id)
        else:
            raise SacoFormatError(f"a prediction for pair {image_id!r} has neither 'segmentation' nor 'bbox'")
        kept.append((prediction, mask))
    return kept


def evaluated_pairs(ground_truths: Sequence[GroundTruth]) -> list[Any]:
    """Pair ids of the first file that are exhaustive there and not marked non-exhaustive in any other."""
    excluded = {image["id"] for gt in ground_truths[1:] for image in gt.images if not gt.is_exhaustive(image)}
    first = ground_truths[0]
    return [image["id"] for image in first.images if first.is_exhaustive(image) and image["id"] not in excluded]


# ----------------------------------------------------------------------------------------------
# Per pair
# ----------------------------------------------------------------------------------------------


def match_counts(prediction_masks: list, gt_masks: list) -> np.ndarray:
    """TP per IoU threshold, shape (10,), after a maximum-total-IoU one-to-one matching."""
    if not prediction_masks or not gt_masks:
        return np.zeros(len(IOU_THRESHOLDS), dtype=np.int64)
    ious = rle_utils.iou(prediction_masks, gt_masks)
    rows, cols = linear_sum_assignment(-ious)
    matched = ious[rows, cols]
    return (matched[None, :] >= IOU_THRESHOLDS[:, None]).sum(axis=1).astype(np.int64)


def local_f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    """The evaluator's per-pair F1 with its smoothing, elementwise (the same operations, the same bits)."""
    precision = tp / (tp + fp + LOCAL_EPS)
    recall = tp / (tp + fn + LOCAL_EPS)
    return 2 * precision * recall / (precision + recall + LOCAL_EPS)


# ----------------------------------------------------------------------------------------------
# Evaluation
# ----------------------------------------------------------------------------------------------


@dataclass
class CGF1Result:
    """Summary metrics plus the chosen outcome of every evaluated pair.

    ``image_ids`` are the evaluated pair ids (P of them, first GT file's order); ``chosen_gt`` (P,) the
    GT file index the oracle kept; ``outcome`` (P,) TRUE_NEGATIVE..TRUE_POSITIVE; ``num_gt``/``num_pred``
    (P,) the non-crowd GTs and kept predictions; ``tp``/``fp``/``fn`` (P, 10) per IoU threshold.
    """

    metrics: dict[str, float]
    per_threshold: dict[str, np.ndarray]
    image_ids: list
    chosen_gt: np.ndarray
    outcome: np.ndarray
    num_gt: np.ndarray
    num_pred: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    fn: np.ndarray

    @property
    def image_level_counts(self) -> dict[str, int]:
        names = {TRUE_POSITIVE: "IL_TP", FALSE_POSITIVE: "IL_FP", TRUE_NEGATIVE: "IL_TN", FALSE_NEGATIVE: "IL_FN"}
        return {name: int((self.outcome == code).sum()) for code, name in names.items()}

    def to_json(self) -> dict:
        """The summary metrics, then ``num_pairs`` and the image-level counts."""
        return {**self.metrics, "num_pairs": len(self.image_ids), **self.image_level_counts}


def image_level_outcomes(num_pred: np.ndarray, num_gt: np.ndarray) -> np.ndarray:
    """TRUE_NEGATIVE..TRUE_POSITIVE per pair from its kept predictions and its non-crowd GTs."""
    outcome = np.full(num_pred.shape, TRUE_NEGATIVE, dtype=np.int64)
    outcome[(num_gt > 0) & (num_pred == 0)] = FALSE_NEGATIVE
    outcome[(num_gt == 0) & (num_pred > 0)] = FALSE_POSITIVE
    outcome[(num_gt > 0) & (num_pred > 0)] = TRUE_POSITIVE
    return outcome


def select_oracle(outcome: np.ndarray, local_f1s: np.ndarray) -> np.ndarray:
    """Index of the GT file kept per pair: outcome (P, G), local_f1s (P, G, 10) -> (P,).

    Walk the files in order: an IL_TN outcome replaces the current choice; otherwise a file replaces it
    only when both have a local F1 and its mean over thresholds is strictly higher.
    """
    n_pairs, n_files = outcome.shape
    mean_f1 = local_f1s.mean(axis=-1)  # per row, as np.mean of a (10,) array: the comparisons see the same bits
    has_f1 = outcome != TRUE_NEGATIVE
    best = np.zeros(n_pairs, dtype=np.int64)
    rows = np.arange(n_pairs)
    for g in range(1, n_files):
        best_has_f1 = has_f1[rows, best]
        better = has_f1[:, g] & best_has_f1 & (mean_f1[:, g] > mean_f1[rows, best])
        best = np.where(better | ~has_f1[:, g], g, best)
    return best


def _summarise(values: np.ndarray) -> float:
    """pycocotools' convention: the mean of the values above -1 (NaN is not), or -1 when there are none."""
    valid = values[values > -1]
    return float(np.mean(valid)) if len(valid) else -1.0


def summary_metrics(outcome: np.ndarray, tp: np.ndarray, fp: np.ndarray, fn: np.ndarray,
                    local_f1s: np.ndarray) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Accumulate chosen per-pair outcomes (P,) and counts (P, 10) into the summary and per-threshold metrics."""
    counted = outcome != TRUE_NEGATIVE  # pairs with box counts
    positive = (outcome == TRUE_POSITIVE) | (outcome == FALSE_NEGATIVE)
    detected = outcome == TRUE_POSITIVE
    tps, fps, fns = (a[counted].sum(axis=0, dtype=np.int64) for a in (tp, fp, fn))
    positive_fps = fp[positive].sum(axis=0, dtype=np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):  # no IL_TP pair: macro F1 is 0/0, reported as -1
        macro = local_f1s[detected].sum(axis=0) / int(detected.sum())

    precision = tps / (tps + fps + LOCAL_EPS)
    positive_precision = tps / (tps + positive_fps + LOCAL_EPS)
    recall = tps / (tps + fns + LOCAL_EPS)
    per_threshold = {
        "precision": precision,
        "recall": recall,
        "F1": 2 * precision * recall / (precision + recall + LOCAL_EPS),
        "positive_micro_precision": positive_precision,
        "positive_micro_F1": 2 * positive_precision * recall / (positive_precision + recall + LOCAL_EPS),
        "positive_macro_F1": macro,
    }

    il_tp, il_fp, il_tn, il_fn = (int((outcome == code).sum())
                                  for code in (TRUE_POSITIVE, FALSE_POSITIVE, TRUE_NEGATIVE, FALSE_NEGATIVE))
    il_recall = il_tp / (il_tp + il_fn + IMAGE_LEVEL_EPS)
    il_precision = il_tp / (il_tp + il_fp + IMAGE_LEVEL_EPS)
    image_level = {
        "IL_precision": il_precision,
        "IL_recall": il_recall,
        "IL_F1": 2 * il_precision * il_recall / (il_precision + il_recall + IMAGE_LEVEL_EPS),
        "IL_FPR": il_fp / (il_fp + il_tn + IMAGE_LEVEL_EPS),
        "IL_MCC": float(il_tp * il_tn - il_fp * il_fn) / (
            (float(il_tp + il_fp) * float(il_tp + il_fn) * float(il_tn + il_fp) * float(il_tn + il_fn)) ** 0.5
            + IMAGE_LEVEL_EPS
        ),
    }
    per_threshold["cgF1"] = per_threshold["positive_micro_F1"] * image_level["IL_MCC"]

    metrics: dict[str, float] = {name: _summarise(per_threshold[name]) for name in BOX_METRICS}
    metrics.update({name: float(image_level[name]) for name in IMAGE_LEVEL_METRICS})
    for tau in SUMMARY_THRESHOLDS:
        index = np.flatnonzero(IOU_THRESHOLDS == tau)
        for name in BOX_METRICS:
            metrics[f"{name}@{tau}"] = _summarise(per_threshold[name][index])
    return metrics, per_threshold


def evaluate(ground_truths: Sequence[str | Path | dict | GroundTruth] | str | Path,
             predictions: str | Path | list[dict]) -> CGF1Result:
    """Score COCO-results ``predictions`` against one or more SA-Co gold-format GT files (oracle over them).

    ``ground_truths`` are paths, parsed dicts or GroundTruth objects (the first one defines the pairs);
    ``predictions`` a path or a parsed list. Raises SacoFormatError for input the evaluator cannot read.
    """
    if isinstance(ground_truths, (str, Path, dict, GroundTruth)):
        ground_truths = [ground_truths]
    if not ground_truths:
        raise SacoFormatError("at least one ground-truth file is needed")
    gts = [gt if isinstance(gt, GroundTruth) else GroundTruth.load(gt) for gt in ground_truths]
    by_image = load_predictions(predictions)
    image_ids = evaluated_pairs(gts)

    n_pairs, n_files, n_thresholds = len(image_ids), len(gts), len(IOU_THRESHOLDS)
    num_pred = np.zeros((n_pairs, n_files), dtype=np.int64)
    num_gt = np.zeros((n_pairs, n_files), dtype=np.int64)
    tp = np.zeros((n_pairs, n_files, n_thresholds), dtype=np.int64)
    for i, image_id in enumerate(image_ids):
        kept = _kept_predictions(by_image.get(image_id, []), image_id, gts[0])
        for g, gt in enumerate(gts):
            dt_masks = gt.prediction_masks(kept)
            gt_masks = gt.instance_masks(image_id)
            num_pred[i, g], num_gt[i, g] = len(dt_masks), len(gt_masks)
            if dt_masks and gt_masks:
                tp[i, g] = match_counts(dt_masks, gt_masks)
    fp = num_pred[..., None] - tp
    fn = num_gt[..., None] - tp
    outcome = image_level_outcomes(num_pred, num_gt)
    f1 = local_f1(tp, fp, fn)

    chosen = select_oracle(outcome, f1)
    rows = np.arange(n_pairs)
    outcome, num_pred, num_gt, tp, fp, fn, f1 = (a[rows, chosen] for a in (outcome, num_pred, num_gt, tp, fp, fn, f1))
    metrics, per_threshold = summary_metrics(outcome, tp, fp, fn, f1)
    return CGF1Result(metrics=metrics, per_threshold=per_threshold, image_ids=list(image_ids), chosen_gt=chosen,
                      outcome=outcome, num_gt=num_gt, num_pred=num_pred, tp=tp, fp=fp, fn=fn)


def evaluate_files(gt_paths: Iterable[str | Path], pred_path: str | Path) -> dict:
    """``evaluate(...).to_json()`` for files: what ``python -m model.eval`` prints."""
    return evaluate(list(gt_paths), pred_path).to_json()
