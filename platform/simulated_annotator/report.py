"""Measurements over a simulated run: seconds per datapoint and escaped errors (docs/simulated-annotator.md §5).

Both are labelled SIMULATED: the seconds come from the time model, not from people.
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable

from model import rle as rle_lib
from simulated_annotator.annotator import SIMULATED_LABEL, TASK_KINDS, TaskRecord
from simulated_annotator.ground_truth import GroundTruth, GroundTruthPair

# SA-Co/HQ's share of negative pairs (docs/data-engine.md §1 and §7): the paper's "data-mix item".
PAPER_NEGATIVE_SHARE = 0.885


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


# ---------------------------------------------------------------- seconds per datapoint


@dataclass(frozen=True)
class DatapointSeconds:
    """Mean simulated human seconds per positive and per negative datapoint (truth from the ground truth)."""

    positive_mean: float
    negative_mean: float
    n_positive: int
    n_negative: int
    n_unknown: int
    positive_by_kind: dict[str, float] = field(default_factory=dict)
    negative_by_kind: dict[str, float] = field(default_factory=dict)
    by_phrase_kind: dict[str, float] = field(default_factory=dict)

    @property
    def world_negative_share(self) -> float:
        total = self.n_positive + self.n_negative
        return self.n_negative / total if total else float("nan")

    def mix_mean(self, negative_share: float | None = None) -> float:
        """Mean seconds per datapoint at a negative share (default: this world's own mix)."""
        share = self.world_negative_share if negative_share is None else negative_share
        return share * self.negative_mean + (1 - share) * self.positive_mean

    def as_dict(self) -> dict:
        return {"label": SIMULATED_LABEL, **asdict(self), "world_negative_share": self.world_negative_share,
                "world_mix_mean": self.mix_mean(), "paper_mix_mean": self.mix_mean(PAPER_NEGATIVE_SHARE)}

    def summary(self) -> str:
        return (f"SIMULATED seconds per datapoint: positive {self.positive_mean:.1f} s (n={self.n_positive}), "
                f"negative {self.negative_mean:.1f} s (n={self.n_negative}), "
                f"world mix {self.mix_mean():.1f} s ({self.world_negative_share:.1%} negatives), "
                f"at the paper's 88.5% negatives {self.mix_mean(PAPER_NEGATIVE_SHARE):.1f} s")


def seconds_per_datapoint(records: Iterable[TaskRecord], ground_truth: GroundTruth, *,
                          datapoints: Iterable[tuple[int, str, str]] | None = None) -> DatapointSeconds:
    """Sum each datapoint's logged seconds and average them over positives and negatives.

    ``records``: the annotators' task logs (``SessionStats.log``). ``datapoints``: every finished datapoint
    as (datapoint id, image sha256, phrase); pass it whenever some datapoints got no human task (Phase 2+
    AI-accepted items count as 0 s). By default the datapoints are those in the log. Datapoints the ground
    truth does not know are counted in ``n_unknown`` and left out of the means.
    """
    totals: dict[int, float] = defaultdict(float)
    by_kind: dict[int, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    identity: dict[int, tuple[str, str]] = {}
    for r in records:
        totals[r.datapoint_id] += r.seconds
        by_kind[r.datapoint_id][r.kind] += r.seconds
        identity.setdefault(r.datapoint_id, (r.sha256, r.phrase))
    if datapoints is not None:
        identity = {dp_id: (sha, phrase) for dp_id, sha, phrase in datapoints}
    groups: dict[bool, list[int]] = {True: [], False: []}
    phrase_kinds: dict[str, list[float]] = defaultdict(list)
    unknown = 0
    for dp_id, (sha, phrase) in identity.items():
        pair = ground_truth.lookup(sha, phrase)
        if pair is None:
            unknown += 1
            continue
        groups[pair.is_positive].append(dp_id)
        phrase_kinds[pair.phrase_kind].append(totals.get(dp_id, 0.0))

    def kind_means(ids: list[int]) -> dict[str, float]:
        return {k: _mean([by_kind[i].get(k, 0.0) for i in ids]) for k in TASK_KINDS} if ids else {}

    return DatapointSeconds(
        positive_mean=_mean([totals.get(i, 0.0) for i in groups[True]]),
        negative_mean=_mean([totals.get(i, 0.0) for i in groups[False]]),
        n_positive=len(groups[True]), n_negative=len(groups[False]), n_unknown=unknown,
        positive_by_kind=kind_means(groups[True]), negative_by_kind=kind_means(groups[False]),
        by_phrase_kind={k: _mean(v) for k, v in sorted(phrase_kinds.items())},
    )


# ---------------------------------------------------------------- escaped errors


@dataclass(frozen=True)
class EscapedErrors:
    """Accepted data that the ground truth contradicts (docs/simulated-annotator.md §5).

    ``wrong_masks``: accepted masks whose IoU with every true instance is below ``cover_iou``.
    ``false_negatives``: datapoints accepted as "not present" (no masks) that have true instances.
    ``incomplete_exhaustive``: datapoints with masks, marked exhaustive, missing a true instance
    (``missing_instances`` counts the instances). Rates are per 1,000 accepted masks (mask errors) and per
    1,000 accepted datapoints (false negatives + incomplete exhaustive); ``datapoints_with_any_error`` also
    counts datapoints that only carry a wrong mask.
    """

    accepted_masks: int
    accepted_datapoints: int
    wrong_masks: int
    false_negatives: int
    incomplete_exhaustive: int
    missing_instances: int
    datapoints_with_any_error: int
    unmatched_datapoints: int

    @property
    def per_1000_masks(self) -> float:
        return 1000 * self.wrong_masks / self.accepted_masks if self.accepted_masks else 0.0

    @property
    def per_1000_datapoints(self) -> float:
        errors = self.false_negatives + self.incomplete_exhaustive
        return 1000 * errors / self.accepted_datapoints if self.accepted_datapoints else 0.0

    @property
    def any_per_1000_datapoints(self) -> float:
        return 1000 * self.datapoints_with_any_error / self.accepted_datapoints if self.accepted_datapoints else 0.0

    def as_dict(self) -> dict:
        return {"label": SIMULATED_LABEL, **asdict(self), "per_1000_masks": self.per_1000_masks,
                "per_1000_datapoints": self.per_1000_datapoints,
                "any_per_1000_datapoints": self.any_per_1000_datapoints}

    def summary(self) -> str:
        return (f"escaped errors vs SIMULATED ground truth: {self.per_1000_masks:.1f} per 1,000 accepted masks "
                f"({self.wrong_masks}/{self.accepted_masks}), {self.per_1000_datapoints:.1f} per 1,000 accepted "
                f"datapoints ({self.false_negatives} false negatives, {self.incomplete_exhaustive} incomplete "
                f"exhaustive / {self.accepted_datapoints}); {self.unmatched_datapoints} entries not in the "
                "ground truth")


def _snapshot_pair(entry: dict, ground_truth: GroundTruth) -> GroundTruthPair | None:
    sha = entry.get("media_sha256") or entry.get("sha256") or ground_truth.sha256_for_name(entry["file_name"])
    return ground_truth.lookup(sha, entry["text_input"]) if sha else None


def escaped_errors(snapshot: dict | str | Path, ground_truth: GroundTruth, *, cover_iou: float = 0.5) -> EscapedErrors:
    """Count escaped errors in an SA-Co snapshot of accepted data (a dict or a path to its JSON).

    Entries are matched to the ground truth by ``media_sha256`` (the platform's export), ``sha256``, or the
    base name of ``file_name``, and ``text_input``. Unmatched entries are counted and left out of the rates.
    An entry counts as exhaustive when ``is_instance_exhaustive`` or ``is_pixel_exhaustive`` is set.
    """
    if not isinstance(snapshot, dict):
        snapshot = json.loads(Path(snapshot).read_text())
    masks_by_image: dict[int, list[dict]] = defaultdict(list)
    for ann in snapshot.get("annotations", []):
        masks_by_image[ann["image_id"]].append(ann["segmentation"])
    counts = dict(accepted_masks=0, accepted_datapoints=0, wrong_masks=0, false_negatives=0,
                  incomplete_exhaustive=0, missing_instances=0, datapoints_with_any_error=0, unmatched_datapoints=0)
    for entry in snapshot["images"]:
        pair = _snapshot_pair(entry, ground_truth)
        if pair is None:
            counts["unmatched_datapoints"] += 1
            continue
        masks = masks_by_image.get(entry["id"], [])
        counts["accepted_datapoints"] += 1
        counts["accepted_masks"] += len(masks)
        ious = rle_lib.iou(masks, list(pair.instances)) if masks and pair.instances else None
        wrong = len(masks) if ious is None else int((ious.max(axis=1) < cover_iou).sum())
        missing = len(pair.instances) if ious is None else int((ious.max(axis=0) < cover_iou).sum())
        counts["wrong_masks"] += wrong
        error = wrong > 0
        if not masks and pair.instances:
            counts["false_negatives"] += 1
            error = True
        elif masks and missing and (entry.get("is_instance_exhaustive") or entry.get("is_pixel_exhaustive")):
            counts["incomplete_exhaustive"] += 1
            counts["missing_instances"] += missing
            error = True
        counts["datapoints_with_any_error"] += int(error)
    return EscapedErrors(**counts)
