"""What the simulated annotator answers to each task: pure functions of (task JSON, ground truth, config).

Task dicts have the API's shape (see annotator.py). Correct answers:

* MV: ``accept`` iff the mask's best IoU with a true instance of the phrase is >= ``accept_iou``.
* EV: ``accept`` iff every true instance is covered by an accepted mask at IoU >= ``cover_iou`` (a negative
  with no accepted masks is accepted); otherwise ``reject_unseparated`` when an uncovered instance is a
  group (iscrowd) mask, else ``reject``.
* Correction: the final set equals the true instances: keep a matched mask at IoU >= ``accept_iou``,
  replace it by the true mask at ``cover_iou`` <= IoU < ``accept_iou``, add uncovered instances, drop the
  rest (one-to-one greedy matching by IoU). The accepted masks are matched first; an instance none of them
  covers is matched among the task's rejected masks (``candidates``), restored at ``accept_iou`` (a click)
  or edited into the true mask at ``cover_iou`` — what an annotator does who sees them in the correction view.

* Review (Phase 2+ audit of an AI-accepted datapoint): ``confirm`` iff MV would accept every accepted mask
  and EV would accept the set (the two rules above), else ``reject``.

Then mistakes, drawn from (seed, question content) so they do not depend on who leases what or when: MV and
EV flip accept <-> reject (a review errs like an EV: confirm <-> reject at ``error_rate_ev``); correction
misses an instance it should have added. A pair the ground truth does not know is answered as an unsure human
would: MV ``reject``, EV ``ungroundable``, correction ``reject_phrase``. The simulated world has no text,
sensitive or whole-image phrases, so ``accept_as_text``, ``flag_label`` and ``whole_image`` are never answered.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from model import rle as rle_lib
from simulated_annotator import draws
from simulated_annotator.config import AnnotatorConfig
from simulated_annotator.ground_truth import GroundTruth, GroundTruthPair, phrase_key

MV_ACCEPTS = ("accept", "accept_as_text")


class _Verdict:
    """An answer with one decision; a mistake when it differs from the error-free one."""

    decision: str
    correct: str

    @property
    def mistake(self) -> bool:
        return self.decision != self.correct


@dataclass(frozen=True)
class MVAnswer(_Verdict):
    decision: str
    correct: str
    best_iou: float
    seconds: float
    unknown_pair: bool = False


@dataclass(frozen=True)
class EVAnswer(_Verdict):
    decision: str
    correct: str
    uncovered: int
    seconds: float
    unknown_pair: bool = False


@dataclass(frozen=True)
class CorrectionAnswer:
    """The final mask set (API entries: {mask_id} keep or restore, {mask_id, rle, iscrowd} edit, {rle, iscrowd}
    add)."""

    outcome: str
    masks: list[dict] = field(default_factory=list)
    kept: int = 0
    restored: int = 0
    edited: int = 0
    added: int = 0
    deleted: int = 0
    missed: int = 0
    seconds: float = 0.0
    reason: str = ""
    unknown_pair: bool = False

    @property
    def mistake(self) -> bool:
        return self.missed > 0

    def payload(self, task: dict) -> dict:
        """The body of POST /api/tasks/{id}/correction for ``task``."""
        return {"lease_token": task["lease_token"], "datapoint_revision": task["datapoint"]["revision"],
                "outcome": self.outcome, "masks": self.masks, "reason": self.reason, "seconds": self.seconds}


def _mask_key(rle: dict) -> str:
    return hashlib.sha256(rle["counts"].encode()).hexdigest()[:16]


def _item_key(pair: GroundTruthPair) -> tuple:
    return (pair.sha256, phrase_key(pair.phrase))


def _ious(masks: list[dict], pair: GroundTruthPair) -> np.ndarray:
    """IoU matrix (len(masks), len(instances)), plain IoU (no crowd rule)."""
    size = [pair.height, pair.width]
    for m in masks:
        if list(m["size"]) != size:
            raise ValueError(f"mask size {m['size']} does not match the ground-truth image size {size} "
                             f"of {pair.file_name}")
    return rle_lib.iou(list(masks), list(pair.instances))


def _pair(task: dict, ground_truth: GroundTruth) -> GroundTruthPair | None:
    datapoint = task["datapoint"]
    return ground_truth.for_media(datapoint["media"], datapoint["phrase"])


def answer_mask_verification(task: dict, ground_truth: GroundTruth, config: AnnotatorConfig) -> MVAnswer:
    """Judge ``task["mask"]`` against the true instances of the task's (image, phrase)."""
    pair = _pair(task, ground_truth)
    if pair is None:
        return MVAnswer("reject", "reject", 0.0, config.time_model.mask_verification(), unknown_pair=True)
    mask = task["mask"]["rle"]
    key = _item_key(pair) + ("mask", _mask_key(mask))
    ious = _ious([mask], pair)
    best = float(ious.max()) if ious.size else 0.0
    correct = "accept" if best >= config.accept_iou else "reject"
    decision = correct
    if draws.uniform(config.seed, "mv-mistake", *key) < config.error_rate_mv:
        decision = "reject" if correct == "accept" else "accept"
    return MVAnswer(decision, correct, best, config.time_model.mask_verification(key))


