"""Phase-1 routing and the human work queue.

The datapoint's way (docs/architecture.md §4): proposal → human MV per mask → human EV per datapoint →
human correction when not exhaustive → accepted (positive with masks, or verified negative) or rejected.

Locking: submissions lock the datapoint first, then the task (always in that order, so that a submission
cancelling its sibling tasks cannot deadlock with a sibling's submission).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from dataengine.accounts.models import Project
from dataengine.annotation.models import (
    CorrectionOutcome,
    EVOption,
    HumanTask,
    Mask,
    MaskSource,
    MaskState,
    MVOption,
    Proposal,
    TaskKind,
    TaskState,
    Verdict,
    VerdictKind,
)
from dataengine.concepts.models import Datapoint, DatapointState, FinalLabel
from dataengine.engine.config import ProjectConfig
from dataengine.engine.services import record_audit
from dataengine.errors import Conflict, InvalidInput, NotAllowed
from model import rle as rle_lib

OPEN_TASK_STATES = (TaskState.QUEUED, TaskState.LEASED)
MV_ACCEPTS = {MVOption.ACCEPT, MVOption.ACCEPT_AS_TEXT}
TAKES_PHRASE_OUT = {MVOption.FLAG_LABEL, MVOption.WHOLE_IMAGE, EVOption.UNGROUNDABLE}


# ---------------------------------------------------------------- proposals → tasks


def _best_beyond_cap(proposal_json: dict) -> float | None:
    """The proposal's ``best_beyond_cap`` score (model.sam3.predictor.PhraseProposal); None from a worker that does
    not send it. InvalidInput for anything but a number in [0, 1]."""
    value = proposal_json.get("best_beyond_cap")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise InvalidInput(f"best_beyond_cap must be a number in [0, 1], got {value!r}")
    return float(value)


def _semantic_rle(proposal_json: dict, size: tuple[int, int]) -> dict | None:
    """The proposal's ``semantic_rle`` validated against its image (InvalidRLE otherwise); None where not sent."""
    value = proposal_json.get("semantic_rle")
    return None if value is None else rle_lib.validate(value, size=size)


def store_proposals(pairs, *, model_version, job) -> list[Proposal]:
    """Persist model proposals, ``(datapoint, proposal_json)`` pairs, and route them; in a few bulk queries.

    Only datapoints in PROPOSING are stored (once each: a replay or a repeated phrase does nothing).
    Phase 1 (or no active verifier): a human MV task per mask, or straight to human EV without masks.
    Phase 2+: the AI verifiers judge it first (annotation.verifying).

    Every mask is validated against its image before anything is written: the result comes from a GPU
    worker over the broker, so it is input like any other (InvalidRLE otherwise).
    Precondition: the caller holds a transaction and a lock on the job row.
    """
    todo, seen = [], set()
    for datapoint, proposal_json in pairs:
        if datapoint.state == DatapointState.PROPOSING and datapoint.pk not in seen:
            seen.add(datapoint.pk)
            todo.append((datapoint, proposal_json))
    if not todo:
        return []
    rles = [[rle_lib.validate(instance["rle"], size=(datapoint.media.height, datapoint.media.width))
             for instance in proposal_json["instances"]] for datapoint, proposal_json in todo]
    semantic = [_semantic_rle(proposal_json, (datapoint.media.height, datapoint.media.width))
                for datapoint, proposal_json in todo]
    flat = [rle for group in rles for rle in group]
    areas, boxes = iter(rle_lib.area(flat)), iter(rle_lib.bbox_xywh_many(flat))
    proposals = Proposal.objects.bulk_create([
        Proposal(datapoint=datapoint, model_version=model_version, job=job,
                 presence_score=float(proposal_json["presence_score"]), instances=proposal_json["instances"],
                 truncated_phrase=bool(proposal_json.get("truncated", False)),
                 best_beyond_cap=_best_beyond_cap(proposal_json), semantic_rle=semantic_rle)
        for (datapoint, proposal_json), semantic_rle in zip(todo, semantic)
    ])
    masks = [[Mask(datapoint=datapoint, rle=rle, bbox=next(boxes), area=next(areas), source=MaskSource.MODEL,
                   score=float(instance["score"]), proposal=proposal)
              for instance, rle in zip(proposal_json["instances"], group)]
             for (datapoint, proposal_json), proposal, group in zip(todo, proposals, rles)]
    Mask.objects.bulk_create([mask for group in masks for mask in group])
    tasks, routed = [], []
    for (datapoint, _), group in zip(todo, masks):
        config = ProjectConfig.of(datapoint.project)
        datapoint.revision += 1
        if datapoint.project.phase >= 2 and datapoint.project.active_verifier_id is not None:
            from dataengine.annotation.verifying import request_verification

            datapoint.state = DatapointState.AI_VERIFICATION
            datapoint.save(update_fields=["state", "revision", "updated_at"])
            request_verification(datapoint)
            continue
        if group:
            datapoint.state = DatapointState.MASK_VERIFICATION
            tasks += [HumanTask(project_id=datapoint.project_id, kind=TaskKind.MASK_VERIFICATION,
                                datapoint=datapoint, mask=mask, priority=config.mv_priority) for mask in group]
        else:
            datapoint.state = DatapointState.EXHAUSTIVITY_VERIFICATION
            tasks.append(HumanTask(project_id=datapoint.project_id, kind=TaskKind.EXHAUSTIVITY_VERIFICATION,
                                   datapoint=datapoint, priority=config.ev_priority))
        routed.append(datapoint)
    HumanTask.objects.bulk_create(tasks)
    now = timezone.now()
    for datapoint in routed:
        datapoint.updated_at = now  # bulk_update does not apply auto_now
    Datapoint.objects.bulk_update(routed, ["state", "revision", "updated_at"])
    return proposals


