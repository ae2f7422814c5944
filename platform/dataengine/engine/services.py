"""Jobs (idempotency), the audit log and the model registry."""
from __future__ import annotations

import hashlib
import json

from django.db import transaction

from dataengine.engine.models import AuditEvent, Job, ModelKind, ModelStatus, ModelVersion


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


def register_model_version(*, name: str, uri: str, kind: str = ModelKind.SAM3, parent=None, manifest=None,
                           metrics=None) -> ModelVersion:
    version, _ = ModelVersion.objects.get_or_create(
        name=name,
        defaults={"uri": uri, "kind": kind, "parent": parent, "manifest": manifest or {}, "metrics": metrics or {}},
    )
    return version


@transaction.atomic
def promote_model_version(project, version: ModelVersion, *, actor=None) -> ModelVersion:
    """Make ``version`` the project's active model; the previous one stays registered for rollback."""
    previous = project.active_model
    version.status = ModelStatus.PROMOTED
    version.save(update_fields=["status"])
    project.active_model = version
    project.save(update_fields=["active_model", "updated_at"])
    record_audit("model.promote", version, actor=actor, project=project,
                 previous=previous.name if previous else None)
    return version
