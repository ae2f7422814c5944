"""How well a SAM 3 version does on each phrase of the project's gold set, and the routing's low-score phrases.

A phrase the current model gets wrong on gold is failure-prone (annotation.verifying.failure_signs): its items
reach a human whatever the verifiers say. The score of a phrase is the F1 at IoU 0.5 over its gold pairs, counted
as the SA-Co evaluator counts a pair (predictions with score >= 0.5, a one-to-one matching of maximum total IoU:
model.eval.cgf1.match_counts; crowd masks are not instances to find). The model's answer for a gold pair is its
latest proposal on the project's working datapoint with the same image and phrase, so the gold set itself is
never shown to anyone as a task.
"""
from __future__ import annotations

from django.db import transaction

from dataengine.accounts.models import Project
from dataengine.annotation.models import Mask, Proposal
from dataengine.concepts.models import Datapoint
from dataengine.engine.models import ModelVersion
from dataengine.engine.services import record_audit
from dataengine.errors import InvalidInput
from model.eval.cgf1 import IOU_THRESHOLDS, match_counts

SCORE_THRESHOLD = 0.5  # the SA-Co evaluator's: a prediction counts when its score reaches it
AT_IOU_50 = list(IOU_THRESHOLDS).index(0.5)


def phrase_gold_scores(project: Project, version: ModelVersion) -> dict[str, dict]:
    """phrase -> {pairs, tp, fp, fn, f1} over the gold pairs ``version`` has proposed for (F1 1.0: nothing to find
    and nothing wrongly proposed)."""
    answers = {}
    for media_id, concept_id, instances in (Proposal.objects.filter(
            model_version=version, datapoint__project=project, datapoint__is_gold=False).order_by("id")
            .values_list("datapoint__media_id", "datapoint__concept_id", "instances")):
        answers[(media_id, concept_id)] = instances  # the latest proposal wins
    truths: dict[int, list[dict]] = {}
    for datapoint_id, rle in Mask.objects.filter(datapoint__project=project, datapoint__is_gold=True,
                                                 iscrowd=False).values_list("datapoint_id", "rle"):
        truths.setdefault(datapoint_id, []).append(rle)
    scores: dict[str, dict] = {}
    for gold in Datapoint.objects.filter(project=project, is_gold=True).select_related("concept").order_by("id"):
        instances = answers.get((gold.media_id, gold.concept_id))
        if instances is None:
            continue
        predicted = [i["rle"] for i in instances if i["score"] >= SCORE_THRESHOLD]
        true = truths.get(gold.pk, [])
        tp = int(match_counts(predicted, true)[AT_IOU_50])
        row = scores.setdefault(gold.concept.phrase, {"pairs": 0, "tp": 0, "fp": 0, "fn": 0})
        row["pairs"] += 1
        row["tp"] += tp
        row["fp"] += len(predicted) - tp
        row["fn"] += len(true) - tp
    for row in scores.values():
        wrong = row["fp"] + row["fn"]
        row["f1"] = 2 * row["tp"] / (2 * row["tp"] + wrong) if row["tp"] or wrong else 1.0
    return scores


def refresh_low_score_phrases(project: Project, *, max_f1: float = 0.5, min_pairs: int = 3, actor=None) -> dict:
    """Score the active SAM 3 on the gold set and store the phrases below ``max_f1`` (with at least ``min_pairs``
    gold pairs answered) as the project's ``low_score_phrases``; the report, with every phrase's score."""
    if not 0.0 <= max_f1 <= 1.0:
        raise InvalidInput("max_f1 must be in [0, 1]")
    if min_pairs < 1:
        raise InvalidInput("min_pairs must be >= 1")
    with transaction.atomic():
        project = Project.objects.select_for_update().get(pk=project.pk)
        version = project.active_model
        if version is None:
            raise InvalidInput("the project has no active SAM 3 model to score")
        if not Datapoint.objects.filter(project=project, is_gold=True).exists():
            raise InvalidInput("the project has no gold set (POST /api/projects/{id}/gold/)")
        scores = phrase_gold_scores(project, version)
        low = sorted(p for p, row in scores.items() if row["pairs"] >= min_pairs and row["f1"] < max_f1)
        project.config = {**(project.config or {}), "low_score_phrases": low}
        project.save(update_fields=["config"])
        report = {"model_version": version.name, "max_f1": max_f1, "min_pairs": min_pairs,
                  "gold_pairs_answered": sum(row["pairs"] for row in scores.values()),
                  "low_score_phrases": low, "phrases": scores}
        record_audit("project.low_score_phrases", project, actor=actor, project=project, model_version=version.name,
                     low_score_phrases=low)
    return report