def fail_datapoint(datapoint: Datapoint, reason: str) -> None:
    datapoint.state = DatapointState.FAILED
    datapoint.reason = reason
    datapoint.save(update_fields=["state", "reason", "updated_at"])


def _queue(datapoint: Datapoint, kind: str, priority: int) -> HumanTask:
    return HumanTask.objects.create(project_id=datapoint.project_id, kind=kind, datapoint=datapoint, priority=priority)


# ---------------------------------------------------------------- leasing

_LEASE_SQL_POSTGRES = """
UPDATE annotation_humantask
   SET state = 'leased', holder_id = %s, lease_expires_at = %s,
       lease_token = lease_token + 1, attempts = attempts + 1
 WHERE id = (SELECT id FROM annotation_humantask
              WHERE project_id = %s AND kind = %s AND state = 'queued'
              ORDER BY priority DESC, id
              LIMIT 1
              FOR UPDATE SKIP LOCKED)
RETURNING id
"""
# SQLite serialises writers, so one UPDATE … RETURNING is atomic there (select_for_update would do nothing).
_LEASE_SQL_SQLITE = """
UPDATE annotation_humantask
   SET state = 'leased', holder_id = %s, lease_expires_at = %s,
       lease_token = lease_token + 1, attempts = attempts + 1
 WHERE id = (SELECT id FROM annotation_humantask
              WHERE project_id = %s AND kind = %s AND state = 'queued'
              ORDER BY priority DESC, id
              LIMIT 1)
   AND state = 'queued'
RETURNING id
"""


def _lease_one(project_id: int, user_id: int, kind: str, expires: dt.datetime) -> int | None:
    sql = _LEASE_SQL_SQLITE if connection.vendor == "sqlite" else _LEASE_SQL_POSTGRES
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [user_id, expires, project_id, kind])
        row = cursor.fetchone()
    return row[0] if row else None


def lease_next_task(project: Project, user, kind: str, *, lease_seconds: int | None = None) -> HumanTask | None:
    """Lease the next task of ``kind`` to ``user``: highest priority first, never one another annotator holds.

    An annotator who already holds an unexpired lease of that kind gets it back (a reload loses nothing).
    When the queue is empty, expired leases of that kind go back to the queue first.
    """
    if kind not in TaskKind.values:
        raise InvalidInput(f"unknown task kind {kind!r}; one of {TaskKind.values}")
    now = timezone.now()
    held = (HumanTask.objects.filter(project=project, kind=kind, holder=user, state=TaskState.LEASED,
                                     lease_expires_at__gt=now).order_by("id").values_list("id", flat=True).first())
    if held is not None:
        return HumanTask.objects.get(pk=held)
    expires = now + dt.timedelta(seconds=lease_seconds or settings.TASK_LEASE_SECONDS)
    task_id = _lease_one(project.pk, user.pk, kind, expires)
    if task_id is None and requeue_expired_leases(project=project, kind=kind, now=now):
        task_id = _lease_one(project.pk, user.pk, kind, expires)
    return HumanTask.objects.get(pk=task_id) if task_id is not None else None


