"""Jobs (idempotency), the audit log and the model registry."""
from __future__ import annotations

import hashlib
import json

from django.db import transaction
from django.db.models import Q

from dataengine.engine.models import AuditEvent, Job, ModelKind, ModelStatus, ModelVersion
from dataengine.errors import Conflict, InvalidInput


def job_key(task_name: str, **inputs) -> str:
    """sha256 of the task name and its inputs (canonical JSON): the same request is the same job."""
    blob = json.dumps({"task": task_name, **inputs}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


def get_or_create_job(task_name: str, *, project=None, payload: dict, key_inputs: dict) -> tuple[Job, bool]:
    return Job.objects.get_or_create(
        key=job_key(task_name, **key_inputs),
        defaults={"task_name": task_name, "project": project, "payload": payload},
    )


def record_audit(action: str, target, *, actor=None, project=None, **data) -> AuditEvent:
    return AuditEvent.objects.create(
        project=project,
        actor=actor if getattr(actor, "is_authenticated", False) else None,
        action=action,
        target_type=type(target).__name__,
        target_id=str(target.pk),
        data=data,
    )


# ----------------------------------------------------------------------------------------------
# Model registry
#
# Status: ``candidate`` (registered, not serving anywhere), ``promoted`` (a project's active model or verifier),
# ``retired`` (withdrawn: never promoted or rolled back to again). A version replaced in its last project
# returns to ``candidate``; the audit log keeps that it served. Deploying is per project and per slot: SAM 3
# versions are the project's ``active_model``, verifier versions its ``active_verifier``. Jobs carry the model
# URI in their payload, so every gpu worker uses the newly promoted version for the next job, without a
# restart; proposals record the version that made them.
# ----------------------------------------------------------------------------------------------

ACTIVE_SLOTS = {ModelKind.SAM3: "active_model", ModelKind.VERIFIER: "active_verifier"}
DEPLOY_ACTIONS = ("model.promote", "model.rollback")


def register_model_version(*, name: str, uri: str, kind: str = ModelKind.SAM3, parent=None, snapshot=None,
                           manifest=None, metrics=None) -> ModelVersion:
    """Register a version (a candidate); registering an existing name returns it unchanged."""
    version, _ = ModelVersion.objects.get_or_create(
        name=name,
        defaults={"uri": uri, "kind": kind, "parent": parent, "snapshot": snapshot, "manifest": manifest or {},
                  "metrics": metrics or {}},
    )
    return version


def _slot(kind: str) -> str:
    try:
        return ACTIVE_SLOTS[kind]
    except KeyError:
        raise InvalidInput(f"a {kind} model cannot be deployed to a project (deployable: "
                           f"{', '.join(sorted(ACTIVE_SLOTS))})") from None


def _serving_projects(version: ModelVersion) -> list[str]:
    from dataengine.accounts.models import Project

    return list(Project.objects.filter(Q(active_model=version) | Q(active_verifier=version))
                .order_by("id").values_list("name", flat=True))


def _lock(project):
    """Lock the project's row for the rest of the transaction: deploys to one project happen one at a time."""
    from dataengine.accounts.models import Project

    return Project.objects.select_for_update().only("id", *ACTIVE_SLOTS.values()).get(pk=project.pk)


def _deploy(project, locked, version: ModelVersion, *, action: str, actor) -> ModelVersion:
    slot = _slot(version.kind)
    previous_id = getattr(locked, f"{slot}_id")
    setattr(project, slot, version)
    project.save(update_fields=[slot, "updated_at"])
    if version.status != ModelStatus.PROMOTED:
        version.status = ModelStatus.PROMOTED
        version.save(update_fields=["status"])
    previous = ModelVersion.objects.select_for_update().filter(pk=previous_id).first() if previous_id else None
    if previous is not None and previous.pk != version.pk and previous.status == ModelStatus.PROMOTED \
            and not _serving_projects(previous):
        previous.status = ModelStatus.CANDIDATE
        previous.save(update_fields=["status"])
    record_audit(action, version, actor=actor, project=project, kind=version.kind, version=version.name,
                 previous=previous.name if previous else None, previous_id=previous_id)
    return version


@transaction.atomic
def promote_model_version(project, version: ModelVersion, *, actor=None) -> ModelVersion:
    """Make ``version`` the project's active model (or verifier, by kind); the previous one stays registered.

    Refuses a retired version (409). New jobs of the project use it from the moment this commits.
    """
    locked = _lock(project)
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    if version.status == ModelStatus.RETIRED:
        raise Conflict(f"model version {version.name!r} is retired and cannot be promoted")
    return _deploy(project, locked, version, action="model.promote", actor=actor)


def _deploy_stack(project, kind: str) -> list[int]:
    """Version ids as deployed to the project's ``kind`` slot, oldest first: a promote pushes, a rollback pops
    back down to its target (read from the audit log, so older promote events count too)."""
    events = list(AuditEvent.objects.filter(project=project, action__in=DEPLOY_ACTIONS, target_type="ModelVersion")
                  .order_by("id").values_list("action", "target_id"))
    kinds = dict(ModelVersion.objects.filter(pk__in={int(t) for _, t in events}).values_list("id", "kind"))
    stack: list[int] = []
    for action, target in events:
        target = int(target)
        if kinds.get(target) != kind:
            continue
        if action == "model.rollback":
            while stack and stack[-1] != target:
                stack.pop()
            if not stack:
                stack.append(target)
        elif not stack or stack[-1] != target:
            stack.append(target)
    return stack


@transaction.atomic
def rollback_model_version(project, *, kind: str = ModelKind.SAM3, actor=None) -> ModelVersion:
    """Put back the version deployed before the current one (skipping retired ones); 409 when there is none."""
    slot = _slot(kind)
    locked = _lock(project)
    current_id = getattr(locked, f"{slot}_id")
    stack = _deploy_stack(project, kind)
    while stack and stack[-1] == current_id:
        stack.pop()
    retired = set(ModelVersion.objects.filter(pk__in=stack, status=ModelStatus.RETIRED).values_list("id", flat=True))
    candidates = [pk for pk in stack if pk not in retired]
    if not candidates:
        raise Conflict(f"nothing to roll back to: the project has no earlier {kind} version that is not retired")
    version = ModelVersion.objects.select_for_update().get(pk=candidates[-1])
    return _deploy(project, locked, version, action="model.rollback", actor=actor)


@transaction.atomic
def retire_model_version(version: ModelVersion, *, actor=None) -> ModelVersion:
    """Withdraw a version for good; 409 while a project still uses it (promote another or roll back first)."""
    version = ModelVersion.objects.select_for_update().get(pk=version.pk)
    serving = _serving_projects(version)
    if serving:
        raise Conflict(f"model version {version.name!r} is active in {', '.join(serving)}: promote another version "
                       "or roll back there first")
    if version.status != ModelStatus.RETIRED:
        version.status = ModelStatus.RETIRED
        version.save(update_fields=["status"])
        record_audit("model.retire", version, actor=actor, version=version.name)
    return version


def model_history(project, *, kind: str | None = None) -> list[dict]:
    """The project's promotions and rollbacks, newest first: action, kind, version, previous, actor, when."""
    events = list(AuditEvent.objects.filter(project=project, action__in=DEPLOY_ACTIONS, target_type="ModelVersion")
                  .select_related("actor").order_by("-id"))
    ids = {int(e.target_id) for e in events} | {e.data["previous_id"] for e in events if e.data.get("previous_id")}
    versions = {v.pk: v for v in ModelVersion.objects.filter(pk__in=ids).only("id", "name", "kind")}
    rows = []
    for event in events:
        version = versions.get(int(event.target_id))
        if kind is not None and (version is None or version.kind != kind):
            continue
        previous = versions.get(event.data.get("previous_id") or 0)
        rows.append({
            "id": event.pk,
            "action": event.action.removeprefix("model."),
            "kind": version.kind if version else None,
            "version": version.name if version else None,
            "previous": previous.name if previous else event.data.get("previous"),
            "actor": event.actor.get_username() if event.actor else None,
            "created_at": event.created_at,
        })
    return rows