def answer_exhaustivity(task: dict, ground_truth: GroundTruth, config: AnnotatorConfig) -> EVAnswer:
    """Judge whether ``task["masks"]`` (the accepted masks) cover every true instance."""
    pair = _pair(task, ground_truth)
    if pair is None:
        return EVAnswer("ungroundable", "ungroundable", 0, config.time_model.phrase_rejection(), unknown_pair=True)
    accepted = [m["rle"] for m in task["masks"]]
    key = _item_key(pair) + ("masks",) + tuple(sorted(_mask_key(m) for m in accepted))
    if pair.instances and accepted:
        covered = _ious(accepted, pair).max(axis=0) >= config.cover_iou
    else:
        covered = np.zeros(len(pair.instances), dtype=bool)
    uncovered = [i for i, ok in enumerate(covered) if not ok]
    if not uncovered:
        correct = "accept"
    elif any(pair.iscrowd[i] for i in uncovered):
        correct = "reject_unseparated"
    else:
        correct = "reject"
    decision = correct
    if draws.uniform(config.seed, "ev-mistake", *key) < config.error_rate_ev:
        decision = "reject" if correct == "accept" else "accept"
    return EVAnswer(decision, correct, len(uncovered), config.time_model.exhaustivity_verification(key))


@dataclass(frozen=True)
class ReviewAnswer(_Verdict):
    decision: str
    correct: str
    wrong_masks: int
    uncovered: int
    seconds: float
    unknown_pair: bool = False


def review_verdict(masks: list[dict], pair: GroundTruthPair, config: AnnotatorConfig) -> tuple[str, int, int]:
    """The error-free review of accepted ``masks`` (RLEs): (decision, wrong masks, uncovered instances)."""
    if masks and pair.instances:
        ious = _ious(masks, pair)
        wrong = int((ious.max(axis=1) < config.accept_iou).sum())
        uncovered = int((ious.max(axis=0) < config.cover_iou).sum())
    else:
        wrong, uncovered = len(masks), len(pair.instances)
    return ("confirm" if wrong == 0 and uncovered == 0 else "reject"), wrong, uncovered


def answer_review(task: dict, ground_truth: GroundTruth, config: AnnotatorConfig) -> ReviewAnswer:
    """Confirm or reject an AI-accepted datapoint (``task["masks"]``: its accepted masks)."""
    accepted = [m["rle"] for m in task["masks"]]
    pair = _pair(task, ground_truth)
    if pair is None:
        return ReviewAnswer("reject", "reject", 0, 0, config.time_model.review(masks=len(accepted)),
                            unknown_pair=True)
    key = _item_key(pair) + ("review",) + tuple(sorted(_mask_key(m) for m in accepted))
    correct, wrong, uncovered = review_verdict(accepted, pair, config)
    decision = correct
    if draws.uniform(config.seed, "review-mistake", *key) < config.error_rate_ev:
        decision = "reject" if correct == "confirm" else "confirm"
    return ReviewAnswer(decision, correct, wrong, uncovered, config.time_model.review(masks=len(accepted), key=key))


def _greedy_matches(ious: np.ndarray, threshold: float) -> list[tuple[int, int]]:
    """One-to-one (mask, instance) pairs with IoU >= threshold, highest IoU first."""
    order = sorted(((ious[i, j], i, j) for i in range(ious.shape[0]) for j in range(ious.shape[1])
                    if ious[i, j] >= threshold), reverse=True)
    used_masks, used_instances, matches = set(), set(), []
    for _, i, j in order:
        if i not in used_masks and j not in used_instances:
            used_masks.add(i)
            used_instances.add(j)
            matches.append((i, j))
    return matches


def answer_correction(task: dict, ground_truth: GroundTruth, config: AnnotatorConfig) -> CorrectionAnswer:
    """Turn the accepted masks (``task["masks"]``) into the true instance set, restoring or editing the task's
    rejected masks (``task["candidates"]``) where they cover an instance, missing some additions."""
    pair = _pair(task, ground_truth)
    if pair is None:
        return CorrectionAnswer("reject_phrase", reason="simulated annotator: pair not in the ground truth",
                                seconds=config.time_model.phrase_rejection(), unknown_pair=True)
    existing, candidates = task["masks"], task.get("candidates") or []
    key = _item_key(pair) + ("correction",) + tuple(sorted(_mask_key(m["rle"]) for m in existing))
    ious = _ious([m["rle"] for m in existing], pair) if existing and pair.instances else np.zeros((0, 0))
    # instance -> (mask, IoU, whether it is a rejected mask): the accepted masks first, then the rejected ones.
    matches = {j: (existing[i], ious[i, j], False) for i, j in _greedy_matches(ious, config.cover_iou)}
    uncovered = [j for j in range(len(pair.instances)) if j not in matches]
    if candidates and uncovered:
        candidate_ious = _ious([m["rle"] for m in candidates], pair)[:, uncovered]
        matches.update({uncovered[k]: (candidates[i], candidate_ious[i, k], True)
                        for i, k in _greedy_matches(candidate_ious, config.cover_iou)})
    final: list[dict] = []
    kept = restored = edited = added = missed = 0
    for j, (truth, crowd) in enumerate(zip(pair.instances, pair.iscrowd)):
        if j in matches:
            mask, iou, rejected = matches[j]
            if iou >= config.accept_iou:
                final.append({"mask_id": mask["id"]})
                restored += rejected
                kept += not rejected
            else:
                final.append({"mask_id": mask["id"], "rle": truth, "iscrowd": crowd})
                edited += 1
        elif draws.uniform(config.seed, "correction-miss", *_item_key(pair), j) < config.error_rate_correction:
            missed += 1
        else:
            final.append({"rle": truth, "iscrowd": crowd})
            added += 1
    deleted = len(existing) - sum(not rejected for _, _, rejected in matches.values())
    seconds = config.time_model.correction(added=added, edited=edited, deleted=deleted, restored=restored, key=key)
    return CorrectionAnswer("complete", final, kept, restored, edited, added, deleted, missed, seconds)