def requeue_expired_leases(*, project: Project | int | None = None, kind: str | None = None, now=None) -> int:
    """Return every task whose lease has expired to the queue. Run by beat and when a queue runs dry."""
    expired = HumanTask.objects.filter(state=TaskState.LEASED, lease_expires_at__lt=now or timezone.now())
    if project is not None:
        expired = expired.filter(project_id=getattr(project, "pk", project))
    if kind is not None:
        expired = expired.filter(kind=kind)
    return expired.update(state=TaskState.QUEUED, holder=None, lease_expires_at=None)


def _locked_task(task_id: int, user, lease_token: int, kind: str | None = None) -> tuple[HumanTask, Datapoint]:
    """Lock the task's datapoint and then the task; check that ``user`` holds the current lease."""
    datapoint_id = HumanTask.objects.filter(pk=task_id).values_list("datapoint_id", flat=True).first()
    if datapoint_id is None:
        raise InvalidInput(f"task {task_id} does not exist")
    datapoint = Datapoint.objects.select_for_update().select_related("media", "project").get(pk=datapoint_id)
    task = HumanTask.objects.select_for_update().get(pk=task_id)
    if kind is not None and task.kind != kind:
        raise InvalidInput(f"task {task_id} is a {task.kind} task, not {kind}")
    if task.state in (TaskState.DONE, TaskState.CANCELLED):
        raise Conflict(f"task {task_id} is already {task.state}; nothing was changed", task_state=task.state)
    if task.holder_id != user.pk:
        if task.state == TaskState.LEASED:
            raise NotAllowed(f"task {task_id} is leased to another annotator")
        raise Conflict(f"your lease on task {task_id} expired and the task went back to the queue; lease it again")
    if lease_token != task.lease_token:
        raise Conflict(f"lease token {lease_token} is stale (current lease is {task.lease_token}); reload the task",
                       lease_token=task.lease_token)
    return task, datapoint


def heartbeat(task_id: int, user, lease_token: int, *, lease_seconds: int | None = None) -> HumanTask:
    """Extend the caller's lease."""
    with transaction.atomic():
        task, _ = _locked_task(task_id, user, lease_token)
        task.lease_expires_at = timezone.now() + dt.timedelta(seconds=lease_seconds or settings.TASK_LEASE_SECONDS)
        task.save(update_fields=["lease_expires_at"])
    return task


def release_task(task_id: int, user, lease_token: int) -> HumanTask:
    """Give a leased task back to the queue untouched."""
    with transaction.atomic():
        task, _ = _locked_task(task_id, user, lease_token)
        task.state, task.holder, task.lease_expires_at = TaskState.QUEUED, None, None
        task.save(update_fields=["state", "holder", "lease_expires_at"])
    return task


def _complete(task: HumanTask, user) -> None:
    task.state, task.completed_at, task.completed_by = TaskState.DONE, timezone.now(), user
    task.holder, task.lease_expires_at = None, None
    task.save(update_fields=["state", "completed_at", "completed_by", "holder", "lease_expires_at"])


def to_exhaustivity_verification(datapoint: Datapoint, reasons: list[str] | None = None) -> None:
    """Queue a human EV of the datapoint's accepted masks (``reasons``: why a human and not the verifier)."""
    datapoint.state = DatapointState.EXHAUSTIVITY_VERIFICATION
    fields = ["state", "updated_at"]
    if reasons:
        datapoint.reason = "; ".join(reasons)
        fields.append("reason")
    datapoint.save(update_fields=fields)
    _queue(datapoint, TaskKind.EXHAUSTIVITY_VERIFICATION, ProjectConfig.of(datapoint.project).ev_priority)


def _take_out_of_circulation(datapoint: Datapoint, reason: str) -> None:
    """Reject the phrase for this media (flagged, whole-image, vague) and cancel its open tasks."""
    datapoint.state = DatapointState.REJECTED
    datapoint.final_label = FinalLabel.REJECTED
    datapoint.reason = reason
    datapoint.save(update_fields=["state", "final_label", "reason", "updated_at"])
    HumanTask.objects.filter(datapoint=datapoint, state__in=OPEN_TASK_STATES).update(
        state=TaskState.CANCELLED, holder=None, lease_expires_at=None)


