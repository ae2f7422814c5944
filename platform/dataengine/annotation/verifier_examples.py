"""A project's human decisions as verifier training examples (the JSONL ``python -m verifiers.train --examples``
and ``python -m verifiers.calibrate --examples`` read), with the images they refer to.

Rows, one question each (``{"task", "image", "phrase", "rles", "label", "kind"[, "gold"]}``):

* every human mask verification: the mask and the human's option (``human_mv``);
* every human exhaustivity verification: the masks the human saw boxed — those a human MV had accepted before
  it (none: the zero-boxes question) — and the human's option (``human_ev``);
* the signals a finished correction implies (docs/data-engine.md §3): each human-drawn mask of the final set is
  a good MV example and the final set a good EV example, both "accept" (``correction_added``,
  ``correction_final``); so is each proposed mask of the final set no human MV had accepted — one the correction
  restored from the rejected masks, or kept from the AI's (``correction_kept``);
* every datapoint humans settled (accepted, not auto-accepted): the zero-boxes question routing asks before
  anyone looks, answered by the outcome — "accept" (absent) iff it was accepted with no mask
  (``outcome_before_check``; verifiers.training calibrates the routing's "not present" claim on these).

Every EV row of a datapoint SAM 3 proposed for carries SAM 3's witnesses (verifiers.calibration.SAM3_WITNESSES)
from its latest proposal: the presence score, the best score among the proposed masks the question does not box, how
many masks it proposed, its best score beyond the cap (where recorded) and how much better it likes another phrase of
the image for the unboxed masks (``competing_margin``); and those it leaves unboxed (``unboxed_rles``) with each
one's margin (``unboxed_margins``): verifiers.training splits each EV claim by whether they are all explained
(verifiers.calibration.unboxed_explained).

``gold``: where the project's frozen gold set has the same image and phrase, the verdict its instances imply
(MV accept iff the mask's best IoU with a gold instance reaches ``GOLD_MV_IOU``; EV accept iff every gold
instance is covered at ``GOLD_COVER_IOU``). Calibration uses it instead of the single human verdict, whose
mistakes would cap the precision any verifier can be measured at.
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

from django.core.files.storage import default_storage

from dataengine.annotation.models import (
    CorrectionOutcome,
    Mask,
    MaskSource,
    MaskState,
    MVOption,
    Proposal,
    Verdict,
    VerdictKind,
)
from dataengine.concepts.models import Datapoint, DatapointState
from model import rle as rle_lib
from verifiers.calibration import competing_margins, uncovered_share

GOLD_MV_IOU = 0.75
GOLD_COVER_IOU = 0.5
MV_ACCEPTS = (MVOption.ACCEPT, MVOption.ACCEPT_AS_TEXT)


def gold_mv(rle: dict, gold: list[dict]) -> str:
    """The MV verdict the gold instances imply for one mask."""
    return "accept" if gold and rle_lib.iou([rle], gold).max() >= GOLD_MV_IOU else "reject"


def gold_ev(rles: list[dict], gold: list[dict]) -> str:
    """The EV verdict the gold instances imply for a set of boxed masks (a negative with no masks: accept)."""
    if not gold:
        return "accept"
    if not rles:
        return "reject"
    return "accept" if (rle_lib.iou(rles, gold).max(axis=0) >= GOLD_COVER_IOU).all() else "reject"


def image_name(media) -> str:
    """The file name an example row uses for its image: content-addressed, with the stored file's suffix."""
    return media.sha256 + PurePosixPath(media.storage_name).suffix


def verifier_examples(project, media: dict | None = None) -> list[dict]:
    """The rows (see the module docstring) for every human decision of ``project``, oldest first; ``media``, if
    given, receives each row's media item by image name."""
    media = {} if media is None else media
    gold_sets: dict[tuple[int, int], list[dict]] = {}
    for mask in Mask.objects.filter(datapoint__project=project, datapoint__is_gold=True, state=MaskState.ACCEPTED,
                                    iscrowd=False).select_related("datapoint"):
        gold_sets.setdefault((mask.datapoint.media_id, mask.datapoint.concept_id), []).append(mask.rle)
    gold_pairs = set(Datapoint.objects.filter(project=project, is_gold=True).values_list("media_id", "concept_id"))

    latest = {dp: (proposal, presence, beyond_cap, semantic)  # the last one wins
              for dp, proposal, presence, beyond_cap, semantic in
              Proposal.objects.filter(datapoint__project=project, datapoint__is_gold=False).order_by(
                  "datapoint_id", "id").values_list("datapoint_id", "id", "presence_score", "best_beyond_cap",
                                                    "semantic_rle")}
    proposal_of = {proposal: dp for dp, (proposal, *_) in latest.items()}
    pairs = dict(Datapoint.objects.filter(pk__in=latest).values_list("pk", "media_id"))
    phrases_of_media: dict[int, list[int]] = {}  # media -> datapoints with a proposal, for competing_margins
    for dp, media_id in pairs.items():
        phrases_of_media.setdefault(media_id, []).append(dp)
    scores: dict[int, dict[int, float]] = {}  # datapoint -> {mask id: score} of its latest proposal
    proposed_rles: dict[int, dict] = {}
    for proposal, mask, score, rle in Mask.objects.filter(proposal__in=proposal_of).order_by("id").values_list(
            "proposal_id", "id", "score", "rle"):  # in the order they were proposed
        scores.setdefault(proposal_of[proposal], {})[mask] = score or 0.0
        proposed_rles[mask] = rle

    def row(task: str, dp, masks: list, label: str, kind: str) -> dict:
        media[image_name(dp.media)] = dp.media
        rles = [m.rle for m in masks]
        out = {"task": task, "image": image_name(dp.media), "phrase": dp.concept.phrase, "rles": rles,
               "label": label, "kind": kind}
        key = (dp.media_id, dp.concept_id)
        if key in gold_pairs:
            gold = gold_sets.get(key, [])
            out["gold"] = gold_mv(rles[0], gold) if task == "mv" else gold_ev(rles, gold)
        if task == "ev" and dp.pk in latest:
            boxed = {m.pk for m in masks}
            out["sam3_presence"] = latest[dp.pk][1]
            out["sam3_best_unboxed"] = max((s for m, s in scores.get(dp.pk, {}).items() if m not in boxed),
                                           default=0.0)
            out["sam3_proposals"] = len(scores.get(dp.pk, {}))
            if latest[dp.pk][2] is not None:  # proposals stored before it was recorded lack it
                out["sam3_best_beyond_cap"] = latest[dp.pk][2]
            if latest[dp.pk][3] is not None:  # the same
                out["sam3_uncovered"] = uncovered_share(latest[dp.pk][3], rles)
            unboxed = [(proposed_rles[m], s) for m, s in scores.get(dp.pk, {}).items() if m not in boxed]
            out["unboxed_rles"] = [rle for rle, _ in unboxed]
            out["unboxed_margins"] = competing_margins(unboxed, [
                (proposed_rles[m], s) for other in phrases_of_media.get(dp.media_id, ()) if other != dp.pk
                for m, s in scores.get(other, {}).items()])
            out["sam3_competing_margin"] = min(out["unboxed_margins"], default=0.0)
        return out

    rows = []
    verdicts = (Verdict.objects.filter(datapoint__project=project, datapoint__is_gold=False, by_ai=False,
                                       kind__in=[VerdictKind.MASK, VerdictKind.EXHAUSTIVITY, VerdictKind.CORRECTION])
                .select_related("datapoint__media", "datapoint__concept", "mask").order_by("id"))
    accepted_by_human: dict[int, list[Mask]] = {}  # datapoint -> masks a human MV accepted so far (id order)
    corrected: set[int] = set()  # the final set counts once, however many corrections led to it
    for verdict in verdicts:
        dp = verdict.datapoint
        if verdict.kind == VerdictKind.MASK:
            rows.append(row("mv", dp, [verdict.mask], verdict.decision, "human_mv"))
            if verdict.decision in MV_ACCEPTS:
                accepted_by_human.setdefault(dp.pk, []).append(verdict.mask)
        elif verdict.kind == VerdictKind.EXHAUSTIVITY:
            rows.append(row("ev", dp, list(accepted_by_human.get(dp.pk, [])), verdict.decision, "human_ev"))
        elif (verdict.decision == CorrectionOutcome.COMPLETE and dp.state == DatapointState.ACCEPTED
              and dp.pk not in corrected):
            corrected.add(dp.pk)
            final = list(dp.masks.filter(state=MaskState.ACCEPTED).order_by("id"))
            rows += [row("mv", dp, [m], "accept", "correction_added") for m in final if m.source == MaskSource.HUMAN]
            seen_accepted = {m.pk for m in accepted_by_human.get(dp.pk, [])}
            rows += [row("mv", dp, [m], "accept", "correction_kept") for m in final
                     if m.source != MaskSource.HUMAN and m.pk not in seen_accepted]
            rows.append(row("ev", dp, final, "accept", "correction_final"))
    settled = (Datapoint.objects.filter(project=project, is_gold=False, state=DatapointState.ACCEPTED,
                                        auto_accepted=False)
               .select_related("media", "concept").order_by("id"))
    present = set(Mask.objects.filter(datapoint__in=settled, state=MaskState.ACCEPTED)
                  .values_list("datapoint_id", flat=True))
    rows += [row("ev", dp, [], "reject" if dp.pk in present else "accept", "outcome_before_check") for dp in settled]
    return rows


def write_verifier_examples(project, folder: str | Path) -> dict:
    """Write ``folder/examples.jsonl`` and ``folder/images/`` (each image once, from media storage); a summary."""
    folder = Path(folder)
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)
    media: dict = {}
    rows = verifier_examples(project, media)
    for name, item in media.items():
        if not (images / name).exists():
            with default_storage.open(item.storage_name, "rb") as source:
                (images / name).write_bytes(source.read())
    (folder / "examples.jsonl").write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in rows))
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    return {"examples": len(rows), "by_kind": counts, "with_gold": sum("gold" in r for r in rows),
            "images": len(media), "folder": str(folder)}