def _accept(datapoint: Datapoint) -> None:
    """Final data: positive with its accepted masks, or a verified negative."""
    accepted = list(datapoint.masks.filter(state=MaskState.ACCEPTED).values_list("iscrowd", flat=True))
    datapoint.state = DatapointState.ACCEPTED
    datapoint.final_label = FinalLabel.POSITIVE if accepted else FinalLabel.NEGATIVE
    datapoint.is_instance_exhaustive = not any(accepted)
    datapoint.is_pixel_exhaustive = True
    datapoint.save(update_fields=["state", "final_label", "is_instance_exhaustive", "is_pixel_exhaustive",
                                  "updated_at"])


@dataclass(frozen=True)
class Outcome:
    task: HumanTask
    datapoint: Datapoint


# ---------------------------------------------------------------- submissions


def submit_mask_verification(task_id: int, *, user, lease_token: int, decision: str, seconds: float) -> Outcome:
    """Record a human MV decision on one mask; when the datapoint's last MV is in, queue its EV (in Phase 2, the
    verifier's where it may settle it: verifying.request_exhaustivity_after_check)."""
    from dataengine.annotation.verifying import request_exhaustivity_after_check

    if decision not in MVOption.values:
        raise InvalidInput(f"decision must be one of {MVOption.values}")
    with transaction.atomic():
        task, datapoint = _locked_task(task_id, user, lease_token, TaskKind.MASK_VERIFICATION)
        mask = task.mask
        Verdict.objects.create(kind=VerdictKind.MASK, datapoint=datapoint, mask=mask, task=task, decision=decision,
                               user=user, seconds=seconds)
        mask.state = MaskState.ACCEPTED if decision in MV_ACCEPTS else MaskState.REJECTED
        mask.save(update_fields=["state", "updated_at"])
        _complete(task, user)
        datapoint.revision += 1
        datapoint.save(update_fields=["revision", "updated_at"])
        if decision in TAKES_PHRASE_OUT:
            _take_out_of_circulation(datapoint, f"mask verification: {decision}")
        elif not HumanTask.objects.filter(datapoint=datapoint, kind=TaskKind.MASK_VERIFICATION,
                                          state__in=OPEN_TASK_STATES).exists() \
                and request_exhaustivity_after_check(datapoint) is None:
            to_exhaustivity_verification(datapoint)
        record_audit("task.mask_verification", task, actor=user, project=datapoint.project, decision=decision,
                     mask=mask.pk, seconds=seconds)
    return Outcome(task, datapoint)


def submit_exhaustivity_verification(task_id: int, *, user, lease_token: int, decision: str,
                                     seconds: float) -> Outcome:
    """Record a human EV decision: exhaustive → accepted; missing instances → correction; vague → rejected."""
    if decision not in EVOption.values:
        raise InvalidInput(f"decision must be one of {EVOption.values}")
    with transaction.atomic():
        task, datapoint = _locked_task(task_id, user, lease_token, TaskKind.EXHAUSTIVITY_VERIFICATION)
        Verdict.objects.create(kind=VerdictKind.EXHAUSTIVITY, datapoint=datapoint, task=task, decision=decision,
                               user=user, seconds=seconds)
        _complete(task, user)
        if decision == EVOption.ACCEPT:
            _accept(datapoint)
        elif decision in (EVOption.REJECT, EVOption.REJECT_UNSEPARATED):
            datapoint.state = DatapointState.CORRECTION
            datapoint.save(update_fields=["state", "updated_at"])
            _queue(datapoint, TaskKind.CORRECTION, ProjectConfig.of(datapoint.project).correction_priority)
        else:
            _take_out_of_circulation(datapoint, f"exhaustivity verification: {decision}")
        record_audit("task.exhaustivity_verification", task, actor=user, project=datapoint.project,
                     decision=decision, seconds=seconds)
    return Outcome(task, datapoint)


@dataclass(frozen=True)
class MaskInput:
    """One entry of a correction's final mask set: keep (mask_id), edit (mask_id + rle) or add (rle). The mask_id
    of a rejected proposal (the task's ``candidates``) restores it, or with rle edits it: a good mask rejected by
    mistake, or a near miss, costs a click or an edit rather than a new drawing."""

    mask_id: int | None = None
    rle: dict | None = None
    iscrowd: bool = False


def submit_correction(task_id: int, *, user, lease_token: int, datapoint_revision: int, outcome: str,
                      masks: list[MaskInput], seconds: float, reason: str = "") -> Outcome:
    """Replace the datapoint's accepted masks with the submitted final set and accept it as exhaustive.

    ``masks`` is the complete final set; accepted masks not listed are deleted, rejected ones listed are restored
    (or, with an rle, replaced by the edit). Outcome ``reject_phrase`` or
    ``cannot_complete`` rejects the pair instead. A submission based on an older revision is refused (409).
    """
    if outcome not in CorrectionOutcome.values:
        raise InvalidInput(f"outcome must be one of {CorrectionOutcome.values}")
    with transaction.atomic():
        task, datapoint = _locked_task(task_id, user, lease_token, TaskKind.CORRECTION)
        if datapoint_revision != datapoint.revision:
            raise Conflict(f"the datapoint changed since you loaded it (revision {datapoint_revision}, now "
                           f"{datapoint.revision}); reload it", revision=datapoint.revision)
        counts = {"kept": 0, "restored": 0, "edited": 0, "added": 0, "deleted": 0}
        if outcome == CorrectionOutcome.COMPLETE:
            counts = _apply_final_masks(datapoint, masks, user)
        Verdict.objects.create(kind=VerdictKind.CORRECTION, datapoint=datapoint, task=task, decision=outcome,
                               user=user, seconds=seconds, note=reason, probabilities={})
        _complete(task, user)
        if outcome == CorrectionOutcome.COMPLETE:
            datapoint.revision += 1
            datapoint.save(update_fields=["revision", "updated_at"])
            _accept(datapoint)
        else:
            _take_out_of_circulation(datapoint, f"correction: {outcome}" + (f" ({reason})" if reason else ""))
        record_audit("task.correction", task, actor=user, project=datapoint.project, outcome=outcome,
                     seconds=seconds, **counts)
    return Outcome(task, datapoint)


def _apply_final_masks(datapoint: Datapoint, masks: list[MaskInput], user) -> dict:
    size = (datapoint.media.height, datapoint.media.width)
    current = {m.pk: m for m in datapoint.masks.filter(state=MaskState.ACCEPTED)}
    candidates = {m.pk: m for m in datapoint.masks.filter(state=MaskState.REJECTED)}
    # Validate everything before writing anything.
    normalised = []
    for i, entry in enumerate(masks):
        if entry.mask_id is not None and entry.mask_id not in current and entry.mask_id not in candidates:
            raise InvalidInput(f"masks[{i}]: mask {entry.mask_id} is not an accepted or rejected mask of this "
                               "datapoint")
        if entry.mask_id is None and entry.rle is None:
            raise InvalidInput(f"masks[{i}]: give a mask_id to keep, an rle to add, or both to edit")
        rle = None
        if entry.rle is not None:
            try:
                rle = rle_lib.validate(entry.rle, size=size)
            except rle_lib.InvalidRLE as exc:
                raise InvalidInput(f"masks[{i}].rle: {exc}") from None
            if rle_lib.area([rle])[0] == 0:
                raise InvalidInput(f"masks[{i}].rle: the mask is empty")
        normalised.append((entry, rle))
    keep_ids = [e.mask_id for e, _ in normalised if e.mask_id is not None]
    if len(keep_ids) != len(set(keep_ids)):
        raise InvalidInput("a mask_id appears twice in masks")
    counts = {"kept": 0, "restored": 0, "edited": 0, "added": 0, "deleted": 0}
    restored = [e.mask_id for e, rle in normalised if rle is None and e.mask_id in candidates]
    Mask.objects.filter(pk__in=restored).update(state=MaskState.ACCEPTED)
    counts["restored"] = len(restored)
    for entry, rle in normalised:
        if rle is None:
            counts["kept"] += entry.mask_id in current
            continue
        replaced = current.get(entry.mask_id) or candidates.get(entry.mask_id)  # None for an added mask
        Mask.objects.create(datapoint=datapoint, rle=rle, bbox=rle_lib.bbox_xywh(rle), area=rle_lib.area([rle])[0],
                            iscrowd=entry.iscrowd, source=MaskSource.HUMAN, state=MaskState.ACCEPTED,
                            created_by=user, replaces=replaced)
        counts["edited" if replaced else "added"] += 1
    edited_ids = {e.mask_id for e, r in normalised if e.mask_id is not None and r is not None}
    gone = [pk for pk in current if pk not in keep_ids or pk in edited_ids]
    Mask.objects.filter(pk__in=gone).update(state=MaskState.DELETED)
    counts["deleted"] = len([pk for pk in gone if pk not in edited_ids])
    return counts
